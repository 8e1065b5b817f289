#!/usr/bin/env bash
# Operator scale benchmark on the local control plane (KWOK nodes): 1,000 AuthProviders and
# 3,000 OAuthClients by default, one release-built operator watching them. Prints a Markdown
# report (time until all Ready, the API server's write floor and the ratio, requests and writes
# per object, peak RSS and CPU, and the writes of a full resync with nothing changed).
# Run it alone: it loads the shared cluster for several minutes. See bench/README.md.
#   SCALE_PROVIDERS, SCALE_CLIENTS, SCALE_NAMESPACES, SCALE_REPLICAS, SCALE_OPERATOR_CONCURRENCY,
#   SCALE_WATCH_NAMESPACES=1 (watch only the run's namespaces, not all),
#   SCALE_KEEP=1 (leave the objects), SCALE_OUT=<file> (also write the report there)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
source "$root/scripts/lib.sh"
# Release builds in their own target directory, so the test builds stay warm.
export CARGO_TARGET_DIR="$PALISADE_CACHE/bench-target"

"$root/e2e/cluster/up" >/dev/null
cluster_env
cargo build --release --locked -q -p palisade-operator -p palisade-e2e --bin palisade-operator --bin scale-bench
out=${SCALE_OUT:-/dev/null}
"$CARGO_TARGET_DIR/release/scale-bench" | tee "$out"
