"""`edgebench run --meter PORT -- CMD ...`: any command measured at the wall, the way `measure` measures an
engine (an idle baseline, then the command's window, gross and net energy with uncertainty, CO2); and
`edgebench train-estimate`: lab 9's training footprint projected from a short measured run.

`run` is `Monitor` (host/monitor.py) around a subprocess: the meter is logged into OUT/meter.sqlite, the
windows go to OUT/runs.jsonl and the result to OUT/result.json (which `train-estimate --from-run OUT` reads).
The command's exit status becomes edgebench's, as with `time`.
"""

from __future__ import annotations

import json
import math
import shlex
import subprocess
from pathlib import Path
from typing import Any

import click

from edgebench.console import note, warn
from edgebench.errors import BadInput
from edgebench.options import finite, non_negative, positive

from .cli import grid_options
from .meters.options import meter_access_options, meter_options_from

RESULT_JSON = "result.json"


def run_command(monitor: Any, argv: list[str], iterations: int = 1, name: str = "command") -> tuple[int, Any]:
    """Run `argv` inside a window of a started Monitor; (exit status, Measurement).

    Ctrl-C reaches the command too (same process group); the window then ends when the command does, and is
    measured like any other, with status 130 unless the command says otherwise.
    """
    monitor.begin_window(name)
    try:
        child = subprocess.Popen(argv)
    except FileNotFoundError:
        raise BadInput(f"no such command: {argv[0]!r}: give the program after `--` (e.g. -- python train.py)") from None
    except PermissionError:
        raise BadInput(f"{argv[0]!r} is not executable: check its permissions, or run it through its interpreter") from None
    try:
        status = child.wait()
    except KeyboardInterrupt:
        try:
            status = child.wait(timeout=10)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            child.kill()
            status = child.wait()
        warn("interrupted: the window ends here and is measured")
        status = status if status > 0 else 130
    return status, monitor.end_window(name, iterations=iterations)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--meter", required=True, metavar="METER",
              help="Wall meter: /dev/ttyUSB0, a pty, socket://HOST:PORT, shelly://HOST, tasmota://HOST or manual.")
@click.option("--protocol", default="auto", show_default=True,
              help="Serial meter protocol: auto, tweetawatt, wattsup, um, lines.")
@meter_access_options
@click.option("--address", help="Tweet-a-Watt sensor address when one receiver hears several.")
@click.option("--meter-timeout", "meter_timeout_s", type=positive(), default=20.0, show_default=True,
              help="Seconds to wait for the meter's first readings.")
@click.option("--idle", "idle_s", type=finite(min=0, max=3600),
              help="Idle baseline seconds before the command (default: the meter's minimum, at least 10 s; 0: none).")
@click.option("--idle-power", "idle_power_w", type=non_negative(),
              help="Known idle power in W instead of measuring it (no uncertainty is added for it).")
@click.option("--iterations", type=click.IntRange(min=1), default=1, show_default=True,
              help="Iterations (steps, inferences) the command runs: adds J per iteration.")
@click.option("--name", default="command", show_default=True, help="Name of the window in the results.")
@grid_options
@click.option("--pue", type=finite(min=1), default=1.0, show_default=True, help="Facility overhead multiplier for CO2.")
@click.option("--resolution", "resolution_w", type=non_negative(), help="Meter resolution in W (default: the meter's).")
@click.option("--min-samples", type=click.IntRange(min=2), default=10, show_default=True,
              help="Meter readings the window needs to be valid.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("run-out"), show_default=True,
              help="Directory for meter.sqlite, runs.jsonl and result.json (must not hold a meter log yet).")
