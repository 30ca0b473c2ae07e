"""Skill of the networks against the virtual China's known truth, away from the stations.

The paper could only test its networks at stations. On the virtual China the truth is known in
every cropland cell, so we measure what matters for a national product: the error at cropland
cells that hold **no station**. A sample of such cells is treated as pseudo-stations, once per
cropping pattern, observed without noise on the stations' schedule (days 8, 18, 28 of March to
November, the growing season the networks were trained on). Their covariates go through the
same feature code as real stations; the networks' chained predictions are compared with

* the true soil moisture of each pattern (pooled and by pattern), and
* the true crop-area-weighted reference (Eq. 2), built from the predicted patterns with the
  same weights as the truth.

Metrics are those of :func:`cropsm.train.metrics.all_metrics`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from cropsm import N_LAYERS, catalog
from cropsm.features.station_table import (
    build_station_table,
    climate_at_cells,
    nearest_cell_index,
)
from cropsm.provenance import write_json
from cropsm.sources import grid_input_paths, load_grid_inputs
from cropsm.train import all_metrics, predict_chain, predict_ensemble
from cropsm.twin.truth_store import open_truth

SCHEDULE_DAYS = (8, 18, 28)
SCHEDULE_MONTHS = tuple(range(3, 12))


@dataclass(frozen=True)
class PseudoStations:
    meta: pd.DataFrame
    obs: pd.DataFrame


def station_free_cells(
    truth: xr.Dataset, station_meta: pd.DataFrame, lat: np.ndarray, lon: np.ndarray
) -> np.ndarray:
    """Indices of the truth's cropland cells whose grid cell holds no station."""

    def keys(lats, lons):
        iy, _ = nearest_cell_index(lat, np.asarray(lats), name="lat")
        ix, _ = nearest_cell_index(lon, np.asarray(lons), name="lon")
        return list(zip(iy.tolist(), ix.tolist(), strict=True))

    occupied = set(keys(station_meta["lat"], station_meta["lon"]))
    cells = keys(truth["cell_lat"].values, truth["cell_lon"].values)
    return np.array([i for i, k in enumerate(cells) if k not in occupied], dtype=np.intp)


def pseudo_station_id(cell: int, pattern: str) -> str:
    """Station id of the pseudo-station of truth cell ``cell`` under ``pattern``."""
    return f"cell{cell}_{pattern}"


def pseudo_stations(
    truth: xr.Dataset,
    static: xr.Dataset,
    cells: np.ndarray,
    dates: pd.DatetimeIndex,
    values: np.ndarray | None = None,
) -> PseudoStations:
    """Noise-free pseudo-stations: every sampled cell under every pattern, on ``dates``.

    ``values``: the truth ``sm`` of ``cells`` on ``dates`` ``(pattern, layer, time, cell)`` when
    already read (:func:`truth_skill` reads them once and builds the stations in chunks).
    """
    region_names = {r.code: r.id for r in catalog.regions()}
    cell_lat = truth["cell_lat"].values[cells]
    cell_lon = truth["cell_lon"].values[cells]
    at_cells = {
        "lat": xr.DataArray(cell_lat, dims="cell"),
        "lon": xr.DataArray(cell_lon, dims="cell"),
    }
    region = static["region"].sel(at_cells, method="nearest").values
    elevation = static["elevation"].sel(at_cells, method="nearest").values
    if values is None:
        t_index = truth.indexes["time"].get_indexer(dates)
        values = truth["sm"].isel(time=t_index, cell=cells).values  # (pattern, layer, time, cell)
    patterns = list(truth["pattern"].values)
    metas, obs = [], []
    layer, t, c = np.meshgrid(
        np.arange(N_LAYERS), np.arange(len(dates)), np.arange(len(cells)), indexing="ij"
    )
    for p, pid in enumerate(patterns):
        ids = np.asarray([pseudo_station_id(c, pid) for c in cells])
        metas.append(
            pd.DataFrame(
                {
                    "station_id": ids,
                    "lat": cell_lat,
                    "lon": cell_lon,
                    "elevation": elevation,
                    "region": [region_names.get(int(r), "NE") for r in region],
                    "pattern": pid,
                    "first_year": dates.year.min(),
                    "last_year": dates.year.max(),
                }
            )
        )
        obs.append(
            pd.DataFrame(
                {
                    "station_id": ids[c.ravel()],
                    "date": dates[t.ravel()],
                    "layer": layer.ravel() + 1,
                    "sm": values[p].ravel().astype(float),  # (layer, time, cell) order
                }
            )
        )
    meta = pd.concat(metas, ignore_index=True).set_index("station_id")
    return PseudoStations(meta=meta, obs=pd.concat(obs, ignore_index=True))


def schedule_dates(truth: xr.Dataset) -> pd.DatetimeIndex:
    times = pd.DatetimeIndex(truth["time"].values)
    keep = np.isin(times.day, SCHEDULE_DAYS) & np.isin(times.month, SCHEDULE_MONTHS)
    return times[keep]


