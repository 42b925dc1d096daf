"""Test tiers by explicit markers.

A test that starts real processes (a broker, Spark, a service, a whole stack, containers) says so:
its module sets `pytestmark = pytest.mark.integration`, or the test carries the mark. Every other
test is `unit` (`make test-unit`: pure, no process, no network).

A fixture that starts processes is declared with `@starts_processes` (under `@pytest.fixture`).
A test that reaches one, directly or through another fixture, without the `integration` mark fails
at collection, naming the fixture: the unit tier never starts a broker by accident, and no list of
fixture names is kept by hand."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest

F = TypeVar("F", bound=Callable[..., Any])

_FLAG = "_devicestream_starts_processes"


def starts_processes(func: F) -> F:
    """Declare a fixture function as one that starts real processes."""
    setattr(func, _FLAG, True)
    return func


def process_fixtures_of(item: pytest.Item) -> list[str]:
    """The fixtures `item` reaches that start processes (its whole closure)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return sorted(
        name for name, defs in info.name2fixturedefs.items() if any(getattr(d.func, _FLAG, False) for d in defs)
    )


def assign_tiers(items: Sequence[pytest.Item]) -> None:
    """Mark each test `unit` unless it is marked `integration`; refuse an unmarked test that
    reaches a process-starting fixture."""
    wrong: list[str] = []
    for item in items:
        if item.get_closest_marker("integration"):
            continue
        starters = process_fixtures_of(item)
        if starters:
            wrong.append(f"{item.nodeid} uses {', '.join(starters)}")
        item.add_marker(pytest.mark.unit)
    if wrong:
        raise pytest.UsageError(
            "tests that start processes must be marked integration "
            "(`pytestmark = pytest.mark.integration` in the module, or on the test):\n  " + "\n  ".join(wrong)
        )
