import math

import numpy as np
import pytest

from edgebench.errors import BadInput
from edgebench.host.carbon import egrid_factor
from edgebench.host.pairing import pair, parse_engine_name
from edgebench.records import HOST_CLOCK, ClockOffset, MeterTrace, RailEnergy, RunRecord

EPOCH = 1_700_000_000_000_000_000
S = 1_000_000_000
ENGINE = "resnet18_2_120_392_fp16"
GRID = egrid_factor("RFCW", 2019)


def trace(fn, seconds=100.0, hz=10.0, resolution_w=0.0, gaps=(), epoch=EPOCH):
    t_s = np.arange(0.0, seconds, 1.0 / hz)
    return MeterTrace(
        t_ns=epoch + np.round(t_s * 1e9).astype(np.int64),
        power_w=np.asarray(fn(t_s), dtype=np.float64),
        meter="test",
        resolution_w=resolution_w,
        gaps=tuple(gaps),
    )


def run(start_s, end_s, iterations=100, batch=2, engine=ENGINE, kind="run", repeat=0, rail=None, **kw):
    return RunRecord(
        engine=engine,
        backend="onnxruntime",
        clock=kw.pop("clock", "agent:realtime"),
        window_start_ns=EPOCH + int(start_s * S),
        window_end_ns=EPOCH + int(end_s * S),
        iterations=iterations,
        batch=batch,
        latencies_ns=tuple([int((end_s - start_s) / iterations * S)] * iterations) if iterations else (),
        kind=kind,
        repeat=repeat,
        rail_energy=rail,
        **kw,
    )


def idle(start_s, end_s):
    return run(start_s, end_s, iterations=0, batch=1, engine="idle", kind="idle")


def test_engine_name_contract():
    name = parse_engine_name("sp_resnet18_2_120_392_FP16_seq_4")
    assert (name.backbone, name.batch, name.resolution, name.precision, name.extra) == (
        "sp_resnet18",
        2,
        "120x392",
        "fp16",
        "seq_4",
    )
    assert parse_engine_name("superpoint_pretrained_1_120_392_FP32").backbone == "superpoint_pretrained"
    assert parse_engine_name("not-an-engine") is None


def test_constant_power_exact_joules_per_inference():
    tr = trace(lambda t: np.full_like(t, 6.0))
    result = pair([run(10.05, 30.05, iterations=400, batch=4)], tr, ClockOffset(0), grid=GRID)
    (eng,) = result.engines
    assert eng.status == "ok"
    assert eng.gross_j_per_inference == pytest.approx(6.0 * 20.0 / 400)
    assert eng.gross_j_per_sample == pytest.approx(6.0 * 20.0 / 1600)
    assert eng.wall_power_w == pytest.approx(6.0)
    assert math.isnan(eng.net_j_per_inference)  # no idle baseline
    assert eng.throughput_samples_s == pytest.approx(1600 / 20.0)
    assert eng.latency_mean_ms == pytest.approx(50.0)
    assert eng.co2_lb_per_inference == pytest.approx(0.3 / 3.6e9 * 1067.7)
    assert eng.co2_kg_per_inference == pytest.approx(eng.co2_lb_per_inference * 0.45359237)
    assert eng.co2_lb_per_million == pytest.approx(eng.co2_lb_per_inference * 1e6)


def test_ramp_is_integrated_exactly_and_steps_give_net_above_idle():
    # P = 2 + 0.1 t: energy over [a, b] = 2 (b - a) + 0.05 (b^2 - a^2)
    tr = trace(lambda t: 2.0 + 0.1 * t)
    result = pair([run(12.34, 56.78, iterations=10)], tr, ClockOffset(0), grid=GRID)
    expected = 2.0 * (56.78 - 12.34) + 0.05 * (56.78**2 - 12.34**2)
    assert result.engines[0].gross_j_per_inference == pytest.approx(expected / 10, rel=1e-9)

    # idle at 3 W before t = 20 s, 8 W running after
    tr = trace(lambda t: np.where(t < 20.0, 3.0, 8.0))
    runs = [
        idle(2.0, 12.0),
        idle(5.0, 15.0),
        run(30.0, 50.0, iterations=200),
        run(60.0, 80.0, iterations=200),
    ]
    result = pair(runs, tr, ClockOffset(0), grid=GRID)
    assert result.idle.power_w == pytest.approx(3.0)
    assert result.idle.windows == 2
    eng = result.engines[0]
    assert eng.valid_windows == 2
    assert eng.gross_j_per_inference == pytest.approx(8.0 * 20 / 200)
    assert eng.net_j_per_inference == pytest.approx(5.0 * 20 / 200)
    assert eng.net_power_w == pytest.approx(5.0)
    assert eng.co2_lb_per_inference_net == pytest.approx(GRID.co2_lb(0.5))


