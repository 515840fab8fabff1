"""`edgebench meter`: log a wall meter to a store, show a log, emulate a meter on a pty, probe a port."""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import click

from edgebench.console import is_interactive, note, warn
from edgebench.errors import BadInput, DeviceError
from edgebench.host.meters.options import (
    baudrate_option,
    calibration_option,
    meter_access_options,
    meter_option,
    meter_options_from,
    plug_login_options,
    protocol_option,
)
from edgebench.options import MAX_POWER_W, MAX_SECONDS, MAX_TIMEOUT_S, non_negative, positive

EMULATED_PROTOCOLS = ("lines", "tweetawatt", "wattsup", "um", "shelly", "shelly-gen1", "tasmota", "kasa")
PLUG_PROTOCOLS = ("shelly", "shelly-gen1", "tasmota", "kasa")
SILENT_WARN_S = 5.0  # warn when a meter has sent no reading this long after the logger started


class _StopOnSignal:
    """Turn SIGTERM (and SIGINT) into a clean stop request, restoring the old handlers afterwards."""

    def __init__(self, stop: Callable[[], object]) -> None:
        self.stop = stop
        self.old: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}

    def __enter__(self) -> _StopOnSignal:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.old[sig] = signal.signal(sig, lambda *_: self.stop())
            except ValueError:
                pass  # not the main thread (embedded use): the caller stops us instead
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.old.items():
            signal.signal(sig, handler)


@click.group("meter")
def meter() -> None:
    """Wall meters: log, probe, show, emulate."""


@meter.command("log")
@meter_option("url")
@protocol_option
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Store (.sqlite/.csv)."
)
@click.option(
    "--duration", type=positive(max=MAX_SECONDS), default=None, metavar="S", help="Stop after S seconds (default: Ctrl-C)."
)
@calibration_option
@baudrate_option
@click.option(
    "--warn-silent",
    "warn_silent_s",
    type=positive(max=MAX_TIMEOUT_S),
    default=SILENT_WARN_S,
    show_default=True,
    metavar="S",
    help="Warn once when no reading came S seconds after the start (at least 3 meter periods).",
)
@meter_access_options
def log_cmd(url, protocol, out, duration, calibration, baudrate, warn_silent_s, **access) -> None:
    """Log readings from a meter into a store until Ctrl-C (or --duration).

    \b
    edgebench meter log --meter /dev/ttyUSB0 --out meter.sqlite
    edgebench meter log --meter shelly://192.168.1.50 --out plug.sqlite --prometheus 127.0.0.1:9464
    edgebench meter log --meter manual --out readings.sqlite     # type the display's watts
    """
    from edgebench.host.logger import open_logger

    options = meter_options_from(access)
    logger = open_logger(url, protocol, out, options=options, calibration=calibration, baudrate=baudrate)
    exporter = None
    if options.prometheus:
        from edgebench.host.prometheus import serve

        exporter = serve(logger, options.prometheus, remote=options.prometheus_remote)
    try:
        _log(logger, url, out, duration, warn_silent_s, exporter)
    finally:
        if exporter is not None:
            exporter.close()


def _log(logger, url, out, duration, warn_silent_s, exporter) -> None:
    started_ns = time.time_ns()
    logger.open()
    manual = getattr(logger, "manual", False)
    if manual:
        note(logger.introduction() + "; q or Ctrl-C stops")
    note(f"logging {logger.meter} from {url} to {out} (Ctrl-C to stop)")
    if exporter is not None:
        note(f"live watts for Prometheus at {exporter.url}")

    def live_line(lg) -> None:
        r, s = lg.latest(), lg.stats
        text = f"{r.power_w:8.2f} W" if r else "   (none)"
        click.echo(
            f"\r{text}  {s.readings} readings  {lg.rate_hz:5.2f}/s  bad {s.bad_frames}  gaps {s.gaps}  "
            f"reconnects {s.reconnects}   ",
            err=True,
            nl=False,
        )

    live = is_interactive() and not manual  # a live line would write over what the person types
    started = time.monotonic()
    # A meter that has not spoken after a few of its periods gets one warning saying what was heard; it keeps
    # being logged (it may be switched on late), and a run that ends with no reading at all is an error.
    warn_after_s = max(warn_silent_s, 3 * float(logger.nominal_period_s))
    warned = manual  # a person may take their time


    def tick(lg) -> None:
        nonlocal warned
        silent_s = time.monotonic() - started
        if not warned and silent_s >= warn_after_s:
            problem = lg.silence_diagnosis(silent_s)
            if problem is not None:
                if live:
                    click.echo("", err=True)
                warn(f"{problem} (still listening)")
            warned = True
        if live:
            live_line(lg)

    with _StopOnSignal(logger.request_stop):
        try:
            logger.run(duration, on_tick=tick)
        finally:
            if live:
                click.echo("", err=True)
    s = logger.stats
    note(
        f"{s.readings} readings, {s.bad_frames} bad frames, {s.gaps} gaps, {s.reconnects} reconnects -> {out}"
    )
    if not manual:
        from edgebench.host.spot import counter_note

        line = counter_note(out, started_ns, time.time_ns())
        if line:
            note(line)
    problem = logger.silence_diagnosis(time.monotonic() - started)
    if problem is not None:
        raise DeviceError(f"no reading logged: {problem}")


