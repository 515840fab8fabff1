"""tegrastats: the parser for every L4T generation, a live sensor on a subprocess, and a reader for `--logfile`s.

Line formats (onboard-power.md, tests/data/tegrastats/): r32 rails are bare `NAME cur/avg` mW; r35+ carry units
`NAME 5079mW/5079mW`; a third `/max` value may follow. r35+ lines start with `MM-DD-YYYY HH:MM:SS`. CPU cores
read `X%@MHz` or `off`; GR3D_FREQ reads `X%@MHz`, `X%`, or `X%@[f0,f1]`. Temperatures `NAME@NN.NC` in either
case; `-256C` means the sensor is off (dropped); `PMIC@100C` is a fixed placeholder (dropped).
The total is the input rail (VDD_IN, POM_5V_IN) when the board has one, else the sum of the connected rails
(AGX Xavier / AGX Orin), and every line says which rule gave it.

Lines come from files and subprocesses we do not control, so the parser is linear in the line's length (no
pattern rescans the rest of the line from each of its starts), refuses lines longer than MAX_LINE_CHARS, and
refuses any number that no tegrastats prints (too many digits, a year outside YEARS, a rail above MAX_RAIL_MW,
a load above 100 %): such a line is BadInput, which a log reader counts and skips.
"""

from __future__ import annotations

import datetime as dt
import errno
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from edgebench.errors import BadInput, DeviceError
from edgebench.records import PowerSample

from .base import MAX_RAIL_MW, SensorUnavailable, now_ns, split_command, total_mw, total_rule_for

_TIME = re.compile(r"^\s*(\d{2})-(\d{2})-(\d{4}) (\d{2}):(\d{2}):(\d{2})\s+")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
# `[` is excluded inside the brackets so that a scan from one `CPU [` stops at the next: linear, not quadratic.
_CPU = re.compile(r"\bCPU \[([^\[\]]*)\]")
_CORE = re.compile(r"^(\d+(?:\.\d+)?)%(?:@(\d+))?$")
_GPU = re.compile(r"\bGR3D_FREQ (\d+(?:\.\d+)?)%(?:@(\[[\d,]*\]|\d+))?")
_TEMP = re.compile(r"(?<![\w%])([A-Za-z][\w]*)@(-?\d+(?:\.\d+)?)C(?=\s|$)")
# A rail: an upper-case name, then cur/avg[/max] mW with or without the unit, then a space or the line end.
_RAIL = re.compile(r"(?<!\S)([A-Z][A-Z0-9_]*) (\d+(?:\.\d+)?)(?:mW)?/(\d+(?:\.\d+)?)(?:mW)?(?:/(\d+(?:\.\d+)?)(?:mW)?)?(?=\s|$)")

OFF_TEMP_C = -256.0
PLACEHOLDER_TEMPS = {("PMIC", 100.0)}

# Real lines are under 1,000 characters (12 cores, 20 temperatures, 8 rails); anything this long is not tegrastats.
MAX_LINE_CHARS = 16_384
# A number field longer than this is not a reading (float("9" * 400) is inf, int() refuses 4,300+ digits).
MAX_NUMBER_CHARS = 24
# Timestamps: a board whose clock was never set prints 1970; 2199-12-31 is 7.3e18 ns, inside int64's 9.2e18.
YEARS = (1970, 2199)
MAX_RAM_MB = 1 << 24  # 16 TiB
MAX_FREQ_MHZ = 100_000
# Boards have 3 to 8 rails (AGX Orin: 4 and an NC); a line or a whole log naming more is not one board's output,
# and every distinct rail becomes a column and an integral of `rails --from-log`.
MAX_RAILS = 64
TEMP_RANGE_C = (-273.15, 1000.0)  # below absolute zero or above 1000 C is no sensor reading
# `--interval-ms` of a recorded log: tegrastats takes whole ms; an hour between lines is already far-fetched.
MAX_INTERVAL_MS = 3_600_000.0
_INT64_MAX = (1 << 63) - 1


