"""The benchmark's table, its targets, and its bar chart."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.engines import (
    ENGINE,
    FRAMEWORK_BEST,
    LIMIT,
    NETWORK_PATHS,
    ONNX_RUNTIME,
    RAY,
    SEED,
)

# The targets: (workload, compared with, minimum throughput ratio).
THROUGHPUT_TARGETS = [("W1", SEED, 1.8), ("W2", SEED, 3.0), ("W1", RAY, 1.15),
                      ("W2", RAY, 4.0), ("W4", SEED, 2.0), ("W5", SEED, 2.0)]
LIMIT_TARGET = ("W1", 1.15)  # engine time at most this multiple of the limit's
RSS_TARGET = ("W3", 1.5e9)  # bytes
# the networks: engine time at most this multiple of the fastest other path's
FASTEST_TARGETS = [("W4", 1.1), ("W5", 1.1)]


@dataclass
class Row:
    workload: str
    description: str
    engine: str
    rows: int
    seconds: float | None
    runs: list[float]
    peak_rss_bytes: int | None
    input_bytes: int
    details: dict = field(default_factory=dict)
    error: str | None = None
    max_difference: float | None = None  # from the framework's predictions, on the sample
    predictor: str | None = None  # what scored the rows, from the engine's manifests

    @property
    def rows_per_second(self) -> float | None:
        return self.rows / self.seconds if self.seconds else None

    def as_dict(self) -> dict:
        return {**asdict(self), "rows_per_second": self.rows_per_second}


def _find(rows: list[Row], workload: str, engine: str) -> Row | None:
    for row in rows:
        if row.workload == workload and row.engine == engine and row.seconds:
            return row
    return None


def speedup(rows: list[Row], workload: str, engine: str, baseline: str) -> float | None:
    """How many times ``engine``'s throughput is ``baseline``'s on ``workload``."""
    ours, theirs = _find(rows, workload, engine), _find(rows, workload, baseline)
    if ours is None or theirs is None:
        return None
    return theirs.seconds / ours.seconds


def fastest_path(rows: list[Row], workload: str) -> Row | None:
    """The fastest of the paths the engine is measured against on a network workload
    (the seed, the framework at its best, ONNX Runtime); ``None`` on other workloads."""
    if not any(_find(rows, workload, name) for name in (FRAMEWORK_BEST, ONNX_RUNTIME)):
        return None
    paths = [row for name in NETWORK_PATHS if (row := _find(rows, workload, name))]
    return min(paths, key=lambda row: row.seconds) if paths else None


def render_table(rows: list[Row]) -> str:
    header = ["workload", "engine", "rows/s", "x seed", "time / limit", "time / fastest",
              "peak RSS", "runs (s)", "predictor"]
    lines = [header]
    for row in rows:
        if row.error:
            lines.append([f"{row.workload} {row.description}", row.engine, "FAILED", "", "",
                          "", "", row.error[:60], ""])
            continue
        vs_seed = speedup(rows, row.workload, row.engine, SEED)
        limit = _find(rows, row.workload, LIMIT)
        fastest = fastest_path(rows, row.workload)
        lines.append([
            f"{row.workload} {row.description}", row.engine,
            f"{row.rows_per_second:,.0f}",
            f"{vs_seed:.2f}" if vs_seed else "-",
            f"{row.seconds / limit.seconds:.2f}" if limit else "-",
            f"{row.seconds / fastest.seconds:.2f}" if fastest else "-",
            f"{row.peak_rss_bytes / 2**20:,.0f} MiB" if row.peak_rss_bytes else "-",
            " ".join(f"{s:.1f}" for s in row.runs),
            row.predictor or "",
        ])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rendered = [" | ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True))
                .rstrip() for line in lines]
    rendered.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(rendered)


def load_line(rows: list[Row]) -> str | None:
    """How busy other processes kept the machine during the runs (``benchmarks.measure``)."""
    import os

    loads = [row.details["other_cores"] for row in rows if "other_cores" in row.details]
    if not loads:
        return None
    return (f"other processes' CPU use during the runs (median per row): "
            f"{min(loads):.1f} to {max(loads):.1f} of {os.cpu_count()} cores")


def target_checks(rows: list[Row]) -> list[str]:
    """One line per target of the issue: the measured figure and whether it is met."""
    lines = []
    for workload, baseline, minimum in THROUGHPUT_TARGETS:
        ratio = speedup(rows, workload, ENGINE, baseline)
        if ratio is not None:
            lines.append(f"{workload}: engine {ratio:.2f}x {baseline} "
                         f"(target >= {minimum}x): {'met' if ratio >= minimum else 'MISSED'}")
    workload, maximum = LIMIT_TARGET
    ours, limit = _find(rows, workload, ENGINE), _find(rows, workload, LIMIT)
    if ours and limit:
        ratio = ours.seconds / limit.seconds
        lines.append(f"{workload}: engine time {ratio:.2f}x the machine limit "
                     f"(target <= {maximum}x): {'met' if ratio <= maximum else 'MISSED'}")
        scoring = ours.details.get("scoring_seconds")
        if scoring:
            lines.append(f"{workload}: of which start-up {ours.details['startup_seconds']:.1f} s;"
                         f" the scoring phase alone is {scoring / limit.seconds:.2f}x the limit")
    for workload, maximum in FASTEST_TARGETS:
        lines.extend(_fastest_check(rows, workload, maximum))
    workload, ceiling = RSS_TARGET
    ours = _find(rows, workload, ENGINE)
    if ours and ours.peak_rss_bytes:
        lines.append(f"{workload}: engine peak RSS {ours.peak_rss_bytes / 1e9:.2f} GB for a "
                     f"{ours.input_bytes / 1e9:.2f} GB file (target < {ceiling / 1e9} GB): "
                     f"{'met' if ours.peak_rss_bytes < ceiling else 'MISSED'}")
    return lines


def _fastest_check(rows: list[Row], workload: str, maximum: float) -> list[str]:
    """A network workload: the engine's time over the fastest other path's, where each
    spent it, what the engine chose, and the largest difference from the framework."""
    ours, fastest = _find(rows, workload, ENGINE), fastest_path(rows, workload)
    if ours is None or fastest is None:
        return []
    ratio = ours.seconds / fastest.seconds
    lines = [f"{workload}: engine time {ratio:.2f}x the fastest other path ({fastest.engine}) "
             f"(target <= {maximum}x): {'met' if ratio <= maximum else 'MISSED'}"]
    if "startup_seconds" in ours.details and "scoring_seconds" in fastest.details:
        lines.append(
            f"{workload}: engine start-up {ours.details['startup_seconds']:.1f} s + scoring "
            f"{ours.details['scoring_seconds']:.1f} s; {fastest.engine} loading "
            f"{fastest.details['load_seconds']:.1f} s + scoring "
            f"{fastest.details['scoring_seconds']:.1f} s")
    if ours.predictor:
        lines.append(f"{workload}: the engine scored with {ours.predictor}")
    checked = [row for row in rows if row.workload == workload and row.max_difference is not None]
    rejected = [row.engine for row in rows if row.workload == workload and row.error
                and "differ from the framework" in row.error]
    if checked:
        worst = max(checked, key=lambda row: row.max_difference)
        lines.append(f"{workload}: predictions within 1e-5 of the framework's (largest "
                     f"difference {worst.max_difference:.1e}, {worst.engine}"
                     + (f"; rejected: {', '.join(rejected)}): MISSED" if rejected
                        else "): met"))
    return lines


def write_chart(rows: list[Row], path: Path, mode: str) -> Path:
    """Grouped bars, one group per workload: throughput above, peak memory below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(row.workload for row in rows))
    engines = list(dict.fromkeys(row.engine for row in rows))
    width = 0.8 / max(len(engines), 1)
    figure, (speed_axis, memory_axis) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    panels = ((speed_axis, lambda row: row.rows_per_second / 1e3, "%.0f",
               "thousand rows / s (higher is better)"),
              (memory_axis, lambda row: row.peak_rss_bytes / 2**30, "%.1f",
               "peak RSS of the process tree, GiB"))
    for axis, value, fmt, label in panels:
        for index, engine in enumerate(engines):
            xs, heights = [], []
            for position, workload in enumerate(workloads):
                row = _find(rows, workload, engine)
                if row is not None and row.peak_rss_bytes:
                    xs.append(position + index * width)
                    heights.append(value(row))
            bars = axis.bar(xs, heights, width, label=engine)
            axis.bar_label(bars, fmt=fmt, fontsize=7)
        axis.set_ylabel(label)
    descriptions = {row.workload: row.description for row in rows}
    memory_axis.set_xticks([p + width * (len(engines) - 1) / 2
                            for p in range(len(workloads))],
                           [f"{w}\n{descriptions[w]}" for w in workloads])
    speed_axis.set_title(f"Batch scoring, {mode} mode (median of runs; same machine, same run)")
    speed_axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
