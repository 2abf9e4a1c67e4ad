"""Measure ``edge-lstm-device serve`` under slow clients (issue 26), from outside the process.

    python3 scripts/serve_slow.py [--slow-bodies 600] [--half-open 2000] [--seconds 15] [--uploads 100]

(a) **Slow bodies and half-open heads at once**: ``--slow-bodies`` connections each send a whole
``POST /v1/predict`` head announcing 1,000 bytes and then nothing, and ``--half-open`` connections
each send part of a head, held for ``--seconds`` (``--flood``: a connection the server closes is
opened again at once).
Meanwhile ``GET /v1/health`` is timed on a new connection every 0.25 s, and the server's threads and
RSS are sampled. (b) **Memory**: ``--uploads`` clients each post a 1 MiB body in 64 KiB pieces, one
every 0.25 s (4 s a body), all at once; the server's RSS is sampled every 0.1 s and the answers
counted by status. Prints the figures; the server is the default one (``--workers 2``).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import threading
import time
from urllib.parse import urlsplit

from serve_load import start_server, stop_server
from serve_ops import Slowloris, proc_status, timed_health

SLOW_BODY_HEAD = b"POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
MIB = 1 << 20
PIECE = 64 << 10


def slow_clients(slow_bodies: int, half_open: int, seconds: float, flood: bool) -> dict:
    server = start_server()
    try:
        address = (urlsplit(server.url).hostname, urlsplit(server.url).port)
        attacks = [Slowloris(address, slow_bodies, flood, head=SLOW_BODY_HEAD), Slowloris(address, half_open, flood)]
        threads = [threading.Thread(target=attack.run, daemon=True) for attack in attacks]
        for thread in threads:
            thread.start()
        time.sleep(2.0)  # the connections are open
        health, failures, samples = [], [], []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            samples.append(proc_status(server.proc.pid))
            try:
                health.append(timed_health(server.url))
            except (OSError, RuntimeError) as err:
                failures.append(str(err)[:60])
            time.sleep(0.25)
        for attack in attacks:
            attack.stop.set()
        for thread in threads:
            thread.join(30)
        return {"health_ms": _quantiles(health), "health_failures": failures,
                "threads_max": max(s["threads"] for s in samples), "rss_max_mb": max(s["rss_kb"] for s in samples) / 1e3,
                "opened": [a.opened for a in attacks], "closed_by_server": [a.closed_by_server for a in attacks]}
    finally:
        stop_server(server)


def upload(address: tuple[str, int], statuses: list[str]) -> None:
    import socket

    body = b'{"texts": ["a great film"]}'
    body += b" " * (MIB - len(body))
    with socket.create_connection(address, timeout=60) as sock:
        try:
            sock.sendall(SLOW_BODY_HEAD.replace(b"1000", str(MIB).encode()))
            for at in range(0, MIB, PIECE):
                sock.sendall(body[at : at + PIECE])
                time.sleep(0.25)
        except OSError:  # answered (503, 408) and closed before the whole body was sent
            pass
        try:
            statuses.append(sock.recv(12)[9:12].decode() or "closed")
        except OSError as err:
            statuses.append(type(err).__name__)


def memory(uploads: int) -> dict:
    server = start_server()
    try:
        address = (urlsplit(server.url).hostname, urlsplit(server.url).port)
        before = proc_status(server.proc.pid)["rss_kb"] / 1e3
        statuses: list[str] = []
        clients = [threading.Thread(target=upload, args=(address, statuses), daemon=True) for _ in range(uploads)]
        for client in clients:
            client.start()
        peak = before
        while any(client.is_alive() for client in clients):
            peak = max(peak, proc_status(server.proc.pid)["rss_kb"] / 1e3)
            time.sleep(0.1)
        return {"rss_before_mb": before, "rss_peak_mb": peak,
                "statuses": {status: statuses.count(status) for status in sorted(set(statuses))}}
    finally:
        stop_server(server)


def _quantiles(seconds: list[float]) -> dict:
    if len(seconds) < 2:
        return {"n": len(seconds)}
    cuts = statistics.quantiles([s * 1000 for s in seconds], n=100, method="inclusive")
    return {"n": len(seconds), "p50": round(cuts[49], 1), "p99": round(cuts[98], 1), "max": round(max(seconds) * 1000, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow-bodies", type=int, default=600)
    parser.add_argument("--half-open", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument("--flood", action="store_true", help="open a new connection for each one the server closes")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))  # the clients' sockets
    print("(a)", slow_clients(args.slow_bodies, args.half_open, args.seconds, args.flood), flush=True)
    print("(b)", memory(args.uploads), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
