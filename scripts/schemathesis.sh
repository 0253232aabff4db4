#!/usr/bin/env bash
# Bad-input sweep generated from openapi.yaml: schemathesis sends valid and
# invalid requests to every documented operation of the real service and
# fails on any 5xx answer; the service must also still be alive at the end.
#
# Two passes against one service instance:
#   1. every operation, without credentials (the /admin routes answer 401);
#   2. the /admin operations with the operator key, so their handlers run.
# The passes are split because pass 2 may pause settlement, after which
# /settle rightly answers 503 `settlement_paused`.
#
# Environment (all optional):
#   ST_MAX_EXAMPLES  test cases per operation in the fuzzing phase (default 150)
#   ST_SEED          random seed (default fixed, so CI runs are repeatable)
#   ST_VENV          where the pinned schemathesis lives (default .venv-schemathesis)
#   X402_BIN         the service binary (default: cargo build, then target/debug)
# Exit status: 0 when both passes find nothing and the service survived.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

ST_VERSION=4.32.5
venv="${ST_VENV:-$root/.venv-schemathesis}"
max_examples="${ST_MAX_EXAMPLES:-150}"
seed="${ST_SEED:-402}"

if ! "$venv/bin/st" --version 2>/dev/null | grep -qF "$ST_VERSION"; then
  echo "== installing schemathesis $ST_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

bin="${X402_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --quiet --bin x402-facilitator
  bin="${CARGO_TARGET_DIR:-$root/target}/debug/x402-facilitator"
fi
[ -x "$bin" ] || { echo "service binary not found: $bin" >&2; exit 1; }
bin=$(realpath "$bin")

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
admin_key="schemathesis-admin-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
work=$(mktemp -d)
log="$work/service.log"

# Only this script's settings reach the service: no config file (it runs in
# an empty directory) and no X402_* variables from the caller.
for v in $(compgen -e); do
  case "$v" in X402_* | MAINNET) unset "$v" ;; esac
done

pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

(
  cd "$work"
  exec env \
    X402_SERVER__PORT="$port" \
    X402_RATE_LIMIT__ENABLED=false \
    X402_ADMIN__API_KEY="$admin_key" \
    X402_LOGGING__LEVEL=warn \
    "$bin" serve
) >"$log" 2>&1 &
pid=$!

ready=0
for _ in $(seq 1 300); do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "the service exited during startup:" >&2
    cat "$log" >&2
    exit 1
  fi
  if curl -fsS "$base/ready" >/dev/null 2>&1; then
    ready=1
    break
  fi
  sleep 0.1
done
[ "$ready" = 1 ] || { echo "the service was not ready within 30 s" >&2; tail -50 "$log" >&2; exit 1; }
echo "== service pid $pid ready on $base"

st_common=(
  run "$root/openapi.yaml"
  --url "$base"
  --checks not_a_server_error
  --max-examples "$max_examples"
  --seed "$seed"
  --workers 1
  --request-timeout 30
  --generation-database none
  --no-color
)

export SCHEMATHESIS_HOOKS="$root/scripts/schemathesis_hooks.py"

status=0
echo "== schemathesis pass 1: every operation, no credentials"
"$venv/bin/st" "${st_common[@]}" || status=1
echo "== schemathesis pass 2: /admin with the operator key"
"$venv/bin/st" "${st_common[@]}" --include-path-regex '^/admin/' -H "X-Admin-Key: $admin_key" || status=1

if ! kill -0 "$pid" 2>/dev/null; then
  echo "the service died during the sweep:" >&2
  tail -50 "$log" >&2
  exit 1
fi
if ! curl -fsS "$base/health" >/dev/null; then
  echo "the service no longer answers /health after the sweep" >&2
  status=1
fi
if grep -q '"level":50' "$log"; then
  echo "== errors the service logged during the sweep:"
  grep '"level":50' "$log" | tail -20
fi
if [ "$status" = 0 ]; then
  echo "== schemathesis: no server error, service alive"
else
  echo "== schemathesis: FAILED" >&2
fi
exit "$status"
