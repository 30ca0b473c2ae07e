"""Could the stations' observations reveal the per-cell crop traits? A calibration probe, on a twin.

``benchmarks/trait_ceiling.py`` shows that the scenario effects inside a pattern's own regions
(pattern flag 1) need the virtual China's per-cell crop traits (Kc_mid, maximum rooting depth,
thermal-time requirement; :func:`cropsm.twin.calendars.cell_traits`), which no model is told, and
that knowing them at the stations would be enough. This script asks whether a station's own
observations pin its traits down, in the most favourable setting a model could have: for every
station and every season of its pattern, 27 candidate traits (Kc_mid x {0.9, 1, 1.1}, rooting
depth x {0.7, 1, 1.3}, thermal time x {0.9, 1, 1.1}; the other season nominal) drive the
twin's *own* calendar rules on the station cell's weather (``scenario_ceiling.truth_calendars``,
sowing, stages and the Kc_mid climate adjustment as the truth computes them) and the model's
two-store bucket (:func:`cropsm.features.water_balance.pattern_bucket_inputs`, on the gridded
soil the model is given). Each layer's observations are regressed on the two stores,

``SM_obs,k(t) = a_k + b_k wb_top(t) + c_k wb_sub(t) + e``    (least squares per station),

and the candidate of least squared error summed over the five layers is the station's estimate
(also a likelihood-weighted mean of the candidates, ``w ~ exp(-(SSE - SSE_min) / (2 SSE_min /
n_obs))``). The estimates are correlated, across stations, with the true traits of the station's
cell.

Usage::

    python benchmarks/trait_identifiability.py RUN/inputs/twin-paper-seed0 [--patterns ...]
        [--out ESTIMATES.csv]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scenario_ceiling import truth_calendars

from cropsm import catalog
from cropsm.features.station_table import nearest_cell_index
from cropsm.features.water_balance import pattern_bucket_inputs
from cropsm.io.climate import read_climate
from cropsm.io.static import read_static
from cropsm.io.stations import read_stations
from cropsm.twin import calendars

FACTORS = {"kc_mid": (0.9, 1.0, 1.1), "root": (0.7, 1.0, 1.3), "thermal": (0.9, 1.0, 1.1)}
CANDIDATES = np.array(list(itertools.product(*FACTORS.values())))
TRUE_FIELD = {"kc_mid": "kc_mid_factor", "root": "root_factor", "thermal": "thermal_factor"}
WEATHER = ("precipitation", "air_temperature", "net_solar_radiation")
CALENDAR_WEATHER = ("dewpoint_temperature", "wind_speed")
STATIONS_PER_PASS = 40


def nearest(axis: np.ndarray, values) -> np.ndarray:
    """Index of the nearest cell centre (:func:`nearest_cell_index`)."""
    return nearest_cell_index(axis, np.asarray(values))[0]


def layer_errors(obs: pd.DataFrame, day_index: pd.Series, top, sub) -> np.ndarray:
    """Least-squares error of every candidate column, summed over layers, ``(column,)``.

    ``obs`` one station's observations; ``top``, ``sub`` ``(time, column)`` bucket stores.
    """
    sse = np.zeros(top.shape[1])
    for _, rows in obs.groupby("layer"):
        days = day_index.reindex(pd.DatetimeIndex(rows["date"])).to_numpy()
        known = np.isfinite(days)
        days, target = days[known].astype(int), rows["sm"].to_numpy()[known]
        if target.size < 10:
            continue
        for column in range(top.shape[1]):
            design = np.column_stack([np.ones(days.size), top[days, column], sub[days, column]])
            coef, *_ = np.linalg.lstsq(design, target, rcond=None)
            sse[column] += float(((target - design @ coef) ** 2).sum())
    return sse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("twin", type=Path, help="a virtual China folder (cropsm twin OUT)")
    parser.add_argument("--patterns", nargs="+", default=list(catalog.pattern_ids()))
    parser.add_argument("--out", type=Path, help="write the estimates (CSV) for trait_ceiling.py")
    args = parser.parse_args()
    seed = int(json.loads((args.twin / "twin.json").read_text())["seed"])
    stations = read_stations(
        args.twin / "stations" / "stations.csv", args.twin / "stations" / "observations.csv"
    )
    meta = stations.meta[stations.meta["pattern"].isin(args.patterns)]
    obs_by_station = dict(tuple(stations.obs.groupby("station_id")))
    climate = read_climate(args.twin / "climate", validate=False)
    static = read_static(args.twin / "static" / "static.nc")
    t_start = time.perf_counter()
    at_stations = climate[list(WEATHER + CALENDAR_WEATHER)].isel(
        lat=xr.DataArray(nearest(climate["lat"].values, meta["lat"]), dims="station"),
        lon=xr.DataArray(nearest(climate["lon"].values, meta["lon"]), dims="station"),
    )
    weather = {
        name: at_stations[name].transpose("time", "station").values.astype(np.float64)
        for name in WEATHER + CALENDAR_WEATHER
    }
    print(f"weather of {len(meta)} station cells read in {time.perf_counter() - t_start:.0f} s")
    dates = pd.DatetimeIndex(at_stations["time"].values)
    day_index = pd.Series(np.arange(dates.size), index=dates)
    slat = nearest(static["lat"].values, meta["lat"])
    slon = nearest(static["lon"].values, meta["lon"])
    soil = {
        "elevation_m": static["elevation"].transpose("lat", "lon").values[slat, slon],
        "sand_by_layer_pct": static["sand"].transpose("layer", "lat", "lon").values[:, slat, slon],
        "clay_by_layer_pct": static["clay"].transpose("layer", "lat", "lon").values[:, slat, slon],
    }
    true_traits = calendars.cell_traits(
        static["lat"].values[slat], static["lon"].values[slon], seed
    )
    patterns = {p.id: p for p in catalog.patterns()}
    n_cand = len(CANDIDATES)
    rows = []
    for pattern_id in args.patterns:
        members = np.flatnonzero(meta["pattern"].to_numpy() == pattern_id)
        for season in patterns[pattern_id].seasons:
            t_start = time.perf_counter()
            for first in range(0, members.size, STATIONS_PER_PASS):
                chunk = members[first : first + STATIONS_PER_PASS]
                columns = np.repeat(chunk, n_cand)  # station-major, candidate-minor
                factors = np.tile(CANDIDATES, (chunk.size, 1))
                traits = calendars.nominal_traits(columns)
                traits[season.name] = calendars.SeasonTraits(*factors.T)
                kc, root = truth_calendars(
                    pattern_id,
                    dates,
                    weather["air_temperature"][:, columns],
                    weather["precipitation"][:, columns],
                    weather["dewpoint_temperature"][:, columns],
                    weather["wind_speed"][:, columns],
                    traits,
                )
                bucket = pattern_bucket_inputs(
                    weather["precipitation"][:, columns],
                    weather["air_temperature"][:, columns],
                    weather["net_solar_radiation"][:, columns],
                    kc,
                    root,
                    elevation_m=soil["elevation_m"][columns],
                    sand_by_layer_pct=soil["sand_by_layer_pct"][:, columns],
                    clay_by_layer_pct=soil["clay_by_layer_pct"][:, columns],
                )
                for j, station in enumerate(chunk):
                    part = slice(j * n_cand, (j + 1) * n_cand)
                    obs = obs_by_station[meta.index[station]]
                    sse = layer_errors(
                        obs, day_index, bucket["wb_top"][:, part], bucket["wb_sub"][:, part]
                    )
                    weight = np.exp(-(sse - sse.min()) / (2.0 * sse.min() / len(obs)))
                    soft = (CANDIDATES * (weight / weight.sum())[:, None]).sum(axis=0)
                    best = CANDIDATES[int(np.argmin(sse))]
                    row = {"station_id": meta.index[station], "pattern": pattern_id}
                    row["season"] = season.name
                    for i, trait in enumerate(FACTORS):
                        row[f"{trait}_best"], row[f"{trait}_weighted"] = best[i], soft[i]
                        field = getattr(true_traits[season.name], TRUE_FIELD[trait])
                        row[f"{trait}_true"] = field[station]
                    rows.append(row)
            print(
                f"{pattern_id} {season.name}: {members.size} stations x {n_cand} candidates, "
                f"{time.perf_counter() - t_start:.0f} s"
            )
    table = pd.DataFrame(rows)
    if args.out is not None:
        table.to_csv(args.out, index=False)
    print("\nPearson r across stations, estimate vs true trait (best / weighted):")
    for trait in FACTORS:
        overall = [
            np.corrcoef(table[f"{trait}_{kind}"], table[f"{trait}_true"])[0, 1]
            for kind in ("best", "weighted")
        ]
        by_season = {
            name: round(float(np.corrcoef(g[f"{trait}_weighted"], g[f"{trait}_true"])[0, 1]), 2)
            for name, g in table.groupby("season")
            if len(g) > 3
        }
        print(f"  {trait:8s} {overall[0]:.2f} / {overall[1]:.2f}   weighted by season {by_season}")


if __name__ == "__main__":
    main()
