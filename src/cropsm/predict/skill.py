"""Skill of the national product against the virtual China's truth, everywhere.

The paper could test its networks only at stations. On the virtual China every cropland cell's
true soil moisture is known under every pattern (``truth.zarr``), so the product itself is
scored: per layer, over all cropland cells and all days the product and the truth share,

.. math::

    R^2 = 1 - \\frac{\\sum (o - s)^2}{\\sum (o - \\bar o)^2},\\qquad
    \\mathrm{RMSE} = \\sqrt{\\tfrac{1}{n} \\sum (s - o)^2},\\qquad
    \\mathrm{bias} = \\tfrac{1}{n} \\sum (s - o)

(the definitions of :mod:`cropsm.train.metrics`), for the reference product against the true
reference (Eq. 2 with the truth's weights) and for each pattern's product against that
pattern's truth. The sums are accumulated over time windows, so memory stays bounded. The error
map is the per-cell RMSE of the reference product, one panel per layer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cropsm import LAYER_BOTTOM_CM, LAYER_TOP_CM, N_LAYERS
from cropsm.features.station_table import nearest_cell_index
from cropsm.io.atomic import atomic_output
from cropsm.predict.config import REFERENCE
from cropsm.predict.grid_features import synchronous_values
from cropsm.predict.store import SM_FILL, SM_SCALE, check_complete
from cropsm.provenance import write_json


@dataclass
class ErrorSums:
    """Running sums for R2, RMSE and bias of one series pair (shifted by ``shift`` for
    numerical stability of the total sum of squares)."""

    shift: float = 0.25
    n: int = 0
    sum_o: float = 0.0
    sum_o2: float = 0.0
    sum_s: float = 0.0
    sse: float = 0.0
    extra: dict = field(default_factory=dict)

    def add(self, obs: np.ndarray, sim: np.ndarray) -> None:
        ok = np.isfinite(obs) & np.isfinite(sim)
        o = obs[ok].astype(np.float64) - self.shift
        s = sim[ok].astype(np.float64) - self.shift
        self.n += int(o.size)
        self.sum_o += float(o.sum())
        self.sum_o2 += float(np.dot(o, o))
        self.sum_s += float(s.sum())
        d = s - o
        self.sse += float(np.dot(d, d))

    def merge(self, other: ErrorSums) -> None:
        """Add the sums of ``other`` (same ``shift``) to these."""
        if other.shift != self.shift:
            raise ValueError("cannot merge error sums with different shifts")
        self.n += other.n
        self.sum_o += other.sum_o
        self.sum_o2 += other.sum_o2
        self.sum_s += other.sum_s
        self.sse += other.sse

    def metrics(self) -> dict:
        """``{"r2", "rmse", "bias", "n"}`` (NaN without pairs)."""
        if self.n == 0:
            return {"r2": float("nan"), "rmse": float("nan"), "bias": float("nan"), "n": 0}
        sst = self.sum_o2 - self.sum_o**2 / self.n
        return {
            "r2": 1.0 - self.sse / sst if sst > 0 else float("nan"),
            "rmse": float(np.sqrt(self.sse / self.n)),
            "bias": (self.sum_s - self.sum_o) / self.n,
            "n": self.n,
        }


def _decode(packed: np.ndarray) -> np.ndarray:
    values = packed.astype(np.float32) * np.float32(SM_SCALE)
    values[packed == SM_FILL] = np.nan
    return values


def window_error_sums(
    product_path: str | Path,
    truth: xr.Dataset,
    scenarios: list[str],
    iy: np.ndarray,
    ix: np.ndarray,
    product_days: slice,
    truth_days: slice,
    months: np.ndarray | None = None,
    cell_observed: np.ndarray | None = None,
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Error sums of one window of consecutive days (the task of :func:`product_truth_skill`).

    ``months`` (calendar month of each day of the window) and ``cell_observed`` (``(cell,
    12)`` bool, the store's ``season_flag``: the months the stations of the cell's region
    observe) split the reference's interval coverage by month and by season
    (:func:`interval_counts_by`).

    Returns
    -------
    (sums, cell_sse, cell_n)
        :class:`ErrorSums` per ``(scenario, layer index)``; squared errors and counts of the
        reference per ``(layer, cell)`` (zeros without a reference scenario).
    """
    sm = zarr.open_array(str(Path(product_path) / "sm"), mode="r")
    sd_path = Path(product_path) / "sm_sd"
    sm_sd = zarr.open_array(str(sd_path), mode="r") if sd_path.is_dir() else None
    residual = (
        np.asarray(sm_sd.attrs.get("residual_sd_by_layer", [0.0] * N_LAYERS), dtype=np.float64)
        if sm_sd is not None
        else None
    )
    truth_patterns = [str(p) for p in truth["pattern"].values]
    sums = {(s, k): ErrorSums() for s in scenarios for k in range(N_LAYERS)}
    coverage = np.zeros((N_LAYERS, 3))  # pairs, inside the raw and the calibrated 90 % interval
    by_month = np.zeros((N_LAYERS, 12, 3))  # pairs, inside the calibrated interval, sum of e^2
    by_season = np.zeros((N_LAYERS, 2, 3))  # outside / inside the stations' observation season
    cell_sse = np.zeros((N_LAYERS, iy.size))
    cell_n = np.zeros((N_LAYERS, iy.size))
    month_index = in_season = None
    if months is not None:
        month_of_day = np.asarray(months, dtype=np.intp) - 1
        month_index = np.broadcast_to(month_of_day[:, None], (month_of_day.size, iy.size))
        if cell_observed is not None:  # (cell, month) -> (time, cell)
            in_season = np.asarray(cell_observed).T[np.asarray(months) - 1].astype(np.intp)
    for s_i, s in enumerate(scenarios):
        if s == REFERENCE:
            obs_all = truth["reference_sm"].isel(time=truth_days)
        else:
            obs_all = truth["sm"].isel(pattern=truth_patterns.index(s), time=truth_days)
        # the truth's chunks hold every layer: read once; the product layer by layer (its
        # chunks hold one), so that a window of a whole time chunk stays small in memory
        obs_all = synchronous_values(obs_all.transpose("layer", "time", "cell"))
        for k in range(N_LAYERS):
            sim = _decode(np.asarray(sm[s_i, k, product_days])[:, iy, ix])  # (time, cell)
            obs = np.asarray(obs_all[k], dtype=np.float32)
            sums[(s, k)].add(obs, sim)
            if s != REFERENCE:
                continue
            err = (sim - obs).astype(np.float64)
            ok = np.isfinite(err)
            cell_sse[k] += np.where(ok, err**2, 0.0).sum(axis=0)
            cell_n[k] += ok.sum(axis=0)
            if sm_sd is None:
                continue
            sd = _decode(np.asarray(sm_sd[s_i, k, product_days])[:, iy, ix]).astype(np.float64)
            coverage[k] += interval_counts(err[None], sd[None], residual[k : k + 1])[0]
            if month_index is not None:
                by_month[k] += interval_counts_by(err[None], sd[None], month_index, 12)[0]
            if in_season is not None:
                by_season[k] += interval_counts_by(err[None], sd[None], in_season, 2)[0]
        del obs_all
    sums[("coverage", "reference")] = coverage
    sums[("coverage_by_month", "reference")] = by_month
    sums[("coverage_by_season", "reference")] = by_season
    return sums, cell_sse, cell_n


