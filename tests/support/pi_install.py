"""``pip install ./device`` as a user runs it on a Pi's Debian, emulated (qemu user mode), each step
timed: a venv of Debian's Python made with ``--system-site-packages`` (Debian's python3-numpy), the
install, then the installed ``edge-lstm-device``'s ``info``, ``predict`` and ``verify``.

Shared by ``tests/device_from_host/test_device_foreign.py`` (which asserts on the result) and
``scripts/pi_installs.py`` (which writes ``docs/pi_installs.md``).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.foreign import ARCHES, DebianVenv, debian_venv

TEXT = "What a wonderful film"
# The installed distribution: its requirements as the wheel built there states them, those that
# apply here (markers evaluated by pip's own packaging), where it lives, and the interpreters importable.
_INSTALLED = """
import importlib.metadata as m, importlib.util, json
from pip._vendor.packaging.requirements import Requirement
d = m.distribution('edge-lstm-device')
applies = [r for r in d.requires if Requirement(r).marker is None or Requirement(r).marker.evaluate({'extra': ''})]
print(json.dumps({'requires': d.requires, 'applies': applies, 'at': str(d.locate_file('')),
                  'interpreters': [n for n in ('ai_edge_litert', 'tflite_runtime') if importlib.util.find_spec(n)]}))
"""


@dataclass(frozen=True)
class PiCase:
    """A Pi's Debian (an ``ARCHES`` key) and what its kernel's uname says, where not the CPU's."""

    where: str
    title: str
    uname_machine: str | None = None  # a 64-bit kernel under a 32-bit userland


CASES = (
    PiCase("armhf-trixie", "Trixie 32-bit (armv7l)"),
    PiCase("armel", "Pi Zero / Zero W / 1 (armv6l)"),
    PiCase("riscv64", "Debian 13 riscv64"),
    PiCase("armhf-trixie", "Trixie 32-bit on a 64-bit kernel (Pi 4/5)", "aarch64"),
)


@dataclass
class Step:
    command: str
    seconds: float
    returncode: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


@dataclass
class PiInstall:
    case: PiCase
    venv: DebianVenv
    steps: dict[str, Step] = field(default_factory=dict)  # "venv", "install", "info", "predict", "verify"

    @property
    def ok(self) -> bool:
        return all(s.returncode == 0 for s in self.steps.values())

    def installed(self) -> dict:
        """The installed distribution: ``requires`` (as its wheel states them), ``applies`` (those
        whose markers hold there), ``at`` (its folder), ``interpreters`` (importable)."""
        return self.steps["installed"].json


def run_case(case: PiCase, cache_root: Path, work: Path, verify_limit: int | None = 100) -> PiInstall:
    """Every step of ``case`` in ``work`` (a fresh folder), up to the first that fails;
    ``verify_limit``: texts per reference set (``None``: no verify)."""
    start = time.perf_counter()
    venv = debian_venv(cache_root, case.where, work / "venv", case.uname_machine)
    result = PiInstall(case, venv)
    result.steps["venv"] = Step("python3 -m venv --system-site-packages", time.perf_counter() - start, 0, "", "")
    # a copy: the build writes build/ and *.egg-info into the source tree
    source = shutil.copytree(Path(__file__).resolve().parents[2] / "device", work / "device",
                             ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    commands = [("install", "python", ["-m", "pip", "install", str(source)]), ("installed", "python", ["-c", _INSTALLED]),
                ("info", "edge-lstm-device", ["info", "--json"]),
                ("predict", "edge-lstm-device", ["predict", "--json", TEXT])]
    if verify_limit:
        commands.append(("verify", "edge-lstm-device", ["verify", "--json", "--limit", str(verify_limit)]))
    for name, program, args in commands:
        start = time.perf_counter()
        proc = venv.run(program, args, cwd=work)
        shown = " ".join(["pip install ./device"] if name == "install" else [program, *args[:1], *args[2:]])
        result.steps[name] = Step(shown, time.perf_counter() - start, proc.returncode, proc.stdout, proc.stderr)
        if proc.returncode != 0:
            break
    return result


def markdown(results: list[PiInstall]) -> str:
    """One row per case: what ran, what it said, how long each step took (emulated)."""
    header = ("| case | Debian, under qemu | requirements that apply there | `info`: model (why) | `verify --limit` "
              "(labels agree, max \\|Δp\\|) | seconds: venv, install, verify |")
    rows = [header, "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        spec = ARCHES[r.case.where]
        requires = ", ".join(f"`{q}`" for q in r.installed()["applies"]) if r.ok else "-"
        info = r.steps["info"].json if r.ok else {}
        why = f"`{info.get('model')}` ({info.get('why', '').split(' (')[0]})" if info else "-"
        rows.append(f"| {r.case.title} | {spec.suite} {spec.debian_arch or r.case.where}, `-cpu {spec.cpu}`: "
                    f"{r.venv.description.split(': ', 1)[-1]} | {requires} | {why} | {_verified(r)} | "
                    f"{_seconds(r)} |")
    return "\n".join(rows) + "\n"


def _verified(result: PiInstall) -> str:
    step = result.steps.get("verify")
    if step is None:
        return "not run"
    if step.returncode != 0:
        return f"FAILED (exit {step.returncode})"
    sets = step.json["models"][0]["sets"]
    return "; ".join(f"{s['label_agreement']:.2%} of {s['texts']} {n} ({s['max_abs_diff']:.2g})" for n, s in sets.items())


def _seconds(result: PiInstall) -> str:
    return ", ".join(f"{result.steps[s].seconds:.0f}" if s in result.steps else "-" for s in ("venv", "install", "verify"))
