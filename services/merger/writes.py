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
#: Bytes per write call at most. Measured on the bench's VM (Linux 6.18, ext4, Firecracker/KVM):
#: 128 MB written in calls of 512 KiB or 1 MiB took 0.03 s every time; in calls of 2 MiB or more (one
#: pwritev of a whole group was ~64 MB) 0.07 to 1.4 s, nearly all of it in the copy into the page
#: cache (perf: copy_folio_from_iter_atomic), i.e. the first touch of the new folios, which a write
#: that big gets large (2 MiB and up: likely memory the host has taken back, free page reporting works
#: on 2 MiB blocks). `tail` writes in small blocks. 1 MiB is ~100 calls per 100 MB.
WRITE_MAX = 1024 * 1024


def pwrite_all(fd: int, chunks: list[bytes], offset: int) -> None:
    """Write `chunks` one after the other from `offset`, without joining them into one copy, in calls
    of at most WRITE_MAX bytes. A short write is finished piece by piece: the next write raises the
    error (ENOSPC...), or, when it writes nothing, OSError(ENOSPC) is raised: never a silent short
    write."""
    for group in write_groups(chunks):
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


def write_groups(chunks: list[bytes]) -> Iterator[list[bytes | memoryview]]:
    """`chunks` in order, as groups of at most WRITE_MAX bytes and IOV_BATCH buffers (a chunk
    bigger than WRITE_MAX is cut into slices, not copied)."""
    group: list[bytes | memoryview] = []
    size = 0
    for chunk in chunks:
        if len(chunk) <= WRITE_MAX:
            pieces: list[bytes | memoryview] = [chunk]
        else:
            view = memoryview(chunk)
            pieces = [view[i : i + WRITE_MAX] for i in range(0, len(chunk), WRITE_MAX)]
        for piece in pieces:
            if group and (size + len(piece) > WRITE_MAX or len(group) >= IOV_BATCH):
                yield group
                group, size = [], 0
            group.append(piece)
            size += len(piece)
    if group:
        yield group


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
