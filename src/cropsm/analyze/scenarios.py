"""Effects of cropping patterns on soil moisture (Liu et al. 2021, section 3e, Figs. 9, 10).

Each of the six homogeneous-pattern products is compared with the reference product:

* Fig. 9: the median annual SM of the pattern minus that of the reference, a map per pattern.
  "The northeast is masked for the case of double cropping, which is typically inhibited by the
  local climatic conditions." The double-cropping patterns are those that grow two crops a year,
  read from the catalog (:func:`double_cropping_patterns`): ``ww_mz`` (winter wheat + maize) and
  ``rs_ct`` (rapeseed + cotton/potato). ``ww_fl``, ``sw_ct``, ``fl_mz`` and ``fl_sb`` grow one
  crop and are not masked.
* Fig. 10: the climatological monthly difference (pattern − reference), averaged over each region
  and over all of China (``CHN``), with the same north-east mask.

On the virtual China the truth is known, so the maps can be checked against their true
counterparts (truth pattern − truth reference, median annual), separately on the cells whose region
has stations with the pattern (pattern flag 1) and on the others (flag 0)
(:func:`agreement_with_truth`): sign agreement where the true effect exceeds 0.005 m3 m-3, Pearson
r, the OLS slope of the product's effect on the true one, RMSE and the true effect's spatial SD,
each a small pure function ``f(true, predicted)``; and the product's own error against the truth
per region and layer (:func:`error_by_region`).

Pure functions over :class:`xarray.DataArray` objects; spatial dims ``(lat, lon)`` or ``(cell,)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy.ndimage import uniform_filter
from scipy.special import ndtri, stdtrit

from cropsm import catalog
from cropsm.analyze.product import (
    ALL_CHINA,
    REFERENCE_SCENARIO,
    SM_UNITS,
    annual_mean,
    median_annual,
    monthly_climatology,
    pearson_r,
    region_labels,
    regional_mean,
)

MASKED_REGION = "NE"
"""Region masked for double-cropping patterns (Fig. 9 caption)."""


def double_cropping_patterns() -> tuple[str, ...]:
    """Patterns that grow two crops a year (two crop seasons in the catalog): ww_mz, rs_ct."""
    return tuple(p.id for p in catalog.patterns() if len(p.seasons) >= 2)


def pattern_scenarios(sm: xr.DataArray) -> list[str]:
    """The pattern ids among the product's scenarios, in the catalog's order."""
    present = {str(s) for s in sm["scenario"].values}
    return [p for p in catalog.pattern_ids() if p in present]


def mask_double_cropping_northeast(diff: xr.DataArray, region: xr.DataArray) -> xr.DataArray:
    """Set the north-east to NaN for the double-cropping patterns (Fig. 9).

    Parameters
    ----------
    diff
        Values with a ``pattern`` dimension and the spatial dims of ``region``.
    region
        Region codes (1 NE … 8 SW).
    """
    ne_code = catalog.region_code(MASKED_REGION)
    double = xr.DataArray(
        np.isin(diff["pattern"].values.astype(str), double_cropping_patterns()),
        dims="pattern",
        coords={"pattern": diff["pattern"]},
    )
    masked = double & (region == ne_code)
    out = diff.where(~masked)
    out.attrs = dict(diff.attrs)
    return out


def pattern_minus_reference(sm: xr.DataArray) -> xr.DataArray:
    """Difference of each pattern's SM from the reference's, ``pattern`` first.

    .. math:: \\Delta SM_{p}(d) = SM_{p}(d) - SM_{\\mathrm{ref}}(d)

    ``sm`` has a ``scenario`` dimension holding pattern ids and ``"reference"``.
    """
    patterns = pattern_scenarios(sm)
    ref = sm.sel(scenario=REFERENCE_SCENARIO, drop=True)
    diff = sm.sel(scenario=patterns) - ref
    diff = diff.rename(scenario="pattern").assign_coords(pattern=np.array(patterns, dtype=object))
    diff.attrs = {"long_name": "soil moisture, pattern minus reference", "units": SM_UNITS}
    return diff


def median_annual_differences(sm: xr.DataArray, region: xr.DataArray | None = None) -> xr.DataArray:
    """Median annual SM of each pattern minus that of the reference (Fig. 9), from daily SM.

    Parameters
    ----------
    sm
        Daily SM ``(scenario, ..., time, lat, lon)`` with the patterns and ``"reference"``.
    region
        Region codes on the spatial dims; when given, the north-east is masked for the
        double-cropping patterns (:func:`mask_double_cropping_northeast`).

    Returns
    -------
    xarray.DataArray
        See :func:`differences_from_annual`.
    """
    return differences_from_annual(annual_mean(sm), region)


def differences_from_annual(
    annual: xr.DataArray, region: xr.DataArray | None = None
) -> xr.DataArray:
    """Median annual SM of each pattern minus that of the reference (Fig. 9).

    .. math:: \\Delta\\widetilde{SM}_p = \\operatorname{median}_y \\overline{SM}_{p,y}
              - \\operatorname{median}_y \\overline{SM}_{\\mathrm{ref},y}

    Parameters
    ----------
    annual
        Annual means ``(scenario, ..., year, <spatial>)`` with the patterns and ``"reference"``.
    region
        Region codes on the spatial dims; when given, the north-east is masked for the
        double-cropping patterns (:func:`mask_double_cropping_northeast`).

    Returns
    -------
    xarray.DataArray
        ``(pattern, ..., <spatial>)`` in m3 m-3.
    """
    median = median_annual(annual)
    patterns = pattern_scenarios(annual)
    diff = median.sel(scenario=patterns) - median.sel(scenario=REFERENCE_SCENARIO, drop=True)
    diff = diff.rename(scenario="pattern").assign_coords(pattern=np.array(patterns, dtype=object))
    diff.attrs = {
        "long_name": "median annual soil moisture, pattern minus reference",
        "units": SM_UNITS,
    }
    if region is not None:
        diff = mask_double_cropping_northeast(diff, region)
    return diff


def monthly_differences_by_region(sm: xr.DataArray, region: xr.DataArray) -> xr.DataArray:
    """Climatological monthly (pattern − reference) by region and for all of China (Fig. 10),
    from daily SM; see :func:`monthly_differences_from_climatology`."""
    return monthly_differences_from_climatology(monthly_climatology(sm), region)


def monthly_differences_from_climatology(
    climatology: xr.DataArray, region: xr.DataArray
) -> xr.DataArray:
    """Climatological monthly (pattern − reference) by region and for all of China (Fig. 10).

    Each cell's climatological monthly mean (all valid days of the calendar month over the
    years, :func:`cropsm.analyze.product.monthly_climatology`) of the pattern minus that of the
    reference, the north-east masked for the double-cropping patterns, averaged over the
    region's cells (area weighted, :func:`cropsm.analyze.product.regional_mean`):

    .. math:: \\Delta SM_{p,r,m} = \\frac{\\sum_{c \\in r} w_c (\\overline{SM}_{p,c,m}
              - \\overline{SM}_{\\mathrm{ref},c,m})}{\\sum_{c \\in r} w_c}

    For a double-cropping pattern the ``NE`` row is NaN and ``CHN`` excludes the north-east.

    Parameters
    ----------
    climatology
        ``(scenario, ..., month, lat, lon)`` with the patterns and ``"reference"``.

    Returns
    -------
    xarray.DataArray
        ``(pattern, ..., region, month)`` in m3 m-3.
    """
    diff = mask_double_cropping_northeast(pattern_minus_reference(climatology), region)
    out = regional_mean(diff, region)
    out.attrs = {
        "long_name": "climatological monthly SM, pattern minus reference",
        "units": SM_UNITS,
    }
    return out.transpose("pattern", ..., "region", "month")


# --------------------------------------------------------------------------------------------
# Against the truth (virtual China only)
# --------------------------------------------------------------------------------------------


def sign_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of cells where ``a`` and ``b`` have the same sign, over cells where both are finite.

    .. math:: A = \\frac{1}{N}\\sum_c [\\operatorname{sgn} a_c = \\operatorname{sgn} b_c]

    Zero counts as its own sign. NaN when no cell is valid.
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    if not ok.any():
        return float("nan")
    return float((np.sign(a[ok]) == np.sign(b[ok])).mean())


SIGN_THRESHOLD_M3_M3 = 0.005
"""Smallest true effect whose sign is scored (issue 10: |true| > 0.005 m3 m-3)."""

FLAG_GROUPS = ("1", "0", "all")
"""Cell groups of the agreement table: pattern flag 1 (the cell's region has stations with the
pattern), 0 (it has none), and all cells."""


def _pairs(true, predicted) -> tuple[np.ndarray, np.ndarray]:
    """The finite pairs of two arrays, flattened."""
    t = np.asarray(true, dtype=float).ravel()
    p = np.asarray(predicted, dtype=float).ravel()
    ok = np.isfinite(t) & np.isfinite(p)
    return t[ok], p[ok]


def sign_agreement_where_large(true, predicted, threshold: float = SIGN_THRESHOLD_M3_M3) -> float:
    """Share of cells with a large true effect where the predicted effect has the same sign.

    .. math:: A = \\frac{1}{|C|}\\sum_{c \\in C}
              [\\operatorname{sgn} p_c = \\operatorname{sgn} t_c],
              \\qquad C = \\{c : |t_c| > \\tau\\}

    over the finite pairs, ``tau`` = ``threshold`` (0.005 m3 m-3). NaN when ``C`` is empty.
    """
    t, p = _pairs(true, predicted)
    large = np.abs(t) > threshold
    if not large.any():
        return float("nan")
    return float((np.sign(p[large]) == np.sign(t[large])).mean())


def effect_slope(true, predicted) -> float:
    """Slope of the predicted effect on the true one: ordinary least squares *with* intercept.

    .. math:: b = \\frac{\\sum_c (t_c - \\bar t)(p_c - \\bar p)}{\\sum_c (t_c - \\bar t)^2}

    (``p = a + b t``, regressing the product on the truth). 1 when the product reproduces the
    spatial contrasts at their true size, < 1 when it damps them, > 1 when it exaggerates them;
    an offset common to all cells moves ``a``, not ``b``. NaN for fewer than 3 finite pairs or a
    constant truth.
    """
    t, p = _pairs(true, predicted)
    if t.size < 3:
        return float("nan")
    dt = t - t.mean()
    denom = float((dt * dt).sum())
    return float((dt * (p - p.mean())).sum() / denom) if denom > 0 else float("nan")


def rmse(true, predicted) -> float:
    """Root-mean-square difference over the finite pairs, NaN when there is none.

    .. math:: \\mathrm{RMSE} = \\sqrt{\\frac{1}{N}\\sum_c (p_c - t_c)^2}
    """
    t, p = _pairs(true, predicted)
    return float(np.sqrt(np.mean((p - t) ** 2))) if t.size else float("nan")


def spatial_sd(values) -> float:
    """Sample standard deviation over the finite cells, NaN for fewer than 2.

    .. math:: s = \\sqrt{\\frac{1}{N - 1}\\sum_c (v_c - \\bar v)^2}
    """
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    return float(v.std(ddof=1)) if v.size >= 2 else float("nan")


def effect_agreement(true, predicted, threshold: float = SIGN_THRESHOLD_M3_M3) -> dict:
    """Every agreement metric of one predicted effect map against the true one.

    Returns ``cells`` (finite pairs), ``cells_above_threshold`` (``|t| > threshold``),
    ``sign_agreement`` (:func:`sign_agreement_where_large`), ``pearson_r``
    (:func:`cropsm.analyze.product.pearson_r`), ``slope`` (:func:`effect_slope`),
    ``rmse_m3_m-3`` (:func:`rmse`), ``true_sd_m3_m-3`` and ``product_sd_m3_m-3``
    (:func:`spatial_sd`), ``true_mean_m3_m-3`` and ``product_mean_m3_m-3``.
    """
    t, p = _pairs(true, predicted)
    return {
        "cells": int(t.size),
        "cells_above_threshold": int((np.abs(t) > threshold).sum()),
        "sign_agreement": sign_agreement_where_large(t, p, threshold),
        "pearson_r": pearson_r(p, t),
        "slope": effect_slope(t, p),
        "rmse_m3_m-3": rmse(t, p),
        "true_sd_m3_m-3": spatial_sd(t),
        "product_sd_m3_m-3": spatial_sd(p),
        "true_mean_m3_m-3": float(t.mean()) if t.size else float("nan"),
        "product_mean_m3_m-3": float(p.mean()) if p.size else float("nan"),
    }


def agreement_with_truth(
    product_diff: xr.DataArray,
    truth_diff: xr.DataArray,
    pattern_flag: xr.DataArray | None = None,
    threshold: float = SIGN_THRESHOLD_M3_M3,
) -> pd.DataFrame:
    """How well each Fig. 9 map matches its true counterpart, by pattern flag.

    Parameters
    ----------
    product_diff, truth_diff
        ``(pattern, [layer,] <spatial>)`` from :func:`median_annual_differences` on the product
        and on the truth, on the same cells.
    pattern_flag
        ``(pattern, <spatial>)`` the product's pattern flag (1: the cell's region has stations
        with the pattern, :func:`cropsm.predict.flags.pattern_flag`); when given, each map is
        also scored on the flag-1 and on the flag-0 cells.
    threshold
        Smallest true effect whose sign is scored, m3 m-3.

    Returns
    -------
    pandas.DataFrame
        One row per pattern, layer and cell group: ``pattern``, ``layer``, ``pattern_flag``
        (``"1"``, ``"0"`` or ``"all"``), then the metrics of :func:`effect_agreement` and
        ``sign_agreement_all_cells`` (:func:`sign_agreement` over every cell, zero a sign).
    """
    if "layer" not in product_diff.dims:
        product_diff = product_diff.expand_dims(layer=[1])
        truth_diff = truth_diff.expand_dims(layer=[1])
    product_diff, truth_diff = xr.align(product_diff, truth_diff, join="inner")
    spatial = [d for d in truth_diff.dims if d not in ("pattern", "layer")]
    rows = []
    for pattern in product_diff["pattern"].values:
        groups = {"all": None}
        if pattern_flag is not None:
            flag = pattern_flag.sel(pattern=pattern).transpose(*spatial).values
            groups = {"1": flag == 1, "0": flag == 0, "all": None}
        for layer in product_diff["layer"].values:
            p_all = product_diff.sel(pattern=pattern, layer=layer).transpose(*spatial).values
            t_all = truth_diff.sel(pattern=pattern, layer=layer).transpose(*spatial).values
            for group, mask in groups.items():
                p = p_all if mask is None else np.where(mask, p_all, np.nan)
                t = t_all if mask is None else np.where(mask, t_all, np.nan)
                rows.append(
                    {
                        "pattern": str(pattern),
                        "layer": int(layer),
                        "pattern_flag": group,
                        **effect_agreement(t, p, threshold),
                        "sign_agreement_all_cells": sign_agreement(p, t),
                    }
                )
    return pd.DataFrame(rows)


def meets_target(sign: float, r: float, slope: float) -> bool:
    """Issue 10's acceptance for one map: sign agreement >= 0.9, r >= 0.7, slope 0.7-1.3."""
    return bool(sign >= 0.9 and r >= 0.7 and 0.7 <= slope <= 1.3)


