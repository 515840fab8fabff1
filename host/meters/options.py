"""The meter options shared by `meter log`, `meter probe`, `measure` and `run`: which meter and how to reach it
(port, protocol, sensor address, calibration, baud rate, how long to wait for it), smart-plug credentials, the
manual meter's kWh counter mode, and the Prometheus endpoint. Each is defined once here so every command spells
it the same way, with the same default."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edgebench.host.logger import MeterOptions
from edgebench.options import MAX_TIMEOUT_S, positive

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
USER_ENV, PASSWORD_ENV = "EDGEBENCH_METER_USER", "EDGEBENCH_METER_PASSWORD"
KEYS = ("kwh", "meter_user", "meter_password", "prometheus", "prometheus_remote")
METER_TIMEOUT_S = 20.0  # how long to wait for a meter's first readings (measure, run, Monitor)
# pyserial passes any int to the OS; 50 baud is the lowest POSIX speed and 4 Mbaud the fastest FTDI/CP210x
# adapters. Anything else is a typo (1e12 used to end in a traceback from the tty layer).
BAUDRATE = click.IntRange(50, 4_000_000)
METER_HELP = (
    "Wall meter: /dev/ttyUSB0, a pty, socket://HOST:PORT, shelly://HOST, tasmota://HOST, kasa://HOST or manual "
    "(see `edgebench meter probe`)."
)
PROTOCOL_HELP = "Serial wire protocol: auto (listen, then ask), lines, tweetawatt, wattsup, um."


def _apply(options: list[Decorator], f: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(options):  # so that --help lists them in this order
        f = option(f)
    return f


def meter_option(dest: str = "meter") -> Decorator:
    """--meter METER (required): the wall meter's port or URL, into `dest`."""
    return click.option("--meter", dest, required=True, metavar="METER", help=METER_HELP)


def protocol_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--protocol NAME, default auto: the serial meter's wire protocol."""
    return click.option("--protocol", default="auto", show_default=True, help=PROTOCOL_HELP)(f)


def address_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--address ADDR: one sensor of a receiver (or of a log) that hears several Tweet-a-Watts."""
    return click.option(
        "--address", metavar="ADDR",
        help="Tweet-a-Watt sensor address (e.g. 0001) when one receiver hears several (`edgebench meter show` "
        "lists a log's).",
    )(f)  # fmt: skip


def calibration_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--calibration FILE: the Tweet-a-Watt calibration JSON (checked by the decoder when the meter opens)."""
    return click.option(
        "--calibration", type=click.Path(dir_okay=False, path_type=Path), help="Tweet-a-Watt calibration JSON."
    )(f)


def baudrate_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--baudrate N: the serial port's speed instead of the protocol's."""
    return click.option("--baudrate", type=BAUDRATE, help="Port speed instead of the protocol's (50-4000000).")(f)


def meter_timeout_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--meter-timeout S (into `meter_timeout_s`), default METER_TIMEOUT_S."""
    return click.option(
        "--meter-timeout", "meter_timeout_s", type=positive(max=MAX_TIMEOUT_S), default=METER_TIMEOUT_S, show_default=True,
        help="Seconds to wait for the meter's first readings.",
    )(f)  # fmt: skip


def plug_login_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--meter-user and --meter-password (or their environment variables): a smart plug's login."""
    return _apply([
        click.option("--meter-user", envvar=USER_ENV, metavar="USER",
                     help=f"Smart plug user (default admin; or ${USER_ENV})."),
        click.option("--meter-password", envvar=PASSWORD_ENV, metavar="PASSWORD",
                     help=f"Smart plug password (or ${PASSWORD_ENV}); never printed."),
    ], f)  # fmt: skip


def meter_access_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add --kwh, --meter-user, --meter-password, --prometheus and --prometheus-remote to a command."""
    options: list[Decorator] = [
        click.option("--kwh", is_flag=True,
                     help="With --meter manual: type the kWh counter at window edges instead of watts (long runs)."),
        plug_login_options,
        click.option("--prometheus", metavar="HOST:PORT",
                     help="Serve live watts for Prometheus here, e.g. 127.0.0.1:9464 (edgebench[prometheus])."),
        click.option("--prometheus-remote", is_flag=True,
                     help="Allow --prometheus on an address other machines reach (the endpoint has no password)."),
    ]  # fmt: skip
    return _apply(options, f)


def meter_options_from(values: dict[str, Any]) -> MeterOptions:
    """The MeterOptions of a command's keyword arguments; the keys are popped from `values`."""
    got = {key: values.pop(key, None) for key in KEYS}
    return MeterOptions(
        user=got["meter_user"] or None,
        password=got["meter_password"] or None,
        kwh=bool(got["kwh"]),
        prometheus=got["prometheus"] or None,
        prometheus_remote=bool(got["prometheus_remote"]),
    )
