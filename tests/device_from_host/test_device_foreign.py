"""The device package where it will run: isolated environments with only numpy and one TFLite
interpreter (tflite-runtime 2.14 + numpy < 2, or ai-edge-litert), on x86-64, and under qemu user
emulation on aarch64 (64-bit Pi OS) and armv7 (32-bit: Debian armhf, its python3-numpy 1.24,
tflite-runtime 2.14). In each, TensorFlow is not importable and the scores equal the host's; the
ARM environments also hold ``cryptography`` and check signed bundles. Where no interpreter wheel
exists (32-bit Trixie, armv6, riscv64, a 32-bit userland under a 64-bit kernel), a user's own
``pip install ./device`` into a venv of Debian's Python runs as on the device
(``tests/support/pi_install.py``)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from edge_lstm_device.runtime.model import NO_CALIBRATE_ENV, REFERENCE_BUNDLE, SentimentModel

from edge_lstm.samples import TEST_SAMPLE, read_sample
from tests.support.fixtures import ROOT
from tests.support.foreign import ForeignEnvUnavailable, ForeignPython, arm_python, check_no_tensorflow, isolated_venv
from tests.support.pi_install import CASES, PiCase, PiInstall, run_case

CACHE = Path(os.environ.get("EDGE_LSTM_TEST_CACHE", Path.home() / ".cache" / "edge-lstm-tests"))
DIST = {"litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime"}
# measured: 1.6e-3 tflite-runtime 2.14 x86, 7.2e-5 / 9e-6 on aarch64, 1.5e-3 on armv7l (all 300 reviews)
DYNAMIC_RANGE_ATOL = 2.5e-3
ARM_REVIEWS = 40  # emulation is slow; x86 environments score the whole sample
ARM1176_REVIEWS = 15  # the Pi Zero's core, soft-float: slower still
# where the interpreter and the CPU decide a device test's outcome: reading bundles and scoring them
# (serving/ is pure Python over the runtime; this session's own device tests run it)
INTERPRETER_FOLDERS = ("bundle", "runtime")
ARM_EXTRA = ("cryptography", "pytest")  # signed bundles and device/tests in every ARM environment
ENVIRONMENTS = [  # (where, flavour): ai-edge-litert has no armv7l wheel
    pytest.param("x86", "tflite-runtime"),
    pytest.param("x86", "litert"),
    pytest.param("arm64", "tflite-runtime", marks=pytest.mark.arm),
    pytest.param("arm64", "litert", marks=pytest.mark.arm),
    pytest.param("armhf", "tflite-runtime", marks=pytest.mark.arm),
]
TEXT = "What a wonderful film"
# verify --limit after `pip install`: the installed command runs and judges the first N texts of each reference
# set there. The scores themselves are test_numpy_engine_where_no_interpreter_wheel_exists's: the same Debian's
# numpy engine gives the host's scores within 1e-5, and the host's passes verify on the whole sets. (The ARM1176
# scores a review in about 1.5 s; docs/pi_installs.md, written by scripts/pi_installs.py, holds 100-text runs.)
VERIFY_TEXTS = 3


@pytest.fixture(scope="module")
def sample_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    texts = [" ".join(t.split()) for t in read_sample(TEST_SAMPLE).texts]
    path = tmp_path_factory.mktemp("sample") / "reviews.txt"
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path, texts


@pytest.fixture(scope="module")
def host_scores(sample_file: tuple[Path, list[str]]) -> dict[str, np.ndarray]:
    _, texts = sample_file
    return {name: np.array([p.probability for p in SentimentModel.load(model=name).predict_batch(texts)])
            for name in ("int8_loop_tflite", "int8_tflite", "int8_dynamic_tflite")}


def _device_scores(py: ForeignPython, flavour: str, model: str, file: Path, limit: int | None) -> np.ndarray:
    if limit:
        short = file.with_name(f"first{limit}.txt")
        short.write_text("".join(file.read_text(encoding="utf-8").splitlines(keepends=True)[:limit]), encoding="utf-8")
        file = short
    proc = py.run(["-m", "edge_lstm_device", "predict", "--json", "--interpreter", DIST[flavour], "--model", model,
                   "--file", str(file)], pythonpath=[ROOT / "device"], timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return np.array([json.loads(line)["probability"] for line in proc.stdout.splitlines()])


def _environment(where: str, flavour: str) -> ForeignPython:
    extra = ("pytest",) if flavour == "numpy" else ARM_EXTRA  # (no cryptography wheel for armel or riscv64)
    try:
        return isolated_venv(flavour, CACHE) if where == "x86" else arm_python(CACHE, flavour, where, extra)
    except ForeignEnvUnavailable as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(err))


@pytest.mark.qemu
@pytest.mark.parametrize("where, flavour", ENVIRONMENTS)
@pytest.mark.parametrize("model", ["int8_loop_tflite", "int8_tflite", "int8_dynamic_tflite"])
def test_device_scores_equal_the_host(where: str, flavour: str, model: str, sample_file, host_scores) -> None:
    py = _environment(where, flavour)
    check_no_tensorflow(py)
    limit = ARM_REVIEWS if where != "x86" else None
    scores = _device_scores(py, flavour, model, sample_file[0], limit)
    expected = host_scores[model][: len(scores)]
    assert len(scores) == (limit or len(host_scores[model]))
    if model == "int8_tflite":  # integer arithmetic: bit-exact on every platform and interpreter
        np.testing.assert_array_equal(scores, expected, err_msg=py.description)
    else:  # float activations: kernels differ (AVX vs NEON, TFLite 2.14 vs LiteRT 2.3) in the last digits,
        # so a label within the tolerance of 0.5 may differ (verify judges labels, with parity's thresholds)
        np.testing.assert_allclose(scores, expected, atol=DYNAMIC_RANGE_ATOL, rtol=0, err_msg=py.description)


@pytest.mark.qemu
def test_pip_install_device_alone_then_predict(tmp_path: Path) -> None:
    """``pip install ./device`` into a fresh venv: the CLI answers with no other file."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, str(ROOT / "device")], check=True, capture_output=True)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(["edge-lstm-device", "predict", "--json", "What a wonderful film"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    record = json.loads(out.stdout)
    assert record["label"] == "positive" and record["model"] in ("int8_loop_tflite", "int8_tflite", "int8_dynamic_tflite")
    tf = subprocess.run([str(venv / "bin" / "python"), "-c", "import tensorflow"], capture_output=True)
    assert tf.returncode != 0