def agreement_summary(agreement: pd.DataFrame, digits: int = 4) -> dict:
    """The agreement table as nested numbers for ``run_summary.json``.

    ``{"flag1": {"median": {...}, "maps_meeting_target": "k/n", "maps": {pattern: {"layer1":
    {...}}}}, "flag0": ..., "all": ...}`` with, per map, ``sign_agreement``, ``pearson_r``,
    ``slope``, ``rmse_m3_m-3``, ``true_sd_m3_m-3`` and ``cells``; ``median`` over the maps of
    the group; ``maps_meeting_target`` counts the maps that meet :func:`meets_target`.
    """
    keys = ("sign_agreement", "pearson_r", "slope", "rmse_m3_m-3", "true_sd_m3_m-3")

    def number(v) -> float | None:
        return None if v is None or not np.isfinite(v) else round(float(v), digits)

    out: dict = {}
    for group in dict.fromkeys(agreement["pattern_flag"].astype(str)):
        part = agreement[agreement["pattern_flag"].astype(str) == group]
        maps: dict = {}
        for row in part.to_dict("records"):
            entry = {k: number(row[k]) for k in keys}
            entry["cells"] = int(row["cells"])
            maps.setdefault(str(row["pattern"]), {})[f"layer{int(row['layer'])}"] = entry
        scored = part[part["cells"] > 0]
        met = sum(
            meets_target(r["sign_agreement"], r["pearson_r"], r["slope"])
            for r in scored.to_dict("records")
        )
        out["all" if group == "all" else f"flag{group}"] = {
            "median": {k: number(scored[k].median()) if len(scored) else None for k in keys},
            "maps_meeting_target": f"{met}/{len(scored)}",
            "maps": maps,
        }
    return out


