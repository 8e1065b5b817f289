# Shared by up/down/status/env: where the cluster lives and which binaries it runs.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/versions.sh"
CACHE="${PALISADE_CACHE:-$HOME/.cache/palisade}"
STATE="${PALISADE_CLUSTER_DIR:-$CACHE/cluster}"
K8S_BIN="$CACHE/bin/k8s-$K8S_VERSION"
ETCD_BIN="$CACHE/bin/etcd-$ETCD_VERSION"
KWOK_BIN="$CACHE/bin/kwok-$KWOK_VERSION"
HELM_BIN="$CACHE/bin/helm-$HELM_VERSION"
APISERVER_PORT="${PALISADE_APISERVER_PORT:-6443}"
ETCD_PORT="${PALISADE_ETCD_PORT:-23790}"
KUBECONFIG_FILE="$STATE/kubeconfig"
KUBECTL="$K8S_BIN/kubectl"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

log() { printf '[%s] cluster: %s\n' "$(date +%H:%M:%S)" "$*"; }

# running NAME: whether the component's recorded process is alive.
running() {
  local pidfile="$STATE/pids/$1"
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

apiserver_ready() {
  [ -f "$KUBECONFIG_FILE" ] && "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz >/dev/null 2>&1
}
