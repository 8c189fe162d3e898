#!/usr/bin/env bash
# Does a sign-in tell whether the identifier exists? Median time of sign-ins
# with an unknown identifier against sign-ins with a known one and a wrong
# password, alternating, on the release build with the default Argon2id cost.
# Usage: bench/timing.sh [rounds]   (prints Markdown)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-61}
PORT=${BENCH_PORT:-18191}
BASE="http://127.0.0.1:$PORT"
cargo build --release -p sesame >&2
WORK=$(mktemp -d)
# Locks would answer early and rate limits would refuse: both off, so that
# every attempt runs the whole path.
SESAME_LOG_LEVEL=warn SESAME_LOCKOUT__MAX_FAILURES=0 \
    SESAME_RATE_LIMITS__PER_IDENTIFIER__LIMIT=100000000 SESAME_RATE_LIMITS__PER_IP__LIMIT=100000000 \
    target/release/sesame serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do curl -sf "$BASE/health/live" >/dev/null && break; sleep 0.1; done
curl -sf -XPOST "$BASE/v1/registrations" -H 'content-type: application/json' \
    -d '{"login":{"type":"email","identifier":"known@bench.example"},"password":"the right passphrase 1"}' >/dev/null

attempt() { # identifier -> seconds
    curl -s -o /dev/null -w '%{time_total}\n' -XPOST "$BASE/v1/sessions" -H 'content-type: application/json' \
        -d "{\"login\":{\"type\":\"email\",\"identifier\":\"$1\"},\"password\":\"a wrong passphrase 2\"}"
}
attempt known@bench.example >/dev/null
attempt warmup@bench.example >/dev/null
: >"$WORK/known"; : >"$WORK/unknown"
for i in $(seq "$ROUNDS"); do
    attempt known@bench.example >>"$WORK/known"
    attempt "nobody-$i@bench.example" >>"$WORK/unknown"
done
median() { sort -n "$1" | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)] * 1000}'; }
K=$(median "$WORK/known")
U=$(median "$WORK/unknown")
echo "Date: $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -sr); $ROUNDS alternating pairs"
echo
echo "| sign-in | median ms |"
echo "|---|---|"
echo "| known identifier, wrong password | $K |"
echo "| unknown identifier | $U |"
echo
awk -v k="$K" -v u="$U" 'BEGIN { d = (u - k) / k * 100; printf "Difference: %+.1f %% of the wrong-password median.\n", d }'
