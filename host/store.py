"""The meter log: an append-only store the logger writes and pairing reads back as a `MeterTrace`.

SQLite (any suffix but .csv) in WAL mode with synchronous=NORMAL: readings are buffered and committed in one
transaction at least every second, so a killed logger loses at most the last second, and a reader (`meter show`,
`pair`) can open the file while the logger writes. `.csv` is accepted too (columns t_ns, power_w, voltage_v,
current_a, power_factor, energy_wh, meter, address; flushed each second) with its gaps in `<name>.gaps.csv`.
"""

from __future__ import annotations

import csv
import math
import os
import sqlite3
import time
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
SCHEMA_VERSION = "1"
# Meter identity prefix -> protocol, for logs that carry no resolution (lines: inferred from the decimals).
IDENTITY_PROTOCOL = {"tweetawatt": "tweetawatt", "wattsup": "wattsup", "UM": "um"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    t_ns INTEGER NOT NULL, power_w REAL NOT NULL, voltage_v REAL, current_a REAL, power_factor REAL,
    energy_wh REAL, meter TEXT NOT NULL, address TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS gaps (start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


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

    def add(self, reading: MeterReading) -> None:
        """Queue one reading (or drop and count one it cannot hold); commits if the last commit is a second old."""
        if not storable(reading):
            self.dropped += 1
            return
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
        """Flush and release the file."""
        self.flush()
        self._raise_unwritten()

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
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        db.commit()
    finally:
        db.close()  # the last connection checkpoints and removes the -wal/-shm files
    os.replace(tmp, path)


class SqliteWriter(StoreWriter):
    """The SQLite store (WAL, synchronous=NORMAL, batched inserts)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            if not path.exists():
                _create_sqlite(path)
            self._db = sqlite3.connect(str(path), check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
            self._db.commit()
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
            if self._pending_gaps:
                self._db.executemany("INSERT INTO gaps VALUES (?,?,?)", self._pending_gaps)
            if self._meta:
                self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?,?)", list(self._meta.items()))
        self._meta = {}

    def close(self) -> None:
        self.flush()
        try:
            self._raise_unwritten()
        finally:
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

    def close(self) -> None:
        self.flush()
        try:
            self._raise_unwritten()
        finally:
            self._file.close()


def open_store(path: str | Path) -> StoreWriter:
    """A writer for a meter log: CSV when the name ends in .csv, SQLite otherwise (created if missing)."""
    path = Path(path)
    if path.parent and not path.parent.is_dir():
        raise BadInput(f"cannot write meter log {path}: folder {path.parent} does not exist")
    return CsvWriter(path) if path.suffix.lower() == ".csv" else SqliteWriter(path)


# --- reading ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreSummary:
    """What is in a log, for `meter show` and for choosing an address."""

    readings: int
    addresses: tuple[str, ...]
    meters: tuple[str, ...]
    gaps: tuple[Gap, ...]


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise BadInput(f"meter log {path} does not exist: record one with `edgebench meter log`")
    if not os.access(path, os.R_OK) or path.is_dir():
        raise BadInput(f"meter log {path} is not a readable file: check the path and its permissions")


def _is_sqlite(path: Path) -> bool:
    with open(path, "rb") as stream:
        return stream.read(16) == b"SQLite format 3\x00"


def _resolution_for(meter: str, power: np.ndarray) -> float:
    """The meter's own resolution (its decoder says it), else inferred from the values."""
    from edgebench.host.meters.base import make_meter

    for prefix, protocol in IDENTITY_PROTOCOL.items():
        if meter.startswith(prefix):
            return float(make_meter(protocol).resolution_w)
    return _inferred_resolution(power)


def _inferred_resolution(power: np.ndarray) -> float:
    """The coarsest decimal step all values sit on (0.001 W floor): what a text meter prints."""
    import numpy as np

    if len(power) == 0:
        return 0.0
    sample = power[:10_000]
    for step in (1.0, 0.1, 0.01):
        if np.allclose(np.round(sample / step) * step, sample, rtol=0, atol=step * 1e-3):
            return step
    return 0.001


def _read_sqlite(path: Path, start_ns, end_ns, address):
    import numpy as np

    try:
        db = sqlite3.connect(sqlite_uri(path), uri=True)
    except sqlite3.Error as exc:
        raise BadInput(f"meter log {path} cannot be opened ({exc})") from None
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        addresses = tuple(r[0] for r in db.execute("SELECT DISTINCT address FROM readings ORDER BY address"))
        meters = tuple(r[0] for r in db.execute("SELECT DISTINCT meter FROM readings ORDER BY meter"))
        where, args = [], []
        if address is not None:
            where.append("address = ?")
            args.append(str(address))
        if start_ns is not None:
            where.append("t_ns >= ?")
            args.append(int(start_ns))
        if end_ns is not None:
            where.append("t_ns <= ?")
            args.append(int(end_ns))
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        rows = db.execute(f"SELECT t_ns, power_w FROM readings{clause}", args).fetchall()  # noqa: S608
        gaps = tuple(
            Gap(int(a), int(b), str(r)) for a, b, r in db.execute("SELECT * FROM gaps ORDER BY start_ns")
        )
    except sqlite3.DatabaseError as exc:
        raise BadInput(
            f"meter log {path} is not a meter store ({exc}): give a file written by `meter log`"
        ) from None
    except (ValueError, TypeError, OverflowError):
        raise BadInput(
            f"meter log {path} holds gaps whose start_ns/end_ns are not numbers: give a file written by `meter log`"
        ) from None
    finally:
        db.close()
    # Two typed passes: float64 would round ns epochs to ~256 ns, so t_ns goes straight to int64.
    try:
        t = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        p = np.fromiter((r[1] for r in rows), dtype=np.float64, count=len(rows))
    except (ValueError, TypeError, OverflowError):
        raise BadInput(
            f"meter log {path} holds readings whose t_ns/power_w are not numbers: give a file written by `meter log`"
        ) from None
    if not (np.isfinite(p) & (p >= 0)).all():
        raise BadInput(
            f"meter log {path} holds a non-finite or negative power_w: give a file written by `meter log`"
        )
    res = meta.get("resolution_w")
    return t, p, meters, addresses, gaps, (float(res) if res else None), meta.get("sampling", "continuous")


def _read_csv(path: Path, start_ns, end_ns, address):
    import numpy as np

    t_list: list[int] = []
    p_list: list[float] = []
    addresses: set[str] = set()
    meters: set[str] = set()
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
                if not -INT64 <= t < INT64 or not math.isfinite(p) or p < 0:
                    raise BadInput(
                        f"meter log {path}, line {reader.line_num}: t_ns {row[it]!r} / power_w {row[ip]!r} is not a "
                        "time in ns and a finite power >= 0: fix or delete that line"
                    )
                a = row[ia] if ia is not None and ia < len(row) else ""
                addresses.add(a)
                if im is not None and im < len(row):
                    meters.add(row[im])
                if address is not None and a != str(address):
                    continue
                if (start_ns is not None and t < start_ns) or (end_ns is not None and t > end_ns):
                    continue
                t_list.append(t)
                p_list.append(p)
    except UnicodeDecodeError:
        raise BadInput(
            f"meter log {path} is neither SQLite nor CSV text: give a file written by `meter log`"
        ) from None
    except csv.Error as exc:
        raise BadInput(
            f"meter log {path}, line {reader.line_num}: not CSV ({exc}): fix or delete that line"
        ) from None
    gaps = _read_gaps(gaps_path(path))
    t = np.array(t_list, dtype=np.int64)
    p = np.array(p_list, dtype=np.float64)
    return t, p, tuple(sorted(meters)), tuple(sorted(addresses)), tuple(gaps), None, "continuous"


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


def _read(path: str | Path, start_ns=None, end_ns=None, address=None):
    path = Path(path)
    _check_readable(path)
    if _is_sqlite(path):
        return _read_sqlite(path, start_ns, end_ns, address)
    return _read_csv(path, start_ns, end_ns, address)


def summarize(path: str | Path) -> StoreSummary:
    """Counts, addresses, meters and gaps in a log (reads every row of a CSV)."""
    t, _p, meters, addresses, gaps, _res, _sampling = _read(path)
    return StoreSummary(readings=len(t), addresses=addresses, meters=meters, gaps=gaps)


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


def load_trace(
    path: str | Path, start_ns: int | None = None, end_ns: int | None = None, address: str | None = None
) -> MeterTrace:
    """Load a meter log (SQLite or CSV) as a time-sorted `MeterTrace`, optionally one span or one sensor.

    A log holding several sensor addresses (Tweet-a-Watt) needs `address`; missing, unreadable or malformed
    files raise BadInput. Gaps overlapping the span are kept.
    """
    import numpy as np

    from edgebench.host.meters.manual import is_paper_csv, load_paper_trace

    if is_paper_csv(path):  # readings written down by hand, entered as time,watts (or time,kwh)
        return load_paper_trace(path, start_ns, end_ns)
    t, p, meters, addresses, gaps, res, sampling = _read(path, start_ns, end_ns, address)
    if address is not None and str(address) not in addresses:
        canonical = resolve_address(str(address), addresses)
        if canonical is not None:  # "1" or "0x1" for the stored "0001"
            address = canonical
            t, p, meters, addresses, gaps, res, sampling = _read(path, start_ns, end_ns, address)
    named = [a for a in addresses if a]  # "" is a reading from a meter without sensor addresses
    listed = ", ".join(a if a else "'' (no address)" for a in addresses)
    if address is None and len(addresses) > 1:
        raise BadInput(
            f"meter log {path} holds several sensors ({listed}): choose one with --address "
            f"(e.g. --address {named[0]})"
        )
    if address is not None and str(address) not in addresses:
        if not named:
            raise BadInput(
                f"meter log {path} has no sensor {address!r}: it records no sensor addresses (one meter), "
                "drop --address"
            )
        raise BadInput(
            f"meter log {path} has no sensor {address!r}: it has {listed}; pass one of them to --address"
        )
    if sampling not in SAMPLINGS:
        raise BadInput(
            f"meter log {path} was taken with sampling {sampling!r}, which this edgebench does not know "
            f"({', '.join(SAMPLINGS)}): upgrade edgebench"
        )
    order = np.argsort(t, kind="stable")
    t, p = t[order], p[order]
    meter = ", ".join(m for m in meters if m) or "unknown"
    lo = start_ns if start_ns is not None else -(2**62)
    hi = end_ns if end_ns is not None else 2**62
    kept = tuple((g.start_ns, g.end_ns) for g in gaps if g.end_ns >= lo and g.start_ns <= hi)
    trace = MeterTrace(
        t_ns=t,
        power_w=p,
        meter=meter,
        resolution_w=res if res is not None else _resolution_for(meter, p),
        gaps=kept,
        sampling=sampling,
    )
    return _with_meter_extras(Path(path), trace, start_ns, end_ns, address)


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
    t = np.array([r[0] for r in rows], dtype=np.int64)
    e = np.array([r[1] for r in rows], dtype=np.float64)
    return t, e


def _with_meter_extras(path: Path, trace: MeterTrace, start_ns, end_ns, address) -> MeterTrace:
    """The counter readings of a "counter" log and a smart plug's timing uncertainty (kept in the meta)."""
    import dataclasses

    import numpy as np

    changes: dict[str, object] = {}
    if trace.sampling == "counter":
        t, e = load_energy(path, start_ns, end_ns, address)
        if len(t) != len(trace.t_ns) or not np.array_equal(t, trace.t_ns):
            raise BadInput(f"meter log {path} is a counter log but not every reading has its energy_wh")
        changes["energy_wh"] = e
    if _is_sqlite(path):
        db = sqlite3.connect(sqlite_uri(path), uri=True)
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'timing_u_s'").fetchone()
        except sqlite3.DatabaseError:
            row = None
        finally:
            db.close()
        try:
            timing = float(row[0]) if row else 0.0
        except ValueError:
            timing = math.nan
        if not (math.isfinite(timing) and timing >= 0):
            raise BadInput(f"meter log {path}: its timing_u_s {row[0]!r} is not a number of seconds >= 0")
        changes["timing_u_s"] = timing
    return dataclasses.replace(trace, **changes) if changes else trace
