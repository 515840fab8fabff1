"""Terminal conventions shared by every command: results on stdout, diagnostics on stderr.

Warnings go to stderr prefixed `warning:`; progress bars appear only when stderr is a terminal; colour only when
NO_COLOR is unset and the stream is a terminal.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, TypeVar

import click

T = TypeVar("T")


def use_color(stream: IO[str] | None = None) -> bool:
    """True when colour may be used on `stream` (stderr by default): a terminal and NO_COLOR unset."""
    stream = stream or sys.stderr
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def is_interactive() -> bool:
    """True when stderr is a terminal (progress bars and live lines are worth drawing)."""
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def warn(message: str) -> None:
    """One warning line on stderr; say what to do about it in the message."""
    text = f"warning: {message}"
    click.echo(click.style(text, fg="yellow") if use_color() else text, err=True)


def note(message: str) -> None:
    """One diagnostic line on stderr."""
    click.echo(message, err=True)


@contextmanager
def progress(items: Iterable[T], label: str, length: int | None = None) -> Iterator[Iterable[T]]:
    """A click progress bar over `items` on a terminal; the bare iterable otherwise."""
    if is_interactive():
        with click.progressbar(items, label=label, length=length, file=sys.stderr) as bar:
            yield bar
    else:
        yield items
