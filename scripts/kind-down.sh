#!/usr/bin/env bash
# Remove what scripts/kind-up.sh made: the kind cluster (and with it everything in it), and the
# images it built (KEEP_IMAGES=1 keeps them for a faster next kind-up).
set -euo pipefail
CLUSTER_NAME="${CLUSTER_NAME:-appmesh-gateway-demo}"
TAG="${TAG:-0.1.0}"
source "$(dirname "${BASH_SOURCE[0]}")/lib/cluster.sh"
require kind docker
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  step kind delete cluster --name "$CLUSTER_NAME"
else
  echo "no kind cluster named $CLUSTER_NAME"
fi
if [ "${KEEP_IMAGES:-0}" != "1" ]; then
  # every tag build-images.sh gave them: $TAG and the content tags ($TAG-<hash>)
  for name in appmesh-lab/controller appmesh-lab/proxy-init appmesh-lab/sample-app appmesh-lab/grpc-echo; do
    for ref in $(docker image ls --format '{{.Repository}}:{{.Tag}}' "$name"); do
      case "$ref" in
        "$name:$TAG"|"$name:$TAG-"*) step docker image rm "$ref" ;;
      esac
    done
  done
fi
echo "kind target removed"
