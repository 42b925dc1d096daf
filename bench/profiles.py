"""Profiles saved next to a missed target, and a one-line summary of what each shows."""

from __future__ import annotations

import cProfile
import io
import pstats
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

T = TypeVar("T")


def cprofile_call(fn: Callable[[], T], out: Path, top: int = 5) -> tuple[T, str]:
    """Run `fn` under cProfile (pyinstrument is not installed in this venv); save the stats to
    `out` (.prof, open with snakeviz or `python -m pstats`) and a text table beside it; return
    fn's result and the hottest functions by own time."""
    out.parent.mkdir(parents=True, exist_ok=True)
    prof = cProfile.Profile()
    result = prof.runcall(fn)
    prof.dump_stats(out)
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).sort_stats("tottime")
    stats.print_stats(25)
    out.with_suffix(".txt").write_text(buf.getvalue())
    total = max(sum(v[2] for v in stats.stats.values()), 1e-9)  # type: ignore[attr-defined]
    hot = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]  # type: ignore[attr-defined]
    summary = ", ".join(f"{_fn_name(k)} {v[2] / total:.0%}" for k, v in hot)
    return result, f"own time: {summary}"


def _fn_name(key: tuple[str, int, str]) -> str:
    file, line, name = key
    short = file.rsplit("/", 2)[-2:] if "/" in file else [file]
    return f"{name} ({'/'.join(short)}:{line})" if line else name


def speedscope_top(path: Path, top: int = 6) -> str:
    """The functions with the most own samples in a py-spy speedscope file."""
    try:
        doc: dict[str, Any] = orjson.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        return f"(no profile: {e})"
    frames = doc.get("shared", {}).get("frames", [])
    own: Counter[int] = Counter()
    total = 0
    for prof in doc.get("profiles", []):
        weights = prof.get("weights") or [1] * len(prof.get("samples", []))
        for stack, w in zip(prof.get("samples", []), weights, strict=False):
            if stack:
                own[stack[-1]] += w
                total += w
    if not total:
        return "(profile has no samples)"
    parts = []
    for idx, w in own.most_common(top):
        f = frames[idx] if idx < len(frames) else {}
        file = str(f.get("file", "")).rsplit("/", 1)[-1]
        parts.append(f"{f.get('name', '?')} ({file}:{f.get('line', '')}) {w / total:.0%}")
    return "py-spy own samples: " + ", ".join(parts)
