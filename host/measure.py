"""`edgebench measure`: the main job. Log the wall meter for the whole session, drive the agent through an idle
baseline and every engine's repeated windows, pair each window with the meter trace, and rank the engines by
joules and CO2 per inference.

Order of a session (docs/measure.md has the why of each step):
1. open the meter and start logging it in the background into DIR/meter.sqlite (append-only; it runs until
   the end, so every window lies inside the log);
2. listen until the meter's period is known and compute the shortest window it can measure:
   max(1 s, 10 readings x period x 1.2); refuse a shorter --duration unless --allow-short;
3. start or reach the agent, say hello, sync the clocks (NTP-style, smallest round trip);
4. an idle window (the baseline), then each engine --repeat times; every RunRecord is appended to
   DIR/runs.jsonl the moment it arrives;
5. after each engine: re-sync the clocks (the two syncs give the drift), pair everything measured so far, and
   rewrite DIR/table.csv/json/md, session.json and clock.json, so a crash or Ctrl-C leaves results;
6. at the end, the ranked table on stdout.
An engine that fails to load or crashes (even taking the agent down) is recorded as failed and the sweep goes
on; `--resume` skips engines DIR already holds measured windows of.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from edgebench.console import is_interactive, note, warn
from edgebench.errors import BadInput, EdgebenchError
from edgebench.records import HOST_CLOCK, ClockOffset, RunRecord, append_jsonl, read_run_records

from .cli import grid_options

MIN_WINDOW_FLOOR_S = 1.0  # no window shorter than this, whatever the meter's rate (edge and clock effects)
WINDOW_MARGIN = 1.2  # 20 % over the bare minimum so a late reading does not drop a window below 10 samples
DEFAULT_REPEAT = 3
DEFAULT_WARMUP_S = 1.0  # longer than trtexec's 200 ms: the wall meter also sees the warm-up settle
LISTEN_TIMEOUT_S = 20.0  # how long to wait for the meter's first readings
RUN_TIMEOUT_EXTRA_S = 120.0  # loading an engine and reading metadata, beyond warm-up + window

RUNS_FILE, METER_FILE, SESSION_FILE, CLOCK_FILE = "runs.jsonl", "meter.sqlite", "session.json", "clock.json"


def minimum_window_s(period_s: float, min_samples: int) -> float:
    """The shortest window a meter reading every `period_s` seconds can measure with `min_samples` readings."""
    return max(MIN_WINDOW_FLOOR_S, min_samples * period_s * WINDOW_MARGIN)


def failed_record(engine: str, backend: str, batch: int, message: str, run_id: str, repeat: int) -> RunRecord:
    """A RunRecord for a window that never ran (load failure, crash): host clock, no iterations, the error."""
    now = time.time_ns()
    return RunRecord(
        engine=engine,
        backend=backend,
        clock=HOST_CLOCK,
        window_start_ns=now,
        window_end_ns=now,
        iterations=0,
        batch=batch,
        latencies_ns=(),
        settings={"error": message},
        run_id=run_id,
        repeat=repeat,
    )


def measured_engines(records: Sequence[RunRecord]) -> set[str]:
    """Engines that already have at least one window that ran (what --resume skips)."""
    return {r.engine for r in records if r.kind == "run" and r.iterations > 0 and not r.settings.get("error")}


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _seconds(value: float) -> str:
    value = max(0.0, value)
    minutes, seconds = divmod(int(round(value)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


@dataclass
class Plan:
    """What the session will run, fixed before the first window."""

    engines: list[dict[str, Any]]  # manifest rows from the agent, in order
    duration_s: float
    warmup_s: float
    repeat: int
    idle_s: float
    threads: int | None = None
    skipped: list[str] = field(default_factory=list)  # --resume: already measured
    idle_first: bool = True  # False on --resume when DIR already holds an idle baseline
    idle_every: int = 0  # another idle window after every N engines (0: only the first)

    def idle_after(self, index: int) -> bool:
        """Whether an idle window follows the index-th engine (1-based)."""
        return bool(self.idle_s > 0 and self.idle_every and index % self.idle_every == 0 and index < len(self.engines))

    @property
    def windows(self) -> int:
        idles = int(self.idle_s > 0 and self.idle_first)
        idles += sum(self.idle_after(i) for i in range(1, len(self.engines) + 1))
        return len(self.engines) * self.repeat + idles


class Progress:
    """Current engine, watts now and time left: a live line on a terminal, a line per window otherwise."""

    def __init__(self, logger, plan: Plan) -> None:
        self.logger, self.plan = logger, plan
        self.label = ""
        self.windows_left = plan.windows
        self.window_cost_s = plan.duration_s + plan.warmup_s + 1.0  # refined from measured windows
        self.live = is_interactive()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_len = 0

    def watts(self) -> str:
        reading = self.logger.latest()
        return f"{reading.power_w:.2f} W now" if reading is not None else "no reading yet"

    def line(self) -> str:
        left = self.windows_left * self.window_cost_s
        return f"{self.label} · {self.watts()} · about {_seconds(left)} left"

    def window(self, label: str) -> None:
        self.label = label
        if not self.live:
            note(self.line())

    def done(self, cost_s: float) -> None:
        self.windows_left = max(0, self.windows_left - 1)
        # a running mean of what a window really costs (load, warm-up, metadata, round trips)
        self.window_cost_s = 0.7 * self.window_cost_s + 0.3 * cost_s

    def __enter__(self) -> Progress:
        if self.live:
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            if self.label:
                text = self.line()
                pad = max(0, self._last_len - len(text))
                click.echo("\r" + text + " " * pad, err=True, nl=False)
                self._last_len = len(text)

    def clear(self) -> None:
        if self.live and self._last_len:
            click.echo("\r" + " " * self._last_len + "\r", err=True, nl=False)
            self._last_len = 0

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.clear()


class Measurement:
    """One `edgebench measure` session: the meter logger, the agent client, the output directory."""

    def __init__(self, out: Path, options: dict[str, Any]) -> None:
        self.out = out
        self.o = options
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.logger: Any = None
        self.client: Any = None
        self.spec: Any = None
        self.first_sync: Any = None
        self.last_sync: Any = None
        self.clocks: dict[str, ClockOffset] = {}
        self.grid: Any = None
        self.min_window_s = math.nan
        self.period_s = math.nan
        self.meter_label = ""
        self.hello: dict[str, Any] = {}
        self.warned: dict[str, int] = {}  # engine -> windows with warnings after its first warned one

    @property
    def runs_path(self) -> Path:
        return self.out / RUNS_FILE

    @property
    def meter_path(self) -> Path:
        return self.out / METER_FILE

    # --- set-up -------------------------------------------------------------------------------------------

    def prepare_out(self) -> list[RunRecord]:
        """Create DIR, or check it is one to resume; the records already there (resume)."""
        out, resume = self.out, self.o["resume"]
        if out.exists() and not out.is_dir():
            raise BadInput(f"--out {out} is a file: pass a directory")
        existing = self.runs_path.is_file() and self.runs_path.stat().st_size > 0
        if existing and not resume:
            raise BadInput(f"{out} already holds a measurement: pass --resume to continue it, or another --out")
        out.mkdir(parents=True, exist_ok=True)
        if not existing:
            return []
        records = read_run_records(self.runs_path)
        from .pairing import clock_from_dict

        clock_path = out / CLOCK_FILE
        if clock_path.is_file():
            saved = clock_from_dict(json.loads(clock_path.read_text(encoding="utf-8")))
            if isinstance(saved, ClockOffset):  # one offset for every earlier run
                saved = {r.run_id: saved for r in records}
            self.clocks.update(saved)
        return records

    def start_logger(self) -> None:
        from .logger import MeterLogger

        o = self.o
        self.logger = MeterLogger(
            o["meter"], o["protocol"], self.meter_path, calibration=o["calibration"], baudrate=o["baudrate"]
        )
        self.logger.start()
        note(f"meter: {self.logger.meter or o['protocol']} on {o['meter']}, logging to {self.meter_path}")
        deadline = time.monotonic() + o["meter_timeout"]
        while self.logger.stats.readings < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.logger.stats.readings == 0:
            raise BadInput(
                f"the meter on {o['meter']} sent no reading in {o['meter_timeout']:g} s: is it powered and "
                "plugged in, and is --protocol right? (`edgebench meter probe PORT` shows what it says)"
            )
        self._check_addresses()
        self.period_s = self._period(deadline)
        self.min_window_s = minimum_window_s(self.period_s, o["min_samples"])
        note(
            f"meter: {self.logger.meter}, a reading every {self.period_s:.3g} s; shortest valid window "
            f"{self.min_window_s:.3g} s ({o['min_samples']} readings x period x {WINDOW_MARGIN:g}, at least "
            f"{MIN_WINDOW_FLOOR_S:g} s)"
        )

    def _period(self, deadline: float) -> float:
        """Seconds between readings of the chosen sensor: the median spacing in the stored log (the logger's own
        figure mixes every sensor a receiver hears), once 5 are in or at the deadline."""
        import numpy as np

        from .store import load_trace

        while True:
            t = load_trace(self.meter_path, address=self.o["address"]).t_ns
            if len(t) >= 5 or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        return float(np.median(np.diff(t))) / 1e9 if len(t) >= 2 else self.logger.nominal_period_s

    def _check_addresses(self) -> None:
        """One receiver hearing several Kill-a-Watts needs --address: say so now, not after the first engine."""
        from .store import resolve_address, summarize

        deadline = time.monotonic() + 3.0  # the logger flushes to the store once a second
        while True:
            try:
                summary = summarize(self.meter_path)
            except BadInput:  # not written yet
                summary = None
            if summary is not None and summary.readings:
                break
            if time.monotonic() >= deadline:
                return  # nothing stored yet to check; load_trace checks again at the first table
            time.sleep(0.1)
        addresses = [a for a in summary.addresses if a]
        address = self.o["address"]
        if address is None and len(addresses) > 1:
            raise BadInput(
                f"the meter on {self.o['meter']} hears several sensors ({', '.join(addresses)}): "
                "pass --address with the one the device is plugged into"
            )
        if address is not None and address not in addresses:
            canonical = resolve_address(address, addresses)
            if canonical is not None:
                self.o["address"] = canonical  # as stored: "1" -> "0001"
                return
            raise BadInput(
                f"no sensor {address!r} on {self.o['meter']} (it hears {', '.join(addresses) or 'no address'}): "
                "pass one of those to --address, or drop it"
            )

    def connect(self) -> None:
        from .transport import connect

        o = self.o
        self.client = connect(
            self.spec,
            engines_dir=o["engines_dir"],
            sensor=o["sensor"],
            token=o["token"],
            remote_command=o["agent_command"],
            extra_args=o["agent_args"],
        )
        self.hello = self.client.hello
        sensor = self.hello.get("sensor", {})
        sensor_words = sensor.get("name", "none")
        if sensor.get("estimate"):
            sensor_words += " (an estimate)"
        note(
            f"agent: {self.spec.label}, {self.hello.get('hostname')}, protocol {self.hello.get('protocol')}, "
            f"edgebench {self.hello.get('edgebench')}, {self.hello.get('engines')} engines, on-board power: "
            f"{sensor_words}"
        )

    def sync(self) -> None:
        """One clock sync; the session's offset from its first and latest syncs."""
        from .clocksync import combine, sync

        sample = sync(lambda: int(self.client.call("clock")["t_ns"]), rounds=self.o["sync_rounds"])
        if self.first_sync is None:
            self.first_sync = sample
            self.clocks[self.run_id] = combine(sample)
            shift = sample.offset_ns / 1e6
            note(f"clock: agent is {-shift:+.3f} ms from host (+-{sample.uncertainty_ns / 1e6:.3f} ms)")
        else:
            self.last_sync = sample
            self.clocks[self.run_id] = combine(self.first_sync, sample)
        clock = self.clocks[self.run_id]
        shortest = min(self.o["duration_s"] or self.min_window_s, self.o["idle_s"] or math.inf)
        if clock.uncertainty_ns / 1e9 > 0.001 * shortest:
            warn(
                f"clock uncertainty +-{clock.uncertainty_ns / 1e6:.3g} ms is {clock.uncertainty_ns / 1e9 / shortest:.2%} "
                f"of a {shortest:.3g} s window: use a wired link or longer windows (over 0.5 % a window is invalid)"
            )

    def plan(self, done: set[str]) -> Plan:
        o = self.o
        rows = self.client.call("engines")["engines"]
        known = {row["name"]: row for row in rows}
        if o["engine_names"]:
            unknown = [n for n in o["engine_names"] if n not in known]
            if unknown:
                shown = ", ".join(list(known)[:8]) + (" ..." if len(known) > 8 else "")
                raise BadInput(f"the agent has no engine {', '.join(unknown)}: it has {shown}")
            rows = [known[n] for n in dict.fromkeys(o["engine_names"])]
        if not rows:
            raise BadInput("the agent's manifest lists no engines: run `edgebench build-engines` on the device")
        duration = o["duration_s"] if o["duration_s"] is not None else max(self.min_window_s, 3.0)
        idle = o["idle_s"] if o["idle_s"] is not None else max(self.min_window_s, 10.0)
        for what, seconds in (("--duration", duration), ("--idle", idle)):
            if 0 < seconds < self.min_window_s:
                message = (
                    f"{what} {seconds:g} s is shorter than the {self.min_window_s:.3g} s this meter needs "
                    f"({o['min_samples']} readings at its {self.period_s:.3g} s period, +20 %)"
                )
                if not o["allow_short"]:
                    raise BadInput(f"{message}: pass {what} {math.ceil(self.min_window_s * 10) / 10:g} or more, "
                                   "or --allow-short to measure anyway (short windows are marked invalid)")
                warn(message + ": going on (--allow-short); windows with too few readings are marked invalid")
        skipped = [r["name"] for r in rows if r["name"] in done]
        if skipped:
            note(f"resume: {_count(len(skipped), 'engine')} already measured, skipped")
        return Plan(
            engines=[r for r in rows if r["name"] not in done],
            duration_s=duration,
            warmup_s=o["warmup_s"],
            repeat=o["repeat"],
            idle_s=idle,
            threads=o["threads"],
            skipped=skipped,
            idle_every=o["idle_every"],
        )

    # --- windows ------------------------------------------------------------------------------------------

    def _record(self, result: dict[str, Any]) -> RunRecord:
        from edgebench.records import run_record_from_dict

        record = run_record_from_dict(result["record"])
        append_jsonl(self.runs_path, [record])
        if record.warnings:
            # the first window's warnings in full; later windows of the engine only counted (runs.jsonl has all)
            if record.engine in self.warned:
                self.warned[record.engine] += 1
            else:
                self.warned[record.engine] = 0
                for message in record.warnings:
                    warn(f"{record.engine}: {message}")
        return record

    def warnings_summary(self, engine: str) -> None:
        more = self.warned.get(engine, 0)
        if more:
            note(f"  ({more} more window{'s' if more != 1 else ''} of {engine} had warnings: see {self.runs_path})")

    def idle(self, plan: Plan, progress: Progress, repeat: int = 0) -> None:
        progress.window(f"idle baseline {plan.idle_s:g} s")
        t0 = time.monotonic()
        result = self.client.call(
            "idle", duration_s=plan.idle_s, run_id=self.run_id, repeat=repeat, timeout_s=plan.idle_s + 60
        )
        self._record(result)
        progress.done(time.monotonic() - t0)

    def engine(self, row: dict[str, Any], index: int, plan: Plan, progress: Progress) -> None:
        """Every repeat of one engine; a failure is recorded and ends this engine only."""
        from edgebench import protocol as wire

        from .transport import AgentLost

        name, batch = row["name"], int(row.get("spec", {}).get("batch", 1))
        args: dict[str, Any] = {"engine": name, "duration_s": plan.duration_s, "warmup_s": plan.warmup_s}
        if plan.threads:
            args["threads"] = plan.threads
        timeout = plan.warmup_s + plan.duration_s * 2 + RUN_TIMEOUT_EXTRA_S
        for repeat in range(plan.repeat):
            progress.window(f"[{index}/{len(plan.engines)}] {name} window {repeat + 1}/{plan.repeat}")
            t0 = time.monotonic()
            try:
                self._record(self.client.call("run", run_id=self.run_id, repeat=repeat, timeout_s=timeout, **args))
            except wire.EngineFailed as exc:
                self._failed(row, batch, str(exc), repeat, progress, plan)
                return
            except AgentLost as exc:
                self._failed(row, batch, f"the agent died running it: {exc}", repeat, progress, plan)
                self.reconnect()
                return
            progress.done(time.monotonic() - t0)

    def _failed(self, row, batch: int, message: str, repeat: int, progress: Progress, plan: Plan) -> None:
        progress.clear()
        warn(f"{row['name']} failed: {message}; recorded as failed, going on")
        append_jsonl(
            self.runs_path, [failed_record(row["name"], row.get("backend", ""), batch, message, self.run_id, repeat)]
        )
        progress.windows_left = max(0, progress.windows_left - (plan.repeat - repeat))

    def reconnect(self) -> None:
        """Start (or reach) the agent again after it died; the clock offset stays the device's."""
        try:
            self.client.close()
        except EdgebenchError:
            pass
        note(f"agent: reconnecting to {self.spec.label}")
        self.connect()

    # --- results ------------------------------------------------------------------------------------------

    def wait_for_meter(self, after_ns: int) -> None:
        """Wait until the stored log holds a reading after `after_ns` (host clock): the last window's right edge
        needs one to be interpolated, and the logger flushes to disk once a second."""
        from .store import load_trace

        period = self.period_s if math.isfinite(self.period_s) else 1.0
        deadline = time.monotonic() + max(3 * period, 1.0) + 2.0
        while time.monotonic() < deadline:
            try:
                if len(load_trace(self.meter_path, start_ns=after_ns, address=self.o["address"]).t_ns):
                    return
            except BadInput:
                pass
            time.sleep(0.1)

    def session(self):
        from .pairing import Session

        o = self.o
        return Session(
            grid=self.grid,
            meter=self.meter_label,
            resolution_w=o["resolution_w"],
            pue=o["pue"],
            min_samples=o["min_samples"],
            clock=dict(self.clocks),
            extra={
                "agent": self.spec.label,
                "agent_hostname": self.hello.get("hostname", ""),
                "agent_sensor": self.hello.get("sensor", {}).get("name", "none"),
                "meter_url": o["meter"],
                "meter_protocol": getattr(self.logger, "protocol", o["protocol"]),
                "meter_calibration": (
                    json.loads(Path(o["calibration"]).read_text(encoding="utf-8")) if o["calibration"] else None
                ),
                "meter_address": o["address"] or "",
                "meter_period_s": self.period_s,
                "min_window_s": self.min_window_s,
                "runs": sorted({*self.clocks}),
            },
        )

    def pair(self):
        from .pairing import pair, write_session
        from .store import load_trace

        write_session(self.out, self.session())
        records = read_run_records(self.runs_path)
        trace = load_trace(self.meter_path, address=self.o["address"])
        if self.o["resolution_w"] is not None:
            trace = dataclasses.replace(trace, resolution_w=self.o["resolution_w"])
        if self.meter_label:
            trace = dataclasses.replace(trace, meter=self.meter_label)
        return pair(records, trace, dict(self.clocks), grid=self.grid, min_samples=self.o["min_samples"],
                    pue=self.o["pue"])

    def export(self) -> Any:
        from .table import write_exports

        result = self.pair()
        write_exports(result, self.out, self.o["sort"])
        return result

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.close()
            except EdgebenchError:
                pass
        if self.logger is not None:
            self.logger.stop()


