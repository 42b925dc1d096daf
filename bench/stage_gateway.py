"""Gateway: downloading a large merged.csv through the gateway vs straight from the merger, and
the gateway's peak memory while it streams.

The merger and the gateway run as the real service processes. merged.csv is made by the merger
itself, from batch files in the Spark job's format (one block of rows, repeated to the size) put
in its input folder (the large set while it runs: each file written aside and renamed in, as Spark's
file sink commits, since a file written in place can be read half-written); the downloads begin
once /merger/status shows them all merged. Downloads by curl to /dev/null (a C client, so the
client is not the bottleneck); RSS of each server sampled every 20 ms."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from bench.common import Config, Figure, Spread, StageError, StageResult, Target, growth_figure, wait_until
from bench.data import csv_rows
from bench.procs import Service, py_spy, service
from bench.profiles import speedscope_top
from contract.csv import ROW_HEADER, batch_file_name
from contract.layout import DataLayout
from contract.merger_status import MergerStatus
from devicestream.processes import free_ports

#: Issue #25: downloads through the gateway at 0.8 of the merger's own speed.
RATIO_TARGET = 0.8
FLAT_MB = 64.0  # "memory flat": the gateway grows by less than this while streaming the file
#: Rows of each batch file the merger merges into the served merged.csv.
BATCH_ROWS = 100_000
MERGE_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class GatewaySizes:
    bytes: int
    reps: int
    #: cost as work grows: the download is measured first on a merged.csv of this many batch files
    small_batches: int


FULL = GatewaySizes(bytes=1 << 30, reps=3, small_batches=10)  # ~10M rows, then 1M
QUICK = GatewaySizes(bytes=100 << 20, reps=3, small_batches=2)


def write_batches(data: Path, size: int, first: int = 0) -> tuple[int, int]:
    """Batch files in the merger's input folder (ids from `first`) that add up to a merged.csv of about
    `size` bytes (one header, then every file's rows); returns that merged.csv's (bytes, rows)."""
    rows_dir = DataLayout(data).spark_rows
    rows_dir.mkdir(parents=True, exist_ok=True)
    header = (ROW_HEADER + "\n").encode()
    block = csv_rows(BATCH_ROWS)
    n = max(1, (size - len(header)) // len(block))
    staging = data / ".bench-staging"  # same file system: the rename is atomic
    staging.mkdir(exist_ok=True)
    for batch_id in range(first, n):
        name = batch_file_name(batch_id)
        (staging / name).write_bytes(header + block)
        os.replace(staging / name, rows_dir / name)
    return len(header) + n * len(block), n * BATCH_ROWS


def cpu_s(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def downloads_cpu(gw: Service, total: int, reps: int, per_rep: int = 1) -> list[float]:
    """The gateway's CPU seconds per download of the whole merged.csv (after one untimed download),
    each rep the mean over `per_rep` downloads in a row: psutil counts CPU in 10 ms ticks, so a
    small file's few ticks need repeating to be measured as finely as a large one's."""
    download(f"{gw.base_url}/merged.csv", total)
    out = []
    for _ in range(reps):
        c0 = cpu_s(gw.pid)
        for _ in range(per_rep):
            download(f"{gw.base_url}/merged.csv", total)
        out.append((cpu_s(gw.pid) - c0) / per_rep)
    return out


def wait_merged(merger: Service, size: int, rows: int) -> None:
    """Until the merger has merged every batch file (its status shows the rows and the size)."""

    def merged() -> bool:
        merger.check_alive()
        st = MergerStatus.model_validate_json(httpx.get(f"{merger.base_url}/merger/status", timeout=5).content)
        if st.quarantined:
            raise StageError(f"the merger quarantined a batch file: {st.quarantined[0]}")
        return st.rows_merged == rows and st.file_size == size

    wait_until(merged, MERGE_TIMEOUT_S, f"the merger to merge {rows:,} rows", interval_s=0.2)


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
        with service("gateway", "services.gateway", gport, genv, data / "gateway.log", ready_path="/healthz") as gw:
            yield merger, gw


def run(cfg: Config, work: Path) -> StageResult:
    sizes = QUICK if cfg.quick else FULL
    res = StageResult("gateway")
    data = work / "data"
    header = len(ROW_HEADER) + 1
    small_total, small_rows = write_batches(data, header + sizes.small_batches * len(csv_rows(BATCH_ROWS)))
    direct_mbs: list[float] = []
    gw_mbs: list[float] = []
    gw_growth: list[float] = []
    big_cpu: list[float] = []
    merger_growth: list[float] = []
    profile: tuple[str, str] | None = None
    with servers(data) as (merger, gw):
        wait_merged(merger, small_total, small_rows)
        # as many downloads per rep as the large file is times larger: the same bytes, the same tick resolution
        small_cpu = downloads_cpu(gw, small_total, sizes.reps, per_rep=max(1, round(sizes.bytes / small_total)))
        total, rows = write_batches(data, sizes.bytes, first=sizes.small_batches)
        wait_merged(merger, total, rows)
        download(f"{merger.base_url}/merged.csv", total)  # warm the page cache and both servers
        download(f"{gw.base_url}/merged.csv", total)
        for _ in range(sizes.reps):
            ms = RssSampler(merger.pid)
            ms.start()
            direct_mbs.append(total / download(f"{merger.base_url}/merged.csv", total) / 1e6)
            merger_growth.append(ms.stop())
            gs = RssSampler(gw.pid)
            gs.start()
            c0 = cpu_s(gw.pid)
            gw_mbs.append(total / download(f"{gw.base_url}/merged.csv", total) / 1e6)
            big_cpu.append(cpu_s(gw.pid) - c0)
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
    growth = growth_figure(
        "gateway",
        "merged.csv download",
        small_rows,
        [c / small_rows * 1e6 for c in small_cpu],
        rows,
        [c / rows * 1e6 for c in big_cpu],
        [
            *notes,
            f"merged.csv of {small_total / 1e6:,.0f} MB then {total / 1e6:,.0f} MB (the same merger, grown); CPU = "
            "the gateway process's during each download (psutil, 10 ms ticks; at the small size the mean of as many "
            "downloads in a row as the large file is times larger), after one untimed download at each size",
        ],
    )
    res.figures += [thr, mem, growth]
    return res
