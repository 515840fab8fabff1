"""`edgebench bench` and `edgebench info` through click's CliRunner."""

import json

from click.testing import CliRunner

from edgebench.cli import cli


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
