#!/usr/bin/env python3
"""Records benchmark: create, view and list (perPage 50) throughput and
latency at 50 connections, for Aura on SQLite, Aura on PostgreSQL and
PocketBase, each with the same `posts` collection (public rules) seeded with
the same records.

Run through bench/run.sh --db, which installs the tools and builds Aura.
"""
import argparse
import http.client
import json
import os
import signal
import subprocess
import tempfile
import time

from bench import Aura, free_port, wait_for_200, wrk

POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"title": "hello from wrk", "views": 7}'
"""


def request(port, method, path, body=None, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = token
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
    return json.loads(data) if data else None


def seed(port, path, count, token):
    ids = []
    for i in range(count):
        record = request(port, "POST", path, {"title": f"post {i}", "views": i}, token)
        ids.append(record["id"])
    return ids


def measure(port, records_path, view_id, connections, seconds, script_dir):
    post = os.path.join(script_dir, "post.lua")
    with open(post, "w") as f:
        f.write(POST_LUA)
    base = f"http://127.0.0.1:{port}{records_path}"
    results = {}
    for name, url, script in [
        ("view", f"{base}/{view_id}", None),
        ("list (perPage 50)", f"{base}?perPage=50", None),
        ("list (perPage 50, sort=-views)", f"{base}?perPage=50&sort=-views", None),
        ("create", base, post),
    ]:
        wrk(url, connections, 2, script)  # warm-up
        results[name] = wrk(url, connections, seconds, script)
    return results


def aura_run(binary, database, args, dir_):
    aura = Aura(binary, os.path.join(dir_, "aura"))
    extra = ["--database", database] if database else []
    aura.proc = subprocess.Popen(
        [binary, "serve", "--addr", f"127.0.0.1:{aura.port}", "--s3-addr", "off", "--data-dir", aura.data_dir, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "AURA_LOG": "warn"})
    wait_for_200(aura.port, "/api/health")
    token = f"Bearer {aura.token()}"
    request(aura.port, "PUT", "/api/collections/posts", {
        "name": "posts",
        "fields": [{"name": "title", "type": "text"}, {"name": "views", "type": "number"}],
        "listRule": "", "viewRule": "", "createRule": ""}, token)
    path = "/api/collections/posts/records"
    ids = seed(aura.port, path, args.records, token)
    try:
        return measure(aura.port, path, ids[len(ids) // 2], args.connections, args.seconds, dir_)
    finally:
        aura.stop()


def pocketbase_run(binary, args, dir_):
    data = os.path.join(dir_, "pb_data")
    subprocess.run([binary, "superuser", "upsert", "bench@example.com", "benchpassword1", "--dir", data],
                   check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen([binary, "serve", "--http", f"127.0.0.1:{port}", "--dir", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_200(port, "/api/health")
        auth = request(port, "POST", "/api/collections/_superusers/auth-with-password",
                       {"identity": "bench@example.com", "password": "benchpassword1"})
        token = auth["token"]
        request(port, "POST", "/api/collections", {
            "name": "posts", "type": "base",
            "fields": [{"name": "title", "type": "text"}, {"name": "views", "type": "number"}],
            "listRule": "", "viewRule": "", "createRule": ""}, token)
        path = "/api/collections/posts/records"
        ids = seed(port, path, args.records, token)
        return measure(port, path, ids[len(ids) // 2], args.connections, args.seconds, dir_)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def fresh_postgres(url):
    """Creates a scratch database beside `url`'s; returns its URL and a cleanup."""
    name = f"aura_bench_{int(time.time())}"
    admin = ["psql", url, "-q", "-c"]
    subprocess.run(admin + [f"CREATE DATABASE {name}"], check=True, capture_output=True)
    base = url.rsplit("/", 1)[0]
    return f"{base}/{name}", lambda: subprocess.run(
        admin + [f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aura", required=True)
    ap.add_argument("--pocketbase")
    ap.add_argument("--postgres", help="a PostgreSQL URL; a scratch database is created beside it")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--records", type=int, default=1000)
    args = ap.parse_args()

    runs = {}
    with tempfile.TemporaryDirectory() as d:
        runs["Aura, SQLite"] = aura_run(args.aura, None, args, d)
    if args.postgres:
        url, cleanup = fresh_postgres(args.postgres)
        try:
            with tempfile.TemporaryDirectory() as d:
                runs["Aura, PostgreSQL"] = aura_run(args.aura, url, args, d)
        finally:
            cleanup()
    if args.pocketbase:
        with tempfile.TemporaryDirectory() as d:
            runs["PocketBase"] = pocketbase_run(args.pocketbase, args, d)

    print(f"\n{args.connections} connections, {args.seconds} s per row, {args.records} records seeded\n")
    print("| server | operation | req/s | p50 | p99 | non-2xx |")
    print("|---|---|---|---|---|---|")
    for server, results in runs.items():
        for op, r in results.items():
            print(f"| {server} | {op} | {r['rps']:,.0f} | {r['p50']:.2f} ms | {r['p99']:.2f} ms | {r['non2xx']} |")
    if "PocketBase" in runs:
        print("\n| operation | Aura SQLite / PocketBase |")
        print("|---|---|")
        for op, r in runs["Aura, SQLite"].items():
            print(f"| {op} | {r['rps'] / runs['PocketBase'][op]['rps']:.2f}× |")


if __name__ == "__main__":
    main()
