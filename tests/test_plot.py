"""The report's plots, drawn from a measure directory written by the real writers and read back through
MeasureDir: every axis labelled with units, files in the format their suffix names, and the drawn values (read
back from the matplotlib artists, and from the SVG) equal to the records, the meter trace and the table."""

import importlib.util
import math
import re
import sys

import numpy as np
import pytest

from edgebench.errors import BadInput, MissingDependency
from edgebench.host import plot
from edgebench.host.carbon import egrid_factor
from edgebench.host.measuredir import MeasureDir, Session
from edgebench.host.plot import plot_result
from edgebench.host.store import open_store
from edgebench.host.table import rank
from edgebench.records import ClockOffset, MeterReading, RailEnergy, RunRecord

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
needs_matplotlib = pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib not installed: pip install 'edgebench[plot]'")

EPOCH = 1_700_000_000_000_000_000
S = 1_000_000_000
DEVICE = {"board.model": "NVIDIA Jetson Nano Developer Kit", "jetson.nvpmodel": "MAXN", "cpu.model": "ARMv8 <Cortex-A57>"}
# (engine, window start s, end s, wall W, iterations, batch, latency ms, warm-up latencies ms, rail energy)
ENGINES = [
    ("resnet18_1_224_224_fp32", 22, 38, 6.0, 160, 1, 100.0, (350.0, 130.0, 104.0),
     RailEnergy("ina3221", "VDD_IN", 48.0, 3.0, 160)),  # 0.6 J/inf gross, 0.4 net, 0.3 rails
    ("mbv2_4_120_392_fp16", 42, 58, 4.0, 400, 4, 40.0, (90.0, 41.0), None),  # 0.16 gross, 0.08 net
    ("sp_squeeze_2_120_392_FP16_seq_4", 62, 78, 9.0, 100, 2, 160.0, (400.0,) * 12,
     RailEnergy("estimate", "CPU util x TDP", 50.0, 3.1, 16, estimate=True)),  # 1.44 gross, 1.12 net, 0.5 model
]  # fmt: skip
EXPECTED = {  # closed form: watts x 16 s / iterations, net above the 2 W idle
    "resnet18_1_224_224_fp32": (0.6, 0.4, 0.3),
    "mbv2_4_120_392_fp16": (0.16, 0.08, math.nan),
    "sp_squeeze_2_120_392_FP16_seq_4": (1.44, 1.12, 0.5),
}


