"""Load-test ``edge-lstm-device serve`` with batching and rewrite the measured section of docs/serve.md.

    python3 scripts/serve_load.py [--rounds 5] [--requests 10000] [--clients 32] [--dry-run]

Starts two servers, ``edge-lstm-device serve --quiet --workers 2`` and the same with ``--max-batch 1``,
then measures, round after round and each with the project's load tester
(``python -m edge_lstm_device.tools.loadtest``) and with ``hey`` (Debian package ``hey``):
(a) ``GET /v1/health``, (b) one short review per request, (c) one real IMDB test review per request
(``edge_lstm/samples/test_reviews.jsonl.gz``), (d) the same as (c) against the ``--max-batch 1``
server. The cases and tools take turns within each round, so the ratios compare runs made under the
same conditions. The section between the ``serve-load`` markers of docs/serve.md is replaced
(``--dry-run`` prints it instead).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "serve.md"
SAMPLE = ROOT / "edge_lstm" / "samples" / "test_reviews.jsonl.gz"
BEGIN, END = "<!-- serve-load:begin -->", "<!-- serve-load:end -->"
SHORT_REVIEW = "What a wonderful film, the cast was great and the story moved me."
SERVE = ["serve", "--quiet", "--workers", "2"]
TARGETS = {"short_vs_health": 0.7, "batched_vs_single": 1.5, "p99_ms": 50.0}
TOOLS = ("loadtest", "hey")
QUIET_CORES, QUIET_WAIT_S = 0.2, 120  # before a run, wait up to QUIET_WAIT_S for the machine to use < QUIET_CORES


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    server: str  # "batched" or "single" (--max-batch 1)
    texts: str | None  # None: GET /v1/health; "short" or "imdb"


CASES = (
    Case("health", "(a) `GET /v1/health`", "batched", None),
    Case("short", "(b) one short review per request", "batched", "short"),
    Case("imdb", "(c) one IMDB test review per request", "batched", "imdb"),
    Case("imdb_single", "(d) as (c), server with `--max-batch 1`", "single", "imdb"),
)


@dataclass(frozen=True)
class Run:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    calls: int  # interpreter calls (batches) the server made during the run
    reviews: int
    server_cpu_s: float  # CPU time the server used during the run (user + system, all threads)
    others_cores: float  # cores busy with neither the server nor the load generator during the run
    requests: int
    rss_growth_pct: float | None  # the server's RSS after the last vs the first 1000 requests (load tester only)


@dataclass
class Server:
    proc: subprocess.Popen
    url: str
    info: dict

    def batches(self) -> tuple[int, int]:
        info = get_json(self.url + "/v1/info")
        return info["batches"]["calls"], info["batches"]["reviews"]

    def cpu_s(self) -> float:
        """User + system CPU time of all the server's threads so far (clock ticks of /proc/PID/stat)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def start_server(*extra: str) -> Server:
    """A server on a free port of 127.0.0.1 (its start line, in JSON, says which)."""
    proc = subprocess.Popen([sys.executable, "-m", "edge_lstm_device", *SERVE, "--port", "0", "--json", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(120)
    if not line or not line[0].strip():
        proc.kill()
        raise SystemExit(f"error: the server {' '.join(extra)} did not start")
    url = json.loads(line[0])["url"]
    return Server(proc, url, get_json(url + "/v1/info"))


def stop_server(server: Server) -> None:
    server.proc.send_signal(signal.SIGTERM)
    try:
        server.proc.wait(90)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(30)


def imdb_texts() -> list[str]:
    """The shipped IMDB test reviews, each on one line (whitespace collapsed)."""
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as handle:
        return [" ".join(json.loads(line)["text"].split()) for line in handle if line.strip()]


def median_review(texts: list[str]) -> str:
    """The review of median word count: what hey sends, as it sends one body."""
    return sorted(texts, key=lambda t: len(t.split()))[len(texts) // 2]


def run_loadtest(server: Server, case: Case, files: dict[str, Path], clients: int, requests: int) -> dict:
    what = ["--path", "/v1/health"] if case.texts is None else (
        ["--text", SHORT_REVIEW] if case.texts == "short" else ["--texts-file", str(files["imdb_lines"])])
    done = subprocess.run([sys.executable, "-m", "edge_lstm_device.tools.loadtest", "--url", server.url, "--clients",
                           str(clients), "--requests", str(requests), "--pid", str(server.proc.pid), "--json", *what],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    if done.returncode not in (0, 3):  # 3: a target missed (reported as measured)
        raise SystemExit(f"error: the load tester failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    report = json.loads(done.stdout)
    return {"requests_per_s": report["requests_per_s"], "p50_ms": report["latency_ms"]["p50"],
            "p99_ms": report["latency_ms"]["p99"], "errors": report["errors"],
            "rss_growth_pct": report["server_rss_kib"]["growth_pct"]}


def run_hey(server: Server, case: Case, files: dict[str, Path], clients: int, requests: int) -> dict:
    if case.texts is None:
        command = ["hey", "-c", str(clients), "-n", str(requests), server.url + "/v1/health"]
    else:
        command = ["hey", "-c", str(clients), "-n", str(requests), "-m", "POST", "-T", "application/json",
                   "-D", str(files[f"{case.texts}_body"]), server.url + "/v1/predict"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=900, check=True).stdout
    answered = sum(int(n) for n in re.findall(r"\[200\]\s+(\d+) responses", out))
    errors = requests - answered  # other statuses, and requests without an answer (hey's "Error distribution")

    def number(pattern: str) -> float:
        match = re.search(pattern, out)
        if not match:
            raise SystemExit(f"error: no {pattern!r} in hey's output:\n{out}")
        return float(match.group(1))

    return {"requests_per_s": number(r"Requests/sec:\s+([\d.]+)"), "p50_ms": number(r"50% in ([\d.]+) secs") * 1000,
            "p99_ms": number(r"99% in ([\d.]+) secs") * 1000, "errors": errors, "rss_growth_pct": None}


def machine_cpu_s() -> float:
    """CPU time all cores spent busy since boot (/proc/stat: all but idle and iowait)."""
    ticks = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the load generators, once they have exited
    return usage.ru_utime + usage.ru_stime


def wait_for_quiet() -> None:
    """Wait (at most QUIET_WAIT_S) until other jobs leave the cores nearly idle."""
    deadline = time.monotonic() + QUIET_WAIT_S
    while time.monotonic() < deadline:
        before = machine_cpu_s()
        time.sleep(1)
        if machine_cpu_s() - before < QUIET_CORES:
            return


def measure(tool: str, server: Server, case: Case, files: dict[str, Path], clients: int, requests: int) -> Run:
    wait_for_quiet()
    calls, reviews = server.batches()
    start, machine, server_cpu, client_cpu = time.monotonic(), machine_cpu_s(), server.cpu_s(), children_cpu_s()
    result = (run_loadtest if tool == "loadtest" else run_hey)(server, case, files, clients, requests)
    server_cpu = server.cpu_s() - server_cpu
    others = machine_cpu_s() - machine - server_cpu - (children_cpu_s() - client_cpu)
    calls_after, reviews_after = server.batches()
    return Run(**result, calls=calls_after - calls, reviews=reviews_after - reviews, server_cpu_s=server_cpu,
               others_cores=max(0.0, others / (time.monotonic() - start)), requests=requests)


def median_range(values: list[float], digits: int = 0) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def report(runs: dict[tuple[str, str], list[Run]], args: argparse.Namespace, servers: dict[str, Server],
           texts: list[str], hey_version: str) -> str:
    """The generated section of docs/serve.md."""
    lines = [BEGIN, *_setup_lines(args, servers["batched"].info), *_runs_table(runs), *_targets_table(runs),
             *_notes(runs, servers, texts, hey_version), END]
    return "\n".join(line if line.startswith("|") else textwrap.fill(line, 100, break_on_hyphens=False)
                     for line in lines)


def _setup_lines(args: argparse.Namespace, info: dict) -> list[str]:
    """How the report was made: the command, the machine, the servers and the rounds."""
    return [
        f"Generated by `python3 scripts/serve_load.py --rounds {args.rounds} --requests {args.requests} "
        f"--clients {args.clients}` (it starts the servers itself, edit the script rather than this section).",
        "",
        f"{os.cpu_count()} cores ({platform.machine()}), Python {platform.python_version()}, {info['interpreter']}, "
        f"model `{info['model']}`; servers `edge-lstm-device {' '.join(SERVE)}` (max batch {info['max_batch']}, "
        f"window {info['batch_window_ms']:g} ms) and, for (d), the same with `--max-batch 1`. {args.clients} clients, "
        f"{args.requests:,} requests per run, {args.rounds} rounds; in each round every case runs once with each tool, "
        "the cases and tools taking turns. **The load generator and the server share the same 2 cores**, and the "
        "machine is noisy: other jobs run on it, and it is a virtual machine whose speed changes by up to ~1.6× "
        "from one minute to the next even when nothing else runs here. So single figures move by tens of percent "
        "from run to run; each ratio below is taken within a round (runs made minutes apart at most) and its "
        "median over the rounds is given.",
        "",
    ]


def _runs_table(runs: dict[tuple[str, str], list[Run]]) -> list[str]:
    """One row per case and tool: the medians (and ranges) of its runs."""
    lines = [
        "| case | tool | requests/s, median (min–max) | p50 ms | p99 ms, median (worst) | errors "
        "| reviews per interpreter call | server CPU µs per request | other jobs, cores |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for case in CASES:
        for tool in TOOLS:
            group = runs[(case.key, tool)]
            calls, reviews = sum(r.calls for r in group), sum(r.reviews for r in group)
            per_call = f"{reviews / calls:.1f}" if calls else "–"
            lines.append(f"| {case.label} | {tool} | {median_range([r.requests_per_s for r in group])} "
                         f"| {statistics.median(r.p50_ms for r in group):.2f} "
                         f"| {statistics.median(r.p99_ms for r in group):.2f} ({max(r.p99_ms for r in group):.2f}) "
                         f"| {sum(r.errors for r in group)} | {per_call} "
                         f"| {statistics.median(r.server_cpu_s / r.requests * 1e6 for r in group):.0f} "
                         f"| {median_range([r.others_cores for r in group], 2)} |")
    return lines


def _targets_table(runs: dict[tuple[str, str], list[Run]]) -> list[str]:
    """The targets, met or missed, by tool: the ratios of requests/s within a round, and p99."""
    def ratios(numerator: str, denominator: str, tool: str) -> list[float]:
        return [a.requests_per_s / b.requests_per_s
                for a, b in zip(runs[(numerator, tool)], runs[(denominator, tool)])]

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    targets = [("short review ÷ health, requests/s", "short", "health", TARGETS["short_vs_health"]),
               ("IMDB review batched ÷ `--max-batch 1`, requests/s", "imdb", "imdb_single",
                TARGETS["batched_vs_single"])]
    lines = ["", "| target | loadtest | hey |", "| --- | --- | --- |"]
    for label, numerator, denominator, target in targets:
        cells = []
        for tool in TOOLS:
            values = ratios(numerator, denominator, tool)
            cells.append(f"{median_range(values, 2)}: {verdict(statistics.median(values) >= target)}")
        lines.append(f"| {label} ≥ {target:g} (median of the rounds) | {' | '.join(cells)} |")
    cells = []
    for tool in TOOLS:
        group = [r for case in CASES for r in runs[(case.key, tool)]]
        worst, errors = max(r.p99_ms for r in group), sum(r.errors for r in group)
        cells.append(f"worst p99 {worst:.1f} ms, {errors} errors: {verdict(worst <= TARGETS['p99_ms'] and not errors)}")
    lines.append(f"| p99 ≤ {TARGETS['p99_ms']:g} ms and no error, every run of every case | {' | '.join(cells)} |")
    return lines


def _notes(runs: dict[tuple[str, str], list[Run]], servers: dict[str, Server], texts: list[str],
           hey_version: str) -> list[str]:
    """What the tools send, what the CPU columns count, and the servers' memory."""
    max_growth = max(r.rss_growth_pct for group in runs.values() for r in group if r.rss_growth_pct is not None)
    return [
        "",
        "The load tester is Python: its clients are tasks of one asyncio loop, each over one keep-alive connection; "
        f"hey is Go (Debian's {hey_version}). Each takes its share of the 2 cores from the server. hey sends "
        "one body over and over: for (c) and (d) it posts one review of median length "
        f"({len(median_review(texts).split())} words), while the load tester cycles through all {len(texts)} reviews "
        "of the sample (short and long mixed in one batch: a batch runs as many steps as its longest review). "
        "Server CPU is the user and system time of the server process during a run (in 10 ms ticks) per request; "
        "the rest of the 2 cores went to the load generator, the kernel's loopback TCP and other jobs. \"Other "
        "jobs\" is the CPU time the machine spent busy during a run, less that of the server and of the load "
        "generator, per second (so it also holds the kernel's work on their behalf); each run started once the "
        f"machine had been below {QUIET_CORES:g} busy cores for a second (or after {QUIET_WAIT_S} s). The server's "
        "RSS after the last 1000 requests of a run against after the first (the load tester's `--pid`) grew by at "
        f"most {max_growth:+.2f}% (target: at most +10%). Server peak RSS after all rounds: "
        f"{servers['batched'].peak_rss_mb():.1f} MB (batched), {servers['single'].peak_rss_mb():.1f} MB "
        "(`--max-batch 1`).",
    ]


def publish(section: str, dry_run: bool, begin: str = BEGIN, end: str = END) -> None:
    """Print ``section`` (``dry_run``), or put it in place of docs/serve.md's ``begin`` ... ``end``."""
    if dry_run:
        print(section)
        return
    text = DOC.read_text(encoding="utf-8")
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise SystemExit(f"error: {DOC} has no {begin} ... {end} section")
    DOC.write_text(text[:start] + section + text[stop + len(end):], encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")


def hey_version() -> str:
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "hey"], capture_output=True, text=True,
                              timeout=30)
        return f"hey {done.stdout.strip()}" if done.returncode == 0 and done.stdout.strip() else "hey"
    except OSError:
        return "hey"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="rounds of all cases with both tools (default: 7)")
    parser.add_argument("--requests", type=int, default=9600,
                        help="requests per run, a multiple of --clients (hey's rule) (default: 9600)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default: 32)")
    parser.add_argument("--dry-run", action="store_true", help="print the section instead of writing docs/serve.md")
    args = parser.parse_args()
    if args.rounds < 1 or args.clients < 1 or args.requests < args.clients or args.requests % args.clients:
        parser.error("need --rounds >= 1, --clients >= 1 and --requests a multiple of --clients")
    if shutil.which("hey") is None:
        raise SystemExit("error: hey is not installed (Debian: apt-get install -y hey)")
    texts = imdb_texts()
    with tempfile.TemporaryDirectory() as tmp:
        files = {"imdb_lines": Path(tmp) / "imdb.txt", "short_body": Path(tmp) / "short.json",
                 "imdb_body": Path(tmp) / "imdb.json"}
        files["imdb_lines"].write_text("\n".join(texts) + "\n", encoding="utf-8")
        files["short_body"].write_text(json.dumps({"texts": [SHORT_REVIEW]}), encoding="utf-8")
        files["imdb_body"].write_text(json.dumps({"texts": [median_review(texts)]}), encoding="utf-8")
        servers = {"batched": start_server(), "single": start_server("--max-batch", "1")}
        try:
            for case in CASES:  # warm-up: replicas made, caches filled
                run_loadtest(servers[case.server], case, files, args.clients, 30 * args.clients)
            runs: dict[tuple[str, str], list[Run]] = {(c.key, t): [] for c in CASES for t in TOOLS}
            for round_ in range(args.rounds):
                for case in CASES:
                    for tool in TOOLS if round_ % 2 == 0 else TOOLS[::-1]:
                        run = measure(tool, servers[case.server], case, files, args.clients, args.requests)
                        runs[(case.key, tool)].append(run)
                        print(f"round {round_ + 1} {case.key:<12} {tool:<8} {run.requests_per_s:8.0f} req/s "
                              f"p50 {run.p50_ms:6.2f} p99 {run.p99_ms:6.2f} ms errors {run.errors}", flush=True)
            section = report(runs, args, servers, texts, hey_version())
        finally:
            for server in servers.values():
                stop_server(server)
    publish(section, args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
