"""Measure issue 26's targets for ``edge-lstm-device serve`` and rewrite docs/wire_report.md.

    python3 scripts/wire_report.py [--rounds 3] [--old NAME=COMMIT ...] [--dry-run]

Each round, each figure from outside the server process (the attacks run in a child process of
their own, so the timing thread shares no GIL with them):
(a) **Slow clients**: 600 slow bodies (a whole ``POST`` head announcing 1,000 bytes, then nothing)
and 2,000 half-open heads, held for 15 s; ``GET /v1/health`` on a new connection every 0.25 s.
(b) **Reconnect flood**: 2,000 half-open heads, each one the server closes opened again at once.
(c) **Memory**: 100 clients each post a 1 MiB body in 64 KiB pieces every 0.25 s, all at once.
(d) **Throughput**: ``hey -n 20000 -c 32``, one short review per request, to this tree's server
and to each ``--old`` commit's (``git archive COMMIT device export``), interleaved within the round.
The machine is shared and noisy, so every figure is given as the median and range of the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

from serve_load import ROOT, SHORT_REVIEW, hey_version, start_server, stop_server
from serve_ops import Slowloris, proc_status, scrape, timed_health
from serve_slow import SLOW_BODY_HEAD, memory

DOC = ROOT / "docs" / "wire_report.md"
HALF_OPEN, SLOW_BODIES, SECONDS, UPLOADS, HEY_REQUESTS = 2000, 600, 15.0, 100, 20000
DEFAULT_OLD = ["before-wire=d680da2", "main=b10357e"]


def attack(host: str, port: int, slow_bodies: int, half_open: int, seconds: float, flood: bool) -> None:
    """(The child process.) Hold the connections for ``seconds``; print what was opened."""
    attacks = [Slowloris((host, port), slow_bodies, flood, head=SLOW_BODY_HEAD), Slowloris((host, port), half_open, flood)]
    threads = [threading.Thread(target=a.run, daemon=True) for a in attacks]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    for a in attacks:
        a.stop.set()
    for thread in threads:
        thread.join(30)
    print(json.dumps({"opened": sum(a.opened for a in attacks)}), flush=True)


def under_attack(slow_bodies: int, half_open: int, flood: bool) -> dict:
    """Health latency, failures and 503s while a child process attacks a new server."""
    server = start_server()
    try:
        url = urlsplit(server.url)
        child = subprocess.Popen([sys.executable, __file__, "--attack", url.hostname, str(url.port), str(slow_bodies),
                                  str(half_open), str(SECONDS + 2), str(int(flood))], stdout=subprocess.PIPE, text=True)
        time.sleep(2.0)  # the connections are open
        health, failures, rss = [], [], []
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            rss.append(proc_status(server.proc.pid)["rss_kb"] / 1e3)
            try:
                health.append(timed_health(server.url) * 1000)
            except (OSError, RuntimeError) as err:
                failures.append(str(err)[:40])
            time.sleep(0.25)
        opened = json.loads(child.communicate(timeout=60)[0])["opened"]
        closed = scrape(server.url)
        return {"n": len(health), "p50": _q(health, 49), "p99": _q(health, 98), "over_500": sum(h > 500 for h in health),
                "failures": len(failures), "health_503": sum("503" in f for f in failures),
                "refused_503": int(closed.get("refused", 0)), "opened": opened, "rss_max_mb": max(rss)}
    finally:
        stop_server(server)


def _q(values: list[float], cut: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[cut], 1) if len(values) > 1 else float("nan")


def old_trees(specs: list[str], tmp: Path) -> dict[str, Path]:
    """NAME=COMMIT -> the ``device`` folder of that commit, unpacked under ``tmp`` (with ``export``:
    the device's reference files are links into it)."""
    trees = {}
    for spec in specs:
        name, commit = spec.split("=", 1)
        dest = tmp / name
        dest.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "device", "export"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        trees[f"{name} ({commit})"] = dest / "device"
    return trees


def hey_round(servers: dict[str, tuple[subprocess.Popen, int]], body: Path) -> dict[str, dict]:
    """One ``hey`` run per server, in turn: requests/s, p99, 200s, server CPU µs per request."""
    results = {}
    for name, (proc, port) in servers.items():
        before = _cpu_ticks(proc.pid)
        out = subprocess.run(["hey", "-n", str(HEY_REQUESTS), "-c", "32", "-m", "POST", "-T", "application/json",
                              "-D", str(body), f"http://127.0.0.1:{port}/v1/predict"],
                             capture_output=True, text=True, timeout=600, check=True).stdout
        ticks = _cpu_ticks(proc.pid) - before
        results[name] = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                         "p99_ms": float(re.search(r"99% in ([\d.]+) secs", out).group(1)) * 1000,
                         "ok": sum(int(n) for n in re.findall(r"\[200\]\s+(\d+) responses", out)),
                         "cpu_us": ticks * 10_000 / HEY_REQUESTS}
    return results


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def start_tree(device: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": f"{device}{os.pathsep}{ROOT}"}
    return subprocess.Popen([sys.executable, "-m", "edge_lstm_device", "serve", "--quiet", "--workers", "2",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def throughput(rounds: int, old: list[str]) -> list[dict[str, dict]]:
    with tempfile.TemporaryDirectory(prefix="wire-report-") as tmp:
        trees = {**old_trees(old, Path(tmp)), "this tree": ROOT / "device"}
        body = Path(tmp) / "body.json"
        body.write_text(json.dumps({"texts": [SHORT_REVIEW]}))
        servers = {name: (start_tree(device, 18960 + i), 18960 + i) for i, (name, device) in enumerate(trees.items())}
        try:
            for _, port in servers.values():
                _wait_listening(port)
            return [hey_round(servers, body) for _ in range(rounds)]
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(60)


def _wait_listening(port: int, timeout: float = 180.0) -> None:
    """Until the server on ``port`` answers (it loads, and may calibrate, first)."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/health", timeout=5).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def spread(values: list[float], digits: int = 1) -> str:
    fmt = f"{{:,.{digits}f}}"
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def _throughput_rows(hey: list[dict[str, dict]]) -> tuple[list[str], dict[str, list[float]]]:
    """The throughput table's rows (one per server), and this tree's requests/s ÷ each older server's, per round."""
    names = list(hey[0])
    ratio = {n: [r["this tree"]["rps"] / r[n]["rps"] for r in hey] for n in names if n != "this tree"}
    rows = [f"| {n} | {spread([r[n]['rps'] for r in hey], 0)} | {spread([r[n]['p99_ms'] for r in hey])} | "
            f"{sum(r[n]['ok'] for r in hey):,} of {HEY_REQUESTS * len(hey):,} | {spread([r[n]['cpu_us'] for r in hey], 0)} |"
            for n in names]
    return rows, ratio


def _attack_rows(slow: list[dict], flood: list[dict]) -> list[str]:
    """The attacks table's rows: the health calls during each attack."""
    attack_rows = []
    for label, runs in (("600 slow bodies + 2,000 half-open heads, held", slow), ("2,000 half-open heads, reconnect flood", flood)):
        attack_rows.append(
            f"| {label} | {spread([r['p50'] for r in runs])} | {spread([r['p99'] for r in runs])} | "
            f"{sum(r['over_500'] for r in runs)} of {sum(r['n'] for r in runs)} | {sum(r['failures'] for r in runs)} | "
            f"{sum(r['refused_503'] for r in runs)} | {spread([r['rss_max_mb'] for r in runs])} | {spread([r['opened'] for r in runs], 0)} |")
    return attack_rows


def report(slow: list[dict], flood: list[dict], mem: list[dict], hey: list[dict[str, dict]], args: argparse.Namespace) -> str:
    rows, ratio = _throughput_rows(hey)
    attack_rows = _attack_rows(slow, flood)
    statuses: dict[str, int] = {}
    for run in mem:
        for status, count in run["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return f"""# The wire under attack and under load (issue 26): measured

Generated by `python3 scripts/wire_report.py --rounds {args.rounds}` (it starts the servers itself; edit the
script, not this file). {platform.machine()}, {os.cpu_count()} cores shared with other jobs (load average at the
start {args.load_start}, at the end {os.getloadavg()[0]:.1f}), Python {platform.python_version()}, {hey_version()}; servers
`edge-lstm-device serve --quiet --workers 2` (512 connections, 64 MiB of bodies), clients on the same machine.
Each figure: the median of the rounds (min–max): {args.rounds} of the attacks and uploads, {len(hey)} of `hey`.
`GET /v1/health` is timed on a new connection every 0.25 s for 15 s, from a process of its own (the attack
runs in a child process, so the timing shares no GIL with it).

## Slow clients and a reconnect flood (target: `/v1/health` p99 < 500 ms, no 503)

| attack | health p50 ms | health p99 ms | health calls over 500 ms | health calls failed | 503s (`/metrics` refused) | server RSS, most (MB) | connections opened by the attack |
| --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(attack_rows)}

Under the flood the event loop's thread waits for a CPU most of each second on this shared machine, and
the full accept queue drops SYNs (the client's TCP retries after 1 s): see
[decisions/health-under-reconnect-flood.md](decisions/health-under-reconnect-flood.md) (`scripts/serve_flood.py`).

## Memory: {UPLOADS} clients each posting a 1 MiB body slowly (64 KiB every 0.25 s)

| figure | measured |
| --- | --- |
| server RSS before → peak, MB | {spread([r['rss_before_mb'] for r in mem])} → {spread([r['rss_peak_mb'] for r in mem])} |
| answers, all rounds | {', '.join(f'{s}: {n}' for s, n in sorted(statuses.items()))} |

## Throughput: `hey -n {HEY_REQUESTS} -c 32`, one short review per request, servers side by side

All servers run at once (idle but for the one measured); each round runs `hey` against each in the order
of the table. An older server is `git archive COMMIT device export` run the same way.

| server | requests/s | p99 ms | answered 200 | server CPU µs per request |
| --- | --- | --- | --- | --- |
{chr(10).join(rows)}

requests/s of this tree ÷ each older server's, per round: {'; '.join(f"{n}: {', '.join(f'{v:.2f}' for v in vs)} (median {statistics.median(vs):.2f})" for n, vs in ratio.items())}.
"""


def main() -> int:
    if sys.argv[1:2] == ["--attack"]:
        host, port, slow_bodies, half_open, seconds, flood = sys.argv[2:8]
        attack(host, int(port), int(slow_bodies), int(half_open), float(seconds), flood == "1")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old", action="append", default=None, metavar="NAME=COMMIT",
                        help=f"an older server to compare throughput with (default: {', '.join(DEFAULT_OLD)})")
    parser.add_argument("--dry-run", action="store_true", help="print the report instead of writing it")
    args = parser.parse_args()
    args.load_start = f"{os.getloadavg()[0]:.1f}"
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 8192)), hard))
    slow, flood, mem = [], [], []
    for round_ in range(args.rounds):
        slow.append(under_attack(SLOW_BODIES, HALF_OPEN, flood=False))
        flood.append(under_attack(0, HALF_OPEN, flood=True))
        mem.append(memory(UPLOADS))
        print(f"round {round_ + 1}: slow {slow[-1]}; flood {flood[-1]}; memory {mem[-1]}", file=sys.stderr, flush=True)
    hey = throughput(args.rounds * 2, args.old or DEFAULT_OLD)
    print(f"hey: {hey}", file=sys.stderr, flush=True)
    text = report(slow, flood, mem, hey, args)
    if args.dry_run:
        print(text)
    else:
        DOC.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
