"""The real merger on a temp data folder with the real gateway in front of it (no Kafka, no
generator): for the routes that read the merged data."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from devicestream.processes import free_ports
from tests.documents import devices, merger_status
from tests.helpers import ServiceProcess, wait_for


@dataclass
class Served:
    url: str  # the gateway
    merger_url: str
    rows_dir: Path
    procs: list[ServiceProcess]

    def merged_up_to(self, batch_id: int) -> None:
        def done() -> bool:
            st = merger_status(self.merger_url)
            doc = devices(self.merger_url)
            return st.last_batch_id == batch_id and doc.covered_size == doc.committed_size

        wait_for(done, 30, f"batch {batch_id} merged and counted", logs=[p.log_file for p in self.procs])


def start_merger_and_gateway(tmp: Path, **merger_env: str) -> Served:
    """The real merger on a temp data folder and the real gateway in front of it (no Kafka, no
    generator: only the routes that read the merged data are used)."""
    merger_port, gw_port, nothing_port = free_ports(3)
    data = tmp / "data"
    common = {"DEVICESTREAM_DATA_DIR": str(data), "PYTHONUNBUFFERED": "1"}
    merger_url, url = f"http://127.0.0.1:{merger_port}", f"http://127.0.0.1:{gw_port}"
    procs = [
        ServiceProcess(
            "services.merger",
            {**common, "MERGER_PORT": str(merger_port), "MERGER_RESCAN_INTERVAL_S": "0.5", **merger_env},
            tmp / "logs" / "merger.log",
            f"{merger_url}/readyz",
        ).start()
    ]
    procs.append(
        ServiceProcess(
            "services.gateway",
            {
                **common,
                "GATEWAY_PORT": str(gw_port),
                "GATEWAY_MERGER_URL": merger_url,
                "GATEWAY_GENERATOR_URL": f"http://127.0.0.1:{nothing_port}",
                "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{nothing_port}",
                "GATEWAY_STATUS_CACHE_S": "0",
            },
            tmp / "logs" / "gateway.log",
            f"{url}/healthz",
        ).start()
    )
    return Served(url, merger_url, data / "spark" / "rows", procs)


def served_in(tmp: Path, **merger_env: str) -> Iterator[Served]:
    """For a fixture: start both, yield, stop both."""
    s = start_merger_and_gateway(tmp, **merger_env)
    try:
        yield s
    finally:
        for p in reversed(s.procs):
            p.stop()
