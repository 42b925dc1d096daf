"""GET/HEAD /merged.csv: the committed prefix of merged.csv (its retained segments, as one file),
with ETag/If-None-Match, Last-Modified and a single byte Range; with filters, the matching rows
(computed by the QueryService). The gateway's only: app.py guards it with the internal secret."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from contract.api import Problem
from services.merger.compacted import Part, SegmentReader, open_part
from services.merger.deps import Queries, Settings, StartedAt, WatcherDep, committed_state
from services.merger.download import Snapshot, etag_matches, parse_range
from services.merger.query_api import FILTER_RESPONSES, RowQueryParam, add_get_and_head, download_headers
from services.merger.segments import stream_parts

log = logging.getLogger(__name__)

CHUNK_SIZE = 256 * 1024
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"

router = APIRouter()


def _open_parts(parts: list[Part]) -> list[tuple[SegmentReader, int, int]]:
    """Open every part's file now: a segment retention removes meanwhile stays readable to this
    answer (a consistent snapshot). Raises FileNotFoundError when one is already gone."""
    opened: list[tuple[SegmentReader, int, int]] = []
    try:
        for part in parts:  # (a compacted segment's Parquet copy renders back to its CSV bytes)
            opened.append((open_part(part), part.offset, part.length))
    except BaseException:
        for f, _, _ in opened:
            f.close()
        raise
    return opened


def _read_range(parts: list[tuple[SegmentReader, int, int]], start: int, length: int) -> Iterator[bytes]:
    """Chunks of the parts' bytes (one after the other) from `start`, `length` bytes in all: memory
    flat whatever the size. Closes the files."""
    try:
        pos = 0
        for f, offset, size in parts:
            begin, end = max(start, pos), min(start + length, pos + size)
            pos += size
            if begin >= end:
                continue
            f.seek(offset + begin - (pos - size))
            remaining = end - begin
            while remaining > 0:
                chunk = f.read(min(CHUNK_SIZE, remaining))
                if not chunk:  # cannot happen for committed bytes; never hang a client on it
                    log.error("a segment is shorter than its committed length", extra={"path": f.name})
                    return
                remaining -= len(chunk)
                yield chunk
    finally:
        for f, _, _ in parts:
            f.close()


def snapshot(watcher: WatcherDep, settings: Settings, started_at: StartedAt) -> tuple[Snapshot, list[Part]]:
    """What a download serves now: the committed state's validators and the parts to read."""
    state = committed_state(watcher)
    # Before the first row is merged the committed prefix is the header line alone: that is an
    # answer (an empty table), so readers pointed at merged.csv work from the first second.
    last_modified = state.last_merge_at if state.last_merge_at is not None else started_at
    parts = stream_parts(state, settings.merger_dir)
    size = sum(p[2] for p in parts)
    return Snapshot(state.generation, size, last_modified, state.retained[0].seq), parts


async def merged_csv(
    request: Request,
    q: RowQueryParam,
    queries: Queries,
    watcher: WatcherDep,
    settings: Settings,
    started_at: StartedAt,
) -> Response:
    """merged.csv up to its committed length: one header, then whole rows only, whatever is being
    appended meanwhile (in segments: the retained ones, oldest first, as one file). Supports
    ETag/If-None-Match, HEAD and a single byte Range. With filters,
    only the matching rows and columns (same header line for the columns kept), without Range."""
    if not q.is_unfiltered:
        return await queries.answer(request, q, "csv")
    while True:
        snap, parts = snapshot(watcher, settings, started_at)
        headers = {
            "ETag": snap.etag,
            "Last-Modified": snap.last_modified_http,
            "Accept-Ranges": "bytes",
            "Cache-Control": "no-cache",
        }
        if etag_matches(request.headers.get("if-none-match"), snap.etag):
            return Response(status_code=304, headers=headers)
        byte_range = parse_range(request.headers.get("range"), snap.size)
        if_range = request.headers.get("if-range")
        if byte_range is not None and if_range and if_range.strip() not in (snap.etag, snap.last_modified_http):
            byte_range = None  # the client's copy is of another version: send it all
        status, start, length = 200, 0, snap.size
        if byte_range is not None:
            start, end = byte_range
            status, length = 206, end - start + 1
            headers["Content-Range"] = f"bytes {start}-{end}/{snap.size}"
        headers["Content-Length"] = str(length)
        if request.method == "HEAD":
            return Response(status_code=status, headers=headers, media_type=CSV_MEDIA_TYPE)
        try:
            opened = _open_parts(parts)
        except FileNotFoundError:  # retention removed a segment just now: the next snapshot
            continue
        return StreamingResponse(
            _read_range(opened, start, length),
            status_code=status,
            headers=headers,
            media_type=CSV_MEDIA_TYPE,
        )


add_get_and_head(
    router,
    "/merged.csv",
    merged_csv,
    response_class=StreamingResponse,
    dependencies=[Depends(download_headers)],
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": "merged.csv up to its committed length (the header line alone before the first row)",
        },
        206: {"content": {"text/csv": {}}, "description": "the requested byte range"},
        304: {"description": "not modified (If-None-Match)"},
        416: {"model": Problem, "description": "range not satisfiable"},
        422: FILTER_RESPONSES[422],
        503: FILTER_RESPONSES[503],
    },
)
