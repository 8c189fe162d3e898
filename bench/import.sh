#!/usr/bin/env bash
# `sesame import` throughput: a generated wide table of N rows (default
# 1,000,000; 8 % of them bad) into a fresh SQLite file and a fresh PostgreSQL
# database, with the release build. Usage: bench/import.sh [rows]
# Needs PostgreSQL at BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${1:-1000000}
PG_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}
cargo build --release -p sesame >&2
BIN=$PWD/target/release/sesame
WORK=$(mktemp -d)
DB="bench_import_$$"
trap 'psql -q "$PG_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT

echo "generating $ROWS rows" >&2
python3 - "$ROWS" "$WORK/users.jsonl" <<'PY'
import json, sys, uuid
rows, path = int(sys.argv[1]), sys.argv[2]
fixtures = json.load(open("tests/fixtures/legacy-hashes.json"))
hashes = [h["hash"] for h in fixtures["hashes"]]
with open(path, "w") as out:
    for i in range(rows):
        row = {
            "id": str(uuid.uuid4()) if i % 2 == 0 else f"legacy-{i}",
            "email": f"User{i}@Example.com",
            "email_verified": i % 3 == 0,
            "password_hash": hashes[i % len(hashes)],
            "display_name": f"User {i}",
        }
        if i % 7 == 0:
            row["username"] = f"user_{i}"
        k = i % 50
        if k == 1: row["phone"] = "12345"
        elif k == 2: row["password_hash"] = "$md5$rounds=5000$abc$def"
        elif k == 3: row["email"] = f"user{i - 3}@example.com"
        elif k == 4: row["email"] = "not an address"
        out.write(json.dumps(row) + "\n")
PY

run() { # label env...
    local label=$1
    shift
    local out
    out=$(env "$@" SESAME_LOG_LEVEL=warn "$BIN" import "$WORK/users.jsonl" --quiet --report "$WORK/$label.refused.jsonl")
    echo "$label $out"
}
psql -q "$PG_URL" -c "CREATE DATABASE $DB" >/dev/null
PG_DB_URL="${PG_URL%/*}/$DB"
SESAME_DATABASE_URL=$PG_DB_URL SESAME_LOG_LEVEL=warn "$BIN" migrate >/dev/null
# PostgreSQL over TCP, and over its Unix socket when it has one here: sqlx
# 0.9.0 does not set TCP_NODELAY, so TCP pays delayed-ACK stalls on large
# statements.
SOCKET_DIR=${BENCH_POSTGRES_SOCKET_DIR:-/var/run/postgresql}
{
    run sqlite SESAME_DATA_DIR="$WORK/sqlite"
    run postgres_tcp SESAME_DATA_DIR="$WORK/pg" SESAME_DATABASE_URL="$PG_DB_URL"
    if [ -S "$SOCKET_DIR/.s.PGSQL.5432" ]; then
        psql -q "$PG_URL" -c "DROP DATABASE $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
        SOCKET_URL="postgres://postgres@localhost/$DB?host=$SOCKET_DIR"
        SESAME_DATABASE_URL=$SOCKET_URL SESAME_LOG_LEVEL=warn "$BIN" migrate >/dev/null
        run postgres_unix_socket SESAME_DATA_DIR="$WORK/pg2" SESAME_DATABASE_URL="$SOCKET_URL"
    fi
    run sqlite_again SESAME_DATA_DIR="$WORK/sqlite"
} >"$WORK/results"

echo "Date: $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); $ROWS rows"
echo
echo "| run | rows read | imported | already present | refused | seconds | rows/s |"
echo "|---|---|---|---|---|---|---|"
while read -r label json; do
    python3 -c '
import json, sys
s = json.loads(sys.argv[2])
cells = [sys.argv[1], s["read"], s["imported"], s["already_present"], s["refused"],
         "%.1f" % s["seconds"], "%.0f" % s["rows_per_second"]]
print("| " + " | ".join(str(c) for c in cells) + " |")
' "$label" "$json"
done <"$WORK/results"
