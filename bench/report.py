"""The run's outputs: latest.json, latest.md (a Markdown table) and the PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import orjson

from bench.common import Figure, StageResult

#: How values and baselines are measured (each figure's notes say it in detail, "method, ...").
METHOD = (
    "Method: a baseline that runs in a JVM runs warm in its own process (plain Spark and the job's batch "
    "run: a warm-up pass, then at least 3 timed passes, median; Kafka's ProducerPerformance is the "
    "exception: a fresh JVM per repetition, see its notes); the other baselines repeat in a warm page "
    "cache. A long-running component is timed warm too: the streaming Spark job reads a warm-up "
    "backlog before the timed one, the generator and the gateway serve a warm-up run first."
)


def _num(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        s = f"{x:,.0f}"
    elif abs(x) >= 1:
        s = f"{x:,.2f}"
    else:
        s = f"{x:.3g}"
    return f"{s} {unit}".strip()


def _spread(f: Figure) -> str:
    v = f.value
    fmt = _num(v.median, f.unit)
    return fmt if v.n == 1 else f"{fmt} [{_num(v.min)}..{_num(v.max)}] n={v.n}"


def figure_row(f: Figure) -> str:
    base = "-" if f.baseline is None else _spread_of(f)
    ratio = "-" if f.ratio is None else f"{f.ratio:.3g}"
    return _row([f.stage, f.name, _spread(f), f"{f.baseline_name}: {base}", ratio, f.target.text, f.miss_text()])


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _spread_of(f: Figure) -> str:
    b = f.baseline
    assert b is not None
    fmt = _num(b.median, f.unit)
    return fmt if b.n == 1 else f"{fmt} [{_num(b.min)}..{_num(b.max)}] n={b.n}"


def markdown(doc: dict[str, Any], results: list[StageResult]) -> str:
    m = doc["machine"]
    lines = [
        f"# devicestream bench ({'quick' if doc['quick'] else 'full'} run)",
        "",
        f"{doc['started_at']}, {doc['duration_s']:.0f} s. Machine: {m['cpus_logical']} logical cores "
        f"({m['cpu_model']}), {m['memory_gb']} GB RAM, load average at start {m['load_avg_at_start']}. "
        f"Python {m['python']}, {m['java']}, Kafka {m['kafka']}, PySpark {m['pyspark']}, pandas {m['pandas']}, "
        f"polars {m['polars']}; commit {m['git_commit']}.",
        "",
        "Value and baseline: median [min..max] n=repetitions. Ratio = value / baseline (for times: "
        "baseline / value, so higher is better).",
        "",
        METHOD,
        "",
        "| stage | figure | value | baseline (same run) | ratio | target | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    figures = [f for r in results for f in r.figures]
    lines += [figure_row(f) for f in figures]
    lines += growth_table(figures)
    errors = [r for r in results if r.error]
    if errors:
        lines += ["", "## Stage errors", ""]
        lines += [f"- **{r.stage}**: {r.error}" for r in errors]
    lines += ["", "## Notes, sizes and profiles", ""]
    for f in figures:
        sizes = ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in f.sizes.items())
        lines.append(f"- **{f.stage} / {f.name}** ({sizes})")
        for n in f.notes:
            lines.append(f"  - {n}")
        if f.profile:
            lines.append(f"  - profile: `{f.profile}`")
        for k, v in f.extra.items():
            if v is not None and not isinstance(v, list | dict):
                lines.append(f"  - {k}: {v}")
    lines += ["", "Plots: `freshness.png` (end to end), `throughput.png` (each figure vs its baseline).", ""]
    return "\n".join(lines)


def growth_table(figures: list[Figure]) -> list[str]:
    """Cost as work grows: a row per stage measured at two sizes (common.growth_figure)."""
    rows = [f for f in figures if "growth" in f.extra and f.baseline is not None]
    if not rows:
        return []
    out = [
        "",
        "## Cost as work grows",
        "",
        "CPU cost per record (the component's processes) at two sizes in the same run; flat = ratio B/A <= the target.",
        "",
        "| stage | work | size A | cost per record at A | size B | cost per record at B | ratio B/A | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in rows:
        g = f.extra["growth"]
        assert f.baseline is not None
        word = "flat" if f.met else "GROWS"
        cells = [
            f.stage,
            g["what"],
            f"{g['size_a']:,}",
            _num(f.baseline.median, "CPU-us"),
            f"{g['size_b']:,}",
            _num(f.value.median, "CPU-us"),
            f"{f.ratio:.3g}" if f.ratio is not None else "-",
            f"{word} ({f.miss_text()})",
        ]
        out.append(_row(cells))
    return out


def plot_throughput(results: list[StageResult], path: Path) -> None:
    figures = [f for r in results for f in r.figures if f.baseline is not None]
    if not figures:
        return
    cols = 3
    rows = (len(figures) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 4.2, rows * 3.2), squeeze=False)
    for ax, f in zip(axes.flat, figures, strict=False):
        assert f.baseline is not None
        vals = [f.value.median, f.baseline.median]
        errs = [
            [f.value.median - f.value.min, f.baseline.median - f.baseline.min],
            [f.value.max - f.value.median, f.baseline.max - f.baseline.median],
        ]
        color = "tab:green" if f.met else "tab:red"
        ax.bar(["measured", "baseline"], vals, yerr=errs, color=[color, "tab:gray"], capsize=4)
        ax.set_title(f"{f.stage}: {f.name}", fontsize=9)
        ax.set_ylabel(f.unit, fontsize=8)
        ax.tick_params(labelsize=8)
        if f.target.on == "value" and f.target.op != "within":
            ax.axhline(f.target.limit, color="black", linestyle="--", linewidth=1, label="target")
            ax.legend(fontsize=7)
        ratio = f"ratio {f.ratio:.3g}" if f.ratio is not None else ""
        ax.text(0.5, 0.92, ratio, transform=ax.transAxes, ha="center", fontsize=8)
    for ax in list(axes.flat)[len(figures) :]:
        ax.axis("off")
    fig.suptitle("devicestream: each stage vs its baseline (green = target met, red = missed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_freshness(results: list[StageResult], path: Path) -> None:
    series = next((r.series.get("freshness") for r in results if r.series.get("freshness")), None)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    if not series:
        ax.text(0.5, 0.5, "end-to-end stage not run", ha="center", va="center")
        ax.axis("off")
    else:
        t = series["t"]
        ax.plot(t, series["p50"], label="freshness p50 (per second)", color="tab:blue")
        ax.plot(t, series["p99"], label="freshness p99 (per second)", color="tab:red", linewidth=0.8)
        ax.set_xlabel("seconds since the stack was ready")
        ax.set_ylabel("eventTime -> row in merged.csv (s)")
        ax.set_yscale("log")
        ax2 = ax.twinx()
        ax2.step(t, series["rate_rows"], where="post", color="tab:gray", alpha=0.6, label="rows/s merged")
        ax2.step(t, series["rate_requested"], where="post", color="black", linestyle=":", label="events/s requested")
        ax2.set_ylabel("rate")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
        ax.set_title("end-to-end freshness over time, with the rate")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(out: Path, doc: dict[str, Any], results: list[StageResult]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        **doc,
        "figures": [f.to_json() for r in results for f in r.figures],
        "stages": [
            {"stage": r.stage, "seconds": round(r.seconds, 1), "error": r.error, "series": r.series} for r in results
        ],
    }
    (out / "latest.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    (out / "latest.md").write_text(markdown(doc, results))
    plot_throughput(results, out / "throughput.png")
    plot_freshness(results, out / "freshness.png")
