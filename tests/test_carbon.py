import json
import math
import random
import re

import pytest
from test_run import one_line_or_finite

from edgebench.errors import BadInput
from edgebench.host import carbon


def test_conversions_are_exact_definitions():
    assert carbon.j_to_kwh(3.6e6) == 1.0
    assert carbon.lb_to_kg(1.0) == 0.45359237
    assert carbon.kg_to_lb(0.45359237) == pytest.approx(1.0)
    assert carbon.kg_to_lb(carbon.lb_to_kg(2.5)) == pytest.approx(2.5)


def test_seed_inference_row_rfcw_2019():
    # seed 004: 0.386 J per inference on eGRID2019 RFCW (1067.7 lb/MWh)
    grid = carbon.egrid_factor("RFCW", 2019)
    assert grid.lb_co2_per_mwh == 1067.7
    assert grid.edition == "eGRID2019"
    assert f"{grid.co2_lb(0.386):.3e}" == "1.145e-07"
    assert grid.co2_kg(0.386) == pytest.approx(1.1448e-07 * 0.45359237, rel=1e-4)


def test_egrid_latest_edition_is_default_and_us_average_present():
    assert carbon.egrid_editions() == ["2019", "2022", "2023"]
    assert carbon.egrid_factor("rfcw").edition == "eGRID2023"
    assert carbon.egrid_factor("rfcw").lb_co2_per_mwh == 911.4
    assert carbon.egrid_factor("US", "egrid2022").lb_co2_per_mwh == 823.1
    assert len(carbon.egrid_table()["2023"]) == 28  # 27 subregions + US


def test_unknown_subregion_and_edition_list_valid_ones():
    with pytest.raises(BadInput, match="RFCW"):
        carbon.egrid_factor("XXXX")
    with pytest.raises(BadInput, match="2019, 2022, 2023"):
        carbon.egrid_factor("RFCW", 2020)


def test_country_factors_by_code_and_name():
    de = carbon.country_factor("DEU")
    assert de.g_co2_per_kwh == pytest.approx(381.0)
    assert carbon.country_factor("germany") == de
    assert carbon.country_factor("United Kingdom").g_co2_per_kwh == pytest.approx(237.6)
    assert carbon.country_factor("FRA").lb_co2_per_mwh == pytest.approx(56.0 / 0.45359237)
    assert "CC BY 4.0" in de.source
    with pytest.raises(BadInput, match="DEU"):
        carbon.country_factor("Atlantis")


@pytest.mark.parametrize(
    ("text", "g_per_kwh"),
    [
        ("1067.7lb/MWh", 1067.7 * 453.59237 / 1000),
        ("400g/kWh", 400.0),
        ("0.4kg/kWh", 400.0),
        ("0.954lb/kWh", 954 * 0.45359237),
        ("400 gCO2e/kWh", 400.0),
        ("0.4 t/MWh", 400.0),
    ],
)
def test_parse_intensity_units(text, g_per_kwh):
    assert carbon.parse_intensity(text).g_co2_per_kwh == pytest.approx(g_per_kwh)


@pytest.mark.parametrize("text", ["400", "400 g", "abc g/kWh", "400 g/J"])
def test_parse_intensity_rejects_missing_units(text):
    with pytest.raises(BadInput, match="unit"):
        carbon.parse_intensity(text)


@pytest.mark.parametrize(
    ("text", "joules"),
    [
        ("0.386J", 0.386),
        ("1.2kWh", 4.32e6),
        ("5Wh", 18000.0),
        ("3mJ", 0.003),
        ("2 kJ", 2000.0),
        ("1MWh", 3.6e9),
    ],
)
def test_parse_energy(text, joules):
    assert carbon.parse_energy(text) == pytest.approx(joules)


@pytest.mark.parametrize("text", ["0.386", "5 W", "-1J", "J"])
def test_parse_energy_rejects(text):
    with pytest.raises(BadInput):
        carbon.parse_energy(text)


def test_parse_power():
    assert carbon.parse_power("147W") == 147.0
    assert carbon.parse_power("500mW") == 0.5
    assert carbon.parse_power("0.147kW") == pytest.approx(147.0)
    assert carbon.parse_power("12") == 12.0
    with pytest.raises(BadInput):
        carbon.parse_power("12J")


