"""Reading a batch's manifest (contract.batches.BatchManifest) beside its rows file, and a cache of
them for planning (a pass plans every file present; a manifest is read again only when it changes)."""

from __future__ import annotations

import os
from pathlib import Path

from contract.batches import BatchManifest
from contract.csv import LEGACY_LINEAGE, manifest_file_name, parse_batch_name
from services.merger.batchfile import first_line
from services.merger.errors import InvalidBatchError


def read_manifest(path: Path) -> BatchManifest | None:
    """The manifest beside a batch file with a lineage (None for a legacy name). Raises
    InvalidBatchError when it is missing or does not validate."""
    name = parse_batch_name(path.name)
    if name is None or name.lineage == LEGACY_LINEAGE:
        return None
    try:
        raw = (path.parent / manifest_file_name(path.name)).read_bytes()
    except FileNotFoundError:
        raise InvalidBatchError(f"its manifest {manifest_file_name(path.name)} is missing") from None
    try:
        manifest = BatchManifest.from_bytes(raw)
    except ValueError as e:
        raise InvalidBatchError(f"its manifest does not validate: {first_line(str(e))}") from e
    if (manifest.lineage, manifest.batch_id) != (name.lineage, name.batch_id):
        raise InvalidBatchError(f"its manifest is of {manifest.lineage} batch {manifest.batch_id}")
    return manifest


class ManifestCache:
    """Manifests by file name, read again when their size or mtime changes (a re-run rewrites one)."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[tuple[int, int], BatchManifest | None]] = {}

    def get(self, folder: Path, rows_name: str) -> BatchManifest | None:
        """The manifest of batch file `rows_name`, None when missing or invalid."""
        name = manifest_file_name(rows_name)
        try:
            st = os.stat(folder / name)
        except OSError:
            self._cache.pop(name, None)
            return None
        key = (st.st_size, st.st_mtime_ns)
        cached = self._cache.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            manifest = read_manifest(folder / rows_name)
        except (InvalidBatchError, OSError):
            manifest = None
        self._cache[name] = (key, manifest)
        return manifest

    def keep(self, names: set[str]) -> None:
        """Forget the manifests not in `names` (their files are gone)."""
        for name in [n for n in self._cache if n not in names]:
            del self._cache[name]
