"""95 % bootstrap intervals of benchmark numbers over their items, so run-vs-run and profile-vs-profile
differences can be read against the noise of small test sets.

Each benchmark gives one row of additive statistics per item (a stream, a question, a segment) and a function
of their column sums that gives the number it reports: WER = (errors, reference words), accuracy = (right, 1),
BLEU = sacrebleu's n-gram counts. The items are resampled with replacement `RESAMPLES` times with a fixed seed;
the interval is the 2.5 and 97.5 percentiles of the resampled numbers (percentile bootstrap). The benchmark
writes them under "ci95" of its metrics file, keyed like the numbers; rule summary prints them beside each.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

RESAMPLES = 1000
SEED = 0


def interval(stats: Sequence[Sequence[float]], score: Callable[[np.ndarray], float | None]) -> list[float] | None:
    """[low, high] of `score(column sums)` over item resamples; None with fewer than 2 items or when the score
    is undefined (None or NaN) on more than half of the resamples."""
    rows = np.asarray(stats, dtype=float)
    if rows.ndim == 1:
        rows = rows[:, None]
    if len(rows) < 2:
        return None
    picks = np.random.default_rng(SEED).integers(0, len(rows), size=(RESAMPLES, len(rows)))
    values = np.array([_as_float(score(rows[p].sum(axis=0))) for p in picks])
    values = values[np.isfinite(values)]
    if len(values) < RESAMPLES / 2:
        return None
    low, high = np.percentile(values, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def _as_float(value) -> float:
    return float("nan") if value is None else float(value)


def column_ratio(num: int, den: int) -> Callable[[np.ndarray], float]:
    """A score: sums[num] / sums[den] (NaN, so left out, when the denominator is 0)."""
    return lambda sums: sums[num] / sums[den] if sums[den] else float("nan")


ratio = column_ratio(0, 1)  # WER from (errors, words), accuracy from (right, 1), a mean from (value, 1)


def mean_interval(values: Sequence[float | None]) -> list[float] | None:
    """Interval of the mean of per-item values (None values left out, as the mean leaves them out)."""
    return interval([(v, 1.0) for v in values if v is not None], ratio)


def share_interval(hits: Sequence[bool]) -> list[float] | None:
    """Interval of an accuracy: the share of True among per-item outcomes."""
    return mean_interval([float(h) for h in hits])
