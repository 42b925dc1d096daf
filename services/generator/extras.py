"""What a run asks for beyond rate/count/duration/seed/invalid_ratio (a rate profile, a fleet,
faults, a first index), and the per-run objects that serve it: the pacing curve, the record maker
and the ledger. The run loop (engine.py) calls in at a few marked hooks only."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.generator_options import FaultOptions, FleetOptions
from contract.ledger import LedgerRun
from services.generator.faults import RecordMaker
from services.generator.keys import PartitionKey
from services.generator.ledger import LedgerWriter
from services.generator.profiles import AnyProfile, Constant, Curve, ProfileController, curve_of


@dataclass(frozen=True)
class RunExtras:
    profile: AnyProfile | None = None
    fleet: FleetOptions | None = None
    faults: FaultOptions | None = None
    first_index: int = 0

    def public(self) -> dict[str, Any]:
        return {
            "profile": self.profile.model_dump() if self.profile else None,
            "fleet": self.fleet.model_dump() if self.fleet else None,
            "faults": self.faults.model_dump() if self.faults else None,
            "first_index": self.first_index,
        }


def curve_for(rate: float, extras: RunExtras | None) -> Curve:
    return curve_of(extras.profile) if extras is not None and extras.profile is not None else Constant(rate)


def make_controller(rate: float, extras: RunExtras | None, now: float, max_lag_s: float) -> ProfileController:
    return ProfileController(curve_for(rate, extras), now, max_lag_s=max_lag_s)


class RunTools:
    """One run's ledger, and its record maker when the run needs more than the fast path."""

    def __init__(
        self,
        *,
        run_id: str,
        topic: str,
        runs_dir: Path,
        seed: int,
        invalid_ratio: float,
        extras: RunExtras | None,
        params: dict[str, Any],
        started_at: float,
        first_event_offset: int | None = None,
        key_by: PartitionKey = "customerId",
    ) -> None:
        ex = extras or RunExtras()
        header = LedgerRun(
            run_id=run_id,
            topic=topic,
            started_at=started_at,
            seed=seed,
            first_index=ex.first_index,
            params=params,
            first_event_offset=first_event_offset,
        )
        self.ledger = LedgerWriter(runs_dir / f"{run_id}.jsonl", header)
        needs_maker = bool(invalid_ratio or ex.fleet or ex.faults or ex.first_index)
        self.maker = (
            RecordMaker(seed, invalid_ratio=invalid_ratio, fleet=ex.fleet, faults=ex.faults, key_by=key_by)
            if needs_maker
            else None
        )
        if self.maker is not None and ex.first_index:
            self.maker.skip(ex.first_index, time.time_ns())

    def make(self, take_offset: Any) -> tuple[bytes | None, bytes, int | None]:
        """The next record (key, value, eventOffset or None when malformed); a fault is marked for
        the ledger."""
        assert self.maker is not None
        key, value, off, fault = self.maker.make(lambda: take_offset(1), time.time_ns())
        if fault is not None:
            self.ledger.mark(value, fault)
        return key, value, off

    def close(self, state: str, records: int, last_event_offset: int | None = None) -> None:
        self.ledger.close(state, records, last_event_offset)
