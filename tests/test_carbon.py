import math

import pytest

from edgebench.errors import BadInput
from edgebench.host import carbon


def test_conversions_are_exact_definitions():
    assert carbon.j_to_kwh(3.6e6) == 1.0
    assert carbon.kwh_to_j(1.2) == pytest.approx(4.32e6)
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
