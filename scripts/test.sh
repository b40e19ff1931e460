#!/usr/bin/env bash
# Runs Aura's whole test suite from a fresh checkout: installs the wasm
# target, builds the guest components (examples and test components), checks
# formatting and lints, builds the TypeScript and Python examples with
# `aura build`, runs the host's unit and end-to-end tests, schemathesis
# against the OpenAPI document, a short run of each fuzz target, checks
# compose.yaml, then the dashboard's and the JavaScript SDK's tests.
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
cargo clippy --locked -p aura -p aura-filter --all-targets -- -D warnings
cargo clippy --locked --release --target wasm32-wasip2 --workspace --exclude aura -- -D warnings

echo "== TypeScript and Python functions: the examples' pinned tools, aura build, declarations"
cargo build --locked -p aura
target_dir="${CARGO_TARGET_DIR:-target}"
aura_bin="$(realpath "$target_dir")/debug/aura"
(cd examples && npm ci --no-audit --no-fund --loglevel=error)
for example in ts-hello ts-todo; do
    (cd "examples/$example" && "$aura_bin" build && ../node_modules/.bin/tsc --noEmit -p .)
done
node scripts/platform-types.mjs
[ -x examples/.venv/bin/componentize-py ] || python3 -m venv examples/.venv
examples/.venv/bin/pip install --quiet --disable-pip-version-check -r examples/py-hello/requirements.txt
(cd examples/py-hello && "$aura_bin" build)

echo "== tests (with a pinned awscli for the S3 port)"
[ -x tests/awscli/.venv/bin/aws ] || python3 -m venv tests/awscli/.venv
tests/awscli/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/awscli/requirements.txt
AURA_TEST_AWSCLI="$(realpath tests/awscli/.venv/bin/aws)"
export AURA_TEST_AWSCLI
cargo test --locked -p aura -p aura-filter

echo "== API property tests: schemathesis against the OpenAPI document, as admin and as a user"
# The newest CPython here: 3.11.7 raises "SystemError: AST constructor recursion
# depth mismatch" (CPython gh-106905) inside hypothesis now and then.
newest_python() {
    local version found
    for version in 3.13 3.12; do
        if "python$version" -c '' >/dev/null 2>&1; then echo "python$version"; return; fi
        if command -v pyenv >/dev/null 2>&1; then
            found="$(ls -d "$(pyenv root)"/versions/"$version".*/bin/python3 2>/dev/null | sort -V | tail -n 1)"
            if [ -n "$found" ]; then echo "$found"; return; fi
        fi
    done
    echo python3
}
[ -x tests/api/.venv/bin/schemathesis ] || "$(newest_python)" -m venv tests/api/.venv
tests/api/.venv/bin/python --version
tests/api/.venv/bin/pip install --quiet --disable-pip-version-check -r tests/api/requirements.txt
tests/api/.venv/bin/python tests/api/run.py "$aura_bin" 60

echo "== fuzzing: each target for 60 s from its committed corpus"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz@0.13.2
for target in filter filter_rows keys migration multipart s3 schedule split; do
    scratch="$(mktemp -d)"
    (cd fuzz && cargo fuzz run -s none "$target" "$scratch" "corpus/$target" -- -max_total_time=60)
    rm -rf "$scratch"
done

echo "== compose.yaml: valid as Compose reads it (no engine runs here to start it)"
if ! command -v docker-compose >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y docker-compose >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y docker-compose >/dev/null; })
fi
AURA_ADMIN_TOKEN="$(printf 'x%.0s' $(seq 40))" AURA_MASTER_KEY="$(printf 'k%.0s' $(seq 44))" AURA_S3_SECRET=check \
    docker-compose -f compose.yaml config -q

echo "== dashboard: rebuild, compare with the committed dist, browser tests"
if ! command -v chromium >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1; then
        (apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; })
    fi
fi
(cd dashboard && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent >/dev/null)
if [ -n "$(git status --porcelain -- dashboard/dist)" ]; then
    git status --porcelain -- dashboard/dist
    echo "dashboard/dist differs from a fresh build: run 'npm run build' in dashboard/ and commit it" >&2
    exit 1
fi
# The binary the e2e tests used; the browser tests start it the same way.
(cd dashboard && AURA_BIN="$(cd .. && realpath "$target_dir")/debug/aura" \
    AURA_WASM_DIR="$(cd .. && realpath "$target_dir")/wasm32-wasip2/release" npm test)

echo "== JavaScript SDK: build, tests against the binary, bundle size"
(cd sdk/js && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent \
    && AURA_BIN="$(cd ../.. && realpath "$target_dir")/debug/aura" \
       AURA_WASM_DIR="$(cd ../.. && realpath "$target_dir")/wasm32-wasip2/release" npm test \
    && npm run size --silent)
