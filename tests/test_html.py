"""`edgebench report DIR --html FILE` (and `--plots DIR`): one self-contained page, checked as text here and in a
real headless Chromium (Playwright): a screenshot that is not blank, no request leaving the page, the ranked
table's numbers read back from the page and compared with the directory's table.json, a click on a header
re-sorting the rows."""

import html
import importlib.util
import json
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from test_plot import HAS_MATPLOTLIB, write_measure_dir

from edgebench.cli import cli
from edgebench.host.carbon import equivalence_factors
from edgebench.host.measuredir import Session
from edgebench.host.table import plus_minus

needs_matplotlib = pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib not installed: pip install 'edgebench[plot]'")
HOSTILE = "<script>alert('x')</script> & \"quoted\""


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def measure_dir(tmp_path_factory):
    return write_measure_dir(tmp_path_factory.mktemp("html") / "m").path


@pytest.fixture(scope="module")
def page(measure_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "report.html"
    res = invoke("report", measure_dir, "--html", out)
    assert res.exit_code == 0, res.output
    assert f"wrote {out}" in res.output
    return out.read_text(encoding="utf-8")


def _table_rows(text):
    """(engine, [(data-v, cell text)...]) per row of the ranked table, in page order."""
    body = text[text.index('<table id="ranked"') : text.index("</table>", text.index('<table id="ranked"'))]
    rows = re.findall(r'<tr data-engine="([^"]*)"[^>]*>(.*?)</tr>', body)
    return [(html.unescape(e), [(html.unescape(v), html.unescape(t)) for v, t in
                                re.findall(r'<td[^>]*data-v="([^"]*)">(.*?)</td>', cells)]) for e, cells in rows]  # fmt: skip


def _headers(text):
    head = text[text.index('<table id="ranked"') :]
    head = head[: head.index("</thead>")]
    return [html.unescape(h) for h in re.findall(r"<th\b[^>]*>(.*?)</th>", head)]


# --- the page as text -----------------------------------------------------------------------------------------


@needs_matplotlib
def test_the_page_is_self_contained(page):
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r"<(link|img|iframe|object|embed)\b", page)  # nothing that loads another file
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "@import" not in page and not re.search(r"url\(\s*['\"]?(https?:|//)", page)
    assert page.count("<svg") == 4  # the four report plots, inlined
    for name in ("latency-first-iterations", "wall-power", "energy-sources", "ranked-energy-co2"):
        assert f'<figure id="plot-{name}">' in page


@needs_matplotlib
def test_the_table_on_the_page_is_the_directorys_table(page, measure_dir):
    doc = json.loads((measure_dir / "table.json").read_text())
    rows = _table_rows(page)
    assert [engine for engine, _ in rows] == [e["engine"] for e in doc["engines"]]
    headers = _headers(page)
    assert headers[0] == "rank" and headers[-1] == "status" and "J/sample wall" in headers and "J/exec wall" in headers
    for (_, cells), row in zip(rows, doc["engines"], strict=True):
        cell = dict(zip(headers, cells, strict=True))
        label = f"{row['rank']}{'=' if row['tied'] else ''}" if row["rank"] else "-"
        assert cell["rank"] == (str(row["rank"]) if row["rank"] else "", label)
        assert cell["status"][1] == row["status"]
        for header, key in (("J/sample wall", "gross_j_per_sample"), ("J/exec wall", "gross_j_per_inference")):
            value, text = cell[header]
            if row[key] is None:
                assert (value, text) == ("", "-")
                continue
            assert float(value) == row[key]  # full precision behind the cell
            assert text == plus_minus(row[key], row[key + "_u"])
        if row["gross_j_per_inference"] is None:
            continue
        assert float(cell["latency ms"][0]) == row["latency_mean_ms"]
        assert float(cell["CO2 lb/exec"][0]) == pytest.approx(row["co2_lb_per_inference"], rel=1e-12)
    # the sort keys come from the table's column definitions: each header names its key
    keys = re.findall(r'<th scope="col"[^>]*data-key="([^"]*)"', page[page.index('<table id="ranked"'):])
    assert keys[:3] == ["rank", "engine", "backbone"] and "gross_j_sample" in keys and "net_j" in keys
    assert [e for e, _ in rows][-1] == "broken_1_8_8_fp32"  # invalid: unranked, last, with its reason
    assert 'class="not-ok"' in page


