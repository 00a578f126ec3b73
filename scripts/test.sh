#!/usr/bin/env bash
# The README test command: every test.
#   1. Rust unit + integration tests (SQLite always; PostgreSQL too when TEST_DATABASE_URL is set)
#   2. Interop: third-party WeChat Pay / Alipay SDKs (PyPI) against our emulator
#   3. API fuzzing: schemathesis (PyPI) against openapi/openapi.json on a running server
#   4. Browser end-to-end tests (Playwright + Chromium) when Chromium is installed
# Set SKIP_INTEROP=1, SKIP_SCHEMATHESIS=1 or SKIP_E2E=1 to skip a stage locally.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

echo "== cargo test (TEST_DATABASE_URL=${TEST_DATABASE_URL:-<unset: SQLite only>})"
cargo test --workspace --exclude frontend
echo "== the Alipay flow tests again, fenpay's client over OpenAPI v3 (ALIPAY_API=v3)"
TEST_ALIPAY_API=v3 cargo test -p fenpay-tests --test alipay_flow
# The web app's pure logic (amount parsing, QR, time formatting) runs natively too.
cargo test -p frontend --lib

if [ "${SKIP_INTEROP:-0}" != 1 ] && [ -d tests/interop ]; then
  echo "== interop: third-party SDKs against the emulator"
  bash tests/interop/run.sh
fi

if [ "${SKIP_SCHEMATHESIS:-0}" != 1 ] && [ -d tests/schemathesis ]; then
  echo "== schemathesis: the API against its OpenAPI document"
  bash tests/schemathesis/run.sh
fi

if [ "${SKIP_E2E:-0}" != 1 ] && [ -f tests/e2e/package.json ]; then
  if [ -x /usr/bin/chromium ]; then
    echo "== browser end-to-end"
    bash scripts/build-frontend.sh
    bash tests/e2e/run.sh
  else
    echo "== browser end-to-end SKIPPED: /usr/bin/chromium missing (apt-get install -y chromium)"
  fi
fi
echo "== all tests passed"
