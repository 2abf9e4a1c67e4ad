"""Load-test a running ``edge-lstm-device serve``: keep-alive clients on one event loop, standard library only.

    python -m edge_lstm_device.tools.loadtest --url http://127.0.0.1:8080 --clients 32 --requests 10000 --pid PID

Each client holds one HTTP/1.1 connection and posts one review per request, one request after the
other (a closed loop: with C clients, about C requests wait or run at any time). The clients are
tasks of one asyncio loop that write prepared requests and read answers by their
``Content-Length``, so the tester costs the machine little next to the server; ``--texts-file``
sends its lines in turn instead of one fixed review, ``--path /v1/health`` GETs that path instead.
Reports requests/s, latency percentiles, errors and, with ``--pid`` (the server's process id, same
machine), the server's peak RSS and its RSS after the first and the last thousand requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from edge_lstm_device.tools.timing import summarize

DEFAULT_TEXT = "What a wonderful film, the cast was great and the story moved me."
RSS_WINDOW = 1000  # RSS is read after the first and after the last this many requests
TARGETS = {"errors": 0, "p99_ms": 50.0, "rss_growth_pct": 10.0}
EXIT_UNREACHABLE, EXIT_MISSED = 1, 3
PREDICT_PATH = "/v1/predict"  # POSTed with a review; any other path is a GET


def read_rss_kib(pid: int) -> dict[str, int]:
    """``VmRSS`` (now) and ``VmHWM`` (peak) of a process, in KiB, from ``/proc/<pid>/status``."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


class _Run:
    """What the clients share: the next request's number, the results, the RSS samples."""

    def __init__(self, requests: int, pid: int | None) -> None:
        self.requests, self.pid = requests, pid
        self.issued = self.done = 0  # requests sent (the next one's number), answered
        self.latencies_ms: list[float] = []
        self.errors: Counter[str] = Counter()
        self.rss_first: int | None = None

    def take(self) -> int | None:
        """The number of the next request to send, or None when all are sent."""
        if self.issued >= self.requests:
            return None
        self.issued += 1
        return self.issued - 1

    def record(self, ms: float, error: str | None) -> None:
        self.done += 1
        if error:
            self.errors[error] += 1
        else:
            self.latencies_ms.append(ms)
        if self.pid and self.done == min(RSS_WINDOW, self.requests):
            self.rss_first = read_rss_kib(self.pid).get("VmRSS")


class _Answer(Exception):
    """An answer that is not a well-formed HTTP/1.1 response."""


async def _response(reader: asyncio.StreamReader) -> tuple[int, bool, bytes]:
    """The next answer on ``reader``: status, whether the server closes, body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    words = lines[0].split(" ", 2)
    if len(words) < 2 or not words[0].startswith("HTTP/") or not words[1].isdigit():
        raise _Answer(f"bad status line {lines[0][:60]!r}")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:] if line)}
    length = headers.get("content-length", "")
    if not length.isdigit():
        raise _Answer("no Content-Length")
    return int(words[1]), headers.get("connection", "").lower() == "close", await reader.readexactly(int(length))


async def _client(run: _Run, host: str, port: int, requests: Sequence[bytes], check: bool, timeout: float) -> None:
    """Send requests until all are sent (``requests`` in turn, by request number) over one
    keep-alive connection, opened again after the server closes it."""
    loop = asyncio.get_running_loop()
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    for number in iter(run.take, None):
        start = time.perf_counter()
        error = None
        late = []  # set by the watchdog: the answer did not come within ``timeout``
        watchdog = None
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            watchdog = loop.call_later(timeout, lambda w=writer: (late.append(True), w.transport.abort()))
            writer.write(requests[number % len(requests)])
            status, close, answer = await _response(reader)  # type: ignore[arg-type]
            if status != 200:
                error = f"HTTP {status}"
            elif check and len(json.loads(answer)["predictions"]) != 1:
                error = "wrong answer"
            if close:
                writer.close()
                writer = None
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, _Answer,
                ValueError, KeyError) as err:
            error = "TimeoutError" if late else type(err).__name__
            if writer is not None:
                writer.transport.abort()
            writer = None
        finally:
            if watchdog is not None:
                watchdog.cancel()
        run.record((time.perf_counter() - start) * 1000, error)
    if writer is not None:
        writer.close()


def _requests(host: str, path: str, bodies: Sequence[bytes] | None, token: str | None) -> list[bytes]:
    """Each request as the bytes sent: POSTs of ``bodies``, or one GET of ``path``."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    if not bodies:
        return [f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode("latin-1")]
    return [f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body for body in bodies]


async def _clients(run: _Run, host: str, port: int, requests: Sequence[bytes], check: bool, clients: int,
                   timeout: float) -> None:
    await asyncio.gather(*(_client(run, host, port, requests, check, timeout) for _ in range(clients)))


