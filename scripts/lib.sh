# Shared helpers for Palisade's scripts. Source it; it defines no side effects beyond variables.

# Where heavy, versioned builds live: outside the repo, so a fresh clone (and CI) reuses them.
export PALISADE_CACHE="${PALISADE_CACHE:-$HOME/.cache/palisade}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PALISADE_CACHE/cargo-target}"
PALISADE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PALISADE_ROOT

# phase NAME: prints a timestamped banner and remembers when the phase began.
_phase_name=""
_phase_start=0
phase() {
  phase_end
  _phase_name="$1"
  _phase_start=$(date +%s)
  printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$_phase_name"
}

# phase_end: prints how long the current phase took (called by the next `phase` and at exit).
phase_end() {
  if [ -n "$_phase_name" ]; then
    printf '<== %s took %ss\n' "$_phase_name" "$(( $(date +%s) - _phase_start ))"
    _phase_name=""
  fi
}

# Load the local cluster's environment (KUBECONFIG and the matching kubectl on PATH).
cluster_env() {
  eval "$("$PALISADE_ROOT/e2e/cluster/env")"
}
