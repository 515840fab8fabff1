import csv
import json
import math

import pytest

from edgebench.errors import BadInput
from edgebench.host.table import CSV_COLUMNS, SORT_KEYS, rank, render, write_exports


@pytest.fixture(scope="module")
def result(paired_result):
    return paired_result


def _order(result, sort=None):
    return [e.engine for _, e in rank(result.engines, sort)]


def test_default_sort_is_wall_j_per_sample_ascending_with_invalid_last(result):
    # gross J/sample: mbv2 (batch 4) 0.04, resnet18 0.6, sp_squeeze (batch 2) 0.72
    assert _order(result) == [
        "mbv2_4_120_392_fp16",
        "resnet18_1_224_224_fp32",
        "sp_squeeze_2_120_392_FP16_seq_4",
        "broken_1_8_8_fp32",
    ]
    ranks = [r for r, _ in rank(result.engines)]
    assert ranks == [1, 2, 3, None]


@pytest.mark.parametrize("key", sorted(SORT_KEYS))
def test_every_sort_key_works_and_invalid_stays_last(result, key):
    order = _order(result, key)
    assert order[-1] == "broken_1_8_8_fp32"
    assert sorted(order[:-1]) == sorted(e.engine for e in result.engines if e.ok)


def test_sort_direction_and_field_names(result):
    assert _order(result, "latency")[:3] == [
        "mbv2_4_120_392_fp16",
        "resnet18_1_224_224_fp32",
        "sp_squeeze_2_120_392_FP16_seq_4",
    ]
    assert _order(result, "-throughput")[0] == "mbv2_4_120_392_fp16"  # 100 samples/s
    assert _order(result, "gross_j_per_inference")[0] == "mbv2_4_120_392_fp16"
    assert _order(result, "-wall_w")[0] == "sp_squeeze_2_120_392_FP16_seq_4"
    with pytest.raises(BadInput, match="unknown sort column"):
        rank(result.engines, "colour")


def test_terminal_table_is_aligned_with_units_and_marks_invalid(result):
    lines = render(result, "table")
    header, rule = lines[0], lines[1]
    assert "J/sample wall" in header and "J/exec wall" in header and "J/sample net" in header
    assert "wall W" in header and "CO2 lb/exec" in header and "CO2 g/1M samples" in header
    assert any(line.startswith("ranked by wall (gross) J per sample, lowest first") for line in lines)
    # every column starts where the header's rule segment starts
    starts = [i for i in range(len(rule)) if rule[i] == "-" and (i == 0 or rule[i - 1] == " ")]
    for row in lines[2:6]:
        if not row.startswith("      ^"):
            assert all(row[s - 1] == " " for s in starts[1:])
    assert any(line.strip().startswith("^ invalid:") for line in lines)
    broken = next(line for line in lines if "broken_1_8_8_fp32" in line)
    assert broken.lstrip().startswith("-")  # unranked
    assert any("idle baseline: 2" in line for line in lines)
    assert any("RFCW" in line and "eGRID2019" in line for line in lines)
    assert any("estimate" in line for line in lines)  # the rails footnote
    assert "device: NVIDIA Jetson Nano Developer Kit, power mode MAXN" in lines


def test_csv_parses_back_with_units_in_columns(result):
    rows = list(csv.DictReader(render(result, "csv")))
    assert list(rows[0]) == list(CSV_COLUMNS)
    first = rows[0]
    assert first["engine"] == "mbv2_4_120_392_fp16" and first["rank"] == "1"
    assert float(first["gross_j_per_inference"]) == pytest.approx(4.0 * 16 / 400)
    assert float(first["net_j_per_inference"]) == pytest.approx(2.0 * 16 / 400)
    assert float(first["net_j_per_sample"]) == pytest.approx(2.0 * 16 / 1600)
    assert float(first["co2_lb_per_inference"]) == pytest.approx(0.16 / 3.6e9 * 1067.7)
    assert rows[-1]["rank"] == "" and rows[-1]["status"].startswith("invalid:")
    assert rows[-1]["gross_j_per_inference"] == ""


def test_json_is_versioned_and_nan_free(result):
    doc = json.loads("\n".join(render(result, "json")))
    assert doc["format"] == "edgebench-table" and doc["version"] == 3
    assert "pareto" not in doc and "top1" not in doc["engines"][0]  # no engine evaluated: no accuracy columns
    assert doc["sort"] == "gross_j_sample" and doc["ranked"] == "wall (gross) J per sample, lowest first"
    assert doc["grid"]["region"] == "RFCW"
    assert doc["device"] == {"board.model": "NVIDIA Jetson Nano Developer Kit", "jetson.nvpmodel": "MAXN"}
    assert doc["idle"]["power_w"] == pytest.approx(2.0)
    squeeze = next(e for e in doc["engines"] if e["backbone"] == "sp_squeeze")
    assert squeeze["rail_j_per_inference"] == pytest.approx(0.5) and squeeze["rail_estimate"] is True
    assert squeeze["co2_lb_per_million"] == pytest.approx(squeeze["co2_lb_per_inference"] * 1e6)
    assert doc["engines"][-1]["rank"] is None and doc["engines"][-1]["wall_power_w"] is None


