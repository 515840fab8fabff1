"""The meter log: an append-only store the logger writes and pairing reads back as a `MeterTrace`.

SQLite (any suffix but .csv) in WAL mode with synchronous=NORMAL: readings are buffered and committed in one
transaction at least every second, so a killed logger loses at most the last second, and a reader (`meter show`,
`pair`) can open the file while the logger writes. `.csv` is accepted too (columns t_ns, power_w, voltage_v,
current_a, power_factor, energy_wh, meter, address; flushed each second) with its gaps in `<name>.gaps.csv`.

Reading a month-long log for a few windows must cost what the windows need, not what the log holds (schema 2):
an index over (address, t_ns) that SQLite keeps itself, so a window's readings and its neighbours are a range
scan whatever order they were written in, and a `sources` table (meter, address, readings, first and last time)
that the writer updates in the transaction of every batch, with the rowid it covers in `meta.sources_rowid`, so
that what a log holds is known without a scan (rows appended by anything else after that rowid are counted on
reading). A log written before (schema 1) is indexed once when it is first read or written, where the file can
be written; a read-only one is read whole, as before. `load_windows` is what pairing asks for.

What a reader gives back is canonical, whichever path read it: one sensor's readings sorted by time; a stored
reading its meter could not have sent (not finite, negative, or beyond the limit its decoder enforces) left out
and counted; of readings sharing a timestamp, the first stored kept and the others counted (two frames that
arrived in one read; the trapezoid would give the second no width anyway, but it would count as a reading).
"""

from __future__ import annotations

import csv
import math
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgebench.errors import BadInput, DeviceError
from edgebench.records import SAMPLINGS, MeterReading, MeterTrace

if TYPE_CHECKING:
    import numpy as np

