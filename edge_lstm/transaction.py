"""One way to write a bundle: stage its files in a folder of their own, check them, then put them in
place at once, with SIGINT/SIGTERM held back. A failed or interrupted writer leaves the bundle as it
was and no staging folder (one a SIGKILL left behind is removed by the next transaction there).

Two kinds of commit:

- in place (the default): the staging folder is inside the bundle; each staged file is renamed
  over its old self (``os.replace``), the ``last`` file (the manifest) after all others; then the
  files the writer ``owns`` but did not write this time (stale) are removed;
- a new folder (``whole=True``): the staging folder is beside the target, and is renamed to it; a
  bundle already there is moved aside first and removed after.

    with BundleTransaction(bundle_dir, owns=EXPORT_FILES) as txn:
        build(txn.stage("model.tflite"))
        check(...)
        txn.commit(last="manifest.json")

Leaving the ``with`` block without a commit (an exception, a signal) removes the staging folder.

A writer's ``prefix`` names its staging folders (export's, import's, or the default that ``train``
and ``reference`` share): an in-place transaction removes leftovers of its own prefix only, so it never
deletes a folder that another kind of writer is still filling.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

from edge_lstm_device.bundle.files import atomic_write_json

from edge_lstm import termination

STAGING_PREFIX = ".edge-lstm-staging-"


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold back SIGINT/SIGTERM while files are renamed into place."""
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class BundleTransaction:
    """Stage, check, commit: the bundle ``target`` changes whole or not at all (see the module).

    ``owns``: the plain file names this writer may replace or remove in place (an earlier
    commit's files it did not write this time are removed as stale; no other file is touched).
    ``prefix``: the staging folder's name starts with it. ``whole``: the staging folder becomes
    ``target`` (a new bundle) instead of its files being renamed into it.
    """

    def __init__(self, target: Path, owns: Collection[str] = (), prefix: str = STAGING_PREFIX,
                 whole: bool = False) -> None:
        self.target = Path(target)
        self.owns = frozenset(owns)
        self.prefix = prefix
        self.whole = whole
        self.staging: Path | None = None
        self.staged: list[str] = []

    def begin(self) -> Path:
        """Create the staging folder (``OSError`` if it cannot be); returns it. In place, staging
        folders of this prefix an earlier killed writer left in ``target`` are removed first."""
        if self.staging is None:
            if self.whole:
                self.target.parent.mkdir(parents=True, exist_ok=True)
                self.staging = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.target.parent))
            else:
                for leftover in self.target.glob(self.prefix + "*"):
                    shutil.rmtree(leftover, ignore_errors=True)
                self.staging = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.target))
        return self.staging

    def __enter__(self) -> BundleTransaction:
        self.begin()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Remove the staging folder (whatever a commit did not move)."""
        if self.staging is not None:
            shutil.rmtree(self.staging, ignore_errors=True)

    def stage(self, name: str) -> Path:
        """The path to write the bundle's file ``name`` to; the commit puts it in place."""
        if not name or name != Path(name).name or name in (".", ".."):
            raise ValueError(f"not a plain file name: {name!r}")
        if name not in self.staged:
            self.staged.append(name)
        return self.begin() / name

    def stage_json(self, name: str, document: object) -> Path:
        """Stage ``name`` holding ``document`` as JSON (as ``atomic_write_json`` writes it)."""
        path = self.stage(name)
        atomic_write_json(path, document)
        return path

    def commit(self, last: str | None = None, drop: Iterable[str] = ()) -> None:
        """Put the staged files in place with SIGINT/SIGTERM held (a SIGTERM that something
        swallowed before ends the writer here, with nothing committed). In place: every staged file
        but ``last``, then ``drop`` removed (files ``last`` makes wrong, e.g. a signature), then
        ``last``, then the stale files. ``whole``: the staging folder renamed to ``target``."""
        staging = self.begin()
        if self.whole:
            os.chmod(staging, 0o755)
            with signals_held():
                termination.check()
                _swap(staging, self.target, self.prefix)
            return
        stale = [name for name in sorted(self.owns - set(self.staged))
                 if (self.target / name).is_file() and not (self.target / name).is_symlink()]
        with signals_held():
            termination.check()
            for name in self.staged:
                if name != last:
                    os.replace(staging / name, self.target / name)
            for name in drop:
                (self.target / name).unlink(missing_ok=True)
            if last is not None:
                os.replace(staging / last, self.target / last)
            for name in stale:
                (self.target / name).unlink(missing_ok=True)


def _swap(staging: Path, out: Path, prefix: str) -> None:
    """Rename ``staging`` to ``out``; an old bundle there is moved aside, then removed."""
    if not out.exists() or not any(out.iterdir()):
        os.replace(staging, out)
        return
    aside = Path(tempfile.mkdtemp(prefix=prefix + "old.", dir=out.parent))
    os.replace(out, aside / "bundle")
    try:
        os.replace(staging, out)
    except OSError:
        os.replace(aside / "bundle", out)
        raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
