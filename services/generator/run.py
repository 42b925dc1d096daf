"""One generator run in this process (`LiveRun`): what it was asked for (contract.api.RunParams),
its state, counters and delivery bookkeeping, and what the API shows of it (`LiveRun.document`,
a contract.api.Run).

The state changes only through `Run.change_state`: between running and degraded while the run is
active, then once to completed, stopped or failed. The rate the run asks for has one home, its
controller (it follows a profile's curve and takes `PUT /generator/rate`); `params.rate` is what
the start asked for (a profile's highest rate)."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Literal

from contract.api import Run, RunParams
from services.generator.batching import Record
from services.generator.in_doubt import Doubtful
from services.generator.profiles import Constant, Curve, ProfileController, curve_of
from services.generator.run_ledger import RunLedger

RunState = Literal["running", "degraded", "completed", "stopped", "failed"]
ACTIVE_STATES: frozenset[RunState] = frozenset({"running", "degraded"})


def curve_for(params: RunParams) -> Curve:
    """The curve a run's pace follows: its profile's, or its constant rate."""
    return curve_of(params.profile) if params.profile is not None else Constant(params.rate)


@dataclass
class LiveRun:
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
    ledger: RunLedger | None = None  # the run's ledger, and its record maker if it needs one
    task: asyncio.Task | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    #: the run loop waits for deliveries (in flight at the limit, or ending): each one wakes it. While
    #: the loop is on schedule a successful delivery does not (hundreds a second at low rates).
    wake_on_delivery: bool = True
    retry: deque[Record] = field(default_factory=deque)  # records to send again
    #: failed batches that may be in Kafka: settled (read back) before anything is sent again
    in_doubt: list[Doubtful] = field(default_factory=list)
    pending: OrderedDict[int, float] = field(default_factory=OrderedDict)  # batch seq -> monotonic send time
    samples: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=150))  # (monotonic, acknowledged)

    @classmethod
    def begin(cls, params: RunParams, *, max_lag_s: float) -> LiveRun:
        """A new run, running from now."""
        controller = ProfileController(curve_for(params), time.monotonic(), max_lag_s=max_lag_s)
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

    def document(self) -> Run:
        """The run as the API shows it: `params.rate` is what it asks for now."""
        rate = self.requested_rate(time.monotonic())
        params = self.params.model_copy(update={"rate": rate}) if rate != self.params.rate else self.params
        return Run(id=self.id, state=self.state, params=params, started_at=self.started_at, ended_at=self.ended_at)

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
