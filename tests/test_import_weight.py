"""Short commands start without numpy (issue 16 item 3): `edgebench --help`, `edgebench carbon` and the records
module (which every command imports) load it only where arrays are made. Checked in a fresh interpreter, by what
it imported; speed itself is measured by scripts/bench_pairing.py (help-time), not here."""

import subprocess
import sys

import pytest

PROBE = """
import sys
from edgebench.cli import main
try:
    main({argv!r})
except SystemExit:
    pass
import edgebench.records
heavy = sorted(m for m in ("numpy", "pandas", "onnxruntime", "onnx", "serial") if m in sys.modules)
print("HEAVY:" + ",".join(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv", [["--help"], ["carbon", "--energy", "0.386J", "--grid", "RFCW", "--egrid", "2019"], ["pair", "--help"]]
)
def test_short_commands_import_no_numpy(argv):
    done = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True, timeout=60)
    heavy = [line for line in done.stderr.splitlines() if line.startswith("HEAVY:")]
    assert heavy == ["HEAVY:"], done.stderr
    assert done.stdout.strip(), done.stderr  # the command did run


def test_records_round_trip_without_numpy():
    """A RunRecord is written and read back by a process that never imports numpy."""
    code = """
import sys, tempfile, os
from edgebench.records import RunRecord, append_jsonl, read_run_records
r = RunRecord(engine="e_1_8_8_fp32", backend="b", clock="host:realtime", window_start_ns=1, window_end_ns=2,
              iterations=1, batch=1, latencies_ns=(5,))
path = os.path.join(tempfile.mkdtemp(), "runs.jsonl")
append_jsonl(path, [r])
assert read_run_records(path) == [r]
print("numpy" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
