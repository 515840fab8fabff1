"""The ranking's claims through the real path: an emulated meter on a pty -> the serial logger -> the local agent ->
pairing -> the table, with the meter's watts switched by the session's own progress reporter (which is called as
each window starts), so the emulated power follows what the device is doing:

- a busy baseline (the idle windows read higher than the engines): a warning naming the cause, a gross-per-sample
  ranking in the right order, no negative net shown as a number;
- a baseline that drifts (a ramp over the session) with --idle-every: nets within 1 % of the closed form, where
  one global baseline is off by more;
- the HTML page and its plots follow --sort.
"""

import json
import re
import threading

import numpy as np
import pytest
from click.testing import CliRunner
from profile_truth import edge_straddle_j, reading_deviation_w

from edgebench.cli import cli
from edgebench.host.meters.emulate import start_emulator
from edgebench.records import read_run_records

INTERVAL_S = 0.05


class Switchable:
    """An emulator profile: a base (constant or ramp) plus `extra_w` while an engine window is open; the test's
    progress reporter sets `extra_w`. It logs every change (host ns, extra W) so the closed form can be computed."""

    def __init__(self, base_w, slope_w_per_s=0.0):
        self.base_w, self.slope = base_w, slope_w_per_s
        self.extra_w = 0.0
        self.lock = threading.Lock()
        self.identity = f"emulated {base_w:g} W + {slope_w_per_s:g} W/s, switched by the session"

    def watts_at(self, t_s):
        with self.lock:
            return self.base_w + self.slope * t_s + self.extra_w


def _session(tmp_path, tiny_engines, profile, on_window, **config_args):
    """A measure session from Python (the CLI's parts) whose progress reporter calls on_window(label) at each
    window's start; returns (result, out directory, emulator handle)."""
    from test_measure import _run_session

    from edgebench.host.carbon import egrid_factor
    from edgebench.host.measure import MeasureConfig, Progress

    class Switch(Progress):
        def window(self, label):
            on_window(label)
            super().window(label)

    with start_emulator("lines", profile, interval_s=INTERVAL_S) as meter:
        config = MeasureConfig(
            meter=meter.port, protocol="lines", out=tmp_path / "m", grid=egrid_factor(), engines_dir=tiny_engines,
            sensor="none", threads=1, **{"warmup_s": 0.2, **config_args},
        )
        return _run_session(config, Switch), tmp_path / "m", meter


@pytest.mark.slow
def test_a_busy_baseline_warns_ranks_by_gross_per_sample_and_shows_no_negative_net(tiny_engines, tmp_path, capsys):
    profile = Switchable(9.0)  # idle windows read 9 W (the device was busy), engines 6 W

    def on_window(label):
        with profile.lock:
            profile.extra_w = 0.0 if label.startswith("idle") else -3.0

    result, out, _ = _session(tmp_path, tiny_engines, profile, on_window, duration_s=1.0, idle_s=1.0, repeat=2)
    assert all(e.ok and e.net_below_idle for e in result.engines)
    table = json.loads((out / "table.json").read_text())
    assert table["sort"] == "gross_j_sample" and table["net_below_idle"]
    ranked = [row["engine"] for row in table["engines"]]
    assert ranked == [row["engine"] for row in sorted(table["engines"], key=lambda r: r["gross_j_per_sample"])]
    # the report says it once on stderr, and its table shows no negative net as a number
    report = CliRunner().invoke(cli, ["report", str(out)])
    assert report.exit_code == 0, report.output
    assert report.stderr.count("idle baseline is above this window") == 1
    rows = [line for line in report.stdout.splitlines() if re.match(r"\s*\d+=?\s+squeezenet", line)]
    assert len(rows) == 2 and all("<0 !" in row for row in rows)
    assert not any(re.search(r"\s-\d", row) for row in rows)


