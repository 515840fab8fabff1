"""The `edgebench` command line.

Subcommands are imported only when they run, so `edgebench --help` is instant and a missing optional backend
(TensorRT, NVML) is reported only by the command that needs it. Every EdgebenchError becomes one line on stderr
and its exit code (2 for bad input, 1 for failures); never a traceback for a user mistake.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from .errors import EdgebenchError

# name -> ("module", "attribute", "one-line help shown by `edgebench --help`")
COMMANDS: dict[str, tuple[str, str, str]] = {
    "build-engines": ("edgebench.engines.cli", "build_engines", "Build a sweep of inference engines."),
    "eval": ("edgebench.engines.eval_cli", "eval_engines", "Top-1/top-5 accuracy of built engines on a labelled dataset."),
    "train-probe": ("edgebench.engines.eval_cli", "train_probe", "Fit a linear probe on backbone features: a real classifier."),
    "study": ("edgebench.agent.study_cli", "study", "Lab 2's input-size and model-size studies: accuracy vs cost."),
    "bench": ("edgebench.agent.cli", "bench", "Time engines on this machine (like trtexec / pyperf)."),
    "info": ("edgebench.agent.cli", "info", "Hardware and software this runs on."),
    "sensors": ("edgebench.agent.sensors.cli", "sensors", "On-board power sources, rails and a live reading."),
    "rails": ("edgebench.agent.sensors.cli", "rails", "Parse a recorded tegrastats log into rail samples."),
    "agent": ("edgebench.agent.serve", "agent", "Serve the agent protocol (stdio or TCP)."),
    "meter": ("edgebench.host.meters.cli", "meter", "Wall meters: log, probe, show, emulate."),
    "measure": ("edgebench.host.measure", "measure", "Measure every engine's wall energy: the ranked table."),
    "pair": ("edgebench.host.cli", "pair", "Pair agent run records with a meter log, offline."),
    "report": ("edgebench.host.cli", "report", "Re-render the ranked table of a measure directory."),
    "carbon": ("edgebench.host.cli", "carbon", "Convert energy to kWh and CO2 with a grid factor."),
    "run": ("edgebench.host.run", "run", "Measure any command at the wall: idle baseline, energy, CO2."),
    "train-estimate": ("edgebench.host.run", "train_estimate", "Lab 9's training footprint from a short measured run."),
}


def edgebench_argv() -> list[str]:
    """How to run this very edgebench in a subprocess: the console script beside this interpreter when there is
    one (`python -m edgebench` run from a source checkout would import the checkout's `edgebench/` folder instead
    of the installed package), else `python -m edgebench`."""
    script = Path(sys.executable).with_name("edgebench")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "edgebench"]


class LazyGroup(click.Group):
    """A click group whose subcommands live in other modules and are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, attr, _ = COMMANDS[cmd_name]
        module = importlib.import_module(module_name)
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Help text comes from the table so that `--help` imports nothing.
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EdgebenchError as exc:
            click.echo(f"edgebench: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="edgebench")
def cli() -> None:
    """Energy and carbon per inference for every engine variant on an edge device.

    On the device: `edgebench build-engines`, `edgebench bench`. On the host: `edgebench measure --meter
    /dev/ttyUSB0` pairs a wall meter with the agent's runs and prints a ranked per-engine energy table.
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="edgebench")


if __name__ == "__main__":  # pragma: no cover
    main()
