"""One run's ledger (contract/ledger.py, written by ledger.py) and, when the run asks for more
than the plain fast path (a fleet, faults, invalid records, a first index), the record maker
whose faults it records. The run loop (run_loop.py) makes records through it; delivery
(delivery.py) tells it where acknowledged batches landed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from contract.api import RunParams
from contract.ledger import LedgerRun
from services.generator.batching import Record
from services.generator.faults import RecordMaker
from services.generator.keys import PartitionKey
from services.generator.ledger import LedgerWriter


class RunLedger:
    """The ledger of one run (header at the start, a line per injected record once in Kafka, the
    end line), and the run's record maker when it needs one (`maker`, else None: the fast path)."""

    def __init__(
        self,
        *,
        run_id: str,
        topic: str,
        runs_dir: Path,
        seed: int,
        params: RunParams,
        started_at: float,
        first_event_offset: int | None = None,
        key_by: PartitionKey = "customerId",
    ) -> None:
        header = LedgerRun(
            run_id=run_id,
            topic=topic,
            started_at=started_at,
            seed=seed,
            first_index=params.first_index,
            params=params,  # what the start asked for
            first_event_offset=first_event_offset,
        )
        self.writer = LedgerWriter(runs_dir / f"{run_id}.jsonl", header)
        p = params
        needs_maker = bool(p.invalid_ratio or p.fleet or p.faults or p.first_index)
        self.maker = (
            RecordMaker(seed, invalid_ratio=p.invalid_ratio, fleet=p.fleet, faults=p.faults, key_by=key_by)
            if needs_maker
            else None
        )
        if self.maker is not None and p.first_index:
            self.maker.skip(p.first_index, time.time_ns())

    def make(self, take_offset: Callable[[int], int]) -> tuple[bytes | None, bytes, int | None]:
        """The next record (key, value, eventOffset or None when malformed); a fault is marked for
        the ledger."""
        assert self.maker is not None
        key, value, off, fault = self.maker.make(lambda: take_offset(1), time.time_ns())
        if fault is not None:
            self.writer.mark(value, fault)
        return key, value, off

    def written(self, recs: list[Record], partition: int, base_offset: int) -> None:
        """The batch `recs` is in Kafka from `base_offset` of `partition` (ledger.py)."""
        self.writer.written(recs, partition, base_offset)

    def close(self, state: str, records: int, last_event_offset: int | None = None) -> None:
        self.writer.close(state, records, last_event_offset)
