"""The meter store: SQLite and CSV round trips, gaps, spans, sensor addresses, crash safety, bad files."""

import sqlite3

import numpy as np
import pytest

from edgebench.errors import BadInput
from edgebench.host.store import load_trace, open_store, summarize
from edgebench.records import MeterReading

EPOCH = 1_700_000_000_000_000_000
S = 1_000_000_000


def _r(t_s, w, address="", meter="lines"):
    return MeterReading(t_ns=EPOCH + int(t_s * S), power_w=w, meter=meter, address=address, voltage_v=230.0)


@pytest.mark.parametrize("name", ["log.sqlite", "log.csv"])
def test_round_trip_sorted_with_gaps(tmp_path, name):
    path = tmp_path / name
    with open_store(path) as store:
        store.set_meta(meter="lines", resolution_w=0.01)
        for t_s, w in [(0, 1.0), (2, 3.0), (1, 2.0), (3, 4.25)]:  # out of order on purpose
            store.add(_r(t_s, w))
        store.add_gap(EPOCH + 3 * S, EPOCH + 5 * S, "meter silent")
    trace = load_trace(path)
    assert trace.t_ns.dtype == np.int64 and trace.t_ns.tolist() == [EPOCH + k * S for k in range(4)]
    assert trace.power_w.tolist() == [1.0, 2.0, 3.0, 4.25]
    assert trace.gaps == ((EPOCH + 3 * S, EPOCH + 5 * S),)
    assert trace.meter == "lines"
    assert trace.resolution_w == pytest.approx(0.01)
    span = load_trace(path, start_ns=EPOCH + S, end_ns=EPOCH + 2 * S)
    assert span.power_w.tolist() == [2.0, 3.0] and span.gaps == ()


def test_exact_nanoseconds_survive(tmp_path):
    path = tmp_path / "ns.sqlite"
    t = EPOCH + 123_456_789_123
    with open_store(path) as store:
        store.add(MeterReading(t_ns=t, power_w=1.0, meter="x"))
    assert int(load_trace(path).t_ns[0]) == t


def test_several_addresses_need_a_choice(tmp_path):
    path = tmp_path / "twa.sqlite"
    with open_store(path) as store:
        for k in range(3):
            store.add(_r(k, 10.0 + k, address="0001", meter="tweetawatt"))
            store.add(_r(k, 50.0, address="0002", meter="tweetawatt"))
    with pytest.raises(BadInput, match="several sensors \\(0001, 0002\\)"):
        load_trace(path)
    assert load_trace(path, address="0001").power_w.tolist() == [10.0, 11.0, 12.0]
    assert load_trace(path, address="0002").resolution_w == pytest.approx(340 / 2 / 15.5 / 17)
    with pytest.raises(BadInput, match="no sensor '0009'"):
        load_trace(path, address="0009")
    assert summarize(path).addresses == ("0001", "0002")


def test_commits_every_second_while_open(tmp_path):
    path = tmp_path / "live.sqlite"
    store = open_store(path)
    store.add(_r(0, 1.0))
    assert len(load_trace(path).t_ns) == 0  # buffered, not yet committed
    store._last_commit -= 1.0  # as if a second had passed
    store.add(_r(1, 2.0))
    assert len(load_trace(path).t_ns) == 2  # readable by another connection while the writer is open
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()
    store.close()


