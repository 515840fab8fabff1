"""Every file of a measure directory, corrupted the ways disks, editors and killed processes corrupt files:
`report`, `pair` and `measure --resume` answer each with one line naming the file (and the line, where there is
one) and exit 2; never a traceback."""

import json
import sqlite3

import numpy as np
import pytest
from click.testing import CliRunner

from edgebench.cli import cli
from edgebench.host.carbon import egrid_factor
from edgebench.host.measuredir import MeasureDir, Session
from edgebench.host.store import open_store
from edgebench.records import ClockOffset, MeterReading, RunRecord, append_jsonl

EPOCH = 1_700_000_000_000_000_000
S = 1_000_000_000
RUN_ID = "20261201T000000-abcdef"


def _good_dir(d, meter="sqlite"):
    """A small, valid measure directory: an idle window and two engines over a 60 s meter log."""
    d.mkdir(parents=True, exist_ok=True)
    log = d / f"meter.{meter}"
    with open_store(log) as store:
        store.set_meta(resolution_w=0.1)  # so no reading is read to infer it: only the windows' are read
        for t in np.arange(0, 60, 0.1):
            store.add(MeterReading(t_ns=EPOCH + int(round(t * S)), power_w=2.0 if t < 20 else 6.0, meter="test"))

    def rec(engine, a, b, iterations, kind="run"):
        return RunRecord(
            engine=engine, backend="onnxruntime", clock="agent:realtime", window_start_ns=EPOCH + a * S,
            window_end_ns=EPOCH + b * S, iterations=iterations, batch=1, latencies_ns=(50_000_000,) * iterations,
            kind=kind, run_id=RUN_ID,
        )

    append_jsonl(d / "runs.jsonl", [rec("idle", 2, 18, 0, "idle"), rec("resnet18_1_32_32_fp32", 22, 38, 320),
                                    rec("mobilenet_v2_1_32_32_fp32", 42, 58, 320)])
    MeasureDir(d).write_session(
        Session(grid=egrid_factor("RFCW", 2019), meter="test", clock={RUN_ID: ClockOffset(offset_ns=0)})
    )
    return d


def _append_line(name, line: bytes):
    def corrupt(d):
        with (d / name).open("ab") as f:
            f.write(line)
    return corrupt


def _replace_json(name, value):
    def corrupt(d):
        (d / name).write_text(value if isinstance(value, str) else json.dumps(value))
    return corrupt


def _edit_json(name, edit):
    def corrupt(d):
        data = json.loads((d / name).read_text())
        edit(data)
        (d / name).write_text(json.dumps(data))
    return corrupt


def _sqlite(statement):
    def corrupt(d):
        with sqlite3.connect(d / "meter.sqlite") as db:
            db.execute(statement)
    return corrupt


def _raw(name, data: bytes):
    def corrupt(d):
        (d / name).write_bytes(data)
    return corrupt


def _truncate(name, keep: int):
    def corrupt(d):
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[:keep])
    return corrupt


RUN_LINE = ('{"type":"RunRecord","engine":"e","clock":"agent:realtime","window_start_ns":1,"window_end_ns":2,'
            '"iterations":1,"batch":1')

