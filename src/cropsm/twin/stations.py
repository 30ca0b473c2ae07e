"""Agrometeorological stations of the virtual China and their observations.

Following the paper (section 2b(1)): stations sit in cropland, each keeps one cropping pattern
for its whole record (drawn from its region's Table-3 patterns), and measure five 10-cm layers on
days 8, 18 and 28 of the growing-season months, never in frozen soil. What the networks cannot
know is built in: each station has its own soil (offsets from the gridded soil of its cell), an
additive representativeness offset per layer, measurement noise of about 0.02 m3 m-3, record
lengths and gap years that vary by station, and a share of stations reporting gravimetric water
content (g g-1) with their bulk density, as the CMA network does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cropsm import N_LAYERS, catalog

OBSERVATION_DAYS = (8, 18, 28)
MEASUREMENT_NOISE_SD = 0.02  # m3 m-3
REPRESENTATIVENESS_SD = 0.015  # m3 m-3, per station and layer
GRAVIMETRIC_SHARE = 0.3
_GROWING_MONTHS = {
    "NE": range(4, 11),
    "N": range(4, 11),
    "NW": range(4, 11),
    "HHH": range(3, 12),
    "E": range(3, 12),
    "C": range(3, 12),
    "S": range(3, 12),
    "SW": range(3, 12),
}
_PRIMARY_SHARE = 0.65


def place_stations(
    cropland_fraction: np.ndarray,
    region: np.ndarray,
    elevation: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    n_stations: int,
    first_year: int,
    last_year: int,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Station metadata: location, region, pattern, record years and sensor type.

    Cells are drawn without replacement among cropland cells (fraction >= 0.1) with probability
    proportional to the squared cropland fraction, so station density follows cropland. The
    station sits at a random point of its cell (its nearest grid cell is its own cell).
    Pattern: the region's primary Table-3 patterns with probability 0.65, else the secondary.
    """
    iy, ix = np.nonzero(cropland_fraction >= 0.1)
    if len(iy) == 0:
        raise ValueError("no cropland cell (fraction >= 0.1) to place stations in")
    n = min(n_stations, len(iy))
    p = cropland_fraction[iy, ix].astype(float) ** 2
    pick = rng.choice(len(iy), size=n, replace=False, p=p / p.sum())
    iy, ix = iy[pick], ix[pick]
    order = np.lexsort((ix, iy))
    iy, ix = iy[order], ix[order]
    res_lat = float(lat[1] - lat[0])
    res_lon = float(lon[1] - lon[0])
    codes = {r.code: r.id for r in catalog.regions()}
    table3 = catalog.table3()
    regions = [codes[int(c)] for c in region[iy, ix]]
    patterns = []
    for reg in regions:
        entry = table3[reg]
        primary, secondary = entry.primary.patterns, entry.secondary.patterns
        pool = primary if (not secondary or rng.random() < _PRIMARY_SHARE) else secondary
        patterns.append(str(rng.choice(pool)))
    n_years = last_year - first_year + 1
    start = first_year + np.floor(rng.random(n) ** 2 * 0.4 * n_years).astype(int)
    end = last_year - np.floor(rng.random(n) ** 2 * 0.3 * n_years).astype(int)
    end = np.maximum(end, start)
    meta = pd.DataFrame(
        {
            "station_id": [f"VC{i + 1:04d}" for i in range(n)],
            "lat": np.round(lat[iy] + rng.uniform(-0.45, 0.45, n) * res_lat, 4),
            "lon": np.round(lon[ix] + rng.uniform(-0.45, 0.45, n) * res_lon, 4),
            "elevation": np.round(elevation[iy, ix] + rng.normal(0, 15, n), 1).clip(min=0),
            "region": regions,
            "pattern": patterns,
            "first_year": start,
            "last_year": end,
            "sm_type": np.where(rng.random(n) < GRAVIMETRIC_SHARE, "gravimetric", "volumetric"),
            "cell_y": iy,
            "cell_x": ix,
        }
    )
    return meta