def test_pue_multiplies_energy_and_below_one_is_refused():
    grid = carbon.parse_intensity("400g/kWh")
    one = carbon.estimate(3.6e6, grid)
    assert one.co2_kg == pytest.approx(0.4)
    assert carbon.estimate(3.6e6, grid, pue=1.5).co2_kg == pytest.approx(0.6)
    with pytest.raises(BadInput, match="PUE"):
        carbon.estimate(1.0, grid, pue=0.9)


def test_strubell_training_rows_of_the_seed():
    # seed 004 training table: power, hours -> (kWh, lbs) as the lab wrote them (rounded by hand)
    grid = carbon.parse_intensity("0.954lb/kWh")
    rows = [
        (147, 9.25, 2.149, 2.049),
        (146, 8.87, 2.047, 1.950),
        (140, 10.72, 2.37, 2.26),
        (148, 6.75, 1.579, 1.506),
        (145, 8.83, 2.023, 1.930),
    ]
    for power_w, hours, kwh, lbs in rows:
        est = carbon.training_estimate(power_w, hours, grid)
        assert est.energy_kwh == pytest.approx(1.58 * hours * power_w / 1000)
        assert est.energy_kwh == pytest.approx(kwh, abs=0.002)
        assert est.co2_lb == pytest.approx(lbs, abs=0.003)
        assert est.co2_lb == pytest.approx(0.954 * est.energy_kwh)


def test_resolve_grid_exactly_one_source():
    assert carbon.resolve_grid().region == "US"
    assert carbon.resolve_grid(grid="RFCW", egrid="2019").lb_co2_per_mwh == 1067.7
    assert carbon.resolve_grid(egrid=2022).lb_co2_per_mwh == 823.1
    assert carbon.resolve_grid(country="IND").g_co2_per_kwh == pytest.approx(713.4)
    with pytest.raises(BadInput, match="exactly one"):
        carbon.resolve_grid(grid="RFCW", country="DEU")
    with pytest.raises(BadInput, match="--egrid"):
        carbon.resolve_grid(country="DEU", egrid=2019)


def test_equivalents_lines():
    lines = carbon.equivalents(0.393)
    assert lines[0].startswith("~1 miles")
    assert any("smartphone" in line for line in lines)
    assert all(math.isfinite(float(line[1:].split()[0])) for line in lines)


# --- equivalents, lifetime, embodied, training projection --------------------------------------------------------


def test_equivalence_factors_carry_source_and_year():
    factors = {e.key: e for e in carbon.equivalence_factors()}
    # the figures of shared/reference/carbon.md (EPA Greenhouse Gas Equivalencies), in kg per unit
    assert factors["miles"].kg_co2_per_unit == 0.393
    assert factors["smartphones"].kg_co2_per_unit == 0.0124
    assert factors["gasoline"].kg_co2_per_unit == 8.887
    assert factors["seedlings"].kg_co2_per_unit == 60.0
    assert factors["homes"].kg_co2_per_unit == 4800.0
    for e in factors.values():
        assert "EPA" in e.source and e.year.isdigit()
        assert e.source in e.describe() and e.year in e.describe()


def test_equivalents_arithmetic():
    # 3.93 kg CO2 = 10 miles = 316.9 smartphone charges = 0.4422 gallons of gasoline
    data = {d["key"]: d for d in carbon.equivalents_data(3.93)}
    assert data["miles"]["count"] == pytest.approx(10.0)
    assert data["smartphones"]["count"] == pytest.approx(3.93 / 0.0124)
    assert data["gasoline"]["count"] == pytest.approx(3.93 / 8.887)
    lines = carbon.equivalents(3.93)
    assert lines[0].startswith("~10 miles driven") and "0.393 kg CO2/mile" in lines[0] and "2024" in lines[0]
    assert lines[1].startswith("~317 smartphone charges")