@pytest.mark.minutes
@pytest.mark.qemu
@pytest.mark.parametrize("flavour, markers", [("tflite-runtime", "not heavy"), ("litert", "unit")])
def test_device_tests_pass_with_only_the_device_package(flavour: str, markers: str) -> None:
    """``device/tests`` (what a Pi can run) in a venv with numpy, one interpreter and pytest: with
    tflite-runtime (its only x86-64 run), the tests of the bundle and the runtime but the ``heavy``
    ones (they judge whole reference sets: the cortex-a7 kernel family does that where tflite-runtime
    is the device's interpreter); with ai-edge-litert, the interpreter this session's own device
    tests ran, the unit tier proves they need nothing of the host's."""
    try:
        py = isolated_venv(flavour, CACHE, extra=("pytest",))
    except ForeignEnvUnavailable as err:
        pytest.skip(str(err))
    check_no_tensorflow(py)
    summary = _run_device_tests(py, "-m", markers, folders=INTERPRETER_FOLDERS if flavour == "tflite-runtime" else ("",))
    assert re.search(r"(\d+) passed", summary) and " failed" not in summary, summary


@pytest.mark.minutes
@pytest.mark.qemu
@pytest.mark.arm
def test_device_tests_pass_on_armv7() -> None:
    """The bundle's and the runtime's ``device/tests`` in Debian armhf under qemu-arm: every test that
    starts no child process (no ARM binary can be exec'd from inside the emulation;
    ``no_child_process`` skips the others). Their models are the manifest's first, not calibrated:
    the cortex-a7 kernel family calibrates in this environment (38 s of emulation), and
    test_calibrate.py calibrates its own bundles here as everywhere. ``test_numpy_engine.py`` runs in
    the armhf numpy environment (the same Debian, numpy and CPU; no interpreter there, as on the
    devices that need the engine)."""
    py = _environment("armhf", "tflite-runtime")
    check_no_tensorflow(py)
    summary = _run_device_tests(py, "-p", "no_child_process", "-m", "not heavy", "-k", "not test_numpy_engine",
                                folders=INTERPRETER_FOLDERS, env={NO_CALIBRATE_ENV: "1"})
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 0, summary


