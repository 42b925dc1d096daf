"""Small file helpers every component needs to write its shared files crash-safely."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

import orjson

#: The name of atomic_write_bytes' temp file for the file named group 1, by process id group 2 (a
#: crash leaves it behind; the writer's owner prunes it).
TEMP_PATTERN: Final = re.compile(r"^\.(.+)\.tmp-(\d+)$")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` so a reader sees the old or the new content, never a mix:
    write a temp file (TEMP_PATTERN) beside it, fsync it, rename over, fsync the folder. When the
    write fails (disk full...) the temp file is removed and `path` is unchanged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: object, *, durable: bool = True) -> None:
    atomic_write_bytes(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2), durable=durable)


def read_json(path: Path) -> object | None:
    """The JSON document at `path`, or None when the file does not exist."""
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
