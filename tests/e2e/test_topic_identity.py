"""The Spark job's topic identity and memory bounds, end to end on one real stack (`devicestream up`):

1. a topic recreated while the job is down, and written past the old checkpoint's offsets, ends in
   the documented refusal: one line (progress.json lastError, `devicestream status`, /status), no
   restart loop; verify names the records not merged (topic, partition, [from, to)); then
   `devicestream reset-checkpoint`, the launcher starts the job again, and verify exits 0.
2. a few valid records whose values are ~1 MB of empty readings (~330,000 rows each) go through
   the real job by the per-partition writer (over the one-task path's byte budget), are merged, and
   verify exits 0.

The old topic of scenario 1 holds events without readings only: merged.csv keeps the rows of a
topic that no longer exists (the merger's concern), and verify, which reads the topic, would count
them as unexpected. They run in file order and share the stack."""

from __future__ import annotations

import re
from collections.abc import Iterator

import orjson
import pytest

from contract.checkpoint_topic import FILE_NAME, read_checkpoint_topic
from contract.layout import DataLayout
from contract.progress import read_progress_or_none
from contract.verify_report import VerifyReport
from tests.e2e.conftest import Stack, running_stack
from tests.helpers import devicestream_cli, produce, recreate_topic, wait_for
from tests.tiers import starts_processes

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1500)]

TOPIC = "device-events"
KEY = b"CI00100"  # every record on one partition
#: every batch takes the per-partition path (the default takes one task below 20,000 records): the
#: job's log says which, so the tests see the launcher's environment reach the job
SINGLE_TASK_BELOW = 0


@pytest.fixture(scope="module")
@starts_processes
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The launcher passes its environment to the components: the job reads SPARK_JOB_SINGLE_TASK_BELOW."""
    settings = {"SPARK_JOB_SINGLE_TASK_BELOW": str(SINGLE_TASK_BELOW)}
    with running_stack(tmp_path_factory.mktemp("e2e-identity"), **settings) as st:
        yield st


def _event(offset: int, devices: list[dict]) -> bytes:
    return orjson.dumps(
        {
            "eventId": f"identity-{offset}",
            "eventOffset": offset,
            "eventPublisher": "device",
            "customerId": "CI00100",
            "data": {"devices": devices},
            "eventTime": "2026-11-28T03:33:11.123456Z",
        }
    )


def _reading(i: int) -> dict:
    return {"deviceId": f"D{i:03d}", "temperature": i, "measure": "C", "status": "SUCCESS"}


def _spark_read(stack: Stack, records: int) -> bool:
    doc = read_progress_or_none(DataLayout(stack.data).spark_progress)
    return doc is not None and sum(doc.partition_offsets().values()) >= records


def _recreate(stack: Stack) -> None:
    recreate_topic(stack.bootstrap, TOPIC)


def _verify_json(stack: Stack) -> tuple[int, VerifyReport]:
    res = devicestream_cli("verify", "--json", env=stack.env, timeout=600)
    return res.returncode, VerifyReport.model_validate_json(res.stdout)


def test_1_recreated_topic_past_the_old_offsets_is_refused_then_reset(stack: Stack) -> None:
    layout = DataLayout(stack.data)
    old = 40
    produce(stack.bootstrap, TOPIC, [_event(7 * 10**12 + i, []) for i in range(old)], key=KEY)
    wait_for(lambda: _spark_read(stack, old), 240, "Spark to read the old topic", logs=stack.logs("spark"))
    recorded = read_checkpoint_topic(layout.spark_checkpoint)
    assert recorded is not None and recorded.topic == TOPIC  # recorded when the lineage started

    # the job is down while the topic is recreated and written past the old offsets (60 > 40)
    spark_pid = stack.kill("spark")
    _recreate(stack)
    new = 60
    produce(stack.bootstrap, TOPIC, [_event(8 * 10**12 + i, [_reading(i)]) for i in range(new)], key=KEY)

    def refused() -> str | None:
        c = stack.components()["spark"]
        return c.cause if c.state == "failed" and c.pid != spark_pid else None

    cause = wait_for(refused, 300, "the launcher to show spark refused", logs=stack.logs("spark"))
    progress = read_progress_or_none(layout.spark_progress)
    assert progress is not None and progress.state == "failed" and progress.last_error
    line = progress.last_error
    assert "\n" not in line and f"topic {TOPIC!r} was recreated (topic id {recorded.topic_id}, now" in line
    assert "run `devicestream reset-checkpoint`" in line
    assert cause == f"refused: {line}"
    status_out = devicestream_cli("status", env=stack.env).stdout
    assert line in status_out, status_out
    pipeline = stack.status()
    assert pipeline.components.spark.status == "down"
    assert f"spark: job failed: {line}" in pipeline.reasons
    # no crash loop: still failed, not restarted, once the gateway has shown it
    restarts = stack.components()["spark"].restarts
    assert stack.components()["spark"].state == "failed"

    # what was not read, by name: the new topic's records on their one partition
    code, report = _verify_json(stack)
    assert code == 1 and report.records_unaccounted == new, report
    (skipped,) = report.unaccounted_ranges
    assert (skipped.topic, skipped.start, skipped.end) == (TOPIC, 0, new)
    text = devicestream_cli("verify", env=stack.env, timeout=600).stdout
    assert f"not merged: topic {TOPIC!r} partition {skipped.partition} offsets [0, {new})" in text

    res = devicestream_cli("reset-checkpoint", env=stack.env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "moved the checkpoint aside" in res.stdout and recorded.topic_id in res.stdout
    assert not (layout.spark_checkpoint / FILE_NAME).exists()
    assert [p for p in layout.spark_dir.glob("checkpoint.before-reset-*") if (p / FILE_NAME).exists()]
    wait_for(
        lambda: stack.components()["spark"].state == "ready",
        300,
        "the launcher to start spark again after the reset",
        logs=stack.logs("spark"),
    )
    assert stack.components()["spark"].restarts == restarts + 1
    report = stack.verify(wait_s=300)
    assert report.records == new and report.rows_in_merged == new and not report.unaccounted_ranges
    now = read_checkpoint_topic(layout.spark_checkpoint)
    assert now is not None and now.topic_id != recorded.topic_id


def test_2_values_of_a_megabyte_of_empty_readings_are_merged(stack: Stack) -> None:
    """Each value ~1 MB of `{}` readings (valid: a reading may leave out every field; one row each)."""
    readings = 330_000
    values = [_event(9 * 10**12 + i, [{}] * readings) for i in range(3)]
    assert all(900_000 < len(v) < 1_000_000 for v in values)
    before = stack.merger_status().rows_merged
    produce(stack.bootstrap, TOPIC, values, key=KEY, max_request_size=2_000_000)
    wait_for(
        lambda: stack.merger_status().rows_merged >= before + 3 * readings,
        600,
        "the merger to merge the huge records' rows",
        logs=stack.logs("spark", "merger"),
        interval=1.0,
    )
    # the batches that carried them (rows_out above one value's readings) took the path the
    # launcher's environment set (SPARK_JOB_SINGLE_TASK_BELOW=0: per partition)
    log = (stack.data / "logs" / "spark.log").read_text(errors="replace")
    committed = [line for line in log.splitlines() if "batch committed" in line]
    huge = [line for line in committed if int(re.search(r"rows_out=(\d+)", line).group(1)) >= readings]
    assert huge and all("path=per partition" in line for line in huge), committed[-5:]
    report = stack.verify(wait_s=300)
    assert report.rows_in_merged == 60 + 3 * readings