def write_measure_dir(path):
    """A measure directory as `edgebench measure` leaves it (runs.jsonl, meter.sqlite, session.json, clock.json,
    table.*), written through MeasureDir and the meter store: an idle window at 2 W, three engines at their own
    power levels (one with measured rails, one with the estimate sensor's), one window too short to be valid."""
    d = MeasureDir(path)
    t_ds = np.arange(0, 1000)  # a reading every 0.1 s, in whole tenths so the steps fall where they should
    p = np.full(len(t_ds), 2.0)
    for _, a, b, w, *_ in ENGINES:
        p[(t_ds >= (a - 2) * 10) & (t_ds < (b + 2) * 10)] = w  # steady 2 s either side of the window
    path.mkdir(parents=True, exist_ok=True)
    with open_store(d.new_meter_path) as log:
        for t, w in zip(t_ds, p, strict=True):
            log.add(MeterReading(t_ns=EPOCH + int(t) * S // 10, power_w=float(w), meter="wattsup PRO"))

    def record(engine, a, b, iterations, batch, latency_ms, warmup_ms=(), rail=None, kind="run"):
        return RunRecord(
            engine=engine, backend="onnxruntime", clock="agent:realtime",
            window_start_ns=EPOCH + int(a * S), window_end_ns=EPOCH + int(b * S), iterations=iterations,
            batch=batch, latencies_ns=tuple([int(latency_ms * 1e6)] * iterations),
            warmup_latencies_ns=tuple(int(ms * 1e6) for ms in warmup_ms), kind=kind, rail_energy=rail,
            device=DEVICE if kind == "run" else {}, run_id="r1",
        )  # fmt: skip

    records = [record("idle", 2, 18, 0, 1, 0, kind="idle")]
    records += [record(n, a, b, it, batch, lat, warm, rail) for n, a, b, _, it, batch, lat, warm, rail in ENGINES]
    records.append(record("broken_1_8_8_fp32", 90, 90.3, 3, 1, 100.0, (120.0,)))  # 3 readings: invalid
    d.append(records)
    d.write_session(
        Session(grid=egrid_factor("RFCW", 2019), meter="wattsup PRO", resolution_w=0.1, clock=ClockOffset(0),
                extra={"agent": "local", "sensor": "ina3221"})
    )
    d.write_tables(d.pair())
    return d


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """(MeasureDir, records, trace, result) read back from the directory the way `report` reads it."""
    d = write_measure_dir(tmp_path_factory.mktemp("measure") / "m")
    session = d.session()
    return d, d.records(), d.trace(resolution_w=session.resolution_w, meter=session.meter), d.pair(session=session)


def _labels(ax):
    return ax.get_xlabel(), ax.get_ylabel()


def _has_unit(label):
    return re.search(r"\((ms|s|W|J|g[^)]*)\)", label) is not None


# --- the scatter of two columns (report --plot) -----------------------------------------------------------------


@needs_matplotlib
@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_plot_writes_the_format_its_suffix_names(paired_result, tmp_path, suffix, magic):
    path = plot_result(paired_result, tmp_path / f"energy{suffix}", x="latency", y="net_j")
    data = path.read_bytes()
    assert data.startswith(magic) and len(data) > 1000
    if suffix == ".svg":  # the three valid engines are labelled, the invalid one is not drawn
        text = data.decode()
        assert "resnet18_1_224_224_fp32" in text and "mbv2_4_120_392_fp16" in text
        assert "broken_1_8_8_fp32" not in text


@needs_matplotlib
def test_the_scatter_draws_each_engines_two_columns(paired_result):
    fig = plot.scatter_figure(paired_result, x="latency", y="net_j")
    (ax,) = fig.axes
    assert _labels(ax) == ("mean latency (ms)", "J per execution (batch) above idle")
    points = {line.get_gid(): line.get_data() for line in ax.lines if (line.get_gid() or "").startswith("point:")}
    ok = [e for e in paired_result.engines if e.ok]
    assert set(points) == {f"point:{e.engine}" for e in ok}  # the invalid engine is not drawn
    for e in ok:
        (x,), (y,) = points[f"point:{e.engine}"]
        assert (x, y) == pytest.approx((e.latency_mean_ms, e.net_j_per_inference))
    # the error bars span the net figure's 1-sigma uncertainty
    segments = [seg for c in ax.collections for seg in c.get_segments()]
    spans = sorted(abs(seg[1][1] - seg[0][1]) / 2 for seg in segments)
    assert spans == pytest.approx(sorted(e.net_j_per_inference_u for e in ok))


@needs_matplotlib
def test_plot_refuses_columns_it_cannot_draw(paired_result, tmp_path):
    with pytest.raises(BadInput, match="--y 'engine' cannot be plotted"):
        plot_result(paired_result, tmp_path / "p.png", x="latency", y="engine")
    with pytest.raises(BadInput, match="no engine has both gflops and net_j"):
        plot_result(paired_result, tmp_path / "p.png", x="gflops", y="net_j")  # these records carry no model facts
    with pytest.raises(BadInput, match=r"give a \.png, \.svg or \.pdf path"):
        plot_result(paired_result, tmp_path / "p.jpeg", x="latency", y="net_j")


def test_every_plot_without_matplotlib_is_one_line_naming_the_extra(measured, monkeypatch):
    _, records, trace, result = measured
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError, as when absent
    for draw in (lambda: plot.warmup_figure(records), lambda: plot.power_figure(trace, result),
                 lambda: plot.sources_figure(result), lambda: plot.ranked_figure(result),
                 lambda: plot.scatter_figure(result, x="latency", y="net_j")):  # fmt: skip
        with pytest.raises(MissingDependency) as caught:
            draw()
        message = str(caught.value)
        assert "\n" not in message and "pip install 'edgebench[plot]'" in message
        assert caught.value.exit_code == 2


# --- lab 2: the first iterations, warm-up included --------------------------------------------------------------


@needs_matplotlib
def test_latency_of_the_first_iterations_includes_the_warm_up(measured):
    _, records, _, _ = measured
    fig = plot.warmup_figure(records, first=10)
    (ax,) = fig.axes
    x_label, y_label = _labels(ax)
    assert "iteration" in x_label and y_label == "latency per inference (ms)"
    by_gid = {line.get_gid(): line for line in ax.lines if line.get_gid()}
    for name, _, _, _, _, _, latency_ms, warmup_ms, _ in ENGINES:
        xs, ys = by_gid[f"latency:{name}"].get_data()
        expected = [*warmup_ms, *[latency_ms] * 10][:10]
        assert list(xs) == list(range(1, 11))
        assert list(ys) == pytest.approx(expected)
        (median,) = set(by_gid[f"median:{name}"].get_ydata())
        assert median == pytest.approx(latency_ms)
    # hollow markers are the warm-up iterations: 3 + 2 + 10 (sp_squeeze warms up for 12, only 10 shown) + 1
    hollow = sum(len(line.get_xdata()) for line in ax.lines if line.get_marker() == "o" and line.get_mfc() == "white")
    assert hollow == 3 + 2 + 10 + 1
    assert ax.get_yscale() == "linear"  # 400 ms / 40 ms: no need for a log axis
    assert "broken_1_8_8_fp32" in by_gid["latency:broken_1_8_8_fp32"].get_label()  # it ran, so it is shown


@needs_matplotlib
def test_a_cold_first_iteration_far_slower_switches_to_a_log_axis(measured):
    _, records, _, _ = measured
    cold = [r for r in records if r.engine == "mbv2_4_120_392_fp16"]
    slow = [type(r)(**{**r.__dict__, "warmup_latencies_ns": (4_000_000_000, 41_000_000)}) for r in cold]
    (ax,) = plot.warmup_figure(slow, first=5).axes
    assert ax.get_yscale() == "log"
    with pytest.raises(BadInput, match="no engine window has latencies"):
        plot.warmup_figure([r for r in records if r.kind == "idle"])


# --- the wall power trace ---------------------------------------------------------------------------------------


@needs_matplotlib
def test_the_power_trace_shades_each_window_and_draws_the_idle_baseline(measured):
    _, _, trace, result = measured
    fig = plot.power_figure(trace, result)
    (ax,) = fig.axes
    assert _labels(ax) == ("time since the first meter reading (s)", "wall power (W)")
    (line,) = [line for line in ax.lines if line.get_gid() == "wall-power"]
    xs, ys = line.get_data()
    assert np.allclose(xs, (trace.t_ns - trace.t_ns[0]) / 1e9) and np.array_equal(ys, trace.power_w)
    spans = {p.get_gid(): p for p in ax.patches if (p.get_gid() or "").startswith("window:")}
    for w in result.windows:
        span = spans[f"window:{w.kind}:{w.engine}:{w.repeat}:{w.attempt}"]
        x0 = span.get_x()
        assert x0 == pytest.approx((w.start_host_ns - trace.t_ns[0]) / 1e9)
        assert x0 + span.get_width() == pytest.approx((w.end_host_ns - trace.t_ns[0]) / 1e9)
        assert (span.get_hatch() == "//") == (not w.valid)  # the short window is hatched: invalid
    assert spans["window:run:broken_1_8_8_fp32:0:0"].get_hatch() == "//"
    (idle,) = [line for line in ax.lines if line.get_gid() == "idle-baseline"]
    assert list(idle.get_ydata()) == pytest.approx([2.0, 2.0]) and result.idle.power_w == pytest.approx(2.0)
    labels = ax.get_legend_handles_labels()[1]
    assert any(label.startswith("idle baseline 2 ") and label.endswith(" W") for label in labels)


@needs_matplotlib
def test_a_long_trace_is_drawn_as_an_envelope_that_keeps_its_spikes():
    t = np.arange(200_000, dtype=np.int64) * 100_000_000
    p = np.full(200_000, 5.0)
    p[123_457] = 60.0  # one spike and one dip among 200,000 readings
    p[7] = 0.5
    t_out, p_out = plot.trace_envelope(t, p, max_points=1000)
    assert len(t_out) <= 1000 and np.all(np.diff(t_out) > 0)
    assert p_out.max() == 60.0 and p_out.min() == 0.5
    assert t_out[np.argmax(p_out)] == t[123_457]
    short_t, short_p = plot.trace_envelope(t[:500], p[:500], max_points=1000)
    assert np.array_equal(short_t, t[:500]) and np.array_equal(short_p, p[:500])


# --- wall vs estimate vs rails ----------------------------------------------------------------------------------


@needs_matplotlib
def test_wall_estimate_and_rails_side_by_side(measured):
    _, _, _, result = measured
    fig = plot.sources_figure(result)  # per sample, as the table ranks by default
    (ax,) = fig.axes
    assert _labels(ax) == ("engine (table order)", "energy per sample (J)")
    bars = {p.get_gid(): p for p in ax.patches if (p.get_gid() or "").startswith("bar:")}
    engines = {e.engine: e for e in result.engines}
    for name, (gross, _, rails) in EXPECTED.items():
        e = engines[name]
        assert bars[f"bar:wall:{name}"].get_height() == pytest.approx(gross / e.batch, rel=1e-6)
        assert bars[f"bar:lab:{name}"].get_height() == pytest.approx(e.wall_power_w * e.latency_mean_ms / 1e3 / e.batch)
        source = "model" if name.startswith("sp_squeeze") else "rails"
        if math.isnan(rails):
            assert f"bar:rails:{name}" not in bars and f"bar:model:{name}" not in bars
        else:
            assert bars[f"bar:{source}:{name}"].get_height() == pytest.approx(rails / e.batch, rel=1e-6)
    (per_execution,) = plot.sources_figure(result, sort="gross_j").axes
    assert per_execution.get_ylabel() == "energy per execution (J)"
    heights = {p.get_gid(): p.get_height() for p in per_execution.patches if p.get_gid()}
    assert heights["bar:wall:mbv2_4_120_392_fp16"] == pytest.approx(EXPECTED["mbv2_4_120_392_fp16"][0], rel=1e-6)
    assert bars["bar:model:sp_squeeze_2_120_392_FP16_seq_4"].get_hatch() == "//"  # modelled, not measured
    assert "bar:wall:broken_1_8_8_fp32" not in bars  # invalid: no figure to compare
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == [e.engine for _, e in rank([e for e in result.engines if e.ok])]
    # resnet18: 6 W x 100 ms = 0.6 J, the integrated figure too (no time between its iterations)
    assert plot.lab_estimate_j(engines["resnet18_1_224_224_fp32"]) == pytest.approx(0.6, rel=1e-3)


# --- ranked J/inference and CO2 ---------------------------------------------------------------------------------


@needs_matplotlib
def test_ranked_bars_follow_the_table(measured):
    _, _, _, result = measured
    fig = plot.ranked_figure(result)
    left, right = fig.axes
    assert left.get_xlabel() == "wall (gross) energy per sample (J)"
    assert right.get_xlabel().startswith("CO2 per million samples (g;")
    assert left.get_ylabel() == "engine, by rank"
    assert fig._suptitle.get_text().startswith("ranked by wall (gross) J per sample, lowest first")
    ranked = [e for position, e in rank(result.engines) if position is not None]
    names = [t.get_text() for t in left.get_yticklabels()]
    assert names == [f"{i}. {e.engine}" for i, e in enumerate(ranked, 1)]
    assert [n.split(". ", 1)[1] for n in names] == ["mbv2_4_120_392_fp16", "resnet18_1_224_224_fp32",
                                                     "sp_squeeze_2_120_392_FP16_seq_4"]
    widths = [p.get_width() for p in left.patches]
    assert widths == pytest.approx([EXPECTED[e.engine][0] / e.batch for e in ranked], rel=1e-6)
    co2 = [p.get_width() for p in right.patches]
    assert co2 == pytest.approx([e.co2_kg_per_inference / e.batch * 1e9 for e in ranked])
    # the bars follow --sort: net J per execution draws the net figures, in that order
    net = plot.ranked_figure(result, sort="net_j")
    assert net.axes[0].get_xlabel() == "net (above idle) energy per execution (J)"
    assert [p.get_width() for p in net.axes[0].patches] == pytest.approx(
        [EXPECTED[e.engine][1] for _, e in rank(result.engines, "net_j") if e.ok], rel=1e-6)
    assert net._suptitle.get_text().startswith("ranked by net (above idle) J per execution")
    # resnet18: 0.6 J = 0.6 / 3.6e9 MWh, x the RFCW 2019 factor (lb/MWh) x 453.59237 g/lb, x 1e6 inferences
    resnet = ranked[1]
    assert co2[1] == pytest.approx(0.6 / 3.6e9 * egrid_factor("RFCW", 2019).lb_co2_per_mwh * 453.59237 * 1e6, rel=1e-6)
    assert resnet.engine == "resnet18_1_224_224_fp32"
    by_latency = plot.ranked_figure(result, sort="latency").axes[0]
    assert by_latency.get_yticklabels()[0].get_text() == "1. mbv2_4_120_392_fp16"
    assert [t.get_text() for t in by_latency.get_yticklabels()][-1] == "3. sp_squeeze_2_120_392_FP16_seq_4"


# --- files ------------------------------------------------------------------------------------------------------


@needs_matplotlib
@pytest.mark.slow
def test_write_plots_writes_each_plot_as_png_and_svg_with_labelled_axes(measured, tmp_path):
    d, records, trace, result = measured
    written = plot.write_plots(tmp_path, result, records, trace)
    names = {"latency-first-iterations", "wall-power", "energy-sources", "ranked-energy-co2"}
    assert {p.name for p in written} == {f"{n}{s}" for n in names for s in (".png", ".svg")}
    for path in written:
        data = path.read_bytes()
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG") and len(data) > 5000
            continue
        text = data.decode()
        assert text.startswith("<?xml") and "<dc:date>" not in text
        labels = re.findall(r"<text[^>]*>([^<]*)</text>", text)  # svg.fonttype none: labels are text
        unit_labels = [label for label in labels if _has_unit(label)]
        assert unit_labels, (path.name, labels[:20])
    svg = (tmp_path / "wall-power.svg").read_text()
    assert "wall power (W)" in svg and "time since the first meter reading (s)" in svg
    assert "resnet18_1_224_224_fp32" in svg and "idle baseline 2" in svg
    ranked = (tmp_path / "ranked-energy-co2.svg").read_text()
    assert ranked.index("1. mbv2_4_120_392_fp16") < ranked.index("2. resnet18_1_224_224_fp32")
    again = plot.write_plots(tmp_path / "again", result, records, trace, suffixes=(".svg",))
    assert [p.read_bytes() for p in again] == [(tmp_path / p.name).read_bytes() for p in again]  # reproducible


@needs_matplotlib
def test_small_energies_are_drawn_in_millijoules(measured):
    from dataclasses import replace

    assert plot.energy_unit([0.6, 1.44]) == ("J", 1.0)
    assert plot.energy_unit([0.0026, 0.0065]) == ("mJ", 1e3)
    assert plot.energy_unit([3e-5, float("nan")]) == ("µJ", 1e6)
    _, _, _, result = measured
    tiny = replace(result, engines=tuple(
        replace(e, gross_j_per_inference=e.gross_j_per_inference / 1000, net_j_per_inference=e.net_j_per_inference / 1000,
                gross_j_per_inference_u=e.gross_j_per_inference_u / 1000, net_j_per_inference_u=e.net_j_per_inference_u / 1000,
                gross_j_per_sample=e.gross_j_per_sample / 1000, gross_j_per_sample_u=e.gross_j_per_sample_u / 1000,
                rail_j_per_inference=e.rail_j_per_inference / 1000, latency_mean_ms=e.latency_mean_ms / 1000)
        for e in result.engines
    ))  # fmt: skip
    left, _ = plot.ranked_figure(tiny).axes
    assert left.get_xlabel() == "wall (gross) energy per sample (mJ)"
    assert [p.get_width() for p in left.patches] == pytest.approx([0.04, 0.6, 0.72], rel=1e-6)  # mJ, as labelled
    (ax,) = plot.sources_figure(tiny).axes
    assert ax.get_ylabel() == "energy per sample (mJ)"
    bars = {p.get_gid(): p.get_height() for p in ax.patches if p.get_gid()}
    assert bars["bar:wall:resnet18_1_224_224_fp32"] == pytest.approx(0.6, rel=1e-6)


@needs_matplotlib
def test_engines_with_flops_add_the_energy_against_gflops_scatter(measured):
    from dataclasses import replace

    _, records, trace, result = measured
    names = [f.name for f in plot.report_figures(result, records, trace)]
    assert names == ["latency-first-iterations", "wall-power", "energy-sources", "ranked-energy-co2"]  # no FLOPs
    gflops = {"resnet18_1_224_224_fp32": 1.82, "mbv2_4_120_392_fp16": 0.94, "sp_squeeze_2_120_392_FP16_seq_4": 0.7}
    with_flops = replace(result, engines=tuple(
        replace(e, gflops_per_inference=gflops.get(e.engine, float("nan"))) for e in result.engines
    ))  # fmt: skip
    figures = {f.name: f.figure for f in plot.report_figures(with_flops, records, trace)}
    (ax,) = figures["gflops-energy"].axes
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("GFLOPs per inference", "J per sample (image) at the wall")
    points = {line.get_gid(): line.get_data() for line in ax.lines if (line.get_gid() or "").startswith("point:")}
    batch = {e.engine: e.batch for e in result.engines}
    for name, g in gflops.items():
        (x,), (y,) = points[f"point:{name}"]
        assert (x, y) == pytest.approx((g, EXPECTED[name][0] / batch[name]), rel=1e-6)
