"""The true cropping-pattern effects of the virtual China and their spatial spread.

The effect of pattern ``p`` in a cell is the paper's Fig. 9 quantity (Liu et al. 2021, section 3e)
on the truth: the median over the years of the annual mean soil moisture under ``p`` minus that
of the crop-area-weighted reference,

``E_p,l,c = median_y mean_d SM_p,l,y,d,c - median_y mean_d SM_ref,l,y,d,c``   (m3 m-3).

Its spatial standard deviation over the cropland cells says how much spatial pattern a model has
to get right: a map with an SD of 0.001 m3 m-3 cannot tell a good model from a lucky one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cropsm import N_LAYERS


def median_annual_effect(pattern_annual, reference_annual) -> np.ndarray:
    """True median-annual effect of each pattern, ``(pattern, layer, cell)``.

    ``E = median_y A_p,l,y,c - median_y R_l,y,c`` with ``A`` and ``R`` the annual means.

    Parameters
    ----------
    pattern_annual : array_like, shape (pattern, layer, year, cell)
        Annual mean SM of each pattern, m3 m-3.
    reference_annual : array_like, shape (layer, year, cell)
        Annual mean SM of the reference, m3 m-3.
    """
    pattern_annual = np.asarray(pattern_annual, dtype=np.float64)
    reference_annual = np.asarray(reference_annual, dtype=np.float64)
    return np.median(pattern_annual, axis=2) - np.median(reference_annual, axis=1)[None]


def effect_spatial_sd(effect) -> np.ndarray:
    """Sample standard deviation over cells of each map, ``(...)`` from ``(..., cell)``.

    ``SD = sqrt(sum_c (E_c - mean E)^2 / (N - 1))`` over the finite cells; NaN for N < 2.
    """
    effect = np.asarray(effect, dtype=np.float64)
    finite = np.isfinite(effect)
    count = finite.sum(axis=-1)
    filled = np.where(finite, effect, 0.0)
    mean = filled.sum(axis=-1) / np.maximum(count, 1)
    square = np.where(finite, (effect - mean[..., None]) ** 2, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= 2, np.sqrt(square / (count - 1)), np.nan)


def truth_effect_table(truth_path: str | Path) -> pd.DataFrame:
    """Spatial SD and mean of the true effect per pattern and layer, read from ``truth.zarr``.

    Complete calendar years only. Returns columns ``pattern, layer, true_effect_sd_m3_m-3,
    true_effect_mean_m3_m-3, cells``.
    """
    from cropsm.twin.truth_store import open_truth

    truth = open_truth(truth_path)
    time = pd.DatetimeIndex(truth["time"].values)
    years = [y for y in np.unique(time.year) if (time.year == y).sum() >= 365]
    pattern_annual, reference_annual = [], []
    for year in years:
        days = np.flatnonzero(time.year == year)
        pattern_annual.append(truth["sm"].isel(time=days).mean("time").values)
        reference_annual.append(truth["reference_sm"].isel(time=days).mean("time").values)
    effect = median_annual_effect(np.stack(pattern_annual, axis=2), np.stack(reference_annual, 1))
    sd = effect_spatial_sd(effect)
    rows = []
    for p, pattern in enumerate(truth["pattern"].values):
        for k in range(N_LAYERS):
            rows.append(
                {
                    "pattern": str(pattern),
                    "layer": k + 1,
                    "true_effect_sd_m3_m-3": float(sd[p, k]),
                    "true_effect_mean_m3_m-3": float(np.nanmean(effect[p, k])),
                    "cells": int(np.isfinite(effect[p, k]).sum()),
                }
            )
    return pd.DataFrame(rows)
