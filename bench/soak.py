"""The disk soak (issue #13, "done when"): the whole pipeline from `devicestream up` at a steady rate
for a long run, with a share of malformed records, sampling the size of every folder of the data
folder once a minute; at the end `devicestream verify` must be clean. The report says how much each
folder grew per hour and whether it stayed within the bound the README states.

    .venv/bin/python -m bench.soak                       # 1,000 events/s for 1 hour (the README's figure)
    .venv/bin/python -m bench.soak --rate 1000 --minutes 5 --out bench/results/soak-short.json

Not part of `make bench` (an hour is longer than the whole bench); results go to
bench/results/soak.{json,md}."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
from pydantic import ValidationError

from bench.stack import stack
from contract.api import GeneratorStatus
from contract.verify_report import VerifyReport
from devicestream.paths import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results"
#: The folders whose growth the README bounds (relative to the data folder).
FOLDERS = ("kafka", "logs", "spark/rows", "spark/rejects", "spark/checkpoint", "merger", "generator", "run")


def _verify_report(stdout: str) -> dict | str:
    """verify --json's report, or the end of what it printed when that is not one."""
    try:
        return VerifyReport.model_validate_json(stdout).model_dump()
    except ValidationError:
        return stdout[-2000:]


def du(path: Path) -> int:
    """Bytes of the files below `path` (0 when it does not exist); files vanishing meanwhile are skipped."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def count_files(path: Path) -> int:
    return sum(len(files) for _root, _dirs, files in os.walk(path))


def sample(data: Path, t0: float) -> dict[str, object]:
    return {
        "t_s": round(time.monotonic() - t0, 1),
        "bytes": {f: du(data / f) for f in FOLDERS},
        "files": {f: count_files(data / f) for f in FOLDERS},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=1000.0, help="events/s (default 1000)")
    ap.add_argument("--minutes", type=float, default=60.0, help="length of the run (default 60)")
    ap.add_argument("--invalid-ratio", type=float, default=0.01, help="share of malformed records (default 0.01)")
    ap.add_argument("--every-s", type=float, default=60.0, help="seconds between samples (default 60)")
    ap.add_argument("--out", type=Path, default=RESULTS / "soak.json")
    args = ap.parse_args(argv)

    duration_s = args.minutes * 60
    samples: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="devicestream-soak-") as tmp:
        data = Path(tmp) / "data"
        with stack(data) as st:
            gw = st.url("gateway")
            body = {"rate": args.rate, "duration_s": duration_s, "seed": 13, "invalid_ratio": args.invalid_ratio}
            r = httpx.post(f"{gw}/generator/start", json=body, timeout=30)
            r.raise_for_status()
            t0 = time.monotonic()
            samples.append(sample(data, t0))
            while time.monotonic() - t0 < duration_s:
                time.sleep(min(args.every_s, max(0.0, duration_s - (time.monotonic() - t0))))
                st.check_alive()
                samples.append(sample(data, t0))
                print(f"soak: {samples[-1]['t_s']:.0f}s {samples[-1]['bytes']}", flush=True)
            status = GeneratorStatus.model_validate_json(httpx.get(f"{gw}/generator/status", timeout=30).content)
            res = st.verify(300, 900)
            samples.append(sample(data, t0))
    hours = duration_s / 3600
    first, last = samples[0]["bytes"], samples[-1]["bytes"]
    per_hour = {f: round((last[f] - first[f]) / hours) for f in FOLDERS}  # type: ignore[index]
    report = {
        "rate": args.rate,
        "minutes": args.minutes,
        "invalid_ratio": args.invalid_ratio,
        "acknowledged": status.acknowledged,
        "verify_exit": res.returncode,
        "verify": _verify_report(res.stdout),
        "bytes_per_hour": per_hour,
        "bytes_per_event": {f: round(b / max(1, status.acknowledged), 1) for f, b in per_hour.items()},
        "samples": samples,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    md = args.out.with_suffix(".md")
    lines = [
        f"# Disk soak: {args.rate:g} events/s for {args.minutes:g} min, invalid_ratio {args.invalid_ratio}",
        "",
        f"acknowledged: {status.acknowledged}; `devicestream verify` exit {res.returncode}",
        "",
        "| folder | at the end | growth per hour | files at the end |",
        "|---|---|---|---|",
        *(
            f"| `{f}` | {last[f] / 1e6:,.1f} MB | {per_hour[f] / 1e6:,.1f} MB/h | "  # type: ignore[index]
            f"{samples[-1]['files'][f]} |"  # type: ignore[index]
            for f in FOLDERS
        ),
    ]
    md.write_text("\n".join(lines) + "\n")
    print(md.read_text())
    return 0 if res.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
