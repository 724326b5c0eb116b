"""The two sides of ``run.py --compare REF``: a git ref and the working tree, each in a venv.

Each side is the repository's code at one point, installed with ``pip
install 'TREE[test]'`` (its own dependencies, pip's cache reused) into a
virtualenv of its own, so the benchmarks run it as users install it. The
venvs are kept under a cache folder (``$SHOTGUN_EVENTS_BENCH_CACHE``, default
``~/.cache/shotgun_events/bench-venvs``), one per commit hash (the working
tree with uncommitted changes: per commit and digest of its files), so a
second comparison starts at once; the 8 most recently used are kept.

REF is resolved with git in the repository this file lives in and exported
with ``git archive``; the working tree is copied as it is (every file git
tracks or would track, uncommitted changes included). Changes in bench/,
tests/ and docs/ do not count: none of them is installed, and the bench of
this tree drives both sides.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
#: Folders of the repository that are not installed: their changes need no venv of their own.
NOT_INSTALLED = ("bench", "tests", "docs")
#: Venvs kept in the cache; the least recently used beyond this are removed.
KEEP = 8
#: The marker of a venv whose install finished (a half-built one is built again).
READY = "ready"


class CompareError(Exception):
    """A comparison that cannot start: an unknown ref, a failed install."""


@dataclass(frozen=True)
class Side:
    """One side of a comparison: what it is and the Python of its venv."""

    label: str
    commit: str
    key: str
    python: Path

    def as_dict(self) -> dict[str, str]:
        """Plain data for ``--json``."""
        return {
            "label": self.label,
            "commit": self.commit,
            "venv": str(self.python.parent.parent),
        }


def cache_folder() -> Path:
    """Where the venvs are kept."""
    configured = os.environ.get("SHOTGUN_EVENTS_BENCH_CACHE")
    if configured:
        return Path(configured).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser().absolute() / "shotgun_events" / "bench-venvs"


@functools.cache
def top() -> Path:
    """The top folder of the repository (working tree) this bench lives in."""
    done = subprocess.run(
        ["git", "-C", str(BENCH), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise CompareError(f"--compare needs the bench inside a git repository: {done.stderr}")
    return Path(done.stdout.strip())


def git(*args: str) -> str:
    """Run git at the top of the repository; its stdout, stripped."""
    done = subprocess.run(
        ["git", "-C", str(top()), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise CompareError(f"git {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout.strip()


def ref_side(ref: str, cache: Path) -> Side:
    """The side of a git ref (any name git understands: HEAD~1, a branch, a hash)."""
    try:
        commit = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except CompareError:
        raise CompareError(
            f"--compare {ref}: not a commit of the repository {top()}; "
            "give a branch, tag, hash or HEAD~N"
        ) from None
    subject = git("log", "-1", "--format=%s", commit)
    label = f"{ref} = {commit[:10]} ({subject[:60]})"
    python = venv(cache, commit, lambda dest: export_commit(commit, dest))
    return Side(label, commit, commit, python)


def head_side(cache: Path) -> Side:
    """The side of the working tree as it is, uncommitted changes included."""
    commit = git("rev-parse", "--verify", "HEAD^{commit}")
    files = tree_files()
    outside = [f":!{folder}" for folder in NOT_INSTALLED]
    changed = git("status", "--porcelain", "--untracked-files=normal", "--", ".", *outside)
    if not changed:
        label = f"HEAD = {commit[:10]} (no uncommitted changes outside {', '.join(NOT_INSTALLED)})"
        python = venv(cache, commit, lambda dest: export_commit(commit, dest))
        return Side(label, commit, commit, python)
    key = f"{commit}-worktree-{digest(files)[:16]}"
    label = f"HEAD = {commit[:10]} + uncommitted changes in the working tree"
    python = venv(cache, key, lambda dest: copy_files(files, dest))
    return Side(label, commit, key, python)


def tree_files() -> list[str]:
    """Files of the working tree git tracks or would track (not ignored), that are installed."""
    root = top()
    listed = git("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--full-name")
    names = sorted({name for name in listed.split("\0") if name})
    return [
        name
        for name in names
        if name.split("/")[0] not in NOT_INSTALLED and (root / name).is_file()  # not deleted
    ]


def digest(files: list[str]) -> str:
    """A content hash of the listed working-tree files (paths, exec bits, bytes)."""
    root = top()
    hasher = hashlib.sha256()
    for name in files:
        path = root / name
        hasher.update(f"{name}\0{os.access(path, os.X_OK)}\0".encode())
        hasher.update(path.read_bytes())
    return hasher.hexdigest()


def copy_files(files: list[str], dest: Path) -> None:
    """Copy the listed working-tree files into ``dest``."""
    root = top()
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)


def export_commit(commit: str, dest: Path) -> None:
    """Write the tree of ``commit`` into ``dest`` (``git archive``)."""
    archive = subprocess.run(
        ["git", "-C", str(top()), "archive", "--format=tar", commit],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise CompareError(f"git archive {commit}: {archive.stderr.decode().strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (two runs never build one venv at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def venv(cache: Path, key: str, export: Callable[[Path], None]) -> Path:
    """The Python of the venv ``key``, built (export, then pip install) when not cached."""
    folder = cache / key
    python = folder / "bin" / "python"
    with locked(cache / f"{key}.lock"):
        marker = folder / READY
        if marker.exists():
            marker.touch()  # most recently used: kept by prune()
            return python
        shutil.rmtree(folder, ignore_errors=True)
        print(f"[compare] building the venv {folder} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        with tempfile.TemporaryDirectory(prefix="bench_compare_src_") as source:
            export(Path(source))
            # [test], as the README installs it to run tests and benchmarks: Celery for
            # section 11, and the tests' helpers that some sections import.
            install = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", f"{source}[test]"],
                capture_output=True,
                text=True,
                check=False,
            )
        if install.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise CompareError(f"pip install of {key} failed:\n{install.stderr[-2000:]}")
        marker.write_text(key + "\n")
        print(
            f"[compare] venv ready in {time.monotonic() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    prune(cache)
    return python


def prune(cache: Path) -> None:
    """Remove the venvs beyond the ``KEEP`` most recently used."""
    ready = sorted((marker.stat().st_mtime, marker.parent) for marker in cache.glob(f"*/{READY}"))
    for _, folder in ready[:-KEEP]:
        with locked(cache / f"{folder.name}.lock"):
            shutil.rmtree(folder, ignore_errors=True)
        (cache / f"{folder.name}.lock").unlink(missing_ok=True)