def summary_rows(path: Path) -> dict[str, object]:
    """The figures `meter show` prints for a log."""
    from edgebench.energy import integrate_window
    from edgebench.host.store import load_trace, summarize

    info = summarize(path)
    rows: dict[str, object] = {"file": str(path)}
    per_address = info.addresses if len(info.addresses) > 1 else (None,)
    sections = []
    for address in per_address:
        trace = load_trace(path, address=address)
        n = len(trace.t_ns)
        section: dict[str, object] = {"address": address or "", "meter": trace.meter, "samples": n}
        if n:
            span_s = (int(trace.t_ns[-1]) - int(trace.t_ns[0])) / 1e9
            section.update(
                span_s=span_s,
                rate_hz=(n - 1) / span_s if span_s > 0 else 0.0,
                mean_w=float(trace.power_w.mean()),
                min_w=float(trace.power_w.min()),
                max_w=float(trace.power_w.max()),
                resolution_w=trace.resolution_w,
                gaps=len(trace.gaps),
                gap_s=sum((b - a) for a, b in trace.gaps) / 1e9,
            )
            if n >= 2 and span_s > 0:
                integral = integrate_window(
                    trace.t_ns, trace.power_w, int(trace.t_ns[0]), int(trace.t_ns[-1])
                )
                section["energy_wh"] = integral.energy_j / 3600
            if trace.sampling != "continuous":
                section["sampling"] = trace.sampling
            if trace.sampling == "counter" and trace.energy_wh is not None and n >= 2:
                section["energy_wh"] = float(trace.energy_wh[-1] - trace.energy_wh[0])
            elif trace.sampling == "continuous":
                from edgebench.host.spot import counter_check

                check = counter_check(path, address=address)
                if check is not None:
                    section["counter_wh"] = check.counter_j / 3600
                    section["counter_check"] = check
        sections.append(section)
    rows["sensors"] = sections
    return rows


def format_show(doc: dict[str, object], fmt: str) -> list[str]:
    """Lines for `meter show` in table, csv or json."""
    sections = doc["sensors"]
    assert isinstance(sections, list)
    keys = [
        "address",
        "meter",
        "samples",
        "span_s",
        "rate_hz",
        "mean_w",
        "min_w",
        "max_w",
        "energy_wh",
        "counter_wh",
        "gaps",
    ]
    if fmt == "json":
        return [json.dumps(doc, indent=2, default=lambda o: getattr(o, "__dict__", str(o)))]
    if fmt == "csv":
        lines = [",".join(keys)]
        for s in sections:
            lines.append(",".join(_cell(s.get(k)) for k in keys))
        return lines
    lines = [f"meter log {doc['file']}"]
    for s in sections:
        head = f"  sensor {s['address']}" if s["address"] else " "
        lines.append(f"{head} meter: {s['meter']}")
        if not s["samples"]:
            lines.append("  no readings")
            continue
        lines += [
            f"  samples     {s['samples']} over {s['span_s']:.1f} s ({s['rate_hz']:.2f} /s)",
            f"  power       mean {s['mean_w']:.2f} W, min {s['min_w']:.2f} W, max {s['max_w']:.2f} W "
            f"(resolution {s['resolution_w']:.3g} W)",
            f"  energy      {s.get('energy_wh', 0.0):.4f} Wh",
            f"  gaps        {s['gaps']} ({s['gap_s']:.1f} s)",
        ]
        if s.get("sampling"):
            lines.append(f"  sampling    {s['sampling']} (readings typed by a person)")
        check = s.get("counter_check")
        if check is not None:
            from edgebench.host.spot import counter_lines

            lines += [f"  counter     {line}" for line in counter_lines(check)]
    return lines


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@meter.command("show")
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True
)
def show_cmd(file, fmt) -> None:
    """Summarise a meter log: samples, span, rate, gaps, mean/min/max W, energy."""
    click.echo("\n".join(format_show(summary_rows(file), fmt)))