COLUMNS = ("t_ns", "power_w", "voltage_v", "current_a", "power_factor", "energy_wh", "meter", "address")
COMMIT_INTERVAL_S = 1.0
INT64 = 2**63  # t_ns must fit SQLite's INTEGER and numpy's int64
SCHEMA_VERSION = "2"  # 1: readings, gaps, meta; 2: + the time index and the sources table
# Meter identity prefix -> protocol, for logs that carry no resolution (lines: inferred from the decimals).
IDENTITY_PROTOCOL = {"tweetawatt": "tweetawatt", "wattsup": "wattsup", "UM": "um"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    t_ns INTEGER NOT NULL, power_w REAL NOT NULL, voltage_v REAL, current_a REAL, power_factor REAL,
    energy_wh REAL, meter TEXT NOT NULL, address TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS gaps (start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
# Schema 2: what makes a window's read cost what the window needs (see the module docstring).
_INDEX = """
CREATE INDEX IF NOT EXISTS readings_by_time ON readings (address, t_ns);
CREATE TABLE IF NOT EXISTS sources (
    meter TEXT NOT NULL, address TEXT NOT NULL, readings INTEGER NOT NULL, first_ns INTEGER, last_ns INTEGER,
    PRIMARY KEY (meter, address));
"""
# Rows after rowid ? summed per source (a range scan of the rowid B-tree: the batch just written).
_SOURCES_AFTER = (
    "SELECT meter, address, count(*), min(t_ns), max(t_ns) FROM readings WHERE rowid > ? GROUP BY meter, address"
)
_TOP_UP = f"""
INSERT INTO sources (meter, address, readings, first_ns, last_ns) {_SOURCES_AFTER}
ON CONFLICT (meter, address) DO UPDATE SET readings = readings + excluded.readings,
    first_ns = min(first_ns, excluded.first_ns), last_ns = max(last_ns, excluded.last_ns)
"""
REOPENED = "no logger ran (the log was closed and opened again)"


def sqlite_uri(path: str | Path, mode: str = "ro") -> str:
    """A `file:` URI for sqlite3.connect(..., uri=True): the path percent-quoted, so '#', '?' and '%' in a name
    are part of the name, not a fragment, a query or an escape (an unquoted `exp#1` opens `exp`)."""
    return f"{Path(path).absolute().as_uri()}?mode={mode}"


def storable(reading: MeterReading) -> bool:
    """True when a reading can go into the store: an int64 time, a finite non-negative power, finite optional
    values and text identity. SQLite would store a NaN as NULL and refuse the whole batch."""
    if (
        isinstance(reading.t_ns, bool)
        or not isinstance(reading.t_ns, int)
        or not -INT64 <= reading.t_ns < INT64
    ):
        return False
    if (
        not isinstance(reading.power_w, (int, float))
        or not math.isfinite(reading.power_w)
        or reading.power_w < 0
    ):
        return False
    for value in (reading.voltage_v, reading.current_a, reading.power_factor, reading.energy_wh):
        if value is not None and (not isinstance(value, (int, float)) or not math.isfinite(value)):
            return False
    return isinstance(reading.meter, str) and isinstance(reading.address, str)


def gaps_path(path: Path) -> Path:
    """The gaps side file of a CSV log."""
    return path.with_name(path.stem + ".gaps.csv")


@dataclass(frozen=True)
class Gap:
    """A span in which the logger heard nothing it could use, and why."""

    start_ns: int
    end_ns: int
    reason: str


class StoreWriter:
    """Appends readings and gaps; commits at least every `COMMIT_INTERVAL_S` (call `flush_if_due` when idle).

    One bad reading never costs the others: a reading the store cannot hold (NaN, inf, negative power, a time
    beyond int64) is dropped and counted in `dropped`; a batch the database refuses is written again row by row,
    dropping (and counting) only the rows refused. A store that cannot be written at all (disk full, file gone)
    keeps its readings queued and retries at every flush; `error` says why meanwhile, and `close()` raises
    DeviceError if they still cannot be written.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: list[tuple] = []
        self._pending_gaps: list[tuple[int, int, str]] = []
        self._last_commit = time.monotonic()
        self.count = 0
        self.dropped = 0
        self.error: Exception | None = None
        self._meta: dict[str, str] = {}
        # The latest reading of a log this writer reopened: the time until its own first reading is a gap,
        # since no logger ran then (a window across it must never be interpolated over it).
        self.reopened_after_ns: int | None = None

    def add(self, reading: MeterReading) -> None:
        """Queue one reading (or drop and count one it cannot hold); commits if the last commit is a second old."""
        if not storable(reading):
            self.dropped += 1
            return
        if self.reopened_after_ns is not None:
            if reading.t_ns > self.reopened_after_ns:
                self._pending_gaps.append((self.reopened_after_ns, reading.t_ns, REOPENED))
            self.reopened_after_ns = None
        self._pending.append(
            (
                reading.t_ns, reading.power_w, reading.voltage_v, reading.current_a, reading.power_factor,
                reading.energy_wh, reading.meter, reading.address,
            )
        )  # fmt: skip
        self.count += 1
        self.flush_if_due()

    def add_gap(self, start_ns: int, end_ns: int, reason: str) -> None:
        """Record a span with no readings (committed with the next flush)."""
        self._pending_gaps.append((int(start_ns), int(end_ns), reason))
        self.flush_if_due()

    def set_meta(self, **values: object) -> None:
        """Meter facts kept with the log (meter identity, resolution_w, nominal_period_s, protocol)."""
        self._meta.update({k: str(v) for k, v in values.items()})

    def flush_if_due(self) -> None:
        """Commit if the last commit is at least a second old."""
        if time.monotonic() - self._last_commit >= COMMIT_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        """Commit everything queued; on a store that cannot be written, keep it queued (see `error`)."""
        self._last_commit = time.monotonic()
        try:
            self._write()
        except (sqlite3.Error, OSError) as exc:
            self.error = exc  # kept queued: the next flush tries again
            return
        self.error = None
        self._pending.clear()
        self._pending_gaps.clear()

    def _write(self) -> None:
        raise NotImplementedError

    def _raise_unwritten(self) -> None:
        if self.error is not None and (self._pending or self._pending_gaps):
            raise DeviceError(
                f"meter store {self.path} could not be written ({self.error}): {len(self._pending)} readings "
                "are lost; free disk space or give another --out"
            )

    def close(self) -> None:
        """Flush and release the file (released also when readings could not be written, which raises)."""
        self.flush()
        try:
            self._raise_unwritten()
        finally:
            self._release()

    def _release(self) -> None:
        """Close the store's file or connection."""

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _create_sqlite(path: Path) -> None:
    """Create an empty store with its schema under a temporary name, then rename it into place.

    A reader polling the path (a test, `meter show`, H6's measure loop) then never sees a half-made file:
    an empty one (not yet SQLite) or one without the tables.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.creating")
    db = sqlite3.connect(str(tmp))
    try:
        db.execute("PRAGMA journal_mode=WAL")  # persistent in the header: the store stays in WAL mode
        db.executescript(_SCHEMA)
        db.commit()
        _upgrade(db)
    finally:
        db.close()  # the last connection checkpoints and removes the -wal/-shm files
    os.replace(tmp, path)


def _upgrade(db: sqlite3.Connection) -> None:
    """Bring a store to schema 2 in one transaction: the time index, and the sources table filled from the rows
    (a log of schema 1 is scanned once; a new one costs nothing). Safe to repeat and to race: the second waits
    for the first's lock, then finds nothing to do."""
    db.execute("BEGIN IMMEDIATE")  # the write lock first, so what is read below is what gets changed
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        had_sources = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sources'").fetchone() is not None
        for statement in _INDEX.split(";"):  # IF NOT EXISTS: nothing to do on a schema-2 store
            if statement.strip():
                db.execute(statement)
        if not had_sources or "sources_rowid" not in meta:
            db.execute("DELETE FROM sources")
            db.execute(_TOP_UP, (0,))
            db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('sources_rowid', (SELECT coalesce(max(rowid), 0) FROM readings))"
            )
        if meta.get("schema") != SCHEMA_VERSION:
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class SqliteWriter(StoreWriter):
    """The SQLite store (WAL, synchronous=NORMAL, batched inserts; the sources table topped up with each batch)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            if not path.exists():
                _create_sqlite(path)
            # a reader indexing a schema-1 log holds the write lock for as long as that takes: wait for it
            self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=60.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.commit()
            _upgrade(self._db)
            # the latest reading stored (each sensor's, on the index): not the sources' last_ns, which rows
            # deleted by hand would leave behind
            latest = [
                self._db.execute("SELECT max(t_ns) FROM readings WHERE address = ?", (address,)).fetchone()[0]
                for (address,) in self._db.execute("SELECT DISTINCT address FROM sources").fetchall()
            ]
            latest = [t for t in latest if isinstance(t, int)]
            self.reopened_after_ns = max(latest) if latest else None
        except (sqlite3.Error, OSError) as exc:
            raise BadInput(
                f"cannot open meter store {path} ({exc}): give a writable .sqlite or .csv path"
            ) from None

    def _write(self) -> None:
        try:
            self._write_batch(self._pending)
        except (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError, OverflowError):
            # One row the database refuses (a constraint, a value it cannot bind) fails the whole batch:
            # write the rows one by one and drop only those it refuses.
            done = 0
            try:
                for row in self._pending:
                    try:
                        with self._db:
                            self._db.execute("INSERT INTO readings VALUES (?,?,?,?,?,?,?,?)", row)
                            self._top_up()
                    except (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError, OverflowError):
                        self.dropped += 1
                    done += 1
            finally:
                del self._pending[
                    :done
                ]  # committed or dropped: a retry after a store error must not repeat them
            self._write_batch([])

    def _write_batch(self, rows: list[tuple]) -> None:
        with self._db:
            if rows:
                self._db.executemany("INSERT INTO readings VALUES (?,?,?,?,?,?,?,?)", rows)
            self._top_up()
            if self._pending_gaps:
                self._db.executemany("INSERT INTO gaps VALUES (?,?,?)", self._pending_gaps)
            if self._meta:
                self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?,?)", list(self._meta.items()))
        self._meta = {}

    def _top_up(self) -> None:
        """Count the rows after the sources' rowid into them (inside the caller's transaction)."""
        (covered,) = self._db.execute("SELECT value FROM meta WHERE key = 'sources_rowid'").fetchone()
        self._db.execute(_TOP_UP, (int(covered),))
        self._db.execute(
            "INSERT OR REPLACE INTO meta VALUES ('sources_rowid', (SELECT coalesce(max(rowid), 0) FROM readings))"
        )

    def _release(self) -> None:
        self._db.close()


class CsvWriter(StoreWriter):
    """The CSV store: one row per reading, gaps in the side file; flushed to the OS each second."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            new = not path.exists() or path.stat().st_size == 0
            self._file = open(path, "a", newline="")  # noqa: SIM115 - held open for the logger's life
        except OSError as exc:
            raise BadInput(f"cannot open meter log {path} ({exc.strerror}): give a writable path") from None
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(COLUMNS)
            self._file.flush()
        else:
            self.reopened_after_ns = _csv_last_t(path)

    def _write(self) -> None:
        def cell(value: object) -> object:
            return "" if value is None else value

        self._csv.writerows([tuple(cell(v) for v in row) for row in self._pending])
        self._file.flush()
        self._pending.clear()  # written: a failing gaps file below must not write them twice
        if self._pending_gaps:
            side = gaps_path(self.path)
            new = not side.exists()
            with open(side, "a", newline="") as stream:
                writer = csv.writer(stream)
                if new:
                    writer.writerow(("start_ns", "end_ns", "reason"))
                writer.writerows(self._pending_gaps)
        self._meta = {}

    def _release(self) -> None:
        self._file.close()


