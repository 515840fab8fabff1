"""`python -m edgebench` is the same program as the `edgebench` console script (the tests otherwise start the
console script, so without this the module entry point would run in no fast test)."""

import subprocess
import sys

from edgebench import __version__


def test_python_dash_m_edgebench_is_the_cli():
    proc = subprocess.run([sys.executable, "-m", "edgebench", "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "edgebench", "no-such-command"], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "No such command" in bad.stderr
