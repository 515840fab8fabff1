import math

import numpy as np
import pytest

from edgebench.agent.stats import (
    LatencyStats,
    format_block,
    format_summary,
    format_table,
    latency_warnings,
    sort_results,
)
from edgebench.units import fmt_time


def _ns(ms_values):
    return [int(round(v * 1e6)) for v in ms_values]


def test_statistics_match_numpy_on_known_input():
    rng = np.random.default_rng(7)
    ms = rng.normal(12.0, 0.3, size=200)
    ns = _ns(ms)
    s = LatencyStats.from_ns(ns, batch=4, window_ns=sum(ns) + 1_000_000, warmup_ns=_ns([40.0, 13.0]))
    ref = np.asarray(ns, dtype=np.float64) / 1e6
    assert s.n == 200
    assert s.mean_ms == pytest.approx(ref.mean())
    assert s.sd_ms == pytest.approx(ref.std(ddof=1))
    assert s.median_ms == pytest.approx(np.median(ref))
    assert s.p90_ms == pytest.approx(np.percentile(ref, 90))
    assert s.p95_ms == pytest.approx(np.percentile(ref, 95))
    assert s.p99_ms == pytest.approx(np.percentile(ref, 99))
    assert (s.min_ms, s.max_ms) == (pytest.approx(ref.min()), pytest.approx(ref.max()))
    assert s.cv == pytest.approx(ref.std(ddof=1) / ref.mean())
    assert s.throughput_sps == pytest.approx(4 / (ref.mean() / 1e3))
    assert s.window_throughput_sps == pytest.approx(200 * 4 / ((sum(ns) + 1_000_000) / 1e9))
    assert s.first_ms == pytest.approx(40.0)
    assert s.first_ratio == pytest.approx(40.0 / np.median(ref))
    assert s.warmup_n == 2
    assert s.per_sample_ms == pytest.approx(ref.mean() / 4)
    assert s.outliers == 0


def test_single_iteration_has_no_spread_and_warns_too_few():
    s = LatencyStats.from_ns([5_000_000])
    assert s.n == 1 and s.mean_ms == 5.0 and s.median_ms == 5.0 and s.p99_ms == 5.0
    assert math.isnan(s.sd_ms) and math.isnan(s.cv)
    assert math.isnan(s.window_throughput_sps)
    warnings = latency_warnings(s)
    assert len(warnings) == 1 and "only 1 measured iteration" in warnings[0] and "--duration" in warnings[0]
    block = "\n".join(format_block("e", s))
    assert "± n/a" in block and "1 runs" in block


def test_constant_latencies_are_stable_and_without_outliers():
    s = LatencyStats.from_ns([2_000_000] * 50)
    assert s.sd_ms == 0.0 and s.cv == 0.0 and s.outliers == 0
    assert latency_warnings(s) == []


def test_empty_latencies_raise():
    with pytest.raises(ValueError):
        LatencyStats.from_ns([])


def test_unstable_series_warns_with_what_to_do():
    ms = [10.0, 12.0] * 20  # cv about 9 %
    s = LatencyStats.from_ns(_ns(ms))
    assert s.cv > 0.05
    w = [x for x in latency_warnings(s) if "unstable" in x]
    assert w and "jetson_clocks" in w[0] and "performance" in w[0] and "--duration" in w[0]


def test_outliers_counted_by_modified_z_score():
    ms = [10.0 + 0.01 * (i % 5) for i in range(100)] + [30.0, 31.0]
    s = LatencyStats.from_ns(_ns(ms))
    ref = np.asarray(ms)
    mad = np.median(np.abs(ref - np.median(ref)))
    expected = int(np.sum(np.abs(ref - np.median(ref)) / mad > 14.826))
    assert s.outliers == expected == 2
    assert any("2 statistical outliers" in w for w in latency_warnings(s))


def test_slow_first_warmup_explains_why_warmup_is_discarded():
    s = LatencyStats.from_ns(_ns([10.0] * 20), warmup_ns=_ns([45.0, 10.0]))
    w = latency_warnings(s)
    assert len(w) == 1 and "4.5 x the median" in w[0] and "warm-up iterations are discarded" in w[0]
    s2 = LatencyStats.from_ns(_ns([45.0] + [10.0] * 20))
    assert any("no warm-up" in x and "--warmup" in x for x in latency_warnings(s2))