def error_by_region(
    product: xr.DataArray, truth: xr.DataArray, region: xr.DataArray
) -> pd.DataFrame:
    """RMSE and bias of the product against the truth per region (and all of China) and layer.

    Over every valid (cell, day) pair of the region, cells weighted equally:

    .. math:: \\mathrm{bias} = \\overline{P - T}, \\qquad
              \\mathrm{RMSE} = \\sqrt{\\overline{(P - T)^2}}

    Parameters
    ----------
    product, truth
        Daily SM ``([scenario,] layer, time, <spatial>)`` on the same cells; only common days
        are used.
    region
        Region codes on the spatial dims.

    Returns
    -------
    pandas.DataFrame
        Columns ``[scenario,] layer, region, rmse_m3_m-3, bias_m3_m-3, n`` (``n`` pairs).
    """
    product, truth = xr.align(product, truth, join="inner")
    err = product - truth
    pooled = _pooled_by_region(err, region)
    lead = [d for d in ("scenario", "layer") if d in pooled.dims]
    others = [d for d in pooled.dims if d not in (*lead, "region")]
    frame = pooled.to_dataframe(dim_order=[*lead, *others, "region"]).reset_index()
    frame["rmse_m3_m-3"] = np.sqrt(frame.pop("mse"))
    frame = frame.rename(columns={"bias": "bias_m3_m-3"})
    frame["n"] = frame["n"].astype(np.int64)
    lead = [c for c in ("scenario", "layer") if c in frame.columns]
    return frame[[*lead, "region", "rmse_m3_m-3", "bias_m3_m-3", "n"]]


