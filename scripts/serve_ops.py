"""Measure ``edge-lstm-device serve`` as an operator sees it, from outside the process, and rewrite
the measured section of docs/serve.md.

    python3 scripts/serve_ops.py [--half-open 2000] [--seconds 10] [--reloads 6] [--dry-run]

(a) **Half-open connections**: a server with the default ``--max-connections``; a client opens
``--half-open`` connections, each sending part of a request head, and holds them for ``--seconds``
while ``GET /v1/health`` is timed on a new connection every 0.25 s. Twice: each connection opened
once, then a flood that opens a new one for every connection the server closes. The server's threads
and RSS (``/proc/PID/status``) are sampled throughout; after the client stops, one review is scored.
(b) **Reload under load**: ``hey`` (Debian package ``hey``), 16 clients posting one review each, for
the whole run; meanwhile the bundle directory is replaced atomically (a copy beside it, then renames)
by one of two bundles in turn, each followed by SIGHUP, ``--reloads`` times. Every answer's status is
counted; each reload's time from SIGHUP to ``/v1/info`` naming the new model's sha256 is recorded.
The section between the ``serve-ops`` markers of docs/serve.md is replaced (``--dry-run`` prints it).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from serve_load import ROOT, SHORT_REVIEW, Server, get_json, hey_version, publish, start_server, stop_server

sys.path.insert(0, str(ROOT / "device"))
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE, SentimentModel  # noqa: E402
from edge_lstm_device.serving.connections import DEFAULT_MAX_CONNECTIONS  # noqa: E402

BEGIN, END = "<!-- serve-ops:begin -->", "<!-- serve-ops:end -->"
PARTIAL_HEAD = b"POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
TARGETS = {"health_s": 0.5, "rss_growth_mb": 20.0, "threads_over_max": 16, "reload_s": 2.0}


def proc_status(pid: int) -> dict[str, int]:
    """Threads and VmRSS (kB) of a process."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"threads": int(fields["Threads"]), "rss_kb": int(fields["VmRSS"].split()[0])}


