"""The shared float option type: finite numbers only, bounds honoured, one-line usage errors."""

import click
import pytest
from click.testing import CliRunner

from edgebench.options import finite, non_negative, positive


@click.command()
@click.option("--x", type=positive())
@click.option("--y", type=non_negative())
@click.option("--z", type=finite(min=0, max=1))
def cmd(x, y, z):
    click.echo(f"{x} {y} {z}")


@pytest.mark.parametrize(
    "args",
    [["--x", "nan"], ["--x", "inf"], ["--x", "-inf"], ["--x", "1e309"], ["--x", "0"], ["--x", "-1"],
     ["--y", "-0.5"], ["--z", "1.5"], ["--x", "abc"], ["--y", "NaN"]],
)
def test_refused_with_usage_error(args):
    result = CliRunner().invoke(cmd, args)
    assert result.exit_code == 2
    assert "Invalid value" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_accepted_values():
    result = CliRunner().invoke(cmd, ["--x", "0.25", "--y", "0", "--z", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "0.25 0.0 1.0"
