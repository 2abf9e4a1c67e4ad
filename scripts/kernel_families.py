"""Rewrite the kernel-families section of docs/parity_report.md: the device's own calibrate and
verify (and onnxruntime's int8 file) on this CPU and under qemu on other x86-64 and Raspberry Pi
cores, one table per family (tests/support/families.py runs each; the tests assert the same).

    python3 scripts/kernel_families.py                      # every family, ~15 min on 2 cores
    python3 scripts/kernel_families.py --only native --only haswell
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_lstm.evaluate.report import FAMILIES_MARK, REPORT_MD, with_families  # noqa: E402
from tests.support.families import FAMILIES, check_family, markdown, python_for  # noqa: E402

CACHE = Path(os.environ.get("EDGE_LSTM_TEST_CACHE", Path.home() / ".cache" / "edge-lstm-tests"))
INTRO = """## Every kernel family: the device checks itself

XNNPACK, TFLite and onnxruntime pick their int8 kernels from the CPU at run time. In each family
below the device ran `edge-lstm-device calibrate` (which model runs there), which verifies the
models fastest first as `edge-lstm-device verify` does, on the shipped reference bundle: its 300
whole test reviews and the short texts cut from them, against the float model's scores stored in the bundle, with the thresholds
above. Where onnxruntime has a wheel, `python -m edge_lstm.evaluate.onnx_verify` checked a fresh
export's `int8_onnx` the same way. Emulated CPUs (qemu user mode) run the kernels of the CPU
named, at emulation speed: the calibration times there say what choosing costs under qemu, not on
the hardware. Written by `python3 scripts/kernel_families.py`.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], choices=[f.key for f in FAMILIES])
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / REPORT_MD)
    args = parser.parse_args()
    from edge_lstm.export.exporter import ExportOptions, export_bundle
    from edge_lstm.tf_setup import quiet_tensorflow

    quiet_tensorflow()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        exported = Path(tmp) / "exported"
        exported.mkdir()
        for name in ("model.h5", "tokenizer.json", "metrics.json"):
            shutil.copy(ROOT / "export" / name, exported / name)
        export_bundle(exported, ExportOptions(int8=True), log=lambda line: print(line, file=sys.stderr))
        for family in FAMILIES:
            if args.only and family.key not in args.only:
                continue
            print(f"{family.key}: {family.title}", file=sys.stderr, flush=True)
            results.append(check_family(family, python_for(family, CACHE), exported))
    text = args.report.read_text(encoding="utf-8")
    args.report.write_text(with_families(text, INTRO + "\n" + markdown(results)), encoding="utf-8")
    print(f"wrote the kernel families of {args.report} ({FAMILIES_MARK})", file=sys.stderr)
    failed = [r["family"] for r in results if not r["verify"]["passed"] or (r["onnx"] and not r["onnx"]["passed"])]
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
