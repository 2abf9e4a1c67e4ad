"""The kernel families the bundle's models meet where they run, each checked by the device itself.

XNNPACK, TFLite and onnxruntime pick their int8 kernels from the CPU at run time, so a model's
scores are a fact about a kernel family, not about the model. Each family here runs the device's
own ``calibrate`` (which model runs there, and what choosing cost; it verifies the model it
chooses on the shipped reference bundle, as ``verify`` would) and, where onnxruntime has a wheel,
``edge_lstm.evaluate.onnx_verify`` of an exported bundle's ``int8_onnx``: this CPU natively, other x86-64 CPUs under
``qemu-x86_64 -cpu``, and Raspberry Pi cores under ``qemu-aarch64``/``qemu-arm`` (``foreign.py``).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from tests.support.foreign import ForeignEnvUnavailable, ForeignPython, arm_python

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Family:
    key: str
    title: str  # the CPU and the features that pick its kernels
    where: str  # "host", "x86" (the host's Python under qemu-x86_64), "arm64", "armhf"
    cpu: str | None  # qemu's -cpu
    flavour: str = "litert"  # the TFLite interpreter: "litert" (ai-edge-litert) or "tflite-runtime"
    onnx: bool = True  # onnxruntime has a wheel there


FAMILIES = (
    Family("native", "this CPU, natively", "host", None),
    Family("nehalem", "x86-64 Nehalem: SSE4.2, no AVX (qemu-x86_64)", "x86", "Nehalem"),
    Family("haswell", "x86-64 Haswell: AVX2 + FMA, no AVX-512 (qemu-x86_64)", "x86", "Haswell"),
    Family("cortex-a72", "aarch64 Cortex-A72, Raspberry Pi 4: NEON, no dot product (qemu-aarch64)", "arm64",
           "cortex-a72"),
    Family("cortex-a76", "aarch64 Cortex-A76, Raspberry Pi 5: NEON + dot product (qemu-aarch64)", "arm64",
           "cortex-a76"),
    Family("cortex-a7", "armv7 Cortex-A7, 32-bit Raspberry Pi OS: NEON (qemu-arm; tflite-runtime 2.14, no "
           "onnxruntime wheel)", "armhf", "cortex-a7", "tflite-runtime", onnx=False),
)


def python_for(family: Family, cache: Path) -> ForeignPython:
    """The Python that runs ``family``: the host's (natively or under qemu-x86_64), or Debian's
    under ARM emulation with ``cryptography``-free wheels of the interpreter and onnxruntime."""
    if family.where in ("host", "x86"):
        qemu = () if family.where == "host" else (_tool("qemu-x86_64-static"), "-cpu", family.cpu)
        home = cache / f"home-{family.key}"
        home.mkdir(parents=True, exist_ok=True)
        return ForeignPython((*qemu, sys.executable), home, "", f"host Python {family.title}")
    extra = ("onnxruntime",) if family.onnx else ()
    py = arm_python(cache, family.flavour, family.where, extra)
    command = list(py.command)
    command[command.index("-cpu") + 1] = family.cpu
    return replace(py, command=tuple(command), description=py.description.replace(py.command[2], family.cpu))


def kernel_features(py: ForeignPython) -> dict:
    """The CPU as the device's kernels see it in ``py`` (``edge_lstm_device.runtime.cpu.detect``)."""
    code = "import json; from edge_lstm_device.runtime.cpu import detect; print(json.dumps(detect().to_dict()))"
    proc = py.run(["-c", code], pythonpath=[ROOT / "device"], timeout=600, cwd=ROOT)
    assert proc.returncode == 0, f"{py.description}: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


def is_this_cpu(family: Family, py: ForeignPython) -> bool:
    """An emulated x86-64 family whose kernel-picking features are this CPU's: the native run is
    that family (qemu -cpu Haswell on an AVX2 host gives the same scores bit for bit), and the
    device's calibration cache already counts the two as one environment."""
    from edge_lstm_device.runtime.cpu import detect

    return family.where == "x86" and kernel_features(py) == detect().to_dict()


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ForeignEnvUnavailable(f"{name} is missing: apt-get install qemu-user-static")
    return path


