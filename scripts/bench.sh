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
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Before anything is written (BENCHMARKS.md itself would make the tree dirty).
commit=$(git describe --always --dirty 2>/dev/null || echo '?')
cargo build --release -q -p fenpay-tests --bin bench
cargo build --release -q -p fenpay
# The web client's size (built now, before anything is measured).
wasm=$(scripts/build-frontend.sh 2>/dev/null | sed -n 's/^build-frontend: //p' | tail -n1 || true)
out=$(mktemp)
work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null
  rm -rf "$out" "$work"
}
trap cleanup EXIT
RUST_LOG=off target/release/bench "${1:-200}" | tee "$out"

# Memory of the server process alone (SQLite, emulator in process), with the allocator
# settings scripts/run.sh and the Dockerfile use: idle, then under a crowd of logins (each
# argon2id hash takes ~19 MiB while it runs).
if [ "${BENCH_HTTP:-1}" != 0 ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  emu=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  start_server() {
    (cd "$work" && exec env -u DATABASE_URL MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0 APP_ENV=development DATA_DIR="$work" BIND_ADDR="127.0.0.1:$port" \
      EMULATOR_BIND="127.0.0.1:$emu" RUST_LOG=error LOGIN_MAX_FAILURES=1000000 \
      LOGIN_ACCOUNT_MAX_FAILURES=1000000 CREATE_ORDER_MAX_PER_USER=1000000 \
      STREAM_MAX_PER_USER=100000 STREAM_MAX_TOTAL=100000 \
      "$OLDPWD/target/release/fenpay" serve >>"$work/server.log" 2>&1) &
    server=$!
    local t0; t0=$(date +%s%N)
    for _ in $(seq 1 3000); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break; sleep 0.01; done
    startup_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  }
  # Start-up to a healthy /healthz: the first start creates the database and the
  # emulator's development keys; the second is a restart.
  start_server
  first_start=$startup_ms
  kill "$server"; wait "$server" 2>/dev/null || true
  start_server
  restart=$startup_ms
  rss() { awk -v f="$1" '$1 == f":" {printf "%d", $2/1024}' "/proc/$server/status"; }
  curl -fs -XPOST "http://127.0.0.1:$port/api/v1/auth/register" -H 'content-type: application/json' \
    -d '{"username":"memory","password":"memory-password","email":"memory@example.com"}' >/dev/null
  sleep 2
  idle=$(rss VmRSS)
  cat >"$work/login.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"username":"memory","password":"memory-password"}'
wrk.headers["content-type"] = "application/json"
LUA
  crowd=$(wrk -t2 -c200 -d10s --timeout 15s -s "$work/login.lua" "http://127.0.0.1:$port/api/v1/auth/login")
  rate=$(echo "$crowd" | awk '/Requests\/sec/ {print $2}')
  busy=$(echo "$crowd" | awk '/Non-2xx/ {print $NF}')
  after=$(rss VmRSS)
  peak=$(rss VmHWM)
  # 10,000 server-sent-event streams held open (over 500 pending orders), measured once
  # every stream has had its first frame.
  n_streams=${BENCH_STREAMS:-10000}
  target/release/bench streams "http://127.0.0.1:$port" "$n_streams" 500 20 >"$work/streams.out" 2>&1 &
  streamer=$!
  for _ in $(seq 1 1200); do grep -q '^held' "$work/streams.out" && break; sleep 0.1; done
  sleep 2
  with_streams=$(rss VmRSS)
  wait "$streamer" || true
  held=$(grep '^held' "$work/streams.out" || echo "streams failed: $(tail -n3 "$work/streams.out")")
  still=$(grep 'still open' "$work/streams.out" || true)
  {
    echo
    echo "## memory of the server process (SQLite, emulator in process; mimalloc, MIMALLOC_ARENA_EAGER_COMMIT=0 MIMALLOC_PURGE_DELAY=0)"
    echo "| state | RSS |"
    echo "|---|---:|"
    echo "| idle after start-up and one registration | ${idle} MiB |"
    echo "| after 10 s of 200 concurrent logins (${rate} answers/s, ${busy:-0} of them 503 \`server_busy\`) | ${after} MiB (peak ${peak} MiB) |"
    echo "| event streams: ${held} (${still:-?}) | ${with_streams} MiB |"
    echo
    echo
    echo "web client: ${wasm:-not built}"
    echo
    echo "start-up to a healthy \`/healthz\`: ${first_start} ms the first time (creates the SQLite database and the emulator's keys), ${restart} ms on a restart; release binary $(( $(stat -c %s target/release/fenpay) / 1024 / 1024 )) MiB"
  } | tee -a "$out"
fi

{
  echo "# fenpay benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d) at commit ${commit},"
  echo "on $(nproc) vCPU ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')),"
  echo "$(free -g | awk '/^Mem:/{print $2}') GiB RAM. Release build; the server, the emulator and the load generator"
  echo "share these cores, so every figure is read against the trivial route measured in the same run."
  echo
  sed '1d' "$out"
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