def run_load(url: str, clients: int = 32, requests: int = 10_000, texts: str | Sequence[str] = DEFAULT_TEXT,
             pid: int | None = None, token: str | None = None, timeout: float = 30.0,
             path: str = PREDICT_PATH) -> dict:
    """Send ``requests`` requests from ``clients`` keep-alive connections to the server at ``url`` (its
    base, or its ``/v1/predict``): single-review posts of ``texts`` in turn, or GETs of ``path`` when it
    is not ``/v1/predict``; latency in ms, RSS in KiB (only with ``pid``)."""
    if clients < 1 or requests < 1:
        raise ValueError("clients and requests must be >= 1")
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise ValueError("no texts to send")
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"expected an http:// URL, got {url!r}")
    if not path.startswith("/"):
        raise ValueError(f"expected a path starting with '/', got {path!r}")
    base = parts.path.rstrip("/")
    path = (base[: -len(PREDICT_PATH)] if base.endswith(PREDICT_PATH) else base) + path
    bodies = [json.dumps({"texts": [text]}).encode("utf-8") for text in texts] if path.endswith(PREDICT_PATH) else None
    run = _Run(requests, pid)
    prepared = _requests(parts.netloc, path, bodies, token)
    start = time.perf_counter()
    asyncio.run(_clients(run, parts.hostname, parts.port or 80, prepared, bodies is not None, clients, timeout))
    seconds = time.perf_counter() - start
    summary = summarize(run.latencies_ms) if run.latencies_ms else None
    report: dict = {
        "url": f"http://{parts.netloc}{path}", "clients": clients, "requests": requests,
        "errors": sum(run.errors.values()), "error_kinds": dict(run.errors), "seconds": round(seconds, 3),
        "requests_per_s": round(requests / seconds, 1),
        "latency_ms": {"p50": summary.median, "p90": summary.p90, "p99": summary.p99,
                       "max": round(max(run.latencies_ms), 3)} if summary else
                      {k: float("nan") for k in ("p50", "p90", "p99", "max")},
    }
    if pid:
        rss = read_rss_kib(pid)
        first, last = run.rss_first, rss.get("VmRSS")
        report["server_rss_kib"] = {
            "peak": rss.get("VmHWM"), "after_first_requests": first, "after_last_requests": last,
            "window": min(RSS_WINDOW, requests),
            "growth_pct": round(100 * (last - first) / first, 2) if first and last else None,
        }
    return report


def verdicts(report: dict) -> dict[str, bool]:
    """Each target of the issue met or not (RSS growth only when the server's pid was given)."""
    result = {"errors": report["errors"] <= TARGETS["errors"],
              "p99_ms": report["latency_ms"]["p99"] <= TARGETS["p99_ms"]}
    growth = report.get("server_rss_kib", {}).get("growth_pct")
    if growth is not None:
        result["rss_growth_pct"] = growth <= TARGETS["rss_growth_pct"]
    return result


def _print_table(report: dict, met: dict[str, bool]) -> None:
    lat = report["latency_ms"]

    def ok(name: str) -> str:
        return "ok" if met[name] else "MISSED"

    kinds = ", ".join(f"{k}: {v}" for k, v in report["error_kinds"].items())
    rows = [
        ("url", report["url"]),
        ("clients x requests", f"{report['clients']} x {report['requests']} in {report['seconds']:.1f} s"),
        ("requests/s", f"{report['requests_per_s']:.1f}"),
        ("latency ms", (f"p50 {lat['p50']:.2f}  p90 {lat['p90']:.2f}  p99 {lat['p99']:.2f}  max {lat['max']:.2f}"
                        f"  (p99 <= {TARGETS['p99_ms']:g}: {ok('p99_ms')})")),
        ("errors", f"{report['errors']}{f' ({kinds})' if kinds else ''}  (0: {ok('errors')})"),
    ]
    rss = report.get("server_rss_kib")
    if rss and rss["growth_pct"] is not None:
        rows += [("server peak RSS", f"{rss['peak'] / 1024:.1f} MB"),
                 (f"server RSS, first/last {rss['window']}",
                  (f"{rss['after_first_requests'] / 1024:.1f} MB -> {rss['after_last_requests'] / 1024:.1f} MB"
                   f" ({rss['growth_pct']:+.2f}%)  (<= {TARGETS['rss_growth_pct']:g}%: {ok('rss_growth_pct')})"))]
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))


def _read_texts(path: Path) -> list[str]:
    """The non-blank lines of ``path`` (``ValueError`` if it is not UTF-8 or has none)."""
    try:
        texts = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 (byte {err.start})") from None
    if not texts:
        raise ValueError(f"{path} has no review")
    return texts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_lstm_device.tools.loadtest",
                                     description="Load-test a running edge-lstm-device serve (one review per request).")
    parser.add_argument("--url", required=True, help="the server, e.g. http://127.0.0.1:8080")
    parser.add_argument("--clients", type=int, default=32, help="concurrent keep-alive connections (default: 32)")
    parser.add_argument("--requests", type=int, default=10_000, help="requests in all (default: 10000)")
    parser.add_argument("--text", default=DEFAULT_TEXT, help="the review every request sends")
    parser.add_argument("--texts-file", type=Path, default=None,
                        help="send this file's lines (UTF-8, one review per line) in turn instead of --text")
    parser.add_argument("--path", default=PREDICT_PATH,
                        help=f"the path to load (default: {PREDICT_PATH}); any other, e.g. /v1/health, is a GET")
    parser.add_argument("--pid", type=int, default=None, help="the server's process id: report its memory")
    parser.add_argument("--token-file", type=Path, default=None, help="send this bearer token")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.requests < 1:
        parser.error("--clients and --requests must be >= 1")
    try:
        token = args.token_file.read_text(encoding="utf-8").strip() if args.token_file else None
        texts = _read_texts(args.texts_file) if args.texts_file else args.text
        if args.pid:
            read_rss_kib(args.pid)
        report = run_load(args.url, args.clients, args.requests, texts, args.pid, token, path=args.path)
    except ValueError as err:
        parser.error(str(err))
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_UNREACHABLE
    met = verdicts(report)
    if args.json:
        print(json.dumps({**report, "targets": TARGETS, "met": met}, indent=2))
    else:
        _print_table(report, met)
    if report["errors"] == report["requests"]:
        return EXIT_UNREACHABLE
    return 0 if all(met.values()) else EXIT_MISSED


if __name__ == "__main__":
    sys.exit(main())
