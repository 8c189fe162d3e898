#!/usr/bin/env bash
# Passkey sign-in against password sign-in, in one run, on the release build.
# Usage: bench/passkeys.sh [seconds-per-scenario]   (prints Markdown)
# BENCH_DATABASE_URL=postgres://… runs the server on that (empty) database
# instead of the embedded store; BENCH_BIN=path runs another build of the server.
#
# One server (embedded store, default Argon2id, rate limits lifted, a WebAuthn
# relying party `bench.test`); 16 users, each with a password and a passkey
# registered through the API by the software authenticator of the tests
# (tests/support/authenticator.py, soft_fido2). Then:
# - password sign-in: wrk, 4 connections (twice the hashing workers);
# - passkey sign-in: examples/passkey_load.rs, 16 connections, each sign-in
#   being begin + finish with an assertion signed by the client (ES256,
#   counter 0 like a synced passkey). Latencies are of whole sign-ins.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
PORT=${BENCH_PORT:-18191}
BASE="http://127.0.0.1:$PORT"
CONNS=16
export BENCH_PASSWORD="bench passphrase 7f3a"
export BENCH_USERS=$CONNS WRK_THREADS=2
RP=bench.test
ORIGIN=https://bench.test

if ! command -v wrk >/dev/null; then
    echo "installing wrk" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >&2; else sudo apt-get install -y wrk >&2; fi
fi
venv=target/test-venv
if ! "$venv/bin/python" -c 'import soft_fido2' >/dev/null 2>&1; then
    echo "installing soft-fido2 into $venv" >&2
    mkdir -p target
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'soft-fido2==0.4.56'
fi
cargo build --release -p sesame >&2
cargo build --release -p sesame-tests --example passkey_load >&2
BIN=${BENCH_BIN:-target/release/sesame}
LOAD=target/release/examples/passkey_load
WORK=$(mktemp -d)
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

env SESAME_RATE_LIMITS__PER_IDENTIFIER__LIMIT=100000000 SESAME_RATE_LIMITS__PER_IP__LIMIT=100000000 \
    SESAME_RATE_LIMITS__REGISTER__PER_IP__LIMIT=100000000 SESAME_RATE_LIMITS__REGISTER__PER_IDENTIFIER__LIMIT=100000000 \
    SESAME_WEBAUTHN__RP_ID=$RP SESAME_WEBAUTHN__ORIGINS="[\"$ORIGIN\"]" \
    ${BENCH_DATABASE_URL:+SESAME_DATABASE_URL=$BENCH_DATABASE_URL} \
    SESAME_LOG_LEVEL=warn $BIN serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/server.log" 2>&1 &
PID=$!
for _ in $(seq 100); do curl -sf "$BASE/health/live" >/dev/null && break; sleep 0.1; done

echo "registering $CONNS users with a password and a passkey" >&2
mkdir -p "$WORK/passkeys"
field() { python3 -c "import json, sys; print(json.dumps(json.load(sys.stdin)$1))"; }
for i in $(seq 0 $((CONNS - 1))); do
    access=$(curl -sf -XPOST "$BASE/v1/registrations" -H 'content-type: application/json' \
        -d "{\"login\":{\"type\":\"email\",\"identifier\":\"bench-$i@bench.example\"},\"password\":\"$BENCH_PASSWORD\"}" |
        field '["access_token"]' | tr -d '"')
    curl -sf -XPOST "$BASE/v1/me/passkeys/begin" -H "authorization: Bearer $access" >"$WORK/begin.json"
    field '["options"]' <"$WORK/begin.json" |
        "$venv/bin/python" tests/support/authenticator.py create "$WORK/passkeys/$i.json" >"$WORK/credential.json"
    ceremony=$(field '["ceremony_id"]' <"$WORK/begin.json")
    curl -sf -o /dev/null -XPOST "$BASE/v1/me/passkeys/finish" -H "authorization: Bearer $access" \
        -H 'content-type: application/json' -d "{\"ceremony_id\":$ceremony,\"credential\":$(cat "$WORK/credential.json")}"
done

cat bench/sign_in.lua bench/report.lua >"$WORK/sign_in.lua"
echo "wrk: password sign-in" >&2
PASSWORD=$(wrk -t2 -c4 -d"${DURATION}s" --timeout 30s -s "$WORK/sign_in.lua" "$BASE/v1/sessions" | grep '^RESULT')
echo "passkey sign-in" >&2
PASSKEY=$($LOAD "$BASE" "$WORK/passkeys" $CONNS "$DURATION" $RP $ORIGIN | grep '^RESULT')
STORE=${BENCH_DATABASE_URL:+PostgreSQL}
STORE=${STORE:-embedded SQLite}
get() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

echo "Date: $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr); store: $STORE"
echo
echo "| scenario | connections | sign-ins/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|---|"
echo "| password | 4 | $(get "$PASSWORD" rps) | $(get "$PASSWORD" p50_ms) | $(get "$PASSWORD" p99_ms) | $(get "$PASSWORD" errors) |"
echo "| passkey (begin + finish) | $CONNS | $(get "$PASSKEY" rps) | $(get "$PASSKEY" p50_ms) | $(get "$PASSKEY" p99_ms) | $(get "$PASSKEY" errors) |"
echo
echo "Passkey ÷ password: $(awk -v a="$(get "$PASSKEY" rps)" -v b="$(get "$PASSWORD" rps)" 'BEGIN { printf "%.0f", a / b }')×"
