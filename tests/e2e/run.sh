#!/usr/bin/env bash
# Browser end-to-end tests: the real fenpay server + emulator + WASM SPA in the system
# Chromium (/usr/bin/chromium; playwright-core only, no browser download).
#
#   bash tests/e2e/run.sh          (from any directory)
#
# Starts two throw-away instances on free ports, each with a fresh temporary DATA_DIR:
#   main   the defaults (15-minute QR codes)
#   short  QR_CODE_EXPIRE_MINUTES=1 ORDER_EXPIRE_MINUTES=2, for the expired-QR test
# and runs e2e.mjs against them. Screenshots land in tests/e2e/screenshots/.
# Env: E2E_ONLY=<regex> runs a subset; E2E_SERIAL=1 runs the slow test on its own;
#      E2E_SKIP_FRONTEND_BUILD=1 uses frontend/dist as it is.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
started=$(date +%s)

if [ ! -x /usr/bin/chromium ]; then
  echo "e2e: /usr/bin/chromium is missing (apt-get install -y chromium)" >&2
  exit 1
fi
# Without a CJK font every Chinese label renders as boxes in the screenshots (the tests
# still pass). Best effort, like CI's Chromium install.
if command -v fc-list >/dev/null 2>&1 && [ -z "$(fc-list :lang=zh 2>/dev/null | head -n1)" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== e2e: installing a CJK font for readable screenshots (fonts-wqy-microhei)"
    (apt-get install -y fonts-wqy-microhei >/dev/null 2>&1 ||
      (apt-get update >/dev/null 2>&1 && apt-get install -y fonts-wqy-microhei >/dev/null 2>&1)) ||
      echo "e2e: could not install fonts-wqy-microhei; Chinese text in screenshots shows as boxes" >&2
  else
    echo "e2e: no CJK font installed; Chinese text in screenshots shows as boxes" >&2
  fi
fi

echo "== e2e: npm dependencies"
cd "$here"
if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
else
  npm install --no-audit --no-fund --loglevel=error
fi

echo "== e2e: build"
cd "$root"
# Ask cargo where the binary went (CARGO_TARGET_DIR, relative or not, or a cargo wrapper
# that picks another target dir).
fenpay_bin=$(cargo build -q -p fenpay --message-format=json-render-diagnostics |
  sed -n 's/.*"executable":"\([^"]*\/fenpay\)".*/\1/p' | tail -n1)
fenpay_bin=${fenpay_bin:-$root/target/debug/fenpay}
if [ "${E2E_SKIP_FRONTEND_BUILD:-0}" != 1 ]; then
  bash scripts/build-frontend.sh
fi
if [ ! -f "$root/frontend/dist/index.html" ]; then
  echo "e2e: frontend/dist is missing (bash scripts/build-frontend.sh)" >&2
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/fenpay-e2e.XXXXXX")
# A private copy: a build in a shared target dir must not swap the binary mid-run.
cp "$fenpay_bin" "$work/fenpay"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Four free ports at once (held together, so they are distinct).
read -r port_a emu_a port_b emu_b < <(node -e '
  const net = require("net");
  const servers = [0, 1, 2, 3].map(() => net.createServer());
  Promise.all(servers.map((s) => new Promise((ok) => s.listen(0, "127.0.0.1", ok)))).then(() => {
    console.log(servers.map((s) => s.address().port).join(" "));
    servers.forEach((s) => s.close());
  });')

# Reuse the integration tests' TEST keys when they exist (RSA keygen takes seconds);
# otherwise the first instance generates a set in the work dir and the second reuses it.
keys="$root/target/test-dev-keys"
if [ ! -f "$keys/wechat_public_key_id" ] || [ ! -f "$keys/alipay_platform_key.pem" ]; then
  keys="$work/dev-keys"
fi

# start NAME PORT EMULATOR_PORT [VAR=VALUE...]: one instance, cwd = its data dir so a
# developer's .env is not read.
start() {
  local name=$1 port=$2 emu=$3
  shift 3
  mkdir -p "$work/$name"
  (
    cd "$work/$name"
    exec env -u DATABASE_URL -u PUBLIC_BASE_URL -u JWT_SECRET \
      APP_ENV=development DATA_DIR="$work/$name" BIND_ADDR="127.0.0.1:$port" \
      EMULATOR_BIND="127.0.0.1:$emu" EMULATOR_TIME_SCALE=100 REGISTER_MAX_PER_IP=1000 \
      STATIC_DIR="$root/frontend/dist" DEV_KEYS_DIR="$keys" RUST_LOG="${RUST_LOG:-warn}" "$@" \
      "$work/fenpay" serve
  ) >"$work/$name.log" 2>&1 &
  pids+=($!)
}

# wait_healthy NAME PORT
wait_healthy() {
  local name=$1 port=$2 pid=${pids[-1]}
  for _ in $(seq 1 300); do
    if curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "e2e: the $name server exited during start-up:" >&2
      tail -n 40 "$work/$name.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "e2e: the $name server did not answer /healthz within 60 s:" >&2
  tail -n 40 "$work/$name.log" >&2
  exit 1
}

echo "== e2e: servers"
start main "$port_a" "$emu_a" WECHAT_COMPLAINTS_REGISTER=true
wait_healthy main "$port_a"
start short "$port_b" "$emu_b" QR_CODE_EXPIRE_MINUTES=1 ORDER_EXPIRE_MINUTES=2
wait_healthy short "$port_b"
echo "main http://127.0.0.1:$port_a (emulator :$emu_a), short-QR http://127.0.0.1:$port_b (emulator :$emu_b)"

echo "== e2e: browser tests"
status=0
# FENPAY_BIN + FENPAY_MAIN_DATA_DIR + FENPAY_DEV_KEYS_DIR let the admin tests run
# `fenpay create-admin` against the main instance's database.
FENPAY_URL="http://127.0.0.1:$port_a" FENPAY_EMULATOR_URL="http://127.0.0.1:$emu_a" \
  FENPAY_SHORT_QR_URL="http://127.0.0.1:$port_b" FENPAY_SHORT_EMULATOR_URL="http://127.0.0.1:$emu_b" \
  FENPAY_BIN="$work/fenpay" FENPAY_MAIN_DATA_DIR="$work/main" FENPAY_DEV_KEYS_DIR="$keys" \
  node "$here/e2e.mjs" || status=$?
if [ "$status" != 0 ]; then
  for name in main short; do
    echo "-- $name server log (last lines)"
    tail -n 30 "$work/$name.log" || true
  done
fi
echo "== e2e finished in $(($(date +%s) - started)) s (exit $status)"
exit "$status"
