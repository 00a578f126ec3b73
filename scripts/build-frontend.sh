#!/usr/bin/env bash
# Builds the Leptos web client into frontend/dist (served by the backend as static files).
#
#   scripts/build-frontend.sh [--force]
#
# Installs what it needs on first use (the wasm32 target, the matching wasm-bindgen CLI),
# and skips the build when frontend/dist is newer than every input, unless --force.
# Honours CARGO_TARGET_DIR. No wasm-opt: Debian's binaryen emits modules Chromium rejects.
set -euo pipefail

ORIG_PWD="$PWD"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force | -f) FORCE=1 ;;
    -h | --help)
      sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "build-frontend: unknown argument: $arg" >&2
      exit 2
      ;;
  esac
done

TARGET=wasm32-unknown-unknown
PROFILE=wasm-release
DIST="$ROOT/frontend/dist"
STAMP="$DIST/.build-stamp"
INPUTS=(frontend/src frontend/index.html frontend/style.css frontend/Cargo.toml api-types/src api-types/Cargo.toml)

# The CLI must be exactly the version the crate pins (`wasm-bindgen = "=X.Y.Z"`).
BINDGEN_VERSION="$(sed -n 's/^wasm-bindgen *= *"=\([0-9][0-9.]*\)".*/\1/p' frontend/Cargo.toml | head -n1)"
BINDGEN_VERSION="${BINDGEN_VERSION:-0.2.130}"

size_report() {
  local wasm="$DIST/frontend_bg.wasm"
  [[ -f "$wasm" ]] || return 0
  local raw gz
  raw="$(wc -c <"$wasm" | tr -d ' ')"
  gz="$(gzip -9 -c "$wasm" | wc -c | tr -d ' ')"
  echo "build-frontend: frontend_bg.wasm ${raw} bytes ($((raw / 1024)) KiB), gzip -9 ${gz} bytes ($((gz / 1024)) KiB)"
}

up_to_date() {
  [[ -f "$STAMP" && -f "$DIST/frontend.js" && -f "$DIST/frontend_bg.wasm" && -f "$DIST/index.html" && -f "$DIST/style.css" ]] || return 1
  local newer
  newer="$(find "${INPUTS[@]}" -newer "$STAMP" -print -quit 2>/dev/null || true)"
  [[ -z "$newer" ]]
}

if [[ "$FORCE" -eq 0 ]] && up_to_date; then
  echo "build-frontend: frontend/dist is up to date (use --force to rebuild)"
  size_report
  exit 0
fi

# 1. The wasm32 target.
if command -v rustup >/dev/null 2>&1; then
  if ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "build-frontend: installing the $TARGET target"
    rustup target add "$TARGET"
  fi
else
  echo "build-frontend: rustup not found; assuming the $TARGET target is available" >&2
fi

# 2. The wasm-bindgen CLI, same version as the crate.
installed="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
if [[ "$installed" != "$BINDGEN_VERSION" ]]; then
  echo "build-frontend: installing wasm-bindgen-cli $BINDGEN_VERSION (found: ${installed:-none})"
  # No --locked: the CLI's lockfile pins a crate version the registry no longer has.
  cargo install wasm-bindgen-cli --version "$BINDGEN_VERSION"
fi

# 3. Where cargo puts artifacts: CARGO_TARGET_DIR (relative to the caller's cwd) or ./target.
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
  case "$CARGO_TARGET_DIR" in
    /*) ;;
    *) CARGO_TARGET_DIR="$ORIG_PWD/$CARGO_TARGET_DIR" ;;
  esac
  export CARGO_TARGET_DIR
  TARGET_DIR="$CARGO_TARGET_DIR"
else
  TARGET_DIR="$ROOT/target"
fi

# Stamp the start, not the end: an input edited during the build must trigger the next one.
started_stamp="$(mktemp "${TMPDIR:-/tmp}/fenpay-frontend-stamp.XXXXXX")"
trap 'rm -f "$started_stamp"' EXIT

echo "build-frontend: cargo build -p frontend --target $TARGET --profile $PROFILE"
# Ask cargo where the module went (a cargo wrapper may choose another target dir).
WASM="$(cargo build -p frontend --target "$TARGET" --profile "$PROFILE" --message-format=json-render-diagnostics |
  sed -n 's/.*"filenames":\["\([^"]*\/frontend\.wasm\)".*/\1/p' | tail -n1)"
WASM="${WASM:-$TARGET_DIR/$TARGET/$PROFILE/frontend.wasm}"
if [[ ! -f "$WASM" ]]; then
  echo "build-frontend: expected $WASM after the build" >&2
  exit 1
fi

# 4. Bindings + static files into a clean dist.
rm -rf "$DIST"
mkdir -p "$DIST"
# The name section (function names for stack traces) is ~40% of the module: drop it.
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section \
  --out-dir "$DIST" "$WASM"
cp frontend/index.html frontend/style.css "$DIST/"
touch -r "$started_stamp" "$STAMP"

echo "build-frontend: wrote $DIST"
size_report
