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

# prune_test_binaries: keeps only the newest build of each test and binary executable in the
# shared debug target directory. Every change relinks about 30 test executables of some 400 MB
# each, and Cargo keeps the old ones: without this, the cache grows by about 12 GB per changed
# build until the disk is full. Executables of one name built for different targets (a crate's
# library and binary tests) count as one, so the others relink. Libraries are left alone.
prune_test_binaries() {
  local deps="$CARGO_TARGET_DIR/debug/deps"
  [ -d "$deps" ] || return 0
  find "$deps" -maxdepth 1 -type f -executable ! -name '*.so' -printf '%T@ %f\n' |
    sort -rn |
    awk '{ name = $2; sub(/-[0-9a-f]+$/, "", name); if (seen[name]++) print $2 }' |
    while read -r old; do rm -f "$deps/$old"; done
}
