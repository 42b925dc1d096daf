"""The merge engine's read-ahead: ready batch files are read and checked in a small thread pool
(polars and file reads release the GIL) and handed over strictly in merge order, with the bytes in
flight bounded (read_ahead_bytes, one file at least)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from contract.batches import BatchManifest
from contract.csv import BatchName
from services.merger.batchfile import ParsedBatch, parse_batch
from services.merger.errors import InvalidBatchError
from services.merger.manifests import read_manifest
from services.merger.planner import batch_file
from services.merger.settings import MergerSettings

#: (batch name, path, raw bytes or None when the file vanished, parsed batch / None if empty / the error,
#: the manifest (None for a legacy batch))
Loaded = tuple[BatchName, Path, bytes | None, ParsedBatch | Exception | None, BatchManifest | None]


class ReadAhead:
    settings: MergerSettings
    _pool: ThreadPoolExecutor

    def _read_ahead(self, ready: list[BatchName]) -> Iterator[Loaded]:
        """Load results in `ready` order. Files are submitted while the bytes in flight stay under
        read_ahead_bytes (one at least), so memory is bounded by bytes, not by a number of files."""
        pending: deque[tuple[int, Future[Loaded]]] = deque()
        in_flight = 0
        items = iter(ready)
        nxt = next(items, None)
        try:
            while True:
                while nxt is not None and (not pending or in_flight < self.settings.read_ahead_bytes):
                    path = self.settings.rows_dir / batch_file(nxt)
                    size = size_of(path)
                    pending.append((size, self._pool.submit(self._load, (nxt, path))))
                    in_flight += size
                    nxt = next(items, None)
                if not pending:
                    return
                size, future = pending.popleft()
                in_flight -= size
                yield future.result()
        finally:
            for _, f in pending:
                f.cancel()

    @staticmethod
    def _load(item: tuple[BatchName, Path]) -> Loaded:
        """Read and check one file. An OSError reading it is raised (the pass is retried, as for disk
        full); any exception checking it is returned: the caller decides."""
        batch_id, path = item
        manifest: BatchManifest | None = None
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return batch_id, path, None, None, None
        try:
            manifest = read_manifest(path)
            parsed = parse_batch(raw)
            if manifest is not None and parsed is not None and not parsed.keyed:
                raise InvalidBatchError("a batch with a manifest has no Kafka columns")
            return batch_id, path, raw, parsed, manifest
        except Exception as e:  # InvalidBatchError, or anything unexpected (retried, then quarantined)
            return batch_id, path, raw, e, manifest
        except BaseException as e:  # a polars panic is a BaseException (pyo3's PanicException)
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            return batch_id, path, raw, RuntimeError(f"{type(e).__name__}: {e}"), manifest


def size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