def _csv_last_t(path: Path) -> int | None:
    """The latest t_ns among the last rows of a CSV log (its tail is enough: a log is written in time order);
    None when none can be read."""
    try:
        with open(path, "rb") as stream:
            header = stream.readline().decode("utf-8", "replace").strip().lower().split(",")
            stream.seek(max(0, path.stat().st_size - 65536))
            tail = stream.read().decode("utf-8", "replace").splitlines()[1:]
    except OSError:
        return None
    if "t_ns" not in header:
        return None
    column = header.index("t_ns")
    times = []
    for line in tail:
        cells = line.split(",")
        try:
            times.append(int(cells[column]))
        except (ValueError, IndexError):
            continue
    return max(times) if times else None


def open_store(path: str | Path) -> StoreWriter:
    """A writer for a meter log: CSV when the name ends in .csv, SQLite otherwise (created if missing). A device
    node, FIFO, socket or directory is refused in one line; a symlink is written through to its target."""
    from edgebench.files import output_path

    path = output_path(path, "meter log")
    if path.parent and not path.parent.is_dir():
        raise BadInput(f"cannot write meter log {path}: folder {path.parent} does not exist")
    return CsvWriter(path) if path.suffix.lower() == ".csv" else SqliteWriter(path)




# --- reading ------------------------------------------------------------------------------------------------

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_ROW = [("t_ns", "<i8"), ("power_w", "<f8")]  # one reading as numpy reads it from a cursor
_RESOLUTION_SAMPLE = 10_000  # readings a resolution is inferred from (the first ones, by time)
INDEX_WAIT_S = 2.0  # how long a reader waits for the write lock to index a schema-1 log

# A time range of one sensor, on the index: rows come in (t_ns, rowid) order with no sort.
_RANGE = "SELECT t_ns, power_w FROM readings WHERE address = ? AND t_ns BETWEEN ? AND ? ORDER BY t_ns, rowid"
# The nearest usable reading before / after a time (what a window edge is interpolated from).
_BEFORE = (
    "SELECT t_ns FROM readings WHERE address = ? AND t_ns < ? AND power_w BETWEEN 0 AND ? "
    "ORDER BY t_ns DESC LIMIT 1"
)
_AFTER = (
    f"SELECT t_ns FROM readings WHERE address = ? AND t_ns > ? AND t_ns <= {INT64_MAX} "
    "AND power_w BETWEEN 0 AND ? ORDER BY t_ns LIMIT 1"
)
# One sensor's rows in the order they were written: a plain scan, faster than the index for a whole log.
_WHOLE = "SELECT t_ns, power_w FROM readings NOT INDEXED WHERE address = ?"
_FIRST = "SELECT t_ns, power_w FROM readings WHERE address = ? ORDER BY t_ns, rowid LIMIT ?"


