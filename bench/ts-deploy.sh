#!/usr/bin/env bash
# Deploy → first response of TypeScript functions, on a fresh data
# directory: the first deploy (nothing cached), another function on the same
# engine (the incremental cache has its functions), a changed build of the
# first (the usual redeploy), and the same bytes again (the artifact cache).
# Needs the examples built (`aura build` in examples/ts-hello, ts-todo).
#   AURA_BIN=target/release/aura bash bench/ts-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
aura="${AURA_BIN:-target/release/aura}"
data="$(mktemp -d)"
port=$((20000 + RANDOM % 20000))
"$aura" serve --addr "127.0.0.1:$port" --s3-addr off --data-dir "$data" --sign-in-link never >/dev/null 2>&1 &
server=$!
trap 'kill $server; rm -rf "$data" "${changed:-}"' EXIT
until [ -s "$data/admin.token" ] && curl -s "http://127.0.0.1:$port/api/health" >/dev/null; do sleep 0.1; done
token="$(cat "$data/admin.token")"
deploy() { # name component path label: seconds from upload to the first answer
    local start end
    start=$(date +%s.%N)
    curl -sf -o /dev/null -F "component=@$2" -F 'config={"grants":{"collections":{"todos":"read-write"}}}' \
        -H "authorization: Bearer $token" "http://127.0.0.1:$port/api/admin/functions/$1/versions"
    # Any answer of the function counts (ts-todo has no collection here).
    until curl -s -o /dev/null "http://127.0.0.1:$port/fn/$1$3"; do sleep 0.05; done
    end=$(date +%s.%N)
    printf '| %s | %.2f s |\n' "$4" "$(echo "$end - $start" | bc)"
}
# A changed build: the same engine, other JavaScript, in a copy of the example.
changed="$(mktemp -d)"
cp -r examples/ts-hello/package.json examples/ts-hello/aura.toml examples/ts-hello/src "$changed/"
ln -s "$PWD/examples/node_modules" "$changed/node_modules"
sed -i 's/Hello from TypeScript!/Hello again!/' "$changed/src/index.ts"
(cd "$changed" && "$aura" build >/dev/null 2>&1)
echo "| deploy of | deploy → first response |"
echo "|---|---|"
deploy hello examples/ts-hello/dist/ts-hello.wasm / "ts-hello, first (nothing cached)"
deploy todo examples/ts-todo/dist/ts-todo.wasm /todos "ts-todo, another function on the same engine"
deploy hello "$changed/dist/ts-hello.wasm" / "ts-hello changed (a redeploy)"
deploy hello "$changed/dist/ts-hello.wasm" / "the same bytes again"
