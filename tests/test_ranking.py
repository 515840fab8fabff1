"""A ranking that can be defended: per sample by default, a baseline interpolated in time, busy idle windows
flagged, net figures never shown as negative results, ties that share a rank, ratios with uncertainty, and a
Pareto front with a margin. Pure checks on constructed traces here; tests/test_ranking_measure.py runs the same
claims through `edgebench measure` with an emulated meter and the local agent."""

import json
import math
import random

import numpy as np
import pytest

from edgebench.host.carbon import egrid_factor
from edgebench.host.pairing import BUSY_IDLE_CPU, pair
from edgebench.host.table import rank, render, shared_ranks, summary_lines
from edgebench.pareto import OFF, ON, POSSIBLE, accuracy_u, front_membership, pareto_front
from edgebench.records import ClockOffset, MeterTrace, RunRecord
from edgebench.units import plus_minus, signed_figure

EPOCH = 1_700_000_000_000_000_000
S = 1_000_000_000
GRID = egrid_factor("RFCW", 2019)


def trace(fn, seconds=200.0, hz=10.0, resolution_w=0.1):
    t_s = np.arange(0.0, seconds, 1.0 / hz)
    return MeterTrace(EPOCH + np.round(t_s * 1e9).astype(np.int64), np.asarray(fn(t_s), dtype=np.float64), "test",
                      resolution_w=resolution_w)


def window(engine, a, b, iterations=100, batch=1, kind="run", cpu_busy=None):
    return RunRecord(
        engine=engine, backend="onnxruntime", clock="agent:realtime", window_start_ns=EPOCH + int(a * S),
        window_end_ns=EPOCH + int(b * S), iterations=iterations, batch=batch,
        latencies_ns=tuple([int((b - a) / max(iterations, 1) * S)] * iterations), kind=kind, cpu_busy=cpu_busy,
    )  # fmt: skip


def idle(a, b, cpu_busy=None):
    return window("idle", a, b, iterations=0, batch=0, kind="idle", cpu_busy=cpu_busy)


# --- per sample, not per execution ------------------------------------------------------------------------------


def test_a_batch_4_engine_cheaper_per_image_ranks_before_batch_1():
    # the figures: batch 4 costs 0.572 J per execution = 0.143 J per image, batch 1 0.152 J per image
    tr = trace(lambda t: np.where((t >= 10) & (t < 20), 5.72, np.where((t >= 30) & (t < 40), 15.2, 1.0)))
    runs = [window("squeezenet1_1_4_64_64_fp32", 11, 19, iterations=80, batch=4),  # 5.72 W x 8 s / 80 = 0.572
            window("squeezenet1_1_1_64_64_fp32", 31, 39, iterations=800, batch=1)]  # 15.2 x 8 / 800 = 0.152
    result = pair(runs, tr, ClockOffset(0), grid=GRID)
    by_name = {e.engine: e for e in result.engines}
    assert by_name["squeezenet1_1_4_64_64_fp32"].gross_j_per_inference == pytest.approx(0.572, rel=1e-3)
    assert by_name["squeezenet1_1_4_64_64_fp32"].gross_j_per_sample == pytest.approx(0.143, rel=1e-3)
    assert [e.engine for _, e in rank(result.engines)] == ["squeezenet1_1_4_64_64_fp32", "squeezenet1_1_1_64_64_fp32"]
    # by J per execution the order flips: the figure ranked is named, so the reader knows which this is
    assert [e.engine for _, e in rank(result.engines, "gross_j")][0] == "squeezenet1_1_1_64_64_fp32"
    lines = render(result)
    assert "J/sample wall" in lines[0] and "J/exec wall" in lines[0]
    assert any(line.startswith("ranked by wall (gross) J per sample, lowest first") for line in lines)
    assert any("x less energy per sample than squeezenet1_1_1_64_64_fp32" in line for line in lines)


# --- the idle baseline: interpolated in time, busy windows flagged ------------------------------------------


def _drifting(extra_w=2.0, slope=0.05):
    """A baseline drifting 5 W/100 s, engines 2 W above it; idle windows around each engine."""
    engine_spans = [(20, 30), (50, 60), (80, 90)]

    def watts(t):
        p = 4.0 + slope * t
        for a, b in engine_spans:
            p = np.where((t >= a - 1) & (t < b + 1), p + extra_w, p)
        return p

    runs = [idle(2, 12), window("e_1_8_8_fp32", 21, 29), idle(35, 45), window("f_1_8_8_fp32", 51, 59), idle(65, 75),
            window("g_1_8_8_fp32", 81, 89), idle(95, 105)]  # fmt: skip
    return trace(watts), runs


