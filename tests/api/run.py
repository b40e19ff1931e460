"""API-level property tests: schemathesis against the OpenAPI document of a
real `aura serve`, once with the admin token and once with a user's, failing
on any server error and on any answer the document does not describe.

Usage: python tests/api/run.py AURA_BIN [SECONDS_PER_RUN]
(the pinned tools: pip install -r tests/api/requirements.txt).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, token=None):
    request = urllib.request.Request(base + path, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, data, timeout=10) as response:
        return json.loads(response.read() or b"null")


def main():
    aura_bin = sys.argv[1]
    seconds = sys.argv[2] if len(sys.argv) > 2 else "60"
    schemathesis = os.path.join(os.path.dirname(sys.executable), "schemathesis")
    with tempfile.TemporaryDirectory() as data:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = open(os.path.join(data, "server.log"), "w")
        server = subprocess.Popen(
            [aura_bin, "serve", "--addr", f"127.0.0.1:{port}", "--s3-addr", "off",
             "--data-dir", data, "--auth-rate-limit", "0", "--sign-in-link", "never"],
            stdout=log, stderr=subprocess.STDOUT,
            # Relative paths the admin API is given (a backup's `to`) and
            # schemathesis's cache land in the scratch directory.
            cwd=data,
        )
        try:
            for _ in range(200):
                try:
                    call(base, "GET", "/api/health")
                    break
                except OSError:
                    time.sleep(0.05)
            admin = open(os.path.join(data, "admin.token")).read().strip()
            # Something for the record routes to find.
            call(base, "PUT", "/api/collections/notes", {
                "name": "notes",
                "fields": [{"name": "title", "type": "text"}],
                "listRule": "", "viewRule": "", "createRule": "@request.auth.id != ''",
            }, admin)
            user = call(base, "POST", "/api/auth/register",
                        {"email": "fuzz@example.com", "password": "correct horse battery"})
            failed = False
            for who, token in [("admin", admin), ("user", user["accessToken"])]:
                print(f"== schemathesis as {who}, {seconds} s", flush=True)
                result = subprocess.run([
                    schemathesis, "run", f"{base}/api/openapi.json",
                    "-H", f"Authorization: Bearer {token}",
                    "--checks", CHECKS,
                    "--phases", "examples,coverage,fuzzing",
                    "--max-examples", "10",
                    "--max-time", seconds,
                    "--workers", "2",
                    "--seed", "1",
                    "--warnings", "off",
                ], cwd=data)
                failed |= result.returncode != 0
            if failed:
                log.flush()
                errors = [line for line in open(os.path.join(data, "server.log")) if "ERROR" in line]
                print("the server's errors:", *errors[-20:], sep="\n", file=sys.stderr)
                print("schemathesis found answers the OpenAPI document does not describe", file=sys.stderr)
                sys.exit(1)
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
