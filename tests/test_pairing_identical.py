"""Pairing a recorded session gives byte-identical tables whether the meter log is read whole (the code before
issue 16) or only where the windows need it (`store.load_windows`).

The session is written by the project's own writers (`open_store`, `append_jsonl`, `MeasureDir.write_session`)
from seeded data, so it is the same session on every run. Its windows cover what pairing derives from the trace:
edges between readings (interpolated), windows next to each other (one's neighbour inside the other), a window
over a logged gap, one over a silent stretch with no gap logged, one too short for the meter, one reaching past
the end of the log, a failed one, idle windows, and two runs with their own clock offsets.

tests/data/recorded_session/*.txt is what the code before the change printed for it (re-written when the table's
format changed for issue 14, after checking that pairing the whole log with `load_trace` gives those very bytes);
to write it again with whichever edgebench is importable: `python tests/test_pairing_identical.py
tests/data/recorded_session`.
"""

from __future__ import annotations

import sys
from pathlib import Path

EPOCH = 1_767_225_600_000_000_000
S = 1_000_000_000
FIXTURE = Path(__file__).parent / "data" / "recorded_session"
RUNS = {"20260101T000000-aaaaaa": 1_250_000, "20260101T010000-bbbbbb": -3_400_000}  # run_id -> host - agent
COMMANDS = {  # fixture file -> edgebench arguments ({d}: the session directory)
    "report_table.txt": ["report", "{d}"],
    "report_json.txt": ["report", "{d}", "--format", "json"],
    "pair_json.txt": ["pair", "{d}/runs.jsonl", "{d}/meter.sqlite", "--clock-offset", "1250000",
                      "--clock-uncertainty", "100us", "--format", "json"],
}  # fmt: skip


def write_session(d: Path) -> None:
    """The recorded session (see the module docstring) in directory `d`."""
    import numpy as np

    from edgebench.host.carbon import egrid_factor
    from edgebench.host.measuredir import MeasureDir, Session
    from edgebench.host.store import open_store
    from edgebench.records import ClockOffset, MeterReading, RailEnergy, RunRecord, append_jsonl

    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(16)
    # 400 s at 10 readings/s, a few ms of arrival jitter; a 6 s silence at 250 s logged as a gap, a 2 s one at
    # 300 s not logged (the meter said nothing, the logger noticed nothing)
    t_s = np.arange(0, 400, 0.1)
    t_s = t_s[~(((t_s >= 250) & (t_s < 256)) | ((t_s >= 300) & (t_s < 302)))]
    t_ns = EPOCH + np.round(t_s * S).astype(np.int64) + rng.integers(0, 4_000_000, len(t_s))
    power = 3.0 + 0.02 * rng.standard_normal(len(t_s))
    for a, b, w in [(40, 80, 7.0), (90, 130, 5.5), (140, 180, 9.25), (190, 245, 6.0), (258, 330, 8.0)]:
        inside = (t_s >= a) & (t_s < b)
        power[inside] = w + 0.05 * rng.standard_normal(int(inside.sum()))
    with open_store(d / "meter.sqlite") as store:
        store.set_meta(meter="wattsup PRO", protocol="wattsup", resolution_w=0.1, nominal_period_s=0.1)
        for t, p in zip(t_ns.tolist(), np.round(power, 1).tolist(), strict=True):
            store.add(MeterReading(t_ns=t, power_w=p, meter="wattsup PRO", voltage_v=230.0))
        store.add_gap(EPOCH + 249_950_000_000, EPOCH + 256_000_000_000, "meter silent")

    first, second = RUNS
    records = []

    def window(engine, run_id, a_s, b_s, iterations, batch, kind="run", **extra):
        offset = RUNS[run_id]
        lat = tuple(int(x) for x in rng.integers(20_000_000, 30_000_000, iterations)) if kind == "run" else ()
        records.append(RunRecord(
            engine=engine, backend="onnxruntime", clock="agent:realtime",
            window_start_ns=EPOCH + int(a_s * S) - offset, window_end_ns=EPOCH + int(b_s * S) - offset,
            iterations=iterations, batch=batch, latencies_ns=lat, kind=kind, run_id=run_id, repeat=len(records),
            device={"board.model": "Raspberry Pi 5"}, **extra,
        ))  # fmt: skip

    window("idle", first, 2.03, 37.97, 0, 0, kind="idle")
    window("resnet18_1_224_224_fp32", first, 41.234, 60.001, 750, 1)
    window("resnet18_1_224_224_fp32", first, 60.001, 79.55, 780, 1)  # starts where the last one ended
    window("mobilenet_v2_4_224_224_fp16", first, 91.05, 129.96, 1500, 4,
           rail_energy=RailEnergy("ina3221", "VDD_IN", 160.5, 4.125, 390))
    window("squeezenet1_1_2_224_224_fp16", first, 141.0, 141.7, 30, 2)  # too short for 10 readings
    window("squeezenet1_1_2_224_224_fp16", first, 142.0, 179.0, 1400, 2)
    window("resnet50_1_224_224_fp32", first, 150.0, 150.0, 0, 1, error="out of memory")  # never ran
    window("idle", second, 182.5, 188.5, 0, 0, kind="idle")
    window("efficientnet_b0_1_224_224_fp32", second, 191.02, 244.7, 2000, 1)
    window("efficientnet_b0_1_224_224_fp32", second, 247.0, 262.0, 600, 1)  # over the logged gap
    window("vit_tiny_1_224_224_fp32", second, 290.0, 320.0, 1100, 1)  # over the silence with no gap logged
    window("vit_tiny_1_224_224_fp32", second, 320.5, 329.5, 330, 1)
    window("vit_tiny_1_224_224_fp32", second, 395.0, 405.0, 330, 1)  # past the end of the log
    append_jsonl(d / "runs.jsonl", records)
    clock = {run_id: ClockOffset(offset_ns=off, uncertainty_ns=100_000, method="ntp-style, 8 round trips")
             for run_id, off in RUNS.items()}  # fmt: skip
    MeasureDir(d).write_session(
        Session(grid=egrid_factor("RFCW", 2019), meter="wattsup PRO", resolution_w=0.1, pue=1.1, clock=clock)
    )


def outputs(d: Path) -> dict[str, str]:
    """What each command of COMMANDS prints on stdout for session `d`."""
    from click.testing import CliRunner

    from edgebench.cli import cli
    from edgebench.host.measuredir import MeasureDir

    out = {}
    for name, args in COMMANDS.items():
        result = CliRunner().invoke(cli, [a.format(d=d) for a in args])
        assert result.exit_code == 0, result.output
        out[name] = result.stdout
    out["windows.txt"] = "".join(f"{w!r}\n" for w in MeasureDir(d).pair().windows)  # every field, every reason
    return out


def test_pairing_is_byte_identical_to_the_whole_log_read(tmp_path):
    d = tmp_path / "session"
    write_session(d)
    got = outputs(d)
    for name, text in got.items():
        assert text == (FIXTURE / name).read_text(), name
    # the session holds what the docstring says: each case pairing tells apart is met
    for reason in ("a logged meter gap overlaps the window", "meter silent for", "meter readings in the",
                   "meter log covers", "reason='out of memory'"):  # fmt: skip
        assert reason in got["windows.txt"], reason


if __name__ == "__main__":
    import tempfile

    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        write_session(Path(tmp) / "session")
        for name, text in outputs(Path(tmp) / "session").items():
            (target / name).write_text(text)
            print(f"wrote {target / name}")
