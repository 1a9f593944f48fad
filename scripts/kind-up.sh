#!/usr/bin/env bash
# The `kind` target: a kind cluster with the kit's images and its controller chart.
#   scripts/kind-up.sh          (CLUSTER_NAME=appmesh-gateway-demo by default)
# Then: kubectl apply -f manifests/walkthrough/ ; the gateway answers on http://127.0.0.1:8080
# once its Service uses NodePort 30080 (the kind target sets that; see docs/clusters.md).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
CLUSTER_NAME="${CLUSTER_NAME:-appmesh-gateway-demo}"
RELEASE=appmesh-lab-controller
NAMESPACE=appmesh-system
CHART=manifests/charts/appmesh-lab-controller

source "$root/scripts/lib/cluster.sh"
PY="${PYTHON:-$root/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
source "$root/scripts/lib/images.sh"
require docker kind kubectl helm
if ! docker info >/dev/null 2>&1; then
  echo "kind-up.sh: docker is installed but its daemon does not answer (start Docker, or check DOCKER_HOST)" >&2
  exit 1
fi


if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  echo "kind cluster $CLUSTER_NAME exists; reusing it"
else
  step kind create cluster --name "$CLUSTER_NAME" --config manifests/kind/cluster.yaml --wait 120s
fi
step kubectl config use-context "kind-$CLUSTER_NAME"
# the cluster's IP family (kind's networking.ipFamily: ipv4 unless the config says ipv6 or dual,
# where IPv4 comes first), as the API server's own Service has it: the chart's ipFamily
ip_family="$(chart_ip_family "$(kubectl get service kubernetes --namespace default \
  -o 'jsonpath={.spec.ipFamilies[0]}')" "the cluster's kubernetes Service (spec.ipFamilies)")"
echo "kind cluster $CLUSTER_NAME: IP family $ip_family"
step scripts/build-images.sh --kind "$CLUSTER_NAME"
# the images' content tags: after a code change the pod template changes, so the pods roll
platform="$(image_platform --kind)"
controller_tag="$(image_tag appmesh-lab/controller "$platform")"
proxy_init_tag="$(image_tag appmesh-lab/proxy-init "$platform")"
step helm upgrade --install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --create-namespace \
  --set "images.controller.tag=$controller_tag" \
  --set "images.proxyInit.tag=$proxy_init_tag" --set "ipFamily=$ip_family" --wait --timeout 5m
step kubectl -n "$NAMESPACE" rollout status "deployment/$RELEASE" --timeout=180s
echo "kind cluster $CLUSTER_NAME is ready: controller $RELEASE in $NAMESPACE"
