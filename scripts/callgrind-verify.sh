#!/usr/bin/env bash
# Instructions the server executes per POST /verify, counted by callgrind
# (deterministic: no wall clock involved, so a busy machine does not move it).
#
#   scripts/callgrind-verify.sh [N_LOW] [N_HIGH] [extra args for the bench, e.g. --store redis]
#
# Builds benches/verify_callgrind.rs (bench profile), runs it under
# `valgrind --tool=callgrind --separate-threads=yes` twice, with N_LOW and
# N_HIGH measured requests (defaults 20 and 220), and prints
#   (server-thread instructions at N_HIGH - at N_LOW) / (N_HIGH - N_LOW).
# The server is the one tokio worker thread (valgrind thread id > 1); the
# main thread (id 1) prepares the payments and is the client, so it is left
# out. The callgrind files stay in $OUT (default target/callgrind-verify) for
#   callgrind_annotate --inclusive=yes $OUT/high.<pid>-02 | head -60
set -euo pipefail
cd "$(dirname "$0")/.."
LOW=${1:-20}
HIGH=${2:-220}
shift 2 2>/dev/null || shift $#
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$TARGET/callgrind-verify}
mkdir -p "$OUT"
if [ -z "${BIN:-}" ]; then # BIN=path skips the build (e.g. to measure a saved binary)
  cargo bench --bench verify_callgrind --no-run 2>&1 | tail -1
  BIN=$(ls -t "$TARGET"/release/deps/verify_callgrind-* | grep -v '\.d$' | head -1)
fi

server_ir() { # sum of the totals of every thread but the main one
  local prefix=$1 sum=0 f n
  for f in "$prefix".*-*; do
    case "$f" in *-01) continue ;; esac
    n=$(awk '/^(summary|totals):/ {print $2; exit}' "$f")
    sum=$((sum + ${n:-0}))
  done
  echo "$sum"
}

for run in low high; do
  n=$LOW; [ "$run" = high ] && n=$HIGH
  rm -f "$OUT/$run".*
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$OUT/$run.%p" \
    "$BIN" --requests "$n" "$@" 2>"$OUT/$run.valgrind.log"
done
LOW_IR=$(server_ir "$OUT/low")
HIGH_IR=$(server_ir "$OUT/high")
echo "server instructions: N=$LOW: $LOW_IR, N=$HIGH: $HIGH_IR"
echo "instructions per /verify: $(( (HIGH_IR - LOW_IR) / (HIGH - LOW) ))"
