"""Where the installed parts live (make install puts them in the work tree)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RESOURCES = Path(__file__).resolve().parent / "resources"


def jars_dir(kind: str) -> Path:
    """The folder of resolved jars for `kind` ("kafka" or "spark"), checked to exist."""
    base = Path(os.environ.get("DEVICESTREAM_JARS_DIR", REPO_ROOT / ".jars"))
    d = base / kind
    if not (d / ".installed").exists():
        raise FileNotFoundError(
            f"{d} has no resolved jars: run `make install` (it resolves runtime/maven/{kind}/pom.xml)"
        )
    return d


def venv_bin(name: str) -> str:
    """An executable installed beside the running interpreter (spark-submit, uvicorn, ...)."""
    return str(Path(sys.executable).parent / name)
