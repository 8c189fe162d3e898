#!/usr/bin/env bash
# Backends side by side, all figures from one run: sign-in and /v1/me on
# SQLite, on PostgreSQL, and on two instances sharing PostgreSQL; /v1/me on
# PostgreSQL by transport (TCP with TLS as negotiated, TCP without TLS, the
# Unix socket when it has one here); then sign-in
# latency with 1,000 against 1,000,000 users in the database (seeded in bulk by
# SQL, never through the hasher), on both backends.
# Usage: bench/backends.sh [seconds-per-scenario]   (prints Markdown)
# BENCH_BIN=path measures that binary instead of building target/release/sesame.
# Needs PostgreSQL at BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres),
# psql and sqlite3.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
PG_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PG_BASE=${PG_URL%/*}
export BENCH_PASSWORD="bench passphrase 7f3a"
export BENCH_EMAIL="bench-0@bench.example"
# Sign-ins take these users in turn (bench/sign_in.lua).
export BENCH_USERS=32 WRK_THREADS=2
BIG=${BENCH_BIG_USERS:-1000000}
SMALL=1000
ROUNDS=31

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >&2; else sudo apt-get install -y wrk >&2; fi
fi
for tool in psql sqlite3; do
    command -v $tool >/dev/null || { echo "bench/backends.sh needs $tool" >&2; exit 1; }
done
if [ -n "${BENCH_BIN:-}" ]; then
    BIN=$(realpath "$BENCH_BIN")
else
    cargo build --release -p sesame >&2
    BIN=$PWD/target/release/sesame
fi
WORK=$(mktemp -d)
PIDS=()
DBS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for d in "${DBS[@]}"; do psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
MASTER=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

new_pg_db() { # name -> url
    local name="bench_$1_$$"
    psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" -c "CREATE DATABASE $name" >/dev/null
    DBS+=("$name")
    echo "$PG_BASE/$name"
}

start() { # port data-dir [database-url] -> pid in $LAST_PID
    local port=$1 dir=$2 url=${3:-}
    mkdir -p "$dir"
    # The scenarios hammer a few users from one address: lift the rate limits.
    local env=(SESAME_LOG_LEVEL=warn SESAME_MASTER_KEY="$MASTER" SESAME_PUBLIC_URL=http://bench.test
        SESAME_RATE_LIMITS__PER_IDENTIFIER__LIMIT=100000000 SESAME_RATE_LIMITS__PER_IP__LIMIT=100000000
        SESAME_RATE_LIMITS__REGISTER__PER_IP__LIMIT=100000000
        SESAME_RATE_LIMITS__REGISTER__PER_IDENTIFIER__LIMIT=100000000)
    [ -n "$url" ] && env+=(SESAME_DATABASE_URL="$url" SESAME_POSTGRES__MAX_CONNECTIONS=${PG_POOL:-32})
    env "${env[@]}" "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$dir" >>"$WORK/server.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/health/live" >/dev/null && return; sleep 0.1; done
    echo "server on $port did not start" >&2; cat "$WORK/server.log" >&2; exit 1
}
stop_all() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
}

register() { # port email -> access token
    curl -sf -XPOST "http://127.0.0.1:$1/v1/registrations" -H 'content-type: application/json' \
        -d "{\"login\":{\"type\":\"email\",\"identifier\":\"$2\"},\"password\":\"$BENCH_PASSWORD\"}" |
        grep -o '"access_token":"[^"]*"' | cut -d'"' -f4
}

register_users() { # port: bench-1 … bench-31 beside bench-0
    for i in $(seq 1 $((BENCH_USERS - 1))); do register "$1" "bench-$i@bench.example" >/dev/null; done
}

wrk_run() { # name conns script url [args] -> "rps p50 p99 errors"
    local name=$1 conns=$2 script=$3 url=$4
    shift 4
    cat "$script" bench/report.lua >"$WORK/$name.lua"
    wrk -t2 -c"$conns" -d"${DURATION}s" --timeout 30s -s "$WORK/$name.lua" "$@" "$url" |
        awk '/^RESULT/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } print v["rps"], v["p50_ms"], v["p99_ms"], v["errors"] }'
}
: >"$WORK/empty.lua"

RESULTS="$WORK/results"
: >"$RESULTS"
single() { # label database-url
    local label=$1 url=$2
    start 18301 "$WORK/$label" "$url"
    local token
    token=$(register 18301 "$BENCH_EMAIL")
    register_users 18301
    echo "wrk: $label" >&2
    echo "$label live $(wrk_run live 32 "$WORK/empty.lua" http://127.0.0.1:18301/health/live)" >>"$RESULTS"
    echo "$label me $(wrk_run me 32 "$WORK/empty.lua" http://127.0.0.1:18301/v1/me -H "Authorization: Bearer $token")" >>"$RESULTS"
    echo "$label sign_in $(wrk_run sign_in 4 bench/sign_in.lua http://127.0.0.1:18301/v1/sessions)" >>"$RESULTS"
    stop_all
}
# The connection string as given: over TCP, sqlx (like libpq) negotiates TLS
# when the server offers it (sslmode=prefer), as Debian's PostgreSQL does.
single sqlite ""
single postgres "$(new_pg_db one)"
BACKENDS="sqlite postgres"

# --- /v1/me by transport -----------------------------------------------------------
# One server per transport, all running at once on databases of their own:
# TCP as negotiated (TLS when offered), TCP without TLS, the Unix socket.
# Short wrk runs in turn, the order rotating each round, so that every
# transport sees the same machine noise; the figures are medians of the rounds.
# Pools of 24, so that the three stay within PostgreSQL's default 100 connections.
SOCKET_DIR=${BENCH_POSTGRES_SOCKET_DIR:-/var/run/postgresql}
ROUNDS_ME=${BENCH_TRANSPORT_ROUNDS:-7}
TRANSPORTS=(tcp_as_negotiated tcp_without_tls)
URLS=("$(new_pg_db tls)" "$(new_pg_db plain)?sslmode=disable")
if [ -S "$SOCKET_DIR/.s.PGSQL.5432" ]; then
    SOCKET_DB=$(new_pg_db socket)
    TRANSPORTS+=(unix_socket)
    URLS+=("postgres://postgres@localhost/${SOCKET_DB##*/}?host=$SOCKET_DIR")
