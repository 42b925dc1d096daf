"""The `devicestream` command: up | status | down | verify."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from pydantic import ValidationError

from contract.logs import configure_logging
from contract.settings import MissingSettingError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devicestream", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the whole pipeline on this machine and supervise it")
    p_up.add_argument("--brokers", type=int, help="embedded Kafka brokers (default 1; 3 = replicated)")
    p_up.add_argument("--components", help="comma-separated subset, e.g. kafka,spark,merger")
    sub.add_parser("status", help="show the state of a running stack")
    sub.add_parser("down", help="stop a stack started from another shell")
    args = parser.parse_args(argv)

    configure_logging("launcher", "WARNING")
    from devicestream.launcher import LaunchError, down, status_lines, up
    from devicestream.settings import LauncherSettings

    try:
        overrides = {
            k: v
            for k, v in (("brokers", getattr(args, "brokers", None)), ("components", getattr(args, "components", None)))
            if v
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
    except ValidationError as e:
        print(f"devicestream: invalid setting: {e}", file=sys.stderr)
        return 2
    except (LaunchError, MissingSettingError, ValueError, FileNotFoundError) as e:
        logging.getLogger("devicestream").debug("failed", exc_info=True)
        print(f"devicestream: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
