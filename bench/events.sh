#!/usr/bin/env bash
# Events from commit to webhook receipt under a sign-up load, on SQLite and on
# PostgreSQL. One release server per backend posts identity.user.signed_up to a
# receiver on this machine (examples/event_sink.rs), which records each
# event's lag: from the event's time (the change, just before its commit) to
# its receipt. wrk (2 threads, 16 connections) signs up fresh users for
# SECONDS; the run ends when every event has arrived. Argon2 is made cheap
# (256 KiB, 1 pass) so that the load is bound by the events, not by hashing.
# Usage: bench/events.sh [seconds]   (prints Markdown)
# BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres) names
# the server the PostgreSQL database is made on; the server connects to it over
# the Unix socket when there is one (BENCH_POSTGRES_SOCKET_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
PG_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
SOCKET_DIR=${BENCH_POSTGRES_SOCKET_DIR:-/var/run/postgresql}
PORT=18402
SINK_PORT=18403
BASE=http://127.0.0.1:$PORT

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >&2; else sudo apt-get install -y wrk >&2; fi
fi
cargo build --release -p sesame >&2
cargo build --release --example event_sink >&2
BIN=$PWD/target/release/sesame
SINK=$PWD/target/release/examples/event_sink
WORK=$(mktemp -d)
PID=""
SINK_PID=""
DB=bench_events_$$
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null
    [ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null
    wait 2>/dev/null || true
    psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
cp bench/sign_up.lua "$WORK/sign_up.lua"
cat bench/report.lua >>"$WORK/sign_up.lua"
export BENCH_PASSWORD="bench passphrase 7f3a"

run() { # backend database-url -> one Markdown table row on stdout
    local backend=$1 url=$2
    local receipts="$WORK/$backend.receipts"
    "$SINK" "$SINK_PORT" "$receipts" &
    SINK_PID=$!
    local env=(SESAME_LOG_LEVEL=warn SESAME_DATA_DIR="$WORK/$backend"
        SESAME_RATE_LIMITS__PER_IP__LIMIT=100000000 SESAME_RATE_LIMITS__REGISTER__PER_IP__LIMIT=100000000
        SESAME_RATE_LIMITS__HASHING_PER_ADDRESS=100000000
        SESAME_ARGON2__MEMORY_KIB=256 SESAME_ARGON2__ITERATIONS=1 SESAME_ARGON2__PARALLELISM=1
        SESAME_EVENTS__ALLOW_PRIVATE_TARGETS=true
        "SESAME_EVENTS__WEBHOOKS=[{name=\"bench\",url=\"http://127.0.0.1:$SINK_PORT/hooks\",secret=\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\",topics=[\"identity.user.signed_up\"]}]")
    [ -n "$url" ] && env+=(SESAME_DATABASE_URL="$url" SESAME_POSTGRES__MAX_CONNECTIONS=32)
    env "${env[@]}" "$BIN" serve --listen "127.0.0.1:$PORT" >>"$WORK/server.log" 2>&1 &
    PID=$!
    for _ in $(seq 300); do curl -sf "$BASE/health/live" >/dev/null && break; sleep 0.1; done
    echo "wrk: $backend sign-ups for ${DURATION}s" >&2
    local out line
    out=$(wrk -t2 -c16 -d"${DURATION}s" -s "$WORK/sign_up.lua" "$BASE")
    line=$(grep '^RESULT' <<<"$out")
    local signups
    signups=$(sed -n 's/.*requests=\([0-9]*\).*/\1/p' <<<"$line")
    local rps
    rps=$(sed -n 's/.*rps=\([^ ]*\).*/\1/p' <<<"$line")
    # Every sign-up made one event: wait (bounded) until each has arrived.
    for _ in $(seq 600); do
        [ "$(wc -l <"$receipts")" -ge "$signups" ] && break
        sleep 0.1
    done
    sleep 0.3
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
    kill "$SINK_PID"; wait "$SINK_PID" 2>/dev/null || true; SINK_PID=""
    python3 - "$receipts" "$backend" "$signups" "$rps" <<'PY'
import statistics, sys
path, backend, signups, rps = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
rows = [l.split() for l in open(path) if l.strip()]
ids = {r[0] for r in rows}
lags = sorted(float(r[1]) for r in rows)
got = [int(r[2]) for r in rows]
span = (max(got) - min(got)) / 1000 if len(got) > 1 else 0
q = statistics.quantiles(lags, n=100)
print(f"| {backend} | {signups} | {rps:.0f} | {len(rows)} | {len(ids)} | {len(rows) / span:.0f} | {q[49]:.1f} | {q[98]:.1f} | {lags[-1]:.1f} |")
PY
}

echo "Date: $(date -u +%F), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -sr); ${DURATION} s of sign-ups, 16 connections"
echo
echo "| backend | sign-ups | sign-ups/s | receipts | distinct ids | receipts/s | lag p50 ms | lag p99 ms | lag max ms |"
echo "|---|---|---|---|---|---|---|---|---|"
run sqlite ""
psql -q "$PG_URL" -c "CREATE DATABASE $DB" >/dev/null
pg="postgres://postgres@localhost/$DB"
[ -d "$SOCKET_DIR" ] && pg="$pg?host=$SOCKET_DIR"
run postgres "$pg"
