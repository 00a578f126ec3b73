#!/usr/bin/env bash
# Interop: widely used third-party SDKs drive our emulator as if it were the provider.
#   - PyPI wechatpayv3 (WeChat Pay v3, public-key mode)
#   - PyPI python-alipay-sdk (Alipay RSA2)
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

cargo build -q -p fenpay
target_dir=${CARGO_TARGET_DIR:-$root/target}
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
APP_ENV=development DATA_DIR="$data" EMULATOR_BIND="127.0.0.1:$port" EMULATOR_TIME_SCALE=100 \
  RUST_LOG=warn "$target_dir/debug/fenpay" emulator >"$data/emulator.log" 2>&1 &
emu_pid=$!
trap 'kill $emu_pid 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/__emulator/faults" >/dev/null 2>&1 && break
  sleep 0.2
done

export FENPAY_DEV_KEYS="$data/dev-keys" FENPAY_EMULATOR_URL="http://127.0.0.1:$port"
export FENPAY_WECHAT_MCH_ID=1900000109 FENPAY_WECHAT_APP_ID=wxd0000000000emu01 FENPAY_ALIPAY_APP_ID=2021000000000001
status=0
for t in "$here"/wechat_sdk_test.py "$here"/alipay_sdk_test.py; do
  [ -f "$t" ] || continue
  echo "-- $(basename "$t")"
  "$venv/bin/python" "$t" || { status=1; echo "FAILED: $(basename "$t")"; tail -n 30 "$data/emulator.log"; }
done
exit $status