def _number(text: str, what: str, high: float, low: float = 0.0) -> float:
    """`text` (digits, maybe a point and a sign) as a float within [low, high]; BadInput otherwise."""
    if len(text) > MAX_NUMBER_CHARS:
        raise BadInput(f"{what} has {len(text)} digits ({text[:12]}...): no tegrastats value is that long")
    value = float(text)
    if not low <= value <= high:
        raise BadInput(f"{what} {text} is outside {low:g}..{high:g}: not a tegrastats reading")
    return value


@dataclass(frozen=True)
class TegrastatsLine:
    """One parsed tegrastats line; rails in mW, the total and which rail or rule gave it."""

    time: dt.datetime | None  # local wall time printed by r35+, None on r32
    ram_used_mb: int | None
    ram_total_mb: int | None
    cpu_load_pct: tuple[float | None, ...]  # None for a core that is `off`
    cpu_freq_mhz: tuple[int | None, ...]
    gpu_load_pct: float | None
    gpu_freq_mhz: tuple[int, ...]  # one per GPC when bracketed, empty when not printed
    temps_c: Mapping[str, float]
    rails_cur_mw: Mapping[str, float]
    rails_avg_mw: Mapping[str, float]
    rails_max_mw: Mapping[str, float] = field(default_factory=dict)
    total_rule: str = ""
    total_mw: float = float("nan")


def parse_line(line: str) -> TegrastatsLine:
    """Parse one tegrastats line; BadInput when it has no rails and no RAM/CPU fields."""
    text = line.strip()
    if len(text) > MAX_LINE_CHARS:
        raise BadInput(f"line of {len(text)} characters, longer than {MAX_LINE_CHARS}: not a tegrastats line")
    stamp = None
    m = _TIME.match(text)
    if m:
        mo, d, y, hh, mm, ss = (int(g) for g in m.groups())
        if not YEARS[0] <= y <= YEARS[1]:
            raise BadInput(
                f"tegrastats line has a timestamp in year {y} ({m.group(0).strip()!r}), outside "
                f"{YEARS[0]}..{YEARS[1]}: set the board's clock"
            )
        try:
            stamp = dt.datetime(y, mo, d, hh, mm, ss)
        except ValueError:
            raise BadInput(f"tegrastats line has an impossible date {m.group(0).strip()!r}") from None
        text = text[m.end() :]
    ram = _RAM.search(text)
    loads: list[float | None] = []
    freqs: list[int | None] = []
    cpu = _CPU.search(text)
    if cpu:
        for core in cpu.group(1).split(","):
            core = core.strip()
            cm = _CORE.match(core)
            if core == "off" or not cm:
                loads.append(None)
                freqs.append(None)
            else:
                loads.append(_number(cm.group(1), "CPU load %", 100.0))
                freqs.append(int(_number(cm.group(2), "CPU MHz", MAX_FREQ_MHZ)) if cm.group(2) else None)
    gpu = _GPU.search(text)
    gpu_freq: tuple[int, ...] = ()
    if gpu and gpu.group(2):
        gpu_freq = tuple(int(_number(f, "GPU MHz", MAX_FREQ_MHZ)) for f in gpu.group(2).strip("[]").split(",") if f)
    temps: dict[str, float] = {}
    for name, value in _TEMP.findall(text):
        v = _number(value, f"temperature {name}", TEMP_RANGE_C[1], TEMP_RANGE_C[0])
        if v == OFF_TEMP_C or (name.upper(), v) in PLACEHOLDER_TEMPS:
            continue
        temps[name] = v
    cur: dict[str, float] = {}
    avg: dict[str, float] = {}
    mx: dict[str, float] = {}
    for name, c, a, x in _RAIL.findall(text):
        if name == "NC":  # an unconnected INA3221 channel (AGX boards): not a rail
            continue
        cur[name] = _number(c, f"rail {name} mW", MAX_RAIL_MW)
        avg[name] = _number(a, f"rail {name} average mW", MAX_RAIL_MW)
        if x:
            mx[name] = _number(x, f"rail {name} max mW", MAX_RAIL_MW)
    if len(cur) > MAX_RAILS:
        raise BadInput(f"line names {len(cur)} rails, more than {MAX_RAILS}: not one board's tegrastats line")
    if not cur and not ram and not cpu:
        raise BadInput(f"not a tegrastats line: {line.strip()[:60]!r}")
    rule = total_rule_for(tuple(cur)) if cur else "none"
    total = total_mw(cur, rule) if cur else float("nan")
    return TegrastatsLine(
        time=stamp,
        ram_used_mb=int(_number(ram.group(1), "RAM MB", MAX_RAM_MB)) if ram else None,
        ram_total_mb=int(_number(ram.group(2), "RAM MB", MAX_RAM_MB)) if ram else None,
        cpu_load_pct=tuple(loads),
        cpu_freq_mhz=tuple(freqs),
        gpu_load_pct=_number(gpu.group(1), "GPU load %", 100.0) if gpu else None,
        gpu_freq_mhz=gpu_freq,
        temps_c=temps,
        rails_cur_mw=cur,
        rails_avg_mw=avg,
        rails_max_mw=mx,
        total_rule=rule,
        total_mw=total,
    )


