"""Writing a fake program (a vcgencmd, a tegrastats, a sudo) that a test then runs.

Linux refuses to run a file that any process holds open for writing (ETXTBSY, "Text file busy"). A file written
by the test process itself is held so for a moment, and a fork by any other thread of that process in that
moment (a sensor's reader, an emulator, a subprocess call) hands the child a copy of the write descriptor until
the child execs. On a busy machine that moment stretches, and the run that follows fails with ETXTBSY (a stress
run hit it once in 10 whole-suite runs). So the file is written by a short-lived `sh` instead: no descriptor of
this process ever holds it open for writing, and the writer has exited when this returns.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def write_program(path: Path, text: str | bytes, mode: int = 0o755) -> str:
    """Write `text` to `path`, set `mode` (executable by default) and return the path as a string."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    subprocess.run(
        ["sh", "-c", 'cat > "$1" && chmod "$2" "$1"', "sh", str(path), format(mode, "o")],
        input=data,
        check=True,
    )
    return str(path)
