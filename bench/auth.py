#!/usr/bin/env python3
"""Auth benchmark: `GET /api/auth/me` throughput at 50 connections (token
checked: signature, expiry and the session row), and `POST /api/auth/login`
latency at 50 concurrent sign-ins (argon2id, 19 MiB, 2 passes, per login).

With --better-auth, the same measurements side by side against Hono +
Better-Auth on Bun (bench/better-auth/server.ts): `GET /api/auth/get-session`
with a bearer token (HMAC-signed session token and the session row) and
`POST /api/auth/sign-in/email` (scrypt, Better-Auth's default).

Run through bench/run.sh --auth, which installs wrk and the npm packages and
builds Aura. Rate limits are off on both (`--auth-rate-limit 0`,
`rateLimit: { enabled: false }`): every request comes from 127.0.0.1.
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

EMAIL = "bench@example.com"
PASSWORD = "correct horse battery staple"


def call(port, method, path, body=None, token=None):
    """Returns (decoded JSON body, response headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
    return (json.loads(data) if data else None), resp.headers


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(work, port, name, me_path, login_path, token, seconds):
    """Warm-up, then session-check throughput at 50 connections and login
    latency at 50 and 2 concurrent; every run must answer 2xx only."""
    me_script = write_script(work, f"{name}-me.lua", f'wrk.headers["Authorization"] = "Bearer {token}"\n')
    login_script = write_script(work, f"{name}-login.lua",
                                'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                                f'wrk.body = \'{{"email": "{EMAIL}", "password": "{PASSWORD}"}}\'\n'
                                'done = function(summary, latency, requests)\n'
                                '  io.write(string.format("p95: %.2f\\n", latency:percentile(95) / 1000))\n'
                                'end\n')
    url = f"http://127.0.0.1:{port}"
    wrk(url + me_path, 50, 2, me_script)  # warm-up (Bun's JIT; Aura's caches)
    me = wrk(url + me_path, 50, seconds, me_script)
    login = wrk(url + login_path, 50, seconds, login_script)
    # wrk stops with up to 50 logins still queued on the server; one more
    # login returns once they are done, so the next run does not wait on them.
    call(port, "POST", login_path, {"email": EMAIL, "password": PASSWORD})
    # One login per core at a time: the cost of one password hash.
    single = wrk(url + login_path, 2, seconds, login_script)
    for run in (me, login, single):
        assert run["non2xx"] == 0, run
    return {"me": me, "login": login, "single": single}


def run_aura(binary, work, seconds):
    port = free_port()
    proc = subprocess.Popen(
        [binary, "serve", "--addr", f"127.0.0.1:{port}", "--s3-addr", "off",
         "--auth-rate-limit", "0", "--data-dir", os.path.join(work, "data")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "AURA_LOG": "warn"})
    try:
        wait_for_200(port, "/api/health")
        tokens, _ = call(port, "POST", "/api/auth/register", {"email": EMAIL, "password": PASSWORD})
        result = measure(work, port, "aura", "/api/auth/me", "/api/auth/login", tokens["accessToken"], seconds)
        me, _ = call(port, "GET", "/api/auth/me", token=tokens["accessToken"])
        assert me and EMAIL in json.dumps(me), me
        result["rss"] = peak_rss_mb(proc.pid)
        return result
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def run_better_auth(bun, directory, work, seconds):
    port = free_port()
    log = open(os.path.join(work, "better-auth.log"), "w+")
    proc = subprocess.Popen(
        [os.path.abspath(bun), "server.ts"], cwd=directory, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PORT": str(port), "DB": os.path.join(work, "better-auth.sqlite"),
             "NODE_ENV": "production"})
    try:
        try:
            wait_for_200(port, "/api/auth/ok")
        except RuntimeError:
            log.seek(0)
            raise RuntimeError("Better-Auth server did not start:\n" + log.read()[-2000:])
        call(port, "POST", "/api/auth/sign-up/email", {"email": EMAIL, "password": PASSWORD, "name": "bench"})
        _, headers = call(port, "POST", "/api/auth/sign-in/email", {"email": EMAIL, "password": PASSWORD})
        token = headers["set-auth-token"]  # the signed session token, from the bearer plugin
        session, _ = call(port, "GET", "/api/auth/get-session", token=token)
        assert session and session["user"]["email"] == EMAIL, session
        result = measure(work, port, "better-auth", "/api/auth/get-session", "/api/auth/sign-in/email", token, seconds)
        # get-session answers 200 `null` for a bad token: check it still holds.
        session, _ = call(port, "GET", "/api/auth/get-session", token=token)
        assert session and session["user"]["email"] == EMAIL, session
        result["rss"] = peak_rss_mb(proc.pid)
        return result
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--aura", required=True)
    parser.add_argument("--bun", help="bun binary; with --better-auth, also measure Hono + Better-Auth")
    parser.add_argument("--better-auth", help="directory of bench/better-auth (npm packages installed)")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="aura-bench-auth-")
    try:
        columns = [("Aura", run_aura(args.aura, work, args.seconds))]
        if args.better_auth:
            bun = args.bun or os.path.join(args.better_auth, "node_modules", ".bin", "bun")
            columns.append(("Hono + Better-Auth (Bun)", run_better_auth(bun, args.better_auth, work, args.seconds)))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = [
        ("session check, 50 connections: throughput", lambda r: f"{r['me']['rps']:,.0f} req/s", ""),
        ("session check, 50 connections: p50 / p99", lambda r: f"{r['me']['p50']:.2f} ms / {r['me']['p99']:.2f} ms", ""),
        ("login, 50 concurrent: throughput", lambda r: f"{r['login']['rps']:,.1f} logins/s", ""),
        ("login, 50 concurrent: p50 / p95 / p99",
         lambda r: f"{r['login']['p50']:,.0f} ms / {r['login']['p95']:,.0f} ms / {r['login']['p99']:,.0f} ms", "p95 < 200 ms"),
        ("login, 2 concurrent: p50 / p95 / p99",
         lambda r: f"{r['single']['p50']:,.0f} ms / {r['single']['p95']:,.0f} ms / {r['single']['p99']:,.0f} ms", ""),
        ("server peak RSS", lambda r: f"{r['rss']:,.0f} MB", ""),
    ]
    print("| measurement | " + " | ".join(name for name, _ in columns) + " | target |")
    print("|---|" + "---|" * len(columns) + "---|")
    for label, cell, target in rows:
        print(f"| {label} | " + " | ".join(cell(r) for _, r in columns) + f" | {target} |")
    print("\nsession check: Aura `GET /api/auth/me`, Better-Auth `GET /api/auth/get-session` (bearer plugin); "
          "login: Aura `POST /api/auth/login` (argon2id), Better-Auth `POST /api/auth/sign-in/email` (scrypt)")


def write_script(directory, name, text):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


if __name__ == "__main__":
    main()
