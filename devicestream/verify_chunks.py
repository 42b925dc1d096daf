"""verify's expected rows on disk: CSV in zstd-compressed chunks.

A scan writes each partition's expected rows (devicestream.verify.scan_partition) as a run of
files `<base>-<5-digit n>.csv.zst`, each one zstd frame holding a CSV header and up to
CHUNK_TEXT_BYTES of rows: the comparison (devicestream.verify_compare) reads a chunk at a time. Plain,
the rows of a long run took about as much disk as merged.csv itself (~12 GB for the ~3 GB of zstd
batches the bench's topic kept), beside the merged rows' buckets and merged.csv: verify ran the disk
full. At zstd level 1 they take ~1/5 of that, for ~5% more of the scan's CPU.

A chunk's text size is read from its frame header (zstd's one-shot compression writes it there):
the comparison sizes its buckets by the text, not by the bytes on disk."""

from __future__ import annotations

from pathlib import Path

import cramjam

SUFFIX = ".csv.zst"
CHUNK_TEXT_BYTES = 64 * 1024 * 1024
LEVEL = 1
_MAGIC = b"\x28\xb5\x2f\xfd"


class RowsWriter:
    """Appends CSV lines; every CHUNK_TEXT_BYTES of them (and the rest at `close`) become one
    compressed chunk file after `base`, each starting with `header`. At least one chunk is written
    (a header alone when there are no rows)."""

    def __init__(self, base: Path, header: bytes) -> None:
        self.base = base
        self.header = header
        self.paths: list[Path] = []
        self._parts: list[bytes] = []
        self._size = 0

    def write(self, lines: bytes) -> None:
        self._parts.append(lines)
        self._size += len(lines)
        if self._size >= CHUNK_TEXT_BYTES:
            self._flush()

    def close(self) -> list[Path]:
        if self._parts or not self.paths:
            self._flush()
        return self.paths

    def _flush(self) -> None:
        text = self.header + b"".join(self._parts)
        self._parts, self._size = [], 0
        path = self.base.with_name(f"{self.base.name}-{len(self.paths):05d}{SUFFIX}")
        path.write_bytes(bytes(cramjam.zstd.compress(text, LEVEL)))
        self.paths.append(path)


def is_chunk(path: Path) -> bool:
    return path.name.endswith(SUFFIX)


def read_text(path: Path) -> bytes:
    """A rows file's CSV text: a chunk decompressed, any other file as it is."""
    raw = path.read_bytes()
    return bytes(cramjam.zstd.decompress(raw)) if is_chunk(path) else raw


def text_size(path: Path) -> int:
    """A rows file's CSV size: a chunk's from its zstd frame header, any other file's on disk."""
    if not is_chunk(path):
        return path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(18)
    size = frame_content_size(head)
    if size is None:
        raise ValueError(f"{path}: no content size in its zstd frame header")
    return size


def frame_content_size(head: bytes) -> int | None:
    """The content size a zstd frame header declares (RFC 8878 3.1.1.1), None when it has none."""
    if len(head) < 6 or head[:4] != _MAGIC:
        return None
    fhd = head[4]
    fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
    width = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if width == 0 or len(head) < pos + width:
        return None
    value = int.from_bytes(head[pos : pos + width], "little")
    return value + 256 if width == 2 else value