def run_measurement(m: Measurement) -> Any:
    """The whole session (see the module docstring); returns the final PairingResult."""
    o = m.o
    earlier = m.prepare_out()
    m.start_logger()
    m.meter_label = o["meter_label"] or m.logger.meter
    m.connect()
    m.sync()
    from .pairing import write_session

    write_session(m.out, m.session())  # the clock of every window from here on, before the first one
    plan = m.plan(measured_engines(earlier))
    have_idle = any(r.kind == "idle" and r.iterations == 0 and not r.settings.get("error") for r in earlier)
    if have_idle and plan.idle_s > 0:
        note("resume: keeping the idle baseline already measured")
        plan.idle_first = False
    idle_words = ""
    if plan.idle_s > 0:
        idle_words = f", idle baseline {plan.idle_s:g} s" + (
            f" (again after every {plan.idle_every} engines)" if plan.idle_every else ""
        )
    note(
        f"plan: {_count(len(plan.engines), 'engine')} x {_count(plan.repeat, 'window')} of {plan.duration_s:g} s "
        f"(warm-up {plan.warmup_s:g} s){idle_words} -> {m.out}"
    )
    idles = sum(1 for r in earlier if r.kind == "idle")
    with Progress(m.logger, plan) as progress:
        if plan.idle_s > 0 and plan.idle_first:
            m.idle(plan, progress, repeat=idles)
            idles += 1
        for index, row in enumerate(plan.engines, 1):
            m.engine(row, index, plan, progress)
            if plan.idle_after(index):
                m.idle(plan, progress, repeat=idles)
                idles += 1
            m.sync()
            m.wait_for_meter(time.time_ns() - 1)
            result = m.export()
            progress.clear()
            row_result = next((e for e in result.engines if e.engine == row["name"]), None)
            if row_result is not None:
                note(_engine_line(row_result))
            m.warnings_summary(row["name"])
    if not plan.engines:
        m.wait_for_meter(time.time_ns() - 1)
    return m.export()


