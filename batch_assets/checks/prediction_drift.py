"""Drift of a day's predictions against the previous day's, per task, from manifests.

Each manifest carries its file's prediction summary (``PredictionSummary``), so a
day's distribution is the sum of a few hundred bytes per file. The population
stability index (PSI) compares two days over the same bins:

* binary: the 10 equal bins over [0, 1];
* regression: the model's quantile bins (holdout deciles, outer bins open-ended), so
  each bin held about a tenth of the holdout; days scored with different bins (a
  retrained model's new deciles) are not compared;
* multiclass: the predicted-label distribution (one bin per class), with the class
  whose share moved most (the largest term of the PSI) reported beside it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from container.contract import FileManifest, PredictionSummary

_SHARE_FLOOR = 1e-4  # empty bins count as this share, so PSI stays finite


def psi_terms(expected: list[int], actual: list[int]) -> list[float]:
    """Each bin's share of the PSI: (a - e) * ln(a / e) over proportions."""
    expected_total, actual_total = max(sum(expected), 1), max(sum(actual), 1)
    terms = []
    for e, a in zip(expected, actual, strict=True):
        e_share = max(e / expected_total, _SHARE_FLOOR)
        a_share = max(a / actual_total, _SHARE_FLOOR)
        terms.append((a_share - e_share) * math.log(a_share / e_share))
    return terms


def population_stability_index(expected: list[int], actual: list[int]) -> float:
    """PSI = sum((a - e) * ln(a / e)) over bins of proportions (empty bins smoothed)."""
    return sum(psi_terms(expected, actual))


@dataclass
class DayPredictions:
    """One day's predictions of one task, summed over its files' manifests."""

    rows: int = 0  # rows with a prediction (NaN excluded)
    total: float = 0.0
    # histograms by their bin edges (binary and multiclass: one group, no edges)
    histograms: dict[tuple[float, ...], list[int]] = field(default_factory=dict)
    label_counts: Counter[str] = field(default_factory=Counter)

    def add(self, summary: PredictionSummary) -> None:
        self.rows += summary.count - summary.nan_count
        self.total += summary.sum
        edges = tuple(summary.bin_edges)
        known = self.histograms.setdefault(edges, [0] * len(summary.histogram))
        self.histograms[edges] = [a + b for a, b in zip(known, summary.histogram,
                                                         strict=True)]
        self.label_counts.update(summary.label_counts)

    @property
    def main_bins(self) -> tuple[float, ...]:
        """The bin edges most of the day's rows were counted in."""
        return max(self.histograms, key=lambda edges: sum(self.histograms[edges]),
                   default=())


def day_predictions(manifests: list[FileManifest], task: str) -> DayPredictions:
    """Sum of ``manifests``' summaries of ``task``: a day's done outputs, as its tally
    read them, or every readable manifest of an earlier day
    (``batch_assets.planning.day_manifests``)."""
    found = DayPredictions()
    for manifest in manifests:
        summary = manifest.predictions
        if summary is not None and summary.task == task:
            found.add(summary)
    return found


@dataclass(frozen=True)
class Drift:
    """A comparison's outcome: ``psi`` is None when the days cannot be compared."""

    psi: float | None
    why_not_compared: str = ""
    details: dict = field(default_factory=dict)


def compare_days(task: str, previous: DayPredictions, current: DayPredictions) -> Drift:
    if not previous.rows or not current.rows:
        return Drift(None, f"{current.rows} and {previous.rows} scored rows (this day, the "
                           "previous one)")
    if task == "multiclass":
        return _label_drift(previous, current)
    edges = current.main_bins
    if edges not in previous.histograms:
        return Drift(None, "the two days were scored by model versions with different "
                           "prediction bins (a retrained regression model has new deciles)")
    details = {"mean_prediction": current.total / current.rows,
               "previous_mean_prediction": previous.total / previous.rows}
    if task == "regression":
        details["bin_edges"] = [round(edge, 6) for edge in edges]
    return Drift(population_stability_index(previous.histograms[edges],
                                            current.histograms[edges]), details=details)


def _label_drift(previous: DayPredictions, current: DayPredictions) -> Drift:
    labels = sorted(set(previous.label_counts) | set(current.label_counts))
    before = [previous.label_counts[label] for label in labels]
    after = [current.label_counts[label] for label in labels]
    terms = psi_terms(before, after)
    worst = max(range(len(labels)), key=lambda i: terms[i])
    return Drift(sum(terms), details={
        "worst_class": labels[worst],
        "worst_class_share": round(after[worst] / max(sum(after), 1), 4),
        "previous_worst_class_share": round(before[worst] / max(sum(before), 1), 4),
        "predicted_label_shares": {label: round(count / max(sum(after), 1), 4)
                                   for label, count in zip(labels, after, strict=True)},
    })
