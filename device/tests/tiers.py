"""Test tiers by cost, for both test roots (``tests/`` and ``device/tests/``): standard library and
pytest only, so it runs where the device tests run alone (a Raspberry Pi, qemu).

Every test gets exactly one tier marker, derived here and nowhere else: the most expensive of its
explicit tier markers, the fixtures it uses (:data:`FIXTURE_TIERS`) and the older markers
(:data:`MARKER_TIERS`); a test with none of these is ``unit``. The session runs the tiers cheapest
first, and once a tier has a failure the later tiers are skipped (``EDGE_LSTM_ALL_TIERS=1`` runs
them anyway). A ``unit`` test that starts a process, opens a socket or imports TensorFlow fails:
the assignment is checked, not trusted.
"""

from __future__ import annotations

import importlib.machinery
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# cheapest first: (name, what puts a test there)
TIERS: tuple[tuple[str, str], ...] = (
    ("unit", "no TensorFlow, no child process, no socket (seconds)"),
    ("tensorflow", "imports TensorFlow: converts, exports or runs Keras (minutes)"),
    ("process", "starts child processes or servers (minutes)"),
    ("browser", "drives a headless Chromium against a server"),
    ("qemu", "foreign Pythons: isolated venvs (pip) and ARM/x86 CPUs under qemu (the first run builds them)"),
    ("training", "trains a model on the real IMDB data"),
)
NAMES = tuple(name for name, _ in TIERS)
RANK = {name: rank for rank, name in enumerate(NAMES)}
# a test that uses one of these fixtures (directly or through another fixture) is at least in that tier
FIXTURE_TIERS = {
    "small_bundle": "training",  # trains on the IMDB tarball, then exports
    "browser": "browser",
    "exported": "tensorflow", "exported_reference": "tensorflow", "lecture": "tensorflow",  # export --int8 / Keras
    "server": "process", "guarded": "process", "alone": "process", "reloadable": "process",  # `serve` processes
    "open_server": "process",
}
MARKER_TIERS = {"arm": "qemu"}  # arm: the ARM part of the qemu tier (`-m arm`)
# a test that takes a minute or more runs first within its tier, so the two workers of ``pytest -n 2``
# end the run together (longest first); xdist then hands out one test at a time (``--maxschedchunk 1``
# unless given), so a worker never holds a queue of long tests while the other is idle. (``--dist
# worksteal`` would start the second worker on the last half of the run: the expensive tiers first.)
LONG_MARKER = "minutes"
# session fixtures built once per run, whichever worker asks first, while the other waits for them
# (tests/support/once.py): each one's first user runs early in its tier (two workers build two of them
# at once), the others of that tier after the tests that need none (by then it is built: nobody waits)
SHARED_FIXTURES = ("small_bundle", "exported_reference", "lecture")
ALL_TIERS_ENV = "EDGE_LSTM_ALL_TIERS"
# under pytest-xdist (``-n 2``) every worker records the first failure in one file, whose path the
# controller hands each worker under this key: a failure on one worker stops the later tiers on all
SHARED_FAILURE_KEY = "edge_lstm_tiers_failure_file"
PLUGIN_NAME = "edge-lstm-tiers"
# importing these in a unit test is a misassigned test (seconds of import, gigabytes mapped)
HEAVY_MODULES = ("tensorflow", "keras", "tf_keras", "tf2onnx")
_INHERITED = object()


def tier_of(item: pytest.Item) -> str:
    """The most expensive tier any explicit marker, fixture or older marker puts ``item`` in."""
    found = [mark.name for mark in item.iter_markers() if mark.name in RANK]
    found += [MARKER_TIERS[mark.name] for mark in item.iter_markers() if mark.name in MARKER_TIERS]
    found += [FIXTURE_TIERS[name] for name in getattr(item, "fixturenames", ()) if name in FIXTURE_TIERS]
    return max(found, key=RANK.__getitem__, default="unit")


class TierViolation(RuntimeError):
    """A unit test did what only a more expensive tier may do."""


class _Guard:
    """While a unit test runs: child processes, sockets and TensorFlow raise :class:`TierViolation`.
    Violations are also recorded, so a test that swallows the exception still fails."""

    def __init__(self) -> None:
        self.violations: list[str] = []
        self._saved: list[tuple[Any, str, Any]] = []

    def violate(self, what: str) -> TierViolation:
        message = f"a unit test {what}: give it the tier marker it needs (see device/tests/tiers.py)"
        self.violations.append(message)
        return TierViolation(message)

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        """A meta path finder: refuses the heavy modules (only reached when not imported yet) that
        are installed; one that is not fails as it would anyway (the device's search for an
        interpreter tries ``tensorflow`` last, and a board without it must not count as a violation)."""
        top = name.split(".")[0]
        if top in HEAVY_MODULES and importlib.machinery.PathFinder.find_spec(top) is not None:
            raise self.violate(f"imports {name}")

    def _patch(self, owner: Any, attr: str, what: str) -> None:
        # what the owner itself held: an inherited method (socket.socket.bind) is restored by deletion
        self._saved.append((owner, attr, vars(owner).get(attr, _INHERITED)))

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise self.violate(what)

        setattr(owner, attr, refuse)

    def __enter__(self) -> _Guard:
        self._patch(subprocess.Popen, "_execute_child", "starts a child process")
        self._patch(os, "fork", "forks")
        self._patch(os, "system", "runs a shell command")
        for attr in ("bind", "connect", "connect_ex"):
            self._patch(socket.socket, attr, f"opens a socket ({attr})")
        sys.meta_path.insert(0, self)  # type: ignore[arg-type]
        already = [name for name in HEAVY_MODULES if name in sys.modules]
        if already:  # the guard cannot see this test import it: say so rather than pass unchecked
            self.violations.append(f"{already[0]} was imported before this unit test ran: a test module imports it "
                                   f"at its top (move the import into the test), or a test of another tier ran first")
        return self

    def __exit__(self, *exc: object) -> None:
        sys.meta_path.remove(self)  # type: ignore[arg-type]
        for owner, attr, value in reversed(self._saved):
            if value is _INHERITED:
                delattr(owner, attr)
            else:
                setattr(owner, attr, value)


