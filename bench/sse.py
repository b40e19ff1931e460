#!/usr/bin/env python3
"""Realtime benchmark: hold 10,000 concurrent SSE connections (server RSS per
idle connection), fan-out latency of one event to all of them (p50/p99 over
several events), and events/s from one publisher to 100 subscribers.

Run through bench/run.sh --sse, which raises the file-descriptor limit and
builds Aura. Subscribers are raw asyncio connections spread over worker
processes (the client shares the 2 cores with the server, so latencies
include the client's own time to read 10,000 sockets). Each event carries
its publish time (`time.time_ns()`, one clock: same machine); a subscriber's
latency is its receive time minus that. Subscribers are anonymous, under a
channel rule that lets everyone subscribe (checked once per connection).
"""
import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

from bench import Aura, wait_for_200


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def admin(port, token, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status >= 300:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:300]!r}")
    return conn


async def subscriber(port, channel, opened, received, expected):
    """One SSE connection: counts `opened` once its `ready` event is in, then
    records the latency of each `data:` line until `expected` events."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write(f"GET /api/realtime?channels={channel} HTTP/1.1\r\nHost: bench\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    await reader.readuntil(b"\r\n\r\n")
    ready = False
    seen = 0
    while seen < expected:
        line = await reader.readline()
        if not line:
            raise RuntimeError("a stream ended early")
        if line.startswith(b"event: ready"):
            ready = True
            opened.append(1)
        elif ready and line.startswith(b"data: {\"channel\""):
            t = json.loads(line[6:])["data"]["t"]
            received.append(time.time_ns() - t)
            seen += 1
    writer.close()


def worker(port, channel, count, expected, conn):
    """A process holding `count` subscribers; reports when all are open, then
    sends back the latencies (ns) once each got `expected` events."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))

    async def run():
        opened, received = [], []
        tasks = []
        for i in range(count):
            tasks.append(asyncio.create_task(subscriber(port, channel, opened, received, expected)))
            if i % 200 == 199:
                await asyncio.sleep(0.05)
        while len(opened) < count:
            await asyncio.sleep(0.05)
        conn.send("open")
        await asyncio.gather(*tasks)
        return received

    conn.send(asyncio.run(run()))


def subscribers(port, channel, total, processes, expected):
    """Starts `total` subscribers over `processes` workers; returns their
    pipes once every connection is open."""
    pipes, procs = [], []
    for i in range(processes):
        share = total // processes + (1 if i < total % processes else 0)
        parent, child = multiprocessing.Pipe()
        proc = multiprocessing.Process(target=worker, args=(port, channel, share, expected, child))
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    for pipe in pipes:
        assert pipe.recv() == "open"
    return pipes, procs


def collect(pipes, procs):
    latencies = []
    for pipe in pipes:
        latencies.extend(pipe.recv())
    for proc in procs:
        proc.join()
    return latencies


def publish(conn, token, channel):
    conn.request("POST", f"/api/realtime/channels/{channel}", body=json.dumps({"t": time.time_ns()}),
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    if resp.status != 202:
        raise RuntimeError(f"publish: {resp.status}")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--aura", required=True)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))

    data_dir = tempfile.mkdtemp(prefix="aura-bench-sse-")
    aura = Aura(args.aura, data_dir)
    # A buffer deep enough that the rate test's subscribers, which share the
    # cores with the publisher and the server, are not cut off as slow.
    aura.proc = subprocess.Popen(
        [args.aura, "serve", "--addr", f"127.0.0.1:{aura.port}", "--s3-addr", "off",
         "--data-dir", data_dir, "--realtime-buffer", "65536"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "AURA_LOG": "warn"})
    try:
        wait_for_200(aura.port, "/api/health")
        token = aura.token()
        admin(aura.port, token, "PUT", "/api/admin/realtime/rules/bench.%3E",
              {"subscribeRule": "", "publishRule": ""})
        base = rss_kb(aura.proc.pid)

        # Fan-out: every event to all connections.
        started = time.monotonic()
        pipes, procs = subscribers(aura.port, "bench.fanout", args.connections, args.processes, args.events)
        connect_s = time.monotonic() - started
        time.sleep(2)
        held = rss_kb(aura.proc.pid)
        conn = http.client.HTTPConnection("127.0.0.1", aura.port, timeout=60)
        for _ in range(args.events):
            publish(conn, token, "bench.fanout")
            time.sleep(0.5)
        latencies = collect(pipes, procs)
        assert len(latencies) == args.connections * args.events, len(latencies)
        ms = [l / 1e6 for l in latencies]

        # Throughput: one publisher, 100 subscribers, for --seconds.
        rate_events = 2000 * args.seconds
        pipes, procs = subscribers(aura.port, "bench.rate", 100, args.processes, rate_events)
        started = time.monotonic()
        for _ in range(rate_events):
            publish(conn, token, "bench.rate")
        published_s = time.monotonic() - started
        rate_latencies = collect(pipes, procs)
        delivered_s = time.monotonic() - started
        assert len(rate_latencies) == 100 * rate_events

        print("| measurement | result |")
        print("|---|---|")
        print(f"| {args.connections:,} SSE connections opened (ready event in) | {connect_s:.1f} s |")
        print(f"| server RSS: idle / with {args.connections:,} connections | {base / 1024:.1f} MiB / {held / 1024:.1f} MiB |")
        print(f"| RSS per idle connection | {(held - base) / args.connections:.1f} KiB |")
        print(f"| fan-out of one event to {args.connections:,}: p50 / p99 / max ({args.events} events) | "
              f"{statistics.median(ms):.1f} ms / {pct(ms, 99):.1f} ms / {max(ms):.1f} ms |")
        print(f"| one publisher, 100 subscribers: events published/s | {rate_events / published_s:,.0f} |")
        print(f"| one publisher, 100 subscribers: deliveries/s | {100 * rate_events / delivered_s:,.0f} |")
        rl = [l / 1e6 for l in rate_latencies]
        print(f"| one publisher, 100 subscribers: latency p50 / p99 | {statistics.median(rl):.1f} ms / {pct(rl, 99):.1f} ms |")
    finally:
        aura.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
