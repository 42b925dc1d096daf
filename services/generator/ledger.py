"""Writing a run's ledger (contract/ledger.py): the header at the start, one line per injected
record once Kafka acknowledged it (its partition and offset come from the batch's metadata: the
i-th record of a batch is at base offset + i), the counts at the end.

A record is marked when it is made (`mark`, keyed by its value object, which stays the same
object when a failed batch is sent again) and written when its batch is acknowledged, or found in
Kafka after a failed delivery (`written`, with the batch's partition and base offset)."""

from __future__ import annotations

import logging
import os
from collections import Counter, deque
from pathlib import Path
from typing import IO

from contract.files import fsync_dir
from contract.ledger import InjectedFault, LedgerEnd, LedgerRun, dump_line

log = logging.getLogger(__name__)


class LedgerWriter:
    def __init__(self, path: Path, header: LedgerRun) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f: IO[bytes] | None = open(path, "wb")  # noqa: SIM115 -- open for the run, closed by close()
        self._marks: dict[int, tuple[bytes, deque[InjectedFault]]] = {}
        self.counts: Counter[str] = Counter()
        self._write(dump_line(header))
        self._f.flush()

    def _write(self, data: bytes) -> None:
        if self._f is not None:
            self._f.write(data)

    def mark(self, value: bytes, fault: InjectedFault) -> None:
        entry = self._marks.get(id(value))
        if entry is None:
            entry = self._marks[id(value)] = (value, deque())
        entry[1].append(fault)

    def written(self, recs: list[tuple[bytes | None, bytes]], partition: int, base_offset: int) -> None:
        """The batch `recs` is in Kafka from `base_offset` of `partition`: a line per marked record.
        (A failed batch writes nothing: its records are marked still when sent again.)"""
        if not self._marks:
            return
        for i, (_key, value) in enumerate(recs):
            entry = self._marks.get(id(value))
            if entry is None:
                continue
            fault = entry[1].popleft()
            if not entry[1]:
                del self._marks[id(value)]
            self.counts[fault.kind] += 1
            self._write(dump_line(fault.at(partition, base_offset + i)))

    @property
    def unconfirmed(self) -> int:
        return sum(len(q) for _, q in self._marks.values())

    def close(self, state: str, records: int, last_event_offset: int | None = None) -> None:
        if self._f is None:
            return
        if self.unconfirmed:
            log.warning("ledger: %d injected records never acknowledged", self.unconfirmed, extra={"path": self.path})
        end = LedgerEnd(state=state, records=records, faults=dict(self.counts), last_event_offset=last_event_offset)
        self._write(dump_line(end))
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        self._f = None
        fsync_dir(self.path.parent)


def oldest_past(ledgers: list[tuple[float, str]], keep: int) -> list[str]:
    """The names of the ledgers (mtime, name) older than the newest `keep` (ties: by name)."""
    return [name for _, name in sorted(ledgers, reverse=True)[max(keep, 0) :]]


def prune_ledgers(runs_dir: Path, keep: int) -> list[str]:
    """Remove the run ledgers of `runs_dir` older than the newest `keep` (GENERATOR_KEEP_RUNS, the
    run about to start not counted); returns their names. Never raises: what cannot be removed is
    logged and left."""
    try:
        ledgers = [(e.stat().st_mtime, e.name) for e in os.scandir(runs_dir) if e.name.endswith(".jsonl")]
    except FileNotFoundError:
        return []
    except OSError as e:
        log.warning("run ledgers not pruned", extra={"path": str(runs_dir), "error": repr(e)})
        return []
    removed = []
    for name in oldest_past(ledgers, keep):
        try:
            (runs_dir / name).unlink()
        except FileNotFoundError:
            continue
        except OSError as e:
            log.warning("run ledger not pruned", extra={"path": str(runs_dir / name), "error": repr(e)})
            continue
        removed.append(name)
    if removed:
        log.info("old run ledgers removed", extra={"path": str(runs_dir), "removed": len(removed), "kept": keep})
    return removed
