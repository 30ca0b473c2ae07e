"""How well can the inputs the model is told place the scenario effects? A ceiling, on a twin.

For every pattern and layer, the pattern-minus-reference median-annual effect of the crop-aware
two-store bucket (``cropsm.features.water_balance``; ``wb_sub``, the 20-50 cm store) is correlated
across cropland cells with the virtual China's true effect (``truth.zarr``), with the bucket run
on three calendars:

* ``nominal``: the catalog's national calendar (one sowing day, fixed stage lengths);
* ``climate``: the model's climate-adjusted calendar (``cropsm.features.phenology``, what the
  crop-aware feature set uses);
* ``weather``: the twin's own calendar rules run on each year's weather (sowing by the trailing
  temperature and rain, thermal-time stages, the Kc_mid climate adjustment) with every per-cell
  trait at its nominal value (factor 1): what a model could know of the calendars without the
  traits, which only stations could reveal;
* ``truth``: the twin's own per-cell, per-year calendars (``cropsm.twin.calendars``, with the
  per-cell traits and the Kc_mid climate adjustment) - never available to a model; the ceiling of
  calendar knowledge.

With ``--product``, the correlation is also given on the cells of pattern flag 1 (the region has
stations with the pattern), as the scenario-agreement check reports it. The store's effect is
also put into m3 m-3 (relative fill x the store's capacity / its 300 mm depth) and the slope of
that effect on the true one across all cells is printed (``slope_all``): the size a model that
keeps the bucket's physics would give, and the reason for the anchored output
(:mod:`cropsm.train.bounds`). On the demo twin, median over patterns and layers 2-5 with the
model's calendar: r 0.83 (flag 1: 0.39), slope 1.19 with the single-coefficient bucket; r 0.86
(flag 1: 0.50), slope 1.47 with the dual coefficient (session 23).

Usage::

    python benchmarks/scenario_ceiling.py RUN/inputs/twin-demo-seed0 [--product RUN/product.zarr]
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cropsm import catalog
from cropsm.features.phenology import (
    calendar_on_days,
    climate_calendar_tables,
    temperature_harmonics,
)
from cropsm.features.water_balance import (
    TOP_SHARE,
    bucket_capacity_mm,
    pattern_bucket_inputs,
)
from cropsm.io.climate import read_climate
from cropsm.io.static import read_static
from cropsm.predict.crop_inputs import pattern_kc, pattern_root_cm
from cropsm.twin import calendars


def _median_annual(values: np.ndarray, dates: pd.DatetimeIndex) -> np.ndarray:
    """``(day, cell)`` -> ``(cell,)`` median over years of the annual means (the paper's Fig. 9)."""
    return pd.DataFrame(values, index=dates).groupby(dates.year).mean().median().to_numpy()


def truth_calendars(pid, dates, temperature, precip, dewpoint, wind, traits):
    """The twin's own calendar of a pattern at the cells, years run in order with their state."""
    kc = np.empty(temperature.shape)
    root = np.empty_like(kc)
    state = None
    for year in sorted(set(dates.year)):
        m = dates.year == year
        doy = dates[m].dayofyear.to_numpy()
        offsets = calendars.kc_mid_offsets(pid, doy, temperature[m], dewpoint[m], wind[m])
        args = (pid, doy, temperature[m], precip[m], traits)
        if state is None:  # spin-up as the generator does
            state = calendars.pattern_calendar_year(*args, kc_mid_offset=offsets).state
        year_calendar = calendars.pattern_calendar_year(*args, state, kc_mid_offset=offsets)
        state = year_calendar.state
        kc[m], root[m] = year_calendar.kc, year_calendar.root_depth_cm
    return kc, root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("twin", type=Path, help="a virtual China folder (cropsm twin OUT)")
    parser.add_argument("--product", type=Path, help="product.zarr of a run on that twin")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    truth = xr.open_zarr(args.twin / "truth.zarr", consolidated=False).load()
    seed = int(json.loads((args.twin / "twin.json").read_text())["seed"])
    climate = read_climate(args.twin / "climate", validate=False).load()
    static = read_static(args.twin / "static" / "static.nc")
    lat, lon = truth["cell_lat"].values, truth["cell_lon"].values
    ilat = np.searchsorted(climate["lat"].values, lat)
    ilon = np.searchsorted(climate["lon"].values, lon)

    def cells(name: str) -> np.ndarray:
        grid = climate[name].transpose("time", "lat", "lon").values
        return grid[:, ilat, ilon].astype(np.float64)

    precip, temperature = cells("precipitation"), cells("air_temperature")
    solar = cells("net_solar_radiation")
    dates = pd.DatetimeIndex(climate["time"].values)
    slat = np.searchsorted(static["lat"].values, lat)
    slon = np.searchsorted(static["lon"].values, lon)
    soil = {
        "elevation_m": static["elevation"].transpose("lat", "lon").values[slat, slon],
        "sand_by_layer_pct": static["sand"].transpose("layer", "lat", "lon").values[:, slat, slon],
        "clay_by_layer_pct": static["clay"].transpose("layer", "lat", "lon").values[:, slat, slon],
    }
    n, pids = len(lat), catalog.pattern_ids()
    tables = climate_calendar_tables(temperature_harmonics(dates, temperature))
    truth_traits = calendars.cell_traits(lat, lon, seed)
    dewpoint, wind = cells("dewpoint_temperature"), cells("wind_speed")
    nominal_traits = calendars.nominal_traits(lat)
    by_truth, by_weather = (
        [truth_calendars(p, dates, temperature, precip, dewpoint, wind, t) for p in pids]
        for t in (truth_traits, nominal_traits)
    )
    variants = {
        "nominal": (
            np.repeat(pattern_kc(dates)[:, :, None], n, axis=2),
            np.repeat(pattern_root_cm(dates)[:, :, None], n, axis=2),
        ),
        "climate": (calendar_on_days(tables, dates, 0), calendar_on_days(tables, dates, 1)),
        "weather": (
            np.stack([k for k, _ in by_weather], axis=1),
            np.stack([r for _, r in by_weather], axis=1),
        ),
        "truth": (
            np.stack([k for k, _ in by_truth], axis=1),
            np.stack([r for _, r in by_truth], axis=1),
        ),
    }
    truth_dates = pd.DatetimeIndex(truth["time"].values)
    keep = dates.isin(truth_dates)
    weights = truth["weights"].values / truth["weights"].values.sum(axis=0, keepdims=True)
    reference = [_median_annual(truth["reference_sm"].values[k], truth_dates) for k in range(5)]
    flags = None
    if args.product is not None:
        product = xr.open_zarr(args.product)
        flags = product["pattern_flag"].sel(
            lat=xr.DataArray(lat, dims="cell"), lon=xr.DataArray(lon, dims="cell"), method="nearest"
        )
    rows = []
    for calendar, (kc, root) in variants.items():
        bucket = pattern_bucket_inputs(precip, temperature, solar, kc, root, **soil)
        store_mm = bucket_capacity_mm(soil["sand_by_layer_pct"], soil["clay_by_layer_pct"])
        store_mm = store_mm * (1.0 - TOP_SHARE)
        # (day, pattern, cell), m3 m-3 of the 20-50 cm store
        sub = bucket["wb_sub"][keep] * store_mm / 300.0
        bucket_reference = _median_annual((sub * weights[None]).sum(axis=1), truth_dates)
        for j, pid in enumerate(pids):
            bucket_effect = _median_annual(sub[:, j], truth_dates) - bucket_reference
            flag1 = None if flags is None else flags.sel(scenario=pid).values == 1
            for k in range(5):
                true_effect = _median_annual(truth["sm"].values[j, k], truth_dates) - reference[k]
                row = {"calendar": calendar, "pattern": pid, "layer": k + 1}
                row["r_all_cells"] = np.corrcoef(true_effect, bucket_effect)[0, 1]
                row["slope_all"] = np.polyfit(true_effect, bucket_effect, 1)[0]
                if flag1 is not None and flag1.sum() > 3:
                    row["r_flag1"] = np.corrcoef(true_effect[flag1], bucket_effect[flag1])[0, 1]
                rows.append(row)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    columns = [c for c in ("r_all_cells", "r_flag1", "slope_all") if c in table]
    print(table.pivot_table(index=["pattern", "layer"], columns="calendar", values=columns)
          .round(2).to_string())  # fmt: skip
    print("\nmedian over patterns, layers 2-5 (layer 1's effect runs against the subsoil's):")
    print(table[table.layer >= 2].groupby("calendar")[columns].median().round(2).to_string())


if __name__ == "__main__":
    main()