@click.option("--emissions-csv", type=click.Path(path_type=Path, dir_okay=False),
              help="Also append the result to this CodeCarbon-style emissions.csv.")
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
    from .monitor import Monitor

    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise BadInput("no command to measure: put it after `--`, e.g. edgebench run --meter PORT -- python train.py")
    factor = resolve_grid(grid=grid, egrid=egrid, country=country, intensity=intensity)
    if emissions_csv is not None and not emissions_csv.parent.is_dir():
        raise BadInput(
            f"--emissions-csv {emissions_csv}: no folder {emissions_csv.parent} to write it in; create it or pick another"
        )
    if codecarbon:
        from .codecarbon_bridge import require_codecarbon

        require_codecarbon()  # a missing extra is said before the meter opens
    monitor = Monitor(
        meter, protocol=protocol, address=address, out=out, idle_s=idle_s, idle_power_w=idle_power_w,
        grid=factor, pue=pue, min_samples=min_samples, meter_timeout_s=meter_timeout_s,
        resolution_w=resolution_w, codecarbon=codecarbon, meter_options=meter_options_from(access),
    )  # fmt: skip
    monitor.start()
    note(f"running: {shlex.join(argv)}")
    try:
        status, result = run_command(monitor, argv, iterations, name)
    finally:
        monitor.stop()
    data = _json_safe({"command": argv, "exit_status": status, **result.to_dict()})
    (out / RESULT_JSON).write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    if emissions_csv is not None:
        from .codecarbon_bridge import write_emissions_csv

        note(f"appended to {write_emissions_csv(emissions_csv, [result])}")
    if not result.valid:
        warn(f"the window is {result.status}")
    if not math.isfinite(result.net_energy_j):
        warn("no valid idle baseline: net figures need one (--idle S, or --idle-power W)")
    if status != 0:
        warn(f"the command exited with status {status}")
    if as_json:
        click.echo(json.dumps(data, default=str))
    else:
        click.echo("\n".join([f"command  {shlex.join(argv)} (exit {status})", *result.lines()]))
        note(f"results: {out / RESULT_JSON}, meter log {out / 'meter.sqlite'}")
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


def _from_run(path: Path) -> tuple[float, int, float, str]:
    """(seconds, iterations, mean wall power W, source) from a `run` directory's result.json (or the file)."""
    file = path / RESULT_JSON if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"cannot read {file} ({exc.strerror}): pass the --out directory of `edgebench run`") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"{file} is not JSON ({exc.msg}, line {exc.lineno}): pass an `edgebench run` result.json") from None
    try:
        seconds, iterations, power = float(data["duration_s"]), int(data["iterations"]), float(data["mean_power_w"])
    except (KeyError, TypeError, ValueError):
        raise BadInput(f"{file} lacks duration_s/iterations/mean_power_w: pass an `edgebench run` result.json") from None
    if data.get("status") != "ok":
        warn(f"{file}: the measured window is {data.get('status')}")
    return seconds, iterations, power, f"measured by `edgebench run` ({file}), mean wall power"


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
@click.option("--iterations", type=click.IntRange(min=1), help="Iterations the measured time covers (e.g. 1000).")
@click.option("--power", help="Average power during them with units (147W); the wall meter's gross figure.")
@click.option("--from-run", type=click.Path(path_type=Path, exists=True),
              help="Take time, iterations and power from an `edgebench run --iterations N` directory.")
@click.option("--total-iterations", type=click.IntRange(min=1), required=True,
              help="Iterations of the whole training (e.g. 170000).")
@grid_options
@click.option("--pue", type=finite(min=1),
              help="Facility overhead (default 1.58: Strubell et al.'s 2018 data-centre average; 1 for a desk).")
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
    if from_run is not None:
        if time_text is not None or iterations is not None or power is not None:
            raise BadInput("--from-run gives time, iterations and power: drop --time/--iterations/--power, or it")
        seconds, iterations, power_w, source = _from_run(from_run)
        sources.update(time=source.replace(", mean wall power", ""), power=source)
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
    else:
        factor = c.strubell_grid()
        sources["grid"] = "Strubell et al. (2019): US average lb CO2/kWh, as the course lab uses"
    if pue is None:
        pue = c.STRUBELL_PUE
        sources["pue"] = "Strubell et al. (2019): 2018 global data-centre average; pass --pue 1 for a desk"
    else:
        sources["pue"] = "given"
    result = c.training_projection(seconds, iterations, total_iterations, power_w, factor, pue, sources=sources)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    click.echo("\n".join(c.format_training(result)))
