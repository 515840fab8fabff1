"""The store reads what windows need (issue 16 item 1) and only what its meter could have sent (issue 18 item 5).

A windowed read (`load_windows`) returns exactly what a whole read returns for the same windows, edges included,
on random logs written in any order; logs written before the time index (schema 1) are indexed once, or read
whole when they cannot be; what a log holds comes from metadata the writer keeps; a stored reading beyond its
meter's limit (or negative, or not finite) is left out, counted and said; duplicate timestamps keep the first.
"""

from __future__ import annotations

import math
import sqlite3
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgebench.cli import cli
from edgebench.errors import BadInput
from edgebench.host.store import load_trace, load_windows, open_store, power_limit_w, summarize
from edgebench.records import MeterReading, RunRecord, append_jsonl

EPOCH = 1_767_225_600_000_000_000
MS = 1_000_000
S = 1_000_000_000

# What the store wrote before issue 16 (schema 1): the readings, gaps and meta tables, no index, no sources.
SCHEMA_1 = """
CREATE TABLE readings (
    t_ns INTEGER NOT NULL, power_w REAL NOT NULL, voltage_v REAL, current_a REAL, power_factor REAL,
    energy_wh REAL, meter TEXT NOT NULL, address TEXT NOT NULL DEFAULT '');
CREATE TABLE gaps (start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema', '1');
"""