def test_lifetime_projection_and_embodied_amortisation():
    grid = carbon.parse_intensity("400g/kWh")
    # 0.386 J per image, 100,000 a day for 3 years: 109,575,000 images, 11.749 kWh, 4.6997 kg CO2
    life = carbon.lifetime(0.386, 100_000, 3, grid)
    assert life.images == pytest.approx(100_000 * 365.25 * 3)
    assert life.energy_kwh == pytest.approx(0.386 * 109_575_000 / 3.6e6)
    assert life.operational_co2_kg == pytest.approx(life.energy_kwh * 0.4)
    assert life.embodied_co2_kg_per_image == 0.0
    assert life.total_co2_kg == life.operational_co2_kg
    # a 20 kg embodied footprint spread over those images
    with_embodied = carbon.lifetime(0.386, 100_000, 3, grid, embodied_kg=20.0, pue=1.5)
    assert with_embodied.energy_kwh == pytest.approx(life.energy_kwh * 1.5)
    assert with_embodied.embodied_co2_kg_per_image == pytest.approx(20.0 / 109_575_000)
    assert with_embodied.total_co2_kg == pytest.approx(life.operational_co2_kg * 1.5 + 20.0)
    assert with_embodied.co2_kg_per_image == pytest.approx(
        grid.co2_kg(0.386 * 1.5) + 20.0 / 109_575_000
    )
    lines = carbon.format_lifetime(with_embodied)
    assert any("embodied" in line and "user-supplied" in line for line in lines)
    with pytest.raises(BadInput, match="--years"):
        carbon.lifetime(0.386, 1, -1, grid)
    with pytest.raises(BadInput, match="--embodied"):
        carbon.lifetime(0.386, 1, 1, grid, embodied_kg=math.inf)


@pytest.mark.parametrize(
    ("text", "kg"), [("20kg", 20.0), ("44lb", 44 * 0.45359237), ("0.02t", 20.0), ("500g", 0.5), ("20", 20.0),
                     ("20 kgCO2e", 20.0)]
)  # fmt: skip
def test_parse_mass(text, kg):
    assert carbon.parse_mass(text) == pytest.approx(kg)


@pytest.mark.parametrize("text", ["20 kWh", "-3kg", "kg", "nan"])
def test_parse_mass_rejects(text):
    with pytest.raises(BadInput):
        carbon.parse_mass(text)


def test_context_lines_for_a_table_footer():
    grid = carbon.egrid_factor("RFCW", 2019)
    per_inf = grid.co2_kg(0.386)
    lines = carbon.context_lines(per_inf, energy_j_per_image=0.386, grid=grid, images_per_day=1e5, years=3)
    assert lines[0].startswith("1,000,000 inferences emit")
    assert f"{per_inf * 1e6:.4g} kg" in lines[0]
    assert any("miles driven" in line for line in lines)
    assert any(line.startswith("lifetime 100,000 images/day x 3 years") for line in lines)
    assert len(carbon.context_lines(per_inf)) == 1 + len(carbon.equivalence_factors())


def test_training_projection_seed_004_baseline_row():
    # 196 s per 1,000 iterations, 170,000 iterations, 147 W, PUE 1.58, 0.954 lb/kWh -> 9.26 h, 2.15 kWh, 2.05 lbs
    p = carbon.training_projection(196.0, 1000, 170_000, 147.0, carbon.strubell_grid(), carbon.STRUBELL_PUE)
    assert p.hours == pytest.approx(9.26, rel=0.005)
    assert p.estimate.energy_kwh == pytest.approx(2.15, rel=0.005)
    assert p.estimate.co2_lb == pytest.approx(2.05, rel=0.005)
    assert p.estimate.energy_kwh == pytest.approx(1.58 * (196 * 170 / 3600) * 0.147)
    assert carbon.strubell_grid().lb_co2_per_kwh == pytest.approx(0.954)
    with pytest.raises(BadInput, match="iteration"):
        carbon.training_projection(196.0, 0, 170_000, 147.0, carbon.strubell_grid())


# --- the carbon command's lifetime options ----------------------------------------------------------------------


def _carbon_cli(*args):
    from click.testing import CliRunner

    from edgebench.cli import cli

    return CliRunner().invoke(cli, ["carbon", *args])


