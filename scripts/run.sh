#!/usr/bin/env bash
# The README run command: build the SPA (installing the wasm target and wasm-bindgen-cli
# when missing) and start everything on SQLite with the provider emulator:
#   http://127.0.0.1:8080  (SPA, API under /api/v1, Swagger UI at /docs/)
#   http://127.0.0.1:8090  (WeChat Pay v3 + Alipay emulator)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-frontend.sh
# The allocator (mimalloc) hands freed memory back at once and commits arenas lazily:
# ~22 MiB idle instead of ~55 (see BENCHMARKS.md).
export MIMALLOC_ARENA_EAGER_COMMIT="${MIMALLOC_ARENA_EAGER_COMMIT:-0}" MIMALLOC_PURGE_DELAY="${MIMALLOC_PURGE_DELAY:-0}"
# The emulator learns where to send complaint notifications (消费者投诉) at start-up.
export WECHAT_COMPLAINTS_REGISTER="${WECHAT_COMPLAINTS_REGISTER:-true}"
exec cargo run -p fenpay -- serve "$@"
