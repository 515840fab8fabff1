"""`edgebench bench` (time built engines here, like trtexec / hyperfine) and `edgebench info` (what this runs on).

Results go to stdout (hyperfine-like blocks and a table, or JSON lines with --json); warnings and progress to
stderr. With --out, each engine's RunRecord is appended as a versioned JSON line right after that engine, so a
crash part-way through a sweep still leaves every finished result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edgebench.console import is_interactive, note, warn
from edgebench.errors import BadInput, EdgebenchError
from edgebench.options import (
    DEFAULT_ENGINES_DIR,
    MAX_THREADS,
    MAX_TIMEOUT_S,
    engine_names_option,
    non_negative,
    positive,
    sensor_option,
    threads_option,
)
from edgebench.protocol import MAX_ITERATIONS, MAX_WARMUP_S, MAX_WINDOW_S

from .options import (
    DEFAULT_DURATION_S,
    DEFAULT_WARMUP_S,
    MIN_ITERATIONS,
    sensor_period_option,
    sensor_root_option,
    tegrastats_option,
)

if TYPE_CHECKING:
    from .sensors.base import PowerSensor
    from .sensors.sampler import Sampler


def _thread_words(intra: int | None, inter: int | None, settings: dict) -> str:
    threads = {k: v for k, v in settings.items() if "thread" in k.lower() and not k.startswith("options.")}
    asked = (
        f"intra-op threads {intra if intra is not None else 'backend default'}, "
        f"inter-op threads {inter if inter is not None else 'backend default'}"
    )
    if threads:
        asked += " (effective: " + ", ".join(f"{k}={v}" for k, v in sorted(threads.items())) + ")"
    return asked


def _select_entries(engines_dir: Path, names: tuple[str, ...]):
    """The manifest entries to run, in manifest order, or BadInput saying how to get engines."""
    fix = f"run `edgebench build-engines --out {engines_dir}` first"
    if not engines_dir.is_dir():
        raise BadInput(f"no engines directory {engines_dir}: {fix}")
    from edgebench.engines.manifest import Manifest

    manifest = Manifest.load(engines_dir)
    entries = list(manifest.entries)
    if not entries:
        raise BadInput(f"the manifest in {engines_dir} lists no engines: {fix}")
    if not names:
        return entries
    known = {e.name: e for e in entries}
    unknown = [n for n in names if n not in known]
    if unknown:
        shown = ", ".join(sorted(known)[:8]) + (" ..." if len(known) > 8 else "")
        raise BadInput(
            f"unknown engine {', '.join(unknown)} in {engines_dir}: pick one of {shown} "
            f"(or build it with `edgebench build-engines --out {engines_dir}`)"
        )
    return [known[n] for n in dict.fromkeys(names)]


@click.command()
@click.argument(
    "engines_dir", required=False, default=DEFAULT_ENGINES_DIR, type=click.Path(path_type=Path, file_okay=False)
)
@engine_names_option
@click.option("--warmup", type=click.IntRange(min=0, max=MAX_ITERATIONS), help="Warm-up iterations (discarded, reported apart).")
@click.option(
    "--warmup-time",
    type=non_negative(max=MAX_WARMUP_S),
    help=f"Warm-up seconds instead of a count (default {DEFAULT_WARMUP_S:g} s, as trtexec).",
)
@click.option("--iterations", type=click.IntRange(min=1, max=MAX_ITERATIONS), help="Measured iterations (exact count).")
@click.option(
    "--duration",
    type=positive(max=MAX_WINDOW_S),
    help=f"Measured seconds (default {DEFAULT_DURATION_S:g} s, at least {MIN_ITERATIONS} iterations, as trtexec).",
)
@threads_option
@click.option("--inter-op-threads", type=click.IntRange(min=1, max=MAX_THREADS), help="Inter-op threads (default: the backend's).")
@click.option("--include-copies", is_flag=True, help="Time host<->device copies inside each iteration.")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Append each RunRecord as a JSON line to this file, right after each engine.",
)
@sensor_option(default="none")
@sensor_period_option
@sensor_root_option()
@tegrastats_option
@click.option(
    "--inference-timeout", type=positive(max=MAX_TIMEOUT_S), default=60.0, show_default=True, metavar="SECONDS",
    help="Stop an engine whose one inference (warm-up included) runs longer; it is recorded as failed.",
)
@click.option(
    "--window-timeout", type=positive(max=MAX_TIMEOUT_S), metavar="SECONDS",
    help="Stop an engine whose whole window (warm-up + measured) runs longer "
    "[default: its warm-up and measured seconds + 120 s; none for --iterations].",
)
@click.option("--json", "as_json", is_flag=True, help="Print RunRecords as JSON lines instead of tables.")
@click.option(
    "--sort", type=click.Choice(["mean", "name", "throughput"]), default="mean", show_default=True,
    help="Order of the final table (mean = per-sample mean latency).",
)
def bench(
    engines_dir: Path,
    engine_names: tuple[str, ...],
    warmup: int | None,
    warmup_time: float | None,
    iterations: int | None,
    duration: float | None,
    threads: int | None,
    inter_op_threads: int | None,
    include_copies: bool,
    out: Path | None,
    sensor: str,
    sensor_period_ms: float,
    sensor_root: Path,
    tegrastats_cmd: str,
    inference_timeout: float,
    window_timeout: float | None,
    as_json: bool,
    sort: str,
) -> None:
    """Time each engine of ENGINES_DIR (default engines-out) on this machine.

    Every engine gets a warm-up (discarded, first iteration shown), then a measured window of back-to-back
    run_once() calls timed with perf_counter_ns. Prints mean ± sd, range, percentiles and throughput per
    engine and a table across engines; `--out runs.jsonl` keeps the full RunRecords. An engine that passes a
    time limit is stopped, recorded as failed and the rest go on (exit code 1); Ctrl-C stops the run (130).
    """
    if warmup is not None and warmup_time is not None:
        raise BadInput("--warmup and --warmup-time both given: pass one (a count or seconds)")
    if iterations is not None and duration is not None:
        raise BadInput("--iterations and --duration both given: pass one (a count or seconds)")

    entries = _select_entries(engines_dir, engine_names)

    from edgebench.engines.runner import RunOptions

    from .harness import time_limits

    limits = time_limits(inference_timeout, window_timeout, warmup_s=warmup_time, warmup_iterations=warmup,
                         duration_s=duration, iterations=iterations)
    options = RunOptions(
        intra_op_threads=threads, inter_op_threads=inter_op_threads, include_copies=include_copies
    )
    sampler, power_sensor = _open_sampler(sensor, sensor_period_ms / 1000.0, sensor_root, tegrastats_cmd)
    try:
        failed = _bench_entries(entries, engines_dir, options, warmup, warmup_time, iterations, duration, threads,
                                inter_op_threads, out, as_json, sort, sampler, limits)
    except KeyboardInterrupt:
        kept = f"; the engines finished before it are in {out}" if out is not None else ""
        warn(f"interrupted{kept}")
        raise SystemExit(130) from None
    finally:
        if power_sensor is not None:
            power_sensor.close()
    if failed:
        raise EdgebenchError(f"{len(failed)} of {len(entries)} engines failed: {', '.join(failed)}")


def _open_sampler(
    sensor: str, period_s: float, root: Path, tegrastats_cmd: str = "tegrastats"
) -> tuple[Sampler | None, PowerSensor | None]:
    """The on-board Sampler for `--sensor` (None for none), and its sensor to close afterwards."""
    if sensor == "none":
        return None, None
    from .sensors.base import probe
    from .sensors.sampler import Sampler

    found = probe(sensor, root=root, tegrastats_cmd=tegrastats_cmd, period_s=period_s)
    if not found.found:
        warn("no on-board power source found, timing only: "
             + "; ".join(f"{name}: {reason}" for name, reason in found.tried))
        return None, None
    chosen = found.sensor
    kind = ", an estimate" if chosen.estimate else ""
    note(f"on-board power: {chosen.name} (total = {chosen.total_rule}{kind}), every {period_s * 1000:g} ms")
    return Sampler(chosen, period_s=period_s), chosen


def _energy_line(record, sampler) -> str | None:
    energy = record.rail_energy
    if energy is None or record.samples_processed == 0:
        return None
    per_sample_mj = energy.energy_j / record.samples_processed * 1000.0  # J -> mJ
    star = " (estimate)" if energy.estimate else ""
    overhead = f", sampler {sampler.cpu_fraction * 100:.1f} % of a core" if sampler is not None else ""
    return (
        f"  On-board:  {per_sample_mj:.3f} mJ/sample{star}, mean {energy.mean_power_w:.3f} W over the window, "
        f"{energy.samples} samples ({energy.sensor}, total = {energy.total_rule}{overhead})"
    )


def _failed_record(entry, message: str):
    """The RunRecord of an engine whose window was stopped: no iterations, the reason in `error`."""
    from edgebench.records import AGENT_CLOCK, failed_window

    return failed_window(entry.name, entry.backend, entry.spec.batch, message, clock=AGENT_CLOCK,
                         model=entry.model_facts())


def _bench_entries(entries, engines_dir, options, warmup, warmup_time, iterations, duration, threads,
                   inter_op_threads, out, as_json, sort, sampler, limits) -> list[str]:
    """Run every entry; the names of those that were stopped by a time limit (recorded as failed)."""
    from edgebench.engines.backends import open_runner
    from edgebench.records import append_jsonl, dumps

    from .harness import run_engine
    from .stats import LatencyStats, format_block, format_table
    from .watchdog import WindowStopped

    results: list[tuple[str, LatencyStats]] = []
    failed: list[str] = []
    shown_region: str | None = None
    for k, entry in enumerate(entries, 1):
        if is_interactive():
            note(f"[{k}/{len(entries)}] {entry.name}")
        runner = open_runner(engines_dir, entry, options)
        try:
            record = run_engine(
                runner,
                warmup_iterations=warmup,
                warmup_s=warmup_time,
                iterations=iterations,
                duration_s=duration,
                options=options,
                sampler=sampler,
                model=entry.model_facts(),
                limits=limits,
            )
        except WindowStopped as exc:
            if exc.interrupted:
                raise KeyboardInterrupt from exc
            warn(f"{entry.name} failed: {exc}; recorded as failed, going on")
            failed.append(entry.name)
            stopped = _failed_record(entry, str(exc))
            if out is not None:
                append_jsonl(out, [stopped])
            if as_json:
                click.echo(dumps(stopped))
            continue
        finally:
            runner.close()
        if out is not None:
            append_jsonl(out, [record])
        for message in record.warnings:
            warn(f"{record.engine}: {message}")
        if as_json:
            click.echo(dumps(record))
            continue
        header = (
            f"Timed region: {record.timed_region or 'run_once()'}; "
            f"{_thread_words(threads, inter_op_threads, dict(record.settings))}"
        )
        if header != shown_region:
            click.echo(header)
            shown_region = header
        stats = LatencyStats.from_record(record)
        results.append((record.engine, stats))
        click.echo("")
        for line in format_block(record.engine, stats):
            click.echo(line)
        energy_line = _energy_line(record, sampler)
        if energy_line:
            click.echo(energy_line)
    if not as_json and len(results) > 1:
        click.echo("")
        for line in format_table(results, sort):
            click.echo(line)
    if out is not None:
        note(f"{len(entries)} run record{'s' if len(entries) != 1 else ''} appended to {out}")
    return failed


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of grouped text.")
@click.option(
    "--root",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default="/",
    show_default=True,
    hidden=True,
    help="Read /proc, /sys and /etc under this root (for recorded trees).",
)
def info(as_json: bool, root: Path) -> None:
    """Hardware and software this runs on: CPU, clocks, memory, OS, versions, Jetson power mode, temperatures."""
    from .metadata import collect_metadata, group_lines

    meta = collect_metadata(root)
    if as_json:
        click.echo(json.dumps(meta, sort_keys=True))
        return
    for line in group_lines(meta):
        click.echo(line)
