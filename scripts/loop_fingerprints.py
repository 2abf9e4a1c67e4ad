"""The sha256 of the loop-form TFLite files the exporter writes, for the shipped model and the
loop tests' models (``edge_lstm.samples.models``) (every cell, masked or not, stacked and Bidirectional, every head), float and
dynamic-range int8. A change to the loop writer that must not change its output (a refactoring)
prints the same lines before and after:

    python3 scripts/loop_fingerprints.py > before.txt   # ... change ...
    python3 scripts/loop_fingerprints.py | diff before.txt -
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_lstm.tf_setup import quiet_tensorflow  # noqa: E402


def models() -> dict[str, tuple[object, int]]:
    from edge_lstm.importing import modelfile
    from edge_lstm.samples.models import CELLS, HEADS, STACKS, stacked_model, tiny_model

    found = {"shipped": (modelfile.load_model(ROOT / "export" / "model.h5", 200), 200)}
    for cell in sorted(CELLS):
        for masked in (False, True):
            found[f"{cell}{'-masked' if masked else ''}"] = (tiny_model(masked, cell=cell), 13)
    for stack in sorted(STACKS):
        for masked in (False, True):
            for head in HEADS:
                found[f"{stack}{'-masked' if masked else ''}-{head}"] = (stacked_model(stack, masked, head), 13)
    return found


def main() -> None:
    quiet_tensorflow()
    from edge_lstm.export import lstm_loop

    for name, (model, max_len) in models().items():
        for scheme in ("float", "dynamic-range"):
            data = lstm_loop.to_tflite_loop(model, max_len, scheme, lambda: iter(()))
            print(f"{name} {scheme} {hashlib.sha256(data).hexdigest()}", flush=True)


if __name__ == "__main__":
    main()
