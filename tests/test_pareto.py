"""The Pareto front against a brute-force check over every pair of points."""

import math
import random

import pytest

from edgebench.pareto import dominates, pareto_front


def brute_force(costs, accuracies):
    points = list(zip(costs, accuracies, strict=True))
    valid = [math.isfinite(c) and math.isfinite(a) for c, a in points]
    return [
        valid[i] and not any(valid[j] and dominates(*points[j], *points[i]) for j in range(len(points)) if j != i)
        for i in range(len(points))
    ]


@pytest.mark.parametrize("seed", range(40))
def test_front_equals_brute_force_on_random_points_with_ties_and_nans(seed):
    rng = random.Random(seed)
    n = rng.randint(0, 30)
    # coarse grids make ties in cost, in accuracy and in both common
    costs = [rng.choice([0.1, 0.2, 0.3, 0.5, 0.8, math.nan]) if rng.random() < 0.7 else rng.random() for _ in range(n)]
    accs = [rng.choice([0.5, 0.6, 0.9, math.nan]) if rng.random() < 0.7 else rng.random() for _ in range(n)]
    assert pareto_front(costs, accs) == brute_force(costs, accs)


def test_small_cases():
    assert pareto_front([1.0, 2.0, 3.0], [0.5, 0.9, 0.8]) == [True, True, False]
    assert pareto_front([1.0, 1.0], [0.7, 0.7]) == [True, True]  # equal points: neither dominates
    assert pareto_front([1.0, 1.0], [0.7, 0.6]) == [True, False]
    assert pareto_front([1.0, 2.0], [0.7, 0.7]) == [True, False]
    assert pareto_front([math.nan, 1.0], [0.9, 0.1]) == [False, True]
    assert pareto_front([], []) == []
