#!/usr/bin/env python3
"""S3 multipart benchmark, through boto3's managed transfers (what most
clients use), in A B A B rounds on one server:

- copy: a 64 MiB object copied on the server with UploadPartCopy (8 parts
  of 8 MiB, 8 at a time), against GET + PUT of the same object through the
  client;
- upload: a 64 MiB multipart upload at 8 parallel parts of 8 MiB, against a
  plain file copy of the same bytes on the same disk (write, fsync,
  rename: the durability Aura gives every object).

Prints each side's median time and MB/s, and the median ratio with its
range. Run through bench/run.sh --s3, which installs the pinned boto3 and
builds Aura.
"""
import argparse
import http.client
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from bench import free_port, wait_for_200

MIB = 1024 * 1024
SIZE = 64 * MIB
TRANSFER = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB,
                          max_concurrency=8, use_threads=True)


def admin(port, token, path, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", path, body=json.dumps(body),
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise RuntimeError(f"POST {path}: {resp.status} {data[:300]!r}")
    return json.loads(data)


def timed(action):
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def plain_copy(directory, data):
    tmp = os.path.join(directory, "tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(directory, "blob"))


def summary(name, a_label, a_times, b_label, b_times):
    ratios = sorted(b / a for a, b in zip(a_times, b_times))
    a, b = statistics.median(a_times), statistics.median(b_times)
    return (f"| {name} | {a_label}: {a * 1000:,.0f} ms ({SIZE / a / 1e6:,.0f} MB/s) "
            f"| {b_label}: {b * 1000:,.0f} ms ({SIZE / b / 1e6:,.0f} MB/s) "
            f"| {statistics.median(ratios):.2f}× ({ratios[0]:.2f}–{ratios[-1]:.2f}) |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--aura", required=True)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="aura-bench-s3-")
    data_dir = os.path.join(work, "data")
    port, s3_port = free_port(), free_port()
    proc = subprocess.Popen(
        [args.aura, "serve", "--addr", f"127.0.0.1:{port}", "--s3-addr", f"127.0.0.1:{s3_port}",
         "--data-dir", data_dir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "AURA_LOG": "warn"})
    try:
        wait_for_200(port, "/api/health")
        with open(os.path.join(data_dir, "admin.token")) as f:
            token = f.read().strip()
        key = admin(port, token, "/api/admin/storage/keys",
                    {"description": "bench", "buckets": {"*": "read-write"}})
        s3 = boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{s3_port}", region_name="us-east-1",
            aws_access_key_id=key["accessKey"], aws_secret_access_key=key["secretKey"],
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=16))
        s3.create_bucket(Bucket="bench")
        data = os.urandom(SIZE)
        s3.upload_fileobj(io.BytesIO(data), "bench", "source", Config=TRANSFER)
        plain_dir = os.path.join(work, "plain")
        os.makedirs(plain_dir)

        def server_copy():
            s3.copy({"Bucket": "bench", "Key": "source"}, "bench", "copied", Config=TRANSFER)

        def get_and_put():
            buffer = io.BytesIO()
            s3.download_fileobj("bench", "source", buffer, Config=TRANSFER)
            buffer.seek(0)
            s3.upload_fileobj(buffer, "bench", "reput", Config=TRANSFER)

        def upload():
            s3.upload_fileobj(io.BytesIO(data), "bench", "uploaded", Config=TRANSFER)

        # One untimed pass of each warms the caches and the connection pool.
        for action in (server_copy, get_and_put, upload):
            action()
        copy_times, relay_times, upload_times, file_times = [], [], [], []
        for _ in range(args.rounds):
            copy_times.append(timed(server_copy))
            relay_times.append(timed(get_and_put))
            upload_times.append(timed(upload))
            file_times.append(timed(lambda: plain_copy(plain_dir, data)))
        head = s3.head_object(Bucket="bench", Key="copied")
        assert head["ContentLength"] == SIZE and head["ETag"].endswith('-8"'), head
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    print(f"boto3 {boto3.__version__}, {args.rounds} rounds, 64 MiB, 8 MiB parts, 8 at a time")
    print()
    print("| operation | A | B | B / A, median (range) |")
    print("|---|---|---|---|")
    print(summary("copy 64 MiB", "UploadPartCopy", copy_times, "GET + PUT", relay_times))
    print(summary("write 64 MiB", "multipart upload", upload_times, "plain file copy", file_times))


if __name__ == "__main__":
    main()
