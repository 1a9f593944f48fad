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

# chart_ip_family FAMILY WHERE: the chart's ipFamily value (IPv4 or IPv6) for the IP family the
# cluster reported (EKS: ipv4 or ipv6; Kubernetes: IPv4 or IPv6); exit 1, saying where it came
# from, for anything else. The controller's Mesh webhook sets meshServiceDiscovery.ipPreference
# from it (IPv6_ONLY on an IPv6 cluster), as the AWS controller did.
chart_ip_family() {
  case "$1" in
    ipv4|IPv4) echo IPv4 ;;
    ipv6|IPv6) echo IPv6 ;;
    *) echo "$(basename "$0"): $2 answered IP family '$1'; expected ipv4 or ipv6" >&2; return 1 ;;
  esac
}
