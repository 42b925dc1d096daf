"""Where the merged rows and rejects are on disk, for the readers of the merger's files (verify,
verify --run, report): rows in merged.csv, or, when the merger keeps it in segments
(contract.segments), the segment files its segments.json lists (and any newer one it has begun since),
with what retention removed; a compacted segment whose CSV was removed is read from its Parquet copy."""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import polars as pl
from pydantic import ValidationError

from contract.compacted import TEXT_SCHEMA, scan_text
from contract.csv import REJECT_COLUMNS, parse_batch_file_name
from contract.layout import MergerFiles
from contract.segments import SEGMENT_INDEX, SEGMENTS_DIR, SegmentIndex, segment_seq

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergedFiles:
    #: The files holding merged rows, in order (each with the header line); empty without any.
    paths: list[Path] = field(default_factory=list)
    #: The merger's segment index (None: merged.csv is one file).
    index: SegmentIndex | None = None

    def scan_text(self) -> pl.LazyFrame:
        """Every merged row as merged.csv's text columns (null: an empty field), the files one after the
        other: a CSV scan, or a compacted segment's Parquet copy as text (contract.compacted)."""
        scans = [scan_text(p) if p.suffix == ".parquet" else pl.scan_csv(p, schema=TEXT_SCHEMA) for p in self.paths]
        if not scans:
            return pl.LazyFrame(schema=TEXT_SCHEMA)
        return scans[0] if len(scans) == 1 else pl.concat(scans, how="vertical")

    @property
    def rows_retired(self) -> int:
        return 0 if self.index is None else self.index.rows_retired

    def retired_bounds(self) -> pl.LazyFrame | None:
        """(partition, low, high): the Kafka offsets of the rows of each segment retention removed."""
        if self.index is None:
            return None
        rows = [(p, lo, hi) for g in self.index.retired for p, (lo, hi) in g.offsets.items()]
        if not rows:
            return None
        return pl.LazyFrame(rows, schema={"partition": pl.Int64, "low": pl.Int64, "high": pl.Int64}, orient="row")


def merged_files(merged_csv: Path) -> MergedFiles:
    """The merged rows' files beside `merged_csv` (see the module docstring)."""
    folder = merged_csv.parent
    index: SegmentIndex | None = None
    with contextlib.suppress(FileNotFoundError):
        try:
            index = SegmentIndex.model_validate(orjson.loads((folder / SEGMENT_INDEX).read_bytes()))
        except (ValueError, ValidationError) as e:  # (written atomically: never torn)
            log.warning("segments.json unreadable; reading merged.csv alone", extra={"error": str(e)})
    if index is None:
        has_rows = merged_csv.exists() and merged_csv.stat().st_size > 0
        return MergedFiles([merged_csv] if has_rows else [])
    paths = [folder / g.rows_file for g in index.segments]  # (a compacted one's CSV may be removed)
    last = index.segments[-1].seq if index.segments else -1
    newer = sorted(
        (s, p)
        for p in (folder / SEGMENTS_DIR).glob("merged-*.csv")
        if (s := segment_seq(p.name)) is not None and s > last
    )  # begun since the index was written (a rollover just now)
    paths += [p for _, p in newer]
    return MergedFiles([p for p in paths if p.exists() and p.stat().st_size > 0], index)


def split_retired(missing: pl.LazyFrame, files: MergedFiles, key: list[str]) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """(retired, still missing): the missing rows whose Kafka record lies within the offsets of a
    segment retention removed, and the others."""
    bounds = files.retired_bounds()
    if bounds is None:
        return missing.clear(), missing
    hit = (
        missing.join(bounds, on="partition", how="inner")
        .filter((pl.col("offset") >= pl.col("low")) & (pl.col("offset") <= pl.col("high")))
        .select(key)
        .unique()
    )
    return missing.join(hit, on=key, how="semi"), missing.join(hit, on=key, how="anti")


def _rejects(rejects_dir: Path, merged_rejects: Path | None = None) -> pl.LazyFrame:
    """One row per rejected record: the reject files of batches not merged yet (spark/rejects) and
    the merger's rejects.csv (merged batches). The files are read first: one the merger deletes
    meanwhile had its lines appended to rejects.csv before, and rejects.csv is read after."""
    frames = []
    for p in sorted(rejects_dir.glob("batch-*.csv")):
        if parse_batch_file_name(p.name) is None:
            continue
        try:
            frames.append(_read_rejects(p.read_bytes()))
        except FileNotFoundError:  # merged meanwhile: its lines are in rejects.csv
            continue
    if merged_rejects is not None:
        with contextlib.suppress(FileNotFoundError):
            frames.append(_read_rejects(_complete_records(merged_rejects.read_bytes())))
    frames = [f for f in frames if f is not None]
    if not frames:
        return pl.LazyFrame(schema={"partition": pl.Int64, "offset": pl.Int64, "reason": pl.String})
    return pl.concat(frames).unique(["partition", "offset"]).lazy()


def merged_rejects_of(merged_csv: Path) -> Path:
    """The merger's rejects.csv beside its merged.csv."""
    return MergerFiles(merged_csv.parent).merged_rejects


def _read_rejects(raw: bytes) -> pl.DataFrame | None:
    if not raw:
        return None
    df = pl.read_csv(io.BytesIO(raw), schema=dict.fromkeys(REJECT_COLUMNS, pl.String))
    return df.select(pl.col("partition").cast(pl.Int64), pl.col("offset").cast(pl.Int64), "reason")


def _complete_records(raw: bytes) -> bytes:
    """`raw` up to its last complete CSV record (the merger may be appending to it): a newline with
    an odd number of quotes before it is inside a quoted field."""
    end = len(raw)
    while (i := raw.rfind(b"\n", 0, end)) >= 0:
        if raw.count(b'"', 0, i) % 2 == 0:
            return raw[: i + 1]
        end = i
    return b""
