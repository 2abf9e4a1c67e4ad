"""Write docs/pi_installs.md: ``pip install ./device`` as a user runs it on the Raspberry Pis where no
TFLite interpreter wheel exists, under qemu user emulation with Debian's own Python and
python3-numpy (tests/support/pi_install.py runs each case; tests/device_from_host/test_device_foreign.py asserts the same).

    python3 scripts/pi_installs.py            # every case, ~15 min on 2 cores (cached Debian rootfs)
    python3 scripts/pi_installs.py --only armel
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.pi_install import CASES, markdown, run_case

CACHE = Path(os.environ.get("EDGE_LSTM_TEST_CACHE", Path.home() / ".cache" / "edge-lstm-tests"))
INTRO = """# `pip install ./device` on the Pis without an interpreter wheel

Written by `python3 scripts/pi_installs.py` (`OPENBLAS_NUM_THREADS` unset, as on a Pi). Each row is
what a user runs on that Pi's Debian, under qemu user emulation (no Pi hardware; Raspberry Pi OS's
own packages are not part of it), with Debian's own Python, `python3-numpy` and pip:

```bash
python3 -m venv --system-site-packages ~/edge   # Debian's python3-numpy, no numpy wheel needed
~/edge/bin/python -m pip install ./device        # build isolation: setuptools from the index
~/edge/bin/edge-lstm-device info --json          # which engine, and why
~/edge/bin/edge-lstm-device predict --json "What a wonderful film"
~/edge/bin/edge-lstm-device verify --json --limit {limit}   # the first {limit} of each reference set
```

The venv is made `--without-pip` and Debian's `python3-pip` (the same pip as the venv's own) serves
it: ensurepip copies its wheel from /usr/share/python-wheels, which qemu 7.2 cannot find under `-L`.
The last row runs 32-bit Trixie armhf with `os.uname()` reporting `aarch64`, as Raspberry Pi OS
32-bit on a Pi 4/5's 64-bit kernel does (`docs/decisions/32-bit-userland.md`); it is not verified
(the same engine as the first row). Seconds are emulated time on the build machine's 2 shared cores.

"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], choices=sorted({c.where for c in CASES}))
    parser.add_argument("--limit", type=int, default=100, help="verify --limit (default: 100)")
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "pi_installs.md")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, case in enumerate(c for c in CASES if not args.only or c.where in args.only):
            print(f"{case.where}: {case.title}", file=sys.stderr, flush=True)
            work = Path(tmp) / str(n)
            work.mkdir()
            results.append(run_case(case, CACHE, work, None if case.uname_machine else args.limit))
            for name, step in results[-1].steps.items():
                print(f"  {name}: exit {step.returncode}, {step.seconds:.0f} s", file=sys.stderr, flush=True)
    args.report.write_text(INTRO.format(limit=args.limit) + markdown(results), encoding="utf-8")
    print(f"wrote {args.report}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
