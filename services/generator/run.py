"""One generator run: what it was asked for (`RunParams`), its state, counters and delivery
bookkeeping (`Run`), and what the API shows of it (`Run.public`).

The state changes only through `Run.change_state`: between running and degraded while the run is
active, then once to completed, stopped or failed. The rate the run asks for has one home, its
controller (it follows a profile's curve and takes `PUT /generator/rate`); `RunParams.rate` is what
the start asked for."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from contract.api import GeneratorStatus
from services.generator.batching import Record
from services.generator.extras import RunExtras, RunTools, make_controller
from services.generator.in_doubt import Doubtful
from services.generator.profiles import ProfileController

RunState = Literal["running", "degraded", "completed", "stopped", "failed"]
ACTIVE_STATES: frozenset[RunState] = frozenset({"running", "degraded"})


@dataclass(frozen=True)
class RunParams:
    rate: float
    count: int | None = None
    duration_s: float | None = None
    seed: int | None = None
    invalid_ratio: float = 0.0
    extras: RunExtras | None = None  # profile, fleet, faults, first_index


@dataclass
class Run:
    id: str
    params: RunParams
    started_at: float
    #: the one holder of the rate the run asks for; its schedule starts when the run loop does
    controller: ProfileController
    state: RunState = "running"
    ended_at: float | None = None
    #: monotonic time of the end: the requested rate shown after the end is the one at the end
    ended_clock: float | None = None
    sent: int = 0
    acknowledged: int = 0
    invalid: int = 0
    delivery_errors: int = 0
    offset_first: int | None = None
    offset_last: int | None = None
    made: int = 0
    in_flight: int = 0
    stop_requested: bool = False
    stop_deadline: float | None = None
    #: events made but never handed to the producer: the stop deadline passed first
    abandoned: int = 0
    tools: RunTools | None = None  # ledger and record maker
    task: asyncio.Task | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    retry: deque[Record] = field(default_factory=deque)  # records to send again
    #: failed batches that may be in Kafka: settled (read back) before anything is sent again
    in_doubt: list[Doubtful] = field(default_factory=list)
    pending: OrderedDict[int, float] = field(default_factory=OrderedDict)  # batch seq -> monotonic send time
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=150))  # (monotonic, acknowledged)

    @classmethod
    def begin(cls, params: RunParams, *, max_lag_s: float) -> Run:
        """A new run, running from now."""
        controller = make_controller(params.rate, params.extras, time.monotonic(), max_lag_s)
        return cls(id=uuid.uuid4().hex[:12], params=params, started_at=time.time(), controller=controller)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def change_state(self, state: RunState) -> bool:
        """The one way the state changes: between running and degraded while the run is active,
        and once to a final state (completed, stopped, failed), which ends the run. Returns False
        (and changes nothing) when the run has ended already or is in `state`."""
        if not self.active or state == self.state:
            return False
        self.state = state
        if state not in ACTIVE_STATES:
            self.ended_at = time.time()
            self.ended_clock = time.monotonic()
        return True

    def requested_rate(self, now: float) -> float:
        """The rate the run asks for at `now` (monotonic), or at its end once it has ended."""
        return self.controller.rate_now(now if self.ended_clock is None else self.ended_clock)

    def public_params(self, rate: float) -> dict[str, Any]:
        p = self.params
        return {
            "rate": rate,
            "count": p.count,
            "duration_s": p.duration_s,
            "seed": p.seed,
            "invalid_ratio": p.invalid_ratio,
            **(p.extras.public() if p.extras is not None else {}),
        }

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "params": self.public_params(self.requested_rate(time.monotonic())),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }

    def stop_overdue(self) -> bool:
        """A stop was asked for and its deadline (the flush timeout) has passed."""
        return self.stop_requested and time.monotonic() >= (self.stop_deadline or math.inf)

    @property
    def not_delivered(self) -> int:
        """Events made and not acknowledged: never handed over, or handed over and unconfirmed
        (those may still be written by the producer once Kafka answers), or failed and not settled."""
        return self.abandoned + self.in_flight + len(self.retry) + self.doubtful

    @property
    def doubtful(self) -> int:
        """Records of failed batches not settled yet (in Kafka or not: not known)."""
        return sum(len(d.records) for d in self.in_doubt)

    def rate_over(self, window_s: float, now: float) -> float:
        ref = None
        for t, n in self.samples:
            if t >= now - window_s - 1e-9:
                ref = (t, n)
                break
        if ref is None or now - ref[0] <= 0:
            return 0.0
        return (self.acknowledged - ref[1]) / (now - ref[0])


def run_status(
    run: Run | None, *, topic: str, connected: bool, next_offset: int | None, last_error: str | None
) -> GeneratorStatus:
    """The generator's status document (GET /generator/status) for its current run, if any."""
    now = time.monotonic()
    base: dict[str, Any] = {
        "state": run.state if run is not None else "idle",
        "run": run.public() if run is not None else None,
        "topic": topic,
        "connected": connected,
        "sent": 0,
        "acknowledged": 0,
        "invalid": 0,
        "delivery_errors": 0,
        "in_flight": 0,
        "rate_1s": 0.0,
        "rate_10s": 0.0,
        "rate_requested": 0.0,  # what the run (its profile) asks for now; rate_1s is achieved
        "offset_first": None,
        "offset_last": None,
        "not_delivered": 0,
        "next_offset": next_offset,
        "last_error": last_error,
    }
    if run is not None:
        active = run.active
        base.update(
            sent=run.sent,
            acknowledged=run.acknowledged,
            invalid=run.invalid,
            delivery_errors=run.delivery_errors,
            in_flight=run.in_flight,
            rate_1s=round(run.rate_over(1.0, now), 3) if active else 0.0,
            rate_10s=round(run.rate_over(10.0, now), 3) if active else 0.0,
            rate_requested=round(run.requested_rate(now), 3) if active else 0.0,
            offset_first=run.offset_first,
            offset_last=run.offset_last,
            not_delivered=run.not_delivered if not active else 0,
        )
    return GeneratorStatus.model_validate(base)
