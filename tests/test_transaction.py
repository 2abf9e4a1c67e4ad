"""The one bundle transaction every writer uses: stage, check, commit whole or not at all."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from edge_lstm import termination
from edge_lstm.transaction import STAGING_PREFIX, BundleTransaction, signals_held


def _bundle(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def test_a_failure_before_the_commit_leaves_the_bundle_untouched_and_no_staging(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b", {"manifest.json": "old", "a.bin": "old a"})
    with pytest.raises(RuntimeError, match="check failed"), BundleTransaction(bundle, owns={"a.bin"}) as txn:
        txn.stage("a.bin").write_text("new a")
        txn.stage_json("manifest.json", {"new": True})
        raise RuntimeError("check failed")
    assert _contents(bundle) == {"a.bin": "old a", "manifest.json": "old"}


def test_an_interrupt_before_the_commit_cleans_the_staging(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b", {"a.bin": "old"})
    with pytest.raises(KeyboardInterrupt), BundleTransaction(bundle) as txn:
        txn.stage("a.bin").write_text("new")
        raise KeyboardInterrupt
    assert _contents(bundle) == {"a.bin": "old"}


def test_commit_puts_files_in_place_and_removes_only_stale_owned_files(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b", {"manifest.json": "old", "a.bin": "old a", "gone.bin": "old",
                                      "notes.txt": "mine", "model.h5": "trained"})
    os.symlink("notes.txt", bundle / "linked.bin")  # a link is never removed as stale
    with BundleTransaction(bundle, owns={"a.bin", "gone.bin", "linked.bin", "absent.bin", "manifest.json"}) as txn:
        txn.stage("a.bin").write_text("new a")
        txn.stage_json("manifest.json", {"files": ["a.bin"]})
        txn.commit(last="manifest.json")
    assert _contents(bundle) == {"a.bin": "new a", "linked.bin": "mine", "manifest.json": '{\n  "files": [\n    "a.bin"\n  ]\n}\n',
                                 "model.h5": "trained", "notes.txt": "mine"}
    assert (bundle / "linked.bin").is_symlink()


def test_the_last_file_goes_in_after_the_others_and_after_drop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = _bundle(tmp_path / "b", {"manifest.json": "old", "manifest.sig": "sig"})
    order = []
    replace, unlink = os.replace, Path.unlink
    monkeypatch.setattr(os, "replace", lambda src, dst: (order.append(("put", Path(dst).name)), replace(src, dst)))
    monkeypatch.setattr(Path, "unlink", lambda self, **kw: (order.append(("drop", self.name)), unlink(self, **kw)))
    with BundleTransaction(bundle) as txn:
        txn.stage_json("manifest.json", {})
        txn.stage("z.bin").write_text("z")
        txn.stage("a.bin").write_text("a")
        order.clear()  # (staging JSON renames within the staging folder)
        txn.commit(last="manifest.json", drop=["manifest.sig"])
    assert order == [("put", "z.bin"), ("put", "a.bin"), ("drop", "manifest.sig"), ("put", "manifest.json")]
    assert sorted(os.listdir(bundle)) == ["a.bin", "manifest.json", "z.bin"]


def test_a_staging_folder_a_killed_writer_left_is_removed_by_the_next(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "b", {"a.bin": "old"})
    (bundle / (STAGING_PREFIX + "killed")).mkdir()
    (bundle / (STAGING_PREFIX + "killed") / "a.bin").write_text("half")
    (bundle / ".other-staging-x").mkdir()  # another prefix: not this writer's
    with BundleTransaction(bundle) as txn:
        txn.stage("a.bin").write_text("new")
        txn.commit()
    assert sorted(os.listdir(bundle)) == [".other-staging-x", "a.bin"] and (bundle / "a.bin").read_text() == "new"


def test_only_plain_names_are_staged(tmp_path: Path) -> None:
    with BundleTransaction(_bundle(tmp_path / "b", {})) as txn:
        for name in ("../x", "/etc/x", "a/b", "", ".."):
            with pytest.raises(ValueError, match="plain file name"):
                txn.stage(name)


def test_a_swallowed_sigterm_commits_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = _bundle(tmp_path / "b", {"a.bin": "old"})
    monkeypatch.setattr(termination, "_received", signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped, BundleTransaction(bundle) as txn:
        txn.stage("a.bin").write_text("new")
        txn.commit()
    assert stopped.value.code == 128 + signal.SIGTERM
    assert _contents(bundle) == {"a.bin": "old"}


def test_signals_are_held_during_the_commit_and_restored_after() -> None:
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    with signals_held():
        held = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert {signal.SIGINT, signal.SIGTERM} <= held
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before


def test_a_new_bundle_is_a_folder_renamed_into_place(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "new"
    with BundleTransaction(out, prefix=".imp.", whole=True) as txn:
        assert txn.staging.parent == out.parent
        txn.stage("model.h5").write_text("m")
        txn.commit()
    assert _contents(out) == {"model.h5": "m"} and (out.stat().st_mode & 0o777) == 0o755
    assert sorted(os.listdir(out.parent)) == ["new"]


def test_a_new_bundle_replaces_an_old_one_whole_or_not_at_all(tmp_path: Path) -> None:
    out = _bundle(tmp_path / "b", {"model.h5": "old", "model_float.tflite": "stale"})
    with pytest.raises(RuntimeError), BundleTransaction(out, prefix=".imp.", whole=True) as txn:
        txn.stage("model.h5").write_text("half")
        raise RuntimeError
    assert _contents(out) == {"model.h5": "old", "model_float.tflite": "stale"}
    with BundleTransaction(out, prefix=".imp.", whole=True) as txn:
        txn.stage("model.h5").write_text("new")
        txn.commit()
    assert _contents(out) == {"model.h5": "new"}
    assert sorted(os.listdir(tmp_path)) == ["b"]  # no staging, no old bundle set aside
