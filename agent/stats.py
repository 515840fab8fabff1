"""Latency statistics of one measured window and the formatters that show them (lines, never prints).

The numbers follow trtexec and onnxruntime_perf_test (mean, median, p90/p95/p99, min/max, throughput); the look
follows hyperfine (`Time (mean ± σ)`, `Range (min … max)`, run count, "x times faster than"); the warnings follow
pyperf and hyperfine, and each one says what to do about it.

Rules, stated once:
- sd is the sample standard deviation (ddof=1); undefined (nan) for a single iteration.
- Percentiles use numpy's default linear interpolation between closest ranks.
- Coefficient of variation = sd / mean.
- Outliers (hyperfine's rule): |x - median| / MAD above 14.826 = 1.4826 x 10, i.e. an iteration further than
  10 robust standard deviations (1.4826 x MAD estimates sd for normal data) from the median. With MAD = 0 (all but a few iterations identical) nothing is
  counted, since the score is undefined.
- Throughput is given two ways: `batch / mean latency` (what the engine does back to back) and
  `iterations x batch / window` (what the whole measured window delivered, loop overhead included).
- First-iteration ratio: the first warm-up iteration over the measured median (the first measured iteration when
  there was no warm-up).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgebench.records import RunRecord, latencies_ms
from edgebench.units import fmt_rate, fmt_time, time_unit

from .options import MIN_ITERATIONS

UNSTABLE_CV = 0.05  # pyperf and trtexec warn from a few percent; 5 % is where rankings start to flip
MAD_TO_SD = 1.4826  # MAD x 1.4826 estimates sd for normal data
OUTLIER_SDS = 10.0
OUTLIER_Z = MAD_TO_SD * OUTLIER_SDS  # hyperfine's threshold on |x - median| / MAD
# Over thousands of iterations a few interrupts are unavoidable: warn only when outliers exceed 1 % of the runs
# (so one outlier among fewer than 100 runs still warns).
OUTLIER_FRACTION = 0.01
SLOW_FIRST_RATIO = 3.0


@dataclass(frozen=True)
class LatencyStats:
    """Summary of one window's per-iteration latencies (milliseconds; throughput in samples/s)."""

    n: int
    batch: int
    mean_ms: float
    sd_ms: float
    min_ms: float
    median_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    cv: float  # sd / mean (a fraction, not percent)
    throughput_sps: float  # samples per second: batch / mean latency
    window_throughput_sps: float  # samples per second over the window: iterations x batch / window (nan without)
    outliers: int
    first_ms: float  # first warm-up iteration (or first measured one without warm-up)
    first_ratio: float  # first_ms / median_ms
    warmup_n: int = 0

    @classmethod
    def from_ns(
        cls,
        latencies_ns: Sequence[int],
        *,
        batch: int = 1,
        window_ns: int | None = None,
        warmup_ns: Sequence[int] = (),
    ) -> LatencyStats:
        """Statistics of measured latencies in nanoseconds; `window_ns` is the measured window's length."""
        if len(latencies_ns) == 0:
            raise ValueError("LatencyStats: no latencies to summarise")
        ms = latencies_ms(latencies_ns)
        n = int(ms.size)
        mean = float(ms.mean())
        sd = float(ms.std(ddof=1)) if n > 1 else math.nan
        median = float(np.median(ms))
        p90, p95, p99 = (float(v) for v in np.percentile(ms, [90, 95, 99]))
        mad = float(np.median(np.abs(ms - median)))
        outliers = int(np.count_nonzero(np.abs(ms - median) / mad > OUTLIER_Z)) if mad > 0 else 0
        first_ms = float(latencies_ms(warmup_ns[:1] if len(warmup_ns) else latencies_ns[:1])[0])
        window_tp = n * batch / (window_ns / 1e9) if window_ns and window_ns > 0 else math.nan
        return cls(
            n=n,
            batch=batch,
            mean_ms=mean,
            sd_ms=sd,
            min_ms=float(ms.min()),
            median_ms=median,
            p90_ms=p90,
            p95_ms=p95,
            p99_ms=p99,
            max_ms=float(ms.max()),
            cv=sd / mean if n > 1 and mean > 0 else math.nan,
            throughput_sps=batch / (mean / 1e3) if mean > 0 else math.nan,
            window_throughput_sps=window_tp,
            outliers=outliers,
            first_ms=first_ms,
            first_ratio=first_ms / median if median > 0 else math.nan,
            warmup_n=len(warmup_ns),
        )

    @classmethod
    def from_record(cls, record: RunRecord) -> LatencyStats:
        """Statistics of a RunRecord's measured window."""
        return cls.from_ns(
            record.latencies_ns,
            batch=record.batch,
            window_ns=record.duration_ns,
            warmup_ns=record.warmup_latencies_ns,
        )

    @property
    def per_sample_ms(self) -> float:
        """Mean latency divided by the batch: the time one input sample costs."""
        return self.mean_ms / self.batch if self.batch else math.nan


