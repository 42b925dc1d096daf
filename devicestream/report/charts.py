"""The report's charts, drawn by matplotlib (Agg, no display) as inline SVG, text kept as text (so
the PDF's text can be searched and checked). Each function takes plain lists and returns a Chart:
the SVG and how many data points it drew (the report marks each chart with it; a test checks that
every chart has data)."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

BLUE, GREEN, ORANGE, PURPLE, GREY = "#2f6fdf", "#2a9d5b", "#e08a1e", "#8a5cd6", "#667085"
plt.rcParams.update(
    {
        "svg.fonttype": "none",
        "font.size": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "figure.dpi": 100,
    }
)


@dataclass(frozen=True)
class Chart:
    name: str
    svg: str
    points: int


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    # the svg element alone, without its RDF metadata (a date and licence URLs that are never fetched)
    return re.sub(r"<metadata>.*?</metadata>\s*", "", text[text.index("<svg") :], flags=re.S)


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} sampled", ha="center", va="center", transform=ax.transAxes, color=GREY)


def rate_chart(t: list[float], requested: list[float | None], achieved: list[float | None]) -> Chart:
    fig, ax = plt.subplots(figsize=(7.2, 2.6))
    ax.plot(t, requested, color=GREY, linestyle="--", linewidth=1.6, label="requested (profile)")
    ax.plot(t, achieved, color=BLUE, linewidth=1.6, label="achieved (generator rate_1s)")
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("events/s")
    ax.legend(loc="upper right", frameon=False)
    if not t:
        _empty(ax, "rate")
    return Chart("rate", _svg(fig), sum(v is not None for v in achieved))


def lag_chart(t: list[float], lag: list[int | None]) -> Chart:
    fig, ax = plt.subplots(figsize=(7.2, 2.2))
    ax.fill_between(t, [v or 0 for v in lag], color=ORANGE, alpha=0.25, step="post")
    ax.step(t, [v or 0 for v in lag], color=ORANGE, linewidth=1.4, where="post")
    ax.set_xlabel("seconds since the run started")
    ax.set_ylabel("offsets behind Kafka")
    if not t:
        _empty(ax, "lag")
    return Chart("lag", _svg(fig), sum(v is not None for v in lag))


def batch_chart(batch_ids: list[int], durations_ms: list[int]) -> Chart:
    fig, ax = plt.subplots(figsize=(7.2, 2.2))
    ax.bar([str(b) for b in batch_ids], durations_ms, color=GREEN)
    ax.set_xlabel("Spark batch id (the batches the sampler saw)")
    ax.set_ylabel("duration (ms)")
    if len(batch_ids) > 20:
        step = max(1, len(batch_ids) // 12)
        for i, label in enumerate(ax.get_xticklabels()):
            label.set_visible(i % step == 0)
    if not batch_ids:
        _empty(ax, "Spark batch")
    return Chart("batches", _svg(fig), len(batch_ids))


def freshness_chart(values: list[float], p50: float | None, p99: float | None) -> Chart:
    fig, ax = plt.subplots(figsize=(7.2, 2.2))
    if values:
        ax.hist(values, bins=min(30, max(5, len(values) // 3)), color=PURPLE, alpha=0.75)
    for q, v, style in (("p50", p50, "-"), ("p99", p99, "--")):
        if v is not None:
            ax.axvline(v, color="black", linestyle=style, linewidth=1)
            ax.text(v, ax.get_ylim()[1] * 0.92, f" {q} {v:.2f} s", fontsize=8)
    ax.set_xlabel("freshness: seconds from eventTime to merged (sampled each second)")
    ax.set_ylabel("samples")
    if not values:
        _empty(ax, "freshness")
    return Chart("freshness", _svg(fig), len(values))


def device_chart(devices: list[str], rows: list[int], error_share: list[float]) -> Chart:
    fig, ax = plt.subplots(figsize=(7.2, 2.4))
    ax.bar(devices, rows, color=BLUE, alpha=0.8, label="rows")
    ax.set_ylabel("rows")
    ax2 = ax.twinx()
    ax2.plot(devices, [e * 100 for e in error_share], "o", color="#d64545", label="error share (%)")
    ax2.set_ylabel("error share (%)")
    ax2.grid(False)
    ax2.set_ylim(0, max([10.0, *[e * 100 * 1.2 for e in error_share]]))
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    if not devices:
        _empty(ax, "device")
    return Chart("devices", _svg(fig), len(devices))


def _short(v: str, n: int = 24) -> str:
    return v if len(v) <= n else v[: n - 1] + "…"


def architecture_chart(arch: dict[str, dict[str, str]]) -> Chart:
    """The pipeline's diagram: a box per component with its version and settings (the table under it
    has them all, unshortened), arrows for the data's way."""
    fig, ax = plt.subplots(figsize=(8.4, 3.6))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 46)
    ax.axis("off")
    boxes = {
        "generator": (0.5, 25, "Generator", "FastAPI + aiokafka"),
        "kafka": (25.5, 25, "Kafka", "KRaft"),
        "spark": (50.5, 25, "Spark", "Structured Streaming"),
        "merger": (75.5, 25, "Merger", "FastAPI + polars"),
        "gateway": (38, 1, "Gateway", "the one HTTP door"),
    }
    for name, (x, y, title, what) in boxes.items():
        facts = arch.get(name, {})
        ax.add_patch(
            FancyBboxPatch(
                (x, y), 23.5, 18, boxstyle="round,pad=0.3,rounding_size=1.2", fc="#eef3fc", ec=BLUE, linewidth=1.2
            )
        )
        ax.text(x + 11.75, y + 16.8, title, ha="center", va="top", fontsize=9, fontweight="bold")
        ax.text(x + 11.75, y + 13.4, what, ha="center", va="top", fontsize=6.5, color=GREY)
        body = "\n".join(_short(f"{k}: {v}") for k, v in list(facts.items())[:4])
        ax.text(x + 1, y + 9.8, body, ha="left", va="top", fontsize=6, family="monospace")
    for x in (24.3, 49.3, 74.3):
        ax.add_patch(FancyArrowPatch((x, 34), (x + 1.6, 34), arrowstyle="-|>", mutation_scale=12, color=GREY))
    for x in (12.25, 87.25):
        ax.add_patch(FancyArrowPatch((49.75, 19.6), (x, 24.6), arrowstyle="<|-|>", mutation_scale=9, color=GREY))
    ax.text(49.75, 21.6, "HTTP", ha="center", fontsize=6.5, color=GREY)
    return Chart("architecture", _svg(fig), len(boxes))
