import subprocess
import sys

from click.testing import CliRunner

from edgebench.cli import COMMANDS, cli


def test_help_lists_every_command_without_importing_them():
    code = (
        "import sys; from edgebench.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('onnxruntime', 'onnx', 'pandas', 'serial') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert name in out
    assert "HEAVY []" in out


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_cli_reference_lists_every_command_and_option():
    """docs/cli.md is generated (scripts/cli_reference.py); a new command or option without a rerun fails here."""
    from pathlib import Path

    import click

    doc = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    sections = {part.split("\n", 1)[0]: part for part in doc.split("\n## edgebench ")[1:]}

    def check(command, path):
        section = sections.get(" ".join(path))
        assert section is not None, f"docs/cli.md has no section for edgebench {' '.join(path)}"
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert any(opt in section for opt in param.opts), f"{' '.join(path)}: {param.opts} not in docs/cli.md"
        if isinstance(command, click.Group):
            for name in command.list_commands(click.Context(command)):
                check(command.get_command(click.Context(command), name), [*path, name])

    for name in COMMANDS:
        check(cli.get_command(click.Context(cli), name), [name])
