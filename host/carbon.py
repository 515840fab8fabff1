"""Grid carbon factors and the unit conversions around them.

A `GridFactor` is one emission rate with where it came from: an EPA eGRID subregion (editions 2019, 2022, 2023;
the latest is the default), a country's annual average (Our World in Data / Ember, 2023, CC BY 4.0), or an
explicit user-given intensity. The factor is stored in lb CO2 per MWh, eGRID's own unit, and converted only at
the edges: J <-> kWh (3.6e6 J/kWh) and kg <-> lb (0.45359237 kg per lb, exact by definition).

Also here: the Strubell et al. (2019) training estimate used by the course lab (energy_kWh = PUE x hours x kW,
CO2_lb = 0.954 x kWh) and its projection from a short measured run; everyday equivalents (host/data/
co2_equivalents.csv: each factor with its source and year); a lifetime projection with an optional embodied
footprint amortised over the device's life; `context_lines` for a table footer.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypedDict

from edgebench.errors import BadInput

KG_PER_LB = 0.45359237  # exact (international avoirdupois pound)
J_PER_KWH = 3.6e6
J_PER_WH = 3600.0
KWH_PER_MWH = 1000.0

DATA_DIR = Path(__file__).with_name("data")
EGRID_CSV = DATA_DIR / "egrid_co2_lb_per_mwh.csv"
COUNTRY_CSV = DATA_DIR / "country_co2e_g_per_kwh.csv"

EGRID_SOURCE = "EPA eGRID"
COUNTRY_SOURCE = "Our World in Data / Ember (CC BY 4.0)"
COUNTRY_EDITION = "2023"

# The lab's training formula (Strubell et al., 2019): US average lb CO2 per kWh and the 2018 data-centre PUE.
STRUBELL_LB_PER_KWH = 0.954
STRUBELL_PUE = 1.58


# --- conversions ----------------------------------------------------------------------------------------------


def j_to_kwh(energy_j: float) -> float:
    """Joules to kilowatt-hours."""
    return energy_j / J_PER_KWH


def kg_to_lb(mass_kg: float) -> float:
    """Kilograms to pounds."""
    return mass_kg / KG_PER_LB


def lb_to_kg(mass_lb: float) -> float:
    """Pounds to kilograms."""
    return mass_lb * KG_PER_LB


# --- grid factors ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridFactor:
    """An emission rate of grid electricity and its provenance (stored in lb CO2 per MWh)."""

    lb_co2_per_mwh: float
    source: str
    edition: str
    region: str
    kind: str = "average"  # "average" (annual mean of generation); "marginal" if a user says so

    @property
    def kg_co2_per_kwh(self) -> float:
        return lb_to_kg(self.lb_co2_per_mwh) / KWH_PER_MWH

    @property
    def g_co2_per_kwh(self) -> float:
        return self.kg_co2_per_kwh * 1000.0

    @property
    def lb_co2_per_kwh(self) -> float:
        return self.lb_co2_per_mwh / KWH_PER_MWH

    def co2_lb(self, energy_j: float) -> float:
        """Pounds of CO2 for `energy_j` joules taken from this grid."""
        return j_to_kwh(energy_j) * self.lb_co2_per_kwh

    def co2_kg(self, energy_j: float) -> float:
        """Kilograms of CO2 for `energy_j` joules taken from this grid."""
        return lb_to_kg(self.co2_lb(energy_j))

    @property
    def label(self) -> str:
        """One line naming the factor and its source, for reports."""
        where = f"{self.region} " if self.region else ""
        edition = f" {self.edition}" if self.edition else ""
        kind = f", {self.kind}" if self.kind != self.source else ""
        return (
            f"{where}{self.lb_co2_per_mwh:.1f} lb CO2/MWh ({self.g_co2_per_kwh:.1f} g/kWh{kind}; "
            f"{self.source}{edition})"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "lb_co2_per_mwh": self.lb_co2_per_mwh,
            "g_co2_per_kwh": self.g_co2_per_kwh,
            "source": self.source,
            "edition": self.edition,
            "region": self.region,
            "kind": self.kind,
        }


def _data_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as stream:
        return list(csv.DictReader(line for line in stream if not line.startswith("#")))


@lru_cache(maxsize=1)
def egrid_table() -> dict[str, dict[str, float]]:
    """{edition year: {subregion: lb CO2/MWh}} from the packaged eGRID csv (the US average is `US`)."""
    table: dict[str, dict[str, float]] = {}
    for row in _data_rows(EGRID_CSV):
        region = row["subregion"].strip().upper()
        for column, value in row.items():
            if column.startswith("egrid") and value:
                table.setdefault(column[len("egrid") :], {})[region] = float(value)
    return table


def egrid_editions() -> list[str]:
    """eGRID editions available, oldest first."""
    return sorted(egrid_table())


def egrid_factor(region: str = "US", edition: str | int | None = None) -> GridFactor:
    """The eGRID factor of a subregion (e.g. RFCW) or `US`, for an edition (default: the latest)."""
    editions = egrid_editions()
    year = str(edition).strip().lower().removeprefix("egrid") if edition is not None else editions[-1]
    if year not in egrid_table():
        raise BadInput(f"eGRID edition {edition!r} is not packaged: use one of {', '.join(editions)}")
    rates = egrid_table()[year]
    key = region.strip().upper()
    if key in ("USA", "US AVERAGE", "US-AVERAGE"):
        key = "US"
    if key not in rates:
        raise BadInput(
            f"unknown eGRID subregion {region!r}: use one of {', '.join(sorted(rates))} "
            "(look yours up by ZIP code with EPA's Power Profiler)"
        )
    return GridFactor(rates[key], EGRID_SOURCE, f"eGRID{year}", key)


@lru_cache(maxsize=1)
def country_table() -> dict[str, tuple[str, float]]:
    """{ISO-3 code: (country name, g CO2e/kWh)} from the packaged OWID/Ember csv."""
    return {row["iso3"]: (row["name"], float(row["g_co2e_per_kwh"])) for row in _data_rows(COUNTRY_CSV)}


_COUNTRY_ALIASES = {
    "US": "USA",
    "UK": "GBR",
    "GB": "GBR",
    "BRITAIN": "GBR",
    "GREAT BRITAIN": "GBR",
    "CA": "CAN",
    "FR": "FRA",
    "DE": "DEU",
    "CN": "CHN",
    "IN": "IND",
    "UNITED STATES OF AMERICA": "USA",
}


def country_factor(country: str) -> GridFactor:
    """A country's 2023 annual average intensity, by ISO-3 code (`DEU`) or name (`Germany`)."""
    table = country_table()
    key = country.strip().upper()
    key = _COUNTRY_ALIASES.get(key, key)
    if key not in table:
        by_name = {name.upper(): iso for iso, (name, _) in table.items()}
        key = by_name.get(key, key)
    if key not in table:
        known = ", ".join(f"{iso} ({name})" for iso, (name, _) in sorted(table.items()))
        raise BadInput(
            f"no packaged intensity for country {country!r}: use one of {known}, or pass --intensity"
        )
    name, g_per_kwh = table[key]
    # g/kWh equals kg/MWh
    return GridFactor(kg_to_lb(g_per_kwh), COUNTRY_SOURCE, COUNTRY_EDITION, f"{key} ({name})")


