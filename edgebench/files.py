"""Writing output files without clobbering what the path really is.

Every output file edgebench writes (tables, the HTML page, plots, the manifest, session.json, result.json...) goes
through `write_atomic`: the bytes go to a temporary file beside the target, are flushed to disk, and the temporary
file is renamed over the target, so a reader sees the old file or the new one, never half of one. The rename is
what must not happen to anything but a regular file:

- a device node, a FIFO or a socket at the path is refused with one line (renaming over `/dev/full` as root
  would turn the device node into a regular file; a FIFO's reader would never get the bytes);
- a symbolic link is followed: its target is written and the link stays a link (a dangling link's target is
  created);
- a directory is refused with one line.

A replaced file keeps its permission bits (and, for root, its owner); a new one gets the default mode (umask).
`move_into_place` does the rename for a file made elsewhere (an engine built in a temporary folder);
`open_append` opens a file for appending after the same checks (it never renames). `read_json` reads a JSON
file edgebench or a user wrote, turning every way it can be unreadable into one line.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import uuid
from pathlib import Path
from typing import IO, Any

from .errors import BadInput, EdgebenchError

_KINDS = (
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)
# errors that mean "this path is not one you can write": the user's to fix (exit 2); others are failures (exit 1)
_USER_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ELOOP}


def _label(path: Path, what: str) -> str:
    return f"{what} {path}" if what else str(path)


def output_path(path: str | Path, what: str = "") -> Path:
    """Where writing `path` really lands: the path itself, or a symlink's final target. BadInput when that is a
    device node, FIFO, socket or directory. `what` names the option in messages (e.g. "--html")."""
    given = Path(path)
    try:
        target = given.resolve(strict=False) if given.is_symlink() else given
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        raise BadInput(f"{_label(given, what)} is a symbolic link that never ends in a file: fix or remove it") from None
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        return target
    except OSError as exc:
        raise _error(given, what, exc) from None
    if stat.S_ISREG(mode):
        return target
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    shown = f"{_label(given, what)} ({target})" if target != given else _label(given, what)
    raise BadInput(f"{shown} is {kind}, not a regular file: give the path of a file to write")


def write_atomic(path: str | Path, data: str | bytes, what: str = "") -> Path:
    """Write `data` (text is UTF-8) to `path` atomically; returns the path written (a symlink's target).

    BadInput (one line) when the path is a device node, FIFO, socket or directory, or cannot be written for a
    reason the user can fix (permissions, a missing folder, a read-only file system); EdgebenchError otherwise.
    """
    target = output_path(path, what)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        # O_EXCL: never through someone else's file or link at the temporary name; 0o666 less the umask
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(payload)
                stream.flush()
                os.fsync(stream.fileno())
            _keep_mode_and_owner(target, tmp)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise _error(Path(path), what, exc) from None
    return target


def move_into_place(made: str | Path, path: str | Path, what: str = "") -> Path:
    """Rename the finished file `made` (in the same file system) to `path`, with `write_atomic`'s checks."""
    target = output_path(path, what)
    try:
        _keep_mode_and_owner(target, Path(made))
        os.replace(made, target)
    except OSError as exc:
        raise _error(Path(path), what, exc) from None
    return target


def open_append(path: str | Path, what: str = "", newline: str | None = None) -> IO[str]:
    """`path` opened for appending text (created if missing), after `output_path`'s checks."""
    target = output_path(path, what)
    try:
        return open(target, "a", encoding="utf-8", newline=newline)
    except OSError as exc:
        raise _error(Path(path), what, exc) from None


def _keep_mode_and_owner(target: Path, new: Path) -> None:
    try:
        old = target.stat()
    except FileNotFoundError:
        return
    os.chmod(new, stat.S_IMODE(old.st_mode))
    if os.geteuid() == 0:  # root replacing a user's file leaves it theirs
        try:
            os.chown(new, old.st_uid, old.st_gid)
        except OSError:
            pass  # a file system without owners (vfat): the mode is what matters


def _error(path: Path, what: str, exc: OSError) -> EdgebenchError:
    reason = exc.strerror or type(exc).__name__
    if exc.errno in _USER_ERRNOS:
        return BadInput(f"cannot write {_label(path, what)} ({reason}): give a path you can write to")
    return EdgebenchError(f"cannot write {_label(path, what)} ({reason})")


def read_json(path: str | Path, hint: str) -> Any:
    """The JSON document in `path`. BadInput, one line ending with `hint` (what to do), when the file cannot be
    read, is not UTF-8, is not JSON, nests deeper than the parser goes (a 100,000-deep `[[[...`), or holds an
    integer too long to convert (Python's 4,300-digit limit). Its values still need checking by the caller."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read {path} ({exc.strerror or type(exc).__name__}): {hint}") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not UTF-8 text: {hint}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path} is not JSON ({exc.msg}, line {exc.lineno}): {hint}") from None
    except RecursionError:
        raise BadInput(f"{path} nests deeper than any JSON edgebench writes: {hint}") from None
    except ValueError as exc:  # an integer of more than 4,300 digits
        raise BadInput(f"{path} holds a number edgebench cannot read ({str(exc).split(';')[0]}): {hint}") from None
