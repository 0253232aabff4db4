#!/usr/bin/env bash
# Docker smoke test: the real docker/Dockerfile and docker-compose.yml,
# built and run unchanged, the way RUNBOOK.md tells operators to.
#
#  1. tools: docker.io, docker-compose, debootstrap (apt, when missing);
#     dockerd started in the background when none runs;
#  2. base images: the real ones if present, else stand-ins built from
#     Debian packages under the same tags (scripts/docker-standins.sh);
#  3. the image, built; its size reported;
#  4. a devnet (the same image, `devnet` profile) as the chain backend, then
#     the operator command: docker compose --profile production up -d;
#  5. both health checks healthy; the process is PID 1 and not root;
#  6. a paid request through the facilitator container (buyer and resource
#     server in a one-off container on the compose network);
#  7. x402-redis-prod restarted: the settlement journal survives (AOF), the
#     facilitator reconnects without a restart and serves a second payment;
#  8. compose stop with a settle in flight: it completes, the facilitator
#     exits 0 within its grace period;
#  9. everything torn down (containers, network, volumes).
#
# Only loopback and the compose network are contacted (plus Debian's mirror
# while stand-in images are built the first time). Stand-in images and
# Docker's layer cache are kept between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

T0=$(date +%s)
say() { echo "[smoke +$(($(date +%s) - T0))s] $*"; }

# --- 1. tools and engine -----------------------------------------------------
apt_updated=0
need_pkg() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v dockerd >/dev/null 2>&1 || need_pkg docker.io
command -v docker >/dev/null 2>&1 || need_pkg docker.io
command -v docker-compose >/dev/null 2>&1 || need_pkg docker-compose
command -v debootstrap >/dev/null 2>&1 || need_pkg debootstrap
command -v curl >/dev/null 2>&1 || need_pkg curl

if ! docker info >/dev/null 2>&1; then
  log="$HOME/.cache/x402-facilitator/dockerd.log"
  mkdir -p "$(dirname "$log")"
  say "starting dockerd (log: $log)"
  setsid nohup dockerd >"$log" 2>&1 </dev/null &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 "$log" >&2; echo "dockerd did not start" >&2; exit 1; }
fi

# --- 2. base images ----------------------------------------------------------
bash scripts/docker-standins.sh

# --- 3. the image --------------------------------------------------------------
say "building x402-facilitator:latest (docker/Dockerfile)"
tb=$(date +%s)
DOCKER_BUILDKIT=0 docker build --pull=false -q -f docker/Dockerfile -t x402-facilitator:latest . >/dev/null 2> >(grep -v -e DEPRECATED -e 'legacy builder' -e BuildKit -e '^ *environment-variable' -e '^$' >&2)
size=$(docker image inspect -f '{{.Size}}' x402-facilitator:latest)
say "image built in $(($(date +%s) - tb))s; runtime image size $((size / 1000000)) MB ($size bytes)"

# --- 4. compose up -------------------------------------------------------------
# The settings an operator puts in the environment (RUNBOOK.md, quick start),
# with the devnet container as the Blockfrost-compatible chain backend.
REDIS_PASSWORD="smoke-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
ADMIN_KEY="smoke-admin-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
export REDIS_PASSWORD
# Production refuses the devnet network: the devnet container stands in for
# preprod (it announces network magic 1, which the facilitator checks).
export X402_CHAIN__NETWORK=preprod
export X402_CHAIN__BLOCKFROST__URL=http://x402-devnet:3000/devnet/api/v0
export X402_ADMIN__API_KEY="$ADMIN_KEY"
export COMPOSE_PROJECT_NAME=x402-smoke
# The development Redis (no profile: it starts too) on a free port, since
# this machine may run its own Redis on 6379.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
X402_DEV_REDIS_PORT=$(free_port)
export X402_DEV_REDIS_PORT
# The facilitator on the host's port 3000, as operators run it, unless
# something else holds it here.
if python3 -c 'import socket; socket.socket().bind(("0.0.0.0", 3000))' 2>/dev/null \
  && python3 -c 'import socket; socket.socket().bind(("127.0.0.1", 3000))' 2>/dev/null; then
  X402_HOST_PORT=3000
