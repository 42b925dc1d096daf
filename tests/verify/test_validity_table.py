"""The shared validity table (tests/validity_cases.py) through what `devicestream verify` runs."""

from __future__ import annotations

import pytest

from devicestream.validity import Invalid, expected_rows
from tests.validity_cases import CASES, Case


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verify_decides_as_the_table_says(case: Case) -> None:
    if case.reason is not None:
        with pytest.raises(Invalid) as e:
            expected_rows(case.value)
        assert str(e.value) == case.reason
    else:
        rows = expected_rows(case.value)
        assert len(rows) == case.rows
        assert all(r[4] == case.event_time for r in rows)
