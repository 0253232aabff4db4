#!/usr/bin/env bash
# The throughput / latency series of issue 15, with benches/load.rs, for a
# QUIET machine (nothing else building): each row RUNS times (default 3),
# printing per row the median and the spread (min-max) of every figure.
#
#   scripts/bench-series.sh                       # the whole series, 10 s runs
#   SECS=2 RUNS=1 scripts/bench-series.sh         # a quick check that it works (no figures)
#   ROWS="verify-memory verify-rate" scripts/bench-series.sh
#
# Rows (names for ROWS):
#   verify-memory   POST /verify, memory store, C=32, closed loop, SECS s
#   verify-redis    POST /verify, Redis store (private redis-server), C=32, SECS s
#   verify-rate     POST /verify, memory store, fixed 2,000 req/s (open loop, C=32 at most), SECS s: p99
#   settle-memory   POST /settle, l1Confirmations -1 (mempool opted in), memory store, C=32, SECS s
#   settle-redis    the same with the Redis store
#   bf-limiter      POST /verify through the Blockfrost client (devnet API upstream) with
#                   the limiter at 10 req/s, burst 500, C=32, SECS s: refusals (503) are expected
#
# The verify rows cycle a pool of VERIFY_POOL distinct signed payments (a
# verify is read-only, so reusing a payment costs the same; wrk did the same
# with 64 bodies). Settles and the limiter row need one distinct payment per
# request: SETTLE_POOL and BF_POOL are prepared before the clock starts and
# a run that uses its pool up before SECS s is flagged (raise the pool).
# Every run's full output stays in $OUT (default $TARGET/bench-series).
#
# Environment: SECS (10), RUNS (3), ROWS (all), RATE (2000), VERIFY_POOL (4096),
# SETTLE_POOL (SECS x 12000), BF_POOL (SECS x 10000), BIN (a built load binary;
# default: build it with `cargo bench --bench load --no-run`), OUT, ED25519
# (1: after the rows, when verify-memory ran, time one Ed25519 check with
# criterion and print the CPU ratio of point 1; VERIFY_BIN skips its build).
# Every row also reports the host's steal time (a virtual machine's CPU
# taken by other guests): figures from runs with high steal are not comparable.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-10}
RUNS=${RUNS:-3}
RATE=${RATE:-2000}
VERIFY_POOL=${VERIFY_POOL:-4096}
SETTLE_POOL=${SETTLE_POOL:-$((SECS * 12000))}
BF_POOL=${BF_POOL:-$((SECS * 10000))}
ROWS=${ROWS:-verify-memory verify-redis verify-rate settle-memory settle-redis bf-limiter}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$TARGET/bench-series}
mkdir -p "$OUT"
if [ -z "${BIN:-}" ]; then
  cargo bench --bench load --no-run 2>&1 | tail -1
  BIN=$(ls -t "$TARGET"/release/deps/load-* | grep -v '\.d$' | head -1)
fi

args_of() { # the load driver's arguments for a row
  case "$1" in
  verify-memory) echo "--route verify --store memory --concurrency 32 --run-seconds $SECS --cycle --requests $VERIFY_POOL" ;;
  verify-redis) echo "--route verify --store redis --concurrency 32 --run-seconds $SECS --cycle --requests $VERIFY_POOL" ;;
  verify-rate) echo "--route verify --store memory --concurrency 32 --rate $RATE --run-seconds $SECS --cycle --requests $VERIFY_POOL" ;;
  settle-memory) echo "--route settle --store memory --confirmations -1 --concurrency 32 --run-seconds $SECS --requests $SETTLE_POOL" ;;
  settle-redis) echo "--route settle --store redis --confirmations -1 --concurrency 32 --run-seconds $SECS --requests $SETTLE_POOL" ;;
  bf-limiter) echo "--route verify --chain blockfrost --bf-rate 10 --bf-burst 500 --concurrency 32 --warmup 0 --run-seconds $SECS --requests $BF_POOL" ;;
  *) echo "unknown row $1" >&2; return 1 ;;
  esac
}

