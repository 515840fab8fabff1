"""`edgebench report DIR --html FILE`: one self-contained HTML page of a measure directory.

The page holds the ranked table (sortable by clicking a header: a few lines of vanilla JavaScript), the report's
plots inlined as SVG (`host.plot`), the session's metadata, the grid factor with its source and edition, everyday
equivalents of the CO2, and the notes that say how far to trust the numbers: what ± means, the validity rules
and their thresholds, every window that was not valid and why, and the agent's warnings. Nothing is fetched: no
external script, style sheet, font or image, so the file can be mailed or opened offline. Every string taken
from the data is escaped. Without matplotlib the page is written without plots and says how to get them.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench import __version__
from edgebench.console import warn
from edgebench.errors import BadInput, MissingDependency
from edgebench.files import output_path, write_atomic
from edgebench.records import MeterTrace, RunRecord
from edgebench.units import visible

from .carbon import Lifetime, equivalents_data, format_lifetime
from .measuredir import MeasureDir, Session
from .pairing import SIGNIFICANCE, EngineResult, PairingResult
from .table import (
    COLUMNS,
    DEFAULT_SORT,
    FIGURES,
    below_idle_lines,
    columns,
    grouped_warnings,
    idle_lines,
    plus_minus,
    rank,
    rank_label,
    ranked_words,
    shared_ranks,
    sort_getter,
    summary_lines,
)

if TYPE_CHECKING:
    from .plot import RenderedFigure

PER = 1_000_000  # equivalents are given for a million samples, like the table's g/1M column
# column groups shown when the page opens (the others behind the column chooser), so that the ranked table fits
# a 1280 px laptop screen with the engine and the ranked figure in view
DEFAULT_GROUPS = ("engine", "speed", "energy", "energy per execution", "carbon", "windows", "accuracy")


def _esc(value: Any) -> str:
    """Text from the data as HTML: escaped, with control and bidi-override characters written out visibly."""
    return html.escape(visible(str(value)), quote=True)


def _sort_value(value: Any) -> str:
    """The data-v attribute: a number in full precision, text for text, "" for missing (sorted last)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return str(value)


# --- sections -------------------------------------------------------------------------------------------------


def _table(result: PairingResult, sort: str) -> str:
    shown = columns(result.engines, sort, wide=True)
    ranked = rank(result.engines, sort)
    shared = shared_ranks(ranked)
    key = sort.lstrip("-")
    head = [
        '<th scope="col" data-type="n" data-key="rank" data-group="engine" class="sticky rank" '
        f'aria-sort="ascending" title="rank by {_esc(ranked_words(sort))}">rank</th>'
    ]
    for c in shown:
        kind = "n" if c.numeric else "s"
        css = ' class="sticky engine"' if c.key == "engine" else (' class="ranked"' if c.key == key else "")
        head.append(
            f'<th scope="col" data-type="{kind}" data-key="{_esc(c.key)}" data-group="{_esc(c.group)}"{css}>'
            f"{_esc(c.header)}</th>"
        )
    head.append('<th scope="col" data-type="s" data-key="status" data-group="windows">status</th>')
    rows = []
    for position, e in ranked:
        label = rank_label(position, shared)
        cells = [f'<td class="sticky rank" data-v="{_sort_value(position)}">{_esc(label)}</td>']
        for c in shown:
            classes = ["t"] if not c.numeric else []
            if c.key == "engine":
                classes.append("sticky engine")
            elif c.key == key:
                classes.append("ranked")
            attr = f' class="{" ".join(classes)}"' if classes else ""
            cells.append(f'<td{attr} data-v="{_esc(_sort_value(c.value(e)))}">{_esc(c.cell(e))}</td>')
        cells.append(f'<td class="t" data-v="{_esc(e.status)}">{_esc(e.status)}</td>')
        css = "" if e.ok else ' class="not-ok"'
        rows.append(f'<tr data-engine="{_esc(e.engine)}"{css}>' + "".join(cells) + "</tr>")
    if not rows:
        rows.append(f'<tr><td colspan="{len(head)}">no engines in this directory</td></tr>')
    return (
        '<table id="ranked" class="sortable">\n<thead><tr>' + "".join(head) + "</tr></thead>\n<tbody>\n"
        + "\n".join(rows) + "\n</tbody>\n</table>"
    )