def to_sample(line: TegrastatsLine, t_ns: int) -> PowerSample:
    """The PowerSample of a line (current values only: the averages are never energy)."""
    return PowerSample(t_ns=t_ns, rails_mw=dict(line.rails_cur_mw), total_mw=line.total_mw)


# --- recorded logs ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TegrastatsLog:
    """A parsed `tegrastats --logfile` file: its lines, their samples and how their times were found.

    `bad_lines` lines could not be read (not tegrastats, too long, an absurd number or year) and were skipped;
    `first_bad_line` (1-based, 0 when none) and `first_bad` (why) point at the first of them.
    """

    path: Path
    lines: tuple[TegrastatsLine, ...]
    samples: tuple[PowerSample, ...]
    time_source: str  # in words: "timestamps in the lines" or "line index x 100 ms from ..."
    total_rule: str
    bad_lines: int = 0
    first_bad_line: int = 0
    first_bad: str = ""


def _bounded_lines(stream: IO[str]) -> Iterator[tuple[int, str | None]]:
    """(line number, text) for each line of `stream`; text is None for a line longer than MAX_LINE_CHARS.

    A line is never held whole past the limit: the rest of an over-long one is read in chunks and dropped, so a
    gigabyte without a newline costs time linear in its size and no memory.
    """
    lineno = 0
    while True:
        raw = stream.readline(MAX_LINE_CHARS + 2)  # the line, its newline, and one more to see it is too long
        if not raw:
            return
        lineno += 1
        if len(raw.rstrip("\r\n")) <= MAX_LINE_CHARS:
            yield lineno, raw
            continue
        rest = raw
        while rest and not rest.endswith("\n"):
            rest = stream.readline(1 << 16)
        yield lineno, None