@dataclass(frozen=True)
class StoreSummary:
    """What is in a log, for `meter show` and for choosing an address."""

    readings: int
    addresses: tuple[str, ...]
    meters: tuple[str, ...]
    gaps: tuple[Gap, ...]


def power_limit_w(meter: str) -> float:
    """The most watts a stored reading of `meter` (its identity as the log holds it) can be: the limit its decoder
    drops frames beyond (`meters.base.plausible`), taken from the decoder modules so it is defined once. A meter no
    decoder names gets the most permissive decoder's, the text-line meter's."""
    from edgebench.host.meters import lines, tweetawatt, um, wattsup

    if meter.startswith("tweetawatt"):
        return float(tweetawatt.MAX_W)
    if meter.startswith("wattsup"):
        return float(wattsup.MAX_W)
    if meter in um.RATINGS:
        volts, amps = um.RATINGS[meter]
        return volts * amps
    if meter == "um":  # the model was not known yet
        return max(volts * amps for volts, amps in um.RATINGS.values())
    return float(lines.MAX_W)


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise BadInput(f"meter log {path} does not exist: record one with `edgebench meter log`")
    if not os.access(path, os.R_OK) or path.is_dir():
        raise BadInput(f"meter log {path} is not a readable file: check the path and its permissions")


def _is_sqlite(path: Path) -> bool:
    with open(path, "rb") as stream:
        return stream.read(16) == b"SQLite format 3\x00"


def _inferred_resolution(power: np.ndarray) -> float:
    """The coarsest decimal step all values sit on (0.001 W floor): what a text meter prints."""
    import numpy as np

    if len(power) == 0:
        return 0.0
    sample = power[:_RESOLUTION_SAMPLE]
    for step in (1.0, 0.1, 0.01):
        if np.allclose(np.round(sample / step) * step, sample, rtol=0, atol=step * 1e-3):
            return step
    return 0.001


def _canonical(t: np.ndarray, p: np.ndarray, limit_w: float) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(t, p, bad, duplicates) from one sensor's readings sorted by (t_ns, order written): readings its meter could
    not have sent left out, then of readings sharing a time the first kept (see the module docstring)."""
    import numpy as np

    good = np.isfinite(p) & (p >= 0) & (p <= limit_w)
    bad = len(p) - int(np.count_nonzero(good))
    if bad:
        t, p = t[good], p[good]
    duplicates = 0
    if len(t) > 1:
        first = np.empty(len(t), dtype=bool)
        first[0] = True
        np.not_equal(t[1:], t[:-1], out=first[1:])
        duplicates = len(t) - int(np.count_nonzero(first))
        if duplicates:
            t, p = t[first], p[first]
    return np.ascontiguousarray(t), np.ascontiguousarray(p), bad, duplicates


def _sorted(t: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted by time, readings of one time in the order they were written (a stable sort, skipped when sorted)."""
    import numpy as np

    if len(t) > 1 and bool(np.any(t[1:] < t[:-1])):
        order = np.argsort(t, kind="stable")
        return t[order], p[order]
    return t, p


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans (inclusive) sorted and merged where they overlap or touch."""
    merged: list[list[int]] = []
    for start, end in sorted((int(a), int(b)) for a, b in spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def _restrict(t: np.ndarray, p: np.ndarray, spans: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The readings inside any span and the nearest one before and after each (t sorted, unique)."""
    import numpy as np

    keep = np.zeros(len(t), dtype=bool)
    for start, end in spans:
        lo = int(np.searchsorted(t, start, side="left"))  # t[lo - 1]: the last reading before the span
        hi = int(np.searchsorted(t, end, side="right"))  # t[hi]: the first reading after it
        keep[max(lo - 1, 0) : min(hi + 1, len(t))] = True
    return t[keep], p[keep]


def _gaps_over(gaps: tuple[Gap, ...], spans: list[tuple[int, int]] | None) -> tuple[tuple[int, int], ...]:
    """The (start_ns, end_ns) of the gaps that overlap (or touch) any of the merged `spans`; all when None."""
    import bisect

    if spans is None:
        return tuple((g.start_ns, g.end_ns) for g in gaps)
    ends = [b for _, b in spans]
    kept = []
    for g in gaps:
        i = bisect.bisect_left(ends, g.start_ns)  # the first span ending at or after the gap's start
        if i < len(spans) and spans[i][0] <= g.end_ns:
            kept.append((g.start_ns, g.end_ns))
    return tuple(kept)


@dataclass
class _Rows:
    """One sensor's readings as a reader returns them (canonical), and what was left out of them."""

    t_ns: np.ndarray
    power_w: np.ndarray
    bad: int = 0
    duplicates: int = 0


