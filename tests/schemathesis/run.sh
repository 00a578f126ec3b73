#!/usr/bin/env bash
# Schemathesis (PyPI) against the committed openapi/openapi.json on a running fenpay
# (development, a temp SQLite database, the in-process emulator): every operation,
# authenticated as a user and then as an admin, in all phases (examples, coverage,
# fuzzing, stateful). Any 5xx, any answer the document does not describe (status,
# content type, headers, body schema) fails the run.
#   SCHEMATHESIS_MAX_EXAMPLES  cases per operation and phase (default 25)
#   SCHEMATHESIS_MAX_TIME      time budget in seconds for each of the two runs (default 60)
#   SCHEMATHESIS_SEED          replay a run (printed at its start)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

venv="$here/.venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"

cargo build -q -p fenpay
target_dir=$(cargo metadata -q --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
data=$(mktemp -d)
pid=
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; rm -rf "$data"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
base="http://127.0.0.1:$port"
export APP_ENV=development DATA_DIR="$data" DATABASE_URL="sqlite://$data/fenpay.db" \
  BIND_ADDR="127.0.0.1:$port" EMULATOR_BIND="127.0.0.1:$(free_port)" STATIC_DIR="$data/no-spa" \
  LOGIN_MAX_FAILURES=1000000 LOGIN_ACCOUNT_MAX_FAILURES=1000000 REGISTER_MAX_PER_IP=1000000 \
  CREATE_ORDER_MAX_PER_USER=1000000 STREAM_MAX_PER_USER=100000 RUST_LOG="${RUST_LOG:-warn}"
"$target_dir/debug/fenpay" serve >"$data/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 150); do
  curl -fs "$base/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fs "$base/readyz" >/dev/null || { echo "fenpay did not start"; cat "$data/server.log"; exit 1; }

# token USER: register USER (password password-USER) and sign in.
token() {
  curl -fs -XPOST "$base/api/v1/auth/register" -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"password-$1\",\"email\":\"$1@example.com\"}" >/dev/null
  curl -fs -XPOST "$base/api/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"password\":\"password-$1\"}" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}
user_token=$(token st-user)
token st-admin >/dev/null
FENPAY_ADMIN_PASSWORD=password-st-admin "$target_dir/debug/fenpay" create-admin \
  --username st-admin --email st-admin@example.com >/dev/null
# create-admin revoked the admin's earlier tokens: sign in again (the server's cache of
# token versions lasts AUTH_CACHE_TTL_SECS; this token is newer, so it is read at once).
admin_token=$(curl -fs -XPOST "$base/api/v1/auth/login" -H 'content-type: application/json' \
  -d '{"username":"st-admin","password":"password-st-admin"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
# Something for the stateful phase and the examples to find: an order of each user.
for t in "$user_token" "$admin_token"; do
  curl -fs -XPOST "$base/api/v1/payment/create-order" -H "authorization: Bearer $t" \
    -H 'content-type: application/json' \
    -d '{"product_type":"points","product_id":1,"payment_method":"wechat"}' >/dev/null
done

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
status=0
for who in user admin; do
  if [ "$who" = user ]; then t=$user_token; else t=$admin_token; fi
  echo "-- schemathesis as $who"
  # logout-all would revoke the token the rest of the run uses: it runs on its own below.
  "$venv/bin/schemathesis" run "$root/openapi/openapi.json" --url "$base" \
    -H "Authorization: Bearer $t" \
    --phases examples,coverage,fuzzing,stateful \
    --checks "$checks" \
    --exclude-path /api/v1/auth/logout-all \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" \
    --max-time "${SCHEMATHESIS_MAX_TIME:-60}" \
    ${SCHEMATHESIS_SEED:+--seed "$SCHEMATHESIS_SEED"} \
    --workers 1 --no-color --suppress-health-check all \
    --report junit --report-dir "$data/report-$who" || status=1
done
echo "-- schemathesis: logout-all"
"$venv/bin/schemathesis" run "$root/openapi/openapi.json" --url "$base" \
  -H "Authorization: Bearer $(token st-leaver)" \
  --include-path /api/v1/auth/logout-all --checks "$checks" \
  --max-examples 10 --no-color --suppress-health-check all || status=1
if [ "$status" != 0 ]; then
  echo "schemathesis found problems; server log tail:"
  tail -n 50 "$data/server.log"
fi
exit $status
