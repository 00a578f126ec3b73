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
# Starts `fenpay emulator` on a free port with fresh TEST keys in a temp DATA_DIR.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"

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

cargo build -q -p fenpay
# Where cargo put it (CARGO_TARGET_DIR, a config's target-dir or a cargo wrapper decide).
target_dir=$(cargo metadata -q --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
data=$(mktemp -d)
emu_pid=
trap 'if [ -n "$emu_pid" ]; then kill "$emu_pid" 2>/dev/null || true; fi; rm -rf "$data"' EXIT

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
for mode in public_key certificate; do
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
exit $status