@pytest.mark.slow
def test_a_drifting_baseline_with_idle_every_gives_nets_within_1_percent(tiny_engines, tmp_path):
    # the base drifts 0.1 W/s over the session (a device warming up); engines draw 4 W above it. A reading that
    # arrives late is stamped late: on the ramp that is 0.1 W/s x the delay (0.01 W, 0.25 % of the net, for a
    # 100 ms delay on a busy machine), while one global baseline misses by the drift between the window and the
    # idle windows' mean, seconds apart (0.1 W and more, a few per cent). The profile switches when a window is
    # announced; the warm-up (and the rest before an idle window) of 1 s keeps a reading that a loaded machine
    # delivers late from crossing a switch into the next window. A window's end is not so kept: the power steps
    # as the next window is announced, often before the next reading, and the edge's interpolation between the
    # readings that straddle it carries part of the step into the window (up to 4 W x 50 ms / 2 = 2.5 % of a 1 s
    # window's net; seen -0.9 % beside two busy loops, -1.0 % or beyond in a stress run). Within 1 %, or within
    # what the readings' deviations and the edges' sampling explain (tests/profile_truth.py)
    profile = Switchable(5.0, slope_w_per_s=0.1)

    def on_window(label):
        with profile.lock:
            profile.extra_w = 0.0 if label.startswith("idle") else 4.0

    result, out, meter = _session(tmp_path, tiny_engines, profile, on_window, duration_s=1.0, idle_s=1.0,
                                  idle_every=1, repeat=1, warmup_s=1.0)
    records = read_run_records(out / "runs.jsonl")
    assert [r.kind for r in records] == ["idle", "run", "idle", "run", "idle"]  # each engine between two idles
    truth = SentProfile(meter)
    table = {row["engine"]: row for row in json.loads((out / "table.json").read_text())["engines"]}
    idle_w = [w.mean_power_w for w in result.windows if w.kind == "idle"]
    global_idle = sum(idle_w) / len(idle_w)
    off = []
    for i, r in ((i, r) for i, r in enumerate(records) if r.kind == "run"):
        seconds = r.duration_ns / 1e9
        closed_form = 4.0 * seconds / r.iterations  # 4 W above the drifting base, whatever the base
        row = table[r.engine]
        around = records[i - 1 : i + 2]  # the run window and the two idle windows its baseline comes from
        deviation_w = max(reading_deviation_w(out / "meter.sqlite", truth, w.window_start_ns, w.window_end_ns)
                          for w in around)  # fmt: skip
        # the gross is off by the deviation and its own edges; the interpolated idle power by the deviation and
        # the idle windows' edges spread over their length, which the net multiplies by this window's length
        edges_j = edge_straddle_j(out / "meter.sqlite", r.window_start_ns, r.window_end_ns) + seconds * max(
            edge_straddle_j(out / "meter.sqlite", w.window_start_ns, w.window_end_ns) / (w.duration_ns / 1e9)
            for w in (around[0], around[2])
        )
        tolerance = max(0.01 * closed_form, (2 * deviation_w * seconds + edges_j) / r.iterations)
        assert abs(row["net_j_per_inference"] - closed_form) <= tolerance, (r.engine, row, closed_form, deviation_w, edges_j)
        # what one global baseline (the mean of the idle windows) would have said
        one_baseline = (row["gross_j_per_inference"] * r.iterations - global_idle * seconds) / r.iterations
        off.append(abs(one_baseline / closed_form - 1))
    # the first engine is measured low on the ramp, the last high: one baseline misses both by far more than 1 %
    assert min(off) > 0.01, off
    assert json.loads((out / "table.json").read_text())["idle"]["interpolated"] is True


class SentProfile:
    """The true power at a host time: what the emulator was sending then (linear between its sends)."""

    def __init__(self, handle):
        sent = [(t, w) for t, w, bad in list(handle.sent) if not bad]
        self.t = np.array([t for t, _ in sent], dtype=np.float64)
        self.w = np.array([w for _, w in sent], dtype=np.float64)

    def power_w(self, t_ns):
        return np.interp(np.asarray(t_ns, dtype=np.float64), self.t, self.w)