@dataclass
class Slowloris:
    """Keeps ``count`` half-open connections to ``address``, reopening those the server closes."""

    address: tuple[str, int]
    count: int
    reopen: bool  # open a new connection for each one the server closes
    head: bytes = PARTIAL_HEAD  # what each connection sends, then nothing
    opened: int = 0  # (counted without a lock: approximate if threads collide)
    closed_by_server: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, threads: int = 16) -> None:
        """Hold the connections from ``threads`` threads (one opening thread is slower than the server)."""
        if self.count <= 0:
            return
        share = -(-self.count // threads)
        workers = [threading.Thread(target=self._hold, args=(min(share, self.count - i),), daemon=True)
                   for i in range(0, self.count, share)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _hold(self, count: int) -> None:
        socks = [self._open() for _ in range(count)]
        while not self.stop.is_set():
            for i, sock in enumerate(socks):
                if sock is not None and not self._alive(sock):
                    sock.close()
                    socks[i] = None
                    self.closed_by_server += 1
                if socks[i] is None and self.reopen:
                    socks[i] = self._open()
            self.stop.wait(0.05)
        for sock in socks:
            if sock is not None:
                sock.close()

    def _open(self) -> socket.socket | None:
        try:
            sock = socket.create_connection(self.address, timeout=1)
            sock.sendall(self.head)
        except OSError:
            return None
        sock.setblocking(False)
        self.opened += 1
        return sock

    @staticmethod
    def _alive(sock: socket.socket) -> bool:
        try:
            sock.recv(1024)  # the server only ever writes to a connection it closes (408 to a body)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False


def timed_health(url: str) -> float:
    started = time.perf_counter()
    with socket.create_connection((urlsplit(url).hostname, urlsplit(url).port), timeout=10) as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"health answered {answer[:40]!r}")
    return time.perf_counter() - started


def half_open(count: int, seconds: float, reopen: bool) -> dict:
    server = start_server()
    try:
        time.sleep(1.0)
        before = proc_status(server.proc.pid)
        host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
        attack = Slowloris((host, port), count, reopen)
        thread = threading.Thread(target=attack.run, daemon=True)
        thread.start()
        health, samples, failures = [], [], 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            samples.append(proc_status(server.proc.pid))
            try:
                health.append(timed_health(server.url))
            except (OSError, RuntimeError):
                failures += 1
            time.sleep(0.25)
        attack.stop.set()
        thread.join(30)
        time.sleep(1.0)
        after_close = timed_predict(server.url)
        metrics = scrape(server.url)
        return {"before": before, "threads_max": max(s["threads"] for s in samples),
                "rss_max_kb": max(s["rss_kb"] for s in samples), "health": health, "health_failures": failures,
                "opened": attack.opened, "closed_by_server": attack.closed_by_server, "after_close_s": after_close,
                "closed": metrics}
    finally:
        stop_server(server)


def timed_predict(url: str) -> float:
    import urllib.request

    body = json.dumps({"texts": [SHORT_REVIEW]}).encode()
    request = urllib.request.Request(url + "/v1/predict", body, {"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
    return time.perf_counter() - started


def scrape(url: str) -> dict[str, float]:
    """The ``edge_lstm_connections_closed_total`` and reload counters of ``GET /metrics``."""
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    pattern = r'^(edge_lstm_connections_closed_total\{reason="(\w+)"\}|edge_lstm_reload\w*_total)\s+(\S+)$'
    return {(m.group(2) or m.group(1)): float(m.group(3)) for m in re.finditer(pattern, text, re.M)}


def bundle_variant(dest: Path, drop: str | None) -> None:
    """A copy of the reference bundle at ``dest``, without the artifact ``drop`` (another default model)."""
    shutil.copytree(REFERENCE_BUNDLE, dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    if drop:
        manifest["artifacts"].pop(drop)
        manifest["device_order"] = [n for n in manifest["device_order"] if n != drop]
        (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))


def replace_bundle(live: Path, source: Path) -> None:
    """Copy ``source`` beside ``live``, then swap by renames (what docs/serve.md tells operators)."""
    incoming, old = live.with_name(live.name + ".new"), live.with_name(live.name + ".old")
    shutil.copytree(source, incoming)
    live.rename(old)
    incoming.rename(live)
    shutil.rmtree(old)


def reload_under_load(reloads: int, tmp: Path) -> dict:
    sources = {"a": tmp / "a", "b": tmp / "b"}
    bundle_variant(sources["a"], None)
    bundle_variant(sources["b"], SentimentModel.load().name)
    live = tmp / "bundle"
    shutil.copytree(sources["a"], live)
    body = tmp / "body.json"
    body.write_text(json.dumps({"texts": [SHORT_REVIEW]}))
    server = start_server("--bundle", str(live))
    try:
        hey = subprocess.Popen(["hey", "-z", f"{2 * reloads + 4}s", "-c", "16", "-m", "POST", "-T", "application/json",
                                "-D", str(body), server.url + "/v1/predict"], stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        times = []
        for i in range(reloads):
            which = "b" if i % 2 == 0 else "a"
            replace_bundle(live, sources[which])
            times.append(sighup_until(server))
            time.sleep(1.5)
        out, _ = hey.communicate(timeout=120)
        codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
        errors = re.search(r"Error distribution:(.*)", out, re.S)
        return {"codes": codes, "errors": errors.group(1).strip() if errors else "", "reload_s": times,
                "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "counters": scrape(server.url)}
    finally:
        stop_server(server)


def sighup_until(server: Server) -> float:
    """Send SIGHUP; seconds until ``/v1/info`` reports another model (the bundles alternate)."""
    before = get_json(server.url + "/v1/info")["sha256"]["model"]
    started = time.perf_counter()
    server.proc.send_signal(signal.SIGHUP)
    while get_json(server.url + "/v1/info")["sha256"]["model"] == before:
        if time.perf_counter() - started > 30:
            raise SystemExit("error: the new model did not answer within 30 s of SIGHUP")
        time.sleep(0.01)
    return time.perf_counter() - started


HALF_OPEN_ROWS = (
    ("`GET /v1/health` on a new connection every 0.25 s: median / worst", "< 500 ms",
     lambda r: f"{statistics.median(r['health']) * 1000:.1f} / {max(r['health']) * 1000:.1f} ms"
               f"{', %d failed' % r['health_failures'] if r['health_failures'] else ''}"),
    ("server threads, before / most", "≤ max-connections + a few",
     lambda r: f"{r['before']['threads']} / {r['threads_max']}"),
    ("server RSS, before / most", "≤ +20 MB",
     lambda r: f"{r['before']['rss_kb'] / 1024:.1f} / {r['rss_max_kb'] / 1024:.1f} MB "
               f"(+{(r['rss_max_kb'] - r['before']['rss_kb']) / 1024:.1f})"),
    ("connections the client opened / the server closed", "",
     lambda r: f"{r['opened']:,} / {r['closed_by_server']:,}"),
    ("closed by the server: evicted / timed out / refused (`/metrics`)", "",
     lambda r: " / ".join(f"{r['closed'].get(k, 0):,.0f}" for k in ("evicted", "timeout", "refused"))),
    ("one review scored, 1 s after the client stopped", "", lambda r: f"{r['after_close_s'] * 1000:.1f} ms"),
)


def half_open_ok(run: dict) -> bool:
    return (max(run["health"]) < TARGETS["health_s"] and not run["health_failures"]
            and run["threads_max"] <= DEFAULT_MAX_CONNECTIONS + TARGETS["threads_over_max"]
            and (run["rss_max_kb"] - run["before"]["rss_kb"]) / 1024 <= TARGETS["rss_growth_mb"])


def report(held: dict, flood: dict, reload: dict, args: argparse.Namespace) -> str:
    non_2xx = sum(n for c, n in reload["codes"].items() if not 200 <= c < 300)
    reload_ok = non_2xx == 0 and not reload["errors"] and max(reload["reload_s"]) < TARGETS["reload_s"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    rows = "\n".join(f"| {name} | {cell(held)} | {cell(flood)} | {target} |" for name, target, cell in HALF_OPEN_ROWS)
    command = (f"python3 scripts/serve_ops.py --half-open {args.half_open} --seconds {args.seconds:g} "
               f"--reloads {args.reloads}")
    return textwrap.dedent(f"""\
        {BEGIN}
        Generated by `{command}` (it starts the servers itself; edit the script rather than this section).

        {platform.machine()}, Python {platform.python_version()}, {hey_version()}; servers
        `edge-lstm-device serve --quiet --workers 2` (default `--max-connections {DEFAULT_MAX_CONNECTIONS}`), the
        clients on the same machine.

        **(a) {args.half_open:,} half-open connections** for {args.seconds:g} s, opened from 16 threads, each
        sending part of a request head and then nothing. *Held*: each opened once (the server closes most
        of them to make room). *Flood*: the client opens a new one for every connection the server closes,
        as fast as it can; then a new connection competes with the flood for the listen backlog (1024), and
        a connection the kernel drops is retried by the client's TCP after 1 s.

        | figure | held | flood | target |
        | --- | --- | --- | --- |
        HALF_OPEN_ROWS
        | target met | {verdict(half_open_ok(held))} | {verdict(half_open_ok(flood))} | |

        **(b) Reload under load**: `hey -c 16` posting one review per request for the whole run
        ({reload['rps']:.0f} requests/s); {len(reload['reload_s'])} times, the bundle directory replaced
        atomically by the other of two bundles, then SIGHUP:

        | figure | measured | target |
        | --- | --- | --- |
        | answers by status | {', '.join(f'{c}: {n:,}' for c, n in sorted(reload['codes'].items()))} | no non-2xx: {verdict(reload_ok)} |
        | client errors (connection) | {reload['errors'] or 'none'} | none |
        | SIGHUP → `/v1/info` shows the new sha256, each reload | {', '.join(f'{t:.2f}' for t in reload['reload_s'])} s | < 2 s |
        | reloads / failed reloads (`/metrics`) | {reload['counters'].get('edge_lstm_reloads_total', 0):.0f} / {reload['counters'].get('edge_lstm_reload_failures_total', 0):.0f} | |
        {END}""").replace("HALF_OPEN_ROWS", rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--half-open", type=int, default=2000, help="half-open connections held (default: 2000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long they are held (default: 10)")
    parser.add_argument("--reloads", type=int, default=6, help="SIGHUP reloads under load (default: 6)")
    parser.add_argument("--dry-run", action="store_true", help="print the section instead of writing docs/serve.md")
    args = parser.parse_args()
    if shutil.which("hey") is None:
        raise SystemExit("error: hey is not installed (Debian: apt-get install -y hey)")
    held, flood = (half_open(args.half_open, args.seconds, reopen) for reopen in (False, True))
    for run in (held, flood):
        print(json.dumps({k: v for k, v in run.items() if k != "health"}), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        reload = reload_under_load(args.reloads, Path(tmp))
    print(json.dumps(reload), flush=True)
    publish(report(held, flood, reload, args), args.dry_run, BEGIN, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())