else
  X402_HOST_PORT=$(free_port)
  say "port 3000 is taken on this host: publishing the facilitator on $X402_HOST_PORT"
fi
export X402_HOST_PORT
BASE="http://127.0.0.1:$X402_HOST_PORT"
# docker compose (v2 plugin) when installed, else docker-compose (1.29).
if docker compose version >/dev/null 2>&1; then C=(docker compose); else C=(docker-compose); fi
ALL=("${C[@]}" --profile production --profile devnet)

teardown() { "${ALL[@]}" down -v --remove-orphans >/dev/null 2>&1 || true; }
dump() {
  echo "---- docker ps -a" >&2; docker ps -a >&2 || true
  for c in x402-facilitator x402-redis-prod x402-devnet; do
    echo "---- logs $c (last 40)" >&2; docker logs --tail 40 "$c" >&2 2>&1 || true
  done
}
fail() { echo "[smoke] FAIL: $*" >&2; dump; teardown; exit 1; }
trap 'rc=$?; if [ $rc != 0 ]; then dump; fi; teardown' EXIT

teardown   # leftovers of an interrupted run

health_of() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1" 2>/dev/null || echo missing; }
wait_healthy() {
  local c=$1 limit=${2:-120} t=0
  until [ "$(health_of "$c")" = healthy ]; do
    t=$((t + 1)); [ $t -le "$limit" ] || fail "$c not healthy after ${limit}s (status $(health_of "$c"))"
    sleep 1
  done
}

say "chain backend: ${C[*]} --profile devnet up -d x402-devnet"
"${C[@]}" --profile devnet up -d --no-build x402-devnet >/dev/null 2>&1 || fail "devnet did not start"
wait_healthy x402-devnet
say "operator command: ${C[*]} --profile production up -d"
"${C[@]}" --profile production up -d --no-build 2>&1 | sed 's/^/    /'

# --- 5. health and identity ------------------------------------------------------
wait_healthy x402-redis-prod
wait_healthy x402-facilitator
say "health checks: x402-redis-prod healthy, x402-facilitator healthy"
health=$(curl -fsS $BASE/health) || fail "/health unreachable on the published port"
echo "$health" | grep -q '"status":"healthy"' || fail "/health: $health"
curl -fsS -o /dev/null $BASE/ready || fail "/ready not 200"
uid=$(docker exec x402-facilitator id -u)
[ "$uid" != 0 ] || fail "the facilitator runs as root"
pid1=$(docker exec x402-facilitator cat /proc/1/cmdline | tr '\0' ' ')
case "$pid1" in x402-facilitator*) ;; *) fail "PID 1 is '$pid1', not the binary" ;; esac
say "process: uid $uid (non-root), PID 1 = $pid1"

# --- 6. a paid request ---------------------------------------------------------------
pay() {
  "${C[@]}" --profile devnet run --rm --no-deps -T x402-devnet \
    demo --facilitator http://x402-facilitator:3000 --devnet http://x402-devnet:3000 2>&1
}
settled_tx() { sed -n 's/.*settled: transaction \([0-9a-f]\{64\}\) .*/\1/p' | head -1; }
journal_state() { docker exec x402-redis-prod redis-cli --no-auth-warning HGET "x402:settle:$1" state | tr -d '\r'; }

out=$(pay) || { echo "$out" | sed 's/^/    /'; fail "paid request failed"; }
echo "$out" | sed 's/^/    /'
tx1=$(echo "$out" | settled_tx)
[ -n "$tx1" ] || fail "no settled transaction in the demo output"
[ "$(journal_state "$tx1")" = confirmed ] || fail "journal state of $tx1: $(journal_state "$tx1")"
admin=$(curl -fsS -H "x-admin-key: $ADMIN_KEY" "$BASE/admin/settlements/$tx1") || fail "admin lookup"
echo "$admin" | grep -q '"state":"confirmed"' || fail "admin record: $admin"
say "paid request settled: $tx1 confirmed in the Redis journal"

