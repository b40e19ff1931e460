#!/usr/bin/env python3
"""Storage benchmark: PUT and GET throughput of objects of 4 KiB, 1 MiB and
64 MiB over Aura's REST storage API (the same service the S3 API uses), and
requests/s for small objects, against the limit of the disk: a plain file
copy with the same durability (write, fsync, rename) and a plain read.

Run through bench/run.sh --storage, which installs wrk and builds Aura.
"""
import argparse
import http.client
import json
import os
import shutil
import tempfile
import time

from bench import Aura, wait_for_200, wrk

SIZES = [("4 KiB", 4 * 1024, 50), ("1 MiB", 1024 * 1024, 8), ("64 MiB", 64 * 1024 * 1024, 2)]


def admin(aura, method, path, body):
    conn = http.client.HTTPConnection("127.0.0.1", aura.port, timeout=60)
    conn.request(method, path, body=body, headers={"Authorization": f"Bearer {aura.token()}"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
    return data


def put_script(directory, size, token):
    """A wrk script that PUTs `size` bytes (the same key: each replaces)."""
    path = os.path.join(directory, f"put-{size}.lua")
    with open(path, "w") as f:
        f.write(f'wrk.method = "PUT"\nwrk.headers["Authorization"] = "Bearer {token}"\n'
                f'wrk.headers["Content-Type"] = "application/octet-stream"\n'
                f'wrk.body = string.rep("x", {size})\n')
    return path


def file_baseline(directory, size, seconds):
    """MB/s of writing (write + fsync + rename) and reading `size` bytes."""
    data = b"x" * size
    written, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        tmp = os.path.join(directory, "tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(directory, "blob"))
        written += size
    write_mbs = written / (time.monotonic() - started) / 1e6
    read, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        with open(os.path.join(directory, "blob"), "rb") as f:
            while chunk := f.read(256 * 1024):
                read += len(chunk)
    read_mbs = read / (time.monotonic() - started) / 1e6
    return write_mbs, read_mbs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--aura", required=True)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="aura-bench-storage-")
    rows = []
    aura = Aura(args.aura, os.path.join(work, "data")).start()
    try:
        wait_for_200(aura.port, "/api/health")
        admin(aura, "POST", "/api/admin/storage/buckets",
              json.dumps({"name": "bench", "viewRule": ""}))
        for label, size, connections in SIZES:
            key = f"/api/storage/bench/object-{size}"
            url = f"http://127.0.0.1:{aura.port}{key}"
            put = wrk(url, connections, args.seconds, put_script(work, size, aura.token()))
            get = wrk(url, connections, args.seconds)
            for run in (put, get):
                assert run["non2xx"] == 0, run
            copy_dir = os.path.join(work, f"copy-{size}")
            os.makedirs(copy_dir)
            write_mbs, read_mbs = file_baseline(copy_dir, size, args.seconds / 2)
            rows.append((f"PUT {label}, {connections} connections", f"{put['rps'] * size / 1e6:,.0f} MB/s",
                         f"{put['rps']:,.0f} req/s, p99 {put['p99']:.1f} ms", f"{write_mbs:,.0f} MB/s"))
            rows.append((f"GET {label}, {connections} connections", f"{get['rps'] * size / 1e6:,.0f} MB/s",
                         f"{get['rps']:,.0f} req/s, p99 {get['p99']:.1f} ms", f"{read_mbs:,.0f} MB/s"))
    finally:
        aura.stop()
        shutil.rmtree(work, ignore_errors=True)

    print("| operation | Aura | requests | plain file (write+fsync+rename / read) |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
