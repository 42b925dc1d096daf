"""A seeded device fleet (pure: state plus a random generator, no I/O, no clock).

Each customer owns a stable set of devices (the seed decides which). An event is one customer's
report: every device of it that is not silent gives a reading. Between two readings a device's
temperature moves by at most `max_temperature_step` and stays within the contract's bounds; its
status follows the state machine's transition probabilities; a device may go silent (no readings)
and come back.

Everything is drawn from the one random generator in a fixed order, so the same seed gives the
same sequence of reports."""

from __future__ import annotations

import random
from dataclasses import dataclass

from contract.events import CUSTOMER_IDS, MEASURE, TEMPERATURE_MAX, TEMPERATURE_MIN
from contract.generator_options import FleetOptions

SUCCESS, ERROR, STANDBY = "SUCCESS", "ERROR", "STANDBY"


def transitions(opts: FleetOptions) -> dict[str, tuple[tuple[str, float], ...]]:
    """For each status, the other statuses it may move to with their probabilities."""
    s = opts.status
    return {
        SUCCESS: ((ERROR, s.success_to_error), (STANDBY, s.success_to_standby)),
        ERROR: ((SUCCESS, s.error_to_success), (STANDBY, s.error_to_standby)),
        STANDBY: ((SUCCESS, s.standby_to_success), (ERROR, s.standby_to_error)),
    }


@dataclass
class Device:
    id: str
    customer: str
    temperature: int
    status: str
    silent: bool = False


class Fleet:
    def __init__(self, opts: FleetOptions, seed: int) -> None:
        self.opts = opts
        rng = random.Random(f"fleet:{seed}")  # the fleet's layout: independent of the event draws
        customers = CUSTOMER_IDS[: opts.customers]
        n = len(customers) * opts.devices_per_customer
        numbers = list(range(1, n + 1))
        rng.shuffle(numbers)
        width = max(3, len(str(n)))
        self.devices: dict[str, list[Device]] = {}
        for i, c in enumerate(customers):
            mine = sorted(numbers[i * opts.devices_per_customer : (i + 1) * opts.devices_per_customer])
            self.devices[c] = [
                Device(f"D{k:0{width}d}", c, rng.randint(TEMPERATURE_MIN, TEMPERATURE_MAX), SUCCESS) for k in mine
            ]
        self.customers = customers
        self._moves = transitions(opts)

    def owner(self) -> dict[str, str]:
        """deviceId -> its customer."""
        return {d.id: c for c, ds in self.devices.items() for d in ds}

    def report(self, rng: random.Random) -> tuple[str, list[dict]]:
        """The next report: (customerId, readings). Draws: customer, then per device of it: silence,
        and for a reporting device its temperature step and status transition."""
        rnd = rng.random
        o = self.opts
        customer = self.customers[int(rnd() * len(self.customers))]
        readings = []
        for d in self.devices[customer]:
            if d.silent:
                d.silent = rnd() >= o.wake_probability
            else:
                d.silent = rnd() < o.silent_probability
            if d.silent:
                continue
            step = int(rnd() * (2 * o.max_temperature_step + 1)) - o.max_temperature_step
            d.temperature = min(TEMPERATURE_MAX, max(TEMPERATURE_MIN, d.temperature + step))
            r, acc = rnd(), 0.0
            for to, p in self._moves[d.status]:
                acc += p
                if r < acc:
                    d.status = to
                    break
            readings.append({"deviceId": d.id, "temperature": d.temperature, "measure": MEASURE, "status": d.status})
        return customer, readings
