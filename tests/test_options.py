"""The shared float option type: finite numbers only, bounds honoured, one-line usage errors. And options and
constants defined once (issue 15 item 6): every command that takes an option of one meaning gets the same click
option (flag, type, default, help), and the library's defaults are the options' defaults."""

import inspect

import click
import pytest
from click.testing import CliRunner

from edgebench.cli import COMMANDS, cli
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


# --- options of one meaning, defined once ---------------------------------------------------------------------

MEANINGS = {
    # option name -> the commands where it means the same thing (input HxW and the meter's W are two meanings)
    "--pue": ["pair", "carbon", "measure", "run"],
    "--min-samples": ["pair", "measure", "run"],
    "meter --resolution": ["pair", "measure", "run"],
    "input --resolution": ["train-probe", "study model-size"],  # one input size
    "inputs --resolution": ["build-engines", "study input-size"],  # several: the same definition, `multiple`
    "--meter-timeout": ["measure", "run"],
    "--idle": ["measure", "run"],
    "--meter": ["measure", "run", "meter log"],
    "--protocol": ["measure", "run", "meter log"],
    "--address": ["pair", "measure", "run"],
    "--calibration": ["measure", "meter log"],
    "--baudrate": ["measure", "meter log", "meter probe"],
    "--meter-user": ["measure", "run", "meter log", "meter probe"],
    "--grid": ["pair", "report", "carbon", "measure", "run", "train-estimate"],
    "--egrid": ["pair", "report", "carbon", "measure", "run", "train-estimate"],
    "--country": ["pair", "report", "carbon", "measure", "run", "train-estimate"],
    "--intensity": ["pair", "report", "carbon", "measure", "run", "train-estimate"],
    "--sort": ["pair", "report", "measure"],
    "--format": ["pair", "report"],
    "--emissions-csv": ["pair", "report", "run"],
    "--engines": ["measure", "eval", "agent"],
    "--engine": ["measure", "eval", "bench"],
    "--threads": ["measure", "bench"],
    "--sensor": ["measure", "bench", "agent", "study input-size", "study model-size"],
    "--sensor-period-ms": ["bench", "agent"],
    "--sensor-root": ["bench", "agent"],
    "--tegrastats": ["bench", "sensors"],
    "--mean": ["eval", "train-probe", "study input-size", "study model-size"],
    "--token": ["measure", "agent"],
}


def _command(path: str) -> click.Command:
    ctx = click.Context(cli)
    command = cli.get_command(ctx, path.split()[0])
    for word in path.split()[1:]:
        command = command.get_command(ctx, word)
    return command


def _option(path: str, name: str) -> click.Option:
    matches = [p for p in _command(path).params if name in p.opts]
    assert len(matches) == 1, f"edgebench {path} has no {name}"
    return matches[0]


OWN_DEFAULT = {"--sensor": "bench samples nothing unless asked; the others sample what they find"}


def _shape(option: click.Option) -> tuple:
    """What makes two options the same: everything but the Python name (`meter log` calls --meter `url`), the
    help's command-specific tail, and the default where a command has its own (OWN_DEFAULT)."""
    info = option.type.to_info_dict()
    return (tuple(option.opts), repr(sorted(info.items())), option.multiple, option.metavar, option.envvar)


def _default(option: click.Option):
    default = option.default
    return None if type(default).__name__ == "Sentinel" else default  # click 8.3's UNSET: no default


@pytest.mark.parametrize("meaning", sorted(MEANINGS))
def test_an_option_of_one_meaning_is_one_definition(meaning):
    name = meaning.split()[-1]
    options = {path: _option(path, name) for path in MEANINGS[meaning]}
    assert len({_shape(o) for o in options.values()}) == 1, {path: _shape(o) for path, o in options.items()}
    if name not in OWN_DEFAULT:
        assert len({repr(_default(o)) for o in options.values()}) == 1, {p: _default(o) for p, o in options.items()}
    # the help may end in a command's own words, after the shared ones
    first_words = {" ".join((o.help or "").split()[:2]) for o in options.values()}
    assert len(first_words) == 1, first_words


def test_the_two_resolutions_are_two_options():
    meter, size = _option("pair", "--resolution"), _option("train-probe", "--resolution")
    assert (meter.name, meter.metavar) == ("resolution_w", "W") and "W" in meter.help
    assert (size.name, size.metavar, size.default) == ("resolution", "HxW", "32x32")
    assert _option("build-engines", "--resolution").multiple and _option("study input-size", "--resolution").required


def test_options_with_a_default_elsewhere_say_which():
    for path, words in (("report", "the session's"), ("train-estimate", "the run's")):
        pue = _option(path, "--pue")
        assert _default(pue) is None and words in pue.help
        assert _shape(pue) == _shape(_option("pair", "--pue"))


