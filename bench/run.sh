#!/usr/bin/env bash
# Load benchmark of the release build on loopback, all figures from one run so
# that ratios compare like with like. Usage: bench/run.sh [seconds-per-scenario]
# Prints a Markdown table for BENCHMARKS.md.
#
# BENCH_BIN=path measures that binary instead of building target/release/sesame.
# BENCH_BASELINE=path compares against a second binary (an earlier build):
# BENCH_ROUNDS rounds (default 5), each starting a fresh server of either
# binary in turn, the order swapped every round so that both see the same
# machine noise; the table gives medians and the spread of each.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=32
THREADS=2
PORT=${BENCH_PORT:-18181}
BASE="http://127.0.0.1:$PORT"
BASELINE=${BENCH_BASELINE:-}
ROUNDS=${BENCH_ROUNDS:-5}
export BENCH_PASSWORD="bench passphrase 7f3a"
export BENCH_EMAIL="bench-0@bench.example"
export WRK_THREADS=$THREADS
# Sign-ins take the registered users in turn (bench/sign_in.lua).
export BENCH_USERS=$CONNS

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >&2; else sudo apt-get install -y wrk >&2; fi
fi
if [ -n "${BENCH_BIN:-}" ]; then
    BIN=$BENCH_BIN
else
    cargo build --release -p sesame >&2
    BIN=target/release/sesame
fi
WORK=$(mktemp -d)
PID=""
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$WORK"' EXIT

# The machine's hashing limit with the server's own (default) parameters.
echo "calibrating the hasher" >&2
CAL=$($BIN calibrate --seconds "$DURATION" --samples 7)
HASH_LIMIT=$(sed -n 's/^hashes_per_second=//p' <<<"$CAL")
SINGLE_HASH_MS=$(sed -n 's/^single_hash_ms=//p' <<<"$CAL")
PARAMS=$(head -1 <<<"$CAL")

rss_kib() { awk "/^$1:/ {print \$2}" /proc/$PID/status; }
scenario() { # name connections script-or-empty [wrk args...]
    local name=$1 conns=$2 script=$3
    shift 3
    cat "$script" bench/report.lua >"$WORK/$name.lua"
    echo "wrk: $name" >&2
    wrk -t$THREADS -c"$conns" -d"${DURATION}s" --timeout 30s -s "$WORK/$name.lua" "$@" | grep '^RESULT' | sed "s/^RESULT/$name/"
}
: >"$WORK/empty.lua"

measure() { # binary results-file: one fresh server through every scenario
    local bin=$1 out=$2 data
    data=$(mktemp -d -p "$WORK")
    # The scenarios hammer a few users from one address: lift the rate limits.
    SESAME_RATE_LIMITS__PER_IDENTIFIER__LIMIT=100000000 SESAME_RATE_LIMITS__PER_IP__LIMIT=100000000 \
        SESAME_RATE_LIMITS__REGISTER__PER_IP__LIMIT=100000000 SESAME_RATE_LIMITS__REGISTER__PER_IDENTIFIER__LIMIT=100000000 \
        SESAME_LOG_LEVEL=warn $bin serve --listen "127.0.0.1:$PORT" --data-dir "$data/data" >"$data/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 100); do curl -sf "$BASE/health/live" >/dev/null && break; sleep 0.1; done
    local idle_rss
    idle_rss=$(rss_kib VmRSS)

    # Users: one session per connection for the refresh run.
    echo "registering $CONNS users" >&2
    : >"$data/refresh_tokens"
    for i in $(seq 0 $((CONNS - 1))); do
        curl -sf -XPOST "$BASE/v1/registrations" -H 'content-type: application/json' \
            -d "{\"login\":{\"type\":\"email\",\"identifier\":\"bench-$i@bench.example\"},\"password\":\"$BENCH_PASSWORD\"}" \
            >"$data/reg-$i.json"
        grep -o '"refresh_token":"[^"]*"' "$data/reg-$i.json" | cut -d'"' -f4 >>"$data/refresh_tokens"
    done
    local access
    access=$(grep -o '"access_token":"[^"]*"' "$data/reg-0.json" | cut -d'"' -f4)

    # One sign-in on the idle server, end to end over HTTP, against one hash.
    local body="{\"login\":{\"type\":\"email\",\"identifier\":\"$BENCH_EMAIL\"},\"password\":\"$BENCH_PASSWORD\"}"
    for _ in $(seq 15); do
        curl -sf -o /dev/null -w '%{time_total}\n' -XPOST "$BASE/v1/sessions" -H 'content-type: application/json' -d "$body"
    done | sort -n >"$data/idle"
    {
        echo "idle_rss_kib=$idle_rss"
        awk '{a[NR]=$1} END {printf "idle_sign_in_ms=%.1f\n", a[int((NR+1)/2)] * 1000}' "$data/idle"
        # One hash, measured right after, on the same quiet machine.
        echo "idle_hash_ms=$($bin calibrate --seconds 1 --samples 9 | sed -n 's/^single_hash_ms=//p')"
        scenario live $CONNS "$WORK/empty.lua" "$BASE/health/live"
        scenario me $CONNS "$WORK/empty.lua" -H "Authorization: Bearer $access" "$BASE/v1/me"
        TOKENS_FILE="$data/refresh_tokens" scenario refresh $CONNS bench/refresh.lua "$BASE/v1/sessions/refresh"
        # Twice as many connections as cores keeps every hashing worker busy.
        scenario sign_in 4 bench/sign_in.lua "$BASE/v1/sessions"
        echo "peak_rss_kib=$(rss_kib VmHWM)"
        scenario sign_up 4 bench/sign_up.lua "$BASE/v1/registrations"
    } >"$out"
    kill $PID 2>/dev/null || true
    wait $PID 2>/dev/null || true
    PID=""
}

