# Sourced by the cluster scripts (kind-up/-down, eks-up/-down): the prerequisite check and the
# echoed step. Not a script of its own.

# where to get each tool, said when it is missing
how_to_get() {
  case "$1" in
    docker)  echo "https://docs.docker.com/engine/install/" ;;
    kind)    echo "go install sigs.k8s.io/kind@latest, or https://kind.sigs.k8s.io/docs/user/quick-start/#installation" ;;
    kubectl) echo "https://kubernetes.io/docs/tasks/tools/" ;;
    helm)    echo "https://helm.sh/docs/intro/install/" ;;
    eksctl)  echo "https://eksctl.io/installation/" ;;
    aws)     echo "pip install awscli, or https://aws.amazon.com/cli/" ;;
    *)       echo "install it and put it on PATH" ;;
  esac
}

# require TOOL...: exit 1, naming every missing tool and where to get it, unless all are on PATH
require() {
  local missing=() tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool: $(how_to_get "$tool")")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "$(basename "$0"): missing prerequisites:" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 1
  fi
}

# step CMD...: print the command as a user would type it, then run it
step() { echo "+ $*"; "$@"; }
