"""Checked writes of the merger's commit (services.merger.merge): a short write is finished or
raised, never silent, and an OSError is raised as CommitWriteError naming the step and the file."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from contract.files import fsync_dir
from services.merger.errors import CommitWriteError


@contextlib.contextmanager
def writing(step: str, path: Path) -> Iterator[None]:
    """Raise an OSError of the block as CommitWriteError naming `step` and `path`."""
    try:
        yield
    except CommitWriteError:
        raise
    except OSError as e:
        raise CommitWriteError.of(step, path, e) from e


#: Buffers per pwritev call (Linux IOV_MAX is 1024).
IOV_BATCH = 512


def pwrite_all(fd: int, chunks: list[bytes], offset: int) -> None:
    """Write `chunks` one after the other from `offset`, without joining them into one copy. A short
    write is finished piece by piece: the next write raises the error (ENOSPC...), or, when it
    writes nothing, OSError(ENOSPC) is raised: never a silent short write."""
    for start in range(0, len(chunks), IOV_BATCH):
        group = chunks[start : start + IOV_BATCH]
        expected = sum(len(c) for c in group)
        written = os.pwritev(fd, group, offset)
        if written < expected:  # a short write: finish it piece by piece
            rest = memoryview(b"".join(group))[written:]
            pos = offset + written
            while rest:
                n = os.pwrite(fd, rest, pos)
                if n <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                rest, pos = rest[n:], pos + n
        offset += expected


def write_all(fd: int, data: bytes) -> None:
    """os.write `data` whole (an O_APPEND file: the journal), checked as pwrite_all is."""
    rest = memoryview(data)
    while rest:
        n = os.write(fd, rest)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        rest = rest[n:]


def truncate_to(path: Path, size: int) -> None:
    """Cut `path` to `size` bytes, durably (the file and its folder fsynced)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(path.parent)
