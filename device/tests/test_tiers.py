"""The test tiers (``tiers.py``) in an inner pytest session: the tier a test gets, the order, the stop
after a failing tier, and the guard of the unit tier."""

from __future__ import annotations

import importlib.machinery
import subprocess
from pathlib import Path

import pytest

CONFTEST = """
import pytest
import tiers

def pytest_configure(config):
    tiers.register(config)

@pytest.fixture
def server():  # a name tiers.FIXTURE_TIERS puts in the process tier
    return None

@pytest.fixture
def small_bundle():  # ... and this one in the training tier
    return None
"""


@pytest.fixture
def inner(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # installed plugins stay out of the inner session (pytest-benchmark asks git for the commit: a child process)
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.delenv("EDGE_LSTM_ALL_TIERS", raising=False)  # the outer run's choice is not the inner's
    pytester.makeconftest(CONFTEST)
    return pytester


def _selected(pytester: pytest.Pytester, marker: str) -> list[str]:
    result = pytester.runpytest_inprocess("--collect-only", "-q", "-m", marker)
    return [line.split("::")[1] for line in result.outlines if "::" in line]


def test_the_most_expensive_signal_decides_and_selects_alone(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_kinds="""
        import pytest

        def test_plain(): pass
        def test_served(server): pass
        @pytest.mark.tensorflow
        def test_converts_and_trains(small_bundle): pass
        @pytest.mark.arm
        def test_on_arm(): pass
    """)
    assert _selected(inner, "unit") == ["test_plain"]
    assert _selected(inner, "process") == ["test_served"]
    assert _selected(inner, "tensorflow") == []  # below the tier its fixture gives: not selected by it
    assert _selected(inner, "training") == ["test_converts_and_trains"]
    assert _selected(inner, "qemu") == ["test_on_arm"]


def test_cheapest_first_and_a_failing_tier_skips_the_later_ones(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_order="""
        import pytest

        @pytest.mark.training
        def test_trains(): pass
        @pytest.mark.process
        def test_serves(): pass
        def test_unit_fails(): assert False
        def test_unit_passes(): pass
    """)
    result = inner.runpytest_inprocess("-v", "-rs")
    ran = [line.split("::")[1].split()[0] for line in result.outlines if line.startswith("test_order.py::")]
    assert ran == ["test_unit_fails", "test_unit_passes", "test_serves", "test_trains"]
    result.assert_outcomes(failed=1, passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*the unit tier failed (test_order.py::test_unit_fails), so the process tier*"])


def test_within_a_tier_the_long_tests_run_first(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_long="""
        import pytest

        @pytest.mark.process
        def test_serves(): pass
        def test_quick(): pass
        @pytest.mark.minutes
        @pytest.mark.process
        def test_serves_long(): pass
        @pytest.mark.minutes
        def test_long(): pass
        def test_quick_too(): pass
    """)
    result = inner.runpytest_inprocess("--collect-only", "-q")
    order = [line.split("::")[1] for line in result.outlines if "::" in line]
    assert order == ["test_long", "test_quick", "test_quick_too", "test_serves_long", "test_serves"]


def test_a_shared_fixtures_first_user_runs_early_and_the_others_after_the_rest_of_its_tier(
        inner: pytest.Pytester) -> None:
    inner.makepyfile(test_shared="""
        import pytest

        @pytest.mark.training
        def test_trains(): pass
        def test_reads_bundle(small_bundle): pass
        def test_reads_it_too(small_bundle): pass
        @pytest.mark.training
        def test_trains_too(): pass
        @pytest.mark.minutes
        @pytest.mark.training
        def test_trains_long(): pass
        def test_unit(): pass
    """)
    result = inner.runpytest_inprocess("--collect-only", "-q")
    order = [line.split("::")[1] for line in result.outlines if "::" in line]
    assert order == ["test_unit", "test_trains_long", "test_reads_bundle", "test_trains", "test_trains_too",
                     "test_reads_it_too"]


def test_xdist_hands_out_one_test_at_a_time_unless_told(inner: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    inner.makepyfile(test_chunk="""
        def test_chunk(request): assert request.config.option.maxschedchunk == int(request.config.option.expected)
    """)
    inner.makeconftest(CONFTEST + "\ndef pytest_addoption(parser):\n    parser.addoption('--expected')\n")
    inner.runpytest_inprocess("-p", "xdist", "--expected", "1").assert_outcomes(passed=1)
    inner.runpytest_inprocess("-p", "xdist", "--maxschedchunk", "8", "--expected", "8").assert_outcomes(passed=1)


@pytest.mark.process  # xdist's workers are child processes
def test_a_failure_on_one_xdist_worker_stops_the_later_tiers_on_every_worker(
        inner: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    inner.makepyfile(tiers=(Path(__file__).parent / "tiers.py").read_text())  # for the workers' conftest
    inner.makepyfile(test_order="""
        import time
        import pytest

        def test_unit_fails(): assert False
        def test_unit_passes(): pass
        def test_unit_slow(): time.sleep(2)  # on the other worker: the failure is recorded meanwhile
        @pytest.mark.process
        @pytest.mark.parametrize("n", range(5))
        def test_serves(n): pass
    """)
    # xdist's load scheduling hands each worker a run of consecutive tests: two to each at first
    result = inner.runpytest_inprocess("-p", "xdist", "-n", "2", "--dist", "load", "-rs")
    result.assert_outcomes(failed=1, passed=2, skipped=5)
    result.stdout.fnmatch_lines(["*the unit tier failed (test_order.py::test_unit_fails), so the process tier*"])


def test_all_tiers_run_when_asked(inner: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGE_LSTM_ALL_TIERS", "1")
    inner.makepyfile(test_order="""
        import pytest

        def test_unit_fails(): assert False
        @pytest.mark.process
        def test_serves(): pass
    """)
    inner.runpytest_inprocess().assert_outcomes(failed=1, passed=1)


@pytest.mark.skipif(subprocess.Popen.__module__ != "subprocess", reason="subprocess.Popen is replaced here "
                    "(-p no_child_process under qemu: a test that would start a process is skipped first)")
def test_a_unit_test_that_does_what_a_later_tier_does_fails(inner: pytest.Pytester) -> None:
    inner.makepyfile(test_guard="""
        import os, socket, subprocess, sys

        def test_spawns(): subprocess.run([sys.executable, "-c", "pass"])
        def test_swallows():
            try:
                subprocess.run([sys.executable, "-c", "pass"])
            except Exception:
                pass
        def test_listens(): socket.create_server(("127.0.0.1", 0)).close()
        def test_forks(): os.fork()
        def test_imports_keras():
            try:
                import keras
            except ImportError:
                pass
    """)
    result = inner.runpytest_inprocess()
    keras = importlib.machinery.PathFinder.find_spec("keras") is not None  # (a Pi's venv has none: nothing to refuse)
    result.assert_outcomes(failed=5 if keras else 4, passed=0 if keras else 1)
    output = "\n".join(result.outlines)
    for what in ("starts a child process", "opens a socket (bind)", "forks", *(["imports keras"] if keras else [])):
        assert f"a unit test {what}: give it the tier marker it needs" in output, what
    result.stdout.fnmatch_lines(["*_ test_swallows _*", "a unit test starts a child process*"])  # failed though it passed