def test_a_drifting_baseline_is_interpolated_between_the_idle_windows_that_bracket_each_window():
    tr, runs = _drifting()
    result = pair(runs, tr, ClockOffset(0), grid=GRID)
    assert result.idle.windows == 4 and result.idle.interpolated
    assert result.idle.drift_w == pytest.approx(0.05 * 93, rel=1e-3)  # mid 100 s minus mid 7 s
    for e in result.engines:
        # closed form: 2 W above the baseline for 8 s, over 100 iterations
        assert e.net_j_per_inference == pytest.approx(2.0 * 8 / 100, rel=0.01), e.engine
    # one global baseline (the mean of the idle windows) would be off by far more than 1 % for the first engine
    mean_idle = result.idle.power_w
    first = result.engines[0]
    global_net = (first.gross_j_per_inference * 100 - mean_idle * 8) / 100
    assert abs(global_net / first.net_j_per_inference - 1) > 0.5
    lines = render(result)
    assert any("interpolated in time between them" in line and "sd " in line for line in lines)


def test_one_idle_window_says_so_instead_of_a_zero_spread():
    tr = trace(lambda t: np.where(t > 20, 6.0, 2.0))
    result = pair([idle(2, 12), window("e_1_8_8_fp32", 30, 40)], tr, ClockOffset(0), grid=GRID)
    line = next(line for line in render(result) if line.startswith("idle baseline:"))
    assert "(one window)" in line and "sd 0" not in line


def test_an_idle_window_taken_while_the_device_was_busy_is_flagged_everywhere():
    tr = trace(lambda t: np.where(t < 15, 9.0, np.where(t < 30, 2.0, 6.0)))
    runs = [idle(2, 12, cpu_busy=0.93), idle(17, 27, cpu_busy=0.02), window("e_1_8_8_fp32", 40, 50, cpu_busy=0.5)]
    result = pair(runs, tr, ClockOffset(0), grid=GRID)
    assert [n for n, _ in result.busy_idle_windows] == [1]
    assert result.idle.busy_windows == 1 and result.engines[0].busy_baseline
    text = "\n".join(render(result))
    assert "idle window 1 was not idle: CPU 93 % busy" in text
    doc = json.loads("\n".join(render(result, "json")))
    assert doc["busy_idle"] == ["idle window 1 was not idle: CPU 93 % busy"]
    assert doc["thresholds"]["busy_idle_cpu"] == BUSY_IDLE_CPU
    # a quiet idle window is not flagged
    quiet = pair([idle(17, 27, cpu_busy=0.02), window("e_1_8_8_fp32", 40, 50)], tr, ClockOffset(0), grid=GRID)
    assert not quiet.busy_idle_windows and "not idle" not in "\n".join(render(quiet))


def test_a_baseline_above_the_engines_never_shows_a_negative_net_as_a_result():
    # idle read at 9 W (something else was running), the engines at 4 and 6 W: net below zero beyond 2 sigma
    tr = trace(lambda t: np.where(t < 15, 9.0, np.where(t < 35, 4.0, 6.0)), resolution_w=0.1)
    runs = [idle(2, 12), window("small_1_8_8_fp32", 20, 30, iterations=100),
            window("big_1_8_8_fp32", 40, 50, iterations=50)]  # big: 6 W x 10 s / 50 = 1.2 J, small 0.4 J
    result = pair(runs, tr, ClockOffset(0), grid=GRID)
    assert all(e.net_below_idle for e in result.engines)
    assert [e.engine for _, e in rank(result.engines)] == ["small_1_8_8_fp32", "big_1_8_8_fp32"]  # gross per sample
    lines = render(result)
    rows = [line for line in lines if line.strip().startswith(("1 ", "2 "))]
    for row in rows:
        assert "<0 !" in row and " -" not in row.replace(" - ", " ")  # no negative number in a row
    assert any(line.startswith("! net below zero") and "idle baseline is above this window" in line for line in lines)
    # sorting by net puts the engines below idle last (their net is not a result), never first
    assert [p for p, _ in rank(result.engines, "net_j")] == [1, 2]
    md = "\n".join(render(result, "md"))
    assert "<0 !" in md
    doc = json.loads("\n".join(render(result, "json")))
    assert doc["net_below_idle"] == ["small_1_8_8_fp32", "big_1_8_8_fp32"]