def station_soil_offsets(n_stations: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Station-specific soil departures from the gridded soil of the cell (n_stations, 5).

    Sand and clay shift by N(0, 4) percentage points (the same sign through the profile plus a
    small layer noise), bulk density by N(0, 0.05) g cm-3, and the station's observations by an
    additive representativeness offset N(0, 0.015) m3 m-3 per layer.
    """
    profile = rng.standard_normal((n_stations, 1))
    return {
        "sand": 4.0 * profile + rng.normal(0, 1.0, (n_stations, N_LAYERS)),
        "clay": -3.0 * profile + rng.normal(0, 1.0, (n_stations, N_LAYERS)),
        "bulk_density": rng.normal(0, 0.05, (n_stations, 1))
        + rng.normal(0, 0.01, (n_stations, N_LAYERS)),
        "sm": rng.normal(0, REPRESENTATIVENESS_SD, (n_stations, N_LAYERS)),
    }


def gap_years(meta: pd.DataFrame, rng: np.random.Generator, share: float = 0.1) -> set:
    """(station_id, year) pairs without measurements: about ``share`` of each record."""
    gaps = set()
    for sid, a, b in meta[["station_id", "first_year", "last_year"]].itertuples(index=False):
        years = np.arange(a, b + 1)
        n_gap = rng.binomial(len(years), share) if len(years) > 2 else 0
        for y in rng.choice(years, size=n_gap, replace=False) if n_gap else []:
            gaps.add((sid, int(y)))
    return gaps


def observation_mask(dates: pd.DatetimeIndex, meta: pd.DataFrame, gaps: set) -> np.ndarray:
    """Boolean (n_days, n_stations): a scheduled measurement day inside the station's record."""
    days = np.isin(dates.day, OBSERVATION_DAYS)
    mask = np.zeros((len(dates), len(meta)), dtype=bool)
    for k, row in enumerate(meta.itertuples(index=False)):
        months = np.isin(dates.month, list(_GROWING_MONTHS[row.region]))
        years = dates.year
        in_record = (years >= row.first_year) & (years <= row.last_year)
        gap = np.isin(years, [y for (s, y) in gaps if s == row.station_id])
        mask[:, k] = days & months & in_record & ~gap
    return mask


def sample_observations(
    station_sm: np.ndarray,
    frozen: np.ndarray,
    dates: pd.DatetimeIndex,
    meta: pd.DataFrame,
    sm_offset: np.ndarray,
    saturation: np.ndarray,
    scheduled: np.ndarray,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Observations of one period as a long table (station_id, date, layer, sm volumetric).

    obs = truth + representativeness offset + N(0, 0.02), clipped to [0.02, saturation], on the
    scheduled days when the top layer is not frozen; about 4 % of layer readings are missing.

    Parameters
    ----------
    station_sm
        True soil moisture at the stations (n_days, 5, n_stations), m3 m-3.
    frozen
        (n_days, n_stations) True where the top layer is frozen.
    scheduled
        (n_days, n_stations) from :func:`observation_mask`.
    """
    take = scheduled & ~frozen
    t_idx, s_idx = np.nonzero(take)
    if len(t_idx) == 0:
        return pd.DataFrame({"station_id": [], "date": [], "layer": [], "sm": []}).astype(
            {"layer": int, "sm": float}
        )
    values = station_sm[t_idx, :, s_idx]  # (n_obs, 5)
    values = values + sm_offset[s_idx] + rng.normal(0, MEASUREMENT_NOISE_SD, values.shape)
    values = np.clip(values, 0.02, saturation[s_idx])
    missing = rng.random(values.shape) < 0.04
    values = np.where(missing, np.nan, values)
    ids = meta["station_id"].to_numpy()
    frame = pd.DataFrame(
        {
            "station_id": np.repeat(ids[s_idx], N_LAYERS),
            "date": np.repeat(dates[t_idx].to_numpy(), N_LAYERS),
            "layer": np.tile(np.arange(1, N_LAYERS + 1), len(t_idx)),
            "sm": values.reshape(-1),
        }
    )
    return frame.dropna(subset=["sm"])
