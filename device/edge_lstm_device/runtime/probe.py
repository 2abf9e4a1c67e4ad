"""Load and run a TFLite file in a child process first, so a file that crashes the interpreter
(a malformed flatbuffer can segfault it) costs the child, never the caller.

``python -m edge_lstm_device.runtime.probe FILE SHA256 [--interpreter NAME]`` exits 0 when the file
loads and scores one review. Files that passed are remembered by sha256 and by the interpreter
that loaded them (package and version: a file one interpreter takes can crash another) in the cache
folder (``$EDGE_LSTM_CACHE`` or ``~/.cache/edge-lstm``), so each file is probed once per interpreter.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from edge_lstm_device.bundle.files import bytes_sha256, cache_dir
from edge_lstm_device.bundle.manifest import BundleError
from edge_lstm_device.runtime.interpreters import interpreter_class, interpreter_version

PROBE_TIMEOUT_S = 120


class ProbeRefused(ValueError):
    """The interpreter refused the file without crashing (another model may still load)."""


def _marker(sha256: str, interpreter: str | None) -> Path:
    _, dist = interpreter_class(interpreter)  # the interpreter that will load the file, not the preference
    return cache_dir() / "probed" / f"{sha256}.{dist}-{interpreter_version(dist)}"


def probe(path: Path, sha256: str, interpreter: str | None = None) -> None:
    """Raise ``BundleError`` if loading ``path`` kills a child process, ``ProbeRefused`` if the
    interpreter refuses it; return quietly if it loads and runs (or passed before)."""
    marker = _marker(sha256, interpreter)
    if marker.exists():
        return
    cmd = [sys.executable, "-m", "edge_lstm_device.runtime.probe", str(path), sha256]
    if interpreter:
        cmd += ["--interpreter", interpreter]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        raise BundleError(f"{path.name}: loading it did not finish in {PROBE_TIMEOUT_S} s: refused") from err
    if done.returncode < 0:
        raise BundleError(f"{path.name}: the interpreter crashed on this file (signal {-done.returncode}): refused")
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise ProbeRefused(lines[-1] if lines else f"exit code {done.returncode}")
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass  # no cache: the next load probes again


def _probe_rows(max_len: int) -> list[list[list[int]]]:
    """No words; a short review alone; reviews of every length together."""
    review = [1] + [(i % 97) + 3 for i in range(max_len - 1)]
    lengths = range(1, max_len + 1, max(1, max_len // 16))
    return [[[0] * max_len], [[0] * (max_len - 4) + review[:4]],
            [[0] * (max_len - n) + review[:n] for n in lengths]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_lstm_device.runtime.probe")
    parser.add_argument("file", type=Path)
    parser.add_argument("sha256")
    parser.add_argument("--interpreter", default=None)
    args = parser.parse_args(argv)
    from edge_lstm_device.runtime.scoring import TFLiteScorer

    data = args.file.read_bytes()
    if bytes_sha256(data) != args.sha256:
        print("the file changed while it was checked", file=sys.stderr)
        return 1
    try:
        scorer = TFLiteScorer(data, 1, args.interpreter)
        for rows in _probe_rows(scorer.max_len):  # what the caller will run: one review and batches, any length
            scorer.score(rows)
    except (ValueError, RuntimeError) as err:
        print(" ".join(str(err).split())[:300], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
