# Sourced by build-images.sh, kind-up.sh and eks-up.sh: the kit's images, their content tags and
# the platform they are built for. Not a script of its own. Needs $PY (a Python with the kit).

VERSION="${TAG:-0.1.0}"  # the tag the manifests use (appmesh-lab/sample-app:0.1.0)
# image name : Dockerfile : build context
IMAGES=(
  "appmesh-lab/controller:lab/controller/Dockerfile:."
  "appmesh-lab/proxy-init:lab/controller/proxy_init/Dockerfile:lab/controller/proxy_init"
  "appmesh-lab/sample-app:lab/apps/Dockerfile:."
  "appmesh-lab/grpc-echo:lab/apps/grpc-echo.Dockerfile:."
)

# image_platform MODE: "" (this machine's) for a local build and kind (its node is a container on
# this machine); for EKS the nodes' (PLATFORM, or what manifests/eks/cluster.yaml's instance
# types run: linux/amd64 unless they are Graviton)
image_platform() {
  case "$1" in
    --ecr) echo "${PLATFORM:-$("$PY" -m lab.targets.images platform --eks-config manifests/eks/cluster.yaml)}" ;;
    *) echo "${PLATFORM:-}" ;;
  esac
}

# image_tag NAME PLATFORM: <version>-<hash of the Dockerfile, the platform and what it copies>, so
# a code change gives a new tag and `helm upgrade` rolls the pods
image_tag() {
  local spec name dockerfile context
  for spec in "${IMAGES[@]}"; do
    IFS=: read -r name dockerfile context <<<"$spec"
    if [ "$name" = "$1" ]; then
      "$PY" -m lab.targets.images tag --dockerfile "$dockerfile" --context "$context" --version "$VERSION" \
        --platform "$2"
      return
    fi
  done
  echo "image_tag: no image $1" >&2
  return 1
}