def test_markdown_has_one_row_per_engine(result):
    lines = render(result, "md")
    rows = [line for line in lines if line.startswith("| ")]
    assert len(rows) == 2 + len(result.engines)
    assert all(row.count(" | ") == rows[0].count(" | ") for row in rows)
    assert "invalid:" in rows[-1]


def test_write_exports_is_atomic_and_complete(result, tmp_path):
    written = write_exports(result, tmp_path / "out")
    assert sorted(p.name for p in written) == ["table.csv", "table.json", "table.md"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["table.csv", "table.json", "table.md"]
    doc = json.loads((tmp_path / "out" / "table.json").read_text())
    assert len(doc["engines"]) == 4
    # a rewrite replaces the files (with the new sort) and leaves no temporaries
    write_exports(result, tmp_path / "out", sort="-latency")
    assert json.loads((tmp_path / "out" / "table.json").read_text())["sort"] == "-latency"
    assert len(list((tmp_path / "out").iterdir())) == 3


def test_value_and_uncertainty_share_decimals(result):
    from edgebench.units import plus_minus as _pm

    assert _pm(0.55, 0.05) == "0.550 ± 0.050"
    assert _pm(1.0, 0.00116) == "1.0000 ± 0.0012"
    assert _pm(0.386, 0.0) == "0.386"
    assert _pm(math.nan, 0.1) == "-"


def test_unknown_format(result):
    with pytest.raises(BadInput, match="format"):
        render(result, "xml")


def _with_accuracy(result, top1_by_engine, top5=True):
    import dataclasses

    from edgebench.records import Accuracy

    engines = tuple(
        dataclasses.replace(
            e,
            accuracy=Accuracy(top1_by_engine[e.engine], 0.99 if top5 else None, 539, "digits, test split", "area")
            if e.engine in top1_by_engine else None,
        )
        for e in result.engines
    )
    return dataclasses.replace(result, engines=engines)


def test_accuracy_columns_and_front_marker_in_every_format(result):
    # net J/inf: mbv2 0.08, resnet18 0.4, sp_squeeze 1.12; latency: mbv2 < resnet18 < sp_squeeze
    evaluated = _with_accuracy(
        result, {"mbv2_4_120_392_fp16": 0.80, "resnet18_1_224_224_fp32": 0.90, "sp_squeeze_2_120_392_FP16_seq_4": 0.85}
    )
    lines = render(evaluated, "table")
    header = lines[0]
    assert "top-1 %" in header and "top-5 %" in header and "front" in header
    marks = {line.split()[1]: line.split() for line in lines[2:6] if not line.startswith("      ^")}
    assert "EL" in marks["mbv2_4_120_392_fp16"] and "80.00" in marks["mbv2_4_120_392_fp16"]
    assert "EL" in marks["resnet18_1_224_224_fp32"]
    assert "EL" not in marks["sp_squeeze_2_120_392_FP16_seq_4"]  # dominated by resnet18: dearer and worse
    assert any(line.startswith("front: E = on the Pareto front of top-1 vs wall (gross) J per sample") for line in lines)

    rows = {r["engine"]: r for r in csv.DictReader(render(evaluated, "csv"))}
    assert rows["resnet18_1_224_224_fp32"]["top1"] == "0.9" and rows["resnet18_1_224_224_fp32"]["pareto_energy"] == "True"
    assert rows["sp_squeeze_2_120_392_FP16_seq_4"]["pareto_latency"] == "False"
    assert rows["broken_1_8_8_fp32"]["top1"] == ""
    doc = json.loads("\n".join(render(evaluated, "json")))
    by_name = {e["engine"]: e for e in doc["engines"]}
    assert by_name["mbv2_4_120_392_fp16"]["pareto_energy"] is True and by_name["mbv2_4_120_392_fp16"]["top5"] == 0.99
    assert doc["pareto"]["energy"].startswith("top1 vs gross_j_sample")
    md = render(evaluated, "md")
    assert "| top-1 % | top-5 % | front |" in md[0]
    assert [e.engine for _, e in rank(evaluated.engines, "-top1")][0] == "resnet18_1_224_224_fp32"


def test_top5_column_only_when_some_engine_has_it(result):
    evaluated = _with_accuracy(result, {"mbv2_4_120_392_fp16": 0.5}, top5=False)
    header = render(evaluated, "table")[0]
    assert "top-1 %" in header and "top-5 %" not in header


def test_footer_gives_the_first_ranked_engines_equivalents(result):
    from edgebench.host.carbon import equivalence_factors

    lines = render(result, "table")
    best = next(e for _, e in rank(result.engines) if e.ok)
    assert f"{best.engine} (rank 1), at the wall, per million samples (images):" in lines
    million = best.co2_kg_per_inference / best.batch * 1e6
    assert f"1,000,000 samples emit {million:.4g} kg CO2, about:" in lines
    miles = next(f for f in equivalence_factors() if "mile" in f.what)
    assert any(line.strip().startswith(f"~{miles.of(million):.3g} {miles.what}") for line in lines)
