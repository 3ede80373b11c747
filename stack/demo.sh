#!/usr/bin/env bash
# npm run demo: installs what a fresh machine is missing, then runs the guided tour.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "demo: installing npm packages (npm ci)" >&2
  npm ci --no-audit --no-fund
fi
# ClickHouse (apt) and the Kafka jars (Maven) are installed by "stack up" when missing.
exec node bin/paysentinel.mjs demo "$@"
