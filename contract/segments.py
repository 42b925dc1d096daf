"""merged.csv in segments (MERGER_SEGMENT_BYTES > 0): the merger's rows as a list of CSV files, each
with the header line, that read one after the other (each one's data lines) are merged.csv.

`Segment` is a record of the merger's state (services.merger.state) and of `SegmentIndex`, the
document the merger writes to merger/segments.json after every commit that changes the list (a
rollover, a retention) and on start; devicestream verify reads it to find the rows and to tell the
rows retention removed (retired) from missing ones. With segments off there is one segment,
merged.csv, and no segments.json."""

from __future__ import annotations

from pathlib import Path
from typing import Final

from pydantic import BaseModel, Field

#: The index beside merged.csv.
SEGMENT_INDEX: Final = "segments.json"
#: Segments after the first (merged.csv) are in this folder beside merged.csv.
SEGMENTS_DIR: Final = "segments"


def segment_file(seq: int) -> str:
    """The file of segment `seq`, relative to the merger's folder: merged.csv for the first one."""
    return "merged.csv" if seq == 0 else f"{SEGMENTS_DIR}/merged-{seq:06d}.csv"


def parquet_file(seq: int) -> str:
    """The Parquet copy of segment `seq` once compacted, relative to the merger's folder."""
    return f"{SEGMENTS_DIR}/merged-{seq:06d}.parquet"


#: A compacted segment renders back to its CSV bytes in runs of this many rows (`Segment.group_bytes`).
GROUP_ROWS: Final = 65536


def segment_seq(name: str) -> int | None:
    """The seq of a file name in the segments folder (None for another file)."""
    stem = name.removeprefix("merged-").removesuffix(".csv")
    if name == stem or not name.startswith("merged-") or not name.endswith(".csv") or not stem.isdigit():
        return None
    return int(stem)


class Segment(BaseModel, frozen=True, extra="forbid"):
    """One segment file: closed (never written again) or the active one (being appended to)."""

    seq: int = Field(ge=0, description="0 for merged.csv, then 1, 2... in order.")
    file: str = Field(description="Its path relative to the merger's folder.")
    start: int = Field(
        ge=0,
        description="Where its data lines begin in the whole merged stream ever written (header line and the "
        "data lines of every earlier segment, retired ones included): increases, never reused.",
    )
    size: int = Field(default=0, ge=0, description="Committed bytes of the file, header line included.")
    rows: int = Field(default=0, ge=0, description="Data rows in it.")
    offsets: dict[int, tuple[int, int]] = Field(
        default_factory=dict, description="Per Kafka partition, the lowest and highest offset of its rows' records."
    )
    event_time_us: tuple[int, int] | None = Field(
        default=None, description="Lowest and highest eventTime of its rows, epoch microseconds (None: no rows)."
    )
    opened_at: float = Field(default=0.0, description="Epoch seconds it was created.")
    closed_at: float | None = Field(default=None, description="Epoch seconds it was closed (None: active).")
    parquet: str | None = Field(
        default=None,
        description="Its Parquet copy (typed columns, contract.compacted), relative to the merger's folder, once "
        "compacted: rendered back to CSV it is the file's data lines byte for byte.",
    )
    csv_kept: bool = Field(default=True, description="False once compaction removed the CSV file: `parquet` holds it.")
    group_bytes: list[int] = Field(
        default_factory=list,
        description="Compacted: the CSV bytes of each run of GROUP_ROWS rows of the Parquet copy, in order.",
    )

    def path(self, merger_dir: Path) -> Path:
        return merger_dir / self.file

    @property
    def rows_file(self) -> str:
        """The file that holds its rows now: the CSV, or the Parquet copy once the CSV is removed."""
        return self.file if self.csv_kept or self.parquet is None else self.parquet


class SegmentIndex(BaseModel, extra="forbid"):
    """merger/segments.json (written by the merger, read by devicestream verify)."""

    generation: str
    segments: list[Segment] = Field(description="Retained segments, oldest first; the last one is the active one.")
    retired: list[Segment] = Field(
        default_factory=list, description="Segments removed by retention (the newest 200), oldest first."
    )
    rows_retired: int = Field(default=0, ge=0, description="Rows of every segment retention removed.")
    bytes_retired: int = Field(default=0, ge=0, description="Their data bytes.")
    segments_retired: int = Field(default=0, ge=0)
