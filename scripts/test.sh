#!/usr/bin/env bash
# Runs Aura's whole test suite from a fresh checkout: installs the wasm
# target, builds the guest components (examples and test components), checks
# formatting and lints, then runs the host's unit and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v rustup >/dev/null 2>&1; then
    rustup target add wasm32-wasip2 >/dev/null
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

echo "== building guest components (wasm32-wasip2)"
cargo build --release --locked --target wasm32-wasip2 --workspace --exclude aura

echo "== formatting and lints"
cargo fmt --all --check
cargo clippy --locked -p aura --all-targets -- -D warnings
cargo clippy --locked --release --target wasm32-wasip2 --workspace --exclude aura -- -D warnings

echo "== tests"
cargo test --locked -p aura
