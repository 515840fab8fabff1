"""Text from the data on the page and in the plots: engine names from edited or foreign files may hold `$...$`
(matplotlib would parse it as mathtext and crash or render maths), NUL bytes or bidirectional overrides
(U+202E makes a name read backwards). Plot labels are plain text; the page writes such characters out visibly."""

import importlib.util
import re

import numpy as np
import pytest
from click.testing import CliRunner

from edgebench.cli import cli
from edgebench.host.carbon import egrid_factor
from edgebench.host.measuredir import MeasureDir, Session
from edgebench.host.store import open_store
from edgebench.records import ClockOffset, MeterReading, RunRecord
from edgebench.units import visible

needs_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                      reason="matplotlib not installed: pip install 'edgebench[plot]'")
EPOCH = 1_700_000_000_000_000_000
S = 1_000_000_000
HOSTILE = ["net_$x^2$_1_8_8_fp32", "nul\x00byte_1_8_8_fp32", "evil\u202eexe.txt_1_8_8_fp32", r"unclosed_$\frac{_1_8_8_fp32"]


def _directory(path, names):
    d = MeasureDir(path)
    path.mkdir(parents=True)
    with open_store(d.new_meter_path) as log:
        for i in range(0, 10 * (20 + 12 * len(names))):
            log.add(MeterReading(t_ns=EPOCH + i * S // 10, power_w=5.0 + (i // 100) % 3, meter="wattsup PRO"))
    records = [RunRecord(engine="idle", backend="none", clock="agent:realtime", window_start_ns=EPOCH + 2 * S,
                         window_end_ns=EPOCH + 12 * S, iterations=0, batch=0, latencies_ns=(), kind="idle")]
    for i, name in enumerate(names):
        a = 20 + 12 * i
        records.append(RunRecord(
            engine=name, backend="onnxruntime", clock="agent:realtime", window_start_ns=EPOCH + a * S,
            window_end_ns=EPOCH + (a + 10) * S, iterations=100, batch=1, latencies_ns=(10_000_000,) * 100,
            warmup_latencies_ns=(30_000_000,), warnings=(f"unstable timings: coefficient of variation {10 + i} %",),
        ))  # fmt: skip
    d.append(records)
    d.write_session(Session(grid=egrid_factor("RFCW", 2019), meter="wattsup PRO", resolution_w=0.1, clock=ClockOffset(0)))
    return path


def test_visible_writes_controls_and_bidi_overrides_out():
    assert visible("a\x00b") == "a\\x00b"
    assert visible("evil\u202eexe") == "evil\\u202eexe"
    assert visible("\u2066x\u2069\x1b[31m") == "\\u2066x\\u2069\\x1b[31m"
    assert visible("plain name, ünïcode, 中文") == "plain name, ünïcode, 中文"


@needs_matplotlib
def test_hostile_engine_names_draw_as_plain_text_and_show_visibly_on_the_page(tmp_path):
    directory = _directory(tmp_path / "m", HOSTILE)
    page, plots = tmp_path / "r.html", tmp_path / "plots"
    res = CliRunner().invoke(cli, ["report", str(directory), "--html", str(page), "--plots", str(plots)])
    assert res.exit_code == 0, res.output
    text = page.read_text(encoding="utf-8")
    assert "\x00" not in text and "\u202e" not in text
    assert "nul\\x00byte" in text and "evil\\u202eexe.txt" in text
    # in the SVG plots (text kept as text) the dollar signs are literal characters, not maths
    svg = (plots / "ranked-energy-co2.svg").read_text(encoding="utf-8")
    labels = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert any("net_$x^2$_1_8_8_fp32" in label for label in labels), labels[:12]
    assert any("unclosed_$\\frac{" in label for label in labels)
    # repeated warnings are grouped with a count instead of one line per engine
    warnings = text[text.index('<ul id="warnings">'):]
    warnings = warnings[: warnings.index("</ul>")]
    assert warnings.count("<li>") == 1 and "unstable timings: 4 engines, 10-13 %" in warnings


@needs_matplotlib
def test_a_hostile_name_in_the_scatter_and_legend_is_plain_text():
    from edgebench.host import plot
    from edgebench.host.pairing import pair
    from edgebench.records import MeterTrace

    t_s = np.arange(0, 100, 0.1)
    trace = MeterTrace(EPOCH + np.round(t_s * 1e9).astype(np.int64), np.full_like(t_s, 5.0), "m", resolution_w=0.1)
    runs = [RunRecord(engine=name, backend="x", clock="agent:realtime", window_start_ns=EPOCH + (10 + 20 * i) * S,
                      window_end_ns=EPOCH + (20 + 20 * i) * S, iterations=10, batch=1, latencies_ns=(1,) * 10)
            for i, name in enumerate(HOSTILE)]  # fmt: skip
    result = pair(runs, trace, ClockOffset(0))
    fig = plot.scatter_figure(result, x="latency", y="gross_j_sample")
    fig.canvas.draw() if hasattr(fig.canvas, "draw") else None
    plot.svg_document(fig, "x")  # draws every text: a mathtext parse error would raise here
    shown = [t.get_text() for t in fig.axes[0].texts]
    assert any("$x^2$" in s.replace("\\$", "$") for s in shown)