@pytest.fixture(scope="module")
def html_dir(tmp_path_factory):
    from test_plot import write_measure_dir

    return write_measure_dir(tmp_path_factory.mktemp("sorted") / "m").path


@pytest.mark.slow
@pytest.mark.parametrize("sort, words", [("gross_j_sample", "wall (gross) J per sample"),
                                         ("net_j", "net (above idle) J per execution"),
                                         ("-throughput", "throughput, highest first")])
def test_the_page_and_its_plots_follow_sort(html_dir, tmp_path, sort, words):
    pytest.importorskip("matplotlib")
    page = tmp_path / "r.html"
    res = CliRunner().invoke(cli, ["report", str(html_dir), "--sort", sort, "--html", str(page),
                                   "--plots", str(tmp_path / "plots")])
    assert res.exit_code == 0, res.output
    text = page.read_text()
    summary = re.search(r'<p class="sub" id="summary">(.*?)</p>', text).group(1)
    assert f"ranked by {words}" in summary
    doc = json.loads(CliRunner().invoke(cli, ["report", str(html_dir), "--sort", sort, "--format", "json"]).stdout)
    first = doc["engines"][0]
    assert f"first: {first['engine']}" in summary
    ranked_svg = (tmp_path / "plots" / "ranked-energy-co2.svg").read_text()
    assert f"ranked by {words}" in ranked_svg
    # the bars' order is the table's
    order = [m for m in re.findall(r"\d+=?\. ([\w]+)", ranked_svg)]
    assert order == [row["engine"] for row in doc["engines"] if row["rank"] is not None]
    # the page inlines the very SVG written to --plots (drawn once)
    inline = ranked_svg[ranked_svg.index("<svg"):]
    assert inline in text
    values = np.array([row["gross_j_per_sample"] for row in doc["engines"] if row["rank"] is not None])
    if sort == "gross_j_sample":
        assert (np.diff(values) >= 0).all()


@pytest.mark.slow
def test_an_idle_window_taken_while_the_cpu_is_busy_is_flagged_live_in_session_and_table(tiny_engines, tmp_path,
                                                                                          capsys):
    """The device is busy during the idle window (a CPU-bound process beside the agent): the agent records the
    CPU utilisation, `measure` says so the moment the window is measured, and session.json, table.json and the
    table's footer carry the flag."""
    import subprocess
    import sys

    from edgebench.host.pairing import BUSY_IDLE_CPU

    hogs = []

    def on_window(label):
        if label.startswith("idle") and not hogs:  # the first idle window only
            hogs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"]))
        elif hogs and hogs[0].poll() is None and not label.startswith("idle"):
            hogs[0].kill()
            hogs[0].wait()

    try:
        _, out, _ = _session(tmp_path, tiny_engines, Switchable(5.0), on_window, duration_s=1.0, idle_s=2.0, repeat=1,
                             engine_names=("squeezenet1_1_1_32_32_fp32",))
    finally:
        for hog in hogs:
            hog.kill()
    (idle_record,) = [r for r in read_run_records(out / "runs.jsonl") if r.kind == "idle"]
    # one busy loop on this machine's CPUs: at least its own share, whatever else runs
    assert idle_record.cpu_busy is not None and idle_record.cpu_busy >= BUSY_IDLE_CPU
    err = capsys.readouterr().err
    assert f"idle window 1 was not idle: CPU {idle_record.cpu_busy * 100:.0f} % busy" in err
    session = json.loads((out / "session.json").read_text())
    assert session["extra"]["busy_idle"] == [f"idle window 1 was not idle: CPU {idle_record.cpu_busy * 100:.0f} % busy"]
    table = json.loads((out / "table.json").read_text())
    assert table["busy_idle"] == session["extra"]["busy_idle"] and table["engines"][0]["busy_baseline"] is True
    report = CliRunner().invoke(cli, ["report", str(out)])
    assert "! idle window 1 was not idle" in report.stdout