def latency_warnings(stats: LatencyStats) -> list[str]:
    """Warnings about a window's statistics, each saying what to do (returned, not printed)."""
    out: list[str] = []
    if stats.n < MIN_ITERATIONS:
        out.append(
            f"only {stats.n} measured iteration{'s' if stats.n != 1 else ''}: statistics need at least "
            f"{MIN_ITERATIONS}; use a longer --duration or --iterations {MIN_ITERATIONS} or more"
        )
    if not math.isnan(stats.cv) and stats.cv > UNSTABLE_CV:
        out.append(
            f"unstable timings: coefficient of variation {stats.cv * 100:.1f} % (> {UNSTABLE_CV * 100:.0f} %): "
            "close other programs, lock clocks (sudo jetson_clocks on a Jetson, the 'performance' CPU governor "
            "elsewhere), and use a longer --duration"
        )
    if stats.outliers > OUTLIER_FRACTION * stats.n:
        out.append(
            f"{stats.outliers} statistical outlier{'s' if stats.outliers != 1 else ''} "
            f"({stats.outliers / stats.n * 100:.1f} % of the runs, more than {OUTLIER_SDS:.0f} robust standard "
            "deviations from the median): another process or an interrupt probably interfered; close other programs and run again"
        )
    if stats.warmup_n and not math.isnan(stats.first_ratio) and stats.first_ratio > SLOW_FIRST_RATIO:
        out.append(
            f"the first warm-up iteration took {stats.first_ratio:.1f} x the median ({fmt_time(stats.first_ms)}): "
            "lazy initialisation and cold caches; this is why warm-up iterations are discarded"
        )
    elif not stats.warmup_n and not math.isnan(stats.first_ratio) and stats.first_ratio > SLOW_FIRST_RATIO:
        out.append(
            f"the first measured iteration took {stats.first_ratio:.1f} x the median and there was no warm-up: "
            "use --warmup 10 (or --warmup-time 0.2) so cold-start cost stays out of the statistics"
        )
    return out


def timing_warnings(
    latencies_ns: Sequence[int],
    *,
    batch: int = 1,
    warmup_ns: Sequence[int] = (),
    window_ns: int | None = None,
) -> list[str]:
    """The warnings `bench` prints for one window, from its measured latencies in ns (and the warm-up's, when
    there was one): too few iterations, unstable timings (with the CV), outliers (with their count and share), a
    slow first iteration (with its ratio). Each says what to do; returned, not printed. The same rules as the
    harness's (latency_warnings over LatencyStats.from_ns), for code that has latencies but no RunRecord, such
    as a study's points. ValueError for an empty list."""
    stats = LatencyStats.from_ns(latencies_ns, batch=batch, window_ns=window_ns, warmup_ns=warmup_ns)
    return latency_warnings(stats)


# --- formatting (numbers themselves: edgebench.units) ----------------------------------------------------------