def test_minimal_csv_from_elsewhere(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("t_ns,power_w\n3000,2.5\n1000,1.5\n")
    trace = load_trace(path)
    assert trace.t_ns.tolist() == [1000, 3000] and trace.meter == "unknown"
    assert trace.resolution_w == pytest.approx(0.1)  # inferred from the decimals


def test_bad_files(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_trace(tmp_path / "none.sqlite")
    (tmp_path / "x.csv").write_text("when,watts\n1,2\n")
    with pytest.raises(BadInput, match="needs t_ns and power_w"):
        load_trace(tmp_path / "x.csv")
    (tmp_path / "p.csv").write_text("time,watts\n1,2\n")  # paper readings: a time of day is not a time
    with pytest.raises(BadInput, match=r"p.csv, line 2: time '1' is not a date and time"):
        load_trace(tmp_path / "p.csv")
    (tmp_path / "y.csv").write_text("t_ns,power_w\nsoon,2\n")
    with pytest.raises(BadInput, match="line 2"):
        load_trace(tmp_path / "y.csv")
    (tmp_path / "z.bin").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(BadInput):
        load_trace(tmp_path / "z.bin")
    with pytest.raises(BadInput, match="does not exist"):
        open_store(tmp_path / "no" / "dir" / "log.sqlite")


# --- one bad reading never costs the others (issue 9, item 2) ---------------------------------------------------


@pytest.mark.parametrize("name", ["log.sqlite", "log.csv"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_a_reading_the_store_cannot_hold_is_dropped_and_counted(tmp_path, name, bad):
    path = tmp_path / name
    store = open_store(path)
    store.add(_r(0, 1.0))
    store.add(_r(1, bad))
    store.add(MeterReading(t_ns=2**64, power_w=1.0, meter="x"))  # beyond int64
    store.add(MeterReading(t_ns=EPOCH + 2 * S, power_w=2.0, meter="x", voltage_v=float("nan")))
    store.flush()
    store.add(_r(3, 3.0))
    store.close()
    assert load_trace(path).power_w.tolist() == [1.0, 3.0]
    assert store.dropped == 3


def test_a_refused_batch_is_salvaged_row_by_row_and_later_flushes_work(tmp_path):
    path = tmp_path / "log.sqlite"
    store = open_store(path)
    # A real refusal from the database itself (here a trigger; in the field a NOT NULL or a CHECK).
    store._db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON readings WHEN NEW.power_w = 13.0 "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    for k, w in enumerate([1.0, 13.0, 2.0]):
        store.add(_r(k, w))
    store.flush()
    assert store.dropped == 1 and store.error is None
    store.add(_r(3, 4.0))
    store.add_gap(EPOCH + 3 * S, EPOCH + 4 * S, "meter silent")
    store.flush()  # not poisoned by the refused batch
    store.close()
    trace = load_trace(path)
    assert trace.power_w.tolist() == [1.0, 2.0, 4.0] and len(trace.gaps) == 1


def test_an_unwritable_store_keeps_its_readings_queued(tmp_path):
    path = tmp_path / "log.sqlite"
    store = open_store(path)
    store._db.execute("PRAGMA query_only = ON")  # every write fails, as on a full disk
    store.add(_r(0, 1.0))
    store.flush()
    assert isinstance(store.error, sqlite3.Error)
    store._db.execute("PRAGMA query_only = OFF")  # space again
    store.add(_r(1, 2.0))
    store.close()
    assert load_trace(path).power_w.tolist() == [1.0, 2.0]  # nothing received was lost


def test_an_unwritable_store_says_so_at_close(tmp_path):
    from edgebench.errors import DeviceError

    store = open_store(tmp_path / "log.sqlite")
    store._db.execute("PRAGMA query_only = ON")
    store.add(_r(0, 1.0))
    with pytest.raises(DeviceError, match="could not be written .* 1 readings are lost"):
        store.close()


# --- names SQLite URIs would misread (issue 9, item 7) ------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["exp#1.sqlite", "what?.sqlite", "100%.sqlite", "a%23b.sqlite", "sp ace.sqlite"]
)
def test_names_with_uri_characters(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with open_store(name) as store:
        store.add(_r(0, 5.0))
    assert load_trace(name).power_w.tolist() == [5.0]
    assert summarize(tmp_path / name).readings == 1
    # no stray `exp`, `what`, `100` (the reader may leave the store's own -wal/-shm beside it)
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(name)] == []


# --- CSV logs from elsewhere: a row that is not a reading is BadInput naming the file and line (a reading its
# meter could not have sent, NaN or negative or too high, is left out and counted: tests/test_store_windows.py) ----


@pytest.mark.parametrize(
    "body, line",
    [
        ("t_ns,power_w\n1,2\n2,soon\n", 3),
        ("t_ns,power_w\n99999999999999999999999,2\n", 2),
        ("t_ns,power_w\n1,2\n3,4\x00\n", 3),
    ],
)
def test_bad_csv_rows_name_the_line(tmp_path, body, line):
    path = tmp_path / "m.csv"
    path.write_text(body)
    with pytest.raises(BadInput, match=f"m.csv, line {line}"):
        load_trace(path)


def test_bad_gaps_file_is_badinput(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("t_ns,power_w\n1,2\n")
    (tmp_path / "m.gaps.csv").write_text("start_ns,end_ns,reason\n1,x,silent\n")
    with pytest.raises(BadInput, match="m.gaps.csv, line 2"):
        load_trace(path)
