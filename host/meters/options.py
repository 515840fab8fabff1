"""The meter options shared by `meter log`, `measure` and `run`: smart-plug credentials, the manual meter's kWh
counter mode, and the Prometheus endpoint. One decorator so each command spells them the same way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from edgebench.host.logger import MeterOptions

USER_ENV, PASSWORD_ENV = "EDGEBENCH_METER_USER", "EDGEBENCH_METER_PASSWORD"
KEYS = ("kwh", "meter_user", "meter_password", "prometheus", "prometheus_remote")


def meter_access_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add --kwh, --meter-user, --meter-password, --prometheus and --prometheus-remote to a command."""
    options = [
        click.option("--kwh", is_flag=True,
                     help="With --meter manual: type the kWh counter at window edges instead of watts (long runs)."),
        click.option("--meter-user", envvar=USER_ENV, metavar="USER",
                     help=f"Smart plug user (default admin; or ${USER_ENV})."),
        click.option("--meter-password", envvar=PASSWORD_ENV, metavar="PASSWORD",
                     help=f"Smart plug password (or ${PASSWORD_ENV}); never printed."),
        click.option("--prometheus", metavar="HOST:PORT",
                     help="Serve live watts for Prometheus here, e.g. 127.0.0.1:9464 (edgebench[prometheus])."),
        click.option("--prometheus-remote", is_flag=True,
                     help="Allow --prometheus on an address other machines reach (the endpoint has no password)."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


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
