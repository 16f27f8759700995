"""Statistics of the seed report: mean and t-interval over seeds, orders and inversions.

The interval is mean +- t_{(1+level)/2, n-1} * sd / sqrt(n) (sd with n-1): the spread of the
mean over the seeds run, not of one run. With one value there is a mean and no interval.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import combinations


@dataclass
class Aggregate:
    n: int
    mean: float | None = None
    sd: float | None = None
    half_width: float | None = None  # None with fewer than two values

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width

    def to_dict(self) -> dict:
        return {**asdict(self), "low": self.low, "high": self.high}


def aggregate(values, level: float = 0.95) -> Aggregate:
    """Mean, sd and the t-interval's half-width of the finite values (None / NaN are left out)."""
    from scipy import stats

    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return Aggregate(0)
    mean = sum(xs) / n
    if n == 1:
        return Aggregate(1, mean)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    return Aggregate(n, mean, sd, float(stats.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n))


def overlap(a: Aggregate, b: Aggregate) -> bool | None:
    """Whether the two intervals overlap; None when either has no interval (one seed)."""
    if a.half_width is None or b.half_width is None:
        return None
    return max(a.low, b.low) <= min(a.high, b.high)


def ascending(stats: dict[str, Aggregate]) -> list[str]:
    """The names that have a mean, from the lowest mean to the highest (ties keep their order)."""
    return sorted((m for m, a in stats.items() if a.mean is not None), key=lambda m: stats[m].mean)


@dataclass
class Inversion:
    lower: str  # the model whose method the paper scores lower ...
    higher: str  # ... than this one's
    lower_method: str
    higher_method: str
    lower_mean: float  # measured: lower_mean > higher_mean
    higher_mean: float
    overlap: bool | None  # their intervals overlap (None: no interval)

    def to_dict(self) -> dict:
        return asdict(self)


def inversions(methods: dict[str, str], stats: dict[str, Aggregate], paper: dict[str, float]) -> list[Inversion]:
    """Every pair of mapped models that the paper orders one way and the measured means the other.

    Models of the same method have no paper order; models without a mean are left out; equal
    means are no inversion. Pairs come in the paper's order of the lower-scored method.
    """
    models = [m for m in methods if m in stats and stats[m].mean is not None]
    models.sort(key=lambda m: paper[methods[m]])
    out = []
    for a, b in combinations(models, 2):  # paper[methods[a]] <= paper[methods[b]]
        if paper[methods[a]] == paper[methods[b]]:
            continue
        if stats[a].mean > stats[b].mean:
            out.append(Inversion(a, b, methods[a], methods[b], stats[a].mean, stats[b].mean,
                                 overlap(stats[a], stats[b])))
    return out
