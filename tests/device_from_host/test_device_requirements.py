"""``device/setup.py``: the device package's dependencies, computed where the wheel is built. As
markers wherever they can decide; evaluated for the userland where a 32-bit Python runs on a 64-bit
kernel (Raspberry Pi OS 32-bit on a Pi 4/5: ``platform_machine`` is aarch64, ai-edge-litert has no
32-bit wheel). ``test_device_foreign`` installs the package so under qemu."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from types import ModuleType

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

from tests.support.fixtures import ROOT

MACHINES = ("x86_64", "aarch64", "arm64", "AMD64", "armv7l", "armv6l", "armv8l", "riscv64", "i686")
PYTHONS = ((3, 9), (3, 10), (3, 11), (3, 12), (3, 13))
INTERPRETERS = {"ai-edge-litert", "tflite-runtime"}


@pytest.fixture(scope="module")
def setup_py() -> ModuleType:
    spec = importlib.util.spec_from_file_location("edge_lstm_device_setup", ROOT / "device" / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)  # (not __main__: setup() is not called)
    return module


def _environment(machine: str, python: tuple[int, int]) -> dict[str, str]:
    major, minor = python
    return {"platform_machine": machine, "python_version": f"{major}.{minor}", "python_full_version": f"{major}.{minor}.0"}


def _installed(requirements: list[str], machine: str, python: tuple[int, int]) -> set[str]:
    """The requirements pip installs from these on ``machine`` (markers evaluated as pip does)."""
    parsed = [Requirement(r) for r in requirements]
    return {str(r.name) + str(r.specifier) for r in parsed
            if r.marker is None or r.marker.evaluate(_environment(machine, python))}


@pytest.mark.parametrize("machine, python", itertools.product(MACHINES, PYTHONS))
def test_markers_say_what_the_rules_say(setup_py: ModuleType, machine: str, python: tuple[int, int]) -> None:
    """Where the interpreter's word matches the kernel's, the wheel carries markers (a wheel built on
    one machine installs right on another), and they decide as the rules do."""
    marked = setup_py.requirements(machine, 8 if machine not in ("armv7l", "armv6l", "i686") else 4, python)
    expected = {r.requirement.replace(" ", "") for r in setup_py.RULES if r.holds(machine, python)}
    assert _installed(marked, machine, python) == expected
    assert all(Marker(r.split(";", 1)[1]) for r in marked if ";" in r)


@pytest.mark.parametrize("python, interpreter", [((3, 11), "tflite-runtime>=2.13"), ((3, 13), None)])
def test_a_32_bit_python_on_a_64_bit_arm_kernel_gets_the_armv7l_rules(setup_py: ModuleType, python, interpreter) -> None:
    """Raspberry Pi OS 32-bit on a Pi 4/5: uname says aarch64, the interpreter is 32-bit. Bookworm's
    Python 3.11 gets tflite-runtime's armv7l wheel (pip takes armv7l wheels there); Trixie's 3.13 numpy
    alone, never ai-edge-litert. The old markers asked for ai-edge-litert on both."""
    requirements = setup_py.requirements("aarch64", 4, python)
    assert all(";" not in r for r in requirements)  # evaluated here, for this userland
    assert not INTERPRETERS & {Requirement(r).name for r in requirements if interpreter is None}
    assert requirements == ([interpreter, "numpy<2"] if interpreter else []) + ["numpy>=1.23"]
    old_markers = setup_py.requirements("aarch64", 8, python)  # what the wheel said before (markers only)
    assert "ai-edge-litert>=1.2" in _installed(old_markers, "aarch64", python)


def test_a_32_bit_python_on_x86_64_gets_numpy_alone(setup_py: ModuleType) -> None:
    assert setup_py.requirements("x86_64", 4, (3, 12)) == ["numpy>=1.23"]
    assert setup_py.userland_machine("aarch64", 8) == "aarch64" and setup_py.userland_machine("armv7l", 4) == "armv7l"


def test_this_build_machine_gets_the_markers(setup_py: ModuleType) -> None:
    """The host (64-bit Python on a 64-bit kernel): the wheel's metadata is the marked rules."""
    assert setup_py.here() == [r.marked() for r in setup_py.RULES]
