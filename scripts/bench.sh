#!/usr/bin/env bash
# Benchmark: prints figures and writes them to BENCHMARKS.md (timings are never asserted in
# tests). Release build; server, emulator and load generator (wrk) share this machine.
#   scripts/bench.sh [ORDERS]     ORDERS for the in-process product run (default 200)
# PostgreSQL is measured too when TEST_DATABASE_URL is set (a fresh database is created);
# BENCH_BUYERS, BENCH_LOAD_ORDERS, BENCH_SECS size the HTTP load; BENCH_HTTP=0 skips it.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v wrk >/dev/null 2>&1; then
  (apt-get install -y wrk >/dev/null 2>&1) || (apt-get update >/dev/null && apt-get install -y wrk >/dev/null)
fi
if [ -z "${TEST_DATABASE_URL:-}" ] && pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  export TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
fi
ulimit -n 65536 2>/dev/null || true

cargo build --release -q -p fenpay-tests --bin bench
out=$(mktemp)
trap 'rm -f "$out"' EXIT
RUST_LOG=error target/release/bench "${1:-200}" | tee "$out"

{
  echo "# fenpay benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d) at commit $(git describe --always --dirty 2>/dev/null || echo '?'),"
  echo "on $(nproc) vCPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
  echo "$(free -g | awk '/^Mem:/{print $2}') GiB RAM. Release build; the server, the emulator and the load generator"
  echo "share these cores, so every figure is read against the trivial route measured in the same run."
  echo
  sed '1d' "$out"
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
