"""The end-to-end stage's memory figures: Spark's and the merger's peak RSS at the sustained rate,
judged against issue #25's bounds, with the whole-stage peak (overloaded probes included) beside."""

from __future__ import annotations

from bench.e2e_checks import rss_figures

FRESH = {"rate": 1000.0, "seconds": 60, "peak_rss_mb": {"spark": 900, "merger": 150}}


def _run(rate: float, ok: bool, spark: float, merger: float) -> dict:
    return {"rate": rate, "seconds": 300, "ok": ok, "peak_rss_mb": {"merger": merger, "spark": spark}}


def test_memory_is_judged_at_the_rate_that_held_not_over_the_overloaded_runs() -> None:
    held = _run(40_000, True, 1200, 250)
    figs = rss_figures(held, held, FRESH, {"spark": 1555.0, "merger": 318.0})
    by_name = {f.name: f for f in figs}
    spark = by_name["Spark peak RSS at the sustained rate"]
    merger = by_name["merger peak RSS at the sustained rate"]
    assert (spark.value.median, spark.met) == (1200, True)
    assert (merger.value.median, merger.met) == (250, True)
    assert spark.baseline is not None and spark.baseline.median == 900
    assert any("40,000 events/s that held" in n for n in spark.notes)
    assert any("spark 1,555" in n for n in spark.notes)


def test_no_held_rate_is_said_and_the_bound_still_judged() -> None:
    top = _run(80_000, False, 1600, 320)
    figs = rss_figures(None, top, FRESH, {})
    assert [f.met for f in figs] == [False, False]
    assert all(any("NO rate held" in n for n in f.notes) for f in figs)


def test_nothing_to_report_without_a_run() -> None:
    assert rss_figures(None, None, FRESH, {}) == []