def read_log(path: str | Path, interval_ms: float | None = None, start_ns: int = 0) -> TegrastatsLog:
    """Parse a recorded tegrastats log into PowerSamples.

    Times come from the lines' own timestamps (local time, 1 s resolution) when every line has one and they
    strictly increase; otherwise from `start_ns` (default the first line's timestamp, else 0) + index x
    `interval_ms`, which must then be given (0 < interval_ms <= MAX_INTERVAL_MS). Comment lines (`#`) and blank
    lines are skipped; any other unreadable line is counted in `bad_lines` and skipped. BadInput when no line is
    left, none has rails, or the times would not fit in int64 nanoseconds.
    """
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"no such tegrastats log: {p}: pass the file `tegrastats --logfile` wrote")
    if interval_ms is not None and not 0 < interval_ms <= MAX_INTERVAL_MS:  # NaN fails both comparisons
        raise BadInput(
            f"--interval-ms must be > 0 and at most {MAX_INTERVAL_MS:g} (got {interval_ms}): "
            "pass the tegrastats --interval the log was taken with"
        )
    if not -_INT64_MAX <= start_ns <= _INT64_MAX:
        raise BadInput(f"start time {start_ns} ns does not fit in int64: pass nanoseconds since the epoch")
    lines: list[TegrastatsLine] = []
    linenos: list[int] = []
    rail_names: set[str] = set()
    bad, first_bad_line, first_bad = 0, 0, ""
    try:
        with p.open(encoding="utf-8", errors="replace") as stream:
            for lineno, raw in _bounded_lines(stream):
                if raw is not None and (not raw.strip() or raw.lstrip().startswith("#")):
                    continue
                try:
                    if raw is None:
                        raise BadInput(f"longer than {MAX_LINE_CHARS} characters: not a tegrastats line")
                    line = parse_line(raw)
                    new = line.rails_cur_mw.keys() - rail_names
                    if new and len(rail_names) + len(new) > MAX_RAILS:
                        raise BadInput(f"brings the log to {len(rail_names) + len(new)} rail names, more than "
                                       f"{MAX_RAILS}: not one board's log")
                    rail_names.update(new)
                    lines.append(line)
                    linenos.append(lineno)
                except BadInput as exc:
                    bad += 1
                    if not first_bad_line:
                        first_bad_line, first_bad = lineno, str(exc)
    except OSError as exc:
        raise BadInput(f"cannot read tegrastats log {p}: {exc.strerror or exc}: check its permissions") from None
    if not lines:
        why = f" ({bad} bad line{'s' if bad != 1 else ''}, the first at line {first_bad_line}: {first_bad})" if bad else ""
        raise BadInput(f"{p}: no tegrastats lines in it{why}")
    stamps = [ln.time for ln in lines]
    known = [s for s in stamps if s is not None]
    timed = len(known) == len(stamps)
    back = next((i for i in range(1, len(known)) if timed and known[i] <= known[i - 1]), None)
    if timed and back is None and interval_ms is None:
        t = [int(s.timestamp() * 1_000_000_000) for s in known]  # naive = local time
        source = "timestamps in the lines (local time, 1 s resolution)"
    else:
        if interval_ms is None:
            if stamps[0] is None:
                why = "lines have no timestamps"
            elif not timed or back is None:  # (timed with no step back took the branch above)
                why = "some lines have no timestamp"
            elif known[back] == known[back - 1]:
                why = "timestamps repeat (1 s resolution)"
            else:
                why = f"timestamps go backwards at line {linenos[back]} (the clock was set?)"
            raise BadInput(f"{p}: {why}: pass --interval-ms (the tegrastats --interval the log was taken with)")
        if start_ns == 0 and stamps[0] is not None:
            start_ns = int(stamps[0].timestamp() * 1_000_000_000)
        step = round(interval_ms * 1_000_000)
        if abs(start_ns) + (len(lines) - 1) * step > _INT64_MAX:
            raise BadInput(
                f"{p}: {len(lines)} lines x {interval_ms:g} ms run past the year 2262 (int64 ns): "
                "check --interval-ms"
            )
        t = [start_ns + i * step for i in range(len(lines))]
        origin = "the first line's timestamp" if stamps[0] is not None else "the first line (t = 0)"
        source = f"line index x {interval_ms:g} ms from {origin}"
    samples = tuple(to_sample(ln, tn) for ln, tn in zip(lines, t, strict=True) if ln.rails_cur_mw)
    if not samples:
        raise BadInput(f"{p}: no power rails in the lines: run tegrastats as root (sudo) to see the rails")
    rules = {ln.total_rule for ln in lines if ln.rails_cur_mw}
    return TegrastatsLog(p, tuple(lines), samples, source, "/".join(sorted(rules)), bad, first_bad_line, first_bad)


# --- live sensor ---------------------------------------------------------------------------------------------------