def error_table(stats: xr.Dataset) -> pd.DataFrame:
    """:func:`error_by_region`'s table from the sums of
    :func:`cropsm.analyze.product.product_statistics` (``error_sum``, ``squared_error_sum``,
    ``pairs``)."""
    n = stats["pairs"]
    valid = n.where(n > 0)
    pooled = xr.Dataset(
        {"bias": stats["error_sum"] / valid, "mse": stats["squared_error_sum"] / valid, "n": n}
    )
    frame = pooled.to_dataframe(dim_order=["scenario", "layer", "region"]).reset_index()
    frame["rmse_m3_m-3"] = np.sqrt(frame.pop("mse"))
    frame = frame.rename(columns={"bias": "bias_m3_m-3"})
    frame["n"] = frame["n"].astype(np.int64)
    frame["scenario"] = frame["scenario"].astype(str)
    return frame[["scenario", "layer", "region", "rmse_m3_m-3", "bias_m3_m-3", "n"]]


def _pooled_by_region(err: xr.DataArray, region: xr.DataArray) -> xr.Dataset:
    """Pooled bias, MSE and count over (cell, day) pairs per region."""
    labels = region_labels()
    spatial = list(region.dims)
    onehot = xr.concat([(region == c) for c in labels] + [region > 0], dim="region")
    onehot = onehot.astype(np.float64).assign_coords(region=[*labels.values(), ALL_CHINA])
    e = err.fillna(0.0)
    dims = [*spatial, "time"]
    total = xr.dot(e, onehot, dim=dims)
    square = xr.dot(e * e, onehot, dim=dims)
    count = xr.dot(err.notnull().astype(np.float64), onehot, dim=dims)
    n = count.where(count > 0)
    return xr.Dataset({"bias": total / n, "mse": square / n, "n": count}).compute()


def grid_to_cells(field: xr.DataArray, cell_lat: np.ndarray, cell_lon: np.ndarray) -> xr.DataArray:
    """Values of a ``(…, lat, lon)`` field at the grid cells holding the given cell centres."""
    lat = xr.DataArray(np.asarray(cell_lat, dtype=float), dims="cell")
    lon = xr.DataArray(np.asarray(cell_lon, dtype=float), dims="cell")
    out = field.sel(lat=lat, lon=lon, method="nearest")
    return out.drop_vars(["lat", "lon"]).assign_coords(
        cell_lat=("cell", lat.values), cell_lon=("cell", lon.values)
    )


def truth_scenarios(truth: xr.Dataset) -> xr.DataArray:
    """The truth store as ``sm (scenario, layer, time, cell)`` with the six patterns and reference.

    ``truth`` is :func:`cropsm.twin.truth_store.open_truth`: ``sm (pattern, layer, time, cell)``
    and ``reference_sm (layer, time, cell)``.
    """
    patterns = truth["sm"].rename(pattern="scenario")
    patterns = patterns.assign_coords(
        scenario=np.array([str(p) for p in truth["pattern"].values], dtype=object)
    )
    ref = truth["reference_sm"].expand_dims(scenario=np.array([REFERENCE_SCENARIO], dtype=object))
    out = xr.concat([patterns, ref], dim="scenario")
    keep = [c for c in out.coords if c in ("scenario", "layer", "time", "cell_lat", "cell_lon")]
    out = out.drop_vars([c for c in out.coords if c not in keep])
    out.attrs = {"long_name": "true soil moisture", "units": SM_UNITS}
    return out


def cells_to_grid(
    values: xr.DataArray,
    cell_lat: np.ndarray,
    cell_lon: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
) -> xr.DataArray:
    """Scatter ``(…, cell)`` values onto a ``(…, lat, lon)`` grid (NaN where no cell)."""
    iy = np.abs(np.asarray(lat)[None, :] - np.asarray(cell_lat)[:, None]).argmin(axis=1)
    ix = np.abs(np.asarray(lon)[None, :] - np.asarray(cell_lon)[:, None]).argmin(axis=1)
    index = np.full((len(lat), len(lon)), -1, dtype=np.int64)
    index[iy, ix] = np.arange(len(iy))
    picker = xr.DataArray(np.maximum(index, 0), dims=("lat", "lon"))
    out = values.isel(cell=picker).where(xr.DataArray(index >= 0, dims=("lat", "lon")))
    out = out.drop_vars([c for c in ("cell_lat", "cell_lon") if c in out.coords])
    return out.assign_coords(lat=np.asarray(lat), lon=np.asarray(lon))


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _pattern_title(pattern_id: str) -> str:
    names = {p.id: p.name for p in catalog.patterns()}
    return f"{pattern_id} ({names.get(pattern_id, pattern_id)}) - ref"


