"""Freshness at one steady rate, with its phases, in a few minutes: the e2e bench stage's freshness
measurement alone (the whole pipeline with `devicestream up` on free ports, a priming run, then a
measured run). For work on the per-batch overhead; the figures of record come from `make bench`.

    PYTHONPATH=$PWD .venv/bin/python scripts/freshness_probe.py --rate 1000 --prime 90 --window 60

Prints freshness p50/p99 of the measured window, the row phases, the Spark sink's batch
durations over the measured window (from logs/spark.log), each component's CPU and peak RSS."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.e2e_checks import stack_cpu
from bench.e2e_phases import batch_phases, committed_at, progress_events, row_phases, row_phases_text
from bench.spark_breakdown import sink_batches
from bench.stack import stack
from bench.stage_e2e import DRAIN_LIMIT_S, Driver, stack_env, trigger_s
from bench.tail import MergedTail


def sink_durations(log: Path, first_batch: int) -> list[tuple[int, ...]]:
    """(duration, prepare, Spark job, commit) ms of each batch from the `first_batch`-th committed on."""
    batches = sink_batches(log.read_text(errors="replace"))[first_batch:]
    return [(b.prepare_ms + b.spark_ms + b.commit_ms, b.prepare_ms, b.spark_ms, b.commit_ms) for b in batches]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--prime", type=float, default=90)
    ap.add_argument("--prime-rate", type=float, help="the priming run's rate (default: --rate)")
    ap.add_argument("--window", type=float, default=60)
    ap.add_argument("--jfr", type=Path, help="record the Spark JVM with Java Flight Recorder during the window")
    ap.add_argument("--java-options", default="", help="more options for the Spark JVM (e.g. -Xlog:class+load)")
    ap.add_argument(
        "--conf",
        action="append",
        default=[],
        help="a Spark setting for the job, KEY=VALUE (repeatable; into spark-defaults.conf, so what "
        "spark_job/session.py sets itself wins)",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="freshness-probe-") as tmp:
        work = Path(tmp)
        conf = work / "spark-conf"
        conf.mkdir()
        events_dir = work / "spark-events"
        events_dir.mkdir()
        defaults = f"spark.eventLog.enabled true\nspark.eventLog.dir file://{events_dir}\n"
        java = args.java_options
        if args.jfr:  # from the end of the priming run (the stack's start takes ~20 s) for the window
            recording = f"delay={args.prime + 25:.0f}s,duration={args.window:.0f}s,filename={args.jfr.resolve()}"
            java += f" -XX:StartFlightRecording={recording},settings=profile"
        for kv in args.conf:
            key, _, value = kv.partition("=")
            defaults += f"{key} {value}\n"
        if java.strip():
            defaults += f"spark.driver.extraJavaOptions {java.strip()}\n"
        (conf / "spark-defaults.conf").write_text(defaults)
        with stack(work / "data", stack_env(conf)) as st:
            tail = MergedTail(st.data / "merger" / "merged.csv", t0=time.time())
            tail.start()
            try:
                drv = Driver(st, tail)
                drv.run(args.prime_rate or args.rate, args.prime)
                drv.drain_s(DRAIN_LIMIT_S)
                log = st.data / "logs" / "spark.log"
                first_batch = len(sink_batches(log.read_text(errors="replace")))
                t_from = time.time() - tail.t0 + 5
                tail.keep_rows = True
                cpu0, w0 = stack_cpu(st), time.monotonic()
                drv.new_window()
                drv.run(args.rate, args.window)
                cpu1, w1 = stack_cpu(st), time.monotonic()
                drain = drv.drain_s(DRAIN_LIMIT_S)
                peak_rss = drv.window_rss_mb()
                t_to = time.time() - tail.t0 + 1
                (p50, p99), rows = tail.quantiles(t_from, t_to, (0.5, 0.99))
                durs = sink_durations(log, first_batch)
                progress = progress_events(events_dir)
                batches = batch_phases(progress, tail.t0 + t_from, tail.t0 + t_to, trigger_s())
                phases = row_phases(
                    tail.kept,
                    progress,
                    committed_at(st.data / "logs"),
                    st.data / "merger" / "journal.jsonl",
                    tail.t0 + t_from,
                    tail.t0 + t_to,
                )
            finally:
                tail.stop()
    cpu = {k: round((cpu1.get(k, 0) - v) / (w1 - w0), 2) for k, v in cpu0.items()}
    lines = [
        f"rate {args.rate:,.0f}/s, {rows:,} rows: freshness p50 {p50:.3f} s, p99 {p99:.3f} s; drained in {drain:.1f} s",
        row_phases_text(args.rate, phases),
        batches,
    ]
    if len(durs) > 1:
        p50s = [statistics.median(d[i] for d in durs) for i in range(4)]
        p90 = statistics.quantiles([d[0] for d in durs], n=10)[-1]
        lines.append(
            f"sink: {len(durs)} batches, duration p50 {p50s[0]:.0f} ms (prepare {p50s[1]:.0f}, Spark job "
            f"{p50s[2]:.0f}, commit {p50s[3]:.0f}), p90 {p90:.0f} ms"
        )
    lines.append(f"CPU cores: {cpu}")
    lines.append(f"peak RSS over the window and its drain (MB, process trees): {peak_rss}")
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