@needs_matplotlib
def test_grid_factor_session_and_validity_notes(page, measure_dir):
    grid = page[page.index('<table id="grid"') :]
    grid = grid[: grid.index("</table>")]
    assert "1067.7 lb CO2/MWh" in grid and "EPA eGRID" in grid and "eGRID2019" in grid and "RFCW" in grid
    assert "± is one standard uncertainty (1 sigma)" in page
    assert "at least 10 meter readings" in page and "99%" in page
    invalid = page[page.index('<table id="invalid-windows"') :]
    assert "broken_1_8_8_fp32" in invalid and "need &gt;= 10" in invalid
    assert "idle baseline: 2 ±" in page and "(one window)" in page
    assert "* rail figure modelled by the estimate sensor" in page
    session = page[page.index('<table id="session-metadata"') :]
    for text in ("wattsup PRO", "0.1 W", "session: agent", "local", "NVIDIA Jetson Nano Developer Kit", "r1"):
        assert text in session
    # equivalents from carbon.py's factors, for a million inferences of each ranked engine
    equivalents = page[page.index('<table id="equivalents"') :]
    miles = next(f for f in equivalence_factors() if f.key == "miles")
    assert html.escape(miles.what) in equivalents


@needs_matplotlib
def test_another_grid_factor_shows_its_source_and_edition(measure_dir, tmp_path):
    out = tmp_path / "deu.html"
    res = invoke("report", measure_dir, "--country", "DEU", "--html", out)
    assert res.exit_code == 0, res.output
    text = out.read_text()
    grid = text[text.index('<table id="grid"') : text.index("</table>", text.index('<table id="grid"'))]
    assert "Our World in Data / Ember" in grid and "2023" in grid and "DEU" in grid


@needs_matplotlib
def test_strings_from_the_data_are_escaped(tmp_path):
    d = write_measure_dir(tmp_path / "m")
    session = d.session()
    d.write_session(Session(grid=session.grid, meter=HOSTILE, resolution_w=0.1, clock=session.clock,
                            extra={"agent": HOSTILE, HOSTILE: "key"}))  # fmt: skip
    out = tmp_path / "r.html"
    res = invoke("report", d.path, "--html", out)
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "<script>alert" not in text  # neither in the page nor in the SVG plots' text
    assert text.count("<script>") == 1  # the page's own sorting script, nothing else
    assert html.escape(HOSTILE) in text


def test_without_matplotlib_the_page_says_how_to_get_plots(measure_dir, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails, as when it is not installed
    out = tmp_path / "r.html"
    res = invoke("report", measure_dir, "--html", out)
    assert res.exit_code == 0, res.output
    assert "pip install 'edgebench[plot]'" in res.output  # the warning on stderr
    text = out.read_text()
    assert '<p class="note" id="no-plots">' in text and "<svg" not in text
    assert 'data-engine="mbv2_4_120_392_fp16"' in text  # the rest of the page is there
    res = invoke("report", measure_dir, "--plots", tmp_path / "plots")  # plots asked for explicitly: an error
    assert res.exit_code == 2 and "pip install 'edgebench[plot]'" in res.output


@needs_matplotlib
def test_plots_option_writes_png_and_svg(measure_dir, tmp_path):
    res = invoke("report", measure_dir, "--plots", tmp_path / "plots", "--sort", "latency")
    assert res.exit_code == 0, res.output
    assert "wrote 8 plots" in res.output
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == sorted(f"{n}.{s}" for n in ("latency-first-iterations", "wall-power", "energy-sources",
                                                "ranked-energy-co2") for s in ("png", "svg"))  # fmt: skip
    ranked = (tmp_path / "plots" / "ranked-energy-co2.svg").read_text()
    assert "ranked by latency" in ranked


def test_bad_html_paths_are_one_line(measure_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    for path, words in ((tmp_path / "file" / "r.html", "cannot write"), (tmp_path / "no" / "such" / "r.html", "cannot write")):
        res = invoke("report", measure_dir, "--html", path)
        assert res.exit_code == 2, res.output
        (line,) = [x for x in res.output.splitlines() if x.startswith("edgebench: error:")]
        assert words in line and "--html" in line
    res = invoke("report", measure_dir, "--html", tmp_path / "r.html", "--sort", "colour")
    assert res.exit_code == 2 and "unknown sort column" in res.output
    res = invoke("report", measure_dir, "--plots", tmp_path / "file" / "plots")
    assert res.exit_code == 2 and "cannot create" in res.output and "Traceback" not in res.output


@needs_matplotlib
@pytest.mark.slow
def test_the_results_stay_on_stdout_and_the_notes_on_stderr(measure_dir, tmp_path):
    res = invoke("report", measure_dir, "--format", "json", "--html", tmp_path / "r.html", "--plots", tmp_path / "p")
    assert res.exit_code == 0, res.output
    assert [e["engine"] for e in json.loads(res.stdout)["engines"]][0] == "mbv2_4_120_392_fp16"
    assert f"wrote {tmp_path / 'r.html'}" in res.stderr and "wrote 8 plots" in res.stderr


# --- in a real browser ------------------------------------------------------------------------------------------

BROWSER_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]  # fmt: skip


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# where distributions install it, for a PATH that lacks their folder (a test that narrowed PATH, a service's PATH)
CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/lib/chromium/chromium", "/usr/bin/chromium-browser", "/snap/bin/chromium",
                  "/usr/bin/google-chrome")  # fmt: skip