class Tiers:
    """The plugin: marks, orders, guards and stops."""

    def __init__(self, config: pytest.Config) -> None:
        self.failed: tuple[str, str] | None = None  # (tier, nodeid) of the first failure
        self.keep_going = os.environ.get(ALL_TIERS_ENV) == "1"
        shared = getattr(config, "workerinput", {}).get(SHARED_FAILURE_KEY)
        self.shared: Path | None = Path(shared) if shared else None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist's controller, for each worker it starts: where the workers record a failure."""
        if self.shared is None:
            handle, name = tempfile.mkstemp(prefix="edge-lstm-tiers-")
            os.close(handle)
            self.shared = Path(name)
        node.workerinput[SHARED_FAILURE_KEY] = str(self.shared)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.shared is not None and not hasattr(config, "workerinput"):
            self.shared.unlink(missing_ok=True)

    def _first_failure(self) -> tuple[str, str] | None:
        if self.failed is None and self.shared is not None:
            line = self.shared.read_text(encoding="utf-8").partition("\n")[0]
            if line:
                tier, _, nodeid = line.partition("\t")
                self.failed = (tier, nodeid)
        return self.failed

    def _record_failure(self, item: pytest.Item) -> None:
        self.failed = (_tier(item), item.nodeid)
        if self.shared is not None:  # appended: the first line is the first failure any worker saw
            with self.shared.open("a", encoding="utf-8") as handle:
                handle.write(f"{self.failed[0]}\t{item.nodeid}\n")

    @pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            item.stash[_TIER] = tier_of(item)
        for item in items:  # an explicit marker below the tier found must not select the test: -m picks one tier
            for node in item.listchain():
                node.own_markers[:] = [mark for mark in node.own_markers if mark.name not in RANK]
            item.add_marker(item.stash[_TIER])
        items.sort(key=_place_in_tier(items))  # stable: each module's tests stay in their order

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        failed = None if self.keep_going else self._first_failure()
        if failed and RANK[_tier(item)] > RANK[failed[0]]:
            tier, nodeid = failed
            pytest.skip(f"the {tier} tier failed ({nodeid}), so the {_tier(item)} tier is not run "
                        f"({ALL_TIERS_ENV}=1 runs every tier)")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[object]:
        if _tier(item) != "unit":
            return (yield)
        with _Guard() as guard:  # around setup, call and teardown: a module fixture's cost is its first test's
            item.stash[_GUARD] = guard
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo) -> Iterator[pytest.TestReport]:
        report: pytest.TestReport = yield
        guard = item.stash.get(_GUARD, None)
        if guard and guard.violations and call.when == "call" and report.passed:
            report.outcome, report.longrepr = "failed", "\n".join(guard.violations)  # the test swallowed it
        if report.failed and self.failed is None:
            self._record_failure(item)
        return report


def _place_in_tier(items: list[pytest.Item]) -> Callable[[pytest.Item], tuple[int, int]]:
    """The sort key of ``items``: their tier, then within it long tests, the first user of each shared
    fixture, the tests that need none, the other users of a shared fixture built in this tier."""
    built_in: dict[str, str] = {}  # shared fixture -> the tier of its first user
    firsts: set[str] = set()
    for item in sorted(items, key=lambda item: RANK[_tier(item)]):
        for name in _shared(item):
            if name not in built_in:
                built_in[name] = _tier(item)
                firsts.add(item.nodeid)

    def place(item: pytest.Item) -> tuple[int, int]:
        if item.get_closest_marker(LONG_MARKER) is not None:
            group = 0
        elif item.nodeid in firsts:
            group = 1
        else:
            group = 3 if any(built_in[name] == _tier(item) for name in _shared(item)) else 2
        return RANK[_tier(item)], group

    return place


def _shared(item: pytest.Item) -> list[str]:
    return [name for name in SHARED_FIXTURES if name in getattr(item, "fixturenames", ())]


_GUARD = pytest.StashKey[_Guard]()
_TIER = pytest.StashKey[str]()


def _tier(item: pytest.Item) -> str:
    return item.stash[_TIER]


def register(config: pytest.Config) -> None:
    """Install the plugin once per session (both test roots' conftests call this)."""
    if config.pluginmanager.has_plugin(PLUGIN_NAME):
        return
    for name, description in TIERS:
        config.addinivalue_line("markers", f"{name}: tier {RANK[name]}: {description}")
    for name, tier in MARKER_TIERS.items():
        config.addinivalue_line("markers", f"{name}: part of the {tier} tier")
    config.addinivalue_line("markers", f"{LONG_MARKER}: takes a minute or more on 2 cores (runs first within its tier)")
    if getattr(config.option, "maxschedchunk", False) is None:  # pytest-xdist's controller, not given
        config.option.maxschedchunk = 1
    config.pluginmanager.register(Tiers(config), PLUGIN_NAME)
