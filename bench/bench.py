#!/usr/bin/env python3
"""Aura benchmark driver: invoke throughput and latency at 50 connections
(against `wasmtime serve` on the same component), per-request instantiate
time, deploy -> first response, and restart -> first response.

Run through bench/run.sh, which installs the tools and builds the binaries.
"""
import argparse
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import uuid


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path, headers=None, timeout=5):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def wait_for_200(port, path, deadline_s=60):
    """Polls until `path` answers 200; returns when it did."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            status, _ = get(port, path, timeout=1)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.0005)
    raise RuntimeError(f"no 200 from {path} on port {port}")


class Aura:
    def __init__(self, binary, data_dir):
        self.binary, self.data_dir = binary, data_dir
        self.port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--addr", f"127.0.0.1:{self.port}", "--s3-addr", "off", "--data-dir", self.data_dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "AURA_LOG": "warn"})
        return self

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)

    def token(self):
        with open(os.path.join(self.data_dir, "admin.token")) as f:
            return f.read().strip()

    def deploy(self, name, component, config="{}"):
        with open(component, "rb") as f:
            wasm = f.read()
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"component\"; filename=\"c.wasm\"\r\n"
                f"Content-Type: application/wasm\r\n\r\n").encode() + wasm + (
                f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"config\"\r\n\r\n{config}"
                f"\r\n--{boundary}--\r\n").encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", f"/api/admin/functions/{name}/versions", body=body, headers={
            "Authorization": f"Bearer {self.token()}",
            "Content-Type": f"multipart/form-data; boundary={boundary}"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 201:
            raise RuntimeError(f"deploy failed: {resp.status} {data!r}")
        return json.loads(data)

    def metrics(self):
        _, body = get(self.port, "/metrics", {"Authorization": f"Bearer {self.token()}"})
        values = {}
        for line in body.decode().splitlines():
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
        return values


def wrk(url, connections, seconds, script=None):
    extra = ["-s", script] if script else []
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", *extra, url],
        capture_output=True, text=True, check=True, timeout=seconds + 30).stdout

    def latency_ms(pct):
        m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    # Scripts may print `p95: <ms>` from their `done` hook.
    p95 = re.search(r"^p95: ([\d.]+)$", out, re.M)
    return {"rps": rps, "p50": latency_ms(50), "p99": latency_ms(99),
            "p95": float(p95.group(1)) if p95 else None,
            "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else "none"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--aura", required=True)
    ap.add_argument("--wasmtime", required=True)
    ap.add_argument("--component", required=True)
    ap.add_argument("--pricing", required=True)
    ap.add_argument("--checkout", required=True)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--restarts", type=int, default=5)
    args = ap.parse_args()
    rows = []

    with tempfile.TemporaryDirectory() as data_dir:
        aura = Aura(args.aura, data_dir).start()
        wait_for_200(aura.port, "/api/health")

        started = time.monotonic()
        aura.deploy("hello", args.component)
        wait_for_200(aura.port, "/fn/hello")
        rows.append(("deploy → first response (compile + first call)", f"{(time.monotonic() - started) * 1000:.1f} ms"))

        url = f"http://127.0.0.1:{aura.port}/fn/hello"
        wrk(url, args.connections, 3)  # warm-up
        before = aura.metrics()
        aura_load = wrk(url, args.connections, args.seconds)
        after = aura.metrics()
        count = after["aura_instantiate_seconds_count"] - before["aura_instantiate_seconds_count"]
        total = after["aura_instantiate_seconds_sum"] - before["aura_instantiate_seconds_sum"]
        instantiate_us = total / count * 1e6 if count else float("nan")

        # One cross-function call: checkout (HTTP + a call into pricing)
        # against pricing answering the same question over HTTP directly.
        aura.deploy("pricing", args.pricing)
        aura.deploy("checkout", args.checkout, '{"grants": {"functions": ["pricing"]}}')
        base = f"http://127.0.0.1:{aura.port}/fn"
        wait_for_200(aura.port, "/fn/checkout?item=apple&qty=1")
        wrk(f"{base}/pricing?item=apple&qty=1", 1, 2)
        direct = wrk(f"{base}/pricing?item=apple&qty=1", 1, args.seconds)
        wrk(f"{base}/checkout?item=apple&qty=1", 1, 2)
        bridged = wrk(f"{base}/checkout?item=apple&qty=1", 1, args.seconds)
        aura.stop()

        restarts = []
        for _ in range(args.restarts):
            started = time.monotonic()
            aura.start()
            wait_for_200(aura.port, "/fn/hello")
            restarts.append((time.monotonic() - started) * 1000)
            aura.stop()

    port = free_port()
    wasmtime = subprocess.Popen(
        [args.wasmtime, "serve", "-Scli", "--addr", f"127.0.0.1:{port}", args.component],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_200(port, "/")
        wt_url = f"http://127.0.0.1:{port}/"
        wrk(wt_url, args.connections, 3)
        wt_load = wrk(wt_url, args.connections, args.seconds)
    finally:
        wasmtime.send_signal(signal.SIGTERM)
        wasmtime.wait(timeout=30)

    c = args.connections
    rows[0:0] = [
        (f"Aura hello, {c} connections: throughput", f"{aura_load['rps']:,.0f} req/s"),
        (f"Aura hello, {c} connections: p50 / p99", f"{aura_load['p50']:.2f} ms / {aura_load['p99']:.2f} ms"),
        (f"wasmtime serve hello, {c} connections: throughput", f"{wt_load['rps']:,.0f} req/s"),
        (f"wasmtime serve hello, {c} connections: p50 / p99", f"{wt_load['p50']:.2f} ms / {wt_load['p99']:.2f} ms"),
        ("throughput ratio Aura / wasmtime serve", f"{aura_load['rps'] / wt_load['rps']:.2f}×"),
        ("per-request instantiate (mean, from /metrics)", f"{instantiate_us:.1f} µs over {count:,.0f} requests"),
    ]
    rows.append((f"restart → first response (median of {len(restarts)})", f"{statistics.median(restarts):.1f} ms"))
    rows.append(("pricing over HTTP, 1 connection: p50", f"{direct['p50'] * 1000:.0f} µs"))
    rows.append(("checkout (HTTP + 1 call into pricing), 1 connection: p50", f"{bridged['p50'] * 1000:.0f} µs"))
    rows.append(("cost of one cross-function call (difference of p50s)", f"{(bridged['p50'] - direct['p50']) * 1000:.0f} µs"))
    print("| measurement | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    print(f"\nerrors: Aura non-2xx {aura_load['non2xx']}, socket {aura_load['socket_errors']}; "
          f"wasmtime non-2xx {wt_load['non2xx']}, socket {wt_load['socket_errors']}")


if __name__ == "__main__":
    main()
