"""`verify --run` as pure logic: a ledger written by the generator's writer, read back, checked
against merged rows and rejects; each kind of tampering makes the check fail."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from contract.ledger import InjectedFault, LedgerError, LedgerRun, ledger_path, read_ledger
from contract.verify_report import RunReport
from devicestream.run_check import check_run
from services.generator.ledger import LedgerWriter

T0, T_LATE, T_SKEW = "2026-11-29T06:00:00.000001Z", "2026-11-29T05:59:00.500000Z", "2026-11-29T06:00:12.000000Z"


def _delivered(w: LedgerWriter, part: int, base: int, recs: list[tuple[bytes, bytes]]) -> None:
    w.written(recs, part, base)


def _ledger(tmp_path: Path, run_id: str = "abc123", shift: int = 0, span: tuple[int, int] | None = None) -> Path:
    """A run's ledger; `shift` moves its eventOffsets and Kafka offsets (another run of the same
    seed: the same eventIds elsewhere), `span` its eventOffset range (None: a ledger from before)."""
    path = ledger_path(tmp_path, run_id)
    first = span[0] + shift if span else None
    header = LedgerRun(run_id=run_id, topic="t", started_at=0.0, seed=1, params={"rate": 10}, first_event_offset=first)
    w = LedgerWriter(path, header)
    bad, late, skew, again, plain = b"", b'{"late"}', b'{"skew"}', b'{"again"}', b"{}"
    w.mark(bad, InjectedFault(kind="invalid", index=0, invalid_kind="empty", expected_reason="empty value"))
    w.mark(late, InjectedFault(kind="late", index=1, event_offset=11 + shift, event_time=T_LATE, readings=2))
    w.mark(skew, InjectedFault(kind="skewed", index=2, event_offset=12 + shift, event_time=T_SKEW, readings=1))
    w.mark(
        again,
        InjectedFault(
            kind="resend",
            index=4,
            event_offset=14 + shift,
            event_id="e10",
            readings=1,
            original_event_offset=10 + shift,
        ),
    )
    _delivered(w, 0, 100 + shift, [(b"k", plain), (b"k", bad), (b"k", late)])
    _delivered(w, 1, 7 + shift, [(b"k", skew), (b"k", again)])
    assert w.unconfirmed == 0
    w.close("completed", 5, span[1] + shift if span else None)
    return path


MERGED = pl.DataFrame(
    {
        "eventId": ["e10", "e11", "e11", "e12", "e14"],
        "eventOffset": ["10", "11", "11", "12", "14"],
        "eventTime": [T0, T_LATE, T_LATE, T_SKEW, T0],
    }
).with_columns(pl.col("eventId").replace({"e14": "e10"}))
REJECTS = pl.DataFrame({"partition": [0], "offset": [101], "reason": ["empty value"]})


def test_clean_run_passes(tmp_path: Path) -> None:
    ledger = read_ledger(_ledger(tmp_path))
    assert [(f.kind, f.partition, f.offset) for f in ledger.faults] == [
        ("invalid", 0, 101),
        ("late", 0, 102),
        ("skewed", 1, 7),
        ("resend", 1, 8),
    ]
    report = check_run(ledger, MERGED, REJECTS)
    assert report.ok, report.model_dump()
    assert report.faults == {"invalid": 1, "late": 1, "skewed": 1, "resend": 1}
    assert RunReport.model_validate_json(report.to_json()) == report  # what --run --json prints


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (T_LATE, "2026-11-29T05:59:00.500001Z", "timed_wrong_event_time"),
        ('"offset":101', '"offset":102', "invalid_not_rejected"),
        ('"expected_reason":"empty value"', '"expected_reason":"not JSON"', "invalid_wrong_reason"),
        ('"original_event_offset":10', '"original_event_offset":13', "resent_wrong_count"),
        ('"event_offset":12', '"event_offset":13', "timed_not_merged"),
        ('"late":1', '"late":2', "ledger_counts_disagree"),
    ],
)
def test_tampered_ledger_fails(tmp_path: Path, old: str, new: str, problem: str) -> None:
    path = _ledger(tmp_path)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    report = check_run(read_ledger(path), MERGED, REJECTS)
    assert not report.ok and report.problems[problem] >= 1, report.model_dump()


def test_pipeline_losing_a_resend_fails(tmp_path: Path) -> None:
    report = check_run(read_ledger(_ledger(tmp_path)), MERGED.filter(pl.col("eventOffset") != "14"), REJECTS)
    assert report.problems["resent_wrong_count"] == 1


def test_incomplete_or_foreign_ledger(tmp_path: Path) -> None:
    path = _ledger(tmp_path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    assert check_run(read_ledger(path), MERGED, REJECTS).problems["ledger_incomplete"] == 1
    path.write_text('{"type": "fault"}\n')
    with pytest.raises(LedgerError):
        read_ledger(path)
    with pytest.raises(LedgerError):
        ledger_path(tmp_path, "../etc/passwd")
    with pytest.raises(LedgerError, match="no ledger"):
        read_ledger(tmp_path / "nope.jsonl")


def test_resend_of_a_record_made_before_a_restart(tmp_path: Path) -> None:
    # a run continued with first_index re-sends content whose first record it did not make itself
    path = _ledger(tmp_path)
    path.write_text(path.read_text().replace(',"original_event_offset":10', ""))
    assert check_run(read_ledger(path), MERGED, REJECTS).ok
    twice = pl.concat(
        [MERGED, MERGED.filter(pl.col("eventOffset") == "10").with_columns(pl.lit("13").alias("eventOffset"))]
    )
    assert check_run(read_ledger(path), twice, REJECTS).problems["resent_wrong_count"] == 1


def _shifted(frame: pl.DataFrame, shift: int) -> pl.DataFrame:
    return frame.with_columns((pl.col("eventOffset").cast(pl.Int64) + shift).cast(pl.String))


def test_two_runs_of_the_same_seed_each_check_their_own_rows(tmp_path: Path) -> None:
    # the second run makes the same eventIds (same seed) under its own eventOffsets (20..24)
    first = read_ledger(_ledger(tmp_path, "aaa111", span=(10, 14)))
    second = read_ledger(_ledger(tmp_path, "bbb222", shift=10, span=(10, 14)))
    both = pl.concat([MERGED, _shifted(MERGED, 10)])
    rejects = pl.concat([REJECTS, REJECTS.with_columns(pl.col("offset") + 10)])
    assert check_run(first, both, rejects).ok, check_run(first, both, rejects).model_dump()
    assert check_run(second, both, rejects).ok, check_run(second, both, rejects).model_dump()
    # by eventId alone (a ledger without its range) the second run's re-send is counted four times
    unranged = read_ledger(_ledger(tmp_path, "ccc333", shift=10))
    assert check_run(unranged, both, rejects).problems["resent_wrong_count"] == 1
    # a run's own rows still count: its re-send lost is found, whatever the other run merged
    lost = both.filter(pl.col("eventOffset") != "24")
    assert check_run(second, lost, rejects).problems["resent_wrong_count"] == 1
    assert check_run(first, lost, rejects).ok


def test_an_incomplete_ledger_counts_from_its_first_event_offset(tmp_path: Path) -> None:
    path = _ledger(tmp_path, "ddd444", shift=10, span=(10, 14))
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    ledger = read_ledger(path)
    assert ledger.event_offsets() == (20, None)
    report = check_run(ledger, pl.concat([MERGED, _shifted(MERGED, 10)]), REJECTS.with_columns(pl.col("offset") + 10))
    assert report.problems["ledger_incomplete"] == 1 and report.problems["resent_wrong_count"] == 0


def test_a_resend_of_a_record_made_before_a_restart_with_the_runs_range(tmp_path: Path) -> None:
    # the run continues at eventOffset 11: the original (10) is another run's, merged once, outside
    path = _ledger(tmp_path, span=(11, 14))
    path.write_text(path.read_text().replace(',"original_event_offset":10', ""))
    assert check_run(read_ledger(path), MERGED, REJECTS).ok
    assert (
        check_run(read_ledger(path), MERGED.filter(pl.col("eventOffset") != "10"), REJECTS).problems[
            "resent_wrong_count"
        ]
        == 1
    )
