"""The device package's dependencies, computed where the wheel is built (``pip install ./device`` on
the device): which TFLite interpreter has a wheel there, or none (then numpy alone: the numpy engine).

PEP 508 markers see ``platform_machine`` (the kernel's ``uname -m``), not the interpreter's word size.
Raspberry Pi OS 32-bit on a Pi 4/5 boots a 64-bit kernel: its 32-bit Python reports ``aarch64``,
and a marker for 64-bit wheels asks for ``ai-edge-litert``, which has no 32-bit wheel. So where a
32-bit interpreter runs on a 64-bit kernel, the rules below are evaluated here for the userland's
machine (pip also takes armv7l wheels there) and written without markers; everywhere else they are
written as markers, so a wheel built on one machine installs correctly on another.
``docs/decisions/32-bit-userland.md`` has the measurements. Everything else is in pyproject.toml.
"""

from __future__ import annotations

import platform
import struct
import sys
from collections.abc import Sequence
from dataclasses import dataclass

Version = tuple[int, int]  # (major, minor)


@dataclass(frozen=True)
class Clause:
    """Machines (``platform_machine``) and Python versions, ``since`` <= version < ``before``."""

    machines: tuple[str, ...] = ()  # () = any machine
    since: Version | None = None
    before: Version | None = None

    def holds(self, machine: str, python: Version) -> bool:
        return ((not self.machines or machine in self.machines) and (self.since is None or python >= self.since)
                and (self.before is None or python < self.before))

    def marker(self) -> str:
        parts = []
        if self.since:
            parts.append(f"python_version >= '{self.since[0]}.{self.since[1]}'")
        if self.before:
            parts.append(f"python_version < '{self.before[0]}.{self.before[1]}'")
        if self.machines:
            parts.append("(" + " or ".join(f"platform_machine == '{m}'" for m in self.machines) + ")")
        return " and ".join(parts)


@dataclass(frozen=True)
class Rule:
    """A requirement that holds where any of its clauses does (no clause: everywhere)."""

    requirement: str
    clauses: tuple[Clause, ...] = ()

    def holds(self, machine: str, python: Version) -> bool:
        return not self.clauses or any(c.holds(machine, python) for c in self.clauses)

    def marked(self) -> str:
        if not self.clauses:
            return self.requirement
        return f"{self.requirement}; " + " or ".join(f"({c.marker()})" for c in self.clauses)


# tflite-runtime's last release (2.14) has wheels to Python 3.11 and needs numpy < 2.
_TFLITE_RUNTIME = (Clause(("armv7l",), before=(3, 12)), Clause(("x86_64", "aarch64"), before=(3, 10)))
RULES = (
    # ai-edge-litert (the successor of tflite-runtime): wheels for 64-bit Linux/macOS, Python 3.10+.
    Rule("ai-edge-litert>=1.2", (Clause(("x86_64", "aarch64", "arm64", "AMD64"), since=(3, 10)),)),
    # 32-bit Raspberry Pi OS (armv7l) to Python 3.11 (Bookworm), and older Pythons on 64-bit machines.
    Rule("tflite-runtime>=2.13", _TFLITE_RUNTIME),
    Rule("numpy<2", _TFLITE_RUNTIME),
    # Everywhere else (armv6l: Pi Zero / Zero W / 1; armv7l with Python 3.12+: 32-bit Trixie; riscv64)
    # no interpreter wheel exists: the package installs with numpy alone and runs the numpy engine.
    Rule("numpy>=1.23"),
)
# The machine a 32-bit userland's wheels are for, under a 64-bit kernel's uname (what pip's tags
# take there: packaging maps a 32-bit interpreter's linux_aarch64 to armv7l wheels, x86_64 to i686).
_USERLAND_32 = {"aarch64": "armv7l", "arm64": "armv7l", "x86_64": "i686", "AMD64": "i686"}


def userland_machine(machine: str, pointer_bytes: int) -> str:
    """The machine the interpreter's own code is for: ``machine`` unless a 32-bit interpreter runs
    on a 64-bit kernel."""
    return _USERLAND_32.get(machine, machine) if pointer_bytes == 4 else machine


def requirements(machine: str, pointer_bytes: int, python: Version, rules: Sequence[Rule] = RULES) -> list:
    """The dependencies to write into the wheel built here (see the module's docstring)."""
    userland = userland_machine(machine, pointer_bytes)
    if userland == machine:
        return [rule.marked() for rule in rules]
    return [rule.requirement for rule in rules if rule.holds(userland, python)]


def here() -> list:
    """:func:`requirements` for the interpreter that runs this build."""
    return requirements(platform.machine(), struct.calcsize("P"), sys.version_info[:2])


if __name__ == "__main__":  # (setuptools' build backend runs this file as __main__)
    from setuptools import setup

    setup(install_requires=here())