def _chooser(result: PairingResult, sort: str) -> str:
    """Checkboxes that show or hide the table's column groups (the ranked figure's group always shown)."""
    groups = list(dict.fromkeys(c.group for c in columns(result.engines, sort, wide=True) if c.group != "engine"))
    ranked_group = next((c.group for c in COLUMNS if c.key == sort.lstrip("-")), "")
    boxes = []
    for g in groups:
        checked = " checked" if g in DEFAULT_GROUPS or g == ranked_group else ""
        boxes.append(
            f'<label><input type="checkbox" data-group="{_esc(g)}"{checked}> {_esc(g)}</label>'
        )
    return '<p class="note" id="column-chooser">Columns: ' + " ".join(boxes) + "</p>"


def _key_values(pairs: Sequence[tuple[str, Any]], css_id: str) -> str:
    rows = "".join(f"<tr><th scope=\"row\">{_esc(k)}</th><td>{_esc(v)}</td></tr>" for k, v in pairs)
    return f'<table id="{css_id}" class="kv"><tbody>{rows}</tbody></table>'


def _plain(value: Any) -> str:
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _session_pairs(
    directory: Path, session: Session, result: PairingResult, records: Sequence[RunRecord]
) -> list[tuple[str, Any]]:
    pairs: list[tuple[str, Any]] = [("directory", str(directory))]
    pairs.append(("meter", result.meter or session.meter or "-"))
    if result.resolution_w:
        pairs.append(("meter resolution", f"{result.resolution_w:g} W"))
    pairs.append(("PUE", f"{result.pue:g}"))
    clock = session.clock
    if clock is None:
        pairs.append(("clock", "no clock.json: agent and host clocks taken as equal"))
    else:
        offsets = clock.values() if isinstance(clock, Mapping) else [clock]
        for run_id, c in zip(clock.keys() if isinstance(clock, Mapping) else [""], offsets, strict=True):
            label = f"clock offset{f' ({run_id})' if run_id else ''}"
            pairs.append((label, f"{c.offset_ns / 1e6:.3f} ms ± {c.uncertainty_ns / 1e6:.3f} ms, drift "
                                 f"{c.drift_ppm:g} ppm ({c.method})"))
    runs = list(dict.fromkeys(r.run_id for r in records if r.run_id))
    if runs:
        pairs.append(("runs", ", ".join(runs)))
    windows = [r for r in records if r.kind == "run"]
    if windows:
        first = min(r.window_start_ns for r in records)
        last = max(r.window_end_ns for r in records)
        pairs.append(("windows", f"{len(windows)} engine windows, "
                                 f"{sum(1 for r in records if r.kind == 'idle')} idle, over {(last - first) / 1e9:.1f} s"))
    pairs += [(f"session: {k}", _plain(v)) for k, v in sorted(session.extra.items())]
    pairs += [(f"device: {k}", _plain(v)) for k, v in sorted(result.device.items())]
    return pairs


def _grid(result: PairingResult) -> str:
    g = result.grid
    pairs = [
        ("factor", f"{g.lb_co2_per_mwh:.1f} lb CO2/MWh = {g.g_co2_per_kwh:.1f} g CO2/kWh ({g.kind})"),
        ("region", g.region or "-"),
        ("source", g.source or "-"),
        ("edition", g.edition or "-"),
        ("PUE", f"{result.pue:g}"),
        ("CO2 per sample", "gross (wall) J/sample x PUE / 3.6e6 J/kWh x factor"),
    ]
    return _key_values(pairs, "grid")