RUNS = [
    ("non-utf8", _append_line("runs.jsonl", b"\xff\xfe\xfa\n"), "runs.jsonl:4"),
    ("array line", _append_line("runs.jsonl", b"[1, 2]\n"), "runs.jsonl:4"),
    ("number line", _append_line("runs.jsonl", b"42\n"), "runs.jsonl:4"),
    ("null line", _append_line("runs.jsonl", b"null\n"), "runs.jsonl:4"),
    ("cut line", _append_line("runs.jsonl", b'{"type":"RunRecord","engi'), "runs.jsonl:4"),
    ("deep nesting", _append_line("runs.jsonl", b"[" * 50000 + b"\n"), "runs.jsonl:4"),
    ("missing field", _append_line("runs.jsonl", b'{"type":"RunRecord","engine":"e"}\n'), "runs.jsonl:4"),
    ("engine number", _append_line("runs.jsonl", RUN_LINE.replace('"e"', "7").encode() + b"}\n"), "runs.jsonl:4"),
    ("time text", _append_line("runs.jsonl", RUN_LINE.replace(":1,", ':"1",', 1).encode() + b"}\n"),
     "runs.jsonl:4"),
    ("time 1e400", _append_line("runs.jsonl", RUN_LINE.replace(":1,", ":1e400,", 1).encode() + b"}\n"),
     "runs.jsonl:4"),
    ("latency text", _append_line("runs.jsonl", RUN_LINE.encode() + b',"latencies_ns":["a"]}\n'), "runs.jsonl:4"),
    ("settings list", _append_line("runs.jsonl", RUN_LINE.encode() + b',"settings":[1]}\n'), "runs.jsonl:4"),
    ("samples junk", _append_line("runs.jsonl", RUN_LINE.encode() + b',"power_samples":[7]}\n'), "runs.jsonl:4"),
    ("rail junk", _append_line("runs.jsonl", RUN_LINE.encode() + b',"rail_energy":{"energy_j":"x"}}\n'),
     "runs.jsonl:4"),
    ("schema text", _append_line("runs.jsonl", b'{"type":"RunRecord","schema":"two"}\n'), "runs.jsonl:4"),
    ("huge int", _append_line("runs.jsonl", RUN_LINE.replace(":1,", ":" + "9" * 5000 + ",", 1).encode() + b"}\n"),
     "runs.jsonl:4"),
    # values no writer produces (issue 18 item 5): an engine window of batch 0 or -1 (samples/s -4.6), no
    # iteration in a window that says it ran, edges out of order, latencies that are no durations
    ("batch 0", _append_line("runs.jsonl", RUN_LINE.replace('"batch":1', '"batch":0').encode() + b"}\n"),
     "runs.jsonl:4"),
    ("batch -1", _append_line("runs.jsonl", RUN_LINE.replace('"batch":1', '"batch":-1').encode() + b"}\n"),
     "runs.jsonl:4"),
    ("iterations 0, no error", _append_line("runs.jsonl", RUN_LINE.replace('"iterations":1', '"iterations":0')
                                            .encode() + b"}\n"), "runs.jsonl:4"),
    ("iterations -3", _append_line("runs.jsonl", RUN_LINE.replace('"iterations":1', '"iterations":-3')
                                   .encode() + b',"error":"crashed"}\n'), "runs.jsonl:4"),
    ("end before start", _append_line("runs.jsonl", RUN_LINE.replace('"window_end_ns":2', '"window_end_ns":0')
                                      .encode() + b"}\n"), "runs.jsonl:4"),
    ("latency negative", _append_line("runs.jsonl", RUN_LINE.encode() + b',"latencies_ns":[5,-1]}\n'), "runs.jsonl:4"),
    ("latency true", _append_line("runs.jsonl", RUN_LINE.encode() + b',"latencies_ns":[5,true]}\n'), "runs.jsonl:4"),
    ("latency 2**63", _append_line("runs.jsonl", RUN_LINE.encode() + b',"latencies_ns":[9223372036854775808]}\n'),
     "runs.jsonl:4"),
    ("idle batch -1", _append_line("runs.jsonl", RUN_LINE.replace('"batch":1', '"batch":-1').encode()
                                   + b',"kind":"idle"}\n'), "runs.jsonl:4"),
]

SESSION = [
    ("not json", _replace_json("session.json", "{grid:"), "session.json"),
    ("non-utf8", _raw("session.json", b"\xff\xfe{}"), "session.json"),
    ("a list", _replace_json("session.json", [1, 2]), "session.json"),
    ("grid text", _edit_json("session.json", lambda d: d.update(grid="RFCW")), "session.json"),
    ("grid lb text", _edit_json("session.json", lambda d: d["grid"].update(lb_co2_per_mwh="x")), "session.json"),
    ("grid lb missing", _edit_json("session.json", lambda d: d["grid"].pop("lb_co2_per_mwh")), "session.json"),
    ("pue text", _edit_json("session.json", lambda d: d.update(pue="high")), "session.json"),
    ("pue NaN", _replace_json("session.json", '{"version": 1, "pue": NaN}'), "session.json"),
    ("pue below 1", _edit_json("session.json", lambda d: d.update(pue=0.2)), "session.json"),
    ("min_samples 1.5", _edit_json("session.json", lambda d: d.update(min_samples=1.5)), "session.json"),
    ("resolution text", _edit_json("session.json", lambda d: d.update(resolution_w="fine")), "session.json"),
    ("version text", _edit_json("session.json", lambda d: d.update(version="1")), "session.json"),
    ("version 99", _edit_json("session.json", lambda d: d.update(version=99)), "session.json"),
    ("extra list", _edit_json("session.json", lambda d: d.update(extra=[1])), "session.json"),
]

CLOCK = [
    ("not json", _replace_json("clock.json", "{"), "clock.json"),
    ("a list", _replace_json("clock.json", [1]), "clock.json"),
    ("entry text", _replace_json("clock.json", {RUN_ID: "soon"}), "clock.json"),
    ("offset text", _replace_json("clock.json", {RUN_ID: {"offset_ns": "0"}}), "clock.json"),
    ("offset missing", _replace_json("clock.json", {RUN_ID: {"drift_ppm": 0}}), "clock.json"),
    ("offset 1e400", _replace_json("clock.json", '{"' + RUN_ID + '": {"offset_ns": 1e400}}'), "clock.json"),
    ("drift NaN", _replace_json("clock.json", '{"' + RUN_ID + '": {"offset_ns": 0, "drift_ppm": NaN}}'), "clock.json"),
]

