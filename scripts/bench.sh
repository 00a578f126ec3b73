#!/usr/bin/env bash
# Benchmark: prints figures (crypto, create-order latency, notification throughput, memory).
#   scripts/bench.sh [ORDERS]   (default 200; release build)
set -euo pipefail
cd "$(dirname "$0")/.."
RUST_LOG=error cargo run --release -q -p fenpay-tests --bin bench -- "${1:-200}"