fi
TOKENS=()
for i in "${!TRANSPORTS[@]}"; do
    PG_POOL=24 start $((18311 + i)) "$WORK/transport-$i" "${URLS[$i]}"
    TOKENS+=("$(register $((18311 + i)) "$BENCH_EMAIL")")
done
TLS_SEEN=$(psql -tA "$PG_URL" -c "SELECT string_agg(DISTINCT a.datname || '=' || s.ssl, ' ' ORDER BY a.datname || '=' || s.ssl)
    FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname LIKE 'bench_%'")
: >"$WORK/transport"
echo "wrk: /v1/me by transport, $ROUNDS_ME rounds" >&2
for r in $(seq 0 $((ROUNDS_ME - 1))); do
    n=${#TRANSPORTS[@]}
    for k in $(seq 0 $((n - 1))); do
        i=$(( (r + k) % n ))
        echo "${TRANSPORTS[$i]} $(wrk_run me 32 "$WORK/empty.lua" "http://127.0.0.1:$((18311 + i))/v1/me" \
            -H "Authorization: Bearer ${TOKENS[$i]}")" >>"$WORK/transport"
    done
done
stop_all

# Two instances on one database: one wrk per instance at once, half the
# connections each; the figures are the sums (rps) and the worse (latency).
URL=$(new_pg_db two)
start 18301 "$WORK/two-a" "$URL"
start 18302 "$WORK/two-b" "$URL"
TOKEN=$(register 18301 "$BENCH_EMAIL")
register_users 18301
pair() { # name conns-each script path [args]
    local name=$1 conns=$2 script=$3 path=$4
    shift 4
    wrk_run "$name-a" "$conns" "$script" "http://127.0.0.1:18301$path" "$@" >"$WORK/pa" &
    local w=$!
    BENCH_USER_OFFSET=$((BENCH_USERS / 4)) wrk_run "$name-b" "$conns" "$script" "http://127.0.0.1:18302$path" "$@" >"$WORK/pb"
    wait $w
    paste -d' ' "$WORK/pa" "$WORK/pb" | awk '{ printf "%.1f %.2f %.2f %d\n", $1 + $5, ($2 > $6 ? $2 : $6), ($3 > $7 ? $3 : $7), $4 + $8 }'
}
echo "wrk: postgres x2" >&2
echo "postgres_x2 live $(pair live 16 "$WORK/empty.lua" /health/live)" >>"$RESULTS"
echo "postgres_x2 me $(pair me 16 "$WORK/empty.lua" /v1/me -H "Authorization: Bearer $TOKEN")" >>"$RESULTS"
echo "postgres_x2 sign_in $(pair sign_in 2 bench/sign_in.lua /v1/sessions)" >>"$RESULTS"
stop_all

# --- Sign-in latency against the number of users -------------------------------
# One template user is registered through the API; the others copy its rows
# (same password hash) with new ids and addresses.
seed_pg() { # url total
    psql -q "$1" -v total="$2" >/dev/null <<'SQL'
CREATE TEMP TABLE seed AS
  SELECT n, md5('p' || n)::uuid AS id, md5('l' || n)::uuid AS login_id FROM generate_series(1, :total - 1) AS n;
INSERT INTO identity.users (id, status, metadata, created_at, updated_at)
  SELECT s.id, u.status, u.metadata, u.created_at, u.updated_at FROM seed s, identity.users u;
INSERT INTO credentials.principals (id, kind, created_at, updated_at)
  SELECT s.id, 'user', p.created_at, p.updated_at FROM seed s, credentials.principals p;
INSERT INTO credentials.login_methods (id, principal_id, login_type, identifier, verified_at, created_at)
  SELECT s.login_id, s.id, 'email', 'seed-' || s.n || '@bench.example', NULL, l.created_at
  FROM seed s, credentials.login_methods l;
INSERT INTO credentials.passwords (principal_id, hash, created_at, updated_at)
  SELECT s.id, w.hash, w.created_at, w.updated_at FROM seed s, credentials.passwords w;
ANALYZE;
SQL
}
seed_sqlite() { # file total
    sqlite3 "$1" >/dev/null <<SQL
PRAGMA journal_mode = WAL;
BEGIN;
CREATE TEMP TABLE seed AS
  WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < $2 - 1)
  SELECT n, randomblob(16) AS id, randomblob(16) AS login_id FROM s;
INSERT INTO users (id, status, metadata, created_at, updated_at)
  SELECT s.id, u.status, u.metadata, u.created_at, u.updated_at FROM seed s, users u;
INSERT INTO principals (id, kind, is_active, failed_attempts, created_at, updated_at)
  SELECT s.id, 'user', 1, 0, p.created_at, p.updated_at FROM seed s, principals p;
INSERT INTO login_methods (id, principal_id, login_type, identifier, verified_at, created_at)
  SELECT s.login_id, s.id, 'email', 'seed-' || s.n || '@bench.example', NULL, l.created_at
  FROM seed s, login_methods l;
INSERT INTO passwords (principal_id, hash, created_at, updated_at)
  SELECT s.id, w.hash, w.created_at, w.updated_at FROM seed s, passwords w;
COMMIT;
ANALYZE;
SQL
}
sign_in_ms() { # port email
    curl -sf -o /dev/null -w '%{time_total}\n' -XPOST "http://127.0.0.1:$1/v1/sessions" \
        -H 'content-type: application/json' \
        -d "{\"login\":{\"type\":\"email\",\"identifier\":\"$2\"},\"password\":\"$BENCH_PASSWORD\"}"
}
median_ms() { sort -n "$1" | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)] * 1000}'; }