def scenario_maps_figure(
    diff: xr.DataArray,
    layer: int = 1,
    dense_cropland: xr.DataArray | None = None,
    significant: xr.DataArray | None = None,
):
    """Fig. 9: one map of (pattern − reference) median annual SM per pattern, one colour scale;
    with ``significant`` ``(pattern, [layer,] lat, lon)`` the cells where the effect is not
    larger than twice its ensemble spread are greyed out."""
    from cropsm.analyze.product import map_figure_height, map_panel, new_figure, symmetric_limit

    sel = diff.sel(layer=layer) if "layer" in diff.dims else diff
    patterns = [str(p) for p in sel["pattern"].values]
    limit = symmetric_limit(sel.values)
    nrow = int(np.ceil(len(patterns) / 2))
    fig = new_figure(11.0, map_figure_height(sel, 2, nrow, 11.0))
    axes = np.atleast_1d(fig.subplots(nrow, 2)).ravel()
    names = {p.id: p.name for p in catalog.patterns()}
    mesh = None
    for i, (ax, pattern) in enumerate(zip(axes, patterns, strict=False)):
        masked = ", NE masked" if pattern in double_cropping_patterns() else ""
        mesh = map_panel(
            ax,
            sel.sel(pattern=pattern),
            # two short lines, so no title is clipped by its neighbour
            title=f"({chr(97 + i)}) {names.get(pattern, pattern)}\n({pattern}) minus reference"
            f"{masked}",
            units=SM_UNITS,
            diverging=True,
            dense_cropland=dense_cropland,
            limit=limit,
            colorbar=False,
        )
        if significant is not None:
            _grey_out(ax, sel.sel(pattern=pattern), significant, pattern, layer)
    for ax in axes[len(patterns) :]:
        ax.set_visible(False)
    if mesh is not None:  # one colour scale for every panel
        from cropsm.maps import colorbar

        colorbar(fig, mesh, axes[: len(patterns)].tolist(), SM_UNITS, "pattern minus reference")
    return fig


def _grey_out(ax, field: xr.DataArray, significant: xr.DataArray, pattern, layer) -> None:
    """Grey the cells of a Fig. 9 panel whose effect is not significant."""
    from matplotlib.colors import ListedColormap

    sig = significant.sel(pattern=pattern)
    if "layer" in sig.dims:
        sig = sig.sel(layer=layer)
    sig = sig.transpose("lat", "lon").reindex_like(field.transpose("lat", "lon"))
    grey = field.notnull() & ~sig.fillna(False).astype(bool)
    values = np.where(grey.values, 1.0, np.nan)
    if np.isfinite(values).any():
        ax.pcolormesh(
            field["lon"].values, field["lat"].values, values,
            cmap=ListedColormap(["0.55"]), alpha=0.8, shading="nearest", zorder=2,
        )  # fmt: skip


def monthly_differences_figure(monthly: xr.DataArray, layer: int = 1):
    """Fig. 10: (pattern − reference) monthly SM by region (rows) and month (columns)."""
    from cropsm.analyze.product import SM_LABEL, new_figure, symmetric_limit

    sel = monthly.sel(layer=layer) if "layer" in monthly.dims else monthly
    has_data = sel.notnull().any([d for d in sel.dims if d != "region"])
    if bool(has_data.any()):
        sel = sel.sel(region=has_data.values)
    patterns = [str(p) for p in sel["pattern"].values]
    limit = symmetric_limit(sel.values)
    nrow = int(np.ceil(len(patterns) / 2))
    fig = new_figure(11.0, 3.4 * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, 2)).ravel()
    mesh = None
    regions = [str(r) for r in sel["region"].values]
    for i, (ax, pattern) in enumerate(zip(axes, patterns, strict=False)):
        grid = sel.sel(pattern=pattern).transpose("region", "month").values
        mesh = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_yticks(range(len(regions)), regions, fontsize=8)
        ax.set_xticks(range(12), [str(m) for m in range(1, 13)], fontsize=8)
        ax.set_xlabel("month")
        ax.set_title(f"({chr(97 + i)}) {_pattern_title(pattern)}", fontsize=10)
    for ax in axes[len(patterns) :]:
        ax.set_visible(False)
    if mesh is not None:
        colorbar = fig.colorbar(mesh, ax=axes[: len(patterns)].tolist(), shrink=0.8)
        colorbar.set_label(f"SM difference ({SM_LABEL})")
    return fig


def truth_agreement_figure(product_diff: xr.DataArray, truth_diff: xr.DataArray, layer: int = 1):
    """Product vs true (pattern − reference) median annual SM, one scatter per pattern; titles:
    sign agreement where |true| > 0.005 m3 m-3, Pearson r, OLS slope (all cells)."""
    from cropsm.analyze.product import SM_LABEL, new_figure

    p_all = product_diff.sel(layer=layer) if "layer" in product_diff.dims else product_diff
    t_all = truth_diff.sel(layer=layer) if "layer" in truth_diff.dims else truth_diff
    patterns = [str(p) for p in p_all["pattern"].values]
    nrow = int(np.ceil(len(patterns) / 3))
    fig = new_figure(11.0, 3.6 * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, 3)).ravel()
    for ax, pattern in zip(axes, patterns, strict=False):
        p = np.asarray(p_all.sel(pattern=pattern).values, dtype=float).ravel()
        t = np.asarray(t_all.sel(pattern=pattern).values, dtype=float).ravel()
        ok = np.isfinite(p) & np.isfinite(t)
        ax.scatter(t[ok], p[ok], s=6, alpha=0.6, linewidths=0)
        both = np.concatenate([p[ok], t[ok]])
        lim = float(np.abs(both).max()) * 1.05 if both.size else 1.0
        lim = lim if lim > 0 else 1e-6
        ax.plot([-lim, lim], [-lim, lim], color="black", lw=1, ls="--")
        ax.axhline(0, color="0.6", lw=0.5)
        ax.axvline(0, color="0.6", lw=0.5)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_title(
            f"{pattern}: sign {sign_agreement_where_large(t, p):.2f}, r = {pearson_r(p, t):.2f}, "
            f"slope {effect_slope(t, p):.2f}",
            fontsize=9,
        )
        ax.set_xlabel(f"true difference ({SM_LABEL})")
        ax.set_ylabel(f"product difference ({SM_LABEL})")
    for ax in axes[len(patterns) :]:
        ax.set_visible(False)
    return fig