def test_too_few_samples_partial_coverage_and_gaps_are_invalid_with_reason():
    tr = trace(lambda t: np.full_like(t, 5.0), seconds=50.0, gaps=[(EPOCH + 40 * S, EPOCH + 41 * S)])
    runs = [
        run(10.0, 10.5, engine="a_1_8_8_fp32"),  # 5 readings
        run(45.0, 60.0, engine="b_1_8_8_fp32"),  # past the end of the log
        run(35.0, 45.0, engine="c_1_8_8_fp32"),  # logged gap
        run(20.0, 30.0, engine="d_1_8_8_fp32"),  # fine
    ]
    result = pair(runs, tr, ClockOffset(0), grid=GRID)
    status = {e.engine: e.status for e in result.engines}
    assert status["a_1_8_8_fp32"].startswith("invalid: ") and "need >= 10" in status["a_1_8_8_fp32"]
    assert "1 s" in status["a_1_8_8_fp32"]  # the shortest valid window: 10 x 0.1 s
    assert "covers" in status["b_1_8_8_fp32"]
    assert "gap" in status["c_1_8_8_fp32"]
    assert status["d_1_8_8_fp32"] == "ok"
    assert [w.valid for w in result.windows] == [False, False, False, True]


def test_unlogged_silence_inside_window_is_invalid():
    base = trace(lambda t: np.full_like(t, 5.0))
    keep = (base.t_ns < EPOCH + 20 * S) | (base.t_ns > EPOCH + 25 * S)
    tr = MeterTrace(base.t_ns[keep], base.power_w[keep], "test")
    result = pair([run(15.0, 35.0)], tr, ClockOffset(0), grid=GRID)
    assert "silent" in result.engines[0].status


def test_failed_run_is_failed_not_ranked():
    tr = trace(lambda t: np.full_like(t, 5.0))
    result = pair([run(10.0, 20.0, iterations=0)], tr, ClockOffset(0), grid=GRID)
    assert result.engines[0].status == "failed: no iterations completed"
    failed = run(10.0, 20.0, error="engine crashed")
    assert pair([failed], tr, ClockOffset(0), grid=GRID).engines[0].status == "failed: engine crashed"


def test_clock_offset_shifts_windows_onto_the_right_samples():
    # the host clock runs 30 s ahead of the agent: agent [10, 20] is host [40, 50], where power is 9 W
    tr = trace(lambda t: np.where((t >= 35.0) & (t < 55.0), 9.0, 1.0))
    r = run(10.0, 20.0, iterations=10)
    shifted = pair([r], tr, ClockOffset(offset_ns=30 * S), grid=GRID)
    assert shifted.engines[0].wall_power_w == pytest.approx(9.0)
    assert shifted.windows[0].start_host_ns == EPOCH + 40 * S
    unshifted = pair([r], tr, ClockOffset(0), grid=GRID)
    assert unshifted.engines[0].wall_power_w == pytest.approx(1.0)
    # host-clock records ignore the offset; per-run offsets are looked up by run_id
    host = run(40.0, 50.0, iterations=10, clock=HOST_CLOCK)
    assert pair([host], tr, ClockOffset(offset_ns=-99 * S), grid=GRID).engines[
        0
    ].wall_power_w == pytest.approx(9.0)
    by_run = run(10.0, 20.0, iterations=10, run_id="r1")
    assert pair([by_run], tr, {"r1": ClockOffset(30 * S)}, grid=GRID).engines[
        0
    ].wall_power_w == pytest.approx(9.0)
    with pytest.raises(BadInput, match="clock offset"):
        pair([by_run], tr, {"other": ClockOffset(0)}, grid=GRID)


