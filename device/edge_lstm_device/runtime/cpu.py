"""The CPU as the model's kernels see it: the architecture and the features that make XNNPACK,
TFLite and onnxruntime pick one int8 kernel or another.

Those libraries ask the CPU itself (CPUID on x86, the kernel's HWCAP on ARM), as numpy's
dispatcher does, so numpy's view is the kernels' view, also under ``qemu -cpu MODEL``, where
``/proc/cpuinfo`` still describes the host. ``/proc/cpuinfo`` adds what numpy does not detect
(AMX, AVX-VNNI, i8mm) only when it agrees with numpy on the features both know.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

# numpy's names of the features that pick int8/float kernels, shown in this order
KERNEL_FEATURES = {
    "SSE41": "sse4.1", "SSE42": "sse4.2", "AVX": "avx", "FMA3": "fma", "AVX2": "avx2", "AVX512F": "avx512f",
    "AVX512BW": "avx512bw", "AVX512VNNI": "avx512vnni", "AVX512FP16": "avx512fp16",
    "NEON": "neon", "NEON_VFPV4": "vfpv4", "ASIMD": "asimd", "ASIMDHP": "fp16", "ASIMDDP": "dotprod", "SVE": "sve",
    "RVV": "rvv",
}
# /proc/cpuinfo flags numpy does not detect, and flags both know (to tell whether the two agree)
EXTRA_FLAGS = {"avx_vnni": "avx-vnni", "amx_tile": "amx", "amx_int8": "amx-int8", "i8mm": "i8mm"}
SHARED_FLAGS = {"avx2": "AVX2", "avx512f": "AVX512F", "avx512_vnni": "AVX512VNNI", "asimd": "ASIMD",
                "asimddp": "ASIMDDP"}
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class CpuFeatures:
    machine: str  # x86_64, aarch64, armv7l, ...
    features: tuple[str, ...]  # kernel-picking features present, e.g. ("sse4.1", ..., "avx2")

    def __str__(self) -> str:
        return f"{self.machine}: {' '.join(self.features) or 'no SIMD features detected'}"

    def to_dict(self) -> dict:
        return {"machine": self.machine, "features": list(self.features)}


def _numpy_features() -> dict[str, bool]:
    try:  # numpy 2
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:
        try:  # numpy 1.x
            from numpy.core._multiarray_umath import __cpu_features__
        except ImportError:
            return {}
    return dict(__cpu_features__)


def _cpuinfo_flags(text: str) -> set[str]:
    """Every flag of the first processor (x86 ``flags``, ARM ``Features``, RISC-V ``isa``)."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def _extra_flags(numpy_view: dict[str, bool], cpuinfo: str) -> list[str]:
    """Flags only /proc/cpuinfo knows, if it describes the CPU numpy sees (not an emulator's host)."""
    flags = _cpuinfo_flags(cpuinfo)
    if not flags or any(numpy_view.get(name, False) != (flag in flags) for flag, name in SHARED_FLAGS.items()
                        if name in numpy_view):
        return []
    return [shown for flag, shown in EXTRA_FLAGS.items() if flag in flags]


def detect(cpuinfo: str | None = None) -> CpuFeatures:
    """This CPU's architecture and kernel-picking features."""
    numpy_view = _numpy_features()
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")[:1 << 16]
        except OSError:
            cpuinfo = ""
    features = [shown for name, shown in KERNEL_FEATURES.items() if numpy_view.get(name)]
    return CpuFeatures(platform.machine(), tuple(features + _extra_flags(numpy_view, cpuinfo)))