# --- 7. Redis restart ------------------------------------------------------------------
started=$(docker inspect -f '{{.State.StartedAt}} {{.RestartCount}}' x402-facilitator)
say "restarting x402-redis-prod"
docker restart x402-redis-prod >/dev/null
wait_healthy x402-redis-prod
t=0
until curl -fsS -o /dev/null $BASE/ready; do
  t=$((t + 1)); [ $t -le 60 ] || fail "/ready did not come back after the Redis restart"
  sleep 1
done
[ "$(journal_state "$tx1")" = confirmed ] || fail "journal lost $tx1 across the Redis restart"
[ "$(docker inspect -f '{{.State.StartedAt}} {{.RestartCount}}' x402-facilitator)" = "$started" ] \
  || fail "the facilitator was restarted"
out=$(pay) || { echo "$out" | sed 's/^/    /'; fail "paid request after the Redis restart failed"; }
tx2=$(echo "$out" | settled_tx)
[ -n "$tx2" ] && [ "$(journal_state "$tx2")" = confirmed ] || fail "second payment not in the journal"
say "after the Redis restart: $tx1 still confirmed (AOF), facilitator not restarted ($started), second payment $tx2 confirmed"

# --- 8. stop: drain and exit 0 ------------------------------------------------------------
# A settle is in flight (6 confirmations at 500 ms blocks, about 3 s) when
# `compose stop` sends SIGTERM: it must complete, then the process exit 0.
grace=30
verifies() { docker logs x402-facilitator 2>&1 | grep -c '"route":"/verify"' || true; }
before=$(verifies)
inflight_out=$(mktemp)
"${C[@]}" --profile devnet run --rm --no-deps -T x402-devnet \
  demo --facilitator http://x402-facilitator:3000 --devnet http://x402-devnet:3000 --confirmations 6 \
  >"$inflight_out" 2>&1 &
inflight=$!
t=0
until [ "$(verifies)" -gt "$before" ]; do
  t=$((t + 1)); [ $t -le 600 ] || fail "the in-flight payment never reached /verify"
  sleep 0.1
done
sleep 0.5   # the resource server calls /settle right after /verify
ts=$(date +%s%N)
"${C[@]}" --profile production stop x402-facilitator 2>&1 | sed 's/^/    /'
elapsed_ms=$((($(date +%s%N) - ts) / 1000000))
wait "$inflight" || { sed 's/^/    /' "$inflight_out"; fail "the request in flight during stop failed"; }
grep -q 'settled: transaction' "$inflight_out" || { cat "$inflight_out"; fail "in-flight payment not settled"; }
rm -f "$inflight_out"
code=$(docker inspect -f '{{.State.ExitCode}}' x402-facilitator)
logs=$(docker logs x402-facilitator 2>&1)
[ "$code" = 0 ] || fail "the facilitator exited $code"
[ "$elapsed_ms" -lt $((grace * 1000)) ] || fail "stop took ${elapsed_ms} ms (grace ${grace}s)"
echo "$logs" | grep -q '"signal":"SIGTERM"' || fail "no SIGTERM line in the logs"
echo "$logs" | grep -q 'shutdown complete' || fail "no shutdown-complete line in the logs"
# The settle's access line comes after the drain began: it was served while draining.
drain_line=$(echo "$logs" | grep -n 'draining in-flight requests' | head -1 | cut -d: -f1)
settle_line=$(echo "$logs" | grep -n '"route":"/settle"' | grep '"statusCode":200' | tail -1 | cut -d: -f1)
[ -n "$drain_line" ] && [ -n "$settle_line" ] && [ "$settle_line" -gt "$drain_line" ] \
  || fail "no /settle completed after the drain began (drain line ${drain_line:-none}, settle line ${settle_line:-none})"
say "compose stop: SIGTERM, the in-flight settle completed (200) while draining, exit code 0 after ${elapsed_ms} ms (grace ${grace}s)"

# --- 9. teardown --------------------------------------------------------------------------
trap - EXIT
teardown
say "PASS (torn down; stand-in images and layer cache kept)"