def test_net_figures_near_zero_and_float_noise():
    assert signed_figure(-0.0010, 0.0018) == "≈0 (± 0.0018)"
    assert signed_figure(0.0030, 0.0018) == "≈0 (± 0.0018)"  # within 2 sigma
    assert signed_figure(0.0040, 0.0018) == "0.0040 ± 0.0018"
    assert signed_figure(-1.776e-15, 0.0) == "0"
    assert signed_figure(-1.776e-15, math.nan) == "0"
    assert signed_figure(-0.2, 0.05, below=True) == "<0 !"
    assert plus_minus(-1e-17, 0.002) == "0.0000 ± 0.0020"
    assert plus_minus(-0.00001, 0.002) == "0.0000 ± 0.0020"  # rounds to zero: no sign
    assert plus_minus(-1e-15, math.nan) == "0"
    for value in (-0.0, -1e-13, -3e-16):
        assert not plus_minus(value, 0.1).startswith("-")


def test_an_engine_equal_to_the_idle_baseline_prints_approximately_zero():
    tr = trace(lambda t: np.full_like(t, 5.0))
    result = pair([idle(2, 12), window("e_1_8_8_fp32", 20, 30)], tr, ClockOffset(0), grid=GRID)
    (e,) = result.engines
    assert not e.net_below_idle
    row = next(line for line in render(result) if "e_1_8_8_fp32" in line)
    assert "≈0 (±" in row or " 0 (±" in row
    assert "-0.0" not in row and "e-1" not in row


def test_net_power_near_zero_is_approximately_zero_never_a_small_negative_number():
    """The demo on a busy machine printed `net W -0.04428` beside `J/sample net ≈0 (± 0.0013)`: net W follows
    the net J columns (≈0 within 2 sigma), and a clearly positive net W stays a plain number."""
    rng = np.random.default_rng(3)
    levels = [(0, 15, 5.05), (15, 35, 5.0), (35, 60, 7.0)]  # idle a little above the first engine, in the noise

    def watts(t):
        p = np.full_like(t, 5.0)
        for a, b, w in levels:
            p = np.where((t >= a) & (t < b), w, p)
        return p + rng.normal(0, 0.5, size=t.shape)

    runs = [idle(2, 12), window("quiet_1_8_8_fp32", 20, 30), window("busy_1_8_8_fp32", 40, 50)]
    result = pair(runs, trace(watts, seconds=60.0), ClockOffset(0), grid=GRID)
    quiet = next(e for e in result.engines if e.engine.startswith("quiet"))
    assert quiet.net_power_w < 0 and not quiet.net_below_idle  # negative, but within its uncertainty
    lines = render(result)
    rows = {row.split()[1].split("_")[0]: row.split() for row in lines if row.lstrip()[:1].isdigit()}
    assert "≈0" in rows["quiet"] and not any(c[:1] == "-" and c[1:2].isdigit() for c in rows["quiet"])
    busy = next(e for e in result.engines if e.engine.startswith("busy"))
    assert busy.net_power_w > 1.5 and f"{busy.net_power_w:.4g}" in rows["busy"]


# --- ties and ratios -------------------------------------------------------------------------------------------


def _three(spread):
    """a at 5 W, b at 5 W + spread, c at 8 W, each over two 10 s windows with noisy readings."""
    rng = np.random.default_rng(7)
    levels = [(10, 30, 5.0), (40, 60, 5.0 + spread), (70, 90, 8.0)]

    def watts(t):
        p = np.full_like(t, 1.0)
        for a, b, w in levels:
            p = np.where((t >= a) & (t < b), w, p)
        return p + rng.normal(0, 0.4, size=t.shape)

    runs = []
    for name, (a, _, _) in zip(("a_1_8_8_fp32", "b_1_8_8_fp32", "c_1_8_8_fp32"), levels, strict=True):
        runs += [window(name, a + 1, a + 9), window(name, a + 11, a + 19)]
    return pair(runs, trace(watts, seconds=100.0), ClockOffset(0), grid=GRID)


def test_engines_equal_within_uncertainty_share_a_rank():
    result = _three(spread=0.001)
    ranked = rank(result.engines)
    assert [p for p, _ in ranked] == [1, 1, 3]
    assert shared_ranks(ranked) == {1}
    rows = [line for line in render(result) if line.strip()[:2] in ("1=", "3 ")]
    assert len(rows) == 3 and sum(1 for r in rows if r.lstrip().startswith("1=")) == 2
    summary = summary_lines(result, "gross_j_sample")
    assert any("the same as" in line and "within uncertainty" in line for line in summary)
    doc = json.loads("\n".join(render(result, "json")))
    assert [row["tied"] for row in doc["engines"]] == [True, True, False]