METER = [
    # rowid 100 is at 9.9 s, inside the idle window (a reading outside every window is not read)
    ("power text", _sqlite("UPDATE readings SET power_w = 'lots' WHERE rowid = 100"), "meter.sqlite"),
    ("time text", _sqlite("UPDATE readings SET t_ns = 'noon' WHERE rowid = 5"), "meter.sqlite"),
    ("time blob", _sqlite("UPDATE readings SET t_ns = x'00ff' WHERE rowid = 100"), "meter.sqlite"),
    ("time 1e300", _sqlite("UPDATE readings SET t_ns = 1e300 WHERE rowid = 100"), "meter.sqlite"),
    ("power blob", _sqlite("UPDATE readings SET power_w = x'00ff' WHERE rowid = 100"), "meter.sqlite"),
    ("resolution text", _sqlite("INSERT OR REPLACE INTO meta VALUES ('resolution_w', 'fine')"), "meter.sqlite"),
    ("sampling unknown", _sqlite("INSERT OR REPLACE INTO meta VALUES ('sampling', 'psychic')"), "meter.sqlite"),
    ("gap text", _sqlite("INSERT INTO gaps VALUES ('a', 'b', 'unplugged')"), "meter.sqlite"),
    ("no readings table", _sqlite("DROP TABLE readings"), "meter.sqlite"),
    ("not sqlite", _raw("meter.sqlite", b"SQLite format 3\x00" + b"\x13" * 200), "meter.sqlite"),
    ("empty", _raw("meter.sqlite", b""), "meter.sqlite"),
    ("truncated", _truncate("meter.sqlite", 3000), "meter.sqlite"),
]


def _csv_dir(d):
    return _good_dir(d, meter="csv")


METER_CSV = [
    ("oversized field", _raw("meter.csv", b"t_ns,power_w\n1," + b"9" * 300_000 + b"\n"), "meter.csv"),
    ("bad header", _raw("meter.csv", b"when,watts\n1,2\n"), "meter.csv"),
    ("power text", _raw("meter.csv", b"t_ns,power_w\n1700000000000000000,lots\n"), "meter.csv"),
    ("non-utf8", _raw("meter.csv", b"t_ns,power_w\n\xff\xfe,1\n"), "meter.csv"),
    ("gaps junk", _raw("meter.gaps.csv", b"start_ns,end_ns,reason\nsoon,later,x\n"), "meter.gaps.csv"),
]

CASES = [(f"{group}: {name}", make, corrupt, where)
         for group, make, cases in (("runs", _good_dir, RUNS), ("session", _good_dir, SESSION),
                                    ("clock", _good_dir, CLOCK), ("meter", _good_dir, METER),
                                    ("csv", _csv_dir, METER_CSV))
         for name, corrupt, where in cases]


def _one_line_error(result, where):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if "error:" in line]
    assert len(errors) == 1 and where in errors[0], result.output


def test_the_good_directory_reports():
    """The uncorrupted directory is fine (so each corruption below is what fails)."""
    import tempfile
    from pathlib import Path

    for make in (_good_dir, _csv_dir):
        with tempfile.TemporaryDirectory() as tmp:
            d = make(Path(tmp) / "m")
            result = CliRunner().invoke(cli, ["report", str(d), "--format", "csv"])
            assert result.exit_code == 0, result.output
            assert "resnet18_1_32_32_fp32" in result.output


@pytest.mark.parametrize("label, make, corrupt, where", CASES, ids=[c[0] for c in CASES])
def test_report_names_the_corrupt_file(tmp_path, label, make, corrupt, where):
    d = make(tmp_path / "m")
    corrupt(d)
    _one_line_error(CliRunner().invoke(cli, ["report", str(d)]), where)


@pytest.mark.parametrize("label, make, corrupt, where",
                         [c for c in CASES if c[0].split(":")[0] in ("runs", "meter", "csv")],
                         ids=[c[0] for c in CASES if c[0].split(":")[0] in ("runs", "meter", "csv")])
def test_pair_names_the_corrupt_file(tmp_path, label, make, corrupt, where):
    d = make(tmp_path / "m")
    corrupt(d)
    log = next(p for p in (d / "meter.sqlite", d / "meter.csv") if p.exists())
    _one_line_error(CliRunner().invoke(cli, ["pair", str(d / "runs.jsonl"), str(log)]), where)


@pytest.mark.parametrize("label, make, corrupt, where", CASES, ids=[c[0] for c in CASES])
def test_measure_resume_names_the_corrupt_file_before_opening_the_meter(tiny_engines, tmp_path, label, make,
                                                                        corrupt, where):
    d = make(tmp_path / "m")
    corrupt(d)
    result = CliRunner().invoke(cli, ["measure", "--meter", "/dev/null", "--engines", str(tiny_engines),
                                      "--out", str(d), "--resume"])
    _one_line_error(result, where)