def _json(py: ForeignPython, args: list[str], codes: tuple[int, ...] = (0,)) -> dict:
    """The command's JSON; a failed threshold (exit 3, one line on stderr and no JSON) as ``{"error": ...}``."""
    proc = py.run(args, pythonpath=[ROOT / "device", ROOT], timeout=3600, cwd=ROOT)
    assert proc.returncode in codes, f"{py.description}: {' '.join(args)}: {proc.stderr[-2000:]}"
    return json.loads(proc.stdout) if proc.stdout.strip() else {"error": proc.stderr[-2000:]}


def check_family(family: Family, py: ForeignPython, exported: Path | None, onnx_limit: int | None = None) -> dict:
    """``calibrate`` of the shipped reference in ``py`` (which verifies, fastest first, the model it
    chooses); ``int8_onnx`` of ``exported`` where onnxruntime runs (on the first ``onnx_limit`` texts
    of each reference set, if given). Returns what was measured (the verdict of the chosen model, in
    ``verify --json``'s shape, the choice, the wall time of calibrating); exit 3 (a failed threshold)
    is recorded, not raised."""
    started = time.perf_counter()
    calibration = _json(py, ["-m", "edge_lstm_device", "calibrate", "--json"], (0, 3))
    seconds = time.perf_counter() - started
    onnx = None
    if family.onnx and exported is not None:
        limit = () if onnx_limit is None else ("--limit", str(onnx_limit))
        onnx = _json(py, ["-m", "edge_lstm.evaluate.onnx_verify", str(exported), "--only", "int8_onnx", *limit, "--json"],
                     (0, 3))
    return {"family": family.key, "title": family.title, "runs": py.description, "chosen": calibration.get("chosen"),
            "calibrate_s": round(seconds, 2), "calibration": calibration, "verify": verified(calibration), "onnx": onnx}


def verified(calibration: dict) -> dict:
    """The chosen model's verdict as ``verify --only CHOSEN --json`` would give it: calibrating
    judged it on the whole reference sets with the same thresholds (a second ``verify`` would
    score them all again); when no model passed, every verdict and the error."""
    chosen, verdicts = calibration.get("chosen"), calibration.get("verdicts", {})
    return {"passed": bool(chosen) and verdicts[chosen]["passed"],
            "cpu": calibration.get("environment", {}).get("cpu", {"machine": "?", "features": []}),
            "models": [verdicts[chosen]] if chosen else list(verdicts.values()),
            **({"error": calibration["error"]} if "error" in calibration else {})}


def markdown(results: list[dict]) -> str:
    """One table per family: each model's agreement with the float model on every set."""
    out = []
    for result in results:
        out += [f"### {result['title']}", "",
                f"{result['runs']}; CPU as its kernels see it: {_cpu(result)}. Calibration chose "
                f"**{result['chosen']}** in {result['calibrate_s']:.1f} s (the whole `calibrate` process).", "",
                "| model | runs in | set | texts | labels agree | max \\|Δp\\| | mean \\|Δp\\| | Δacc (pts) | verdict |",
                "|---|---|---|---|---|---|---|---|---|"]
        for report in (result["verify"], result["onnx"]):
            for model in (report or {}).get("models", []):
                for name, s in model["sets"].items():
                    change = f"{s['accuracy_change'] * 100:+.2f}" if "accuracy_change" in s else "-"
                    verdict = "FAIL" if any(f.startswith(f"{name}: ") for f in model["failures"]) else "pass"
                    out.append(f"| {model['name']} | {model['runs_in']} | {name} | {s['texts']} | "
                               f"{s['label_agreement']:.2%} | {s['max_abs_diff']:.2g} | {s['mean_abs_diff']:.2g} | "
                               f"{change} | {verdict} |")
        out.append("")
    return "\n".join(out)


def _cpu(result: dict) -> str:
    cpu = result["verify"]["cpu"]
    return f"{cpu['machine']}: {' '.join(cpu['features']) or 'no SIMD features detected'}"
