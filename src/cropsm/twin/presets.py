"""Sizes of the virtual China: ``paper`` (all China, 0.25 deg, 1981-2013), ``demo`` and ``tiny``."""

from __future__ import annotations

from dataclasses import dataclass

from cropsm.errors import UsageError
from cropsm.twin.geography import GridSpec


@dataclass(frozen=True)
class Preset:
    """One size of the virtual China.

    The climate starts ``spinup_years`` before ``first_year`` so that the 12-month precipitation
    look-back and the soil water store are spun up when the truth and the stations begin.
    """

    name: str
    grid: GridSpec
    first_year: int
    last_year: int
    n_stations: int
    spinup_years: int = 1
    description: str = ""

    @property
    def climate_first_year(self) -> int:
        return self.first_year - self.spinup_years

    @property
    def years(self) -> range:
        return range(self.first_year, self.last_year + 1)


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        name="paper",
        grid=GridSpec(18.125, 53.875, 73.125, 134.875, 0.25),
        first_year=1981,
        last_year=2013,
        n_stations=273,
        description="all of China at 0.25 deg, 1981-2013, 273 stations (the paper's setting)",
    ),
    "demo": Preset(
        name="demo",
        grid=GridSpec(18.25, 53.75, 73.25, 134.75, 0.5),
        first_year=2004,
        last_year=2013,
        n_stations=160,
        description="all of China at 0.5 deg, 2004-2013, 160 stations",
    ),
    "tiny": Preset(
        name="tiny",
        grid=GridSpec(30.25, 39.75, 112.25, 119.75, 0.5),
        first_year=2012,
        last_year=2013,
        n_stations=30,
        description="North China Plain to the Yangtze at 0.5 deg, 2012-2013, 30 stations (tests)",
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UsageError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}") from None