class TegrastatsSensor:
    """Runs `tegrastats --interval N` and hands out each new line as one PowerSample.

    `cmd` is a command line split like a shell would (`shlex.split`, no shell runs it): "tegrastats",
    "/usr/bin/tegrastats" or "sudo -n tegrastats" (the rails are only printed to root). `--interval N` is appended.
    `read()` waits for the next line (so a Sampler polling it is paced by tegrastats itself) and stamps it with
    the agent realtime at arrival.
    """

    name = "tegrastats"
    estimate = False

    def __init__(self, cmd: str = "tegrastats", interval_ms: int = 100, first_line_timeout_s: float = 5.0) -> None:
        self.cmd = cmd
        self.interval_ms = interval_ms
        self._cond = threading.Condition()
        self._latest: PowerSample | None = None
        self._seq = 0
        self._read_seq = 0
        self._error: str | None = None
        argv = split_command(cmd, "tegrastats")
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = self._spawn([*argv, "--interval", str(interval_ms)])
        except FileNotFoundError:
            self._stderr.close()
            raise SensorUnavailable(
                f"`{argv[0]}` not found on PATH: not a Jetson, or L4T tools not installed"
            ) from None
        except PermissionError:
            self._stderr.close()
            raise SensorUnavailable(f"`{argv[0]}` is not executable by this user", "permission") from None
        except OSError as exc:  # e.g. ENOEXEC: not a program at all
            self._stderr.close()
            raise SensorUnavailable(f"`{argv[0]}` cannot be run ({exc.strerror or exc}): check the command",
                                    "failed") from None
        self._thread = threading.Thread(target=self._pump, name="tegrastats-reader", daemon=True)
        self._thread.start()
        first = self._wait(first_line_timeout_s)
        if first is None:
            exited = self._proc.poll() is not None
            self.close()
            when = "exited before printing a rail line" if exited else f"printed no rail line within {first_line_timeout_s:g} s"
            raise SensorUnavailable(f"`{cmd}` {when}: {self._error}", "failed")
        self.rails = tuple(first.rails_mw)
        self.total_rule = total_rule_for(self.rails)

    def _spawn(self, argv: list[str]) -> subprocess.Popen[str]:
        # ETXTBSY: the executable was written a moment ago and another thread's fork still holds it open for
        # writing until that child execs; it clears within milliseconds, so retry briefly.
        for attempt in range(20):
            try:
                # stderr goes to a file, not a pipe nobody drains while it runs (a full pipe would stall it)
                # undecodable bytes become U+FFFD (a bad line), not a UnicodeDecodeError that kills the reader
                return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1,
                                        encoding="utf-8", errors="replace")
            except OSError as exc:
                if exc.errno != errno.ETXTBSY or attempt == 19:
                    raise
                time.sleep(0.01)
        raise AssertionError("unreachable")

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        for _, raw in _bounded_lines(self._proc.stdout):
            t_ns = now_ns()
            try:
                if raw is None:
                    raise BadInput(f"printed a line longer than {MAX_LINE_CHARS} characters: not tegrastats?")
                line = parse_line(raw)
            except BadInput as exc:
                with self._cond:
                    self._error = str(exc)
                continue
            if not line.rails_cur_mw:
                with self._cond:
                    self._error = "lines carry no power rails: run as root (sudo) to see them"
                continue
            with self._cond:
                self._latest = to_sample(line, t_ns)
                self._seq += 1
                self._cond.notify_all()
        self._stderr.seek(0, 2)
        self._stderr.seek(max(0, self._stderr.tell() - 4096))  # only the end of what it said matters
        err = " ".join(self._stderr.read().decode("utf-8", "replace").split())[-300:]
        with self._cond:
            self._error = self._error or f"exited with {self._proc.wait()}{': ' + err if err else ''}"
            self._cond.notify_all()

    def _wait(self, timeout_s: float) -> PowerSample | None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._seq == self._read_seq:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return None
                self._cond.wait(left)
            self._read_seq = self._seq
            return self._latest

    def read(self) -> PowerSample:
        """The next line's sample (waits up to 5 intervals + 2 s for it)."""
        sample = self._wait(5 * self.interval_ms / 1000 + 2.0)
        if sample is None:
            raise DeviceError(f"tegrastats stopped printing ({self._error or 'no new line'}): is it still running?")
        return sample

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(timeout=2)  # the reader ends at EOF; it reads the stderr file last
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        if not thread or not thread.is_alive():
            self._stderr.close()


def open_sensor(cmd: str = "tegrastats", interval_ms: int = 100) -> TegrastatsSensor:
    """Start `cmd --interval interval_ms` and wait for its first line with rails."""
    return TegrastatsSensor(cmd, interval_ms)