def _engine_line(e) -> str:
    from .table import plus_minus

    if not e.ok:
        return f"  {e.engine}: {e.status}"
    net = plus_minus(e.net_j_per_inference, e.net_j_per_inference_u)
    return (
        f"  {e.engine}: {plus_minus(e.gross_j_per_inference, e.gross_j_per_inference_u)} J/inference at the wall"
        f"{f', net {net} J' if net != '-' else ''}, {e.wall_power_w:.3g} W, {e.valid_windows}/{e.windows} windows valid"
    )


@click.command()
@click.option("--meter", required=True, metavar="PORT",
              help="Wall meter port: /dev/ttyUSB0, a pty, socket://HOST:PORT (see `edgebench meter probe`).")
@click.option("--protocol", default="auto", show_default=True,
              help="Meter protocol: auto, tweetawatt, wattsup, um, lines.")
@click.option("--address", help="Tweet-a-Watt sensor address when one receiver hears several.")
@click.option("--calibration", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="Tweet-a-Watt calibration JSON.")
@click.option("--baudrate", type=int, help="Override the meter protocol's baud rate.")
@click.option("--meter-timeout", type=click.FloatRange(min=0, min_open=True), default=LISTEN_TIMEOUT_S,
              show_default=True, help="Seconds to wait for the meter's first readings.")