@pytest.mark.qemu
@pytest.mark.arm
@pytest.mark.parametrize("where", ["armhf", "armhf-trixie", "riscv64", "armel"])
def test_numpy_engine_where_no_interpreter_wheel_exists(where: str, sample_file: tuple[Path, list[str]]) -> None:
    """Debian's own Python and numpy under qemu, no TFLite interpreter: Bookworm armhf (its device
    tests too), Trixie armhf (Python 3.13: no wheel fits), Trixie riscv64, Bookworm armel on an
    ARM1176 (the Pi Zero's core; soft-float, slow emulated). ``predict`` runs the numpy engine by
    itself, with the host engine's labels and scores within 1e-5 (other numpy, other BLAS)."""
    py = _environment(where, "numpy")
    check_no_tensorflow(py)
    file, texts = sample_file
    count = ARM1176_REVIEWS if where == "armel" else ARM_REVIEWS
    short = file.with_name(f"numpy{count}.txt")
    short.write_text("\n".join(texts[:count]) + "\n", encoding="utf-8")
    proc = py.run(["-m", "edge_lstm_device", "predict", "--json", "--file", str(short)], pythonpath=[ROOT / "device"],
                  timeout=1800)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == count and {r["model"] for r in records} == {"numpy_weights"}
    host = np.array([p.probability for p in SentimentModel.load(interpreter="numpy").predict_batch(texts[:count])])
    scores = np.array([r["probability"] for r in records])
    np.testing.assert_allclose(scores, host, atol=1e-5, rtol=0, err_msg=py.description)
    assert np.array_equal(scores >= 0.5, host >= 0.5)
    if where == "armhf":  # (elsewhere slower emulated: the scores above are the check)
        summary = _run_device_tests(py, "-p", "no_child_process", "-k", "test_numpy_engine", "-m", "not heavy")
        assert re.search(r"(\d+) passed", summary), summary