def test_carbon_command_lifetime_with_embodied_and_equivalents():
    res = _carbon_cli("--energy", "0.386J", "--intensity", "400g/kWh", "--per-day", "100000", "--years", "3",
                      "--embodied", "20kg", "--equivalents", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    import json

    data = json.loads(res.output)
    life = data["lifetime"]
    assert life["images"] == pytest.approx(109_575_000)
    assert life["operational_co2_kg"] == pytest.approx(0.386 * 109_575_000 / 3.6e6 * 0.4)
    assert life["total_co2_kg"] == pytest.approx(life["operational_co2_kg"] + 20.0)
    assert life["equivalents"][0]["count"] == pytest.approx(life["total_co2_kg"] / 0.393)
    assert {"source", "year", "kg_co2_per_unit"} <= set(data["equivalents"][0])
    text = _carbon_cli("--energy", "0.386J", "--per-day", "100000", "--years", "3", "--embodied", "20kg").output
    assert "lifetime 100,000 images/day x 3 years = 109,575,000 images" in text
    assert "embodied CO2 20 kg (user-supplied)" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--energy", "1J", "--years", "3"], "--per-day"),
        (["--power", "1W", "--hours", "1", "--per-day", "5", "--years", "1"], "--energy"),
        (["--energy", "1J", "--per-day", "5", "--years", "nan"], "--years"),
        (["--energy", "1J", "--per-day", "-5", "--years", "1"], "--per-day"),
        (["--energy", "1J", "--per-day", "5", "--years", "1", "--embodied", "20kWh"], "unit"),
    ],
)
def test_carbon_command_lifetime_bad_input(args, message):
    res = _carbon_cli(*args)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


# --- results that overflow, every numeric option fuzzed -------------------------------------------------------

EXTREMES = ["nan", "inf", "-inf", "1e308", "1e309", "-1", "0", str(10**400), "true", "1" + "0" * 5000]
CARBON_BASE = {"--energy": "0.386J", "--per-day": "100000", "--years": "3", "--pue": "1.2", "--embodied": "20kg"}


@pytest.mark.parametrize("option", ["--energy", "--per-day", "--years", "--pue", "--embodied", "--hours", "--power"])
def test_carbon_numeric_options_never_print_inf_or_trace(option):
    for value in EXTREMES:
        if option in ("--hours", "--power"):
            args = {"--power": "147W", "--hours": "9.25", "--pue": "1.58", option: value}
        else:
            args = {**CARBON_BASE, option: value}
        for fmt in ([], ["--json"]):
            one_line_or_finite(_carbon_cli(*[x for kv in args.items() for x in kv], *fmt))


def test_carbon_results_that_overflow_are_one_line():
    res = _carbon_cli("--energy", "1J", "--per-day", "1e308", "--years", "1e308")
    assert res.exit_code == 2 and "overflows" in res.output and "--per-day" in res.output, res.output
    rng = random.Random(14_009)
    big = ["1e308", "1e200", "9e150", "1e-300", "5e-324"]
    for _ in range(40):
        args = dict(CARBON_BASE)
        for option in rng.sample(["--per-day", "--years", "--pue"], 2):
            args[option] = rng.choice(big)
        args["--energy"] = rng.choice(big) + "J"
        one_line_or_finite(_carbon_cli(*[x for kv in args.items() for x in kv], "--json"))


def test_report_lifetime_counts_images_and_refuses_overflow(tmp_path):
    """report --per-day N: N images a day, so an engine of batch 4 costs its J per image (a quarter of its J
    per execution) per day's image; overflowing figures are one line, not `inf`."""
    from click.testing import CliRunner
    from test_plot import write_measure_dir

    from edgebench.cli import cli

    d = write_measure_dir(tmp_path / "m").path
    invoke = lambda *a: CliRunner().invoke(cli, ["report", str(d), *a])  # noqa: E731
    table = json.loads(invoke("--format", "json").stdout)["engines"]
    res = invoke("--per-day", "1000", "--years", "3", "--sort", "gross_j")
    assert res.exit_code == 0, res.output
    ranked = next(row for row in sorted(table, key=lambda r: r["gross_j_per_inference"] or math.inf))
    assert ranked["batch"] == 4  # the engine projected has batches of 4 images
    kwh = float(re.search(r"energy ([0-9.e+-]+) kWh", res.stdout).group(1))
    images = 1000 * 365.25 * 3
    assert "lifetime 1,000 images/day x 3 years = 1,095,750 images" in res.stdout
    assert kwh == pytest.approx(ranked["gross_j_per_sample"] * images / 3.6e6, rel=1e-3)
    assert kwh != pytest.approx(ranked["gross_j_per_inference"] * images / 3.6e6, rel=1e-3)
    big = invoke("--per-day", "1e308", "--years", "1e308")
    assert big.exit_code == 2 and "overflows" in big.output and "Traceback" not in big.output
