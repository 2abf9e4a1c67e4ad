"""``edge-lstm-device serve``: the model as a small JSON-over-HTTP service, standard library only.

``POST /v1/predict`` ``{"texts": [...]}`` answers ``{"model": ..., "predictions": [...]}`` in order;
``GET /v1/health`` and ``GET /v1/info`` describe the server, ``GET /metrics`` in Prometheus' text
format, ``GET /`` is a demo page. One interpreter per worker; the reviews of concurrent requests are
scored together, up to ``--max-batch`` per interpreter call (:class:`~edge_lstm_device.serving.batcher.Batcher`;
a review's score does not depend on its batch mates). HTTP/1.1 with keep-alive, at most
``--max-connections`` connections (:class:`~edge_lstm_device.serving.connections.ConnectionSlots`). Every
refusal is a JSON error with its 4xx status; the server keeps running. SIGHUP loads the bundle again
and switches to it once it scores (:func:`reload`). On SIGTERM or SIGINT it stops accepting,
finishes the requests in flight and exits 0.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from edge_lstm_device import __version__
from edge_lstm_device.bundle.manifest import bundle_version, model_entry
from edge_lstm_device.bundle.rollback import RollbackGuard
from edge_lstm_device.bundle.signing import resolve_trust
from edge_lstm_device.runtime.interpreters import interpreter_version
from edge_lstm_device.runtime.model import REFERENCE_BUNDLE, BundleError
from edge_lstm_device.runtime.pool import MAX_WORKERS, ModelPool, default_workers
from edge_lstm_device.runtime.scoring import MAX_BATCH
from edge_lstm_device.serving import hosts
from edge_lstm_device.serving.api import Limits, ServerOptions
from edge_lstm_device.serving.batcher import Batcher
from edge_lstm_device.serving.connection import log
from edge_lstm_device.serving.connections import MAX_CONNECTIONS, fit_open_files
from edge_lstm_device.serving.server import Server
from edge_lstm_device.serving.service import Service, Services

__all__ = ["Limits", "Server", "ServerOptions", "is_exposed", "load_service", "reload", "run_serve"]

DRAIN_TIMEOUT_S = 60  # on SIGTERM, the longest wait for the requests in flight
MAX_WINDOW_MS = 1000.0  # the longest --batch-window-ms
EXIT_FATAL, EXIT_USAGE = 1, 2


def is_exposed(host: str) -> bool:
    """Whether ``host`` is reachable from other machines (anything but a loopback address)."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: assume it is reachable
        return True


def read_token(path: Path) -> str:
    """The bearer token in ``path`` (surrounding whitespace ignored): printable ASCII, no spaces."""
    token = Path(path).read_text(encoding="utf-8").strip()
    if not token or not all(33 <= ord(c) <= 126 for c in token):
        raise ValueError(f"{path}: the token must be one word of printable ASCII characters")
    return token


def info_payload(pool: ModelPool, args: argparse.Namespace, limits: Limits) -> dict:
    """What ``GET /v1/info`` answers."""
    model = pool.first
    manifest = model.manifest
    entry = model_entry(manifest, model.name)
    dist = model.scorer.interpreter_dist
    return {
        "bundle": str(Path(args.bundle).resolve()) if args.bundle else "reference (shipped with edge-lstm-device)",
        "model": model.name, "why": model.choice.reason, "file": entry["file"],
        "interpreter": f"{dist} {interpreter_version(dist)}",
        "workers": pool.workers, "threads": args.threads, "max_batch": args.max_batch,
        "max_connections": args.max_connections,
        "batch_window_ms": args.batch_window_ms, "version": __version__, "limits": asdict(limits),
        "bundle_version": bundle_version(manifest),
        **({"labels": list(model.labels)} if model.labels else {}),
        "sha256": {"model": entry["sha256"], "tokenizer": manifest["tokenizer"]["sha256"],
                   "source_model": manifest.get("source_model", {}).get("sha256")},
    }


def _usage_problems(args: argparse.Namespace, limits: Limits, workers: int) -> list[str]:
    problems = [f"--{name.replace('_', '-')} must be >= 1" for name, value in asdict(limits).items() if value < 1]
    if not 1 <= workers <= MAX_WORKERS:
        problems.append(f"--workers must be between 1 and {MAX_WORKERS}")
    if not 0 <= args.port <= 65535:
        problems.append("--port must be between 0 and 65535")
    if not 1 <= args.max_batch <= MAX_BATCH:
        problems.append(f"--max-batch must be between 1 and {MAX_BATCH}")
    if not (math.isfinite(args.batch_window_ms) and 0 <= args.batch_window_ms <= MAX_WINDOW_MS):
        problems.append(f"--batch-window-ms must be between 0 and {MAX_WINDOW_MS:g}")
    if not 1 <= args.max_connections <= MAX_CONNECTIONS:
        problems.append(f"--max-connections must be between 1 and {MAX_CONNECTIONS}")
    if args.max_body_memory < limits.max_body_bytes:
        problems.append("--max-body-memory must be at least --max-body-bytes (else no such body could be read)")
    return problems


def _open_files_problems(args: argparse.Namespace) -> list[str]:
    """Why the open-files limit cannot take ``--max-connections`` (raising it where it can)."""
    problem = fit_open_files(args.max_connections)
    return [problem] if problem else []


def _workers(args: argparse.Namespace) -> int:
    return default_workers() if args.workers is None else args.workers


