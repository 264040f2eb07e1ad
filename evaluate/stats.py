"""Success rates with 95% Wilson score intervals.

With 15 trials a task, a normal-approximation interval is useless near 0% and 100%
(it collapses to a point); Wilson's stays inside [0, 1] and is honest at the edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


@dataclass(frozen=True)
class Rate:
    successes: int
    trials: int
    low: float  # Wilson lower bound, fraction
    high: float  # Wilson upper bound, fraction

    @property
    def value(self) -> float | None:
        """Point estimate as a fraction; None with no trials (nothing to estimate)."""
        return self.successes / self.trials if self.trials else None

    def percent(self) -> str:
        """'86.7 [62.1, 96.3]' or '-' with no trials."""
        if not self.trials:
            return "-"
        return f"{100 * self.value:.1f} [{100 * self.low:.1f}, {100 * self.high:.1f}]"


def wilson(successes: int, trials: int, z: float = Z_95) -> Rate:
    """Wilson score interval for `successes` out of `trials` Bernoulli outcomes.

    No trials gives the uninformative [0, 1]. All successes gives an upper bound of exactly 1.
    """
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    if trials == 0:
        return Rate(0, 0, 0.0, 1.0)
    p = successes / trials
    z2 = z * z
    denom = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / denom
    # Exact bounds at the edges (rounding would otherwise give 0.9999999 or 1e-17).
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Rate(successes, trials, low, high)


def fisher_exact(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Two-sided p of Fisher's exact test that two success rates are equal, each given as
    (successes, trials): the chance, with both margins fixed, of a table no likelier than the
    one seen. Exact: the tables' probabilities are compared as whole-number numerators."""
    (s1, n1), (s2, n2) = a, b
    if not (0 <= s1 <= n1 and 0 <= s2 <= n2):
        raise ValueError(f"need 0 <= successes <= trials, got {s1}/{n1} and {s2}/{n2}")
    wins = s1 + s2
    ways = [math.comb(n1, x) * math.comb(n2, wins - x) for x in range(max(0, wins - n2), min(n1, wins) + 1)]
    seen = math.comb(n1, s1) * math.comb(n2, s2)
    return sum(w for w in ways if w <= seen) / sum(ways)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of p-values tested together, in their order: each one is the
    smallest family-wise error level at which its test would reject. Several readings set
    against one control make a small p likelier by chance than any single test's p says."""
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):  # smallest first; the adjusted values never decrease
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
