"""The results store's file writes: atomic, and a full disk or a read-only folder said in one line.

Below every package that writes files the study reads or commits (the engine's run folders,
``experiments.store``; the cost tables of ``run.py claims``, ``costing.cli``), so that those
packages share it without importing each other. Standard library only.
"""
from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ResultsWriteError(OSError):
    """A results file could not be written (disk full, quota, read-only, permissions).

    Not a failure of the run: the run is not marked failed, the grid stops with this one-line
    error, and the run resumes from its last good checkpoint once the disk is usable again.
    """


RUNS_RESUME = ("finished runs are intact and interrupted runs resume from their last checkpoint once there is "
               "space/permission again")


def write_error(path: Path, error: OSError, then: str | None = RUNS_RESUME) -> ResultsWriteError:
    """The one-line error for ``path`` that could not be written, and ``then`` (what happens next), if any."""
    reason = error.strerror or str(error)
    why = f"the disk is full ({reason})" if error.errno in (errno.ENOSPC, errno.EDQUOT) else reason
    return ResultsWriteError(error.errno, f"cannot write {path}: {why}" + (f"; {then}" if then else ""))


@contextmanager
def writing(path: Path, tmp: Path | None = None, then: str | None = RUNS_RESUME) -> Iterator[None]:
    """Turn an OSError while writing ``path`` into a ResultsWriteError; remove the half-written ``tmp``."""
    try:
        yield
    except ResultsWriteError:
        raise
    except OSError as error:
        if tmp is not None:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
        raise write_error(path, error, then) from None


def atomic_write(path: Path, data: bytes | str, then: str | None = RUNS_RESUME) -> None:
    """Write ``path`` via a temporary file in the same directory and ``os.replace``; a failure is a
    :func:`write_error` ending with ``then`` (by default, what it means for a run's files)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with writing(path, tmp, then):
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