def test_engines_apart_beyond_uncertainty_do_not_and_the_ratio_carries_its_uncertainty():
    result = _three(spread=1.0)
    ranked = rank(result.engines)
    assert [p for p, _ in ranked] == [1, 2, 3]
    a, b, c = (e for _, e in ranked)
    summary = summary_lines(result, "gross_j_sample")
    assert summary[1] == f"  {a.engine} used"
    expected = c.gross_j_per_sample / a.gross_j_per_sample
    line = next(line for line in summary if c.engine in line)
    value, u = line.split(" x less")[0].split(" ± ")
    assert float(value) == pytest.approx(expected, rel=1e-3)
    # the ratio's uncertainty: relative uncertainties of both figures in quadrature
    rel = math.hypot(a.gross_j_per_sample_u / a.gross_j_per_sample, c.gross_j_per_sample_u / c.gross_j_per_sample)
    assert float(u) == pytest.approx(expected * rel, rel=0.05, abs=0.002)


# --- the Pareto front with a margin ----------------------------------------------------------------------------


def test_a_point_is_off_the_front_only_when_beaten_beyond_uncertainty_on_both_axes():
    costs = [1.0, 1.05, 2.0, 1.5]
    accs = [0.90, 0.89, 0.50, 0.95]
    # 1 is beaten by 0, but by less than its uncertainty on cost: possibly on the front; 2 is clearly beaten
    member = front_membership(costs, accs, [0.05] * 4, [0.02] * 4)
    assert member == [ON, POSSIBLE, OFF, ON]
    # without uncertainties it is the plain front
    plain = front_membership(costs, accs)
    assert [m == ON for m in plain] == pareto_front(costs, accs)
    assert OFF in plain and POSSIBLE not in plain
    assert accuracy_u(0.9, 100) == pytest.approx(0.03)


@pytest.mark.parametrize("seed", range(20))
def test_margin_front_against_brute_force(seed):
    rng = random.Random(seed)
    n = rng.randint(1, 25)
    costs = [rng.random() for _ in range(n)]
    accs = [rng.random() for _ in range(n)]
    cu = [rng.random() * 0.1 for _ in range(n)]
    au = [rng.random() * 0.1 for _ in range(n)]
    member = front_membership(costs, accs, cu, au)
    plain = pareto_front(costs, accs)
    for i in range(n):
        beaten = any(costs[i] - costs[j] > 2 * math.hypot(cu[i], cu[j]) and accs[j] - accs[i] > 2 * math.hypot(au[i], au[j])
                     for j in range(n) if j != i)
        assert member[i] == (ON if plain[i] else OFF if beaten else POSSIBLE)


def test_fronts_only_compare_engines_evaluated_on_the_same_data():
    import dataclasses

    from edgebench.host.table import fronts
    from edgebench.records import Accuracy

    result = _three(spread=1.0)
    acc = {"a_1_8_8_fp32": ("digits, test split", 0.5), "b_1_8_8_fp32": ("digits, test split", 0.9),
           "c_1_8_8_fp32": ("imagenette, val", 0.4)}  # fmt: skip
    engines = tuple(dataclasses.replace(e, accuracy=Accuracy(acc[e.engine][1], None, 500, acc[e.engine][0], "area"))
                    for e in result.engines)
    found = fronts(engines)
    # c is dearer and less accurate than both, but on other data: it is on its own group's front
    assert found.energy == {"a_1_8_8_fp32", "b_1_8_8_fp32", "c_1_8_8_fp32"} and found.groups == 2


def test_engines_of_different_resolutions_share_a_front_when_only_the_resize_differs():
    import dataclasses

    from edgebench.host.table import fronts
    from edgebench.pareto import comparable
    from edgebench.records import Accuracy

    assert comparable("digits", "area resize to 32x32; 1 channel(s)") == comparable("digits", "area resize to 64x64; 1 channel(s)")
    assert comparable("digits", "area resize to 32x32") != comparable("digits", "bilinear resize to 32x32")
    result = _three(spread=1.0)
    top1 = {"a_1_8_8_fp32": (32, 0.5), "b_1_8_8_fp32": (48, 0.9), "c_1_8_8_fp32": (64, 0.4)}
    engines = tuple(dataclasses.replace(e, accuracy=Accuracy(top1[e.engine][1], None, 500, "digits, test split",
                                                             f"area resize to {top1[e.engine][0]}x{top1[e.engine][0]}"))
                    for e in result.engines)
    found = fronts(engines)
    # one group: c (dearest, least accurate) is beaten by a and b beyond uncertainty
    assert found.groups == 1 and "c_1_8_8_fp32" not in found.energy | found.energy_possible