def truth_error_figure(errors: pd.DataFrame, scenario: str = REFERENCE_SCENARIO):
    """RMSE and bias of the product against the truth by region (rows) and layer (columns)."""
    from cropsm.analyze.product import SM_LABEL, new_figure

    part = errors[errors["scenario"] == scenario] if "scenario" in errors.columns else errors
    with_data = part.groupby("region", sort=False)["rmse_m3_m-3"].apply(lambda v: v.notna().any())
    regions = [r for r in dict.fromkeys(part["region"]) if with_data.get(r, False)]
    layers = sorted(part["layer"].unique())
    fig = new_figure(10.0, 4.2)
    axes = fig.subplots(1, 2)
    for ax, column, cmap, diverging in (
        (axes[0], "rmse_m3_m-3", "viridis", False),
        (axes[1], "bias_m3_m-3", "RdBu", True),
    ):
        grid = (
            part.pivot(index="region", columns="layer", values=column)
            .reindex(index=regions, columns=layers)
            .to_numpy(dtype=float)
        )
        finite = grid[np.isfinite(grid)]
        if diverging:
            lim = float(np.abs(finite).max()) if finite.size else 1.0
            vmin, vmax = -(lim or 1e-6), lim or 1e-6
        else:
            vmin, vmax = 0.0, (float(finite.max()) if finite.size else 1.0) or 1e-6
        image = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=7)
        ax.set_yticks(range(len(regions)), regions)
        ax.set_xticks(range(len(layers)), [str(k) for k in layers])
        ax.set_xlabel("layer")
        ax.set_title(f"{column.split('_')[0].upper()}: {scenario} product vs truth", fontsize=10)
        fig.colorbar(image, ax=ax, shrink=0.85).set_label(SM_LABEL)
    return fig


# --------------------------------------------------------------------------------------------
# Deep-ensemble spread of the effects (issue 11)
# --------------------------------------------------------------------------------------------

SIGNIFICANCE_FACTOR = 2.0
"""An effect is significant where ``|mean| > 2 x spread`` over the ensemble members."""


