"""A window across logger downtime stays invalid after `--resume` (issue 18 item 4).

When `measure` is killed, the logger's last second dies with it; a window whose end was not logged was
`invalid: meter log covers 90.9 %`. On `--resume` the new logger appends to the same log, and without more the
window's right edge was interpolated from the new session's first reading seconds later: valid. A writer that
reopens a log now records the time from its latest reading to its own first one as a gap ("no logger ran"), and
a gap overlapping a window invalidates it, so no edge is interpolated across it.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time

import pytest

from edgebench.cli import edgebench_argv
from edgebench.host.carbon import egrid_factor
from edgebench.host.measuredir import MeasureDir, Session
from edgebench.host.store import REOPENED, load_trace, open_store
from edgebench.records import ClockOffset, MeterReading, RunRecord, append_jsonl, read_run_records

EPOCH = 1_767_225_600_000_000_000
MS = 1_000_000
S = 1_000_000_000


def _log(path, start_s, end_s):
    """One logger session: readings every 100 ms from start_s to end_s, written by the store's writer."""
    with open_store(path) as store:
        for k in range(round(start_s * 10), round(end_s * 10) + 1):
            store.add(MeterReading(t_ns=EPOCH + k * 100 * MS, power_w=6.0, meter="UM25C"))


def test_a_window_across_the_time_no_logger_ran_stays_invalid(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    log = d / "meter.sqlite"
    # the first session, killed: its last reading at 29.7 s, 3 meter periods before the end of the 20-30 s window
    # (too few for pairing's silence check), so that only the gap can tell that the end was never logged
    _log(log, 0.0, 29.7)
    _log(log, 33.0, 60.0)  # --resume: a new logger from 33 s on
    run = RunRecord(engine="resnet18_1_32_32_fp32", backend="onnxruntime", clock="host:realtime",
                    window_start_ns=EPOCH + 20 * S, window_end_ns=EPOCH + 30 * S, iterations=100, batch=1,
                    latencies_ns=(100 * MS,) * 100, run_id="first")  # fmt: skip
    later = RunRecord(engine="resnet18_1_32_32_fp32", backend="onnxruntime", clock="host:realtime",
                      window_start_ns=EPOCH + 40 * S, window_end_ns=EPOCH + 50 * S, iterations=100, batch=1,
                      latencies_ns=(100 * MS,) * 100, run_id="resumed", repeat=1)  # fmt: skip
    append_jsonl(d / "runs.jsonl", [run, later])
    MeasureDir(d).write_session(Session(grid=egrid_factor(), clock={"first": ClockOffset(0), "resumed": ClockOffset(0)}))

    assert load_trace(log).gaps == ((EPOCH + 29_700 * MS, EPOCH + 33 * S),)
    result = MeasureDir(d).pair()
    across, after = result.windows
    assert across.status == "invalid: a logged meter gap overlaps the window" and across.meter_fault
    assert after.valid  # the resumed session's own windows are untouched
    assert MeasureDir(d).resume_state(result).engines["resnet18_1_32_32_fp32"].valid == 1


def test_a_log_reopened_after_its_last_reading_only(tmp_path):
    """Readings the new session stamps before the log's latest (a clock stepped back) leave no reversed gap; a
    CSV log records the gap in its side file."""
    log = tmp_path / "meter.csv"
    _log(log, 10.0, 12.0)
    _log(log, 15.0, 16.0)
    with open_store(log) as store:
        store.add(MeterReading(t_ns=EPOCH + 5 * S, power_w=6.0, meter="UM25C"))
    gaps = (tmp_path / "meter.gaps.csv").read_text().splitlines()
    assert gaps[1:] == [f"{EPOCH + 12 * S},{EPOCH + 15 * S},{REOPENED}"]


@pytest.mark.slow
def test_a_killed_measure_resumed_keeps_the_window_it_lost_invalid(tiny_engines, tmp_path):
    """The real path: `measure` killed with SIGKILL just after a window was recorded, the end of that window lost
    with the logger's last second, then `measure --resume` on the same directory and meter."""
    from edgebench.host.meters.emulate import RampProfile, start_emulator

    fast = ["--warmup", "0.2", "--sensor", "none", "--threads", "1", "--idle", "1", "--repeat", "1"]
    out = tmp_path / "m"
    with start_emulator("lines", RampProfile(6.0, 0.4), interval_s=0.05) as meter:
        proc = subprocess.Popen(
            [*edgebench_argv(), "measure", "--meter", meter.port, "--protocol", "lines", "--engines",
             str(tiny_engines), "--out", str(out), "--duration", "2", *fast],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        runs = out / "runs.jsonl"
        deadline = time.monotonic() + 120
        while not (runs.is_file() and runs.read_text().count("\n") >= 2) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        killed = read_run_records(runs)[1]
        # What SIGKILL costs is the unflushed second; make certain that it took the window's last 150 ms, as in
        # the report (the log covered 90.9 % of it): fewer than 5 meter periods, so once the resumed logger's
        # first reading stood beyond the window, nothing but the gap could tell the window's end went unlogged
        # (same machine: agent clock = host clock)
        cut = killed.window_end_ns - 150 * MS
        with sqlite3.connect(out / "meter.sqlite") as db:
            db.execute("DELETE FROM readings WHERE t_ns >= ?", (cut,))
        resumed = subprocess.run(
            [*edgebench_argv(), "measure", "--meter", meter.port, "--protocol", "lines", "--engines",
             str(tiny_engines), "--out", str(out), "--duration", "2", "--resume", *fast],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"measuring again {killed.engine}" in resumed.stderr
    windows = {(w.run_id, w.engine, w.repeat): w for w in MeasureDir(out).pair().windows}
    lost = windows[(killed.run_id, killed.engine, killed.repeat)]
    assert lost.status == "invalid: a logged meter gap overlaps the window", lost.status
