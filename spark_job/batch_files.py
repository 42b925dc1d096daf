"""A batch's CSV files: written by Spark's CSV writer (one part file per task), then joined into one
file with one header line and given its committed name (the sink's commit point is that rename;
spark_job/sink.py says in which order the files of a batch are committed).

Spark's CSV writer escapes RFC-4180 style (quote '"' doubled) and writes null as an empty field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Final

from pyspark.sql import DataFrame

from contract.files import atomic_write_bytes, fsync_dir

#: Spark CSV writer options: RFC 4180 quoting ("" inside quoted fields), nulls as empty fields,
#: whitespace kept as is, \n line ends, one header line per file.
CSV_OPTIONS: Final = {
    "header": "true",
    "quote": '"',
    "escape": '"',
    "nullValue": "",
    "ignoreLeadingWhiteSpace": "false",
    "ignoreTrailingWhiteSpace": "false",
    "lineSep": "\n",
    "encoding": "UTF-8",
}


class SinkError(RuntimeError):
    """A batch could not be written as exactly one committed file."""


def spark_write(df: DataFrame, header: str, tmp: Path) -> list[Path]:
    """Write `df` as CSV into the new folder `tmp`, one part file per task (per input split of the
    batch, so parsing runs in parallel; one task for a small batch the sink coalesced); the non-empty
    part files, in task order (a split Kafka partition's ranges are consecutive tasks, in offset order)."""
    df.write.options(**CSV_OPTIONS).mode("errorifexists").csv(str(tmp))
    return [p for p in sorted(tmp.glob("part-*")) if p.stat().st_size > 0]


def commit_parts(parts: list[Path], header: str, final: Path, *, durable: bool = True) -> None:
    """Give the rows of `parts` their committed name as one file with one header line (a
    header-only file when there are none). One part: renamed as is. Several: the first is
    extended in place with the others' rows (their header lines skipped, copied in the kernel
    with copy_file_range), then renamed."""
    if not parts:
        atomic_write_bytes(final, f"{header}\n".encode(), durable=durable)
        return
    first, *rest = parts
    with open(first, "r+b") as out:
        check_header(out, header, first)
        out.seek(0, os.SEEK_END)
        for part in rest:
            with open(part, "rb") as src:
                check_header(src, header, part)
                copy_rest(src, out)
        if durable:
            out.flush()
            os.fsync(out.fileno())
    os.replace(first, final)
    if durable:
        fsync_dir(final.parent)


def check_header(f: BinaryIO, header: str, path: Path) -> None:
    """Read `f`'s first line (leaving the position after it) and check it is `header`."""
    first = f.readline().rstrip(b"\r\n").decode()
    if first != header:
        raise SinkError(f"unexpected header in {path}: {first!r} (expected {header!r})")


def copy_rest(src: BinaryIO, out: BinaryIO) -> None:
    """Append the rest of `src` (from its current position) to `out` (at its end)."""
    out.flush()
    offset = src.tell()
    remaining = os.fstat(src.fileno()).st_size - offset
    while remaining > 0:
        n = os.copy_file_range(src.fileno(), out.fileno(), remaining, offset)
        if n == 0:
            raise SinkError(f"short copy from {src.name}: {remaining} bytes left")
        offset += n
        remaining -= n
    out.seek(0, os.SEEK_END)
