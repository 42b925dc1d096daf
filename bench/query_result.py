"""The two documents between the query stage (bench/stage_query.py) and its probe process
(bench/query_probe.py): the request, passed as the probe's one argument, and the answer, the last
line the probe prints. Both ends build and read these models; nothing is parsed by key."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

ProbeKind = Literal["ours-csv", "ours-parquet", "polars-csv", "polars-parquet", "idle"]


class QueryProbeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ProbeKind
    source: Path
    out: Path
    rows: int
    since: datetime | None = None
    device_ids: list[str] | None = None
    statuses: list[str] | None = None
    columns: list[str] | None = None


class QueryProbeAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seconds: float
    peak_rss_mb: float
    out_bytes: int