def format_block(name: str, stats: LatencyStats) -> list[str]:
    """hyperfine-like lines for one engine: mean ± sd, range, percentiles, throughput, run count."""
    unit = time_unit(stats.mean_ms)
    sd = fmt_time(stats.sd_ms, unit) if not math.isnan(stats.sd_ms) else "n/a"
    lines = [
        f"Benchmark: {name}",
        f"  Time (mean ± σ):     {fmt_time(stats.mean_ms, unit)} ± {sd}"
        + (f"    [CV {stats.cv * 100:.1f} %]" if not math.isnan(stats.cv) else ""),
        f"  Range (min … max):   {fmt_time(stats.min_ms, unit)} … {fmt_time(stats.max_ms, unit)}",
        f"  Percentiles:         p50 {fmt_time(stats.median_ms, unit)}   p90 {fmt_time(stats.p90_ms, unit)}   "
        f"p95 {fmt_time(stats.p95_ms, unit)}   p99 {fmt_time(stats.p99_ms, unit)}",
        f"  Throughput:          {fmt_rate(stats.throughput_sps)} (batch {stats.batch})"
        + (
            f", {fmt_rate(stats.window_throughput_sps)} over the window"
            if not math.isnan(stats.window_throughput_sps)
            else ""
        ),
        f"  {stats.n} runs"
        + (
            f", {stats.warmup_n} warm-up discarded (first {fmt_time(stats.first_ms)}, "
            f"{stats.first_ratio:.1f} x median)"
            if stats.warmup_n
            else ", no warm-up"
        )
        + (f", {stats.outliers} outlier{'s' if stats.outliers != 1 else ''}" if stats.outliers else ""),
    ]
    return lines


SORT_KEYS = ("mean", "name", "throughput")


def sort_results(results: Sequence[tuple[str, LatencyStats]], by: str = "mean") -> list[tuple[str, LatencyStats]]:
    """Results sorted by per-sample mean latency ("mean"), by name, or by throughput (highest first)."""
    if by == "name":
        return sorted(results, key=lambda r: r[0])
    if by == "throughput":
        return sorted(results, key=lambda r: -r[1].throughput_sps)
    if by == "mean":
        return sorted(results, key=lambda r: (r[1].per_sample_ms, r[0]))
    raise ValueError(f"unknown sort key {by!r}: one of {', '.join(SORT_KEYS)}")


def format_table(results: Sequence[tuple[str, LatencyStats]], by: str = "mean") -> list[str]:
    """A table across engines (ms; samples/s) followed by hyperfine's "x times faster than" summary.

    Engines with different batch sizes are compared per input sample (mean latency / batch), which is what
    "faster" means for a workload of many samples.
    """
    if not results:
        return []
    rows = sort_results(results, by)
    header = ("engine", "batch", "mean_ms", "sd_ms", "median_ms", "p99_ms", "per_sample_ms", "throughput_sps", "runs")
    body = [
        (
            name,
            str(s.batch),
            _cell(s.mean_ms),
            _cell(s.sd_ms),
            _cell(s.median_ms),
            _cell(s.p99_ms),
            _cell(s.per_sample_ms),
            f"{s.throughput_sps:.1f}",
            str(s.n),
        )
        for name, s in rows
    ]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    lines = [line(header), line(["-" * w for w in widths])]
    lines.extend(line(r) for r in body)
    lines.extend(format_summary(results))
    return lines


def _cell(ms: float) -> str:
    """A table cell in ms with four significant digits (sub-millisecond engines keep their precision)."""
    if math.isnan(ms):
        return "n/a"
    return f"{ms:.1f}" if ms >= 1000 else f"{ms:.4g}"


def format_summary(results: Sequence[tuple[str, LatencyStats]]) -> list[str]:
    """hyperfine's summary: the fastest engine per sample, and how many times faster than each other one."""
    if len(results) < 2:
        return []
    ranked = sort_results(results, "mean")
    best_name, best = ranked[0]
    lines = ["", "Summary (per input sample)", f"  {best_name} ran"]
    for name, other in ranked[1:]:
        ratio = other.per_sample_ms / best.per_sample_ms
        # Error propagation of a ratio of two independent means (as hyperfine does).
        if math.isnan(best.cv) or math.isnan(other.cv):
            lines.append(f"    {ratio:.2f} times faster than {name}")
        else:
            err = ratio * math.sqrt(best.cv**2 + other.cv**2)
            lines.append(f"    {ratio:.2f} ± {err:.2f} times faster than {name}")
    return lines
