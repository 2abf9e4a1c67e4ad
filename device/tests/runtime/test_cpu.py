"""The CPU as the kernels see it."""

from __future__ import annotations

import platform

from edge_lstm_device.runtime.cpu import EXTRA_FLAGS, KERNEL_FEATURES, _extra_flags, detect

HOST_AMX = "processor\t: 0\nflags\t\t: fpu sse4_1 sse4_2 avx avx2 fma avx512f avx512_vnni amx_tile amx_int8\n"


def test_this_cpu_is_named_by_its_kernel_features() -> None:
    cpu = detect()
    assert cpu.machine == platform.machine()
    assert set(cpu.features) <= set(KERNEL_FEATURES.values()) | set(EXTRA_FLAGS.values())
    assert str(cpu).startswith(f"{cpu.machine}: ")


def test_proc_cpuinfo_adds_amx_only_when_it_describes_the_cpu_the_kernels_see() -> None:
    native = {"AVX2": True, "AVX512F": True, "AVX512VNNI": True}
    assert _extra_flags(native, HOST_AMX) == ["amx", "amx-int8"]
    emulated = {"AVX2": True, "AVX512F": False, "AVX512VNNI": False}  # qemu -cpu Haswell on an AMX host
    assert _extra_flags(emulated, HOST_AMX) == []
    assert _extra_flags(native, "") == []
