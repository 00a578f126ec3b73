#!/usr/bin/env bash
# Interop: widely used third-party SDKs drive our emulator as if it were the provider.
#   - PyPI wechatpayv3 (WeChat Pay v3), once per merchant mode, set explicitly:
#       public_key   a merchant with the WeChat Pay public key only (the emulator's default)
#       certificate  a merchant with platform certificates (the SDK in both its
#                    public-key and its certificate mode)
#   - PyPI python-alipay-sdk (Alipay RSA2), once per app mode, set explicitly the same way:
#       public_key (AliPay) and certificate (DCAliPay over the key set's TEST chain)
#   - PyPI alipay-sdk-python (the official Alipay SDK; its own venv, .venv-alipay-official,
#     because its `alipay` package clashes with python-alipay-sdk's)
#   - npm wechatpay-axios-plugin (WeChat Pay v3, both merchant modes; verifies every
#     answer, errors included) and npm alipay-sdk v4 (gateway.do with validateSign,
#     pageExecute, notification checkNotifySignV2): tests/interop/node, pinned by its
#     package-lock.json and installed with `npm ci`
#   - PyPI epay-sdk (an epay / 易支付 merchant client, requirements-epay.txt) against a full
#     `fenpay serve` (APP_ENV=development: the emulator runs in-process) on free ports with
#     its own temp DATA_DIR, and a merchant app made by `fenpay app create --epay` while it
#     runs: mapi.php, submit.php, notifications verified by the library, api.php
# Starts `fenpay emulator` on a free port with fresh TEST keys in a temp DATA_DIR.
#
# Env: INTEROP_ONLY=epay runs only the epay test; INTEROP_ONLY=sdk only the provider SDK
#      tests; unset: everything.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
only=${INTEROP_ONLY:-}
case "$only" in
  "" | epay | sdk) ;;
  *) echo "INTEROP_ONLY must be epay or sdk (or unset)" >&2; exit 2 ;;
esac
run_sdk() { [ "$only" != epay ]; }
run_epay() { [ "$only" != sdk ]; }

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if run_sdk; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
fi
if run_epay; then
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements-epay.txt"
fi

node_dir=
if run_sdk; then
  official_venv="$here/.venv-alipay-official"
  if [ ! -x "$official_venv/bin/python" ]; then
    python3 -m venv "$official_venv"
  fi
  "$official_venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements-alipay-official.txt"

  node_dir="$here/node"
  if command -v npm >/dev/null 2>&1; then
    (cd "$node_dir" && npm ci --no-audit --no-fund --silent)
  else
    echo "npm not found: the npm SDK interop runs are skipped" >&2
    node_dir=
  fi
fi