def truth_skill(
    truth: xr.Dataset,
    climate: xr.Dataset,
    static: xr.Dataset,
    station_meta: pd.DataFrame,
    models,
    groups_off=(),
    n_cells: int = 200,
    seed: int = 0,
    cells_per_chunk: int = 34,
) -> dict:
    """Metrics of the chained networks against the truth at station-free cropland cells.

    The truth is read once for the sampled cells; the pseudo-stations' covariates (the station
    feature code, :func:`cropsm.features.station_table.build_station_table`) and the networks'
    predictions are then made ``cells_per_chunk`` cells at a time, so that memory stays bounded
    (measured on the paper preset, 200 cells x 6 patterns x 891 days: 4.1 GB peak in one piece,
    the covariate table alone 0.45 GB; 67 cells at a time 2.9 GB, 34 at a time 2.1 GB, in a
    process that held 0.5 GB before). Every pseudo-station's rows are computed from its own
    inputs only, so the chunking does not change them.
    """
    free = station_free_cells(truth, station_meta, static["lat"].values, static["lon"].values)
    rng = np.random.default_rng(seed)
    cells = np.sort(rng.choice(free, size=min(n_cells, len(free)), replace=False))
    dates = schedule_dates(truth)
    t_index = truth.indexes["time"].get_indexer(dates)
    values = truth["sm"].isel(time=t_index, cell=cells).values  # (pattern, layer, time, cell)
    all_weights = truth["weights"].values  # (pattern, cell)
    patterns = [str(p) for p in truth["pattern"].values]
    where_of = {  # pseudo-station -> (cell index in the truth, pattern index)
        pseudo_station_id(c, p): (c, j) for j, p in enumerate(patterns) for c in cells
    }
    # the climate of every sampled cell, read once for all chunks (scattered cells touch
    # every chunk of the record: reading them chunk by chunk tripled the time on the paper
    # preset, 145 of 229 s)
    iy, _ = nearest_cell_index(climate["lat"].values, truth["cell_lat"].values[cells], name="lat")
    ix, _ = nearest_cell_index(climate["lon"].values, truth["cell_lon"].values[cells], name="lon")
    sampled_climate = climate_at_cells(climate, iy, ix)
    obs_parts: dict[int, list] = {}
    sim_parts: dict[int, list] = {}
    where_parts: list = []  # (cell index in the whole truth, pattern index, date) per row
    for start in range(0, len(cells), cells_per_chunk):
        chunk = cells[start : start + cells_per_chunk]
        pseudo = pseudo_stations(
            truth, static, chunk, dates, values[..., start : start + len(chunk)]
        )
        table, _ = build_station_table(
            pseudo, climate, static, groups_off=groups_off, climate_cells=sampled_climate
        )
        pred = predict_chain(models, table)
        position = np.array([where_of[s] for s in table["station_id"].astype(str)])
        cell_of_row, pattern_of_row = position[:, 0], position[:, 1]
        where_parts.append((cell_of_row, pattern_of_row, table["date"].to_numpy()))
        for k in range(1, len(pred.columns) + 1):
            obs_parts.setdefault(k, []).append(table[f"sm_l{k}"].to_numpy())
            sim_parts.setdefault(k, []).append(pred[f"sm_pred_l{k}"].to_numpy())
        del pseudo, table, pred
    row_cell = np.concatenate([w[0] for w in where_parts])
    row_pattern = np.concatenate([w[1] for w in where_parts])
    row_date = np.concatenate([w[2] for w in where_parts])
    row_weight = all_weights[row_pattern, row_cell]
    out: dict = {
        "what": "networks vs truth at cropland cells without a station (pseudo-stations, "
        "no noise, days 8/18/28 of March-November)",
        "cells": int(len(cells)),
        "station_free_cells": int(len(free)),
        "dates": int(len(dates)),
    }
    for k in sorted(obs_parts):
        obs = np.concatenate(obs_parts[k])
        sim = np.concatenate(sim_parts[k])
        by_pattern = {
            p: all_metrics(obs[row_pattern == j], sim[row_pattern == j])
            for j, p in enumerate(patterns)
        }
        # reference: weighted sum over patterns of predictions and of truth per (cell, date)
        frame = pd.DataFrame(
            {
                "cell": row_cell,
                "date": row_date,
                "w_obs": obs * row_weight,
                "w_sim": sim * row_weight,
                "w": row_weight,
            }
        )
        sums = frame.groupby(["cell", "date"]).sum()
        complete = np.isclose(sums["w"], 1.0, atol=1e-3)
        out[f"layer{k}"] = {
            "all_patterns": all_metrics(obs, sim),
            "reference": all_metrics(
                sums["w_obs"].to_numpy()[complete], sums["w_sim"].to_numpy()[complete]
            ),
            "by_pattern": by_pattern,
        }
    return out