def member_means_from_sums(
    member_sum: xr.DataArray,
    member_days: xr.DataArray,
    slot_month: np.ndarray,
    complete_years_only: bool = True,
    time: pd.DatetimeIndex | None = None,
) -> tuple[xr.DataArray, xr.DataArray]:
    """Each member's annual means and monthly climatology from the product's monthly sums.

    The product stores, per member, scenario, layer, time block and month slot, the sum of the
    daily SM over the slot's days and the number of valid days (:mod:`cropsm.predict.store`).
    Per member and cell

    .. math:: \\overline{SM}_{m,y} = \\frac{\\sum_{s \\in y} S_{m,s}}{\\sum_{s \\in y} N_s},
              \\qquad \\overline{SM}_{m,\\mu} = \\frac{\\sum_{s:\\ \\mathrm{month}(s) = \\mu}
              S_{m,s}}{\\sum_{s:\\ \\mathrm{month}(s) = \\mu} N_s}

    the same means as :func:`cropsm.analyze.product.product_statistics` gives for the ensemble
    mean. One time block is read at a time; sums are float32.

    Parameters
    ----------
    member_sum
        ``(member, scenario, layer, time_block, month_slot, lat, lon)``.
    member_days
        ``(scenario, layer, time_block, month_slot, lat, lon)``.
    slot_month
        ``(time_block, month_slot)`` month index ``year * 12 + month - 1``, -1 unused.
    complete_years_only, time
        Keep only the years the product's days ``time`` cover completely (unless none is).

    Returns
    -------
    (annual, climatology)
        ``(member, scenario, layer, year, lat, lon)`` and ``(member, scenario, layer, month,
        lat, lon)`` in m3 m-3.
    """
    slot_month = np.asarray(slot_month)
    used = slot_month[slot_month >= 0]
    years = np.unique(used // 12)
    if complete_years_only and time is not None:
        from cropsm.analyze.product import complete_years

        full = complete_years(pd.DatetimeIndex(time).values)
        if np.size(full):
            years = np.intersect1d(years, full)
    lead = member_sum.shape[:3]
    shape = member_sum.shape[-2:]
    # float32 sums (a year adds at most 366 daily values of ~0.3: relative error ~1e-5 at
    # worst), so that a paper-size grid with 33 years stays a few hundred MB per scenario pair
    annual_sum = np.zeros((*lead, years.size, *shape), dtype=np.float32)
    annual_n = np.zeros((*lead[1:], years.size, *shape), dtype=np.float32)
    month_sum = np.zeros((*lead, 12, *shape), dtype=np.float32)
    month_n = np.zeros((*lead[1:], 12, *shape), dtype=np.float32)
    for tb in range(slot_month.shape[0]):
        sums = np.asarray(member_sum.isel(time_block=tb).values, dtype=np.float32)
        days = np.asarray(member_days.isel(time_block=tb).values, dtype=np.float32)
        for slot, key in enumerate(slot_month[tb]):
            if key < 0:
                continue
            month = int(key % 12)
            month_sum[:, :, :, month] += sums[:, :, :, slot]
            month_n[:, :, month] += days[:, :, slot]
            where = np.flatnonzero(years == key // 12)
            if where.size:
                annual_sum[:, :, :, where[0]] += sums[:, :, :, slot]
                annual_n[:, :, where[0]] += days[:, :, slot]
    with np.errstate(invalid="ignore", divide="ignore"):
        annual = annual_sum / np.where(annual_n > 0, annual_n, np.nan)[None]
        climatology = month_sum / np.where(month_n > 0, month_n, np.nan)[None]
    coords = {
        "member": np.arange(lead[0]),
        "scenario": np.array([str(s) for s in member_sum["scenario"].values], dtype=object),
        "layer": member_sum["layer"].values,
        "lat": member_sum["lat"].values,
        "lon": member_sum["lon"].values,
    }
    dims = ("member", "scenario", "layer")
    attrs = {"units": SM_UNITS}
    return (
        xr.DataArray(
            annual, dims=(*dims, "year", "lat", "lon"), coords={**coords, "year": years},
            attrs={"long_name": "annual mean soil moisture of each ensemble member", **attrs},
        ),
        xr.DataArray(
            climatology, dims=(*dims, "month", "lat", "lon"),
            coords={**coords, "month": np.arange(1, 13)},
            attrs={"long_name": "climatological monthly soil moisture of each member", **attrs},
        ),
    )  # fmt: skip


def small_sample_factor(members: int) -> float:
    """Widening of a normal interval built on the SD of ``K`` members, ``t_{K-1}(0.95) / z(0.95)``.

    The spread ``s`` of ``K`` members estimates the SD ``sigma`` of the members' distribution at
    a cell with ``K - 1`` degrees of freedom, ``(K - 1) s^2 / sigma^2 ~ chi^2_{K-1}``. If the
    error of the ensemble-mean effect is ``N(0, c^2 sigma^2)`` (``c`` the calibration
    inflation), then ``error / (c s)`` follows Student's t with ``K - 1`` degrees of freedom, and
    the central 90 % interval is ``mean +/- t_{K-1}(0.95) c s`` instead of ``mean +/- 1.645 c s``
    (the interval of any SD estimated from a sample; Student 1908). The factor is 1.78 for
    ``K = 3``, 1.30 for ``K = 5``, 1.11 for ``K = 10`` and tends to 1; NaN for ``K < 2`` (no
    spread). On the demo virtual China (``K = 3``) the effect intervals ``mean +/- 1.645 c s``
    covered 0.72 of the true effects, ``mean +/- 1.645 c s x 1.78`` 0.86, and with ``s`` pooled
    over 3 x 3 cells (:func:`pooled_spread`) 0.93 (README, "How sure is it?").
    """
    if members < 2:
        return float("nan")
    return float(stdtrit(members - 1, 0.95) / ndtri(0.95))


POOL_CELLS = 3
"""Side of the square window (cells) over which the members' variance of an effect is pooled
(:func:`pooled_spread`): the cell and its 8 neighbours."""


def pooled_spread(spread: xr.DataArray, window: int = POOL_CELLS) -> xr.DataArray:
    """The members' spread pooled over a ``window x window`` neighbourhood of grid cells.

    .. math:: s_{pool}(i, j) = \\sqrt{\\frac{1}{n_{ij}} \\sum_{(a, b) \\in N_{ij}} s_{ab}^2}

    over the cells ``N_ij`` of the window centred on ``(i, j)`` that have a spread (``n_ij`` of
    them; cells without one, e.g. outside cropland, do not count). A pooled variance, as in a
    two-sample test: the SD of ``K`` members at one cell has only ``K - 1`` degrees of freedom
    (``K = 3``: two), so some cells get a tiny spread by chance and an effect there looks
    certain; the members' departures from their mean vary smoothly in space (each member is one
    network), so neighbours estimate the same spread. Cells without a spread stay NaN. Arrays
    without ``lat``/``lon`` dimensions (stations, tests) are returned unchanged.

    Parameters
    ----------
    spread
        Spread with ``lat`` and ``lon`` dimensions (any others are kept apart).
    window
        Odd side of the window in cells (1: no pooling).
    """
    if window <= 1 or not {"lat", "lon"} <= set(spread.dims):
        return spread
    dims = [d for d in spread.dims if d not in ("lat", "lon")]
    arranged = spread.transpose(*dims, "lat", "lon")
    values = arranged.values.astype(np.float64)
    finite = np.isfinite(values)
    size = (1,) * len(dims) + (window, window)
    variance_sum = uniform_filter(np.where(finite, values * values, 0.0), size, mode="constant")
    count = uniform_filter(finite.astype(np.float64), size, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.sqrt(variance_sum / count)
    out = arranged.copy(data=np.where(finite, pooled, np.nan))
    return out.transpose(*spread.dims)


def ensemble_effect_statistics(
    member_effects: xr.DataArray,
    inflation: xr.DataArray | float = 1.0,
    pool_cells: int = POOL_CELLS,
) -> xr.Dataset:
    """Mean, spread and significance of an effect over the ensemble members.

    .. math:: \\bar\\Delta = \\frac1K\\sum_m \\Delta_m, \\qquad
              s = \\sqrt{\\frac{1}{K-1}\\sum_m (\\Delta_m - \\bar\\Delta)^2}, \\qquad
              \\text{significant} = |\\bar\\Delta| > 2 s

    Parameters
    ----------
    member_effects
        Effects with a ``member`` dimension (e.g. :func:`differences_from_annual` per member).
    inflation
        Factor on the spread (per ``layer`` or scalar), from the interval calibration
        (:func:`cropsm.train.ensemble.spread_inflation`). The calibrated spread is
        ``s_cal = inflation x f_K x s_pool`` with :func:`small_sample_factor` ``f_K`` and the
        spread pooled over neighbouring cells :func:`pooled_spread` ``s_pool`` (the spread of
        few members is itself uncertain), so that ``mean +/- 1.645 s_cal`` is the Student-t
        interval of the pooled spread (conservatively with the ``K - 1`` degrees of freedom
        of one cell); ``significant_calibrated`` is ``|mean| > 2 s_cal``.
    pool_cells
        Window of :func:`pooled_spread` (1: each cell's own spread).

    Returns
    -------
    xarray.Dataset
        ``effect_mean``, ``effect_spread``, ``effect_spread_calibrated`` (m3 m-3),
        ``significant``, ``significant_calibrated`` (bool; False where the mean is NaN or
        there are fewer than 2 members).
    """
    n = member_effects.sizes["member"]
    mean = member_effects.mean("member")
    if n >= 2:
        spread = member_effects.std("member", ddof=1)
    else:
        spread = xr.full_like(mean, np.nan)
    calibrated = pooled_spread(spread, pool_cells) * inflation * small_sample_factor(n)
    out = xr.Dataset(
        {
            "effect_mean": mean.assign_attrs(long_name="ensemble-mean effect", units=SM_UNITS),
            "effect_spread": spread.assign_attrs(
                long_name="spread (SD) of the effect over the ensemble members", units=SM_UNITS
            ),
            "effect_spread_calibrated": calibrated.assign_attrs(
                long_name="effect spread pooled over neighbouring cells, times the layer's "
                "calibration inflation and the small-sample factor of the members",
                units=SM_UNITS,
            ),
            "significant": significance_mask(mean, spread),
            "significant_calibrated": significance_mask(mean, calibrated),
        }
    )
    out.attrs["members"] = int(n)
    out.attrs["rule"] = f"significant where |mean| > {SIGNIFICANCE_FACTOR:g} x spread"
    out.attrs["small_sample_factor"] = small_sample_factor(n)
    out.attrs["spread_pooled_over_cells"] = f"{pool_cells} x {pool_cells}"
    return out


def significance_mask(mean: xr.DataArray, spread: xr.DataArray) -> xr.DataArray:
    """``|mean| > 2 x spread`` where both are finite, else False."""
    ok = mean.notnull() & spread.notnull()
    out = ok & (abs(mean) > SIGNIFICANCE_FACTOR * spread.fillna(np.inf))
    return out.assign_attrs(long_name=f"effect larger than {SIGNIFICANCE_FACTOR:g} x its spread")


def significant_share(significant: xr.DataArray, valid: xr.DataArray) -> xr.DataArray:
    """Share of the valid (cropland, not masked) cells where the effect is significant,
    per every non-spatial dimension (cells weighted equally)."""
    spatial = [d for d in ("lat", "lon", "cell") if d in significant.dims]
    n = valid.sum(spatial)
    return (significant & valid).sum(spatial) / n.where(n > 0)


def effect_interval_coverage(true, mean, spread, z: float = 1.6448536269514722) -> float:
    """Share of finite cells whose true effect lies in ``mean +/- z spread`` (the central 90 %
    interval for ``z = 1.645``); NaN when none."""
    t, m, s = (np.asarray(a, dtype=float).ravel() for a in (true, mean, spread))
    ok = np.isfinite(t) & np.isfinite(m) & np.isfinite(s)
    if not ok.any():
        return float("nan")
    return float((np.abs(t[ok] - m[ok]) <= z * s[ok]).mean())


def significant_sign_agreement(true, mean, significant) -> float:
    """Share of the significant cells where the ensemble-mean effect has the sign of the truth
    (NaN when no cell is significant)."""
    t, m = (np.asarray(a, dtype=float).ravel() for a in (true, mean))
    sig = np.asarray(significant, dtype=bool).ravel() & np.isfinite(t) & np.isfinite(m)
    if not sig.any():
        return float("nan")
    return float((np.sign(m[sig]) == np.sign(t[sig])).mean())


def monthly_bands_figure(
    monthly_members: xr.DataArray,
    layer: int = 1,
    region: str = "CHN",
    inflation: float = 1.0,
):
    """Fig. 10 bands: per pattern, the ensemble-mean monthly (pattern - reference) over a region
    (default all of China) with a band of +/- 2 calibrated spreads; non-significant months are
    drawn hollow.

    The calibrated spread is that of the effect maps (:func:`ensemble_effect_statistics`)
    without the pooling over cells (a regional mean already averages many cells):

    .. math:: s_{cal} = \\text{inflation} \\times f_K \\times s

    with ``s`` the SD of the members' monthly regional effects (ddof 1), ``inflation`` the
    layer's calibration factor (:func:`cropsm.train.ensemble.spread_inflation`, fitted on
    station days, so conservative for regional means whose independent errors average out) and
    :func:`small_sample_factor` ``f_K`` for K members.
    """
    from cropsm.analyze.product import SM_LABEL, new_figure

    sel = monthly_members.sel(layer=layer) if "layer" in monthly_members.dims else monthly_members
    sel = sel.sel(region=region)
    patterns = [str(p) for p in sel["pattern"].values]
    nrow = int(np.ceil(len(patterns) / 3))
    fig = new_figure(11.0, 3.0 * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, 3, sharey=True)).ravel()
    months = np.arange(1, 13)
    n_members = int(sel.sizes.get("member", 1))
    factor = float(inflation) * small_sample_factor(n_members) if n_members > 1 else 0.0
    for i, (ax, pattern) in enumerate(zip(axes, patterns, strict=False)):
        values = sel.sel(pattern=pattern).transpose("member", "month").values
        mean = np.nanmean(values, axis=0) if np.isfinite(values).any() else np.full(12, np.nan)
        spread = np.nanstd(values, axis=0, ddof=1) if values.shape[0] > 1 else np.zeros(12)
        spread = factor * spread
        ax.fill_between(months, mean - 2 * spread, mean + 2 * spread, alpha=0.3, lw=0)
        ax.plot(months, mean, color="C0", lw=1)
        sig = np.abs(mean) > SIGNIFICANCE_FACTOR * spread
        ax.scatter(months[sig], mean[sig], color="C0", s=14, zorder=3)
        ax.scatter(months[~sig], mean[~sig], facecolor="white", edgecolor="C0", s=14, zorder=3)
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_xticks(months)
        ax.set_title(f"({chr(97 + i)}) {pattern} minus reference, {region}", fontsize=9)
        ax.set_xlabel("month")
        if i % 3 == 0:
            ax.set_ylabel(f"SM difference ({SM_LABEL})")
    for ax in axes[len(patterns) :]:
        ax.set_visible(False)
    return fig