# mass unit -> kg; energy unit -> kWh
_MASS_KG = {"g": 1e-3, "kg": 1.0, "t": 1000.0, "tonne": 1000.0, "lb": KG_PER_LB, "lbs": KG_PER_LB}
_ENERGY_KWH = {"wh": 1e-3, "kwh": 1.0, "mwh": 1000.0}
_INTENSITY_RE = re.compile(
    r"^\s*(?P<value>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<mass>g|kg|t|tonne|lbs?)\s*"
    r"(?:co2e?)?\s*(?:/|per)\s*(?P<energy>[kKmM]?Wh)\s*$",
    re.IGNORECASE,
)


def parse_intensity(text: str) -> GridFactor:
    """An explicit intensity with units: `1067.7lb/MWh`, `400g/kWh`, `0.4kg/kWh`, `0.954lb/kWh`."""
    match = _INTENSITY_RE.match(text)
    if match is None:
        raise BadInput(
            f"intensity {text!r} has no recognised unit: write it like 400g/kWh, 0.4kg/kWh, 1067.7lb/MWh or "
            "0.954lb/kWh"
        )
    value = float(match.group("value"))
    kg = value * _MASS_KG[match.group("mass").lower()]
    kg_per_kwh = kg / _ENERGY_KWH[match.group("energy").lower()]
    if not math.isfinite(kg_per_kwh) or kg_per_kwh < 0:
        raise BadInput(f"intensity {text!r} must be a finite, non-negative number")
    lb_per_mwh = kg_to_lb(kg_per_kwh) * KWH_PER_MWH
    return GridFactor(lb_per_mwh, "user-given", "", "", kind="user-given")


