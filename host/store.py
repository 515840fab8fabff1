"""The meter log: an append-only store the logger writes and pairing reads back as a `MeterTrace`.

SQLite (any suffix but .csv) in WAL mode with synchronous=NORMAL: readings are buffered and committed in one
transaction at least every second, so a killed logger loses at most the last second, and a reader (`meter show`,
`pair`) can open the file while the logger writes. `.csv` is accepted too (columns t_ns, power_w, voltage_v,
current_a, power_factor, energy_wh, meter, address; flushed each second) with its gaps in `<name>.gaps.csv`.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgebench.errors import BadInput
from edgebench.records import MeterReading, MeterTrace

if TYPE_CHECKING:
    import numpy as np

COLUMNS = ("t_ns", "power_w", "voltage_v", "current_a", "power_factor", "energy_wh", "meter", "address")
COMMIT_INTERVAL_S = 1.0
SCHEMA_VERSION = "1"
# Resolution by meter identity prefix, for CSV logs that carry no metadata (lines: inferred from the decimals).
KNOWN_RESOLUTION_W = {"tweetawatt": 340.0 / 2 / 15.5 / 17, "wattsup": 0.1, "UM": 0.001}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS readings (
    t_ns INTEGER NOT NULL, power_w REAL NOT NULL, voltage_v REAL, current_a REAL, power_factor REAL,
    energy_wh REAL, meter TEXT NOT NULL, address TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS gaps (start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


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
    """Appends readings and gaps; commits at least every `COMMIT_INTERVAL_S` (call `flush_if_due` when idle)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pending: list[tuple] = []
        self._pending_gaps: list[tuple[int, int, str]] = []
        self._last_commit = time.monotonic()
        self.count = 0
        self._meta: dict[str, str] = {}

    def add(self, reading: MeterReading) -> None:
        """Queue one reading; commits if the last commit is a second old."""
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
        """Commit everything queued."""
        self._write()
        self._pending.clear()
        self._pending_gaps.clear()
        self._last_commit = time.monotonic()

    def _write(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release the file."""
        self.flush()

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
        with self._db:
            if self._pending:
                self._db.executemany("INSERT INTO readings VALUES (?,?,?,?,?,?,?,?)", self._pending)
            if self._pending_gaps:
                self._db.executemany("INSERT INTO gaps VALUES (?,?,?)", self._pending_gaps)
            if self._meta:
                self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?,?)", list(self._meta.items()))
                self._meta = {}

    def close(self) -> None:
        self.flush()
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
    for prefix, res in KNOWN_RESOLUTION_W.items():
        if meter.startswith(prefix):
            return res
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
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
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
    finally:
        db.close()
    # Two typed passes: float64 would round ns epochs to ~256 ns, so t_ns goes straight to int64.
    t = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    p = np.fromiter((r[1] for r in rows), dtype=np.float64, count=len(rows))
    res = meta.get("resolution_w")
    return t, p, meters, addresses, gaps, (float(res) if res else None)


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
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                try:
                    t, p = int(row[it]), float(row[ip])
                except (ValueError, IndexError):
                    raise BadInput(
                        f"meter log {path}, line {line}: t_ns/power_w are not numbers ({row})"
                    ) from None
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
    gaps: list[Gap] = []
    side = gaps_path(path)
    if side.exists():
        with open(side, newline="") as stream:
            for row in csv.DictReader(stream):
                gaps.append(Gap(int(row["start_ns"]), int(row["end_ns"]), row.get("reason", "")))
    t = np.array(t_list, dtype=np.int64)
    p = np.array(p_list, dtype=np.float64)
    return t, p, tuple(sorted(meters)), tuple(sorted(addresses)), tuple(gaps), None


def _read(path: str | Path, start_ns=None, end_ns=None, address=None):
    path = Path(path)
    _check_readable(path)
    if _is_sqlite(path):
        return _read_sqlite(path, start_ns, end_ns, address)
    return _read_csv(path, start_ns, end_ns, address)


def summarize(path: str | Path) -> StoreSummary:
    """Counts, addresses, meters and gaps in a log (reads every row of a CSV)."""
    t, _p, meters, addresses, gaps, _res = _read(path)
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

    t, p, meters, addresses, gaps, res = _read(path, start_ns, end_ns, address)
    if address is not None and str(address) not in addresses:
        canonical = resolve_address(str(address), addresses)
        if canonical is not None:  # "1" or "0x1" for the stored "0001"
            address = canonical
            t, p, meters, addresses, gaps, res = _read(path, start_ns, end_ns, address)
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
        raise BadInput(f"meter log {path} has no sensor {address!r}: it has {listed}; pass one of them to --address")
    order = np.argsort(t, kind="stable")
    t, p = t[order], p[order]
    meter = ", ".join(m for m in meters if m) or "unknown"
    lo = start_ns if start_ns is not None else -(2**62)
    hi = end_ns if end_ns is not None else 2**62
    kept = tuple((g.start_ns, g.end_ns) for g in gaps if g.end_ns >= lo and g.start_ns <= hi)
    return MeterTrace(
        t_ns=t,
        power_w=p,
        meter=meter,
        resolution_w=res if res is not None else _resolution_for(meter, p),
        gaps=kept,
    )