def _equivalents(result: PairingResult, sort: str) -> str:
    ranked = [e for position, e in rank(result.engines, sort) if position is not None]
    ranked = [e for e in ranked if math.isfinite(e.co2_kg_per_inference)]
    if not ranked:
        return "<p>No engine has a CO2 figure: nothing to compare.</p>"
    factors = equivalents_data(1.0)
    head = "".join(f'<th scope="col">{_esc(f["what"])}</th>' for f in factors)
    rows = []
    for e in ranked:
        kg = e.co2_kg_per_sample * PER
        cells = "".join(f"<td>{float(f['count']) * kg:.3g}</td>" for f in factors)
        rows.append(f'<tr><th scope="row">{_esc(e.engine)}</th><td>{kg:.4g}</td>{cells}</tr>')
    sources = sorted({f"{f['source']}, {f['year']}" for f in factors})
    notes = "; ".join(f"{_esc(f['what'])}: {float(f['kg_co2_per_unit']):.4g} kg CO2/{_esc(f['unit'])}" for f in factors)
    return (
        f'<div class="scroll"><table id="equivalents"><thead><tr><th scope="col">engine</th><th scope="col">kg CO2 per {PER:,} '
        f"samples (images)</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        f'<p class="note">Approximate, for a sense of scale ({_esc("; ".join(sources))}): {notes}.</p>'
    )