class _Log:
    """A meter log opened for reading: what it holds (from its metadata), then readings of one sensor."""

    path: Path
    meta: dict[str, str]
    sources: dict[tuple[str, str], int]  # (meter, address) -> readings stored
    gaps: tuple[Gap, ...]

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(sorted({a for _, a in self.sources}))

    @property
    def meters(self) -> tuple[str, ...]:
        return tuple(sorted({m for m, _ in self.sources}))

    def limit_w(self, address: str) -> float:
        """The most power a reading of `address` can be: its meter's limit (the largest, if several). A counter
        log's power is derived (energy between two typed readings over the time between them), not a meter's
        reading: only its energy is checked."""
        if self.meta.get("sampling") == "counter":
            return math.inf
        limits = [power_limit_w(m) for m, a in self.sources if a == address]
        return max(limits) if limits else power_limit_w("")

    def whole(self, address: str) -> _Rows:
        raise NotImplementedError

    def span(self, address: str, start_ns: int, end_ns: int) -> _Rows:
        """Readings with start_ns <= t <= end_ns."""
        rows = self.whole(address)
        lo = int(rows.t_ns.searchsorted(start_ns, side="left"))
        hi = int(rows.t_ns.searchsorted(end_ns, side="right"))
        return _Rows(rows.t_ns[lo:hi], rows.power_w[lo:hi], rows.bad, rows.duplicates)

    def windows(self, address: str, spans: list[tuple[int, int]]) -> _Rows:
        """Readings inside the merged `spans` and the nearest one before and after each."""
        rows = self.whole(address)
        t, p = _restrict(rows.t_ns, rows.power_w, spans)
        return _Rows(t, p, rows.bad, rows.duplicates)

    def first_powers(self, address: str) -> np.ndarray:
        """The first readings by time (to infer a resolution from)."""
        return self.whole(address).power_w[:_RESOLUTION_SAMPLE]

    def close(self) -> None:
        pass


def _connect(path: Path, mode: str = "ro", wait_s: float = 5.0) -> sqlite3.Connection:
    try:
        return sqlite3.connect(sqlite_uri(path, mode), uri=True, timeout=wait_s)
    except sqlite3.Error as exc:
        raise BadInput(f"meter log {path} cannot be opened ({exc})") from None


def _not_numbers(path: Path, what: str) -> BadInput:
    return BadInput(f"meter log {path} holds {what}: give a file written by `meter log`")


# Rows whose time is no int64 (text, a blob, a huge REAL) sort past every time on the index: two probes find them.
# Two ranges, not one OR: SQLite walks the whole index for an OR of two ranges.
_NOT_TIMES = (
    f"SELECT 1 FROM readings WHERE address = ? AND t_ns > {INT64_MAX} "
    f"UNION ALL SELECT 1 FROM readings WHERE address = ? AND t_ns < {INT64_MIN} LIMIT 1"
)


