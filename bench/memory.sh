#!/usr/bin/env bash
# Peak resident memory of the release server during a sign-in flood, at two
# Argon2 costs, beside what the hashing workers' memory blocks take
# (workers × cost). Usage: bench/memory.sh [seconds-per-flood]
# Prints a Markdown table for BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
WORKERS=2
CONNS=16
PORT=${BENCH_PORT:-18182}
BASE="http://127.0.0.1:$PORT"
export BENCH_PASSWORD="bench passphrase 7f3a"
export BENCH_EMAIL="bench-0@bench.example"

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >&2; else sudo apt-get install -y wrk >&2; fi
fi
cargo build --release -p sesame >&2
BIN=target/release/sesame
WORK=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT

flood() { # memory_kib iterations
    local kib=$1 t=$2 dir="$WORK/data-$1"
    # One account signed in from one address as fast as the workers allow:
    # locking, rate limits and the per-address hashing cap are lifted.
    SESAME_ARGON2__MEMORY_KIB=$kib SESAME_ARGON2__ITERATIONS=$t SESAME_ARGON2__PARALLELISM=1 \
    SESAME_HASHING__WORKERS=$WORKERS SESAME_HASHING__QUEUE=64 \
    SESAME_LOCKOUT__MAX_FAILURES=0 SESAME_RATE_LIMITS__HASHING_PER_ADDRESS=100000 \
    SESAME_RATE_LIMITS__PER_IDENTIFIER__LIMIT=100000000 SESAME_RATE_LIMITS__PER_IP__LIMIT=100000000 \
    SESAME_RATE_LIMITS__REGISTER__PER_IP__LIMIT=100000000 \
    SESAME_LOG_LEVEL=warn $BIN serve --listen "127.0.0.1:$PORT" --data-dir "$dir" >"$WORK/server-$kib.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do curl -sf "$BASE/health/live" >/dev/null && break; sleep 0.1; done
    curl -sf -o /dev/null -XPOST "$BASE/v1/registrations" -H 'content-type: application/json' \
        -d "{\"login\":{\"type\":\"email\",\"identifier\":\"$BENCH_EMAIL\"},\"password\":\"$BENCH_PASSWORD\"}"
    local idle
    idle=$(awk '/^VmRSS:/ {print $2}' /proc/$PID/status)
    cat bench/sign_in.lua bench/report.lua >"$WORK/sign_in.lua"
    local result
    result=$(wrk -t2 -c$CONNS -d"${DURATION}s" --timeout 30s -s "$WORK/sign_in.lua" "$BASE/v1/sessions" | grep '^RESULT')
    local peak
    peak=$(awk '/^VmHWM:/ {print $2}' /proc/$PID/status)
    kill $PID; wait $PID 2>/dev/null || true
    PID=
    local rps
    rps=$(sed -n 's/.*rps=\([^ ]*\).*/\1/p' <<<"$result")
    local blocks=$((WORKERS * kib / 1024))
    printf '| %s MiB, t=%s, p=1 | %s | %s | %s | %s | %s |\n' $((kib / 1024)) "$t" "$WORKERS" "$rps" \
        "$((idle / 1024))" "$((peak / 1024))" "$blocks"
}

echo "Date: $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); ${DURATION} s flood, $CONNS connections"
echo
echo "| Argon2 cost | workers | sign-ins/s | RSS idle MiB | peak RSS MiB | workers × cost MiB |"
echo "|---|---|---|---|---|---|"
flood 8192 2
flood 65536 3