def test_large_clock_uncertainty_invalidates_window_and_small_adds_uncertainty():
    tr = trace(lambda t: np.full_like(t, 5.0))
    r = run(10.0, 20.0)
    bad = pair([r], tr, ClockOffset(0, uncertainty_ns=200_000_000), grid=GRID)
    assert "clock uncertainty" in bad.engines[0].status
    ok = pair([r], tr, ClockOffset(0, uncertainty_ns=10_000_000), grid=GRID)
    assert ok.engines[0].status == "ok"
    # 5 W at both edges x 10 ms, in quadrature, over 100 inferences
    assert ok.engines[0].gross_j_per_inference_u == pytest.approx(math.hypot(5, 5) * 0.01 / 100)


def test_uncertainty_grows_with_coarser_resolution_and_fewer_samples():
    def u(resolution_w, hz):
        tr = trace(lambda t: np.full_like(t, 5.0), hz=hz, resolution_w=resolution_w)
        return pair([run(10.0, 30.0, iterations=100)], tr, ClockOffset(0), grid=GRID).engines[0]

    fine, coarse, sparse = u(0.1, 10.0), u(1.0, 10.0), u(0.1, 1.0)
    assert coarse.gross_j_per_inference_u > fine.gross_j_per_inference_u
    assert sparse.gross_j_per_inference_u > fine.gross_j_per_inference_u
    # duration x r / sqrt(3 N) / iterations with N = 201 readings in [10, 30]
    assert fine.gross_j_per_inference_u == pytest.approx(20 * 0.1 / math.sqrt(3 * 201) / 100)


def test_spread_of_repeated_windows_enters_the_uncertainty():
    tr = trace(lambda t: np.where(t < 50.0, 4.0, 6.0))
    runs = [run(10.0, 30.0, repeat=0), run(60.0, 80.0, repeat=1)]
    eng = pair(runs, tr, ClockOffset(0), grid=GRID).engines[0]
    per_window = [4.0 * 20 / 100, 6.0 * 20 / 100]
    assert eng.gross_j_per_inference == pytest.approx(np.mean(per_window))
    assert eng.gross_j_per_inference_u == pytest.approx(np.std(per_window, ddof=1) / math.sqrt(2))


def test_rail_energy_reported_beside_wall_energy():
    tr = trace(lambda t: np.full_like(t, 5.0))
    rails = [
        RailEnergy("tegrastats", "VDD_IN", 30.0, 3.0, 50),
        RailEnergy("tegrastats", "VDD_IN", 34.0, 3.4, 50),
    ]
    runs = [run(10.0, 20.0, rail=rails[0]), run(30.0, 40.0, rail=rails[1])]
    eng = pair(runs, tr, ClockOffset(0), grid=GRID).engines[0]
    assert eng.rail_j_per_inference == pytest.approx(0.32)
    assert eng.rail_j_per_inference_u == pytest.approx(np.std([0.3, 0.34], ddof=1) / math.sqrt(2))
    assert not eng.rail_estimate
    assert eng.rail_power_w == pytest.approx((30.0 + 34.0) / 20.0)  # 64 J over two 10 s windows
    est = run(10.0, 20.0, rail=RailEnergy("estimate", "CPU util x TDP", 20.0, 2.0, 10, estimate=True))
    assert pair([est], tr, ClockOffset(0), grid=GRID).engines[0].rail_estimate


def test_pue_scales_co2_only():
    tr = trace(lambda t: np.full_like(t, 5.0))
    one = pair([run(10.0, 20.0)], tr, ClockOffset(0), grid=GRID).engines[0]
    more = pair([run(10.0, 20.0)], tr, ClockOffset(0), grid=GRID, pue=1.5).engines[0]
    assert more.gross_j_per_inference == one.gross_j_per_inference
    assert more.co2_lb_per_inference == pytest.approx(1.5 * one.co2_lb_per_inference)


def test_bad_options():
    tr = trace(lambda t: np.full_like(t, 5.0))
    with pytest.raises(BadInput, match="min-samples"):
        pair([run(10.0, 20.0)], tr, ClockOffset(0), min_samples=1)
    unsorted = MeterTrace(tr.t_ns[::-1].copy(), tr.power_w, "x")
    with pytest.raises(BadInput, match="sorted"):
        pair([run(10.0, 20.0)], unsorted, ClockOffset(0))
