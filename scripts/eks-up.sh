#!/usr/bin/env bash
# The `eks` target: an EKS cluster (manifests/eks/cluster.yaml), the kit's images in ECR and its
# controller chart. THIS COSTS MONEY while it runs (docs/clusters.md has the figures); remove
# everything with scripts/eks-down.sh.
#   scripts/eks-up.sh           (CLUSTER_NAME and REGION default to the ClusterConfig's)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
CONFIG=manifests/eks/cluster.yaml
CLUSTER_NAME="${CLUSTER_NAME:-appmesh-gateway-demo}"
REGION="${REGION:-us-west-2}"
RELEASE=appmesh-lab-controller
NAMESPACE=appmesh-system
CHART=manifests/charts/appmesh-lab-controller

source "$root/scripts/lib/cluster.sh"
PY="${PYTHON:-$root/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
source "$root/scripts/lib/images.sh"
require eksctl aws kubectl helm docker
if ! aws sts get-caller-identity >/dev/null 2>&1; then
  echo "eks-up.sh: the aws CLI has no working credentials (aws configure, or AWS_PROFILE)" >&2
  exit 1
fi

if eksctl get cluster --name "$CLUSTER_NAME" --region "$REGION" >/dev/null 2>&1; then
  echo "EKS cluster $CLUSTER_NAME exists in $REGION; reusing it"
else
  config="$CONFIG"
  if [ "$CLUSTER_NAME" != "appmesh-gateway-demo" ] || [ "$REGION" != "us-west-2" ]; then
    config="$(mktemp)"
    sed -e "s/^  name: appmesh-gateway-demo$/  name: $CLUSTER_NAME/" -e "s/^  region: us-west-2$/  region: $REGION/" "$CONFIG" >"$config"
  fi
  step eksctl create cluster -f "$config"
fi
step aws eks update-kubeconfig --name "$CLUSTER_NAME" --region "$REGION"
# the cluster's IP family (the ClusterConfig's kubernetesNetworkConfig.ipFamily, IPv4 unless it
# says IPv6), read back from EKS so that a reused cluster counts too: the chart's ipFamily
ip_family="$(chart_ip_family "$(aws eks describe-cluster --name "$CLUSTER_NAME" --region "$REGION" \
  --query cluster.kubernetesNetworkConfig.ipFamily --output text)" "aws eks describe-cluster")"
echo "EKS cluster $CLUSTER_NAME: IP family $ip_family"
registry="$(scripts/build-images.sh --ecr "$REGION" | tee /dev/stderr | tail -n 1)"
platform="$(image_platform --ecr)"  # the images' content tags (the pods roll after a code change)
controller_tag="$(image_tag appmesh-lab/controller "$platform")"
proxy_init_tag="$(image_tag appmesh-lab/proxy-init "$platform")"
step helm upgrade --install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --create-namespace \
  --set "images.controller.repository=$registry/appmesh-lab/controller" \
  --set "images.controller.tag=$controller_tag" \
  --set "images.proxyInit.repository=$registry/appmesh-lab/proxy-init" \
  --set "images.proxyInit.tag=$proxy_init_tag" \
  --set "region=$REGION" --set "ipFamily=$ip_family" --wait --timeout 10m
step kubectl -n "$NAMESPACE" rollout status "deployment/$RELEASE" --timeout=300s
echo "EKS cluster $CLUSTER_NAME is ready; sample app image: $registry/appmesh-lab/sample-app:0.1.0"
echo "REMEMBER: scripts/eks-down.sh removes the cluster, its load balancers and the ECR repositories"