class _SqliteLog(_Log):
    """A SQLite log: windows and spans are range scans on the time index (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = _connect(path)
        self.meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        self.indexed = self._indexed()
        if not self.indexed and self._index_once():
            self.db = _connect(path)
            self.meta = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
            self.indexed = self._indexed()
        self.sources = self._sources()
        try:
            self.gaps = tuple(
                Gap(int(a), int(b), str(r))
                for a, b, r in self.db.execute("SELECT start_ns, end_ns, reason FROM gaps ORDER BY start_ns")
            )
        except (ValueError, TypeError, OverflowError):
            raise _not_numbers(path, "gaps whose start_ns/end_ns are not numbers") from None

    def _indexed(self) -> bool:
        names = {n for (n,) in self.db.execute("SELECT name FROM sqlite_master WHERE name IN ('readings_by_time', 'sources')")}
        return names == {"readings_by_time", "sources"} and "sources_rowid" in self.meta

    def _index_once(self) -> bool:
        """Bring a log written before the time index to schema 2 where it can be written (True when done)."""
        from edgebench.console import note

        folder = self.path.absolute().parent
        if not (os.access(self.path, os.W_OK) and os.access(folder, os.W_OK | os.X_OK)):
            note(f"meter log {self.path} has no time index and cannot be written: reading all of it")
            return False
        note(f"meter log {self.path} was written without a time index: indexing it (once)")
        self.db.close()
        try:
            # A logger's commit holds the lock for milliseconds; a reader indexing the log for a minute: read it
            # whole rather than wait for that one.
            db = _connect(self.path, "rw", wait_s=INDEX_WAIT_S)
            try:
                _upgrade(db)
            finally:
                db.close()
        except sqlite3.OperationalError as exc:  # locked past the timeout, disk full: read it the old way
            note(f"meter log {self.path} could not be indexed ({exc}): reading all of it")
            self.db = _connect(self.path)
            return False
        return True

    def _sources(self) -> dict[tuple[str, str], int]:
        counts: dict[tuple[str, str], int] = {}
        after = 0
        if self.indexed:
            try:
                after = int(self.meta["sources_rowid"])
            except ValueError:
                raise _not_numbers(self.path, "a meta sources_rowid that is not a number") from None
            for meter, address, n, _first, _last in self.db.execute("SELECT * FROM sources"):
                counts[(str(meter), str(address))] = int(n)
        # rows written after the metadata's rowid (another program, an older edgebench): counted here
        for meter, address, n, _first, _last in self.db.execute(_SOURCES_AFTER, (after,)):
            key = (str(meter), str(address))
            counts[key] = counts.get(key, 0) + int(n)
        return counts

    def _fetch(self, sql: str, args: tuple) -> np.ndarray:
        import numpy as np

        try:
            return np.fromiter(self.db.execute(sql, args), dtype=_ROW)
        except (ValueError, TypeError, OverflowError):
            raise _not_numbers(self.path, "readings whose t_ns/power_w are not numbers") from None

    def _check_times(self, address: str) -> None:
        """A reading whose time is not a number belongs to no window: say the log is damaged rather than read
        around it (a whole read would fail on it too)."""
        if self.db.execute(_NOT_TIMES, (address, address)).fetchone() is not None:
            raise _not_numbers(self.path, "readings whose t_ns are not numbers")

    def _limit(self, address: str, lo: int, hi: int) -> _Rows:
        self._check_times(address)
        rows = self._fetch(_RANGE, (address, lo, hi))
        return _Rows(*_canonical(rows["t_ns"], rows["power_w"], self.limit_w(address)))

    def whole(self, address: str) -> _Rows:
        rows = self._fetch(_WHOLE, (address,))
        t, p = _sorted(rows["t_ns"], rows["power_w"])
        return _Rows(*_canonical(t, p, self.limit_w(address)))

    def span(self, address: str, start_ns: int, end_ns: int) -> _Rows:
        if not self.indexed:
            return super().span(address, start_ns, end_ns)
        return self._limit(address, start_ns, end_ns)

    def _edge(self, sql: str, address: str, t_ns: int, limit_w: float) -> int | None:
        row = self.db.execute(sql, (address, t_ns, limit_w)).fetchone()
        if row is None:
            return None
        if not isinstance(row[0], int):
            raise _not_numbers(self.path, "readings whose t_ns are not numbers")
        return row[0]

    def windows(self, address: str, spans: list[tuple[int, int]]) -> _Rows:
        import numpy as np

        if not self.indexed:
            return super().windows(address, spans)
        self._check_times(address)
        limit_w = self.limit_w(address)
        ranges = []
        for start, end in spans:
            before = self._edge(_BEFORE, address, start, limit_w)
            after = self._edge(_AFTER, address, end, limit_w)
            ranges.append((start if before is None else before, end if after is None else after))
        parts = [self._fetch(_RANGE, (address, lo, hi)) for lo, hi in merge_spans(ranges)]
        rows = np.concatenate(parts) if parts else np.empty(0, dtype=_ROW)
        return _Rows(*_canonical(rows["t_ns"], rows["power_w"], limit_w))

    def first_powers(self, address: str) -> np.ndarray:
        if not self.indexed:
            return super().first_powers(address)
        limit_w = self.limit_w(address)
        want = _RESOLUTION_SAMPLE
        while True:  # more rows than wanted when some are left out
            rows = self._fetch(_FIRST, (address, want))
            _t, p, _bad, _dup = _canonical(rows["t_ns"], rows["power_w"], limit_w)
            if len(p) >= _RESOLUTION_SAMPLE or len(rows) < want:
                return p[:_RESOLUTION_SAMPLE]
            want *= 2

    def close(self) -> None:
        self.db.close()


class _CsvLog(_Log):
    """A CSV log: read whole (a text file has no index), each sensor's readings kept as arrays."""

    def __init__(self, path: Path) -> None:
        import numpy as np

        self.path = path
        self.meta = {}
        t_list: list[int] = []
        p_list: list[float] = []
        a_list: list[str] = []
        m_list: list[str] = []
        try:
            with open(path, newline="") as stream:
                reader = csv.reader(stream)
                header = [h.strip().lower() for h in next(reader, [])]
                if "t_ns" not in header or "power_w" not in header:
                    raise BadInput(f"meter log {path}: a CSV log needs t_ns and power_w columns (found {header})")
                it, ip = header.index("t_ns"), header.index("power_w")
                im = header.index("meter") if "meter" in header else None
                ia = header.index("address") if "address" in header else None
                for row in reader:
                    if not row:
                        continue
                    try:
                        t, p = int(row[it]), float(row[ip])
                    except (ValueError, IndexError):
                        raise BadInput(
                            f"meter log {path}, line {reader.line_num}: t_ns/power_w are not numbers ({row[:8]}): "
                            "fix or delete that line"
                        ) from None
                    if not INT64_MIN <= t <= INT64_MAX:
                        raise BadInput(
                            f"meter log {path}, line {reader.line_num}: t_ns {row[it]!r} is not a time in ns: "
                            "fix or delete that line"
                        )
                    t_list.append(t)
                    p_list.append(p)
                    a_list.append(row[ia] if ia is not None and ia < len(row) else "")
                    m_list.append(row[im] if im is not None and im < len(row) else "")
        except UnicodeDecodeError:
            raise BadInput(
                f"meter log {path} is neither SQLite nor CSV text: give a file written by `meter log`"
            ) from None
        except csv.Error as exc:
            raise BadInput(
                f"meter log {path}, line {reader.line_num}: not CSV ({exc}): fix or delete that line"
            ) from None
        self._t = np.array(t_list, dtype=np.int64)
        self._p = np.array(p_list, dtype=np.float64)
        self._a = np.array(a_list, dtype=object)
        self.sources = {}
        for meter, address in zip(m_list, a_list, strict=True):
            self.sources[(meter, address)] = self.sources.get((meter, address), 0) + 1
        self.gaps = tuple(sorted(_read_gaps(gaps_path(path)), key=lambda g: g.start_ns))

    def whole(self, address: str) -> _Rows:
        mine = self._a == address
        t, p = _sorted(self._t[mine], self._p[mine])
        return _Rows(*_canonical(t, p, self.limit_w(address)))