def schema_1_store(path: Path, rows: list[tuple[int, float, str, str]], gaps=(), meta=None) -> None:
    """A log as edgebench wrote it before the time index: WAL, the three tables, rows in the order given."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA_1)
    db.executemany("INSERT INTO readings (t_ns, power_w, meter, address) VALUES (?,?,?,?)", rows)
    db.executemany("INSERT INTO gaps VALUES (?,?,?)", list(gaps))
    db.executemany("INSERT OR REPLACE INTO meta VALUES (?,?)", list((meta or {}).items()))
    db.commit()
    db.close()


def expected(rows, address, limit_w, spans=None):
    """The canonical readings of `address`, computed plainly: bad ones out, sorted by (time, order written), the
    first of each time kept; with `spans`, those inside any span plus the nearest before and after each."""
    kept = sorted(
        (t, i, p) for i, (t, p, _m, a) in enumerate(rows) if a == address and math.isfinite(p) and 0 <= p <= limit_w
    )
    unique = []
    for t, _i, p in kept:
        if not unique or unique[-1][0] != t:
            unique.append((t, p))
    if spans is None:
        return unique
    chosen = set()
    for a, b in spans:
        inside = [k for k, (t, _p) in enumerate(unique) if a <= t <= b]
        before = [k for k, (t, _p) in enumerate(unique) if t < a]
        after = [k for k, (t, _p) in enumerate(unique) if t > b]
        chosen.update(inside + before[-1:] + after[:1])
    return [unique[k] for k in sorted(chosen)]


def pairs(trace):
    return list(zip(trace.t_ns.tolist(), trace.power_w.tolist(), strict=True))


# --- the property: a windowed read is the whole read restricted to the windows --------------------------------

METERS = {"UM25C": ("",), "tweetawatt": ("0001", "0002")}  # a one-sensor meter (120 W) and a receiver of two


@st.composite
def logs(draw):
    meter = draw(st.sampled_from(sorted(METERS)))
    addresses = METERS[meter]
    limit = power_limit_w(meter)
    reading = st.tuples(
        st.integers(0, 300).map(lambda k: EPOCH + k * 10 * MS),  # a small range of times: duplicates happen
        st.one_of(st.integers(0, int(limit * 10)).map(lambda x: x / 10),  # on the meter's 0.1 W steps...
                  st.floats(limit, limit * 1e4)),  # ...and readings it could not have sent
        st.just(meter),
        st.sampled_from(addresses),
    )  # fmt: skip
    rows = draw(st.lists(reading, max_size=80))  # in any order: nothing assumes the log is written in time order
    flushes = draw(st.sets(st.integers(0, 80), max_size=4))  # commits at random points (the sources top-ups)
    span = st.tuples(st.integers(-20, 320), st.integers(0, 60)).map(
        lambda s: (EPOCH + s[0] * 10 * MS, EPOCH + (s[0] + s[1]) * 10 * MS)
    )
    spans = draw(st.lists(span, max_size=5))
    gaps = draw(st.lists(span, max_size=3))
    return meter, rows, flushes, spans, gaps


def _write(path: Path, rows, flushes, gaps) -> None:
    with open_store(path) as store:
        for i, (t, p, meter, address) in enumerate(rows):
            if i in flushes:
                store.flush()
            store.add(MeterReading(t_ns=t, power_w=p, meter=meter, address=address))
        for a, b in gaps:
            store.add_gap(a, b, "meter silent")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs(), st.sampled_from(["sqlite", "csv", "schema 1"]))
def test_a_windowed_read_is_the_whole_read_restricted_to_the_windows(log, kind):
    meter, rows, flushes, spans, gaps = log
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("log.csv" if kind == "csv" else "log.sqlite")
        if kind == "schema 1":
            schema_1_store(path, rows, [(a, b, "meter silent") for a, b in gaps])
        else:
            _write(path, rows, flushes, gaps)
        for address in sorted({a for *_x, a in rows}):
            limit = power_limit_w(meter)
            whole = load_trace(path, address=address)
            windows = load_windows(path, spans, address=address)
            assert pairs(whole) == expected(rows, address, limit)
            assert pairs(windows) == expected(rows, address, limit, spans)
            assert windows.t_ns.dtype == np.int64 and windows.power_w.dtype == np.float64
            overlapping = [g for g in whole.gaps if any(g[1] >= a and g[0] <= b for a, b in spans)]
            assert sorted(windows.gaps) == sorted(overlapping)
            assert windows.meter == whole.meter and windows.resolution_w == whole.resolution_w


# --- logs written before the time index -----------------------------------------------------------------------


def _session_rows(n=600, address=""):
    """n readings at 10 Hz, 5 W then 9 W: (t_ns, power_w, meter, address)."""
    return [(EPOCH + k * 100 * MS, 5.0 if k < n // 2 else 9.0, "UM25C", address) for k in range(n)]


def test_a_schema_1_log_is_indexed_once_and_reads_the_same(tmp_path, capsys):
    old, new = tmp_path / "old.sqlite", tmp_path / "new.sqlite"
    rows = _session_rows()
    schema_1_store(old, rows, [(EPOCH + 10 * S, EPOCH + 11 * S, "meter silent")], {"resolution_w": "0.001"})
    with open_store(new) as store:
        store.set_meta(resolution_w=0.001)
        for t, p, m, a in rows:
            store.add(MeterReading(t_ns=t, power_w=p, meter=m, address=a))
        store.add_gap(EPOCH + 10 * S, EPOCH + 11 * S, "meter silent")
    spans = [(EPOCH + 5 * S + 50 * MS, EPOCH + 12 * S), (EPOCH + 40 * S, EPOCH + 41 * S)]
    first = load_windows(old, spans)
    assert "written without a time index: indexing it (once)" in capsys.readouterr().err
    assert pairs(first) == pairs(load_windows(new, spans)) and first.gaps == load_windows(new, spans).gaps
    db = sqlite3.connect(old)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("2",)
    assert db.execute("SELECT meter, address, readings FROM sources").fetchall() == [("UM25C", "", 600)]
    assert db.execute("EXPLAIN QUERY PLAN SELECT * FROM readings WHERE address = '' AND t_ns > 5").fetchall()[0][3] \
        .startswith("SEARCH readings USING INDEX readings_by_time")  # fmt: skip
    db.close()
    load_windows(old, spans)
    assert "indexing" not in capsys.readouterr().err  # once


def test_a_writer_appending_to_a_schema_1_log_indexes_it_first(tmp_path):
    path = tmp_path / "old.sqlite"
    schema_1_store(path, _session_rows(100))
    with open_store(path) as store:
        store.add(MeterReading(t_ns=EPOCH + 20 * S, power_w=7.0, meter="UM25C"))
    info = summarize(path)
    assert info.readings == 101 and info.meters == ("UM25C",)
    assert load_windows(path, [(EPOCH + 20 * S, EPOCH + 20 * S)]).power_w.tolist() == [9.0, 7.0]


@pytest.mark.slow
def test_a_schema_1_log_that_cannot_be_indexed_now_is_read_whole(tmp_path, capsys):
    """Another process holds the write lock (say, a second `report` indexing it): read it the old way."""
    path = tmp_path / "old.sqlite"
    rows = _session_rows()
    schema_1_store(path, rows)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        spans = [(EPOCH + 29_950 * MS, EPOCH + 31 * S)]
        trace = load_windows(path, spans)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "could not be indexed" in capsys.readouterr().err
    assert pairs(trace) == expected(rows, "", 120.0, spans)
    assert trace.power_w.tolist()[:2] == [5.0, 9.0]  # the neighbour before the window, then the window


# --- what a log holds, from the metadata the writer keeps ------------------------------------------------------


def test_what_a_log_holds_comes_from_its_metadata_and_rows_appended_past_it(tmp_path):
    path = tmp_path / "log.sqlite"
    with open_store(path) as store:
        for k in range(3):
            store.add(MeterReading(t_ns=EPOCH + k * S, power_w=10.0, meter="tweetawatt", address="0001"))
        store.flush()
        store.add(MeterReading(t_ns=EPOCH + 5 * S, power_w=10.0, meter="tweetawatt", address="0002"))
    db = sqlite3.connect(path)
    assert sorted(db.execute("SELECT address, readings, first_ns, last_ns FROM sources").fetchall()) == [
        ("0001", 3, EPOCH, EPOCH + 2 * S), ("0002", 1, EPOCH + 5 * S, EPOCH + 5 * S)
    ]  # fmt: skip
    # a program that knows nothing of the sources table appends a sensor: counted all the same
    db.execute("INSERT INTO readings (t_ns, power_w, meter, address) VALUES (?, 3.0, 'tweetawatt', '0003')", (EPOCH,))
    db.commit()
    db.close()
    info = summarize(path)
    assert info.addresses == ("0001", "0002", "0003") and info.readings == 5
    with pytest.raises(BadInput, match="several sensors"):
        load_windows(path, [(EPOCH, EPOCH + S)])


# --- readings the meter could not have sent (issue 18 item 5) ---------------------------------------------------


def _pair_dir(tmp_path, rows_extra=(), meter="UM25C"):
    """runs.jsonl (one 20 s window at 5 W) and a meter log holding `rows_extra` besides the good readings."""
    log = tmp_path / "meter.sqlite"
    with open_store(log) as store:
        store.set_meta(meter=meter, resolution_w=0.001)
        for k in range(400):
            store.add(MeterReading(t_ns=EPOCH + k * 100 * MS, power_w=5.0, meter=meter))
        for t, p in rows_extra:
            store.add(MeterReading(t_ns=t, power_w=p, meter=meter))
    run = RunRecord(engine="resnet18_1_32_32_fp32", backend="onnxruntime", clock="host:realtime",
                    window_start_ns=EPOCH + 10 * S, window_end_ns=EPOCH + 30 * S, iterations=100, batch=1,
                    latencies_ns=(200 * MS,) * 100)  # fmt: skip
    append_jsonl(tmp_path / "runs.jsonl", [run])
    return tmp_path / "runs.jsonl", log


def test_a_stored_reading_beyond_the_meters_limit_is_left_out_and_said(tmp_path):
    runs, log = _pair_dir(tmp_path, [(EPOCH + 20 * S + 50 * MS, 4e6)])  # the 4e6 W row of the report
    result = CliRunner().invoke(cli, ["pair", str(runs), str(log), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "1 stored reading of UM25C not finite, negative or above its 120 W limit: left out" in result.stderr
    import json

    engine = json.loads(result.stdout)["engines"][0]
    assert engine["gross_j_per_inference"] == pytest.approx(5.0 * 20 / 100)  # 5 W for 20 s, 100 inferences


@pytest.mark.parametrize("value", ["-1.0", "-1e-300", "-1e400", "1e400", "121"])
def test_negative_or_infinite_stored_power_is_a_bad_reading(tmp_path, value):
    runs, log = _pair_dir(tmp_path)
    db = sqlite3.connect(log)
    db.execute(f"UPDATE readings SET power_w = CAST({value} AS REAL) WHERE t_ns = ?", (EPOCH + 150 * 100 * MS,))
    db.commit()
    db.close()
    trace = load_windows(log, [(EPOCH + 10 * S, EPOCH + 30 * S)])
    assert trace.bad_readings == 1 and len(trace.t_ns) == 201 - 1 + 2 and (trace.power_w == 5.0).all()  # + neighbours


def test_limits_are_the_decoders(tmp_path):
    from edgebench.host.meters import lines, tweetawatt, um, wattsup

    assert power_limit_w("UM25C") == um.RATINGS["UM25C"][0] * um.RATINGS["UM25C"][1]
    assert power_limit_w("tweetawatt") == tweetawatt.MAX_W and power_limit_w("wattsup PRO") == wattsup.MAX_W
    assert power_limit_w("emulated ramp 5 W + 0.1 W/s") == lines.MAX_W


@pytest.mark.parametrize("body", ["t_ns,power_w\n1,2\n2,nan\n", "t_ns,power_w\n1,2\n2,inf\n",
                                  "t_ns,power_w\n1,2\n2,-2\n", "t_ns,power_w\n1,2\n2,4e6\n"])  # fmt: skip
def test_a_csv_reading_its_meter_could_not_send_is_left_out(tmp_path, body, capsys):
    path = tmp_path / "m.csv"
    path.write_text(body)
    trace = load_trace(path)
    assert trace.t_ns.tolist() == [1] and trace.bad_readings == 1
    assert "1 stored reading of unknown not finite, negative or above its 50000 W limit" in capsys.readouterr().err


def test_duplicate_timestamps_keep_the_first_stored(tmp_path):
    runs, log = _pair_dir(tmp_path, [(EPOCH + 15 * S, 6.0), (EPOCH + 15 * S, 7.0)])  # after the 5 W one at 15 s
    for trace in (load_trace(log), load_windows(log, [(EPOCH + 10 * S, EPOCH + 30 * S)])):
        at = trace.t_ns == EPOCH + 15 * S
        assert at.sum() == 1 and trace.power_w[at].tolist() == [5.0] and trace.duplicate_readings == 2
    # two loggers writing every reading twice must not double a window's reading count
    with open_store(log) as store:
        for k in range(400):
            store.add(MeterReading(t_ns=EPOCH + k * 100 * MS, power_w=5.0, meter="UM25C"))
    assert len(load_trace(log).t_ns) == 400


@pytest.mark.parametrize("value", ["fine", "nan", "-0.1", ""])
def test_a_bad_resolution_in_the_metadata_is_one_line(tmp_path, value):
    runs, log = _pair_dir(tmp_path)
    db = sqlite3.connect(log)
    db.execute("INSERT OR REPLACE INTO meta VALUES ('resolution_w', ?)", (value,))
    db.commit()
    db.close()
    result = CliRunner().invoke(cli, ["pair", str(runs), str(log)])
    if value == "":  # no resolution said: the meter's own
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"its metadata says resolution_w '{value}', not a number >= 0" in result.output


# --- a log read while it is written ---------------------------------------------------------------------------


def test_a_log_read_between_commits_agrees_with_its_metadata(tmp_path):
    """A reader opening the log between the writer's commits finds the sources counting what the rows hold."""
    path = tmp_path / "live.sqlite"
    store = open_store(path)
    try:
        for batch in range(1, 6):
            for k in range(100):
                store.add(MeterReading(t_ns=EPOCH + (batch * 100 + k) * S, power_w=1.0, meter="UM25C"))
            store.flush()
            window = load_windows(path, [(EPOCH, EPOCH + 10_000 * S)])
            assert summarize(path).readings == len(window.t_ns) == batch * 100
    finally:
        store.close()