def load_service(args: argparse.Namespace, limits: Limits) -> Service:
    """The bundle of ``args`` loaded, its scoring threads started, and one review scored; raises
    :class:`BundleError` (or ``ImportError``, ``ValueError``) if it cannot serve."""
    trusted = resolve_trust(args.trust)  # read again at each reload: a replaced key file counts
    guard = RollbackGuard.default(getattr(args, "allow_downgrade", False)) if trusted else None
    pool = ModelPool.load(args.bundle, args.model, _workers(args), args.threads, args.interpreter, trust=trusted,
                          calibrate=not args.no_calibrate, guard=guard)
    batcher = Batcher(pool, args.max_batch, args.batch_window_ms / 1000)
    service = Service(pool, batcher, info_payload(pool, args, limits))
    try:
        service.check()
    except (ValueError, RuntimeError) as err:  # ModelRunError, the interpreter failing on the file
        service.close()
        raise BundleError(f"the model does not score: {err}") from err
    if guard is not None and trusted is not None:  # accepted and scoring: now it is the floor
        try:
            guard.remember(pool.first.manifest, trusted.key_id, args.bundle or REFERENCE_BUNDLE)
        except BundleError:  # the state cannot be written: protection asked for and not given
            service.close()
            raise
    return service


def reload(server: Server, args: argparse.Namespace) -> bool:
    """Load the bundle again, off to the side, and switch to it; on failure, log it and keep serving
    the current model. Requests in flight finish on the model they started with."""
    old = server.services.current
    started = time.perf_counter()
    log(f"reloading {args.bundle or 'the reference bundle'}")
    try:
        new = load_service(args, server.options.limits)
    except (BundleError, ImportError, ValueError, OSError) as err:
        server.metrics.reload_failures.inc()
        log(f"reload failed, still serving {old.name} (sha256 {old.info['sha256']['model'][:12]}): {err}")
        return False
    server.services.swap(new)
    server.metrics.reloads.inc()
    log(f"reloaded in {time.perf_counter() - started:.2f} s: {new.name} (sha256 {new.info['sha256']['model'][:12]}): "
        f"{new.pool.first.choice.reason}")
    fallbacks = new.pool.first.choice.fallbacks  # faster models of the bundle that did not load or failed verify
    if fallbacks:
        server.metrics.reload_fallbacks.inc()
        log(f"reload: serving {new.name}, not the bundle's first choice: " + "; ".join(f"{n}: {why}" for n, why in fallbacks.items()))
    return True


def run_serve(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or SIGINT (SIGHUP reloads the bundle): 0 after a clean stop, 1 if the
    model, token or port is unusable."""
    stop, reload_wanted = threading.Event(), threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if stop.is_set():
            raise SystemExit(EXIT_FATAL)  # a second signal: stop now
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):  # before loading: a signal then still exits cleanly
        signal.signal(sig, on_signal)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda signum, frame: reload_wanted.set())
    server = _start(args)
    if isinstance(server, int):
        return server
    threading.Thread(target=server.serve_forever, name="edge-lstm-serve", daemon=True).start()
    while not stop.wait(0.2):  # a timeout: a signal delivered to another thread would not wake a bare wait()
        if reload_wanted.is_set():
            reload_wanted.clear()
            reload(server, args)
    return _drain(server)


def _start(args: argparse.Namespace) -> Server | int:
    """The listening server with its model loaded, or the exit code of why not."""
    limits = Limits(args.max_body_bytes, args.max_texts, args.max_chars)
    problems = _usage_problems(args, limits, _workers(args)) or _open_files_problems(args)
    if problems:
        print(f"edge-lstm-device serve: error: {'; '.join(problems)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        token = read_token(args.token_file) if args.token_file else None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        print(f"error: cannot use the token file: {err}", file=sys.stderr)
        return EXIT_FATAL
    try:
        service = load_service(args, limits)
    except (BundleError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FATAL
    allowed = None if token else hosts.parse_allowed(args.allowed_hosts, args.host)  # a token defeats rebinding
    options = ServerOptions(limits, token, args.quiet, args.max_connections, body_memory=args.max_body_memory,
                            allowed_hosts=allowed)
    try:
        server = Server((args.host, args.port), Services(service), options)
    except OSError as err:
        service.close()
        print(f"error: cannot listen on {args.host}:{args.port}: {err.strerror or err}", file=sys.stderr)
        return EXIT_FATAL
    _announce(args, server, service)
    return server


def _announce(args: argparse.Namespace, server: Server, service: Service) -> None:
    url = f"http://{args.host}:{server.server_port}"
    if is_exposed(args.host) and server.options.token is None:
        print(f"warning: {url} is reachable from other machines and takes no token: "
              "anyone who reaches it can use the model (see --token-file)", file=sys.stderr)
    if args.json:
        print(json.dumps({"url": url, "model": service.name, "why": service.pool.first.choice.reason,
                          "workers": service.pool.workers}), flush=True)
    else:
        print(f"serving {service.name} ({service.pool.workers} workers) on {url}: {service.pool.first.choice.reason}", flush=True)


def _drain(server: Server) -> int:
    """Stop accepting, wait for the requests in flight, stop the scoring threads."""
    server.draining = True
    server.shutdown()  # stop accepting, close the idle connections; the requests in flight go on
    log(f"stopping: {server.in_flight} requests in flight")
    if not server.wait_idle(DRAIN_TIMEOUT_S):
        log(f"stopped with {server.in_flight} requests unfinished after {DRAIN_TIMEOUT_S} s")
        return EXIT_FATAL
    server.services.close()  # no job is left: the scoring threads end
    server.server_close()
    log("stopped")
    return 0
