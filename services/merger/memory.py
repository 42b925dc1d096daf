"""The merger process hands freed memory back to the system promptly, so its resident size follows
what it holds now (a few batches and chunks, bounded by bytes: read_ahead_bytes, max_group_bytes,
file_budget_bytes) rather than the high-water mark of every buffer it has ever had.

Two allocators hold the merger's big buffers: glibc's malloc (Python's bytes: a batch file, the rows
cut from it) and jemalloc (polars' frames). By default glibc raises its mmap threshold after each
big free (up to 32 MiB), so later batch-sized buffers come from its heaps, where freed memory stays
resident; jemalloc keeps freed pages for 10 s. Measured with the service catching up six 34 MB
batch files (streamed in 16 MiB chunks): peak RSS 449-468 MB, 272-283 MB once idle; with these
settings 352-355 MB and 161-199 MB; with 8 MiB chunks (file_budget_bytes' default now) 260 MB."""

from __future__ import annotations

import ctypes
import logging
import os
from typing import Final

log = logging.getLogger(__name__)

#: glibc mallopt parameters (malloc.h).
_M_MMAP_THRESHOLD: Final = -3
_M_ARENA_MAX: Final = -8
#: Allocations from 1 MiB up get their own mapping, unmapped on free (a fixed threshold: never raised).
MMAP_THRESHOLD: Final = 1024 * 1024
#: One heap per core is enough for a reading pool of two threads and the commit thread.
ARENA_MAX: Final = 2
#: polars' jemalloc (read when polars is loaded): freed pages go back within a second.
JEMALLOC_CONF_ENV: Final = "_RJEM_MALLOC_CONF"
JEMALLOC_CONF: Final = "dirty_decay_ms:1000,muzzy_decay_ms:0"


def release_memory_promptly() -> None:
    """Configure both allocators (see the module docstring). Call it before polars is imported; an
    operator's own _RJEM_MALLOC_CONF is kept. Without glibc (musl), malloc is left as it is."""
    os.environ.setdefault(JEMALLOC_CONF_ENV, JEMALLOC_CONF)
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        log.info("no glibc mallopt: the allocator keeps its defaults")
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not (mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_ARENA_MAX, ARENA_MAX)):
        log.warning("mallopt refused a setting: the allocator keeps its defaults")