def _notes(result: PairingResult, records: Sequence[RunRecord], sort: str) -> str:
    t = result.thresholds
    items = [
        "± is one standard uncertainty (1 sigma), combining the meter's resolution over the readings of each "
        "window, the clock offset's uncertainty at the window edges and the spread of repeated windows; net "
        "figures add the idle baseline's uncertainty.",
        f"Ranked by {ranked_words(sort)}. Sample = one input (image); execution = one engine run of one batch. "
        f"Engines equal within {SIGNIFICANCE:g} combined standard uncertainties share a rank (shown as 2=). CO2 "
        "comes from the gross (wall) energy.",
    ]
    if t:
        items.append(
            f"A window is valid when it holds at least {t.get('min_samples', 10):g} meter readings, the readings "
            f"cover at least {t.get('min_coverage', 0.99):.0%} of it, no logged meter gap overlaps it, no stretch "
            f"without a reading exceeds {t.get('max_silence_periods', 5):g} meter periods, and twice the clock "
            f"uncertainty stays under {t.get('max_clock_share', 0.01):.0%} of it. Invalid windows count in no "
            "figure; an engine without a valid window is listed unranked."
        )
    if result.idle is not None:
        items += idle_lines(result)
        items.append("Net = gross minus the idle power at the window's time x its duration; a net figure below "
                     f"zero beyond {SIGNIFICANCE:g} sigma is shown as <0 !, one within it as ≈0 (± u).")
    else:
        items.append("No idle baseline was measured, so there are no net figures.")
    items += below_idle_lines(result)
    if any(e.rail_estimate for e in result.engines):
        items.append("* rail figure modelled by the estimate sensor (CPU utilisation x TDP), not measured.")
    if any(e.accuracy is not None for e in result.engines):
        items.append(
            "front: E = on the Pareto front of top-1 accuracy vs the ranked energy figure, L = of top-1 vs mean "
            f"latency; E?/L? = possibly on it (beaten, but not beyond {SIGNIFICANCE:g} sigma on both axes); fronts "
            "compare only engines evaluated on the same dataset and preprocessing (ok engines only)."
        )
    summary = summary_lines(result, sort)
    bad = [w for w in result.windows if not w.valid]
    if bad:
        rows = "".join(
            f"<tr><td>{_esc(w.engine)}</td><td>{_esc(w.kind)}</td><td>{w.repeat}</td><td>{w.attempt}</td>"
            f"<td>{w.duration_s:.3g}</td><td>{w.samples}</td><td>{_esc(w.status)}</td></tr>"
            for w in bad
        )
        windows = (
            f"<p>{len(bad)} of {len(result.windows)} windows are not valid:</p>"
            '<table id="invalid-windows"><thead><tr><th>engine</th><th>kind</th><th>repeat</th><th>attempt</th>'
            f"<th>duration s</th><th>meter readings</th><th>status</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    else:
        windows = f"<p>All {len(result.windows)} windows are valid.</p>"
    grouped = grouped_warnings([(r.engine, w) for r in records for w in r.warnings])
    warnings = (
        "<p>Warnings the agent recorded (grouped by kind):</p><ul id=\"warnings\">"
        + "".join(f"<li>{_esc(line)}</li>" for line in grouped)
        + "</ul>"
        if grouped
        else ""
    )
    return (
        '<ul id="notes">' + "".join(f"<li>{_esc(i)}</li>" for i in items) + "</ul>"
        + (f'<pre id="summary-ratios">{_esc(chr(10).join(summary))}</pre>' if summary else "")
        + windows + warnings
    )


def _figures(figures: Sequence[RenderedFigure] | MissingDependency) -> str:
    """The report's plots inlined as SVG (`plot.RenderedFigure`s, drawn once for the page and `--plots`)."""
    if isinstance(figures, MissingDependency):
        return f'<p class="note" id="no-plots">No plots: {_esc(figures)}.</p>'
    return "\n".join(
        f'<figure id="plot-{_esc(f.name)}">{f.svg}<figcaption>{_esc(f.caption)}</figcaption></figure>'
        for f in figures
    )


def render_figures(
    result: PairingResult, records: Sequence[RunRecord], trace: MeterTrace | None, sort: str
) -> list[RenderedFigure] | MissingDependency:
    """Every report plot drawn and rendered once (SVG text, and PNG bytes when `png`), or the MissingDependency
    that says how to get matplotlib."""
    from . import plot

    empty = MeterTrace(t_ns=np.zeros(0, dtype=np.int64), power_w=np.zeros(0), meter=result.meter)
    try:
        return plot.render_report_figures(result, records, trace if trace is not None else empty, sort=sort)
    except MissingDependency as exc:
        warn(f"{exc}: the page has no plots")
        return exc


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 1400px;
       padding: 0 1rem; color: #1b1b1b; background: #fff; line-height: 1.4; }
h1 { font-size: 1.5rem; margin-bottom: 0.2rem; } h2 { font-size: 1.2rem; margin-top: 2rem;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
.sub { color: #555; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ddd; padding: 0.25rem 0.5rem; text-align: right; white-space: nowrap; }
th { background: #f3f5f8; text-align: left; }
#ranked th[data-type="n"] { text-align: right; }
#equivalents th[scope="col"] { white-space: normal; vertical-align: bottom; max-width: 11rem; }
td.t, .kv td, #invalid-windows td { text-align: left; }
.kv td { white-space: normal; }
.scroll { overflow-x: auto; }
table.sortable thead th { cursor: pointer; user-select: none; }
table.sortable thead th[aria-sort="ascending"]::after { content: " \\25B2"; font-size: 0.7em; }
table.sortable thead th[aria-sort="descending"]::after { content: " \\25BC"; font-size: 0.7em; }
tr.not-ok td { color: #8a1c1c; background: #fff5f5; }
#table-scroll { max-width: 100%; }
#ranked .sticky { position: sticky; background: #fff; z-index: 1; }
#ranked th.sticky { background: #f3f5f8; z-index: 2; }
#ranked .sticky.rank { left: 0; min-width: 2.5rem; }
#ranked .sticky.engine { left: 2.5rem; max-width: 18rem; overflow: hidden; text-overflow: ellipsis;
                         box-shadow: 2px 0 0 #ddd; }
#ranked .ranked { font-weight: 600; background: #f7fbff; }
#ranked tr.not-ok td.sticky { background: #fff5f5; }
#ranked .hidden { display: none; }
#column-chooser label { margin-right: 0.6rem; white-space: nowrap; }
figure { margin: 1rem 0; } figure svg { max-width: 100%; height: auto; }
figcaption, .note { color: #555; font-size: 0.85rem; }
"""

# Sorting: numbers by value, text by locale; missing values ("" in data-v) always last; ties keep rank order.
SCRIPT = """
(function () {
  var table = document.getElementById("ranked");
  if (!table) { return; }
  function showGroup(group, shown) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      if (th.dataset.group !== group) { return; }
      th.classList.toggle("hidden", !shown);
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        if (row.cells[col]) { row.cells[col].classList.toggle("hidden", !shown); }
      });
    });
  }
  Array.prototype.forEach.call(document.querySelectorAll("#column-chooser input"), function (box) {
    showGroup(box.dataset.group, box.checked);
    box.addEventListener("change", function () { showGroup(box.dataset.group, box.checked); });
  });
  var heads = table.tHead.rows[0].cells;
  var body = table.tBodies[0];
  Array.prototype.forEach.call(body.rows, function (row, i) { row.dataset.i = i; });
  function sortBy(col) {
    var th = heads[col];
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var numeric = th.dataset.type === "n";
    Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      if (x === "" || y === "") { return x === y ? a.dataset.i - b.dataset.i : (x === "" ? 1 : -1); }
      var c = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      if (c === 0 || isNaN(c)) { return a.dataset.i - b.dataset.i; }
      return ascending ? c : -c;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.tabIndex = 0;
    th.addEventListener("click", function () { sortBy(col); });
    th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(col); } });
  });
})();
"""


def ranked_value(e: EngineResult, sort: str) -> tuple[float, float, str]:
    """The ranked figure of engine `e`: (value, uncertainty, unit text) for the page's summary line."""
    key = sort.lstrip("-")
    figure = FIGURES.get(key)
    if figure is not None:
        u = figure.u(e) if figure.u is not None else float("nan")
        return figure.value(e), u, "J/sample" if figure.energy_per == "sample" else "J/execution"
    value = sort_getter(key)(e)
    return (float(value) if isinstance(value, (int, float)) else float("nan")), float("nan"), key


