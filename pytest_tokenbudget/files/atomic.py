"""Atomic file writes: an interrupted run never leaves half a cassette or report.

A file is written to a temp file in its own directory, then renamed over the target, so a
reader sees the old file or the new one, never part of either. The temp file is created
the way open() creates a file (mode 0666 for the kernel to narrow by the umask, or by the
directory's default ACL), never with tempfile's 0600: the mode is the user's umask without
this process ever reading or setting the umask, which is process-wide and racy to read
(os.umask sets it to read it). A file the user edits in place (token_budgets.yml) keeps
its own mode and is written through a symlink: the link stays, its target changes.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

# O_EXCL: never an existing file or symlink; O_BINARY (Windows): newlines as Python writes them
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def write_atomic(
    path: Path, text: str, *, keep_mode: bool = False, follow_symlinks: bool = False
) -> None:
    """Write via a temp file in the same directory, then rename over the target.

    `follow_symlinks`: a symlink is kept and its target written (in the target's directory,
    where the rename is atomic); otherwise the link itself is replaced by the file, so a
    symlink committed by someone else never steers a write outside the project.
    `keep_mode`: an existing target keeps its mode; otherwise the umask decides, as for a new
    file (so a file an older version wrote 0600 gets the user's mode back)."""
    if follow_symlinks:
        path = Path(os.path.realpath(path))
    mode = existing_mode(path) if keep_mode else None
    commit(temp_beside(path, text, mode=mode), path)


def existing_mode(path: Path) -> int | None:
    """The permission bits of the file at path; None when there is none."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return None


def temp_beside(path: Path, text: str, *, mode: int | None = None) -> Path:
    """A new file holding text in path's directory, named so no reader mistakes it for
    path; with the umask's mode, or `mode` when given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, _CREATE, 0o666)  # the kernel applies the umask, as open() does
        except FileExistsError:
            continue
        break
    else:
        raise FileExistsError(f"no free temp file name beside {path}")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if mode is not None:
                os.chmod(fd if os.chmod in os.supports_fd else tmp, mode)
            f.write(text)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def commit(tmp: Path, path: Path) -> None:
    """Rename a temp file from temp_beside over its target; on failure it is removed."""
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_together(files: Sequence[tuple[Path, str | None]]) -> None:
    """One run's files in one directory, replaced as a set: every temp file is written
    first, then all are renamed in while holding a lock on the directory, so two runs
    sharing it take turns and leave all of one run's files, never a mix. A None text
    removes that file: one of ours an older run wrote and this one does not."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, text in files:
            if text is not None:
                temps.append((temp_beside(path, text), path))
        with _locked(files[0][0].parent):
            while temps:
                os.replace(*temps[0])
                temps.pop(0)
            for path, text in files:
                if text is None:
                    path.unlink(missing_ok=True)
    finally:
        for tmp, _ in temps:  # those not renamed in
            tmp.unlink(missing_ok=True)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """An exclusive lock on the directory itself (flock), so no lock file is left in it;
    released when its descriptor closes, also when the process dies. Where there is none
    (Windows, a file system without flock) each file is still replaced atomically."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        with suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
