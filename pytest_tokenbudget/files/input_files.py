"""Files we read that someone else may have written: regular files, of a bounded size.

A config, a cassette, a baseline from a fork's pull request or a count cache may be a
FIFO (reading hangs), `/dev/zero` (reading never ends) or simply enormous. Each is read
here, refused with one message naming the file before a byte is read if it is not a
regular file or is larger than its kind allows, and decoded as UTF-8.
"""

from __future__ import annotations

import os
import stat

from pytest_tokenbudget.errors import TokenBudgetError

MiB = 1024 * 1024

# Limits far above any real file of the kind (the largest real cassette vendored under
# tests/data is under 2 MiB; a report.json of thousands of cases is a few MiB).
# token_budgets.yml and cases files: libyaml takes ~150 bytes of memory per byte of text
# made of tiny values, so 4 MiB of YAML is at most ~600 MiB and a few seconds.
CONFIG_MAX_BYTES = 4 * MiB
CASSETTE_MAX_BYTES = 256 * MiB
REPORT_MAX_BYTES = 64 * MiB  # report.json, baselines, shards
COUNTS_MAX_BYTES = 64 * MiB  # token_counts.json


def read_bounded_bytes(
    path: str | os.PathLike[str],
    *,
    limit: int,
    what: str,
    error: type[TokenBudgetError],
    shown: str | os.PathLike[str] | None = None,
) -> bytes:
    """The bytes of a regular file of at most `limit` bytes, else `error` naming it.

    `what` names the kind of file in the message ("cassette", "baseline"). The size is
    checked on the open file descriptor and the read stops one byte past the limit, so a
    file that grows while it is read is refused too.
    """
    where = os.fspath(shown if shown is not None else path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise error(f"cannot read {what}: no such file", path=where) from None
    except IsADirectoryError:
        raise error(f"cannot read {what}: it is a directory", path=where) from None
    except OSError as err:
        raise error(f"cannot read {what}: {err.strerror or err}", path=where) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"cannot read {what}: it is a directory", path=where)
        if not stat.S_ISREG(info.st_mode):
            raise error(
                f"cannot read {what}: not a regular file (a device, pipe or socket)", path=where
            )
        if info.st_size > limit:
            raise error(_too_large(what, info.st_size, limit), path=where)
        with os.fdopen(os.dup(fd), "rb", buffering=0) as f:
            # the size it has, then what it grew by: read(limit + 1) alone allocates the
            # whole limit (256 MiB for a cassette) for every small file
            data = f.read(info.st_size + 1)
            if len(data) > info.st_size:
                data += f.read(limit + 1 - len(data))
    finally:
        os.close(fd)
    if len(data) > limit:
        raise error(_too_large(what, len(data), limit), path=where)
    return data


def read_bounded_text(
    path: str | os.PathLike[str],
    *,
    limit: int,
    what: str,
    error: type[TokenBudgetError],
    shown: str | os.PathLike[str] | None = None,
    encoding: str = "utf-8",
) -> str:
    """`read_bounded_bytes` decoded (use encoding "utf-8-sig" to drop a BOM)."""
    data = read_bounded_bytes(path, limit=limit, what=what, error=error, shown=shown)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        where = os.fspath(shown if shown is not None else path)
        raise error(f"cannot read {what}: not UTF-8 text", path=where) from None


def _too_large(what: str, size: int, limit: int) -> str:
    return f"{what} is too large to read ({size:,} bytes; the limit is {limit:,})"