cargo build -q -p fenpay
# Where cargo put it (CARGO_TARGET_DIR, a config's target-dir or a cargo wrapper decide).
target_dir=$(cargo metadata -q --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
data=$(mktemp -d)
emu_pid=
serve_pid=
trap 'for p in $emu_pid $serve_pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$data"' EXIT

# start_emulator MODE: a fresh `fenpay emulator` whose WeChat merchant is in MODE.
start_emulator() {
  if [ -n "$emu_pid" ]; then
    kill "$emu_pid" 2>/dev/null || true
    wait "$emu_pid" 2>/dev/null || true
  fi
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  APP_ENV=development DATA_DIR="$data" EMULATOR_BIND="127.0.0.1:$port" EMULATOR_TIME_SCALE=100 \
    EMULATOR_WECHAT_MODE="$1" EMULATOR_ALIPAY_MODE="$1" RUST_LOG=warn "$target_dir/debug/fenpay" emulator >"$data/emulator-$1.log" 2>&1 &
  emu_pid=$!
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/__emulator/faults" >/dev/null 2>&1 && break
    sleep 0.2
  done
  export FENPAY_EMULATOR_URL="http://127.0.0.1:$port" FENPAY_WECHAT_MODE="$1" FENPAY_ALIPAY_MODE="$1"
}

export FENPAY_DEV_KEYS="$data/dev-keys"
export FENPAY_WECHAT_MCH_ID=1900000109 FENPAY_WECHAT_APP_ID=wxd0000000000emu01 FENPAY_ALIPAY_APP_ID=2021000000000001
status=0
modes="public_key certificate"
run_sdk || modes=
for mode in $modes; do
  start_emulator "$mode"
  for t in "$here"/wechat_sdk_test.py "$here"/alipay_sdk_test.py; do
    [ -f "$t" ] || continue
    echo "-- $(basename "$t") (EMULATOR_WECHAT_MODE=$mode EMULATOR_ALIPAY_MODE=$mode)"
    "$venv/bin/python" "$t" || { status=1; echo "FAILED: $(basename "$t") ($mode)"; tail -n 30 "$data/emulator-$mode.log"; }
  done
  if [ "$mode" = public_key ]; then
    echo "-- alipay_official_sdk_test.py"
    "$official_venv/bin/python" "$here/alipay_official_sdk_test.py" || { status=1; echo "FAILED: alipay_official_sdk_test.py"; tail -n 30 "$data/emulator-$mode.log"; }
  fi
  if [ -n "$node_dir" ]; then
    for t in wechat.js alipay.js; do
      if [ "$mode" != public_key ] && [ "$t" = alipay.js ]; then continue; fi
      echo "-- node/$t (EMULATOR_WECHAT_MODE=$mode)"
      node "$node_dir/$t" || { status=1; echo "FAILED: node/$t ($mode)"; tail -n 30 "$data/emulator-$mode.log"; }
    done
  fi
done
if [ -n "$emu_pid" ]; then
  kill "$emu_pid" 2>/dev/null || true
  wait "$emu_pid" 2>/dev/null || true
  emu_pid=
fi

# epay: a throw-away `fenpay serve` in development mode (in-process emulator) with its own
# DATA_DIR, cwd there so no developer .env is read; a private copy of the binary, so a
# build in the shared target dir cannot swap it mid-run.
if run_epay; then
  epay_dir="$data/epay"
  mkdir -p "$epay_dir"
  cp "$target_dir/debug/fenpay" "$epay_dir/fenpay"
  read -r epay_port epay_emu < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()')
  # fenpay_epay ARGS...: the binary with the instance's environment, in its DATA_DIR.
  fenpay_epay() {
    (cd "$epay_dir" && exec env -u DATABASE_URL -u PUBLIC_BASE_URL -u JWT_SECRET \
      APP_ENV=development DATA_DIR="$epay_dir" BIND_ADDR="127.0.0.1:$epay_port" \
      EMULATOR_BIND="127.0.0.1:$epay_emu" EMULATOR_TIME_SCALE=100 DEV_KEYS_DIR="$data/dev-keys" \
      DISPATCH_INTERVAL_SECS=1 WEBHOOK_BACKOFF_BASE_SECS=1 RUST_LOG=warn "$epay_dir/fenpay" "$@")
  }
  fenpay_epay serve >"$epay_dir/serve.log" 2>&1 &
  serve_pid=$!
  up=
  for _ in $(seq 1 300); do
    if curl -fs "http://127.0.0.1:$epay_port/healthz" >/dev/null 2>&1; then up=1; break; fi
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "-- epay_sdk_test.py (fenpay serve on :$epay_port, emulator :$epay_emu)"
  if [ -z "$up" ]; then
    status=1
    echo "FAILED: epay: fenpay serve did not come up"
    tail -n 30 "$epay_dir/serve.log"
  # The apps are made with the server running (SQLite, the same DATA_DIR).
  elif ! shop=$(fenpay_epay app create --name "epay interop shop" --mode test --fulfilment webhook \
      --return-host shop.example.com --epay) ||
    ! other=$(fenpay_epay app create --name "epay interop other" --mode test --fulfilment webhook --epay); then
    status=1
    echo "FAILED: epay: fenpay app create"
    tail -n 30 "$epay_dir/serve.log"
  else
    field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
    FENPAY_URL="http://127.0.0.1:$epay_port" FENPAY_EMULATOR_URL="http://127.0.0.1:$epay_emu" \
      FENPAY_EPAY_PID=$(field "$shop" epay_pid) FENPAY_EPAY_KEY=$(field "$shop" epay_key) \
      FENPAY_EPAY_OTHER_KEY=$(field "$other" epay_key) \
      "$venv/bin/python" "$here/epay_sdk_test.py" ||
      { status=1; echo "FAILED: epay_sdk_test.py"; tail -n 30 "$epay_dir/serve.log"; }
  fi
fi
exit $status