def test_the_libraries_defaults_are_the_options_defaults():
    from edgebench.agent.harness import DEFAULT_DURATION_S, DEFAULT_WARMUP_S, time_limits
    from edgebench.agent.options import SENSOR_PERIOD_S
    from edgebench.agent.sensors.sampler import Sampler
    from edgebench.host.measure import MeasureConfig
    from edgebench.host.meters.options import METER_TIMEOUT_S
    from edgebench.host.monitor import Monitor
    from edgebench.host.options import DEFAULT_PUE, MIN_SAMPLES
    from edgebench.host.pairing import pair

    assert MIN_SAMPLES == 10 and METER_TIMEOUT_S == 20.0 and SENSOR_PERIOD_S == 0.01
    assert inspect.signature(pair).parameters["min_samples"].default == MIN_SAMPLES
    monitor = inspect.signature(Monitor).parameters
    assert (monitor["min_samples"].default, monitor["meter_timeout_s"].default) == (MIN_SAMPLES, METER_TIMEOUT_S)
    assert monitor["pue"].default == DEFAULT_PUE
    config = {f.name: f.default for f in MeasureConfig.__dataclass_fields__.values()}
    assert (config["min_samples"], config["meter_timeout_s"], config["pue"]) == (MIN_SAMPLES, METER_TIMEOUT_S, 1.0)
    for path in ("pair", "measure", "run"):
        assert _option(path, "--min-samples").default == MIN_SAMPLES
    for path in ("measure", "run"):
        assert _option(path, "--meter-timeout").default == METER_TIMEOUT_S
    assert inspect.signature(Sampler).parameters["period_s"].default == SENSOR_PERIOD_S
    for path in ("bench", "agent"):
        assert _option(path, "--sensor-period-ms").default == SENSOR_PERIOD_S * 1000
    # the harness's window limit is computed from the same warm-up and duration bench's help states
    assert time_limits().window_s == pytest.approx(DEFAULT_WARMUP_S + DEFAULT_DURATION_S + 120.0)
    assert f"default {DEFAULT_WARMUP_S:g} s" in _option("bench", "--warmup-time").help


def test_the_sensor_names_in_the_help_are_the_probe_order():
    from edgebench.agent.sensors.base import PROBE_ORDER
    from edgebench.options import SENSOR_NAMES

    assert SENSOR_NAMES == ", ".join(PROBE_ORDER)


def test_every_command_module_is_covered():
    """A new command is either in MEANINGS where it shares an option, or shares none (a reminder to look)."""
    listed = {path.split()[0] for paths in MEANINGS.values() for path in paths}
    assert listed <= set(COMMANDS) | {"meter", "study"}


# --- every numeric option, fuzzed (issue 18): refused at parsing in one line, or checked where it is used ------

NOT_A_NUMBER = ["nan", "inf", "-inf", "1e309", "true", "1" + "0" * 5000, "0x10", "", "1,5"]
HUGE = ["1e308", str(10**400), "-" + str(10**400)]
# Options without an upper bound: the result they feed is checked where it is computed, one line when it
# overflows; each has its end-to-end fuzz test.
CARBON_FUZZ = "tests/test_carbon.py::test_carbon_numeric_options_never_print_inf_or_trace"
LIFETIME_FUZZ = "tests/test_carbon.py::test_report_lifetime_counts_images_and_refuses_overflow"
CHECKED_WHERE_USED = {
    ("carbon", "--hours"): CARBON_FUZZ,
    ("carbon", "--per-day"): CARBON_FUZZ,
    ("carbon", "--years"): CARBON_FUZZ,
    ("report", "--per-day"): LIFETIME_FUZZ,
    ("report", "--years"): LIFETIME_FUZZ,
}


def _leaf_commands(group: click.Group = cli, path: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _leaf_commands(command, (*path, name))
        else:
            yield (*path, name), command


def _numeric_options():
    from edgebench.options import FiniteFloat

    numeric = (click.types.IntParamType, click.types.FloatParamType, FiniteFloat)
    return [
        (path, param)
        for path, command in _leaf_commands()
        for param in command.params
        if isinstance(param, click.Option) and isinstance(param.type, numeric) and not param.is_flag
    ]


def test_every_numeric_option_refuses_what_is_not_a_sane_number_in_one_line(tmp_path, monkeypatch):
    """nan, inf, overflowing literals, booleans, hex, empty, 400- and 5000-digit integers and 1e308, on every
    numeric option of every command: a usage error naming the option (exit 2), before any work and without a
    traceback. Only the options of CHECKED_WHERE_USED take huge values (their results are checked)."""
    monkeypatch.chdir(tmp_path)  # a regression that accepts a value runs its command here, not in the repository
    options = _numeric_options()
    assert len(options) > 50  # the walk found the commands (lazily loaded) and their options
    for path, param in options:
        values = NOT_A_NUMBER + ([] if (path[0], param.opts[0]) in CHECKED_WHERE_USED else HUGE)
        for value in values:
            res = CliRunner().invoke(cli, [*path, f"{param.opts[0]}={value}"])
            where = f"edgebench {' '.join(path)} {param.opts[0]}={value[:12]}"
            assert res.exit_code == 2, (where, res.output)
            assert res.exception is None or isinstance(res.exception, SystemExit), (where, repr(res.exception))
            assert "Invalid value" in res.output and param.opts[0] in res.output, (where, res.output)
            assert "Traceback" not in res.output


def test_the_options_checked_where_used_exist_and_are_unbounded():
    """CHECKED_WHERE_USED names real options (a renamed one would silently escape the test above)."""
    unbounded = {(path[0], param.opts[0]) for path, param in _numeric_options() if getattr(param.type, "max", 0) is None}
    assert set(CHECKED_WHERE_USED) <= unbounded