def _chromium():
    """A Chromium executable: the distribution's, or None (Playwright's own downloaded one is tried later)."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return next((p for p in CHROMIUM_PATHS if os.access(p, os.X_OK)), None)


@pytest.fixture()
def browser():
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("Playwright not installed: pip install playwright (it drives the distribution's chromium)")
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as p:
        executable = _chromium()
        if executable is None and not Path(p.chromium.executable_path).exists():
            pytest.skip(f"no Chromium found on PATH ({os.environ.get('PATH', '')}) nor in {', '.join(CHROMIUM_PATHS)}: "
                        "apt-get install chromium, or `playwright install chromium`")
        try:
            b = p.chromium.launch(executable_path=executable, args=BROWSER_ARGS)
        except Error as exc:
            pytest.skip(f"Chromium at {executable} does not start here: {str(exc).splitlines()[0]}")
        yield b
        b.close()


@pytest.fixture()
def measured_for_real(tiny_engines, tmp_path):
    """A directory written by `edgebench measure` itself: an emulated meter on a pty, the local agent, two tiny
    engines, an idle window, two windows each, the estimate sensor for the on-board figure."""
    from edgebench.host.meters.emulate import RampProfile, start_emulator

    out = tmp_path / "m"
    with start_emulator("lines", RampProfile(6.0, 0.4), interval_s=0.05) as meter:
        res = CliRunner().invoke(cli, [
            "measure", "--meter", meter.port, "--protocol", "lines", "--engines", str(tiny_engines), "--duration", "1",
            "--idle", "1", "--repeat", "2", "--warmup", "0.2", "--threads", "1", "--sensor", "estimate",
            "--grid", "RFCW", "--egrid", "2019", "--out", str(out),
        ], catch_exceptions=False)  # fmt: skip
    assert res.exit_code == 0, res.output
    return out


def _cells(page_, header):
    """The data-v and text of one column of the ranked table, rows in page order."""
    return page_.evaluate(
        """(header) => {
            const table = document.getElementById("ranked");
            const col = Array.from(table.tHead.rows[0].cells).findIndex(th => th.textContent === header);
            return Array.from(table.tBodies[0].rows).map(r => [r.cells[col].dataset.v, r.cells[col].textContent]);
        }""",
        header,
    )


def _click(page_, header):
    page_.locator("#ranked thead th", has_text=re.compile(f"^{re.escape(header)}$")).click()


@needs_matplotlib
@pytest.mark.slow
def test_the_page_in_a_real_browser(browser, measured_for_real, measure_dir, tmp_path):
    from PIL import Image

    out = tmp_path / "report.html"
    res = invoke("report", measured_for_real, "--html", out)
    assert res.exit_code == 0, res.output
    doc = json.loads((measured_for_real / "table.json").read_text())
    page_ = browser.new_page(viewport={"width": 1280, "height": 1000})
    requests = []
    page_.on("request", lambda r: requests.append(r.url))
    errors = []
    page_.on("pageerror", lambda e: errors.append(str(e)))
    page_.goto(out.as_uri())
    # a screenshot that shows something: many distinct pixels, not one flat colour
    shot = tmp_path / "shot.png"
    page_.screenshot(path=str(shot), full_page=True)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape[0] > 1000 and pixels.std() > 20 and (pixels < 128).mean() > 0.01
    assert requests == [out.as_uri()] and errors == []  # nothing fetched but the page; the script ran cleanly
    # the four plots rendered with a size, their axis labels as text
    boxes = page_.evaluate("Array.from(document.querySelectorAll('figure svg')).map(s => s.getBoundingClientRect().width)")
    assert len(boxes) == 5 and min(boxes) > 300  # the tiny engines carry FLOPs: the GFLOPs scatter too
    assert "wall power (W)" in page_.inner_text("#plot-wall-power")
    # the table read back from the page equals table.json
    engines = [e["engine"] for e in doc["engines"]]
    assert [v for v, _ in _cells(page_, "engine")] == engines
    for (value, text), row in zip(_cells(page_, "J/sample wall"), doc["engines"], strict=True):
        assert float(value) == row["gross_j_per_sample"]
        assert text == plus_minus(row["gross_j_per_sample"], row["gross_j_per_sample_u"])
    for (value, _), row in zip(_cells(page_, "latency ms"), doc["engines"], strict=True):
        assert float(value) == row["latency_mean_ms"]
    assert [t for _, t in _cells(page_, "rank")] == [f"{row['rank']}{'=' if row['tied'] else ''}" for row in doc["engines"]]
    # on a 1280 px screen the engine and the ranked figure are in view without scrolling sideways
    for selector in ("#ranked thead th.engine", "#ranked thead th.ranked"):
        box = page_.locator(selector).bounding_box()
        assert box is not None and box["width"] > 0 and box["x"] >= 0 and box["x"] + box["width"] <= 1280, (selector, box)
    # the column chooser hides a group and shows it again
    power = page_.locator('#column-chooser input[data-group="power"]')
    assert not power.is_checked() and not page_.locator('#ranked thead th[data-key="wall_w"]').is_visible()
    power.check()
    assert page_.locator('#ranked thead th[data-key="wall_w"]').is_visible()
    # a click sorts by the column, a second click reverses; the order changes from the ranked one
    _click(page_, "engine")
    ascending = [t for _, t in _cells(page_, "engine")]
    assert ascending == sorted(engines)
    assert page_.get_attribute("#ranked thead th:nth-child(2)", "aria-sort") == "ascending"
    _click(page_, "engine")
    assert [t for _, t in _cells(page_, "engine")] == sorted(engines, reverse=True)
    assert engines in (sorted(engines), sorted(engines, reverse=True)) and sorted(engines) != sorted(engines, reverse=True)
    _click(page_, "latency ms")
    by_latency = sorted(doc["engines"], key=lambda row: row["latency_mean_ms"])
    assert [t for _, t in _cells(page_, "engine")] == [row["engine"] for row in by_latency]
    page_.close()

    # the synthetic directory: an invalid engine stays last whichever way a column with no value for it is sorted
    other = tmp_path / "synthetic.html"
    assert invoke("report", measure_dir, "--html", other).exit_code == 0
    page_ = browser.new_page()
    page_.goto(other.as_uri())
    initial = [t for _, t in _cells(page_, "engine")]
    _click(page_, "J/exec wall")
    _click(page_, "J/exec wall")  # descending
    descending = [t for _, t in _cells(page_, "engine")]
    assert descending == ["sp_squeeze_2_120_392_FP16_seq_4", "resnet18_1_224_224_fp32", "mbv2_4_120_392_fp16",
                          "broken_1_8_8_fp32"]  # fmt: skip
    assert descending != initial
    _click(page_, "rank")  # another column: ascending first
    assert [t for _, t in _cells(page_, "rank")] == ["1", "2", "3", "-"]
    _click(page_, "rank")  # reversed, the unranked engine still last
    assert [t for _, t in _cells(page_, "rank")] == ["3", "2", "1", "-"]
    page_.close()