def resolve_grid(
    *,
    grid: str | None = None,
    egrid: str | int | None = None,
    country: str | None = None,
    intensity: str | None = None,
) -> GridFactor:
    """The one grid factor a command's options name (exactly one of grid, country, intensity).

    `egrid` picks the eGRID edition and goes with `grid` (alone it means the US average of that edition). With
    nothing given, the US average of the latest eGRID edition.
    """
    given = [
        name
        for name, value in (("--grid", grid), ("--country", country), ("--intensity", intensity))
        if value is not None
    ]
    if len(given) > 1:
        raise BadInput(f"{' and '.join(given)} both name a grid factor: pass exactly one of them")
    if egrid is not None and (country is not None or intensity is not None):
        raise BadInput(
            "--egrid picks an eGRID edition and goes with --grid, not with --country or --intensity"
        )
    if country is not None:
        return country_factor(country)
    if intensity is not None:
        return parse_intensity(intensity)
    return egrid_factor(grid or "US", egrid)


# --- energy and power parsing ---------------------------------------------------------------------------------

_ENERGY_J = {
    "j": 1.0,
    "mj": 1e-3,
    "uj": 1e-6,
    "µj": 1e-6,
    "kj": 1e3,
    "wh": J_PER_WH,
    "mwh": J_PER_WH * 1e-3,
    "kwh": J_PER_KWH,
}
_POWER_W = {"w": 1.0, "mw": 1e-3, "kw": 1e3}
_QUANTITY_RE = re.compile(
    r"^\s*(?P<value>[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<unit>[A-Za-zµ]+)\s*$"
)


def _split_quantity(text: str, what: str, example: str) -> tuple[float, str]:
    match = _QUANTITY_RE.match(text)
    if match is None:
        raise BadInput(f"{what} {text!r} needs a number and a unit: write it like {example}")
    value = float(match.group("value"))
    if value < 0 or not math.isfinite(value):
        raise BadInput(f"{what} {text!r} must be a finite, non-negative number")
    return value, match.group("unit")


def parse_energy(text: str) -> float:
    """Energy with units -> joules: `0.386J`, `3mJ`, `5Wh`, `1.2kWh` (mWh is milliwatt-hours, MWh megawatt-hours)."""
    value, unit = _split_quantity(text, "energy", "0.386J, 3mJ, 5Wh or 1.2kWh")
    if unit == "MWh":
        return value * J_PER_KWH * 1000.0
    if unit == "MJ":
        return value * 1e6
    factor = _ENERGY_J.get(unit.lower())
    if factor is None:
        raise BadInput(f"energy {text!r}: unknown unit {unit!r}; use J, mJ, kJ, MJ, Wh, kWh or MWh")
    return value * factor


def parse_power(text: str) -> float:
    """Power with units -> watts: `147W`, `500mW`, `0.147kW` (a bare number is watts)."""
    try:
        return _non_negative(float(text), "power", text)
    except ValueError:
        pass
    value, unit = _split_quantity(text, "power", "147W, 500mW or 0.147kW")
    if unit == "MW":
        return value * 1e6
    factor = _POWER_W.get(unit.lower())
    if factor is None:
        raise BadInput(f"power {text!r}: unknown unit {unit!r}; use W, mW or kW")
    return value * factor