def test_the_logs_nominal_period_is_on_the_trace(tmp_path):
    """A windowed trace's own spacing is the spacing around its windows: the log's period rides along."""
    path = tmp_path / "log.sqlite"
    with open_store(path) as store:
        store.set_meta(nominal_period_s=0.1)
        store.add(MeterReading(t_ns=EPOCH, power_w=1.0, meter="UM25C"))
    assert load_windows(path, [(EPOCH, EPOCH)]).nominal_period_s == 0.1
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = 'often' WHERE key = 'nominal_period_s'")
    db.commit()
    db.close()
    assert load_windows(path, [(EPOCH, EPOCH)]).nominal_period_s is None  # damaged: not needed to pair


def test_every_windowed_query_is_a_range_search_on_the_time_index(tmp_path):
    """What makes a window's cost independent of the log's length, checked in SQLite's own plan (not a timer):
    each query a windowed read runs searches the index by address and a time bound; none scans."""
    from edgebench.host import store

    path = tmp_path / "log.sqlite"
    with open_store(path) as log:
        log.add(MeterReading(t_ns=EPOCH, power_w=1.0, meter="UM25C"))
    db = sqlite3.connect(path)
    for sql, args in [(store._RANGE, ("", 1, 2)), (store._BEFORE, ("", 1, 120.0)), (store._AFTER, ("", 1, 120.0)),
                      (store._NOT_TIMES, ("", ""))]:  # fmt: skip
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + sql, args)]
        searches = [step for step in plan if step.startswith(("SEARCH", "SCAN"))]
        assert searches and all(
            step.startswith("SEARCH readings USING") and "INDEX readings_by_time (address=? AND t_ns" in step
            for step in searches
        ), (sql, plan)
        assert not any("TEMP B-TREE" in step for step in plan), (sql, plan)  # rows come sorted off the index
    db.close()


def test_a_dropped_index_is_built_again(tmp_path, capsys):
    path = tmp_path / "log.sqlite"
    rows = _session_rows(50)
    with open_store(path) as store:
        for t, p, m, a in rows:
            store.add(MeterReading(t_ns=t, power_w=p, meter=m, address=a))
    db = sqlite3.connect(path)
    db.execute("DROP INDEX readings_by_time")
    db.commit()
    db.close()
    spans = [(EPOCH + 2 * S, EPOCH + 3 * S)]
    assert pairs(load_windows(path, spans)) == expected(rows, "", 120.0, spans)
    assert "indexing it (once)" in capsys.readouterr().err
    db = sqlite3.connect(path)
    assert db.execute("SELECT 1 FROM sqlite_master WHERE name = 'readings_by_time'").fetchone() == (1,)
    assert db.execute("SELECT readings FROM sources").fetchall() == [(50,)]  # not counted twice
    db.close()
