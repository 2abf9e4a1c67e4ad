"""Why ``/v1/health`` is slow under a reconnect flood: time it, and watch the server meanwhile.

    python3 scripts/serve_flood.py [--rounds 1] [--half-open 2000] [--seconds 15] [--nice N] [--device DIR]

A server (``serve --quiet --workers 2``; ``--device``: another tree's ``device`` folder) gets
``--half-open`` connections that each send part of a request head, every one the server closes
opened again at once, from a child process. ``GET /v1/health`` is timed on a new connection every
0.25 s from this process. Meanwhile: the listening socket's accept queue (``ss``, every 0.1 s), the
kernel's count of connections dropped because that queue was full (``nstat`` ListenOverflows,
machine-wide), and, per server thread, the seconds per second it ran on a CPU and waited for one
(``/proc/PID/task/TID/schedstat``). ``--nice`` renices the server's threads (root only for < 0).
Prints one JSON line per round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from serve_load import start_server, stop_server
from serve_ops import Slowloris, timed_health


def flood(host: str, port: int, count: int, seconds: float) -> None:
    """(The child process.)"""
    attack = Slowloris((host, port), count, True)
    thread = threading.Thread(target=attack.run, daemon=True)
    thread.start()
    time.sleep(seconds)
    attack.stop.set()
    thread.join(30)
    print(json.dumps({"opened": attack.opened}), flush=True)


def listen_overflows() -> int:
    out = subprocess.run(["nstat", "-az", "TcpExtListenOverflows"], capture_output=True, text=True, check=False).stdout
    return sum(int(line.split()[1]) for line in out.splitlines() if line.startswith("TcpExt"))


def schedstat(pid: int) -> dict[str, tuple[int, int]]:
    """Each thread's (ns on a CPU, ns waiting for one)."""
    stats = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            run, wait, _ = map(int, Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split())
        except (OSError, ValueError):
            continue
        stats[tid] = (run, wait)
    return stats


def accept_queue(port: int) -> int | None:
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=False).stdout.split()
    return int(out[1]) if out else None


def one_round(args: argparse.Namespace) -> dict:
    server = start_server()
    try:
        url = urlsplit(server.url)
        if args.nice:
            for tid in os.listdir(f"/proc/{server.proc.pid}/task"):
                subprocess.run(["renice", "-n", str(args.nice), "-p", tid], capture_output=True, check=False)
        child = subprocess.Popen([sys.executable, __file__, "--flood", url.hostname, str(url.port), str(args.half_open),
                                  str(args.seconds + 2)], stdout=subprocess.PIPE, text=True)
        time.sleep(2.0)
        overflows, sched, started = listen_overflows(), schedstat(server.proc.pid), time.monotonic()
        end = started + args.seconds
        queue: list[int] = []

        def sample() -> None:
            while time.monotonic() < end:
                length = accept_queue(url.port)
                if length is not None:
                    queue.append(length)
                time.sleep(0.1)

        threading.Thread(target=sample, daemon=True).start()
        health, failures = [], 0
        while time.monotonic() < end:
            try:
                health.append(timed_health(server.url) * 1000)
            except (OSError, RuntimeError):
                failures += 1
            time.sleep(0.25)
        wall = time.monotonic() - started
        after = schedstat(server.proc.pid)
        busiest = max(after, key=lambda tid: after[tid][0] - sched.get(tid, (0, 0))[0])
        run = (after[busiest][0] - sched.get(busiest, (0, 0))[0]) / 1e9 / wall
        wait = (after[busiest][1] - sched.get(busiest, (0, 0))[1]) / 1e9 / wall
        dropped = listen_overflows() - overflows
        opened = json.loads(child.communicate(timeout=60)[0])["opened"]
        cuts = statistics.quantiles(health, n=100, method="inclusive")
        return {"health_n": len(health), "failed": failures, "p50_ms": round(cuts[49], 1), "p99_ms": round(cuts[98], 1),
                "over_500ms": sum(h > 500 for h in health), "opened": opened, "listen_overflows": dropped,
                "accept_queue_median_max": [statistics.median(queue), max(queue)] if queue else None,
                "loop_thread_run_s_per_s": round(run, 2), "loop_thread_runqueue_wait_s_per_s": round(wait, 2),
                "load_average": os.getloadavg()[0]}
    finally:
        stop_server(server)


def main() -> int:
    if sys.argv[1:2] == ["--flood"]:
        host, port, count, seconds = sys.argv[2:6]
        flood(host, int(port), int(count), float(seconds))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--half-open", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--device", type=Path, default=None, help="run this device folder's server instead")
    args = parser.parse_args()
    if args.device:
        os.environ["PYTHONPATH"] = f"{args.device.resolve()}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    for _ in range(args.rounds):
        print(json.dumps(one_round(args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
