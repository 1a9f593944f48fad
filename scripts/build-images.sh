#!/usr/bin/env bash
# Build the kit's container images, and load them into kind or push them to ECR.
#
#   scripts/build-images.sh                  build appmesh-lab/{controller,proxy-init,sample-app,grpc-echo}:0.1.0
#   scripts/build-images.sh --kind NAME      ... and `kind load docker-image` them into cluster NAME
#   scripts/build-images.sh --ecr REGION     ... and push them to ECR in REGION (repositories are
#                                            created with boto3); the last line printed is the registry
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PY="${PYTHON:-$root/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
TAG="${TAG:-0.1.0}"
# image name : Dockerfile : build context
IMAGES=(
  "appmesh-lab/controller:lab/controller/Dockerfile:."
  "appmesh-lab/proxy-init:lab/controller/proxy_init/Dockerfile:lab/controller/proxy_init"
  "appmesh-lab/sample-app:lab/apps/Dockerfile:."
  "appmesh-lab/grpc-echo:lab/apps/grpc-echo.Dockerfile:."
)

missing=()
command -v docker >/dev/null 2>&1 || missing+=("docker (https://docs.docker.com/engine/install/)")
case "${1:-}" in
  --kind) command -v kind >/dev/null 2>&1 || missing+=("kind (go install sigs.k8s.io/kind@latest, or https://kind.sigs.k8s.io/docs/user/quick-start/)") ;;
  --ecr) command -v aws >/dev/null 2>&1 || missing+=("aws (pip install awscli, or https://aws.amazon.com/cli/)") ;;
esac
if [ ${#missing[@]} -gt 0 ]; then
  echo "build-images.sh: missing: ${missing[*]}" >&2
  exit 1
fi
if ! docker info >/dev/null 2>&1; then
  echo "build-images.sh: docker is installed but its daemon does not answer (start Docker, or check DOCKER_HOST)" >&2
  exit 1
fi

for spec in "${IMAGES[@]}"; do
  IFS=: read -r name dockerfile context <<<"$spec"
  echo "+ docker build -f $dockerfile -t $name:$TAG $context"
  docker build -f "$dockerfile" -t "$name:$TAG" "$context"
done

case "${1:-}" in
  --kind)
    cluster="${2:?usage: build-images.sh --kind CLUSTER_NAME}"
    for spec in "${IMAGES[@]}"; do
      name="${spec%%:*}"
      echo "+ kind load docker-image $name:$TAG --name $cluster"
      kind load docker-image "$name:$TAG" --name "$cluster"
    done
    ;;
  --ecr)
    region="${2:?usage: build-images.sh --ecr REGION}"
    repos=()
    for spec in "${IMAGES[@]}"; do repos+=("${spec%%:*}"); done
    echo "+ $PY -m lab.targets.cluster ecr-ensure --region $region ${repos[*]}"
    registry="$("$PY" -m lab.targets.cluster ecr-ensure --region "$region" "${repos[@]}")"
    echo "+ aws ecr get-login-password --region $region | docker login --username AWS --password-stdin $registry"
    aws ecr get-login-password --region "$region" | docker login --username AWS --password-stdin "$registry"
    for name in "${repos[@]}"; do
      echo "+ docker tag $name:$TAG $registry/$name:$TAG && docker push $registry/$name:$TAG"
      docker tag "$name:$TAG" "$registry/$name:$TAG"
      docker push "$registry/$name:$TAG"
    done
    echo "$registry"
    ;;
  "") ;;
  *) echo "build-images.sh: unknown option $1 (use --kind NAME or --ecr REGION)" >&2; exit 2 ;;
esac