def write_truth_skill(ctx, models, chain=None, table: pd.DataFrame | None = None) -> dict:
    """Compute :func:`truth_skill` for a run on the virtual China and write truth_skill.json.

    With the trained ``chain`` (:class:`cropsm.train.chain.TrainedChain`) and its station
    ``table``, the file also holds :func:`station_day_coverage` under ``station_days`` when the
    truth store has the stations' true soil moisture.
    """
    data = load_grid_inputs(ctx.config, ctx.layout)
    truth = open_truth(grid_input_paths(ctx.config, ctx.layout)["truth"])
    skill = truth_skill(
        truth,
        data["climate"],
        data["static"],
        data["stations"].meta,
        models,
        groups_off=ctx.config.features.groups_off,
        seed=ctx.config.run.seed,
    )
    if chain is not None and table is not None and "station_sm" in truth:
        residual = {k: float(e["residual_sd_m3_m-3"]) for k, e in chain.ensemble.items()}
        observation = {
            k: float(e.get("observation_error_sd_m3_m-3", 0.0)) for k, e in chain.ensemble.items()
        }
        skill["station_days"] = station_day_coverage(
            truth, table, chain.split, chain.all_members, residual, observation
        )
    write_json(ctx.layout.truth_skill, skill)
    return skill


def station_day_coverage(
    truth: xr.Dataset,
    table: pd.DataFrame,
    split: pd.Series,
    members,
    residual_sd: dict[int, float],
    observation_error_sd: dict[int, float] | None = None,
) -> dict:
    """What the calibrated intervals cover at the stations' own days: readings and truth.

    The intervals are fitted on validation stations' *readings*, which differ from the true
    soil moisture by the stations' measurement noise and representativeness offset. The
    interval of the soil moisture, ``mean +/- 1.645 sqrt(s^2 + r^2)``, leaves out the readings'
    white error ``e`` estimated from them (:func:`cropsm.train.ensemble.observation_error_sd`);
    a reading's interval adds it, ``sqrt(s^2 + r^2 + e^2)``. A station's constant offset stays
    in ``r`` (no single station's record can tell it from model error), so against the
    noise-free value the soil moisture's interval can still be wide. On the virtual China both
    are known at the same rows, so per layer and split (validation, test) this reports

    * the share of readings inside the reading's interval (what the calibration aims at, 0.90),
    * the share of the true values (the twin's ``station_sm``) inside the soil moisture's
      interval,
    * RMSE of the ensemble mean against the readings, against the truth, and of the readings
      against the truth (the stations' observation error; m3 m-3).

    Parameters
    ----------
    truth
        The twin's truth store (:func:`cropsm.twin.truth_store.open_truth`) with ``station_sm``.
    table
        The station table the networks were trained on (``station_id``, ``date``, ``sm_l{k}``).
    split
        ``train`` / ``validation`` / ``test`` per row of ``table``.
    members, residual_sd
        The ensemble's layer models (member by member) and the calibrated residual SD per layer.
    observation_error_sd
        The readings' own error per layer (m3 m-3); None: 0 (intervals for a reading).
    """
    from cropsm.train.ensemble import (  # imports JAX: only when called
        calibrated_sd,
        interval_coverage,
    )

    ids = pd.Index([str(s) for s in truth["station_id"].values])
    station = ids.get_indexer(table["station_id"].astype(str))
    time = truth.indexes["time"].get_indexer(pd.DatetimeIndex(table["date"]))
    known = (station >= 0) & (time >= 0)
    pred = predict_ensemble(members, table, residual_sd)
    labels = split.reindex(table.index).to_numpy()
    out: dict = {
        "what": "calibrated 90 % intervals at the stations' own days: share of the readings "
        "and of the noise-free truth inside them",
        "rows_with_truth": int(known.sum()),
    }
    for column in pred.columns:
        if not column.startswith("sm_pred_l"):
            continue
        k = int(column.removeprefix("sm_pred_l"))
        layer_truth = truth["station_sm"].sel(layer=k).values  # (time, station)
        true = np.full(len(table), np.nan)
        true[known] = layer_truth[time[known], station[known]]
        reading = table[f"sm_l{k}"].to_numpy(dtype=float)
        mean, sd = pred[column].to_numpy(), pred[f"sm_sd_l{k}"].to_numpy()
        observation = float((observation_error_sd or {}).get(k, 0.0))
        layer: dict = {}
        for name in ("validation", "test"):
            rows = (labels == name) & known & np.isfinite(reading) & np.isfinite(mean)
            if not rows.any():
                continue

            def rmse(a, b, rows=rows):
                return float(np.sqrt(np.mean((a[rows] - b[rows]) ** 2)))

            layer[name] = {
                "rows": int(rows.sum()),
                "coverage_readings": interval_coverage(
                    reading[rows], mean[rows], calibrated_sd(sd[rows], observation)
                ),
                "coverage_truth": interval_coverage(true[rows], mean[rows], sd[rows]),
                "rmse_mean_vs_readings": rmse(mean, reading),
                "rmse_mean_vs_truth": rmse(mean, true),
                "rmse_readings_vs_truth": rmse(reading, true),
            }
        out[f"layer{k}"] = layer
    return out