population() { # backend
    local backend=$1 small_url="" big_url=""
    if [ "$backend" = postgres ]; then
        small_url=$(new_pg_db small)
        big_url=$(new_pg_db big)
    fi
    start 18303 "$WORK/$backend-small" "$small_url"
    start 18304 "$WORK/$backend-big" "$big_url"
    register 18303 "template@bench.example" >/dev/null
    register 18304 "template@bench.example" >/dev/null
    stop_all
    local t0 t1
    t0=$(date +%s)
    if [ "$backend" = postgres ]; then
        seed_pg "$small_url" $SMALL
        seed_pg "$big_url" "$BIG"
    else
        seed_sqlite "$WORK/$backend-small/sesame.db" $SMALL
        seed_sqlite "$WORK/$backend-big/sesame.db" "$BIG"
    fi
    t1=$(date +%s)
    echo "seeded $backend in $((t1 - t0)) s" >&2
    start 18303 "$WORK/$backend-small" "$small_url"
    start 18304 "$WORK/$backend-big" "$big_url"
    local users_small users_big
    if [ "$backend" = postgres ]; then
        users_small=$(psql -tA "$small_url" -c "SELECT COUNT(*) FROM credentials.principals")
        users_big=$(psql -tA "$big_url" -c "SELECT COUNT(*) FROM credentials.principals")
    else
        users_small=$(sqlite3 "$WORK/$backend-small/sesame.db" "SELECT COUNT(*) FROM principals")
        users_big=$(sqlite3 "$WORK/$backend-big/sesame.db" "SELECT COUNT(*) FROM principals")
    fi
    # Warm both, then alternate so that both see the same machine noise.
    sign_in_ms 18303 "seed-$((SMALL / 2))@bench.example" >/dev/null
    sign_in_ms 18304 "seed-$((BIG / 2))@bench.example" >/dev/null
    : >"$WORK/small" && : >"$WORK/big"
    for i in $(seq $ROUNDS); do
        sign_in_ms 18303 "seed-$(( (i * 31) % (SMALL - 1) + 1 ))@bench.example" >>"$WORK/small"
        sign_in_ms 18304 "seed-$(( (i * 32749) % (BIG - 1) + 1 ))@bench.example" >>"$WORK/big"
    done
    stop_all
    echo "$backend $users_small $(median_ms "$WORK/small") $users_big $(median_ms "$WORK/big")" >>"$WORK/population"
}
: >"$WORK/population"
population sqlite
population postgres

