#!/usr/bin/env python3
"""Auth benchmark: `GET /api/auth/me` throughput at 50 connections (token
checked: signature, expiry and the session row), and `POST /api/auth/login`
latency at 50 concurrent sign-ins (argon2id, 19 MiB, 2 passes, per login).

Run through bench/run.sh --auth, which installs wrk and builds Aura. The
per-address rate limit is turned off (`--auth-rate-limit 0`): every request
comes from 127.0.0.1.
"""
import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile

from bench import free_port, wait_for_200, wrk


def call(port, method, path, body=None, token=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
    return json.loads(data) if data else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--aura", required=True)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="aura-bench-auth-")
    port = free_port()
    proc = subprocess.Popen(
        [args.aura, "serve", "--addr", f"127.0.0.1:{port}", "--s3-addr", "off",
         "--auth-rate-limit", "0", "--data-dir", os.path.join(work, "data")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "AURA_LOG": "warn"})
    try:
        wait_for_200(port, "/api/health")
        password = "correct horse battery staple"
        tokens = call(port, "POST", "/api/auth/register", {"email": "bench@example.com", "password": password})
        me = wrk(f"http://127.0.0.1:{port}/api/auth/me", 50, args.seconds,
                 write_script(work, "me.lua", f'wrk.headers["Authorization"] = "Bearer {tokens["accessToken"]}"\n'))
        login_script = write_script(work, "login.lua",
                                 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                                 f'wrk.body = \'{{"email": "bench@example.com", "password": "{password}"}}\'\n'
                                 'done = function(summary, latency, requests)\n'
                                 '  io.write(string.format("p95: %.2f\\n", latency:percentile(95) / 1000))\n'
                                 'end\n')
        login = wrk(f"http://127.0.0.1:{port}/api/auth/login", 50, args.seconds, login_script)
        # One login per core at a time: the cost of one argon2id hash.
        single = wrk(f"http://127.0.0.1:{port}/api/auth/login", 2, args.seconds, login_script)
        for run in (me, login, single):
            assert run["non2xx"] == 0, run
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    print("| measurement | result | target |")
    print("|---|---|---|")
    print(f"| GET /api/auth/me, 50 connections: throughput | {me['rps']:,.0f} req/s | |")
    print(f"| GET /api/auth/me, 50 connections: p50 / p99 | {me['p50']:.2f} ms / {me['p99']:.2f} ms | |")
    print(f"| POST /api/auth/login, 50 concurrent: throughput | {login['rps']:,.1f} logins/s | |")
    print(f"| POST /api/auth/login, 50 concurrent: p50 / p95 / p99 | {login['p50']:.0f} ms / {login['p95']:.0f} ms / {login['p99']:.0f} ms | p95 < 200 ms |")
    print(f"| POST /api/auth/login, 2 concurrent: p50 / p95 / p99 | {single['p50']:.0f} ms / {single['p95']:.0f} ms / {single['p99']:.0f} ms | |")


def write_script(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


if __name__ == "__main__":
    main()
