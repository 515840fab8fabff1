"""`edgebench bench` and `edgebench info` through click's CliRunner."""

import json

import pytest
from click.testing import CliRunner

from edgebench.cli import cli
from edgebench.records import SCHEMA_VERSION, read_run_records


def _invoke(args):
    return CliRunner().invoke(cli, args)


def test_info_text_and_json_on_a_recorded_tree(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/nv_tegra_release").write_text("# R35 (release), REVISION: 4.1, GCID: 33958178, BOARD: t186ref\n")
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_text("NVIDIA Orin Nano Developer Kit\x00")
    zone = root / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("47312\n")
    result = _invoke(["info", "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert "jetson:" in result.output and "l4t" in result.output and "35.4.1" in result.output
    assert "model  NVIDIA Orin Nano Developer Kit" in result.output
    assert "cpu_c  47.3 C" in result.output
    result = _invoke(["info", "--json", "--root", str(root)])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["jetson.l4t"] == "35.4.1" and data["temp.cpu_c"] == 47.312
    assert data["board.model"] == "NVIDIA Orin Nano Developer Kit"


def test_info_on_this_machine():
    result = _invoke(["info", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["cpu.cores.logical"] >= 1 and "python.version" in data


def test_bench_without_engines_dir_says_how_to_build(tmp_path):
    missing = tmp_path / "engines-out"
    result = _invoke(["bench", str(missing)])
    assert result.exit_code == 2
    assert f"no engines directory {missing}" in result.output
    assert f"edgebench build-engines --out {missing}" in result.output
    assert "Traceback" not in result.output


def test_bench_refuses_contradictory_options(tmp_path):
    result = _invoke(["bench", str(tmp_path), "--warmup", "3", "--warmup-time", "0.5"])
    assert result.exit_code == 2 and "--warmup and --warmup-time" in result.output
    result = _invoke(["bench", str(tmp_path), "--iterations", "3", "--duration", "1"])
    assert result.exit_code == 2 and "--iterations and --duration" in result.output
    result = _invoke(["bench", str(tmp_path), "--duration", "0"])
    assert result.exit_code == 2
    result = _invoke(["bench", str(tmp_path), "--sort", "speed"])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    "command, option, value",
    [
        ("bench", "--duration", "nan"),
        ("bench", "--duration", "inf"),
        ("bench", "--warmup-time", "nan"),
        ("bench", "--warmup-time", "1e309"),
        ("bench", "--sensor-period-ms", "nan"),
        ("bench", "--sensor-period-ms", "-inf"),
        ("agent", "--sensor-period-ms", "nan"),
        ("agent", "--sensor-period-ms", "0"),
    ],
)
def test_float_options_refuse_nan_and_infinities(tmp_path, command, option, value):
    where = [str(tmp_path)] if command == "bench" else ["--stdio", "--engines", str(tmp_path)]
    result = _invoke([command, *where, option, value])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"Invalid value for '{option}'" in result.output
    assert "not a finite number" in result.output or "not in the range" in result.output


@pytest.fixture()
def engines_dir(tiny_engines):
    return tiny_engines


def test_bench_prints_blocks_table_and_appends_records(engines_dir, tmp_path):
    out = tmp_path / "runs.jsonl"
    result = _invoke(["bench", str(engines_dir), "--iterations", "15", "--warmup", "2", "--threads", "1",
                      "--out", str(out), "--sort", "name"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Timed region: InferenceSession.run") and "intra-op threads 1" in lines[0]
    assert "Benchmark: squeezenet1_1_1_32_32_fp32" in lines and "Benchmark: squeezenet1_1_2_32_32_fp32" in lines
    assert sum("Time (mean ± σ):" in line for line in lines) == 2
    assert any(line.startswith("  15 runs, 2 warm-up discarded") for line in lines)
    table = [line for line in lines if line.startswith("squeezenet1_1_")]
    assert [row.split()[0] for row in table] == ["squeezenet1_1_1_32_32_fp32", "squeezenet1_1_2_32_32_fp32"]
    assert any("times faster than" in line for line in lines)
    records = read_run_records(out)
    assert [r.engine for r in records] == ["squeezenet1_1_1_32_32_fp32", "squeezenet1_1_2_32_32_fp32"]
    assert [r.batch for r in records] == [1, 2]
    assert all(r.iterations == 15 and len(r.warmup_latencies_ns) == 2 for r in records)
    assert records[0].settings["options.intra_op_threads"] == 1
    assert records[0].device["cpu.cores.logical"] >= 1
    assert "appended to" in result.stderr


def test_bench_json_lines_for_one_engine(engines_dir):
    result = _invoke(["bench", str(engines_dir), "--engine", "squeezenet1_1_2_32_32_fp32", "--duration", "0.05",
                      "--warmup-time", "0", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["type"] == "RunRecord" and rows[0]["schema"] == SCHEMA_VERSION
    assert rows[0]["engine"] == "squeezenet1_1_2_32_32_fp32" and rows[0]["iterations"] >= 10
    assert rows[0]["warmup_latencies_ns"] == []
    assert rows[0]["window_end_ns"] - rows[0]["window_start_ns"] >= 50_000_000


def test_bench_unknown_engine_and_empty_manifest(engines_dir, tmp_path):
    result = _invoke(["bench", str(engines_dir), "--engine", "resnet18_1_224_224_fp32"])
    assert result.exit_code == 2
    assert "unknown engine resnet18_1_224_224_fp32" in result.output and "squeezenet1_1_1_32_32_fp32" in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _invoke(["bench", str(empty)])
    assert result.exit_code == 2 and "build-engines --out" in result.output and "Traceback" not in result.output
    (empty / "manifest.json").write_text('{"schema": 1, "engines": []}')
    result = _invoke(["bench", str(empty)])
    assert result.exit_code == 2 and "lists no engines" in result.output


def test_bench_prints_each_window_s_timing_warnings_with_their_figures(engines_dir, tmp_path):
    from edgebench.agent.stats import timing_warnings

    out = tmp_path / "runs.jsonl"
    result = _invoke(["bench", str(engines_dir), "--engine", "squeezenet1_1_1_32_32_fp32", "--iterations", "3",
                      "--warmup", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    (record,) = read_run_records(out)
    expected = timing_warnings(record.latencies_ns, batch=record.batch, warmup_ns=record.warmup_latencies_ns,
                               window_ns=record.duration_ns)
    assert any("only 3 measured iterations" in w for w in expected)
    for warning in expected:  # on stderr, named by engine, figures and all; results stay on stdout
        assert f"warning: squeezenet1_1_1_32_32_fp32: {warning}" in result.stderr
        assert warning not in result.stdout