def _read_gaps(side: Path) -> list[Gap]:
    """The gaps side file of a CSV log (none if it does not exist); BadInput naming its bad line."""
    gaps: list[Gap] = []
    if not side.exists():
        return gaps
    line = 1
    try:
        with open(side, newline="") as stream:
            reader = csv.DictReader(stream)
            for row in reader:
                line = reader.line_num
                start, end = int(row["start_ns"]), int(row["end_ns"])
                if not (-INT64 <= start < INT64 and -INT64 <= end < INT64):
                    raise ValueError("beyond int64")
                gaps.append(Gap(start, end, row.get("reason") or ""))
    except (KeyError, ValueError, TypeError, csv.Error, UnicodeDecodeError) as exc:
        raise BadInput(
            f"meter gaps file {side}, line {line}: not start_ns,end_ns,reason numbers ({exc}): fix or delete it"
        ) from None
    return gaps


@contextmanager
def _open_log(path: str | Path) -> Iterator[_Log]:
    """A log opened for reading; SQLite errors become one BadInput line naming the file."""
    path = Path(path)
    _check_readable(path)
    if not _is_sqlite(path):
        yield _CsvLog(path)
        return
    log: _SqliteLog | None = None
    try:
        log = _SqliteLog(path)
        yield log
    except sqlite3.DatabaseError as exc:
        raise BadInput(
            f"meter log {path} is not a meter store ({exc}): give a file written by `meter log`"
        ) from None
    finally:
        if log is not None:
            log.close()


def summarize(path: str | Path) -> StoreSummary:
    """Readings stored, addresses, meters and gaps of a log (from its metadata; a CSV log is read whole)."""
    with _open_log(path) as log:
        return StoreSummary(
            readings=sum(log.sources.values()), addresses=log.addresses, meters=log.meters, gaps=log.gaps
        )


def resolve_address(address: str, addresses: tuple[str, ...] | list[str]) -> str | None:
    """The stored address `address` names: itself, or the one equal to it read as hexadecimal (XBee source
    addresses are stored as 4 hex digits, so "1", "0x1" and "0001" all name "0001"); None when none or several."""
    if address in addresses:
        return address
    try:
        wanted = int(address, 16)
    except ValueError:
        return None
    matches = []
    for stored in addresses:
        try:
            if stored and int(stored, 16) == wanted:
                matches.append(stored)
        except ValueError:
            continue
    return matches[0] if len(matches) == 1 else None


def _sensor(log: _Log, address: str | None) -> str:
    """The stored address to read: `address` as stored ("1" -> "0001"), or the log's only one; BadInput when the
    log holds several and none was chosen, or not the one asked for."""
    addresses = log.addresses
    named = [a for a in addresses if a]  # "" is a reading from a meter without sensor addresses
    listed = ", ".join(a if a else "'' (no address)" for a in addresses)
    if address is None:
        if len(addresses) > 1:
            raise BadInput(
                f"meter log {log.path} holds several sensors ({listed}): choose one with --address "
                f"(e.g. --address {named[0]})"
            )
        return addresses[0] if addresses else ""
    canonical = resolve_address(str(address), addresses)
    if canonical is not None:  # "1" or "0x1" for the stored "0001"
        return canonical
    if not named:
        raise BadInput(
            f"meter log {log.path} has no sensor {address!r}: it records no sensor addresses (one meter), "
            "drop --address"
        )
    raise BadInput(f"meter log {log.path} has no sensor {address!r}: it has {listed}; pass one of them to --address")


def _meta_number(log: _Log, key: str) -> float | None:
    """A number the log's metadata holds (None when absent); BadInput naming it when it is not one."""
    text = log.meta.get(key)
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise BadInput(
            f"meter log {log.path}: its metadata says {key} {_short(text)}, not a number >= 0: "
            f"fix that row of its meta table{' or pass --resolution' if key == 'resolution_w' else ''}"
        )
    return value