def render_report(
    result: PairingResult,
    *,
    records: Sequence[RunRecord],
    trace: MeterTrace | None,
    session: Session,
    directory: str | Path,
    sort: str | None = None,
    lifetime: tuple[EngineResult, Lifetime] | None = None,
    figures: Sequence[RenderedFigure] | MissingDependency | None = None,
) -> str:
    """The whole page as one string (UTF-8 HTML5, no external resource); `lifetime`: a projection of one engine
    over a deployment's life (`report --per-day --years [--embodied]`); `figures`: the plots already rendered
    (`render_figures`), drawn here when not given."""
    sort = sort or DEFAULT_SORT
    rank(result.engines, sort)  # an unknown sort column is BadInput before any drawing
    directory = Path(directory)
    ok = [e for e in result.engines if e.ok]
    best = next((e for position, e in rank(result.engines, sort) if position == 1), None)
    first = ""
    if best is not None:
        value, u, unit = ranked_value(best, sort)
        first = f"; first: {best.engine} at {plus_minus(value, u)} {unit}"
    summary = f"{len(result.engines)} engines, {len(ok)} with valid windows; ranked by {ranked_words(sort)}{first}"
    if figures is None:
        figures = render_figures(result, records, trace, sort)
    title = f"edgebench report: {directory.name or directory}"
    body = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="edgebench {_esc(__version__)}">