def _profile(watts, steps, csv_path, cpu_load):
    from edgebench.host.meters import emulate

    given = [x for x in (watts, steps, csv_path, cpu_load) if x is not None]
    if len(given) != 1:
        raise BadInput("give exactly one of --watts, --steps, --csv, --cpu-load")
    if watts is not None:
        return emulate.ConstantProfile(watts)
    if steps is not None:
        return emulate.StepsProfile.parse(steps)
    if csv_path is not None:
        return emulate.CsvProfile(csv_path)
    try:
        idle, top = (float(x) for x in cpu_load.split(":"))
    except ValueError:
        raise BadInput(f"--cpu-load {cpu_load!r} is not IDLE:MAX watts, e.g. 3:15") from None
    if not (math.isfinite(idle) and math.isfinite(top)):
        raise BadInput(f"--cpu-load {cpu_load!r} must be finite IDLE:MAX watts, e.g. 3:15")
    return emulate.CpuLoadProfile(idle, top)


@meter.command("emulate")
@click.option("--protocol", required=True, type=click.Choice(EMULATED_PROTOCOLS))
@click.option("--watts", type=non_negative(max=MAX_POWER_W), help="Constant power.")
@click.option("--steps", help='Piecewise power "t_s:watts,...", e.g. "0:5,10:8".')
@click.option(
    "--csv", "csv_path", type=click.Path(path_type=Path), help="CSV profile with t_s,power_w columns."
)
@click.option("--cpu-load", metavar="IDLE:MAX", help="Watts following this machine's CPU load.")
@click.option("--interval", type=positive(max=MAX_TIMEOUT_S), default=None, metavar="S", help="Seconds between readings.")
@click.option(
    "--tcp", "tcp_port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
    help="Serve on TCP instead of a pty.",
)  # fmt: skip
@click.option("--duration", type=positive(max=MAX_SECONDS), default=None, metavar="S", help="Stop after S seconds.")
@click.option("--user", default="admin", show_default=True, help="Smart plugs: the user auth asks for.")
@click.option("--password", default=None, help="Smart plugs: turn auth on with this password.")
@click.option("--model", default=None,
              help="Smart plugs: shelly, shelly-pm-mini, shelly-plus-1 (no meter), shelly-gen1, shelly-1 (no meter), "
                   "tasmota, tasmota-relay (no meter), kasa (HS110 hw 2), kasa-hs110-v1, kasa-kp115, kasa-hs100 "
                   "(no meter).")  # fmt: skip
@click.option("--watt-decimals", type=click.IntRange(0, 3), default=0, show_default=True,
              help="Tasmota: decimals of Power (its WattRes setting).")
@click.option("--fault", "fault_words", multiple=True, metavar="KIND:START:END",
              help="Smart plugs: timeout, drop, error or stale over START-END s after the start; error-every:N.")