def _short(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def _trace(log: _Log, address: str, rows: _Rows, spans: list[tuple[int, int]] | None) -> MeterTrace:
    from edgebench.console import warn

    sampling = log.meta.get("sampling", "continuous")
    if sampling not in SAMPLINGS:
        raise BadInput(
            f"meter log {log.path} was taken with sampling {sampling!r}, which this edgebench does not know "
            f"({', '.join(SAMPLINGS)}): upgrade edgebench"
        )
    meter = ", ".join(m for m in log.meters if m) or "unknown"
    resolution = _meta_number(log, "resolution_w")
    if resolution is None:
        resolution = _resolution_for(meter, log, address)
    if rows.bad:
        warn(
            f"meter log {log.path}: {rows.bad} stored reading{'s' if rows.bad != 1 else ''} of {meter} not finite, "
            f"negative or above its {log.limit_w(address):g} W limit: left out (a damaged or edited log?)"
        )
    try:
        period_s = _meta_number(log, "nominal_period_s")
    except BadInput:  # nothing edgebench computes rests on it: a damaged entry is no reason to refuse the log
        period_s = None
    timing_u_s = _meta_number(log, "timing_u_s") or 0.0  # a smart plug's poll round trip
    energy_wh = _counter_readings(log, address, rows.t_ns) if sampling == "counter" else None
    return MeterTrace(
        t_ns=rows.t_ns,
        power_w=rows.power_w,
        meter=meter,
        resolution_w=resolution,
        gaps=_gaps_over(log.gaps, spans),
        sampling=sampling,
        nominal_period_s=period_s,
        bad_readings=rows.bad,
        duplicate_readings=rows.duplicates,
        energy_wh=energy_wh,
        timing_u_s=timing_u_s,
    )


def _counter_readings(log: _Log, address: str, t_ns: np.ndarray) -> np.ndarray:
    """The cumulative energy (Wh) of each reading at `t_ns` of a "counter" log; BadInput when one lacks it."""
    import numpy as np

    t, e = load_energy(log.path, address=address)
    at = np.searchsorted(t, t_ns)
    if len(t_ns) and (at.max() >= len(t) or not np.array_equal(t[np.minimum(at, len(t) - 1)], t_ns)):
        raise BadInput(f"meter log {log.path} is a counter log but not every reading has its energy_wh")
    return e[at] if len(t_ns) else np.zeros(0)


def _resolution_for(meter: str, log: _Log, address: str) -> float:
    """The meter's own resolution (its decoder says it), else inferred from its first readings."""
    from edgebench.host.meters.base import make_meter

    for prefix, protocol in IDENTITY_PROTOCOL.items():
        if meter.startswith(prefix):
            return float(make_meter(protocol).resolution_w)
    return _inferred_resolution(log.first_powers(address))


def load_trace(
    path: str | Path, start_ns: int | None = None, end_ns: int | None = None, address: str | None = None
) -> MeterTrace:
    """Load a meter log (SQLite or CSV) as a time-sorted `MeterTrace`, optionally one span or one sensor.

    A log holding several sensor addresses (Tweet-a-Watt) needs `address`; missing, unreadable or malformed
    files raise BadInput. Gaps overlapping the span are kept. Without a span the whole log is read: pairing asks
    `load_windows` for what its windows need instead.
    """
    from edgebench.host.meters.manual import is_paper_csv, load_paper_trace

    if is_paper_csv(path):  # readings written down by hand, entered as time,watts (or time,kwh)
        return load_paper_trace(path, start_ns, end_ns)
    with _open_log(path) as log:
        sensor = _sensor(log, address)
        if start_ns is None and end_ns is None:
            return _trace(log, sensor, log.whole(sensor), None)
        lo = INT64_MIN if start_ns is None else max(int(start_ns), INT64_MIN)
        hi = INT64_MAX if end_ns is None else min(int(end_ns), INT64_MAX)
        return _trace(log, sensor, log.span(sensor, lo, hi), [(lo, hi)] if lo <= hi else [])


def load_windows(path: str | Path, spans: Iterable[tuple[int, int]], address: str | None = None) -> MeterTrace:
    """The part of a meter log that windows `spans` ((start_ns, end_ns) on the host clock, inclusive) need: the
    readings inside any of them, the nearest reading before and after each (what its edges are interpolated
    from) and the gaps overlapping them. Pairing this trace gives what pairing the whole log gives; on an indexed
    SQLite log it costs what the windows hold, not what the log holds. BadInput as `load_trace`."""
    from edgebench.host.meters.manual import is_paper_csv

    merged = merge_spans((a, b) for a, b in spans if b >= a)
    if is_paper_csv(path):  # a few dozen typed readings: read them all
        return load_trace(path, address=address)
    with _open_log(path) as log:
        sensor = _sensor(log, address)
        if log.meta.get("sampling", "continuous") != "continuous":  # typed readings or a counter: few, whole
            return _trace(log, sensor, log.whole(sensor), None)
        return _trace(log, sensor, log.windows(sensor, merged), merged)


def load_energy(
    path: str | Path, start_ns: int | None = None, end_ns: int | None = None, address: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(t_ns, energy_wh) of the readings that carry the meter's own energy counter, sorted by time."""
    import numpy as np

    path = Path(path)
    _check_readable(path)
    where, args = ["energy_wh IS NOT NULL"], []
    for clause, value in (("address = ?", address), ("t_ns >= ?", start_ns), ("t_ns <= ?", end_ns)):
        if value is not None:
            where.append(clause)
            args.append(value if clause.startswith("address") else int(value))
    if _is_sqlite(path):
        try:
            db = sqlite3.connect(sqlite_uri(path), uri=True)
            try:
                rows = db.execute(
                    f"SELECT t_ns, energy_wh FROM readings WHERE {' AND '.join(where)} ORDER BY t_ns", args  # noqa: S608
                ).fetchall()
            finally:
                db.close()
        except sqlite3.DatabaseError as exc:
            raise BadInput(f"meter log {path} is not a meter store ({exc})") from None
    else:
        rows = []
        with open(path, newline="", encoding="utf-8", errors="replace") as stream:
            for row in csv.DictReader(stream):
                try:
                    t, e = int(row["t_ns"]), float(row.get("energy_wh") or "nan")
                except (KeyError, ValueError, TypeError):
                    continue
                if not math.isfinite(e) or (address is not None and row.get("address", "") != str(address)):
                    continue
                if (start_ns is None or t >= start_ns) and (end_ns is None or t <= end_ns):
                    rows.append((t, e))
        rows.sort()
    return np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1] for r in rows], dtype=np.float64)


