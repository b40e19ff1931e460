#!/usr/bin/env bash
# Benchmarks Aura against `wasmtime serve` on the same component, in one run.
# Installs its tools (wrk from Debian, wasmtime-cli 48 from crates.io into a
# cache outside the repository), builds release binaries, and prints a
# Markdown table. Loopback only; every load run is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${AURA_BENCH_TOOLS:-$HOME/.cache/aura-bench}"
target="${CARGO_TARGET_DIR:-$PWD/target}"

if ! command -v wrk >/dev/null 2>&1; then
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
if [ ! -x "$tools/bin/wasmtime" ]; then
    # Only what `wasmtime serve` needs, to keep the build short.
    cargo install wasmtime-cli --version 48.0.8 --locked --root "$tools" \
        --no-default-features --features run,serve,component-model-async,cranelift,pooling-allocator,parallel-compilation,cache
fi
rustup target add wasm32-wasip2 >/dev/null
cargo build --release -p aura
cargo build --release --target wasm32-wasip2 -p hello -p pricing -p checkout

exec python3 bench/bench.py \
    --aura "$target/release/aura" \
    --wasmtime "$tools/bin/wasmtime" \
    --component "$target/wasm32-wasip2/release/hello.wasm" \
    --pricing "$target/wasm32-wasip2/release/pricing.wasm" \
    --checkout "$target/wasm32-wasip2/release/checkout.wasm" "$@"
