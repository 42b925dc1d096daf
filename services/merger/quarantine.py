"""The merger's quarantine (invalid batch and reject files, each with a .reason.txt, kept within
bounds) and the temp files a crash leaves behind."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from contract.csv import manifest_file_name, parse_batch_name
from contract.files import TEMP_PATTERN, atomic_write_bytes, fsync_dir
from contract.merger_status import QuarantinedBatch
from contract.segments import SEGMENTS_DIR
from services.merger.readahead import size_of
from services.merger.settings import MergerSettings
from services.merger.streamed import copy_durable
from services.merger.writes import writing

log = logging.getLogger(__name__)

#: An invalid reject file is quarantined under this prefix and its batch file name.
REJECTS_PREFIX = "rejects-"


def _put(qdir: Path, name: str, path: Path, raw: bytes | None, reason: str) -> None:
    with writing("quarantine", qdir / name):
        if raw is None:  # (a big file: copied without holding it)
            copy_durable(path, qdir / name)
        else:
            atomic_write_bytes(qdir / name, raw)
        atomic_write_bytes(qdir / f"{name}.reason.txt", (reason + "\n").encode())


def quarantine_copy(
    settings: MergerSettings, path: Path, raw: bytes | None, batch_id: int, reason: str, at: float
) -> QuarantinedBatch:
    """Put a durable copy of an invalid batch file and its reason in the quarantine folder. The
    original is removed only after the state records the batch, so a crash in between repeats this."""
    qdir = settings.quarantine_dir
    manifest = path.parent / manifest_file_name(path.name)
    if manifest.exists():
        with writing("quarantine", qdir / manifest.name):
            atomic_write_bytes(qdir / manifest.name, manifest.read_bytes())
    _put(qdir, path.name, path, raw, reason)
    log.warning("quarantined an invalid batch file", extra={"path": str(path), "batch_id": batch_id, "reason": reason})
    return QuarantinedBatch(file=path.name, reason=reason, at=at)


def quarantine_rejects(
    settings: MergerSettings, path: Path, raw: bytes | None, reason: str, at: float
) -> QuarantinedBatch:
    name = f"{REJECTS_PREFIX}{path.name}"
    _put(settings.quarantine_dir, name, path, raw, reason)
    log.warning("quarantined an invalid reject file", extra={"path": str(path), "reason": reason})
    return QuarantinedBatch(file=name, reason=reason, at=at)


def prune_quarantine(settings: MergerSettings) -> None:
    """Keep the quarantine folder within quarantine_max_files batch files and quarantine_max_bytes
    (the oldest go first, with their reason and manifest; each one is logged)."""
    qdir = settings.quarantine_dir
    batches = []
    for p in qdir.iterdir():
        if parse_batch_name(p.name.removeprefix(REJECTS_PREFIX)) is None:
            continue
        related = [p, qdir / f"{p.name}.reason.txt", qdir / manifest_file_name(p.name)]
        st = p.stat()
        batches.append((st.st_mtime, p.name, sum(size_of(r) for r in related), related))
    batches.sort()
    total = sum(b[2] for b in batches)
    while batches and (len(batches) > settings.quarantine_max_files or total > settings.quarantine_max_bytes):
        _, name, size, related = batches.pop(0)
        for r in related:
            r.unlink(missing_ok=True)
        total -= size
        log.warning("pruned a quarantined batch file (quarantine bound)", extra={"file": name, "bytes": size})
    fsync_dir(qdir)


def prune_temp_files(settings: MergerSettings, own: tuple[str, ...]) -> None:
    """Remove atomic_write_bytes' temp files left behind (a crash in the middle of a write), at
    start and after each pass: those of the merge thread's own files (`own`: quarantine/, state.json,
    the journal, merged.csv and rejects.csv when created) whatever their process id, and any
    other of another process (this one's devices.json writer may be writing its temp file now;
    one left by a crashed process of the same id, as in a container, is overwritten by it)."""
    segments = settings.merger_dir / SEGMENTS_DIR  # (only the merge thread writes there)
    for folder in (settings.merger_dir, settings.quarantine_dir, segments):
        try:
            names = [e.name for e in os.scandir(folder) if e.is_file(follow_symlinks=False)]
        except OSError:
            continue
        for name in names:
            m = TEMP_PATTERN.match(name)
            if m is None:
                continue
            if folder != settings.merger_dir or m.group(1) in own or int(m.group(2)) != os.getpid():
                (folder / name).unlink(missing_ok=True)
                log.info("removed a temp file left behind", extra={"path": str(folder / name)})
