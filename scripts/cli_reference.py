"""Write docs/cli.md, the CLI reference, from the commands' own --help (so the two cannot drift apart).

    python scripts/cli_reference.py            # rewrite docs/cli.md
    python scripts/cli_reference.py --check    # exit 1 if docs/cli.md is out of date (tests run this)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import click

from edgebench.cli import COMMANDS, cli

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
WIDTH = 110

HEADER = """# CLI reference

Generated from each command's `--help` by `python scripts/cli_reference.py`; a test fails when a command or an
option is missing here.
Every command prints results on stdout and diagnostics on stderr; a mistake in the call or the set-up is one
line `edgebench: error: ...` saying what to do, with exit code 2 (1 for a failure while working).
"""


def _help(command: click.Command, path: list[str]) -> str:
    parent = click.Context(cli, info_name="edgebench", max_content_width=WIDTH, terminal_width=WIDTH)
    ctx = click.Context(command, info_name=path[-1], parent=parent, max_content_width=WIDTH, terminal_width=WIDTH)
    return command.get_help(ctx)


def _sections(command: click.Command, path: list[str]):
    yield path, _help(command, path)
    if isinstance(command, click.Group):
        for name in command.list_commands(click.Context(command)):
            yield from _sections(command.get_command(click.Context(command), name), [*path, name])


def render() -> str:
    parts = [HEADER]
    for name in sorted(COMMANDS):
        command = cli.get_command(click.Context(cli), name)
        for path, text in _sections(command, [name]):
            parts.append(f"\n## edgebench {' '.join(path)}\n\n```text\n{text.rstrip()}\n```\n")
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that docs/cli.md is current")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not DOC.is_file() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is out of date: run `python scripts/cli_reference.py`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