<title>{_esc(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>{_esc(title)}</h1>
<p class="sub" id="summary">{_esc(summary)}</p>
<p class="sub">{_esc(result.meter or session.meter or "meter")} · {_esc(result.grid.label)}</p>
</header>
<main>
<section id="table-section">
<h2>Ranked energy table</h2>
<p class="note">Ranked by {_esc(ranked_words(sort))}; 2= marks engines equal within {SIGNIFICANCE:g} sigma. Click a
column header to sort by it (again to reverse); engines without a valid window have no rank. Sample = one input
image, exec = one execution (one batch); ± = 1 sigma.</p>
{_chooser(result, sort)}
<div class="scroll" id="table-scroll">{_table(result, sort)}</div>
</section>
<section id="plots">
<h2>Plots</h2>
{_figures(figures)}
</section>
<section id="carbon">
<h2>Grid factor and CO2</h2>
{_grid(result)}
<h3>Everyday equivalents of {PER:,} samples (images)</h3>
{_equivalents(result, sort)}
{_lifetime(lifetime)}
</section>
<section id="validity">
<h2>Uncertainty and validity</h2>
{_notes(result, records, sort)}
</section>
<section id="session">
<h2>Session</h2>
{_key_values(_session_pairs(directory, session, result, records), "session-metadata")}
</section>
</main>
<footer><p class="note">Written by edgebench {_esc(__version__)} (<code>edgebench report --html</code>);
methodology: docs/methodology.md of the edgebench sources.</p></footer>
<script>{SCRIPT}</script>
</body>
</html>
"""
    return body


def _lifetime(lifetime: tuple[EngineResult, Lifetime] | None) -> str:
    if lifetime is None:
        return ""
    engine, projection = lifetime
    lines = "\n".join(format_lifetime(projection))
    return (
        f'<h3>Lifetime of {_esc(engine.engine)} (rank 1), wall energy</h3>'
        f'<pre id="lifetime">{_esc(lines)}</pre>'
    )


def check_html_path(out: Path) -> None:
    """BadInput unless `out` can be written as the page (checked before any drawing)."""
    if out.is_dir():
        raise BadInput(f"--html {out} is a directory: give a file path such as {out / 'report.html'}")
    if not out.parent.is_dir():
        raise BadInput(f"cannot write --html {out}: {out.parent} is not a directory: give a path in an existing one")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise BadInput(f"cannot write --html {out}: {out.parent} is not writable: give a path you can write to")
    output_path(out, "--html")  # a device node, FIFO or socket: said now, not after the drawing


def write_report(
    path: str | Path,
    d: MeasureDir,
    result: PairingResult,
    *,
    session: Session | None = None,
    records: Sequence[RunRecord] | None = None,
    sort: str | None = None,
    lifetime: tuple[EngineResult, Lifetime] | None = None,
    figures: Sequence[RenderedFigure] | MissingDependency | None = None,
) -> Path:
    """Render the page of measure directory `d` (already paired into `result`) into `path`; returns the path.
    `figures`: the plots already rendered (shared with `--plots`), drawn here when not given."""
    out = Path(path)
    check_html_path(out)  # before the drawing, which takes a while
    session = session or d.session()
    records = d.records() if records is None else records
    if figures is None:
        figures = render_figures(result, records, d.plot_trace(session, records), sort or DEFAULT_SORT)
    text = render_report(
        result, records=records, trace=None, session=session, directory=d.path, sort=sort, lifetime=lifetime,
        figures=figures,
    )
    write_atomic(out, text, what="--html")  # edgebench/files.py: one line for a device node, FIFO or socket
    return out


def write_plot_files(
    out_dir: str | Path,
    d: MeasureDir,
    result: PairingResult,
    *,
    session: Session | None = None,
    records: Sequence[RunRecord] | None = None,
    sort: str | None = None,
    figures: Sequence[RenderedFigure] | None = None,
) -> list[Path]:
    """`report --plots DIR`: every report plot of measure directory `d` as PNG and SVG; returns the paths.
    `figures`: the plots already rendered with PNG (shared with the page), drawn here when not given."""
    from .plot import write_plots, write_rendered

    if figures is not None:
        return write_rendered(out_dir, figures)
    session = session or d.session()
    records = d.records() if records is None else records
    return write_plots(out_dir, result, records, d.plot_trace(session, records), sort=sort)
