"""`python -m bench [--quick] [--only STAGE ...] [--out DIR]`: run the stages, write the report.

Exit status: 0 when every stage ran (targets met or not: misses are in the report with their
profiles), 1 when a stage errored (its error is in the report too), 2 on bad arguments."""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench import report
from bench.common import Config, StageResult, machine
from bench.ctx import RunContext


def _generator(ctx: RunContext) -> StageResult:
    from bench import stage_generator

    res = stage_generator.run(ctx.cfg, ctx.broker, ctx.work / "generator")
    ctx.shared["generator_events_per_s"] = res.figures[0].value
    return res


def _profiles(ctx: RunContext) -> StageResult:
    from bench import stage_profiles

    return stage_profiles.run(ctx.cfg, ctx.broker, ctx.work / "profiles")


def _spark(ctx: RunContext) -> StageResult:
    from bench import stage_spark

    return stage_spark.run(ctx.cfg, ctx.broker, ctx.work / "spark")


def _keys(ctx: RunContext) -> StageResult:
    from bench import stage_keys

    return stage_keys.run(ctx.cfg, ctx.broker, ctx.work / "keys")


def _merger(ctx: RunContext) -> StageResult:
    from bench import stage_merger

    return stage_merger.run(ctx.cfg)


def _segments(ctx: RunContext) -> StageResult:
    from bench import stage_segments

    return stage_segments.run(ctx.cfg)


def _e2e(ctx: RunContext) -> StageResult:
    from bench import stage_e2e

    return stage_e2e.run(ctx, ctx.work / "e2e")


def _gateway(ctx: RunContext) -> StageResult:
    from bench import stage_gateway

    return stage_gateway.run(ctx.cfg, ctx.work / "gateway")


def _query(ctx: RunContext) -> StageResult:
    from bench import stage_query

    return stage_query.run(ctx.cfg)


STAGES: dict[str, Callable[[RunContext], StageResult]] = {
    "generator": _generator,
    "profiles": _profiles,
    "spark": _spark,
    "keys": _keys,
    "merger": _merger,
    "segments": _segments,
    "e2e": _e2e,
    "gateway": _gateway,
    "query": _query,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes and short windows (< 3 minutes)")
    p.add_argument("--only", action="append", choices=list(STAGES), metavar="STAGE", help=f"one of {list(STAGES)}")
    p.add_argument("--out", type=Path, default=Path("bench/results"), help="results folder")
    p.add_argument("--keep-work", action="store_true", help="keep the temp work folder (logs, data)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # connection retries while brokers start/stop
    # SIGTERM (timeout, CI cancel) unwinds like Ctrl-C: every finally runs and stops what we started.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    cfg = Config(quick=args.quick, out=args.out)
    # The report is rewritten whole: the profiles next to it are this run's only.
    shutil.rmtree(cfg.profiles, ignore_errors=True)
    cfg.profiles.mkdir(parents=True, exist_ok=True)
    names = args.only or list(STAGES)
    started = time.time()
    doc = {
        "quick": cfg.quick,
        "stages_run": names,
        "started_at": datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "machine": machine(),
    }
    results: list[StageResult] = []
    work = Path(tempfile.mkdtemp(prefix="devicestream-bench-"))
    print(f"bench: {'quick' if cfg.quick else 'full'} run of {names}; work folder {work}", flush=True)
    try:
        with contextlib.ExitStack() as stack:
            ctx = RunContext(cfg, work, stack)
            for name in names:
                t0 = time.monotonic()
                print(f"bench: stage {name} ...", flush=True)
                try:
                    res = STAGES[name](ctx)
                except Exception as e:
                    traceback.print_exc()
                    res = StageResult(name, error=f"{type(e).__name__}: {e}")
                res.seconds = time.monotonic() - t0
                results.append(res)
                for f in res.figures:
                    print(f"  {report.figure_row(f)}", flush=True)
                status = f"ERROR {res.error}" if res.error else "done"
                print(f"bench: stage {name} {status} in {res.seconds:.0f}s", flush=True)
    finally:
        doc["duration_s"] = time.time() - started
        report.write(cfg.out, doc, results)
        if args.keep_work:
            print(f"bench: work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    failed = [r.stage for r in results if r.error]
    print(f"bench: wrote {cfg.out}/latest.json, latest.md, throughput.png, freshness.png")
    if failed:
        print(f"bench: FAILED stages: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
