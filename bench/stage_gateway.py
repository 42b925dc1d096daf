"""Gateway: downloading a large merged.csv through the gateway vs straight from the merger, and
the gateway's peak memory while it streams.

The merger and the gateway run as the real service processes. merged.csv is built beforehand
(rows in the Spark job's format, repeated to the size) with a matching state.json written by the
merger's own state module, so the merger serves it as committed. Downloads by curl to /dev/null
(a C client, so the client is not the bottleneck); RSS of each server sampled every 20 ms."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from bench.common import Config, Figure, Spread, StageError, StageResult, Target
from bench.data import csv_rows
from bench.procs import Service, py_spy, service
from bench.profiles import speedscope_top
from contract.csv import ROW_HEADER
from devicestream.processes import free_ports
from services.merger.state import MergerState, save_state

RATIO_TARGET = 0.5
FLAT_MB = 64.0  # "memory flat": the gateway grows by less than this while streaming the file


@dataclass(frozen=True)
class GatewaySizes:
    bytes: int
    reps: int


FULL = GatewaySizes(bytes=1 << 30, reps=3)
QUICK = GatewaySizes(bytes=100 << 20, reps=2)


def build_merged(data: Path, size: int) -> tuple[int, int]:
    """merged.csv of about `size` bytes and its state.json; returns (bytes, rows)."""
    merger = data / "merger"
    merger.mkdir(parents=True, exist_ok=True)
    block = csv_rows(100_000)
    block_rows = 100_000
    header = (ROW_HEADER + "\n").encode()
    n = max(1, (size - len(header)) // len(block))
    with open(merger / "merged.csv", "wb") as f:
        f.write(header)
        for _ in range(n):
            f.write(block)
    total = len(header) + n * len(block)
    state = MergerState.fresh()
    save_state(
        merger / "state.json",
        replace(
            state,
            last_batch_id=n - 1,
            committed_size=total,
            batches_merged=n,
            rows_merged=n * block_rows,
            last_merge_at=time.time(),
        ),
    )
    (data / "spark" / "rows").mkdir(parents=True, exist_ok=True)
    return total, n * block_rows


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every_s: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.every_s = every_s
        self.before = self._rss()
        self.peak = self.before
        self._stop_ev = threading.Event()

    def _rss(self) -> int:
        return self.proc.memory_info().rss

    def run(self) -> None:
        while not self._stop_ev.is_set():
            with contextlib.suppress(psutil.Error):
                self.peak = max(self.peak, self._rss())
            time.sleep(self.every_s)

    def stop(self) -> float:
        self._stop_ev.set()
        self.join(5)
        return (self.peak - self.before) / 2**20


def download(url: str, expected: int) -> float:
    """Seconds to download `url` to /dev/null (StageError unless all `expected` bytes came)."""
    res = subprocess.run(
        ["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if res.returncode != 0:
        raise StageError(f"curl {url} failed ({res.returncode}): {res.stderr[-500:]}")
    size, seconds = res.stdout.split()
    if int(float(size)) != expected:
        raise StageError(f"curl {url} got {size} bytes, expected {expected}")
    return float(seconds)


@contextlib.contextmanager
def servers(data: Path) -> Iterator[tuple[Service, Service]]:
    mport, gport = free_ports(2)
    env = {"DEVICESTREAM_DATA_DIR": str(data), "KAFKA_BOOTSTRAP_SERVERS": "", "MERGER_PORT": str(mport)}
    with service("merger", "services.merger", mport, env, data / "merger.log") as merger:
        genv = {
            **env,
            "GATEWAY_PORT": str(gport),
            "GATEWAY_MERGER_URL": merger.base_url,
            "GATEWAY_GENERATOR_URL": "http://127.0.0.1:9",  # no generator in this stage
        }
        # /readyz wants the generator too: /healthz says the gateway is up.
        with service("gateway", "gateway", gport, genv, data / "gateway.log", ready_path="/healthz") as gw:
            yield merger, gw


def run(cfg: Config, work: Path) -> StageResult:
    sizes = QUICK if cfg.quick else FULL
    res = StageResult("gateway")
    data = work / "data"
    total, rows = build_merged(data, sizes.bytes)
    direct_mbs: list[float] = []
    gw_mbs: list[float] = []
    gw_growth: list[float] = []
    merger_growth: list[float] = []
    profile: tuple[str, str] | None = None
    with servers(data) as (merger, gw):
        download(f"{merger.base_url}/merged.csv", total)  # warm the page cache and both servers
        for _ in range(sizes.reps):
            ms = RssSampler(merger.pid)
            ms.start()
            direct_mbs.append(total / download(f"{merger.base_url}/merged.csv", total) / 1e6)
            merger_growth.append(ms.stop())
            gs = RssSampler(gw.pid)
            gs.start()
            gw_mbs.append(total / download(f"{gw.base_url}/merged.csv", total) / 1e6)
            gw_growth.append(gs.stop())
        if Spread.of(gw_mbs).median / Spread.of(direct_mbs).median < RATIO_TARGET:
            out = cfg.profiles / "gateway-download.speedscope.json"
            with py_spy(gw.pid, out, total / (Spread.of(gw_mbs).median * 1e6) + 10):
                time.sleep(0.5)
                download(f"{gw.base_url}/merged.csv", total)
            profile = (str(out), speedscope_top(out))
    notes = [
        "merger and gateway: the real service processes (uvicorn), files served from the page cache",
        "client: curl -o /dev/null, one download at a time, alternating direct / through the gateway",
    ]
    if cfg.quick:
        notes.append(f"quick mode: {total / 1e6:,.0f} MB instead of 1 GB")
    thr = Figure(
        stage="gateway",
        name="merged.csv download throughput",
        unit="MB/s",
        value=Spread.of(gw_mbs),
        baseline_name="straight from the merger",
        baseline=Spread.of(direct_mbs),
        target=Target("ratio", ">=", RATIO_TARGET, f"ratio >= {RATIO_TARGET}"),
        sizes={"file_bytes": total, "rows": rows, "reps": sizes.reps},
        notes=list(notes),
    )
    if profile:
        thr.profile, summary = profile
        thr.notes.append(summary)
    mem = Figure(
        stage="gateway",
        name="gateway peak RSS growth during a download",
        unit="MB",
        value=Spread.of(gw_growth),
        baseline_name="(none: an absolute bound)",
        baseline=None,
        target=Target("value", "<=", FLAT_MB, f"flat: < {FLAT_MB:.0f} MB growth for a {total / 1e6:,.0f} MB file"),
        sizes={"file_bytes": total, "reps": sizes.reps},
        notes=[
            *notes,
            "growth = peak RSS while downloading - RSS before (psutil, 20 ms sampling)",
            f"the merger, serving the same file directly, grew by {Spread.of(merger_growth).text('{:.2f}')} MB",
        ],
    )
    res.figures += [thr, mem]
    return res
