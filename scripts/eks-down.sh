#!/usr/bin/env bash
# Remove everything scripts/eks-up.sh (and the lessons) made on AWS, in an order that leaves
# nothing behind: LoadBalancer Services first (their NLBs are deleted by the cluster, which must
# still run), then the App Mesh resources and the controller, then the cluster, then the ECR
# repositories.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
CLUSTER_NAME="${CLUSTER_NAME:-appmesh-gateway-demo}"
REGION="${REGION:-us-west-2}"
RELEASE=appmesh-lab-controller
NAMESPACE=appmesh-system
PY="${PYTHON:-$root/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"

source "$root/scripts/lib/cluster.sh"
require eksctl aws kubectl helm


if eksctl get cluster --name "$CLUSTER_NAME" --region "$REGION" >/dev/null 2>&1; then
  step aws eks update-kubeconfig --name "$CLUSTER_NAME" --region "$REGION"
  # 1. load balancers: delete every LoadBalancer Service and wait until AWS has removed its NLB
  kubectl get services --all-namespaces \
    -o jsonpath='{range .items[?(@.spec.type=="LoadBalancer")]}{.metadata.namespace}{" "}{.metadata.name}{"\n"}{end}' |
  while read -r ns name; do
    [ -n "$name" ] && step kubectl delete service "$name" --namespace "$ns" --wait=true
  done
  step "$PY" -m lab.targets.cluster elb-wait-gone --cluster "$CLUSTER_NAME" --region "$REGION" --timeout 600
  # 2. App Mesh resources (their finalizers need the controller), then the controller
  # (a failure here is reported and the teardown goes on: deleting the cluster removes them anyway)
  step kubectl delete gatewayroutes,virtualservices,virtualrouters,virtualnodes,virtualgateways --all --all-namespaces --wait=true --timeout=180s ||
    echo "eks-down.sh: warning: App Mesh resources were not all deleted in time; the cluster's deletion removes them" >&2
  step kubectl delete meshes --all --wait=true --timeout=120s ||
    echo "eks-down.sh: warning: meshes were not all deleted in time; the cluster's deletion removes them" >&2
  if helm status "$RELEASE" --namespace "$NAMESPACE" >/dev/null 2>&1; then
    step helm uninstall "$RELEASE" --namespace "$NAMESPACE" --wait
  fi
  # 3. the cluster (node group, control plane, VPC and the CloudFormation stacks eksctl made)
  step eksctl delete cluster --name "$CLUSTER_NAME" --region "$REGION" --wait
  # the kubeconfig entries `aws eks update-kubeconfig` wrote (named after the cluster's ARN)
  for ctx in $(kubectl config get-contexts -o name | grep -E ":cluster/${CLUSTER_NAME}\$" || true); do
    step kubectl config delete-context "$ctx"
    step kubectl config delete-cluster "$ctx"
    step kubectl config unset "users.$ctx"
  done
else
  echo "no EKS cluster $CLUSTER_NAME in $REGION"
fi
# 4. the ECR repositories, with their images, and docker's login to the registry
step "$PY" -m lab.targets.cluster ecr-delete --region "$REGION" appmesh-lab/controller appmesh-lab/proxy-init appmesh-lab/sample-app appmesh-lab/grpc-echo
if command -v docker >/dev/null 2>&1; then
  registry="$("$PY" -m lab.targets.cluster ecr-registry --region "$REGION")"
  step docker logout "$registry"
fi
echo "eks target removed; check the AWS console (EC2 > Load Balancers, CloudFormation) if anything failed above"
