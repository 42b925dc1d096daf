"""verify's expected rows in zstd chunks (devicestream.verify_chunks): written in pieces, read back
whole, their text size known without decompressing; and compared as the plain CSV is."""

from __future__ import annotations

from pathlib import Path

import cramjam
import pytest

from devicestream import verify_chunks
from devicestream.verify_chunks import RowsWriter, frame_content_size, read_text, text_size

HEADER = b"a,b\r\n"


def test_rows_are_cut_into_chunks_each_with_the_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_chunks, "CHUNK_TEXT_BYTES", 20)
    w = RowsWriter(tmp_path / "expected-0", HEADER)
    lines = [b"%d,x\r\n" % i for i in range(12)]
    for i in range(0, 12, 2):
        w.write(b"".join(lines[i : i + 2]))
    paths = w.close()
    assert [p.name for p in paths] == [f"expected-0-{k:05d}.csv.zst" for k in range(len(paths))]
    assert len(paths) > 1
    texts = [read_text(p) for p in paths]
    assert all(t.startswith(HEADER) for t in texts)
    assert b"".join(t[len(HEADER) :] for t in texts) == b"".join(lines)
    assert [text_size(p) for p in paths] == [len(t) for t in texts]


def test_no_rows_is_one_chunk_with_the_header(tmp_path: Path) -> None:
    paths = RowsWriter(tmp_path / "expected-3", HEADER).close()
    assert [read_text(p) for p in paths] == [HEADER]


@pytest.mark.parametrize("size", [0, 1, 255, 256, 65_791, 65_792, 1 << 20, (64 << 20) + 17])
def test_the_frame_header_gives_the_text_size(size: int) -> None:
    frame = bytes(cramjam.zstd.compress(b"x" * size, 1))
    assert frame_content_size(frame[:18]) == size


def test_a_header_without_a_size_or_not_zstd_gives_none() -> None:
    assert frame_content_size(b"not a zstd frame at all") is None
    # magic, descriptor 0x00 (no content size, not single segment), window descriptor
    assert frame_content_size(b"\x28\xb5\x2f\xfd\x00\x58" + b"\x00" * 12) is None


def test_plain_files_are_read_as_they_are(tmp_path: Path) -> None:
    p = tmp_path / "expected.csv"
    p.write_bytes(HEADER + b"1,2\r\n")
    assert read_text(p) == HEADER + b"1,2\r\n" and text_size(p) == 10
