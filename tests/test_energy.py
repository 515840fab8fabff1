import numpy as np
import pytest

from edgebench.energy import integrate_window

EPOCH = 1_700_000_000_000_000_000


def _trace(seconds, watts):
    return EPOCH + (np.asarray(seconds) * 1e9).astype(np.int64), np.asarray(watts, dtype=float)


def test_constant_power_gives_power_times_duration():
    t, p = _trace(np.arange(0, 11, 1.0), [5.0] * 11)
    w = integrate_window(t, p, EPOCH + 2_500_000_000, EPOCH + 7_000_000_000)
    assert w.energy_j == pytest.approx(5.0 * 4.5)
    assert w.mean_power_w == pytest.approx(5.0)
    assert w.coverage == 1.0
    assert w.samples == 5  # t = 3, 4, 5, 6, 7


def test_ramp_is_exact_with_edge_interpolation():
    # P(t) = 2 t: trapezoid is exact for a linear trace, including interpolated edges
    s = np.arange(0, 10.1, 0.5)
    t, p = _trace(s, 2 * s)
    w = integrate_window(t, p, EPOCH + 1_250_000_000, EPOCH + 8_750_000_000)
    assert w.energy_j == pytest.approx(8.75**2 - 1.25**2)


def test_window_between_two_samples_interpolates_both_edges():
    t, p = _trace([0.0, 10.0], [0.0, 10.0])
    w = integrate_window(t, p, EPOCH + 4_000_000_000, EPOCH + 6_000_000_000)
    assert w.energy_j == pytest.approx(10.0)  # mean of 4 W and 6 W over 2 s
    assert w.samples == 0
    assert w.largest_gap_s == pytest.approx(2.0)


def test_window_past_the_trace_reports_partial_coverage():
    t, p = _trace([0.0, 1.0, 2.0], [3.0, 3.0, 3.0])
    w = integrate_window(t, p, EPOCH + 1_000_000_000, EPOCH + 5_000_000_000)
    assert w.covered_s == pytest.approx(1.0)
    assert w.coverage == pytest.approx(0.25)
    assert w.energy_j == pytest.approx(3.0)
    assert w.largest_gap_s == pytest.approx(3.0)


def test_synthetic_sine_trace_within_half_a_percent():
    s = np.arange(0, 60, 0.1)
    watts = 7 + 2 * np.sin(2 * np.pi * s / 13.0)
    t, p = _trace(s, watts)
    a, b = 3.33, 47.77
    exact = 7 * (b - a) - 2 * 13.0 / (2 * np.pi) * (np.cos(2 * np.pi * b / 13) - np.cos(2 * np.pi * a / 13))
    w = integrate_window(t, p, EPOCH + int(a * 1e9), EPOCH + int(b * 1e9))
    assert w.energy_j == pytest.approx(exact, rel=0.005)


def test_empty_trace_and_bad_window():
    w = integrate_window(np.array([], dtype=np.int64), np.array([]), EPOCH, EPOCH + 1)
    assert w.samples == 0 and w.coverage == 0.0
    with pytest.raises(ValueError):
        integrate_window(np.array([EPOCH]), np.array([1.0]), EPOCH + 5, EPOCH)
