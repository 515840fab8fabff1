"""The device side's defaults and the options that show them, shared by `bench`, `agent`, `sensors` and `study`.

The harness, the sampler and the study read the same constants, so a default said in `--help` is the default
that runs. numpy-free (the harness and the sampler are not): `--help` stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from edgebench.options import positive

DEFAULT_WARMUP_S = 0.2  # trtexec --warmUp default (200 ms)
DEFAULT_DURATION_S = 3.0  # trtexec --duration default (3 s)
MIN_ITERATIONS = 10  # trtexec's minimum of measured iterations in a window given in seconds
SENSOR_PERIOD_S = 0.01  # on-board power sampling period: 100 readings/s, several per inference of a small model


def sensor_period_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--sensor-period-ms (into `sensor_period_ms`), default SENSOR_PERIOD_S in ms."""
    return click.option(
        "--sensor-period-ms", type=positive(max=3_600_000.0), default=SENSOR_PERIOD_S * 1000.0, show_default=True,
        help="Sampling period of the on-board sensor (tegrastats: its --interval).",
    )(f)  # fmt: skip


def sensor_root_option(name: str = "--sensor-root") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The filesystem root sysfs and /proc are read under (`--sensor-root`; `sensors` calls it `--sysfs-root`)."""
    return click.option(
        name, type=click.Path(path_type=Path, file_okay=False, exists=True), default=Path("/"), show_default=True,
        help="Filesystem root that sysfs and /proc are read under (a fake tree for testing).",
    )  # fmt: skip


def tegrastats_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """--tegrastats CMD (into `tegrastats_cmd`): how to run tegrastats."""
    return click.option(
        "--tegrastats", "tegrastats_cmd", default="tegrastats", show_default=True, metavar="CMD",
        help="How to run tegrastats (its rails need root), e.g. \"sudo -n tegrastats\".",
    )(f)  # fmt: skip
