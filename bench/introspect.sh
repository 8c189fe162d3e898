#!/usr/bin/env bash
# Introspection beside /health/live and /v1/me, all from one run, on SQLite
# and on PostgreSQL. One release server per backend; a user signed in once
# and a service key scoped `introspect` made by `sesame admin api-key create`
# against the server's own database. wrk (2 threads, 32 connections) runs the
# three scenarios in turn for ROUNDS rounds, the order rotating each round, so
# that each sees the same machine noise; figures are the medians of the rounds.
# Usage: bench/introspect.sh [seconds-per-run] [rounds]   (prints Markdown)
# BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres) names
# the server the PostgreSQL database is made on; the server connects to it over
# the Unix socket when there is one (BENCH_POSTGRES_SOCKET_DIR), else over TCP
# without TLS.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-5}
ROUNDS=${2:-5}
PG_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
SOCKET_DIR=${BENCH_POSTGRES_SOCKET_DIR:-/var/run/postgresql}
PORT=18401
BASE=http://127.0.0.1:$PORT

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >&2; else sudo apt-get install -y wrk >&2; fi
fi
cargo build --release -p sesame >&2
BIN=$PWD/target/release/sesame
WORK=$(mktemp -d)
PID=""
DB=bench_introspect_$$
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null
    wait 2>/dev/null || true
    psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
for lua in empty introspect; do
    if [ $lua = empty ]; then : >"$WORK/$lua.lua"; else cp bench/introspect.lua "$WORK/$lua.lua"; fi
    cat bench/report.lua >>"$WORK/$lua.lua"
done

run() { # backend database-url -> lines "backend scenario rps" in $WORK/results
    local backend=$1 url=$2
    local env=(SESAME_LOG_LEVEL=warn SESAME_DATA_DIR="$WORK/$backend"
        SESAME_RATE_LIMITS__PER_IP__LIMIT=100000000 SESAME_RATE_LIMITS__REGISTER__PER_IP__LIMIT=100000000
        SESAME_RATE_LIMITS__PER_API_KEY__LIMIT=1000000000)
    [ -n "$url" ] && env+=(SESAME_DATABASE_URL="$url" SESAME_POSTGRES__MAX_CONNECTIONS=32)
    env "${env[@]}" "$BIN" serve --listen "127.0.0.1:$PORT" >>"$WORK/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 300); do curl -sf "$BASE/health/live" >/dev/null && break; sleep 0.1; done
    export BENCH_TOKEN
    BENCH_TOKEN=$(curl -sf -XPOST "$BASE/v1/registrations" -H 'content-type: application/json' \
        -d '{"login":{"type":"email","identifier":"ada@bench.example"},"password":"bench passphrase 7f3a"}' |
        grep -o '"access_token":"[^"]*"' | cut -d'"' -f4)
    export BENCH_KEY
    BENCH_KEY=$(env "${env[@]}" "$BIN" admin api-key create --name bench --scope introspect | head -1)
    [ "$(curl -sf -XPOST "$BASE/v1/introspect" -H "authorization: Bearer $BENCH_KEY" \
        -H 'content-type: application/json' -d "{\"token\":\"$BENCH_TOKEN\"}" | cut -c1-14)" = '{"active":true' ] ||
        { echo "introspection does not answer active" >&2; exit 1; }
    local order=(live me introspect)
    for round in $(seq "$ROUNDS"); do
        echo "wrk: $backend round $round" >&2
        for scenario in "${order[@]}"; do
            local out
            case $scenario in
                live) out=$(wrk -t2 -c32 -d"${DURATION}s" -s "$WORK/empty.lua" "$BASE/health/live") ;;
                me) out=$(wrk -t2 -c32 -d"${DURATION}s" -s "$WORK/empty.lua" -H "Authorization: Bearer $BENCH_TOKEN" "$BASE/v1/me") ;;
                introspect) out=$(wrk -t2 -c32 -d"${DURATION}s" -s "$WORK/introspect.lua" "$BASE/v1/introspect") ;;
            esac
            local line
            line=$(grep '^RESULT' <<<"$out")
            [[ $line == *" errors=0 "* ]] || { echo "$scenario had errors: $line" >&2; exit 1; }
            echo "$backend $scenario $(sed -n 's/.*rps=\([^ ]*\).*/\1/p' <<<"$line")" >>"$WORK/results"
        done
        order=("${order[@]:1}" "${order[0]}")
    done
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
}

: >"$WORK/results"
run sqlite ""
psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
if [ -S "$SOCKET_DIR/.s.PGSQL.5432" ]; then
    run postgres "postgres://postgres@localhost/$DB?host=$SOCKET_DIR"
else
    run postgres "${PG_URL%/*}/$DB?sslmode=disable"
fi

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "Date: $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); $ROUNDS rounds of ${DURATION} s, 32 connections"
echo
echo "| backend | /health/live req/s | /v1/me req/s | introspect req/s | me ÷ live | introspect ÷ live | introspect ÷ me |"
echo "|---|---|---|---|---|---|---|"
for backend in sqlite postgres; do
    live=$(awk -v b=$backend '$1 == b && $2 == "live" { print $3 }' "$WORK/results" | median)
    me=$(awk -v b=$backend '$1 == b && $2 == "me" { print $3 }' "$WORK/results" | median)
    intro=$(awk -v b=$backend '$1 == b && $2 == "introspect" { print $3 }' "$WORK/results" | median)
    awk -v b=$backend -v l="$live" -v m="$me" -v i="$intro" \
        'BEGIN { printf "| %s | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f |\n", b, l, m, i, m / l, i / l, i / m }'
done