def _non_negative(value: float, what: str, text: str) -> float:
    if value < 0 or not math.isfinite(value):
        raise BadInput(f"{what} {text!r} must be a finite, non-negative number")
    return value


# --- estimates ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CarbonEstimate:
    """Energy and CO2 of one figure under one grid factor (energy already multiplied by the PUE)."""

    energy_j: float
    pue: float
    grid: GridFactor

    @property
    def energy_kwh(self) -> float:
        return j_to_kwh(self.energy_j)

    @property
    def co2_lb(self) -> float:
        return self.grid.co2_lb(self.energy_j)

    @property
    def co2_kg(self) -> float:
        return self.grid.co2_kg(self.energy_j)

    def to_dict(self) -> dict[str, object]:
        return {
            "energy_j": self.energy_j,
            "energy_kwh": self.energy_kwh,
            "pue": self.pue,
            "co2_kg": self.co2_kg,
            "co2_lb": self.co2_lb,
            "grid": self.grid.to_dict(),
        }


def _finite(what: str, values: dict[str, float], options: str) -> None:
    """BadInput, one line, when a result overflowed to infinity (or NaN): the inputs multiply past a float."""
    bad = [name for name, value in values.items() if not math.isfinite(value)]
    if bad:
        raise BadInput(f"the {what} overflows ({', '.join(bad)} would be infinite): check {options}")


ESTIMATE_OPTIONS = "--energy/--power/--hours and --pue"


def estimate(energy_j: float, grid: GridFactor, pue: float = 1.0, *, options: str = ESTIMATE_OPTIONS) -> CarbonEstimate:
    """CO2 of `energy_j` joules at the device, with facility overhead `pue` (1.0 for a device on a desk);
    BadInput naming `options` when the figures overflow."""
    check_pue(pue)
    result = CarbonEstimate(energy_j * pue, pue, grid)
    _finite("estimate", {"energy": result.energy_j, "CO2": result.co2_lb}, options)
    return result


def training_estimate(
    power_w: float, hours: float, grid: GridFactor, pue: float = STRUBELL_PUE, *, options: str = ESTIMATE_OPTIONS
) -> CarbonEstimate:
    """Strubell et al. (2019): energy_kWh = PUE x hours x average kW; CO2 = intensity x energy_kWh."""
    if hours < 0 or not math.isfinite(hours):
        raise BadInput(f"the training takes {hours} hours, not a finite number: check {options}")
    return estimate(power_w * hours * 3600.0, grid, pue, options=options)


# --- everyday equivalents -------------------------------------------------------------------------------------

EQUIVALENTS_CSV = DATA_DIR / "co2_equivalents.csv"


@dataclass(frozen=True)
class Equivalence:
    """One everyday equivalent: kg CO2 per unit of something people know, with where the figure comes from."""

    key: str
    what: str  # "miles driven by an average gasoline passenger car"
    unit: str  # "mile"
    kg_co2_per_unit: float
    source: str
    year: str

    def of(self, co2_kg: float) -> float:
        """How many units `co2_kg` kilograms of CO2 amount to."""
        return co2_kg / self.kg_co2_per_unit

    def describe(self) -> str:
        """The factor, its source and year: `0.393 kg CO2/mile; US EPA ..., 2024`."""
        return f"{self.kg_co2_per_unit:.4g} kg CO2/{self.unit}; {self.source}, {self.year}"


@lru_cache(maxsize=1)
def equivalence_factors() -> tuple[Equivalence, ...]:
    """The packaged equivalents (host/data/co2_equivalents.csv), in file order."""
    return tuple(
        Equivalence(
            row["key"], row["what"], row["unit"], float(row["kg_co2_per_unit"]), row["source"], row["year"]
        )
        for row in _data_rows(EQUIVALENTS_CSV)
    )


class EquivalentData(TypedDict):
    """One everyday equivalent as JSON data (`carbon --json`, the HTML page)."""

    key: str
    count: float  # units of it that the CO2 amounts to
    what: str
    kg_co2_per_unit: float
    unit: str
    source: str
    year: str