def interval_counts(error: np.ndarray, sd: np.ndarray, residual_sd: np.ndarray) -> np.ndarray:
    """Per layer: pairs, and pairs inside the central 90 % interval from the ensemble spread
    alone and from the calibrated standard error.

    ``sd`` is the stored standard error ``sqrt(s^2 + r_k^2)``; the spread is recovered as
    ``s = sqrt(max(sd^2 - r_k^2, 0))``. A pair is inside when ``|P - T| <= 1.645 x`` (x = s or
    sd). ``error`` and ``sd`` are ``(layer, ...)``; returns ``(layer, 3)``.
    """
    from cropsm.train.ensemble import Z90

    out = np.zeros((error.shape[0], 3))
    for k in range(error.shape[0]):
        e, total = np.abs(error[k]), sd[k]
        ok = np.isfinite(e) & np.isfinite(total)
        r = float(residual_sd[k]) if k < len(residual_sd) else 0.0
        spread = np.sqrt(np.maximum(total[ok] ** 2 - r * r, 0.0))
        out[k] = (ok.sum(), (e[ok] <= Z90 * spread).sum(), (e[ok] <= Z90 * total[ok]).sum())
    return out


def interval_counts_by(
    error: np.ndarray, sd: np.ndarray, group: np.ndarray, n_groups: int
) -> np.ndarray:
    """Per layer and group: pairs, pairs inside the calibrated 90 % interval
    (``|P - T| <= 1.645 sd``) and the sum of squared errors ``sum (P - T)^2``.

    ``error`` and ``sd`` are ``(layer, time, cell)``, ``group`` ``(time, cell)`` integers
    ``0 ... n_groups - 1``; returns ``(layer, n_groups, 3)``.
    """
    from cropsm.train.ensemble import Z90

    out = np.zeros((error.shape[0], n_groups, 3))
    for k in range(error.shape[0]):
        e, total = error[k], np.asarray(sd[k], dtype=np.float64)
        ok = np.isfinite(e) & np.isfinite(total)
        g = group[ok]
        out[k, :, 0] = np.bincount(g, minlength=n_groups)
        out[k, :, 1] = np.bincount(g, np.abs(e[ok]) <= Z90 * total[ok], minlength=n_groups)
        out[k, :, 2] = np.bincount(g, e[ok] ** 2, minlength=n_groups)
    return out


