"""Several nodes and durability (issue 19), in one run:

- deploy on node A -> first 200 from node B, two nodes on one PostgreSQL
  database sharing a storage directory (`file://`), each round a new
  function (so B reads the component from the database and compiles it);
- records created per second with `--durability fast` and `safe`, on SQLite
  and (with --postgres) PostgreSQL, rounds interleaved A B A B; prints the
  median and the range of safe/fast.

    python3 bench/cluster.py --aura target/release/aura \
        --wasm target/wasm32-wasip2/release/hello.wasm \
        --postgres postgres://postgres@127.0.0.1:5432/postgres
"""

import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time

from bench import Aura, get, wait_for_200, wrk
from db import POST_LUA, fresh_postgres, request


def serve(binary, data_dir, extra, env=None):
    aura = Aura(binary, data_dir)
    aura.proc = subprocess.Popen(
        [binary, "serve", "--addr", f"127.0.0.1:{aura.port}", "--s3-addr", "off",
         "--data-dir", data_dir, "--sign-in-link", "never", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "AURA_LOG": "warn", **(env or {})})
    wait_for_200(aura.port, "/api/health")
    return aura


def deploy_to_other_node(args, rounds):
    """Seconds from the start of a deploy on A to the first 200 on B."""
    database, drop = fresh_postgres(args.postgres)
    with tempfile.TemporaryDirectory() as tmp:
        a = serve(args.aura, os.path.join(tmp, "a"), ["--database", database])
        try:
            with open(os.path.join(a.data_dir, "master.key")) as f:
                key = f.read().strip()
            b = serve(args.aura, os.path.join(tmp, "b"), [
                "--database", database,
                "--storage-url", "file://" + os.path.join(a.data_dir, "storage")],
                {"AURA_ADMIN_TOKEN": a.token(), "AURA_MASTER_KEY": key})
            try:
                deploys, firsts = [], []
                for n in range(rounds):
                    name = f"hello-{n}"
                    started = time.monotonic()
                    a.deploy(name, args.wasm)
                    deploys.append(time.monotonic() - started)
                    while True:
                        status, _ = get(b.port, f"/fn/{name}")
                        if status == 200:
                            break
                        time.sleep(0.001)
                    firsts.append(time.monotonic() - started)
                return deploys, firsts
            finally:
                b.stop()
        finally:
            a.stop()
            drop()


def creates_per_second(args, database, durability, script):
    with tempfile.TemporaryDirectory() as tmp:
        extra = ["--durability", durability]
        if database:
            extra += ["--database", database]
        aura = serve(args.aura, tmp, extra)
        try:
            token = f"Bearer {aura.token()}"
            request(aura.port, "PUT", "/api/collections/posts", {
                "name": "posts",
                "fields": [{"name": "title", "type": "text"}, {"name": "views", "type": "number"}],
                "createRule": ""}, token)
            url = f"http://127.0.0.1:{aura.port}/api/collections/posts/records"
            wrk(url, args.connections, 1, script)  # warm-up
            return wrk(url, args.connections, args.seconds, script)["rps"]
        finally:
            aura.proc.send_signal(signal.SIGTERM)
            aura.proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aura", required=True)
    ap.add_argument("--wasm", required=True, help="a wasi:http hello component")
    ap.add_argument("--postgres", help="a PostgreSQL URL; scratch databases are made beside it")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()

    print("| measure | median | range |")
    print("|---|---|---|")
    if args.postgres:
        deploys, firsts = deploy_to_other_node(args, 5)
        ms = lambda xs: f"{statistics.median(xs) * 1000:.0f} ms | {min(xs) * 1000:.0f}–{max(xs) * 1000:.0f} ms"
        print(f"| deploy on A answered | {ms(deploys)} |")
        print(f"| deploy on A -> first 200 on B | {ms(firsts)} |")

    with tempfile.TemporaryDirectory() as scripts:
        script = os.path.join(scripts, "create.lua")
        with open(script, "w") as f:
            f.write(POST_LUA)
        backends = [("SQLite", None)]
        if args.postgres:
            backends.append(("PostgreSQL", "postgres"))
        for label, kind in backends:
            rps = {"fast": [], "safe": []}
            for _ in range(args.rounds):
                for mode in ["fast", "safe"]:
                    database, drop = (fresh_postgres(args.postgres) if kind else (None, lambda: None))
                    try:
                        rps[mode].append(creates_per_second(args, database, mode, script))
                    finally:
                        drop()
            ratios = [s / f for f, s in zip(rps["fast"], rps["safe"])]
            for mode in ["fast", "safe"]:
                values = rps[mode]
                print(f"| {label} creates/s, `{mode}` | {statistics.median(values):.0f} | "
                      f"{min(values):.0f}–{max(values):.0f} |")
            print(f"| {label} safe / fast | {statistics.median(ratios):.2f} | "
                  f"{min(ratios):.2f}–{max(ratios):.2f} |")


if __name__ == "__main__":
    main()
