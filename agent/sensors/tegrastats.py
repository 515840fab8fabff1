"""tegrastats: the parser for every L4T generation, a live sensor on a subprocess, and a reader for `--logfile`s.

Line formats (onboard-power.md, tests/data/tegrastats/): r32 rails are bare `NAME cur/avg` mW; r35+ carry units
`NAME 5079mW/5079mW`; a third `/max` value may follow. r35+ lines start with `MM-DD-YYYY HH:MM:SS`. CPU cores
read `X%@MHz` or `off`; GR3D_FREQ reads `X%@MHz`, `X%`, or `X%@[f0,f1]`. Temperatures `NAME@NN.NC` in either
case; `-256C` means the sensor is off (dropped); `PMIC@100C` is a fixed placeholder (dropped).
The total is the input rail (VDD_IN, POM_5V_IN) when the board has one, else the sum of the connected rails
(AGX Xavier / AGX Orin), and every line says which rule gave it.
"""

from __future__ import annotations

import datetime as dt
import errno
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.errors import BadInput, DeviceError
from edgebench.records import PowerSample

from .base import SensorUnavailable, now_ns, split_command, total_mw, total_rule_for

_TIME = re.compile(r"^\s*(\d{2})-(\d{2})-(\d{4}) (\d{2}):(\d{2}):(\d{2})\s+")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_CORE = re.compile(r"^(\d+(?:\.\d+)?)%(?:@(\d+))?$")
_GPU = re.compile(r"\bGR3D_FREQ (\d+(?:\.\d+)?)%(?:@(\[[\d,]*\]|\d+))?")
_TEMP = re.compile(r"(?<![\w%])([A-Za-z][\w]*)@(-?\d+(?:\.\d+)?)C(?=\s|$)")
# A rail: an upper-case name, then cur/avg[/max] mW with or without the unit, then a space or the line end.
_RAIL = re.compile(r"(?<!\S)([A-Z][A-Z0-9_]*) (\d+(?:\.\d+)?)(?:mW)?/(\d+(?:\.\d+)?)(?:mW)?(?:/(\d+(?:\.\d+)?)(?:mW)?)?(?=\s|$)")

OFF_TEMP_C = -256.0
PLACEHOLDER_TEMPS = {("PMIC", 100.0)}


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
    stamp = None
    m = _TIME.match(text)
    if m:
        mo, d, y, hh, mm, ss = (int(g) for g in m.groups())
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
                loads.append(float(cm.group(1)))
                freqs.append(int(cm.group(2)) if cm.group(2) else None)
    gpu = _GPU.search(text)
    gpu_freq: tuple[int, ...] = ()
    if gpu and gpu.group(2):
        gpu_freq = tuple(int(f) for f in gpu.group(2).strip("[]").split(",") if f)
    temps: dict[str, float] = {}
    for name, value in _TEMP.findall(text):
        v = float(value)
        if v == OFF_TEMP_C or (name.upper(), v) in PLACEHOLDER_TEMPS:
            continue
        temps[name] = v
    cur: dict[str, float] = {}
    avg: dict[str, float] = {}
    mx: dict[str, float] = {}
    for name, c, a, x in _RAIL.findall(text):
        if name == "NC":  # an unconnected INA3221 channel (AGX boards): not a rail
            continue
        cur[name], avg[name] = float(c), float(a)
        if x:
            mx[name] = float(x)
    if not cur and not ram and not cpu:
        raise BadInput(f"not a tegrastats line: {line.strip()[:60]!r}")
    rule = total_rule_for(tuple(cur)) if cur else "none"
    total = total_mw(cur, rule) if cur else float("nan")
    return TegrastatsLine(
        time=stamp,
        ram_used_mb=int(ram.group(1)) if ram else None,
        ram_total_mb=int(ram.group(2)) if ram else None,
        cpu_load_pct=tuple(loads),
        cpu_freq_mhz=tuple(freqs),
        gpu_load_pct=float(gpu.group(1)) if gpu else None,
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
    """A parsed `tegrastats --logfile` file: its lines, their samples and how their times were found."""

    path: Path
    lines: tuple[TegrastatsLine, ...]
    samples: tuple[PowerSample, ...]
    time_source: str  # in words: "timestamps in the lines" or "line index x 100 ms from ..."
    total_rule: str


def read_log(path: str | Path, interval_ms: float | None = None, start_ns: int = 0) -> TegrastatsLog:
    """Parse a recorded tegrastats log into PowerSamples.

    Times come from the lines' own timestamps (local time, 1 s resolution) when every line has a distinct one;
    otherwise from `start_ns` (default the first line's timestamp, else 0) + index x `interval_ms`, which must
    then be given. Comment lines (`#`) and blank lines are skipped; any other unparsable line is BadInput.
    """
    p = Path(path)
    if not p.is_file():
        raise BadInput(f"no such tegrastats log: {p}: pass the file `tegrastats --logfile` wrote")
    if interval_ms is not None and interval_ms <= 0:
        raise BadInput(f"--interval-ms must be > 0 (got {interval_ms}): pass the tegrastats --interval used")
    lines: list[TegrastatsLine] = []
    with p.open(encoding="utf-8", errors="replace") as stream:
        for lineno, raw in enumerate(stream, 1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            try:
                lines.append(parse_line(raw))
            except BadInput as exc:
                raise BadInput(f"{p}:{lineno}: {exc}") from None
    if not lines:
        raise BadInput(f"{p}: no tegrastats lines in it")
    stamps = [ln.time for ln in lines]
    distinct = all(s is not None for s in stamps) and len(set(stamps)) == len(stamps)
    if distinct and interval_ms is None:
        t = [int(s.timestamp() * 1_000_000_000) for s in stamps if s is not None]  # naive = local time
        source = "timestamps in the lines (local time, 1 s resolution)"
    else:
        if interval_ms is None:
            why = "lines have no timestamps" if stamps[0] is None else "timestamps repeat (1 s resolution)"
            raise BadInput(f"{p}: {why}: pass --interval-ms (the tegrastats --interval the log was taken with)")
        if start_ns == 0 and stamps[0] is not None:
            start_ns = int(stamps[0].timestamp() * 1_000_000_000)
        step = round(interval_ms * 1_000_000)
        t = [start_ns + i * step for i in range(len(lines))]
        origin = "the first line's timestamp" if stamps[0] is not None else "the first line (t = 0)"
        source = f"line index x {interval_ms:g} ms from {origin}"
    samples = tuple(to_sample(ln, tn) for ln, tn in zip(lines, t, strict=True) if ln.rails_cur_mw)
    if not samples:
        raise BadInput(f"{p}: no power rails in the lines: run tegrastats as root (sudo) to see the rails")
    rules = {ln.total_rule for ln in lines if ln.rails_cur_mw}
    return TegrastatsLog(p, tuple(lines), samples, source, "/".join(sorted(rules)))


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
                return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self._stderr, text=True, bufsize=1)
            except OSError as exc:
                if exc.errno != errno.ETXTBSY or attempt == 19:
                    raise
                time.sleep(0.01)
        raise AssertionError("unreachable")

    def _pump(self) -> None:
        assert self._proc.stdout is not None
        for raw in self._proc.stdout:
            t_ns = now_ns()
            try:
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
        self._stderr.seek(0)
        err = self._stderr.read().decode("utf-8", "replace").strip()[-300:]
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