def _coverage_entry(counts: np.ndarray) -> dict:
    """``{"calibrated", "rmse", "pairs"}`` from one ``[pairs, inside, sum of e^2]`` row."""
    n, inside, sse = (float(v) for v in counts)
    if n == 0:
        return {"calibrated": float("nan"), "rmse": float("nan"), "pairs": 0}
    return {"calibrated": inside / n, "rmse": float(np.sqrt(sse / n)), "pairs": int(n)}


def product_truth_skill(
    product_path: str | Path,
    truth: xr.Dataset,
    window_days: int | None = None,
    client=None,
) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """Per-layer R2, RMSE and bias of every stored scenario against the truth.

    Parameters
    ----------
    product_path
        A product store (:mod:`cropsm.predict.store`).
    truth
        The virtual China's truth (:func:`cropsm.twin.truth_store.open_truth`).
    window_days
        Days read at a time (one task each), windows aligned with multiples of it on the
        product's time axis; None: the product's time chunk (366 days by default), so that each
        compressed chunk is read once (92-day windows decompressed every chunk four times: 88 s
        against 66 s on the paper preset).
    client
        A ``distributed.Client`` whose workers score the windows in parallel; ``None``: one
        window after another in this process. The sums are added in window order either way.

    Returns
    -------
    (skill, rmse_map, lat, lon)
        ``skill`` = ``{"what", "cells", "days", "period", "layer1": {"reference": M,
        "by_pattern": {id: M}}, ...}``; ``rmse_map`` ``(layer, lat, lon)`` per-cell RMSE of the
        reference (NaN outside the truth's cells), or ``None`` without a reference scenario.
        With ``sm_sd`` in the store, each layer's ``interval90_coverage`` holds ``raw``,
        ``calibrated``, ``pairs`` and ``by_month`` (``{"1": {"calibrated", "rmse", "pairs"},
        ...}``), and with the store's ``season_flag`` (the months the stations of the cell's
        region observe) ``observed_season`` and ``outside_season``: the calibration rests on
        readings, and stations do not read frozen soil; outside their season the networks
        extrapolate.
    """
    check_complete(product_path)  # missing chunk files are not read as fill
    product = xr.open_zarr(Path(product_path), consolidated=True)
    scenarios = [str(s) for s in product["scenario"].values]
    lat, lon = product["lat"].values, product["lon"].values
    iy, _ = nearest_cell_index(lat, truth["cell_lat"].values, name="lat")
    ix, _ = nearest_cell_index(lon, truth["cell_lon"].values, name="lon")
    days = pd.DatetimeIndex(product["time"].values).intersection(
        pd.DatetimeIndex(truth["time"].values)
    )
    if len(days) == 0:
        raise ValueError("the product and the truth share no day")
    p_index = pd.DatetimeIndex(product["time"].values).get_indexer(days)
    t_index = pd.DatetimeIndex(truth["time"].values).get_indexer(days)
    if window_days is None:  # the product's time chunk: each chunk is decompressed once
        window_days = int(zarr.open_array(str(Path(product_path) / "sm"), mode="r").chunks[2])
    windows = []
    product_months = pd.DatetimeIndex(product["time"].values).month.to_numpy()
    window_of_day = p_index // window_days  # windows aligned with the product's chunks
    cuts = [0, *(np.flatnonzero(np.diff(window_of_day)) + 1).tolist(), len(days)]
    for w0, w1 in zip(cuts[:-1], cuts[1:], strict=True):
        pi = p_index[w0:w1]
        ti = t_index[w0:w1]
        # consecutive days
        p_sl = slice(int(pi[0]), int(pi[-1]) + 1)
        windows.append((p_sl, slice(int(ti[0]), int(ti[-1]) + 1), product_months[p_sl]))
    cell_observed = None
    if "season_flag" in product:  # (month, lat, lon) -> (cell, month)
        cell_observed = (np.asarray(product["season_flag"].values)[:, iy, ix] == 1).T
    args = (str(product_path), truth, scenarios, iy, ix)
    if client is None:
        parts = [
            window_error_sums(*args, p_sl, t_sl, months, cell_observed)
            for p_sl, t_sl, months in windows
        ]
    else:
        from cropsm.predict.cluster import gather_as_completed, recomputable

        # recomputable task results, not scattered data: they survive the loss of a worker
        shared = [recomputable(client, a, "cropsm-skill-arg") for a in args]
        futures = [
            client.submit(window_error_sums, *shared, p_sl, t_sl, months, cell_observed, pure=False)
            for p_sl, t_sl, months in windows
        ]
        try:
            gather_as_completed(client, futures, what="truth-skill windows")
            parts = [f.result() for f in futures]  # window order, whatever order they finished
        finally:
            client.cancel(shared)
    sums = {(s, k): ErrorSums() for s in scenarios for k in range(N_LAYERS)}
    n_cells = iy.size
    cell_sse = np.zeros((N_LAYERS, n_cells))
    cell_n = np.zeros((N_LAYERS, n_cells))
    coverage = np.zeros((N_LAYERS, 3))
    by_month = np.zeros((N_LAYERS, 12, 3))
    by_season = np.zeros((N_LAYERS, 2, 3))
    for part_sums, part_sse, part_n in parts:
        coverage += part_sums.pop(("coverage", "reference"), 0.0)
        by_month += part_sums.pop(("coverage_by_month", "reference"), 0.0)
        by_season += part_sums.pop(("coverage_by_season", "reference"), 0.0)
        for key, value in part_sums.items():
            sums[key].merge(value)
        cell_sse += part_sse
        cell_n += part_n
    skill: dict = {
        "what": "national product vs the virtual China's truth, every cropland cell and day "
        "(reference vs true reference; each pattern vs that pattern's truth)",
        "cells": int(n_cells),
        "days": int(len(days)),
        "period": [str(days[0].date()), str(days[-1].date())],
    }
    for k in range(N_LAYERS):
        entry: dict = {}
        if REFERENCE in scenarios:
            entry[REFERENCE] = sums[(REFERENCE, k)].metrics()
        entry["by_pattern"] = {s: sums[(s, k)].metrics() for s in scenarios if s != REFERENCE}
        if REFERENCE in scenarios and coverage[k, 0] > 0:
            n, raw, calibrated = coverage[k]
            entry["interval90_coverage"] = {
                "raw": float(raw / n),
                "calibrated": float(calibrated / n),
                "pairs": int(n),
                "by_month": {
                    str(m + 1): _coverage_entry(by_month[k, m])
                    for m in range(12)
                    if by_month[k, m, 0] > 0
                },
            }
            if cell_observed is not None:
                season = entry["interval90_coverage"]
                season["observed_season"] = _coverage_entry(by_season[k, 1])
                season["outside_season"] = _coverage_entry(by_season[k, 0])
        skill[f"layer{k + 1}"] = entry
    rmse_map = None
    if REFERENCE in scenarios:
        rmse_map = np.full((N_LAYERS, len(lat), len(lon)), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            rmse_map[:, iy, ix] = np.sqrt(cell_sse / cell_n)
    return skill, rmse_map, lat, lon


def write_error_map(
    rmse_map: np.ndarray, lat: np.ndarray, lon: np.ndarray, path: str | Path, title: str = ""
) -> Path:
    """PNG of the per-cell RMSE of the reference product, one panel per layer."""

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = rmse_map.shape[0]
    fig = Figure(figsize=(3.2 * n + 1.0, 3.4), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n, sharey=True)
    axes = np.atleast_1d(axes)
    finite = rmse_map[np.isfinite(rmse_map)]
    vmax = float(np.percentile(finite, 98)) if finite.size else 0.1
    image = None
    for k, ax in enumerate(axes):
        image = ax.pcolormesh(lon, lat, rmse_map[k], vmin=0.0, vmax=vmax, cmap="magma_r",
                              shading="nearest")  # fmt: skip
        ax.set_title(f"layer {k + 1} ({LAYER_TOP_CM[k]}-{LAYER_BOTTOM_CM[k]} cm)")
        ax.set_xlabel("longitude (deg E)")
        ax.set_aspect("equal")
    axes[0].set_ylabel("latitude (deg N)")
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="RMSE of the reference product (m$^3$ m$^{-3}$)")
    if title:
        fig.suptitle(title)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110)
    return path


def update_truth_skill_json(path: str | Path, key: str, value: dict) -> dict:
    """Add ``key`` to the JSON object at ``path`` (created if absent), keeping other keys."""

    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data[key] = _finite_or_none(value)
    write_json(path, data)
    return data


def _finite_or_none(obj):
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj
