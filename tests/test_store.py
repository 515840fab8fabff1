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
    (tmp_path / "x.csv").write_text("time,watts\n1,2\n")
    with pytest.raises(BadInput, match="needs t_ns and power_w"):
        load_trace(tmp_path / "x.csv")
    (tmp_path / "y.csv").write_text("t_ns,power_w\nsoon,2\n")
    with pytest.raises(BadInput, match="line 2"):
        load_trace(tmp_path / "y.csv")
    (tmp_path / "z.bin").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(BadInput):
        load_trace(tmp_path / "z.bin")
    with pytest.raises(BadInput, match="does not exist"):
        open_store(tmp_path / "no" / "dir" / "log.sqlite")