def equivalents_data(co2_kg: float) -> list[EquivalentData]:
    """Everyday equivalents of `co2_kg` as dicts (count, what, factor, source, year): for JSON and HTML."""
    return [
        {
            "key": e.key,
            "count": e.of(co2_kg),
            "what": e.what,
            "kg_co2_per_unit": e.kg_co2_per_unit,
            "unit": e.unit,
            "source": e.source,
            "year": e.year,
        }
        for e in equivalence_factors()
    ]


def equivalents(co2_kg: float) -> list[str]:
    """Everyday equivalents of `co2_kg` as lines, each with its factor, source and year (approximate)."""
    return [f"~{e.of(co2_kg):.3g} {e.what} ({e.describe()})" for e in equivalence_factors()]


# --- lifetime and embodied carbon -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Lifetime:
    """A deployment's footprint over its service life: operational CO2 from the energy per image, plus an
    optional embodied (manufacturing) footprint amortised over the images of that life (as the Software Carbon
    Intensity specification amortises it). Images (input samples), not executions: an engine of batch 4
    handles 4 images per execution, and a deployment counts the images it serves."""

    energy_j_per_image: float  # at the device; the PUE multiplies it
    images_per_day: float
    years: float
    grid: GridFactor
    pue: float = 1.0
    embodied_kg: float | None = None  # the device's manufacturing footprint, user-supplied

    @property
    def images(self) -> float:
        return self.images_per_day * 365.25 * self.years

    @property
    def energy_j(self) -> float:
        return self.energy_j_per_image * self.pue * self.images

    @property
    def energy_kwh(self) -> float:
        return j_to_kwh(self.energy_j)

    @property
    def operational_co2_kg(self) -> float:
        return self.grid.co2_kg(self.energy_j)

    @property
    def embodied_co2_kg_per_image(self) -> float:
        if self.embodied_kg is None or self.images <= 0:
            return 0.0
        return self.embodied_kg / self.images

    @property
    def total_co2_kg(self) -> float:
        return self.operational_co2_kg + (self.embodied_kg or 0.0)

    @property
    def co2_kg_per_image(self) -> float:
        """Operational plus amortised embodied CO2 of one image."""
        operational = self.grid.co2_kg(self.energy_j_per_image * self.pue)
        return operational + self.embodied_co2_kg_per_image

    def to_dict(self) -> dict[str, object]:
        return {
            "energy_j_per_image": self.energy_j_per_image,
            "images_per_day": self.images_per_day,
            "years": self.years,
            "images": self.images,
            "pue": self.pue,
            "energy_kwh": self.energy_kwh,
            "operational_co2_kg": self.operational_co2_kg,
            "embodied_co2_kg": self.embodied_kg,
            "embodied_co2_kg_per_image": self.embodied_co2_kg_per_image,
            "total_co2_kg": self.total_co2_kg,
            "co2_kg_per_image": self.co2_kg_per_image,
            "grid": self.grid.to_dict(),
        }


def lifetime(
    energy_j_per_image: float,
    images_per_day: float,
    years: float,
    grid: GridFactor,
    *,
    pue: float = 1.0,
    embodied_kg: float | None = None,
) -> Lifetime:
    """The footprint of `images_per_day` images (input samples) for `years` years (365.25-day years), at
    `energy_j_per_image` each."""
    for name, value in (
        ("energy per image", energy_j_per_image),
        ("--per-day", images_per_day),
        ("--years", years),
    ):
        if not math.isfinite(value) or value < 0:
            raise BadInput(f"{name} {value} must be a finite, non-negative number")
    if embodied_kg is not None and (not math.isfinite(embodied_kg) or embodied_kg < 0):
        raise BadInput(f"--embodied {embodied_kg} must be a finite, non-negative mass (e.g. 20kg)")
    check_pue(pue)
    result = Lifetime(energy_j_per_image, images_per_day, years, grid, pue, embodied_kg)
    _finite(
        "lifetime projection",
        {"images": result.images, "energy": result.energy_j, "CO2": result.total_co2_kg},
        "--per-day, --years, --embodied and --pue",
    )
    return result