field() { # field NAME < summary line
  tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'
}

stats() { # "median (min-max)" of the numbers on stdin
  sort -g | awk '{v[NR] = $1} END {
    if (NR == 0) { print "-"; exit }
    m = v[int((NR + 1) / 2)]
    if (NR == 1) printf "%s", m; else printf "%s (%s-%s)", m, v[1], v[NR]
  }'
}

echo "bench-series: SECS=$SECS RUNS=$RUNS binary $BIN; logs in $OUT"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
TABLE="| row | runs ok | req/s | accepted/s | p50 ms | p99 ms | server CPU us/req | redis CPU us/req | host steal % |"
TABLE+=$'\n'"|---|---|---|---|---|---|---|---|---|"
for row in $ROWS; do
  args=$(args_of "$row")
  : >"$OUT/$row.summary"
  ok=0
  for run in $(seq 1 "$RUNS"); do
    log="$OUT/$row.$run.log"
    # shellcheck disable=SC2086 # the arguments are words on purpose
    if "$BIN" --bench $args >"$log" 2>&1; then rc=0; else rc=$?; fi
    line=$(grep '^summary ' "$log" | tail -1 || true)
    if [ -z "$line" ]; then
      echo "$row run $run: no summary (exit $rc); see $log" >&2
      tail -5 "$log" >&2
      continue
    fi
    echo "$line" >>"$OUT/$row.summary"
    # The limiter row refuses requests beyond the quota on purpose (503).
    if [ "$rc" = 0 ] || { [ "$row" = bf-limiter ] && [ "$rc" = 1 ] && ! grep -q 'USED UP' "$log"; }; then
      ok=$((ok + 1))
    else
      echo "$row run $run: exit $rc; see $log" >&2
      grep -E 'USED UP|^  +[0-9]+ ' "$log" | head -5 >&2 || true
    fi
    echo "$row run $run: $(echo "$line" | cut -d' ' -f2-)"
  done
  col() { field "$1" <"$OUT/$row.summary" | { grep -v '^-$' || true; } | stats; }
  TABLE+=$'\n'"| $row | $ok/$RUNS | $(col rps) | $(col accepted_rps) | $(col p50_ms) | $(col p99_ms) | $(col server_us) | $(col redis_us) | $(col steal_pct) |"
done
echo
echo "median (min-max) of $RUNS runs of $SECS s each; load average now $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$TABLE"

# Point 1 of issue 15 compares the server CPU per /verify with one Ed25519
# check measured in the same session (criterion, benches/verify.rs): one strict
# verification from the key's bytes, as any verifier pays it (the service
# itself skips the key's decoding for a key it met recently: cardano::ed25519).
if [ "${ED25519:-1}" = 1 ] && [ -s "$OUT/verify-memory.summary" ]; then
  if [ -z "${VERIFY_BIN:-}" ]; then
    cargo bench --bench verify --no-run 2>&1 | tail -1
    VERIFY_BIN=$(ls -t "$TARGET"/release/deps/verify-* | grep -v '\.d$' | head -1)
  fi
  "$VERIFY_BIN" --bench 'key from bytes' >"$OUT/ed25519.log" 2>&1
  ed=$(awk '/time:/ {v = $4; if ($5 == "ns") v /= 1000; if ($5 == "ms") v *= 1000; print v; exit}' "$OUT/ed25519.log")
  cpu=$(field server_us <"$OUT/verify-memory.summary" | stats | cut -d' ' -f1)
  echo
  echo "one Ed25519 check (criterion, median estimate): $ed us; server CPU per /verify (memory, median): $cpu us;" \
    "ratio $(awk -v c="$cpu" -v e="$ed" 'BEGIN {printf "%.2f", c / e}')"
fi