def _run_device_tests(py: ForeignPython, *options: str, folders: tuple[str, ...] = ("",),
                      env: dict[str, str] | None = None) -> str:
    """Run ``device/tests`` (its ``folders``) inside ``py``; the summary line (pytest's last)."""
    paths = [str(ROOT / "device" / "tests" / folder) for folder in folders]
    proc = py.run(["-m", "pytest", "-q", "-p", "no:cacheprovider", *options, *paths],
                  pythonpath=[ROOT / "device", ROOT / "tests" / "support"], timeout=1800, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def signed_bundles(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A copy of the shipped bundle signed with ``edge-lstm keygen`` and ``sign``, the same with one
    manifest byte changed (every file hash kept), and the public key."""
    from click.testing import CliRunner

    from edge_lstm.cli import main
    from edge_lstm.signing import public_path

    root = tmp_path_factory.mktemp("signed")
    key, signed = root / "signing.key", Path(shutil.copytree(REFERENCE_BUNDLE, root / "signed"))
    for args in (["keygen", "--out", str(key)], ["sign", "--bundle", str(signed), "--key", str(key)]):
        result = CliRunner().invoke(main, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    tampered = Path(shutil.copytree(signed, root / "tampered"))
    manifest = (signed / "manifest.json").read_bytes()
    assert b"Dense(1, sigmoid)" in manifest
    (tampered / "manifest.json").write_bytes(manifest.replace(b"Dense(1, sigmoid)", b"Dense(2, sigmoid)", 1))
    return signed, tampered, public_path(key)


def _record_probe(py: ForeignPython, flavour: str, bundle: Path, model: str) -> None:
    """Run the probe of ``bundle``'s ``model`` (load and score it) as its own emulated process and
    record the pass as the device does: the device's child process cannot start under emulation."""
    entry = json.loads((bundle / "manifest.json").read_text())["artifacts"][model]
    code = ("import sys\nfrom edge_lstm_device.runtime import probe\nfile, sha, dist = sys.argv[1:]\n"
            "assert probe.main([file, sha, '--interpreter', dist]) == 0\n"
            "probe._marker(sha, dist).parent.mkdir(parents=True, exist_ok=True)\nprobe._marker(sha, dist).touch()\n")
    proc = py.run(["-c", code, str(bundle / entry["file"]), entry["sha256"], DIST[flavour]], pythonpath=[ROOT / "device"])
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.qemu
@pytest.mark.arm
@pytest.mark.parametrize("where, flavour", [("arm64", "litert"), ("armhf", "tflite-runtime")])
def test_signed_bundles_on_arm(where: str, flavour: str, signed_bundles: tuple[Path, Path, Path]) -> None:
    """``predict --trust KEY.pub``: the signed bundle runs; one changed manifest byte is refused (exit 1)."""
    py = _environment(where, flavour)
    signed, tampered, public = signed_bundles
    _record_probe(py, flavour, signed, "int8_loop_tflite")
    predict = ["-m", "edge_lstm_device", "predict", "--json", "--interpreter", DIST[flavour],
               "--model", "int8_loop_tflite", "--trust", str(public), "--bundle"]
    ok = py.run([*predict, str(signed), TEXT], pythonpath=[ROOT / "device"])
    assert ok.returncode == 0 and json.loads(ok.stdout)["label"] == "positive", py.description + ok.stderr[-2000:]
    refused = py.run([*predict, str(tampered), TEXT], pythonpath=[ROOT / "device"])
    assert refused.returncode == 1 and refused.stdout == "", py.description + refused.stderr[-2000:]
    assert refused.stderr.startswith("error: ") and refused.stderr.count("\n") == 1, refused.stderr
    assert "changed after signing" in refused.stderr, refused.stderr



def _pi_install(case: PiCase, tmp_path: Path, verify_limit: int | None) -> PiInstall:
    try:
        result = run_case(case, CACHE, tmp_path, verify_limit)
    except ForeignEnvUnavailable as err:
        if os.environ.get("CI"):
            raise
        pytest.skip(str(err))
    failed = [s for s in result.steps.values() if s.returncode != 0]
    assert not failed, result.venv.description + "".join(f"\n{s.command}: {s.stdout[-2000:]}{s.stderr[-3000:]}" for s in failed)
    installed = result.installed()
    assert Path(installed["at"]).is_relative_to(result.venv.root), installed  # the venv's copy, not a source tree
    assert installed["applies"] == ["numpy>=1.23"] and not installed["interpreters"], installed
    assert result.steps["predict"].json["label"] == "positive"
    return result


@pytest.mark.minutes
@pytest.mark.qemu
@pytest.mark.arm
@pytest.mark.parametrize("case", [c for c in CASES if not c.uname_machine], ids=lambda c: c.where)
def test_pip_install_device_where_no_interpreter_wheel_exists(case: PiCase, tmp_path: Path) -> None:
    """What a user runs on the Pi, with Debian's Python and python3-numpy: ``python3 -m venv
    --system-site-packages``, ``pip install ./device`` (numpy alone: no interpreter wheel), then the
    installed ``edge-lstm-device``: ``info`` names the numpy engine and why, ``predict`` scores,
    ``verify`` judges the first ``VERIFY_TEXTS`` texts of each reference set against the float model."""
    result = _pi_install(case, tmp_path, VERIFY_TEXTS)
    about = result.steps["info"].json
    assert about["model"] == "numpy_weights" and about["interpreter"].startswith("numpy "), about
    assert about["why"].startswith("no TFLite interpreter is installed"), about
    sets = result.steps["verify"].json["models"][0]["sets"]
    assert sets["reviews"]["texts"] == VERIFY_TEXTS and sets["reviews"]["label_agreement"] >= 0.995, sets


@pytest.mark.qemu
@pytest.mark.arm
def test_pip_install_device_on_a_32_bit_userland_under_a_64_bit_kernel(tmp_path: Path) -> None:
    """Raspberry Pi OS 32-bit on a Pi 4/5 boots a 64-bit kernel: its 32-bit Python sees
    ``platform_machine`` aarch64, where the markers alone asked for ai-edge-litert (no 32-bit wheel:
    pip failed). Trixie armhf's Python with ``os.uname()`` saying aarch64 (qemu-arm reports its own
    CPU; a .pth of the venv answers as the kernel would): setup.py computes numpy alone."""
    (case,) = [c for c in CASES if c.uname_machine == "aarch64"]
    result = _pi_install(case, tmp_path, None)
    assert result.venv.description.split(": ", 1)[-1].startswith("aarch64, 32-bit Python 3.13"), result.venv.description
    requires = result.installed()["requires"]  # evaluated at build time: no markers (they said ai-edge-litert)
    assert [r for r in requires if "extra ==" not in r] == ["numpy>=1.23"], requires
    assert result.steps["predict"].json["model"] == "numpy_weights"
