"""A partition's prediction distribution as a small markdown table, from its manifests.

Each done file's manifest carries a ``PredictionSummary`` (count, NaN, min, max,
sum, histogram; per class for multiclass), so the distribution of a model's day
costs no read of the predictions: the tally already holds the manifests. The
table is the ``prediction_distribution`` metadata entry, so a user sees a day's
predictions on its partition page without opening files:

* binary: rows, NaN, min / mean / max, and the 10 equal bins over [0, 1];
* regression: the same figures over the model's bins (holdout deciles, the outer
  two open-ended), as the drift check compares them;
* multiclass: rows per predicted class, with their shares.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from itertools import pairwise

from container.contract import PredictionSummary

_BAR_WIDTH = 20  # characters of the longest histogram bar


def distribution_markdown(summaries: Iterable[PredictionSummary | None]) -> str:
    """The day's distribution summed over its files' summaries (older manifests
    without one are counted as such)."""
    found = [s for s in summaries if s is not None]
    if not found:
        return "no prediction statistics in the manifests (written by an older container)"
    task = found[0].task
    rows = sum(s.count for s in found)
    nan = sum(s.nan_count for s in found)
    lines = [f"**{task}**: {rows:,} rows, {nan:,} NaN"]
    if task == "multiclass":
        labels: Counter[str] = Counter()
        for summary in found:
            labels.update(summary.label_counts)
        lines += ["", "| predicted class | rows | share | |", "|---|---:|---:|---|"]
        lines += _histogram_rows(sorted(labels), [labels[label] for label in sorted(labels)])
        return "\n".join(lines)
    numbers = [s for s in found if s.min is not None]
    if numbers:
        low = min(s.min for s in numbers)
        high = max(s.max for s in numbers)
        mean = sum(s.sum for s in numbers) / max(rows - nan, 1)
        lines += ["", "| min | mean | max |", "|---:|---:|---:|",
                  f"| {low:.4g} | {mean:.4g} | {high:.4g} |"]
    edges = _main_edges(found)
    counts = _summed_histogram([s for s in found if list(s.bin_edges) == edges])
    labels = _bin_labels(edges, len(counts))
    lines += ["", "| bin | rows | share | |", "|---|---:|---:|---|"]
    lines += _histogram_rows(labels, counts)
    return "\n".join(lines)


def _main_edges(summaries: list[PredictionSummary]) -> list[float]:
    """The bin edges most rows were counted in (a day scored by two versions of a
    regression model has two sets of bins; the table shows the larger)."""
    rows_by_edges: Counter[tuple[float, ...]] = Counter()
    for summary in summaries:
        rows_by_edges[tuple(summary.bin_edges)] += sum(summary.histogram)
    return list(rows_by_edges.most_common(1)[0][0])


def _summed_histogram(summaries: list[PredictionSummary]) -> list[int]:
    counts = [0] * len(summaries[0].histogram)
    for summary in summaries:
        counts = [a + b for a, b in zip(counts, summary.histogram, strict=True)]
    return counts


def _bin_labels(edges: list[float], bins: int) -> list[str]:
    """Regression: ``< e0``, ``e0 - e1``, ..., ``≥ en``; else equal bins over [0, 1]."""
    if edges:
        inner = [f"{a:.4g} - {b:.4g}" for a, b in pairwise(edges)]
        return [f"< {edges[0]:.4g}", *inner, f"≥ {edges[-1]:.4g}"]
    width = 1 / bins
    return [f"{i * width:.1f} - {(i + 1) * width:.1f}" for i in range(bins)]


def _histogram_rows(labels: list[str], counts: list[int]) -> list[str]:
    total = max(sum(counts), 1)
    peak = max(counts, default=0) or 1
    return [f"| {label} | {count:,} | {count / total:.1%} | "
            f"{'█' * round(_BAR_WIDTH * count / peak)} |"
            for label, count in zip(labels, counts, strict=True)]
