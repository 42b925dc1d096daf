"""`devicestream up`'s options reach the launcher's settings (without starting anything)."""

from __future__ import annotations

import pytest

from tests.helpers import devicestream_cli

pytestmark = pytest.mark.integration  # runs the CLI as a process


def test_up_partitions_is_the_topic_partitions_setting(tmp_path) -> None:
    """--partitions N is DEVICESTREAM_TOPIC_PARTITIONS: a bad value is refused naming the setting,
    before anything starts."""
    env = {"DEVICESTREAM_DATA_DIR": str(tmp_path / "data")}
    res = devicestream_cli("up", "--partitions", "0", env=env, timeout=60)
    assert res.returncode == 2, res.stderr
    assert "invalid setting" in res.stderr and "topic_partitions" in res.stderr
    res = devicestream_cli("up", "--partitions", "twelve", env=env, timeout=60)
    assert res.returncode == 2 and "--partitions" in res.stderr  # argparse's own refusal
    assert not (tmp_path / "data").exists()
