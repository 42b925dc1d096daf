"""The `devicestream` command: up | status | down | verify | report | reset-checkpoint."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import TYPE_CHECKING

from pydantic import ValidationError

from contract.settings import MissingSettingError
from service_kit.logs import configure_logging

if TYPE_CHECKING:
    from devicestream.settings import LauncherSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devicestream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the whole pipeline on this machine and supervise it")
    p_up.add_argument("--brokers", type=int, help="embedded Kafka brokers (default 1; 3 = replicated)")
    p_up.add_argument("--components", help="comma-separated subset, e.g. kafka,spark,merger")
    p_up.add_argument(
        "--partitions",
        type=int,
        help="partitions of the events topic when it is created (default 3; DEVICESTREAM_TOPIC_PARTITIONS)",
    )
    p_up.add_argument(
        "--secure", action="store_true", default=None, help="embedded Kafka on SASL_SSL only (SCRAM-SHA-512, own CA)"
    )
    sub.add_parser("status", help="show the state of a running stack")
    sub.add_parser("down", help="stop a stack started from another shell")
    p_verify = sub.add_parser("verify", help="reconcile the topic with merged.csv and the rejects")
    p_verify.add_argument("--wait", type=float, default=0.0, help="seconds to keep re-checking until clean")
    p_verify.add_argument("--json", action="store_true", help="print the report as JSON")
    p_verify.add_argument("--merged", type=str, help="merged.csv to check (default: the data folder's)")
    p_verify.add_argument("--rejects", type=str, help="rejects folder (default: the data folder's)")
    p_verify.add_argument("--run", type=str, help="check the pipeline against this generator run's ledger")
    p_report = sub.add_parser("report", help="one run as a self-contained HTML page and a PDF (default: the last run)")
    p_report.add_argument("--run", type=str, help="the generator run (default: the last one)")
    p_report.add_argument("--out", type=str, default=".", help="folder to write report-<run>.html and .pdf into")
    p_report.add_argument("--html-only", action="store_true", help="no PDF (no Chromium needed)")
    p_report.add_argument("--wait", type=float, default=0.0, help="seconds verify --run may wait for the drain")
    sub.add_parser(
        "reset-checkpoint",
        help="move the Spark checkpoint aside: the job's next start reads the topic from its earliest offsets "
        "(what the job asks for when its topic was recreated)",
    )
    args = parser.parse_args(argv)

    configure_logging("launcher", "WARNING")
    from devicestream.launcher import up
    from devicestream.preflight import LaunchError
    from devicestream.settings import LauncherSettings
    from devicestream.stack_client import down, status_lines

    try:
        overrides = {
            k: v
            for k, v in (
                ("brokers", getattr(args, "brokers", None)),
                ("components", getattr(args, "components", None)),
                ("topic_partitions", getattr(args, "partitions", None)),
                ("kafka_secure", getattr(args, "secure", None)),
            )
            if v is not None
        }
        settings = LauncherSettings(**overrides)
        if args.command == "up":
            return asyncio.run(up(settings, out=lambda s: print(s, flush=True)))
        if args.command == "status":
            running, lines = status_lines(settings)
            print("\n".join(lines))
            return 0 if running else 3
        if args.command == "down":
            return down(settings, out=print)
        if args.command == "verify":
            return _verify(settings, args)
        if args.command == "report":
            return _report(settings, args)
        if args.command == "reset-checkpoint":
            return _reset_checkpoint(settings)
    except ValidationError as e:
        print(f"devicestream: invalid setting: {e}", file=sys.stderr)
        return 2
    except (LaunchError, MissingSettingError, ValueError, FileNotFoundError) as e:
        logging.getLogger("devicestream").debug("failed", exc_info=True)
        print(f"devicestream: {e}", file=sys.stderr)
        return 1
    return 0


def _reset_checkpoint(settings: LauncherSettings) -> int:
    from devicestream.reset_checkpoint import ResetRefused, reset_checkpoint

    try:
        lines = reset_checkpoint(settings.layout, settings.topic)
    except ResetRefused as e:
        print(f"devicestream reset-checkpoint: {e}", file=sys.stderr)
        return 1
    print("\n".join(f"devicestream reset-checkpoint: {line}" for line in lines))
    return 0


def _verify(settings: LauncherSettings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from aiokafka.errors import KafkaError

    from devicestream.kafka_tls import embedded_client_security
    from devicestream.stack_client import running_bootstrap
    from devicestream.verify import VerifyError, format_report, verify
    from kafka_io.reachability import failure_reason

    layout = settings.layout
    merged = Path(args.merged) if args.merged else layout.merged_csv
    rejects = Path(args.rejects) if args.rejects else layout.spark_rejects
    if args.run:  # against the run's ledger (devicestream/run_check.py)
        from devicestream.run_check import cli_verify_run

        code, text = cli_verify_run(layout.generator_runs, args.run, merged, rejects, args.wait, args.json)
        print(text, file=sys.stderr if code == 2 else sys.stdout)
        return code
    bootstrap = settings.kafka_bootstrap_servers or running_bootstrap(settings)
    security = settings.kafka_security
    if not settings.kafka_bootstrap_servers:  # the embedded broker: secured if it was started --secure
        security = embedded_client_security(layout.kafka_dir) or security
    try:
        report = verify(
            bootstrap,
            settings.topic,
            merged,
            rejects,
            wait_s=args.wait,
            security=security,
        )
    except (VerifyError, KafkaError, OSError) as e:
        reason = asyncio.run(failure_reason(e, bootstrap, security)) if isinstance(e, KafkaError) else str(e)
        print(f"devicestream verify: cannot run: kafka at {bootstrap}: {reason}", file=sys.stderr)
        return 2
    print(report.to_json() if args.json else format_report(report))
    return 0 if report.ok else 1


def _report(settings: LauncherSettings, args: argparse.Namespace) -> int:
    """0 written (whatever the verdict; the page shows it), 2 no such run, 1 it could not be written."""
    from pathlib import Path

    from devicestream.report import ReportError, make_report
    from devicestream.report.figures import ReportInputError

    try:
        written = make_report(settings.layout, args.run, Path(args.out), pdf=not args.html_only, wait_s=args.wait)
    except ReportInputError as e:
        print(f"devicestream report: {e}", file=sys.stderr)
        return 2
    except ReportError as e:
        print(f"devicestream report: {e}", file=sys.stderr)
        return 1
    verdict = "verify --run OK" if written.ok else "verify --run found problems"
    print(f"devicestream report: run {written.run_id} ({verdict})")
    print(f"  {written.html}")
    if written.pdf:
        print(f"  {written.pdf}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
