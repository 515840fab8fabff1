"""`edgebench run --meter PORT -- CMD ...`: any command measured at the wall, the way `measure` measures an
engine (an idle baseline, then the command's window, gross and net energy with uncertainty, CO2); and
`edgebench train-estimate`: lab 9's training footprint projected from a short measured run.

`run` is `Monitor` (host/monitor.py) around a subprocess. OUT is a measure directory (meter.sqlite, runs.jsonl,
session.json: `edgebench report OUT` and `--html` work on it) plus OUT/result.json, the window's result (which
`train-estimate --from-run OUT` reads). The command's exit status becomes edgebench's, as with `time`.

The command runs in its own session and process group, so that edgebench can stop all of it: Ctrl-C, SIGTERM
(`kill`, `timeout`, systemd) and SIGHUP (a dropped ssh connection) are passed on to the command's group; the
window then ends when the command does (SIGKILL after GRACE_S, or at a second signal), is measured and written
with the signal noted, and edgebench exits 128 + the signal's number.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from edgebench.console import note, warn
from edgebench.errors import BadInput
from edgebench.files import read_json, write_atomic
from edgebench.options import MAX_POWER_W, non_negative

from .carbon import GridFactor
from .meters.options import (
    address_option,
    meter_access_options,
    meter_option,
    meter_options_from,
    meter_timeout_option,
    protocol_option,
)
from .options import (
    emissions_csv_option,
    grid_options,
    idle_option,
    meter_resolution_option,
    min_samples_option,
    pue_option,
)

if TYPE_CHECKING:
    from .monitor import Monitor
    from .pairing import WindowResult

RESULT_JSON = "result.json"
GRACE_S = 10.0  # after passing a signal on, how long the command may take to end before SIGKILL
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
MAX_ITERATIONS = 10**15  # iteration counts above this are typos (and overflow the arithmetic in floats)


class _Stopped(Exception):
    """A stop signal arrived while edgebench waited for the command."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class _StopSignals:
    """SIGINT, SIGTERM and SIGHUP caught while a command runs: each is recorded; while edgebench waits for the
    command it also interrupts the wait. A signal the caller ignores (nohup, a background job) stays ignored;
    off the main thread (a library caller) nothing is installed."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.waiting = False
        self._old: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)
        if self.waiting:
            raise _Stopped(signum)

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _signal_group(child: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(child.pid, sig)  # the command runs in its own group: its own children get it too
    except (ProcessLookupError, PermissionError):
        pass  # already gone


def _wait(child: subprocess.Popen, signals: _StopSignals) -> int:
    """The command's exit status; a stop signal is passed on to its group, SIGKILL follows after GRACE_S or at a
    second signal."""
    deadline: float | None = None
    if signals.received:  # one came between the start of the command and this wait
        _signal_group(child, signals.received[0])
        deadline = time.monotonic() + GRACE_S
    while True:
        signals.waiting = True
        try:
            if deadline is None:
                return child.wait()
            return child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except _Stopped as stop:
            if deadline is None:
                _signal_group(child, stop.signum)
                deadline = time.monotonic() + GRACE_S
            else:
                _signal_group(child, signal.SIGKILL)
        except subprocess.TimeoutExpired:
            warn(f"the command did not end within {GRACE_S:g} s of the signal: killing it")
            _signal_group(child, signal.SIGKILL)
            deadline = None
        finally:
            signals.waiting = False


def run_command(
    monitor: Monitor, argv: list[str], iterations: int = 1, name: str = "command", signals: _StopSignals | None = None
) -> tuple[int, WindowResult, int | None]:
    """Run `argv` inside a window of a started Monitor: (exit status, the window's WindowResult, the signal that
    stopped it or None). See the module docstring for what a signal does. `signals`: stop signals the caller
    already catches (over the whole measurement); else they are caught while the command runs."""
    monitor.begin_window(name)
    with nullcontext(signals) if signals is not None else _StopSignals() as caught:
        try:
            child = subprocess.Popen(argv, start_new_session=True)
        except FileNotFoundError:
            raise BadInput(f"no such command: {argv[0]!r}: give the program after `--` (e.g. -- python train.py)") from None
        except PermissionError:
            raise BadInput(f"{argv[0]!r} is not executable: check its permissions, or run it through its interpreter") from None
        except OSError as exc:
            if exc.errno == errno.ENOEXEC:
                raise BadInput(
                    f"{argv[0]!r} is not a program the system can start (a script without a #! line?): add one, or "
                    f"run it through its interpreter (-- bash {argv[0]}, -- python {argv[0]})"
                ) from None
            raise BadInput(f"cannot start {argv[0]!r} ({exc.strerror}): check the command after `--`") from None
        status = _wait(child, caught)
        stopped = caught.received[0] if caught.received else None
    words = ""
    if stopped is not None:
        words = f"stopped by {signal.Signals(stopped).name}: the window ends where the command did"
        warn(f"{words}; it is measured")
    return status, monitor.end_window(name, iterations=iterations, warning=words), stopped


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@meter_option()
@protocol_option
@meter_access_options
@address_option
@meter_timeout_option
@idle_option(" before the command")
@click.option("--idle-power", "idle_power_w", type=non_negative(max=MAX_POWER_W),
              help="Known idle power in W instead of measuring it (no uncertainty is added for it).")
@click.option("--iterations", type=click.IntRange(min=1, max=MAX_ITERATIONS), default=1, show_default=True,
              help="Iterations (steps, inferences) the command runs: adds J per iteration.")
@click.option("--name", default="command", show_default=True, help="Name of the window in the results.")
@grid_options
@pue_option()
@meter_resolution_option
@min_samples_option
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("run-out"), show_default=True,
              help="Measure directory (meter.sqlite, runs.jsonl, session.json: `edgebench report` reads it) and "
                   "result.json; must not hold a measurement yet.")
@emissions_csv_option("the window's result")
@click.option("--codecarbon", is_flag=True,
              help="Also run CodeCarbon's offline tracker over the window and show its estimate (edgebench[codecarbon]).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    meter: str,
    protocol: str,
    address: str | None,
    meter_timeout_s: float,
    idle_s: float | None,
    idle_power_w: float | None,
    iterations: int,
    name: str,
    grid: str | None,
    egrid: str | None,
    country: str | None,
    intensity: str | None,
    pue: float,
    resolution_w: float | None,
    min_samples: int,
    out: Path,
    emissions_csv: Path | None,
    codecarbon: bool,
    as_json: bool,
    command: tuple[str, ...],
    **access: Any,
) -> None:
    """Measure any COMMAND at the wall: an idle baseline, then the command's window.

    \b
    edgebench run --meter /dev/ttyUSB0 -- python train.py --iters 1000
    edgebench run --meter /dev/ttyUSB0 --iterations 1000 --grid RFCW -- ./infer.sh
    edgebench train-estimate --from-run run-out --total-iterations 170000

    Keep the machine otherwise idle during the baseline. The exit status is the command's.
    """
    from .carbon import resolve_grid
    from .monitor import Monitor, below_idle
    from .pairing import NET_BELOW_IDLE

    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise BadInput("no command to measure: put it after `--`, e.g. edgebench run --meter PORT -- python train.py")
    factor = resolve_grid(grid=grid, egrid=egrid, country=country, intensity=intensity)
    if emissions_csv is not None:
        from .codecarbon_bridge import check_emissions_csv

        check_emissions_csv(emissions_csv)  # its header, before the meter opens
    if codecarbon:
        from .codecarbon_bridge import require_codecarbon

        require_codecarbon()  # a missing extra is said before the meter opens
    monitor = Monitor(
        meter, protocol=protocol, address=address, out=out, idle_s=idle_s, idle_power_w=idle_power_w,
        grid=factor, pue=pue, min_samples=min_samples, meter_timeout_s=meter_timeout_s,
        resolution_w=resolution_w, codecarbon=codecarbon, progress=True, meter_options=meter_options_from(access),
    )  # fmt: skip
    monitor.start()
    # from here on a stop signal ends the command, and the window is still measured and written
    with _StopSignals() as signals:
        note(f"running: {shlex.join(argv)}")
        try:
            status, window, stopped = run_command(monitor, argv, iterations, name, signals)
            data = _json_safe({"command": argv, "exit_status": status, **monitor.to_dict(window)})
            if stopped is not None:
                data["signal"] = signal.Signals(stopped).name
            write_atomic(out / RESULT_JSON, json.dumps(data, indent=1, default=str) + "\n")
            lines = [f"command  {shlex.join(argv)} (exit {status})", *monitor.lines(window)]
        finally:
            monitor.stop()
        if emissions_csv is not None:
            from .codecarbon_bridge import write_emissions_csv

            if window.valid:
                write_emissions_csv(emissions_csv, [window], grid=factor, pue=pue, meter=data["meter"])
                note(f"appended to {emissions_csv}")
            else:
                warn(f"not appended to {emissions_csv}: an invalid window has no energy to report")
        stopped = stopped or (signals.received[0] if signals.received else None)
    if not window.valid:
        warn(f"the window is {data['status']}")
    if data["idle"] is None:
        warn("no valid idle baseline: net figures need one (--idle S, or --idle-power W)")
    elif below_idle(window):
        warn(f"net energy below zero beyond its uncertainty: {NET_BELOW_IDLE}")
    if status != 0 and stopped is None:
        warn(f"the command exited with status {status}")
    if as_json:
        click.echo(json.dumps(data, default=str))
    else:
        click.echo("\n".join(lines))
        note(f"results: {out / RESULT_JSON}, meter log {out / 'meter.sqlite'}; `edgebench report {out}` re-renders them")
    if stopped is not None:
        raise SystemExit(128 + stopped)
    if status != 0:
        raise SystemExit(status if 0 < status < 256 else 128 - status if status < 0 else 1)


def _json_safe(value: Any) -> Any:
    """NaN and infinities as null (JSON has neither; a missing idle baseline leaves the net figures NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# --- train-estimate -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFigures:
    """What `train-estimate --from-run` takes from an `edgebench run` result.json."""

    seconds: float
    iterations: int
    power_w: float
    grid: GridFactor | None  # the run's grid factor and PUE: the projection's unless the user names others
    pue: float | None
    source: str


def _field(data: dict[str, Any], key: str, where: str, *, integer: bool = False, minimum: float = 0.0) -> Any:
    """One number of result.json, checked: present, a number (not a boolean), finite, >= minimum, whole and at
    most MAX_ITERATIONS when `integer`. BadInput naming the file and the field otherwise."""
    value = data.get(key)
    hint = "pass the --out directory of `edgebench run`, or give --time, --iterations and --power"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInput(f"{where}: {key} is {str(value)[:40]!r}, not a number: {hint}")
    if integer and (isinstance(value, float) or not minimum <= value <= MAX_ITERATIONS):
        raise BadInput(f"{where}: {key} {str(value)[:40]} is not a whole number from {minimum:g} to {MAX_ITERATIONS:.0e}: {hint}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number < minimum:
        raise BadInput(f"{where}: {key} {str(value)[:40]} is not a finite number >= {minimum:g}: {hint}")
    return int(value) if integer else number


def _from_run(path: Path) -> RunFigures:
    """The measured time, iterations, mean wall power, grid factor and PUE of a `run` directory's result.json
    (or of the file itself), every field checked."""
    from .pairing import WindowState

    file = path / RESULT_JSON if path.is_dir() else path
    data = read_json(file, "pass the --out directory of `edgebench run`")
    where = str(file)
    if not isinstance(data, dict):
        raise BadInput(f"{where}: not a JSON object: pass an `edgebench run` result.json")
    seconds = _field(data, "duration_s", where)
    if seconds <= 0:
        raise BadInput(f"{where}: duration_s {seconds} must be > 0: pass an `edgebench run` result.json")
    iterations = _field(data, "iterations", where, integer=True, minimum=1)
    power_w = _field(data, "mean_power_w", where)
    grid = pue = None
    if isinstance(data.get("grid"), dict):
        g = data["grid"]
        grid = GridFactor(
            lb_co2_per_mwh=_field(g, "lb_co2_per_mwh", f"{where} grid"), source=str(g.get("source", "")),
            edition=str(g.get("edition", "")), region=str(g.get("region", "")), kind=str(g.get("kind", "average")),
        )  # fmt: skip
    if "pue" in data:
        pue = _field(data, "pue", where, minimum=1.0)
    state = data.get("state")  # the window's WindowState; a format 1 file has only its status text
    ok = state == WindowState.OK.value if state is not None else data.get("status") == WindowState.OK.value
    if not ok:
        warn(f"{file}: the measured window is {data.get('status')}")
    return RunFigures(seconds, iterations, power_w, grid, pue, f"measured by `edgebench run` ({file})")


def _seconds(text: str) -> float:
    """`196`, `196s`, `3.3min`, `0.5h` -> seconds."""
    units = {"s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
    stripped = text.strip().lower()
    for unit in sorted(units, key=len, reverse=True):
        if stripped.endswith(unit):
            number, scale = stripped[: -len(unit)], units[unit]
            break
    else:
        number, scale = stripped, 1.0
    try:
        value = float(number) * scale
    except ValueError:
        raise BadInput(f"time {text!r} is not a duration: write it like 196, 196s, 3.3min or 0.5h") from None
    if not (math.isfinite(value) and value > 0):
        raise BadInput(f"time {text!r} must be a finite duration > 0")
    return value


@click.command("train-estimate")
@click.option("--time", "time_text", metavar="DURATION",
              help="Measured time for --iterations iterations: 196, 196s, 3.3min.")
@click.option("--iterations", type=click.IntRange(min=1, max=MAX_ITERATIONS),
              help="Iterations the measured time covers (e.g. 1000).")
@click.option("--power", help="Average power during them with units (147W); the wall meter's gross figure.")
@click.option("--from-run", type=click.Path(path_type=Path, exists=True),
              help="Take time, iterations and power (and the grid factor and PUE, unless given) from an "
                   "`edgebench run --iterations N` directory.")
@click.option("--total-iterations", type=click.IntRange(min=1, max=MAX_ITERATIONS), required=True,
              help="Iterations of the whole training (e.g. 170000).")
@grid_options
@pue_option(default_words="the run's with --from-run, else 1.58, Strubell et al.'s 2018 data-centre average")
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
def train_estimate(
    time_text: str | None,
    iterations: int | None,
    power: str | None,
    from_run: Path | None,
    total_iterations: int,
    grid: str | None,
    egrid: str | None,
    country: str | None,
    intensity: str | None,
    pue: float | None,
    as_json: bool,
) -> None:
    """Project a training run's energy and CO2 from a short measured run (lab 9, Strubell et al. 2019).

    hours = time / iterations x total iterations; kWh = PUE x hours x kW; CO2 = factor x kWh. Without a grid
    option the factor is Strubell et al.'s 0.954 lb/kWh, as in the lab. Each factor's source is printed.

    \b
    edgebench train-estimate --time 196s --iterations 1000 --power 147W --total-iterations 170000
    edgebench train-estimate --from-run run-out --total-iterations 170000 --grid RFCW --pue 1
    """
    from . import carbon as c

    sources: dict[str, str] = {}
    run_grid = run_pue = None
    if from_run is not None:
        if time_text is not None or iterations is not None or power is not None:
            raise BadInput("--from-run gives time, iterations and power: drop --time/--iterations/--power, or it")
        figures = _from_run(from_run)
        seconds, iterations, power_w = figures.seconds, figures.iterations, figures.power_w
        run_grid, run_pue = figures.grid, figures.pue
        sources.update(time=figures.source, power=f"{figures.source}, mean wall power")
    else:
        if time_text is None or iterations is None or power is None:
            raise BadInput(
                "pass --time, --iterations and --power (e.g. --time 196s --iterations 1000 --power 147W), "
                "or --from-run DIR of `edgebench run`"
            )
        seconds, power_w = _seconds(time_text), c.parse_power(power)
        sources.update(time="given", power="given")
    if any(v is not None for v in (grid, egrid, country, intensity)):
        factor = c.resolve_grid(grid=grid, egrid=egrid, country=country, intensity=intensity)
        sources["grid"] = "given" if factor.source == "user-given" else factor.source
    elif run_grid is not None:
        factor = run_grid
        sources["grid"] = f"the run's ({from_run}); another with --grid/--country/--intensity"
    else:
        factor = c.strubell_grid()
        sources["grid"] = "Strubell et al. (2019): US average lb CO2/kWh, as the course lab uses"
    if pue is not None:
        sources["pue"] = "given"
    elif run_pue is not None:
        pue = run_pue
        sources["pue"] = f"the run's ({from_run}); another with --pue"
    else:
        pue = c.STRUBELL_PUE
        sources["pue"] = "Strubell et al. (2019): 2018 global data-centre average; pass --pue 1 for a desk"
    result = c.training_projection(seconds, iterations, total_iterations, power_w, factor, pue, sources=sources)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    click.echo("\n".join(c.format_training(result)))
