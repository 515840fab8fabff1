"""The Pareto front of accuracy against a cost (joules per sample, latency), with and without a margin.

A point is on the front when no other point is at least as accurate for no more cost and strictly better in one
of the two; points with a missing (NaN) accuracy or cost are never on it. Ties (the same cost and accuracy) are
all on the front: neither dominates the other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence


def pareto_front(costs: Sequence[float], accuracies: Sequence[float]) -> list[bool]:
    """For each point, whether it is on the front (lower cost and higher accuracy are better). O(n log n)."""
    if len(costs) != len(accuracies):
        raise ValueError("costs and accuracies must have the same length")
    valid = [
        i for i, (c, a) in enumerate(zip(costs, accuracies, strict=True))
        if c is not None and a is not None and math.isfinite(c) and math.isfinite(a)
    ]
    # cheapest first; among equal costs the most accurate first, so a point is dominated exactly when some
    # earlier point (cheaper-or-equal) is more accurate, or equally accurate at a strictly lower cost
    order = sorted(valid, key=lambda i: (costs[i], -accuracies[i]))
    member = [False] * len(costs)
    best = -math.inf  # highest accuracy seen at a strictly lower cost... or at the same cost, see below
    best_cost = math.nan
    for i in order:
        a = accuracies[i]
        if a > best:
            member[i] = True
            best, best_cost = a, costs[i]
        elif a == best and costs[i] == best_cost:
            member[i] = True  # a tie with a front member: equal, not dominated
    return member


def dominates(cost_a: float, acc_a: float, cost_b: float, acc_b: float) -> bool:
    """Whether point a dominates point b (no worse in both, strictly better in one)."""
    return cost_a <= cost_b and acc_a >= acc_b and (cost_a < cost_b or acc_a > acc_b)


ON = "on"  # on the front: no other point dominates it
POSSIBLE = "possible"  # dominated, but not beyond uncertainty: possibly on the front
OFF = "off"  # another point is better beyond uncertainty on both axes (or a figure is missing)


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def front_membership(
    costs: Sequence[float],
    accuracies: Sequence[float],
    cost_u: Sequence[float] | None = None,
    accuracy_u: Sequence[float] | None = None,
    sigmas: float = 2.0,
) -> list[str]:
    """For each point: ON (on the front), POSSIBLE (dominated, but every point that dominates it is better by less
    than `sigmas` combined standard uncertainties on at least one axis) or OFF (some point is better beyond
    uncertainty on both axes: cost lower by more than sigmas x sqrt(u_i^2 + u_j^2), accuracy higher likewise).
    Lower cost and higher accuracy are better; missing (NaN/None) figures are OFF. O(n^2) in the dominated points,
    fine for the few hundred engines of a sweep."""
    n = len(costs)
    if len(accuracies) != n or (cost_u is not None and len(cost_u) != n) or (accuracy_u is not None and len(accuracy_u) != n):
        raise ValueError("costs, accuracies and their uncertainties must have the same length")
    cu = [u if _finite(u) else 0.0 for u in (cost_u or [0.0] * n)]
    au = [u if _finite(u) else 0.0 for u in (accuracy_u or [0.0] * n)]
    on = pareto_front(costs, accuracies)
    member = []
    for i in range(n):
        if not (_finite(costs[i]) and _finite(accuracies[i])):
            member.append(OFF)
            continue
        if on[i]:
            member.append(ON)
            continue
        clearly_beaten = any(
            _finite(costs[j]) and _finite(accuracies[j])
            and costs[i] - costs[j] > sigmas * math.hypot(cu[i], cu[j])
            and accuracies[j] - accuracies[i] > sigmas * math.hypot(au[i], au[j])
            for j in range(n) if j != i
        )  # fmt: skip
        member.append(OFF if clearly_beaten else POSSIBLE)
    return member


def accuracy_u(top1: float, samples: int) -> float:
    """The binomial standard error of a top-1 fraction measured on `samples` inputs (nan without samples)."""
    if samples <= 0 or not _finite(top1):
        return math.nan
    return math.sqrt(max(top1 * (1 - top1), 0.0) / samples)


_RESIZE_TO = re.compile(r"resize to \d+x\d+")


def comparable(dataset: str, preprocessing: str) -> tuple[str, str]:
    """What engines must share to be compared on one front: the dataset and the preprocessing (both as
    `edgebench eval` recorded them), the resolution left out of the preprocessing: an input-size study's engines
    differ in it on purpose."""
    return dataset, _RESIZE_TO.sub("resize", preprocessing)
