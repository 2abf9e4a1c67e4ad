"""A bundle's ONNX files verified like its TFLite models (``edge_lstm_device.runtime.verify``): text in,
onnxruntime's probabilities out, against the bundle's reference scores, on this CPU.

It needs numpy, onnxruntime and the device package only (no TensorFlow), so it runs where
onnxruntime has a wheel (x86-64, aarch64), also under qemu:
``python -m edge_lstm.evaluate.onnx_verify BUNDLE [--only MODEL] [--limit N] [--json]`` (exit 3 on a failed threshold).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from edge_lstm_device.bundle.manifest import read_verified
from edge_lstm_device.bundle.signing import read_trusted_manifest
from edge_lstm_device.runtime.judge import TextScorer
from edge_lstm_device.runtime.model import load_tokenizer
from edge_lstm_device.runtime.scoring import as_scores
from edge_lstm_device.runtime.verify import table, verify_bundle

ONNX_BATCH = 64  # rows per run(), as the host's parity scores them (dynamic int8 scales per batch)


class OnnxTextScorer:
    """Texts → probabilities with an ONNX file and the bundle's tokenizer."""

    def __init__(self, content: bytes, tokenizer: Any, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(content, options, providers=["CPUExecutionProvider"])
        self.tokenizer = tokenizer
        self._feed = self.session.get_inputs()[0].name

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        rows = self.tokenizer.pad([self.tokenizer.ids(text) for text in texts])
        parts = [as_scores(self.session.run(None, {self._feed: rows[i : i + ONNX_BATCH]})[0])
                 for i in range(0, len(rows), ONNX_BATCH)]
        return np.concatenate(parts).astype(np.float32)


def onnx_scorers(bundle_dir: Path, threads: int = 1, only: Sequence[str] = ()) -> dict[str, tuple[TextScorer, str]]:
    """Each ONNX file of the bundle (those named in ``only``, if any) with onnxruntime, and what it runs in."""
    import onnxruntime

    manifest = read_trusted_manifest(bundle_dir, None)
    tokenizer = load_tokenizer(bundle_dir, manifest)
    return {name: (OnnxTextScorer(read_verified(bundle_dir, entry), tokenizer, threads),
                   f"onnxruntime {onnxruntime.__version__}")
            for name, entry in manifest["artifacts"].items()
            if entry["format"] == "onnx" and (Path(bundle_dir) / entry["file"]).is_file() and (not only or name in only)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_lstm.evaluate.onnx_verify",
                                     description="verify a bundle's ONNX (and TFLite) models on this CPU")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--only", action="append", default=[], metavar="MODEL")
    parser.add_argument("--limit", type=int, default=None, metavar="N",
                        help="judge only the first N texts of each reference set")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    result = verify_bundle(args.bundle, args.only, extra=onnx_scorers(args.bundle, only=args.only), limit=args.limit)
    print(json.dumps(result.to_dict(), indent=2) if args.json else table(result))
    return 0 if result.passed else 3


if __name__ == "__main__":
    sys.exit(main())
