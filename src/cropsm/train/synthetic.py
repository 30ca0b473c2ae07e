"""A synthetic station table with a learnable soil-moisture target, for tests and benchmarks.

The table has the columns of the STATION TABLE contract (docs/contracts.md) with plausible
ranges. Soil moisture is a smooth nonlinear function of the features plus a little noise, and
each layer depends on the layer above, so the chained networks can learn it:

``sm_l1 = 0.22 + 0.07 tanh((precip_1m - 60) / 40) + 0.03 sin(2 pi doy / 365)
          - 0.002 (tair - 15) + 0.0015 (clay_l1 - 20) + e_pattern + noise``

``sm_lk = 0.55 sm_l(k-1) + 0.12 + 0.001 (clay_lk - 20) + 0.02 tanh((precip_3m - 150) / 80)
          + noise`` for k >= 2.

It is not a model of anything; it only exercises the training code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cropsm import N_LAYERS
from cropsm.catalog import pattern_ids, region_ids
from cropsm.features.calendar import calendar_features_by_pattern
from cropsm.features.climate import cyclic_day_of_year

_PATTERN_EFFECT = (0.02, -0.015, 0.01, 0.0, -0.02, 0.015)


def synthetic_station_table(
    n_stations: int = 20,
    n_years: int = 3,
    dates_per_year: int = 10,
    *,
    seed: int = 0,
    noise: float = 0.01,
    missing_fraction: float = 0.0,
    first_year: int = 1981,
) -> pd.DataFrame:
    """Build ``n_stations * n_years * dates_per_year`` rows of a station table.

    Parameters
    ----------
    n_stations, n_years, dates_per_year
        Size; dates fall every 10 days from 1 April of each year (growing season).
        273 stations x 33 years x 10 dates (~90,000 rows) is the paper's size.
    seed
        Seed of every random draw.
    noise
        Standard deviation of the observation noise (m3 m-3).
    missing_fraction
        Share of layer observations set to NaN, independently per layer.
    first_year
        First calendar year.

    Returns
    -------
    pandas.DataFrame
        Contract columns; ``sm_l1 ... sm_l5`` observed soil moisture.
    """
    rng = np.random.default_rng(seed)
    patterns = np.array(pattern_ids())
    regions = np.array(region_ids())

    station = {
        "station_id": np.array([f"S{i:04d}" for i in range(n_stations)]),
        "lat": rng.uniform(22.0, 48.0, n_stations),
        "lon": rng.uniform(85.0, 128.0, n_stations),
        "elevation": rng.gamma(2.0, 300.0, n_stations),
        "pattern_code": rng.integers(0, len(patterns), n_stations),
        "region_code": rng.integers(0, len(regions), n_stations),
        "wetness": rng.normal(0.0, 1.0, n_stations),
    }
    soil = {}
    for k in range(1, N_LAYERS + 1):
        sand = rng.uniform(10.0, 70.0, n_stations)
        clay = rng.uniform(5.0, 45.0, n_stations)
        clay = np.minimum(clay, 95.0 - sand)
        soil[f"ph_l{k}"] = rng.uniform(5.0, 8.5, n_stations)
        soil[f"sand_l{k}"] = sand
        soil[f"silt_l{k}"] = 100.0 - sand - clay
        soil[f"clay_l{k}"] = clay
        soil[f"bd_l{k}"] = rng.uniform(1.1, 1.6, n_stations)

    dates = [
        pd.Timestamp(year=first_year + y, month=4, day=1) + pd.Timedelta(days=10 * d)
        for y in range(n_years)
        for d in range(dates_per_year)
    ]
    n_dates = len(dates)
    s = np.repeat(np.arange(n_stations), n_dates)
    n_rows = s.size
    date = np.tile(np.array(dates, dtype="datetime64[ns]"), n_stations)
    doy = pd.DatetimeIndex(date).dayofyear.to_numpy()

    wet = station["wetness"][s]
    precip_1m = rng.gamma(2.0, 30.0, n_rows) * np.exp(0.3 * wet)
    table = pd.DataFrame(
        {
            "station_id": station["station_id"][s],
            "date": date,
            "region": regions[station["region_code"][s]],
            "pattern": patterns[station["pattern_code"][s]],
            "lat": station["lat"][s],
            "lon": station["lon"][s],
            "precip": rng.exponential(2.0, n_rows) * (rng.random(n_rows) < 0.4),
            "precip_1m": precip_1m,
            "precip_2m": precip_1m + rng.gamma(2.0, 30.0, n_rows),
        }
    )
    table["precip_3m"] = table["precip_2m"] + rng.gamma(2.0, 30.0, n_rows)
    table["precip_4m"] = table["precip_3m"] + rng.gamma(2.0, 30.0, n_rows)
    table["precip_5m"] = table["precip_4m"] + rng.gamma(2.0, 30.0, n_rows)
    table["precip_12m"] = table["precip_5m"] + rng.gamma(7.0, 30.0, n_rows)
    season = np.sin(2.0 * np.pi * doy / 365.0)
    table["ssr"] = 12.0 + 6.0 * season + rng.normal(0.0, 2.0, n_rows)
    table["tair"] = 15.0 + 10.0 * season - 0.3 * (table["lat"] - 35.0) + rng.normal(0, 2, n_rows)
    table["vpd"] = np.clip(0.8 + 0.05 * table["tair"] + rng.normal(0.0, 0.3, n_rows), 0.0, None)
    table["wind"] = rng.gamma(3.0, 1.0, n_rows)
    table["cloud"] = rng.uniform(0.0, 1.0, n_rows)
    for name, values in soil.items():
        table[name] = values[s]
    table["elevation"] = station["elevation"][s]
    table["doy"] = doy.astype(np.int64)
    # crop-aware inputs (deterministic functions of the columns above: no random draws, so the
    # target below is the same as without them)
    table["doy_sin"], table["doy_cos"] = cyclic_day_of_year(doy)
    for name, values in calendar_features_by_pattern(table["pattern"].to_numpy(), doy).items():
        table[name] = values
    table["wb_top"] = np.clip(
        0.5
        + 0.3 * np.tanh((table["precip_1m"].to_numpy() - 60.0) / 40.0)
        - 0.2 * (table["cal_kc"].to_numpy() - 0.6),
        0.0,
        1.0,
    )
    table["wb_sub"] = np.clip(
        0.5
        + 0.3 * np.tanh((table["precip_3m"].to_numpy() - 150.0) / 80.0)
        - 0.002 * (table["cal_root_cm"].to_numpy() - 50.0),
        0.0,
        1.0,
    )
    table["wb_top_bare"] = np.clip(table["wb_top"].to_numpy() + 0.1, 0.0, 1.0)
    table["wb_sub_bare"] = np.clip(table["wb_sub"].to_numpy() + 0.1, 0.0, 1.0)
    table["clim_precip_mm_yr"] = 600.0 + 300.0 * wet
    table["clim_aridity"] = 0.6 + 0.3 * wet

    pattern_effect = np.asarray(_PATTERN_EFFECT)[station["pattern_code"][s]]
    sm = (
        0.22
        + 0.07 * np.tanh((table["precip_1m"].to_numpy() - 60.0) / 40.0)
        + 0.03 * season
        - 0.002 * (table["tair"].to_numpy() - 15.0)
        + 0.0015 * (table["clay_l1"].to_numpy() - 20.0)
        + pattern_effect
    )
    for k in range(1, N_LAYERS + 1):
        if k >= 2:
            sm = (
                0.55 * sm
                + 0.12
                + 0.001 * (table[f"clay_l{k}"].to_numpy() - 20.0)
                + 0.02 * np.tanh((table["precip_3m"].to_numpy() - 150.0) / 80.0)
            )
        observed = np.clip(sm + rng.normal(0.0, noise, n_rows), 0.02, 0.6)
        if missing_fraction > 0:
            observed[rng.random(n_rows) < missing_fraction] = np.nan
        table[f"sm_l{k}"] = observed
    return table