def emulate_cmd(protocol, watts, steps, csv_path, cpu_load, interval, tcp_port, duration, user, password, model,
                watt_decimals, fault_words) -> None:  # fmt: skip
    """Emulate a meter on a pty (or TCP port) until Ctrl-C; prints the port to open.

    The smart plugs (shelly, shelly-gen1, tasmota) are HTTP servers on 127.0.0.1 (--tcp PORT, else a free one);
    kasa serves TP-Link's legacy protocol there. They print the URL to give --meter.
    """
    from edgebench.host.meters.emulate import start_emulator

    profile = _profile(watts, steps, csv_path, cpu_load)
    plug = protocol in PLUG_PROTOCOLS
    given = [name for name, value in (("--password", password), ("--model", model), ("--fault", fault_words),
                                      ("--watt-decimals", watt_decimals)) if value]  # fmt: skip
    if given and not plug:
        raise BadInput(f"{', '.join(given)} apply to the smart plug emulators (shelly, shelly-gen1, tasmota, kasa)")
    transport = "tcp" if tcp_port is not None else "pty"
    options = None
    faults = None
    if plug:
        from edgebench.host.meters.plug_emulate import PlugFaults

        faults = PlugFaults.parse(fault_words)
        options = {"user": user, "password": password, "model": model, "watt_decimals": watt_decimals}
    handle = start_emulator(
        protocol, profile, interval_s=interval, transport=transport, tcp_port=tcp_port or 0, faults=faults,
        plug=options,
    )  # fmt: skip
    click.echo(handle.port)
    sys.stdout.flush()
    note(f"emulating {handle.identity} every {handle.interval_s:g} s on {handle.port} (Ctrl-C to stop)")
    stopped = []
    try:
        with _StopOnSignal(lambda: stopped.append(True)):
            end = time.monotonic() + duration if duration is not None else None
            while not stopped and (end is None or time.monotonic() < end):
                time.sleep(0.05)
    finally:
        handle.stop()
    note(f"sent {handle.frames} readings")


@meter.command("probe")
@click.argument("port")
@plug_login_options
@click.option("--listen", type=positive(max=MAX_TIMEOUT_S), default=None, metavar="S", help="Seconds to listen (default 2.5).")
@click.option(
    "--rate-for",
    type=non_negative(max=MAX_TIMEOUT_S),
    default=None,
    metavar="S",
    help="Seconds to log after finding the protocol, to measure the reading rate (default: 3 nominal periods, "
    "at least 1 s; 0 skips it).",
)
@baudrate_option
def probe_cmd(port, meter_user, meter_password, listen, rate_for, baudrate) -> None:
    """Say which meter protocol PORT speaks (listens briefly; polls meters that need asking) and at what rate.

    PORT may be http://HOST[:PORT] (or shelly://, tasmota://): which smart-plug firmware answers there;
    kasa://HOST[:PORT]: which Kasa plug answers its legacy protocol (model, hardware, whether it meters).
    """
    from edgebench.host.logger import MeterLogger, is_plug, open_port
    from edgebench.host.meters.base import make_meter
    from edgebench.host.meters.probe import LISTEN_S, probe_port

    if port.lower().startswith("kasa://"):
        from edgebench.host.meters.kasa import probe_kasa

        if meter_user or meter_password:
            raise BadInput("--meter-user/--meter-password: a Kasa plug's legacy protocol has no password: drop them")
        click.echo(probe_kasa(port))
        return
    if port.lower().startswith("http://") or is_plug(port):
        from edgebench.host.meters.plug import probe_http

        click.echo(probe_http(port, user=meter_user, password=meter_password))
        return
    if port.lower().startswith("https://"):
        raise BadInput(f"{port}: smart plugs on the LAN answer plain http://; give http://HOST")

    handle = open_port(port, baudrate or 9600)
    try:
        found = probe_port(handle, listen or LISTEN_S, port)
    finally:
        handle.close()
    heard = f"{found.readings} reading{'s' if found.readings != 1 else ''} in {found.bytes_heard} bytes"
    if rate_for is None:
        rate_for = max(1.0, 3 * float(make_meter(found.protocol).nominal_period_s))
    rate = ""
    if rate_for > 0:
        # The real logger (open commands, polling) without a store: the rate a `meter log` would see.
        note(
            f"{port}: {found.protocol}; measuring its reading rate for {rate_for:g} s (--rate-for 0 skips this)"
        )
        logger = MeterLogger(port, found.protocol, None, baudrate=baudrate)
        with _StopOnSignal(logger.request_stop):
            stats = logger.run(rate_for)
        if stats.readings >= 2:
            rate = f"; {logger.rate_hz:.2f} readings/s ({stats.readings} in {rate_for:g} s, {stats.bad_frames} bad)"
        else:
            rate = f"; rate unknown: {stats.readings} reading(s) in {rate_for:g} s (try a longer --rate-for)"
    click.echo(f"{port}: {found.protocol} ({found.identity}), {heard}{rate}")
    if found.protocol == "lines":
        warn(
            "plain text lines can be anything numeric: check the values with `edgebench meter log --duration 5`"
        )
