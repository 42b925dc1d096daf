"""Stand-in merger: GET/HEAD /merged.csv from the data folder with ETag, Last-Modified,
If-None-Match/If-Modified-Since -> 304, single byte ranges -> 206 (416 when unsatisfiable), the
header line alone before anything is merged, streamed in chunks; GET /merger/status from `merger/standin-status.json`
(written by the stand-in Spark job or a test)."""

from __future__ import annotations

import contextlib
import io
import os
import re
from collections.abc import Iterator
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any

import polars as pl
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from contract.csv import ROW_COLUMNS, ROW_HEADER
from contract.layout import DataLayout
from contract.merger_status import MergerStatus
from tests.gateway.standins.common import serve

CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(start, end inclusive), None for no/ignored range, "unsatisfiable"."""
    m = _RANGE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    a, b = m.group(1), m.group(2)
    if not a:  # suffix
        n = int(b)
        if n == 0:
            return "unsatisfiable"
        return (max(0, size - n), size - 1) if size else "unsatisfiable"
    start = int(a)
    end = min(int(b), size - 1) if b else size - 1
    if start >= size or (b and int(b) < start):
        return "unsatisfiable"
    return start, end


def read_chunks(path: Path, start: int, length: int) -> Iterator[bytes]:
    with open(path, "rb") as f:
        f.seek(start)
        left = length
        while left > 0:
            data = f.read(min(CHUNK, left))
            if not data:
                return
            left -= len(data)
            yield data


def create_app(layout: DataLayout) -> FastAPI:
    app = FastAPI()
    path = layout.merged_csv
    status_file = layout.merger_dir / "standin-status.json"

    @app.api_route("/merged.csv", methods=["GET", "HEAD"])
    async def merged(request: Request) -> Response:
        try:
            st = path.stat()
        except FileNotFoundError:  # like the real merger: before the first row, the header alone
            header = (ROW_HEADER + "\n").encode()
            return Response(header if request.method == "GET" else b"", media_type="text/csv; charset=utf-8")
        size = st.st_size
        etag = f'"{size:x}-{st.st_mtime_ns:x}"'
        headers = {
            "etag": etag,
            "last-modified": formatdate(st.st_mtime, usegmt=True),
            "accept-ranges": "bytes",
            "content-type": "text/csv; charset=utf-8",
        }
        inm = request.headers.get("if-none-match")
        ims = request.headers.get("if-modified-since")
        if inm is not None:
            if etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*":
                return Response(status_code=304, headers={"etag": etag, "last-modified": headers["last-modified"]})
        elif ims is not None:
            try:
                if int(st.st_mtime) <= parsedate_to_datetime(ims).timestamp():
                    return Response(status_code=304, headers={"etag": etag})
            except (TypeError, ValueError):
                pass
        rng = parse_range(request.headers.get("range", ""), size) if "range" in request.headers else None
        if rng == "unsatisfiable":
            return Response(status_code=416, headers={"content-range": f"bytes */{size}"})
        status_code, start, length = 200, 0, size
        if isinstance(rng, tuple):
            start, end = rng
            length = end - start + 1
            status_code = 206
            headers["content-range"] = f"bytes {start}-{end}/{size}"
        headers["content-length"] = str(length)
        if request.method == "HEAD":
            r = Response(status_code=status_code)
            r.raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
            return r
        return StreamingResponse(read_chunks(path, start, length), status_code=status_code, headers=headers)

    @app.api_route("/merged.parquet", methods=["GET", "HEAD"])
    async def merged_parquet(request: Request) -> Response:
        """The real merger's answer for a table without rows: a Parquet file with the schema."""
        buf = io.BytesIO()
        pl.DataFrame(schema=dict.fromkeys(ROW_COLUMNS, pl.String)).write_parquet(buf)
        body = buf.getvalue() if request.method == "GET" else b""
        return Response(body, media_type="application/vnd.apache.parquet")

    @app.get("/devices")
    async def devices() -> Any:
        return {"window_s": 300, "window_end": None, "covered_size": 0, "committed_size": 0, "rows": 0,
                "rows_without_device": 0, "devices": []}  # fmt: skip

    @app.get("/devices/{device_id}")
    async def device(device_id: str) -> Any:
        return JSONResponse({"detail": f"no merged row has deviceId {device_id!r}"}, status_code=404)

    @app.get("/merger/status", response_model=MergerStatus)
    async def status() -> MergerStatus:
        doc = MergerStatus()
        with contextlib.suppress(FileNotFoundError):
            doc = MergerStatus.model_validate_json(status_file.read_bytes())
        with contextlib.suppress(FileNotFoundError):
            doc.file_size = path.stat().st_size
        return doc

    @app.get("/healthz")
    async def healthz() -> Any:
        return {"status": "alive"}

    return app


if __name__ == "__main__":
    serve(create_app(DataLayout(Path(os.environ["DEVICESTREAM_DATA_DIR"]))), "merger")
