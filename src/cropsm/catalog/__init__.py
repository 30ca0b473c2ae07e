"""Package data: regions, cropping patterns, crop seasons and the paper's Table 3.

Everything here is read from the TOML files beside this module, so the science lives in data, not
in if/elif chains. Loaders are cached; returned objects are immutable.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files


def _load(name: str) -> dict:
    return tomllib.loads(files(__package__).joinpath(name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Region:
    code: int
    id: str
    name: str
    provinces: tuple[int, ...]


@dataclass(frozen=True)
class ProvinceSplit:
    provinces: tuple[int, ...]
    north_of_lat: float
    region: str


@dataclass(frozen=True)
class CropSeason:
    """One crop's growing season, FAO-56 single crop coefficient curve (Allen et al. 1998)."""

    name: str
    crop: str
    sow_doy: int
    stage_days: tuple[int, int, int, int]
    kc: tuple[float, float, float]
    root_depth_max_cm: float
    sowing: str = "fixed"
    base_temperature_c: float = 0.0
    upper_temperature_c: float = 30.0
    frost_hardy: bool = True
    gap_days: int = 0


@dataclass(frozen=True)
class Pattern:
    id: str
    name: str
    weight_crops: tuple[str, ...]
    seasons: tuple[CropSeason, ...]


@dataclass(frozen=True)
class Table3Entry:
    table3: str
    patterns: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class RegionPatterns:
    region: str
    primary: Table3Entry
    secondary: Table3Entry

    @property
    def patterns(self) -> tuple[str, ...]:
        """The region's patterns among the six, primary first, without repeats."""
        out: list[str] = []
        for p in self.primary.patterns + self.secondary.patterns:
            if p not in out:
                out.append(p)
        return tuple(out)


@cache
def regions() -> tuple[Region, ...]:
    """The eight regions, in code order (1 NE, 2 N, 3 HHH, 4 E, 5 C, 6 S, 7 NW, 8 SW)."""
    data = _load("regions.toml")
    out = [Region(r["code"], r["id"], r["name"], tuple(r["provinces"])) for r in data["region"]]
    return tuple(sorted(out, key=lambda r: r.code))


@cache
def province_splits() -> tuple[ProvinceSplit, ...]:
    data = _load("regions.toml")
    return tuple(
        ProvinceSplit(tuple(s["provinces"]), float(s["north_of_lat"]), s["region"])
        for s in data.get("split", [])
    )


def region_ids() -> tuple[str, ...]:
    return tuple(r.id for r in regions())


def region_code(region_id: str) -> int:
    for r in regions():
        if r.id == region_id:
            return r.code
    raise KeyError(f"unknown region {region_id!r}; expected one of {region_ids()}")


@cache
def crops() -> tuple[str, ...]:
    """The six harvested-area crops of the paper (section 2b(5))."""
    return tuple(_load("patterns.toml")["crops"])


@cache
def seasons() -> dict[str, CropSeason]:
    data = _load("patterns.toml")["season"]
    return {
        name: CropSeason(
            name=name,
            crop=s["crop"],
            sow_doy=int(s["sow_doy"]),
            stage_days=tuple(int(d) for d in s["stage_days"]),
            kc=tuple(float(k) for k in s["kc"]),
            root_depth_max_cm=float(s["root_depth_max_cm"]),
            sowing=str(s.get("sowing", "fixed")),
            base_temperature_c=float(s.get("base_temperature_c", 0.0)),
            upper_temperature_c=float(s.get("upper_temperature_c", 30.0)),
            frost_hardy=bool(s.get("frost_hardy", True)),
            gap_days=int(s.get("gap_days", 0)),
        )
        for name, s in data.items()
    }


@cache
def nominal_climate() -> dict[str, float]:
    """The annual temperature cycle in which the nominal sowing days and stage lengths are typical
    practice: ``mean_c``, ``amplitude_c`` (degC) and ``warmest_doy``."""
    return {k: float(v) for k, v in _load("patterns.toml")["nominal_climate"].items()}


@cache
def fallow() -> dict[str, float]:
    """Crop coefficient and rooting depth of a fallow (bare, weedy) field."""
    return dict(_load("patterns.toml")["fallow"])


@cache
def patterns() -> tuple[Pattern, ...]:
    """The six cropping patterns, in the paper's order (ww_fl ww_mz sw_ct rs_ct fl_mz fl_sb)."""
    data = _load("patterns.toml")
    all_seasons = seasons()
    return tuple(
        Pattern(
            id=p["id"],
            name=p["name"],
            weight_crops=tuple(p["weight_crops"]),
            seasons=tuple(all_seasons[s] for s in p["seasons"]),
        )
        for p in data["pattern"]
    )


def pattern_ids() -> tuple[str, ...]:
    return tuple(p.id for p in patterns())


@cache
def table3() -> dict[str, RegionPatterns]:
    """The paper's Table 3 mapped onto the six patterns, keyed by region id."""
    data = _load("patterns.toml")["table3"]

    def entry(d: dict) -> Table3Entry:
        return Table3Entry(d["table3"], tuple(d["patterns"]), d.get("note", ""))

    return {
        t["region"]: RegionPatterns(t["region"], entry(t["primary"]), entry(t["secondary"]))
        for t in data
    }
