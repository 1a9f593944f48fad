#!/usr/bin/env bash
# Build the kit's container images, and load them into kind or push them to ECR.
#
#   scripts/build-images.sh                  build appmesh-lab/{controller,proxy-init,sample-app,grpc-echo}
#   scripts/build-images.sh --kind NAME      ... and load them into kind cluster NAME
#   scripts/build-images.sh --ecr REGION     ... for the EKS nodes' platform (linux/amd64 unless
#                                            manifests/eks/cluster.yaml says Graviton; PLATFORM=...
#                                            overrides), and push them to ECR in REGION (repositories
#                                            are created with boto3); the last line printed is the registry
#
# Every image gets two tags: 0.1.0 (what the manifests name) and 0.1.0-<content hash> (what the
# chart is given: a code change is a new tag, so `helm upgrade` rolls the controller's pods).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
PY="${PYTHON:-$root/.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
source "$root/scripts/lib/images.sh"

missing=()
command -v docker >/dev/null 2>&1 || missing+=("docker (https://docs.docker.com/engine/install/)")
case "${1:-}" in
  --kind) command -v kind >/dev/null 2>&1 || missing+=("kind (go install sigs.k8s.io/kind@latest, or https://kind.sigs.k8s.io/docs/user/quick-start/)") ;;
  --ecr) command -v aws >/dev/null 2>&1 || missing+=("aws (pip install awscli, or https://aws.amazon.com/cli/)") ;;
esac
if [ "${1:-}" = "--ecr" ] && command -v docker >/dev/null 2>&1 && ! docker buildx version >/dev/null 2>&1; then
  missing+=("docker buildx (builds for the EKS nodes' platform; https://docs.docker.com/build/install-buildx/)")
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "build-images.sh: missing: ${missing[*]}" >&2
  exit 1
fi
if ! docker info >/dev/null 2>&1; then
  echo "build-images.sh: docker is installed but its daemon does not answer (start Docker, or check DOCKER_HOST)" >&2
  exit 1
fi

platform="$(image_platform "${1:-}")"
tags=()
for spec in "${IMAGES[@]}"; do
  IFS=: read -r name dockerfile context <<<"$spec"
  tag="$(image_tag "$name" "$platform")"
  tags+=("$tag")
  if [ -n "$platform" ]; then
    # buildx: the nodes' platform, not this machine's (an arm64 laptop building for x86 nodes)
    cmd=(docker buildx build --platform "$platform" --load -f "$dockerfile" -t "$name:$VERSION" -t "$name:$tag" "$context")
  else
    cmd=(docker build -f "$dockerfile" -t "$name:$VERSION" -t "$name:$tag" "$context")
  fi
  echo "+ ${cmd[*]}"
  "${cmd[@]}"
done

case "${1:-}" in
  --kind)
    cluster="${2:?usage: build-images.sh --kind CLUSTER_NAME}"
    i=0
    for spec in "${IMAGES[@]}"; do
      name="${spec%%:*}"
      refs=("$name:$VERSION" "$name:${tags[$i]}")
      i=$((i + 1))
      echo "+ kind load docker-image ${refs[*]} --name $cluster"
      if ! kind load docker-image "${refs[@]}" --name "$cluster"; then
        # Docker's containerd image store: kind cannot export the image itself (kind issue
        # #3795); an archive made by `docker save` loads either way
        archive="$(mktemp)"
        echo "+ docker save -o $archive ${refs[*]} && kind load image-archive $archive --name $cluster"
        docker save -o "$archive" "${refs[@]}"
        kind load image-archive "$archive" --name "$cluster"
        rm -f "$archive"
      fi
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
    i=0
    for name in "${repos[@]}"; do
      for t in "$VERSION" "${tags[$i]}"; do
        echo "+ docker tag $name:$t $registry/$name:$t && docker push $registry/$name:$t"
        docker tag "$name:$t" "$registry/$name:$t"
        docker push "$registry/$name:$t"
      done
      i=$((i + 1))
    done
    echo "$registry"
    ;;
  "") ;;
  *) echo "build-images.sh: unknown option $1 (use --kind NAME or --ecr REGION)" >&2; exit 2 ;;
esac