@click.option("--meter-label", default="", help="Name the meter in the results (default: what it reports).")
@click.option("--agent", "agent_spec", default="local", show_default=True,
              help="local, ssh://user@host[:port][/path/to/engines] or tcp://host:port.")
@click.option("--token", envvar="EDGEBENCH_AGENT_TOKEN", help="TCP agent token (or $EDGEBENCH_AGENT_TOKEN).")
@click.option("--agent-command", default="edgebench", show_default=True,
              help="How to run edgebench on an ssh agent (e.g. ~/venv/bin/edgebench).")
@click.option("--engines", "engines_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("engines-out"), show_default=True,
              help="Engines directory of a local agent (ssh: put the path in the URL).")
@click.option("--engine", "engine_names", multiple=True, metavar="NAME", help="Only this engine (repeatable).")
@click.option("--duration", "duration_s", type=click.FloatRange(min=0, min_open=True),
              help="Seconds per measured window (default: the meter's minimum, at least 3 s).")
@click.option("--warmup", "warmup_s", type=click.FloatRange(min=0), default=DEFAULT_WARMUP_S, show_default=True,
              help="Warm-up seconds before each window (not measured).")
@click.option("--idle", "idle_s", type=click.FloatRange(min=0),
              help="Idle baseline seconds (default: the meter's minimum, at least 10 s; 0 skips net figures).")
