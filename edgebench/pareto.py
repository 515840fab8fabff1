"""The Pareto front of accuracy against a cost (joules per inference, latency).

A point is on the front when no other point is at least as accurate for no more cost and strictly better in one
of the two; points with a missing (NaN) accuracy or cost are never on it. Ties (the same cost and accuracy) are
all on the front: neither dominates the other.
"""

from __future__ import annotations

import math
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