def test_time_units_follow_magnitude():
    assert fmt_time(0.25) == "250.0 µs"
    assert fmt_time(12.345) == "12.35 ms"
    assert fmt_time(1500.0) == "1.500 s"
    assert fmt_time(float("nan")) == "n/a"


def test_block_looks_like_hyperfine():
    s = LatencyStats.from_ns(_ns([12.0, 12.4, 12.8, 12.2] * 5), batch=2, window_ns=300_000_000, warmup_ns=_ns([30.0]))
    lines = format_block("resnet18_1_224_224_fp32", s)
    assert lines[0] == "Benchmark: resnet18_1_224_224_fp32"
    assert lines[1].startswith("  Time (mean ± σ):     12.35 ms ± ")
    assert "Range (min … max):   12.00 ms … 12.80 ms" in lines[2]
    assert "p99" in lines[3]
    assert "samples/s (batch 2)" in lines[4] and "over the window" in lines[4]
    assert lines[5].startswith("  20 runs, 1 warm-up discarded (first 30.00 ms")


def test_table_sorted_with_times_faster_summary():
    fast = LatencyStats.from_ns(_ns([10.0, 10.2] * 10), batch=1)
    slow = LatencyStats.from_ns(_ns([30.0, 30.6] * 10), batch=1)
    batched = LatencyStats.from_ns(_ns([40.0, 40.8] * 10), batch=8)  # 5 ms per sample: fastest per sample
    results = [("slow", slow), ("fast", fast), ("batched", batched)]
    assert [n for n, _ in sort_results(results, "mean")] == ["batched", "fast", "slow"]
    assert [n for n, _ in sort_results(results, "name")] == ["batched", "fast", "slow"]
    assert [n for n, _ in sort_results([results[0], results[1]], "name")] == ["fast", "slow"]
    assert [n for n, _ in sort_results(results, "throughput")] == ["batched", "fast", "slow"]
    lines = format_table(results, "name")
    assert lines[0].split() == [
        "engine", "batch", "mean_ms", "sd_ms", "median_ms", "p99_ms", "per_sample_ms", "throughput_sps", "runs"
    ]
    assert [line.split()[0] for line in lines[2:5]] == ["batched", "fast", "slow"]
    summary = format_summary(results)
    assert summary[2] == "  batched ran"
    ratio = fast.per_sample_ms / batched.per_sample_ms
    err = ratio * math.sqrt(fast.cv**2 + batched.cv**2)
    assert summary[3] == f"    {ratio:.2f} ± {err:.2f} times faster than fast"
    assert summary[4].endswith("times faster than slow")
    assert format_summary(results[:1]) == []
    with pytest.raises(ValueError):
        sort_results(results, "nope")


def test_rare_outliers_are_counted_but_not_warned_about():
    ms = [10.0 + 0.01 * (i % 5) for i in range(300)] + [30.0]
    s = LatencyStats.from_ns(_ns(ms))
    assert s.outliers == 1
    assert not any("outlier" in w for w in latency_warnings(s))


def test_table_cells_keep_sub_millisecond_precision():
    s = LatencyStats.from_ns(_ns([0.07423] * 10))
    row = format_table([("tiny", s)])[2].split()
    assert row[2] == "0.07423" and row[6] == "0.07423"


def test_timing_warnings_from_bare_latencies_are_the_harness_rules():
    from edgebench.agent.stats import timing_warnings

    ms = [10.0, 12.0] * 20  # cv about 9 %
    w = timing_warnings(_ns(ms))
    assert w == latency_warnings(LatencyStats.from_ns(_ns(ms)))
    assert len(w) == 1 and "unstable timings: coefficient of variation 9.2 % (> 5 %)" in w[0]
    assert timing_warnings(_ns([10.0] * 20), warmup_ns=_ns([45.0])) == [
        x for x in latency_warnings(LatencyStats.from_ns(_ns([10.0] * 20), warmup_ns=_ns([45.0])))
    ]
    assert "only 3 measured iterations" in timing_warnings(_ns([10.0] * 3))[0]
    assert timing_warnings(_ns([10.0] * 20)) == []
    with pytest.raises(ValueError):
        timing_warnings([])