@click.option("--idle-every", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="Measure the idle baseline again after every N engines (drift, warming up); 0: only first.")
@click.option("--repeat", type=click.IntRange(min=1), default=DEFAULT_REPEAT, show_default=True,
              help="Windows per engine.")
@click.option("--threads", type=click.IntRange(min=1), help="Intra-op threads on the agent.")
@click.option("--sensor", default="auto", show_default=True,
              help="On-board power source of a local or ssh agent: auto, none, or a name.")
@grid_options
@click.option("--pue", type=float, default=1.0, show_default=True, help="Facility overhead multiplier for CO2.")
@click.option("--resolution", "resolution_w", type=float, help="Meter resolution in W (default: the meter's).")
@click.option("--min-samples", type=click.IntRange(min=2), default=10, show_default=True,
              help="Meter readings a window needs to be valid.")
@click.option("--allow-short", is_flag=True, help="Measure windows shorter than the meter's minimum anyway.")
@click.option("--sort", metavar="COLUMN", help="Sort column (net_j, gross_j, latency, co2...; -COL descending).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("measure-out"), show_default=True,
              help="Directory for runs.jsonl, meter.sqlite, session.json, clock.json and table.csv/json/md.")
@click.option("--resume", is_flag=True, help="Continue a measurement in --out: skip engines already measured.")
@click.option("--sync-rounds", type=click.IntRange(min=1, max=1000), default=16, hidden=True)
@click.option("--agent-arg", "agent_args", multiple=True, hidden=True, help="Extra argument for a local agent.")
def measure(**options: Any) -> None:
    """Measure every engine's wall energy through the agent and rank them by joules and CO2 per inference.

    \b
    edgebench measure --meter /dev/ttyUSB0 --engines engines-out
    edgebench measure --meter /dev/ttyUSB0 --agent ssh://nvidia@jetson/home/nvidia/engines-out --grid RFCW
    edgebench measure --meter socket://bridge:2000 --agent tcp://jetson:8765 --token "$TOKEN" --resume
    """
    from .carbon import resolve_grid
    from .table import render
    from .transport import parse_agent

    o = dict(options)
    o["agent_args"] = list(o["agent_args"])
    if o["pue"] < 1.0:
        raise BadInput(f"--pue {o['pue']} is below 1: pass 1 for a device on a desk, more for a facility")
    m = Measurement(o["out"], o)
    m.spec = parse_agent(o["agent_spec"])
    if m.spec.kind == "local" and not (Path(o["engines_dir"]) / "manifest.json").is_file():
        raise BadInput(
            f"no engines in {o['engines_dir']}: run `edgebench build-engines --out {o['engines_dir']}` first"
        )
    if m.spec.kind == "tcp" and o["sensor"] != "auto":
        warn("--sensor applies to agents this command starts (local, ssh): a TCP agent samples its own --sensor")
    m.grid = resolve_grid(grid=o["grid"], egrid=o["egrid"], country=o["country"], intensity=o["intensity"])
    try:
        result = run_measurement(m)
    except KeyboardInterrupt:
        m.close()
        note(f"interrupted: every finished window is in {m.out}; `edgebench measure ... --resume` continues it")
        try:
            m.export()
        except EdgebenchError:
            pass
        raise SystemExit(130) from None
    finally:
        m.close()
    if result.idle is None:
        warn("no valid idle window: net figures need an idle baseline (--idle S)")
    bad = [w for w in result.windows if not w.valid]
    if bad:
        warn(f"{len(bad)} of {len(result.windows)} windows are invalid or failed; the status column says why")
    click.echo("\n".join(render(result, "table", o["sort"])))
    note(f"results: {m.out}/table.csv, table.json, table.md (re-render with `edgebench report {m.out}`)")