if [ -n "$BASELINE" ]; then
    for r in $(seq 1 "$ROUNDS"); do
        if [ $((r % 2)) = 1 ]; then order="before after"; else order="after before"; fi
        for which in $order; do
            echo "round $r: $which" >&2
            if [ $which = before ]; then measure "$BASELINE" "$WORK/before-$r"; else measure "$BIN" "$WORK/after-$r"; fi
        done
    done
else
    measure "$BIN" "$WORK/results"
fi

# The hashing limit again, after the load: the figure used is the mean of the two.
CAL2=$($BIN calibrate --seconds "$DURATION" --samples 7)
HASH_LIMIT_AFTER=$(sed -n 's/^hashes_per_second=//p' <<<"$CAL2")
HASH_LIMIT_BEFORE=$HASH_LIMIT
HASH_LIMIT=$(awk -v a="$HASH_LIMIT_BEFORE" -v b="$HASH_LIMIT_AFTER" 'BEGIN { printf "%.2f", (a + b) / 2 }')

field() { # name field [file]
    awk -v n="$1" -v f="$2" '$1 == n { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) print kv[2] } }' "${3:-$WORK/results}"
}
value() { sed -n "s/^$1=//p" "${2:-$WORK/results}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "Date: $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "Hasher: $PARAMS, one hash ${SINGLE_HASH_MS} ms; hashing limit with every core hashing ${HASH_LIMIT} hashes/s (${HASH_LIMIT_BEFORE} before the load, ${HASH_LIMIT_AFTER} after)"
echo

if [ -n "$BASELINE" ]; then
    stats() { # which scenario -> "median lowest highest" of the rounds' requests/s
        for r in $(seq 1 "$ROUNDS"); do field "$2" rps "$WORK/$1-$r"; done | sort -n |
            awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)], a[1], a[NR] }'
    }
    echo "Requests/s, median of $ROUNDS rounds (lowest–highest); before = $BASELINE, after = $BIN"
    echo
    echo "| scenario | connections | before | after | after ÷ before |"
    echo "|---|---|---|---|---|"
    for s in live me refresh sign_in sign_up; do
        conns=$CONNS; case $s in sign_*) conns=4 ;; esac
        read -r bm blo bhi < <(stats before $s)
        read -r am alo ahi < <(stats after $s)
        printf '| %s | %s | %s (%s–%s) | %s (%s–%s) | %s |\n' $s $conns "$bm" "$blo" "$bhi" "$am" "$alo" "$ahi" "$(ratio "$am" "$bm")"
    done
    exit 0
fi

LIVE=$(field live rps)
echo "| scenario | connections | requests/s | p50 ms | p99 ms | errors | ratio |"
echo "|---|---|---|---|---|---|---|"
row() { # name conns ratio-label
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$(field "$1" rps)" "$(field "$1" p50_ms)" "$(field "$1" p99_ms)" "$(field "$1" errors)" "$3"
}
row live $CONNS "1.00 of live (ceiling)"
row me $CONNS "$(ratio "$(field me rps)" "$LIVE") of live"
row refresh $CONNS "$(ratio "$(field refresh rps)" "$LIVE") of live"
row sign_in 4 "$(ratio "$(field sign_in rps)" "$HASH_LIMIT") of hashing limit"
row sign_up 4 "$(ratio "$(field sign_up rps)" "$(field sign_in rps)") of sign-in"
echo
IDLE_SIGN_IN_MS=$(value idle_sign_in_ms)
IDLE_HASH_MS=$(value idle_hash_ms)
echo "One sign-in on an idle server (median of 15, over HTTP): ${IDLE_SIGN_IN_MS} ms = $(ratio "$IDLE_SIGN_IN_MS" "$IDLE_HASH_MS") x one hash (${IDLE_HASH_MS} ms, median of 9 measured right after)"
echo "Server RSS: idle $(($(value idle_rss_kib) / 1024)) MiB, peak $(($(value peak_rss_kib) / 1024)) MiB (through the sign-in run)"