def parse_mass(text: str) -> float:
    """A mass of CO2 with units -> kg: `20kg`, `44lb`, `0.02t`, `500g` (a bare number is kg)."""
    try:
        return _non_negative(float(text), "mass", text)
    except ValueError:
        pass
    bare = re.sub(r"\s*co2e?\s*$", "", text, flags=re.IGNORECASE)  # "20 kgCO2e" is 20 kg
    value, unit = _split_quantity(bare, "mass", "20kg, 44lb, 0.02t or 500g")
    factor = _MASS_KG.get(unit.lower())
    if factor is None:
        raise BadInput(f"mass {text!r}: unknown unit {unit!r}; use g, kg, t or lb")
    return value * factor


def format_lifetime(result: Lifetime) -> list[str]:
    """Terminal lines for a lifetime projection (with the embodied share when given)."""
    lines = [
        f"lifetime {result.images_per_day:,.0f} images/day x {result.years:g} years = "
        f"{result.images:,.0f} images",
        f"  energy {result.energy_kwh:.4g} kWh" + (f" (PUE {result.pue:g} included)" if result.pue != 1.0 else ""),
        f"  operational CO2 {result.operational_co2_kg:.4g} kg = {kg_to_lb(result.operational_co2_kg):.4g} lbs",
    ]
    if result.embodied_kg is not None:
        share = result.embodied_kg / result.total_co2_kg if result.total_co2_kg > 0 else math.nan
        lines += [
            f"  embodied CO2 {result.embodied_kg:.4g} kg (user-supplied), amortised "
            f"{result.embodied_co2_kg_per_image:.4g} kg per image",
            f"  total CO2 {result.total_co2_kg:.4g} kg ({share:.0%} embodied); "
            f"{result.co2_kg_per_image:.4g} kg per image",
        ]
    return lines


def context_lines(
    co2_kg_per_inference: float,
    *,
    energy_j_per_image: float | None = None,
    grid: GridFactor | None = None,
    pue: float = 1.0,
    images_per_day: float | None = None,
    years: float | None = None,
    embodied_kg: float | None = None,
    per: float = 1e6,
    unit: str = "inferences",
) -> list[str]:
    """Footer lines for a table: the equivalents of `per` inferences (a million by default; `unit` names what
    is counted, e.g. "samples" when the figure is per sample) and, given images per day, years, the energy per
    image and the grid, the lifetime projection."""
    lines = [f"{per:,.0f} {unit} emit {co2_kg_per_inference * per:.4g} kg CO2, about:"]
    lines += [f"  {line}" for line in equivalents(co2_kg_per_inference * per)]
    if images_per_day is not None and years is not None and energy_j_per_image is not None:
        projection = lifetime(
            energy_j_per_image, images_per_day, years, grid or egrid_factor(), pue=pue,
            embodied_kg=embodied_kg,
        )
        lines += format_lifetime(projection)
    return lines


# --- training -------------------------------------------------------------------------------------------------

STRUBELL_SOURCE = "Strubell et al. (2019)"


def strubell_grid() -> GridFactor:
    """The 0.954 lb CO2/kWh US average that Strubell et al. (2019) used (the course lab's factor)."""
    return GridFactor(
        STRUBELL_LB_PER_KWH * KWH_PER_MWH, f"{STRUBELL_SOURCE}, US average", "", "US", kind="average"
    )


@dataclass(frozen=True)
class TrainingProjection:
    """A training run's footprint projected from a short measured run (the lab's 1,000-iteration timing):
    hours = measured seconds / measured iterations x total iterations; then Strubell et al.'s formula."""

    measured_s: float
    measured_iterations: int
    total_iterations: int
    power_w: float
    estimate: CarbonEstimate
    sources: dict[str, str]  # factor -> where its value came from

    @property
    def seconds(self) -> float:
        return self.measured_s / self.measured_iterations * self.total_iterations

    @property
    def hours(self) -> float:
        return self.seconds / 3600.0

    def to_dict(self) -> dict[str, object]:
        return {
            "measured_s": self.measured_s,
            "measured_iterations": self.measured_iterations,
            "total_iterations": self.total_iterations,
            "hours": self.hours,
            "power_w": self.power_w,
            **self.estimate.to_dict(),
            "sources": dict(self.sources),
        }