# --- Report ----------------------------------------------------------------------
get() { awk -v b="$1" -v s="$2" -v f="$3" '$1 == b && $2 == s { print $(f + 2) }' "$RESULTS"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo "Date: $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); PostgreSQL $(psql -tA "$PG_URL" -c 'SHOW server_version')"
echo
echo "| backend | scenario | connections | requests/s | p50 ms | p99 ms | errors | vs SQLite |"
echo "|---|---|---|---|---|---|---|---|"
for backend in $BACKENDS postgres_x2; do
    for s in live me sign_in; do
        conns=32; [ $s = sign_in ] && conns=4
        [ $backend = postgres_x2 ] && conns="$((conns / 2)) + $((conns / 2))"
        printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$backend" "$s" "$conns" \
            "$(get $backend $s 1)" "$(get $backend $s 2)" "$(get $backend $s 3)" "$(get $backend $s 4)" \
            "$(ratio "$(get $backend $s 1)" "$(get sqlite $s 1)")"
    done
done
echo
echo "\`/v1/me\` on PostgreSQL by transport: median of $ROUNDS_ME runs of ${DURATION} s each, in turn (TLS per connection seen by the server: $TLS_SEEN)"
echo
echo "| transport | requests/s (median) | lowest | highest | vs Unix socket |"
echo "|---|---|---|---|---|"
transport_stats() { # transport -> "median lowest highest" of its rounds
    awk -v t="$1" '$1 == t { print $2 }' "$WORK/transport" | sort -n |
        awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)], a[1], a[NR] }'
}
SOCKET_MEDIAN=""
[[ " ${TRANSPORTS[*]} " == *" unix_socket "* ]] && read -r SOCKET_MEDIAN _ < <(transport_stats unix_socket)
for t in "${TRANSPORTS[@]}"; do
    read -r median lo hi < <(transport_stats "$t")
    vs="-"
    [ -n "$SOCKET_MEDIAN" ] && vs=$(ratio "$median" "$SOCKET_MEDIAN")
    printf '| %s | %s | %s | %s | %s |\n' "$t" "$median" "$lo" "$hi" "$vs"
done
echo
echo "| backend | users | sign-in median ms | users | sign-in median ms | ratio |"
echo "|---|---|---|---|---|---|"
while read -r backend n1 m1 n2 m2; do
    printf '| %s | %s | %s | %s | %s | %s |\n' "$backend" "$n1" "$m1" "$n2" "$m2" "$(ratio "$m2" "$m1")"
done <"$WORK/population"
echo
echo "Sign-in medians: $ROUNDS sequential sign-ins of different users on each, alternating between the two servers."