def training_projection(
    measured_s: float,
    measured_iterations: int,
    total_iterations: int,
    power_w: float,
    grid: GridFactor,
    pue: float = STRUBELL_PUE,
    *,
    sources: dict[str, str] | None = None,
) -> TrainingProjection:
    """Project `measured_s` seconds for `measured_iterations` to `total_iterations` at `power_w` average."""
    if measured_iterations < 1 or total_iterations < 1:
        raise BadInput("iteration counts must be >= 1: pass --iterations and --total-iterations as whole numbers")
    if not (math.isfinite(measured_s) and measured_s > 0):
        raise BadInput(f"measured time {measured_s} must be a finite number of seconds > 0")
    if not (math.isfinite(power_w) and power_w >= 0):
        raise BadInput(f"power {power_w} must be a finite, non-negative number of watts")
    options = "--time, --iterations, --total-iterations, --power and --pue"
    hours = measured_s / measured_iterations * total_iterations / 3600.0
    return TrainingProjection(
        measured_s, measured_iterations, total_iterations, power_w,
        training_estimate(power_w, hours, grid, pue, options=options), dict(sources or {}),
    )  # fmt: skip


def format_training(result: TrainingProjection) -> list[str]:
    """The projection as lines, each factor with its source."""
    src = result.sources
    est = result.estimate

    def where(key: str) -> str:
        return f"  [{src[key]}]" if key in src else ""

    return [
        f"measured   {result.measured_s:.4g} s for {result.measured_iterations:,} iterations{where('time')}",
        f"power      {result.power_w:.4g} W average{where('power')}",
        f"total      {result.total_iterations:,} iterations -> {result.seconds:,.0f} s = {result.hours:.3f} h",
        f"PUE        {est.pue:g}{where('pue')}",
        f"energy     {est.energy_kwh:.4g} kWh = PUE x hours x kW",
        f"grid       {est.grid.lb_co2_per_kwh:.4g} lb CO2/kWh: {est.grid.label}{where('grid')}",
        f"CO2        {est.co2_lb:.4g} lbs = {est.co2_kg:.4g} kg",
    ]


def format_estimate(result: CarbonEstimate, *, context: bool = False) -> list[str]:
    """Terminal lines for one estimate."""
    lines = [
        f"energy   {result.energy_j:.4g} J = {result.energy_kwh:.4g} kWh"
        + (f" (PUE {result.pue:g} included)" if result.pue != 1.0 else ""),
        f"CO2      {result.co2_kg:.4g} kg = {result.co2_lb:.4g} lbs",
        f"grid     {result.grid.label}",
    ]
    if context:
        lines.append("equivalent to (approximate, confirm before quoting):")
        lines.extend(f"  {line}" for line in equivalents(result.co2_kg))
    return lines


def country_iso3(grid: GridFactor) -> str:
    """The ISO-3 code of a country's factor (its region starts with it, "DEU (Germany)"), as CodeCarbon names a
    country; "" for an eGRID subregion or a user-given factor (the callers say USA where eGRID's country is meant)."""
    first = grid.region.split(" ")[0].upper()
    return first if len(first) == 3 and first.isalpha() else ""


MAX_PUE = 10.0  # a facility's PUE: the worst data centres report about 2.5; more is a typo


def check_pue(pue: float) -> float:
    """`pue` when it is a finite number >= 1; BadInput otherwise (a facility cannot use less than its IT load). The
    one check of a PUE, for the library's callers; the CLI's --pue refuses the same at parsing."""
    if not (math.isfinite(pue) and pue >= 1.0):
        raise BadInput(
            f"PUE {pue} is below 1: a facility cannot use less than its IT load; pass --pue 1 for a device on a "
            "desk, more for a facility"
        )
    if pue > MAX_PUE:
        raise BadInput(f"PUE {pue:g} is over {MAX_PUE:g}: the worst data centres report about 2.5; pass the facility's")
    return pue
