"""The reference product against satellite soil moisture (Liu et al. 2021, §3d, Figs. 7c-f, 8).

The paper compares the reference NN product's top layer (0–10 cm) with ESA CCI SM: maps of the
median annual SM and of its trend for both products and their differences (Fig. 7), and the
climatological monthly SM of both averaged over each region (Fig. 8). Here both products are put
on the product's grid and on the **same days**: a product day enters only where the satellite has a
retrieval (and the other way round), so gaps in the satellite record (frozen soil, dense
vegetation, missing sensors) do not bias the comparison.

Pure functions over :class:`xarray.DataArray` objects ``(time, lat, lon)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from cropsm.analyze import MIN_YEARS_FOR_TREND
from cropsm.analyze.product import (
    SM_LABEL,
    SM_UNITS,
    TREND_UNITS,
    magnitude_and_trend,
    map_figure_height,
    map_panel,
    monthly_climatology,
    new_figure,
    pearson_r,
    percentile_range,
    regional_mean,
    symmetric_limit,
)

MIN_SATELLITE_DAYS_PER_YEAR = 30
"""Fewest matched days a year needs for an annual mean in the satellite comparison."""

PRODUCT_LABEL = "NN reference"
SATELLITE_LABEL = "satellite"


def grid_step(coord: np.ndarray) -> float:
    """Median spacing of a regular coordinate (degrees); NaN for a single value."""
    coord = np.asarray(coord, dtype=float)
    return float(np.median(np.abs(np.diff(coord)))) if coord.size > 1 else float("nan")


def _nearest_index(source: np.ndarray, target: np.ndarray, half_step: float) -> np.ndarray:
    """Index of the nearest ``target`` value for each ``source`` value, −1 beyond half a step."""
    pos = np.clip(np.searchsorted(target, source), 1, max(1, target.size - 1))
    left = target[pos - 1]
    right = target[np.minimum(pos, target.size - 1)]
    idx = np.where(np.abs(source - left) <= np.abs(source - right), pos - 1, pos)
    idx = np.minimum(idx, target.size - 1)
    return np.where(np.abs(source - target[idx]) <= half_step * (1 + 1e-6), idx, -1)


def regrid_to_grid(field: xr.DataArray, lat: np.ndarray, lon: np.ndarray) -> xr.DataArray:
    """Put a ``(time, lat, lon)`` field on another regular grid with ascending coordinates.

    * Same grid: returned as is.
    * Finer source (step < 0.75 × target step): the mean of the valid source cells whose centre
      lies in each target cell,
      :math:`x_T = \\sum_{s \\in T} x_s / |\\{s \\in T: x_s\\ \\text{valid}\\}|`.
    * Otherwise: the nearest source cell (within half a source cell).

    Returns
    -------
    xarray.DataArray
        On ``lat``, ``lon``; NaN where no source cell contributes.
    """
    field = field.sortby("lat").sortby("lon")
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    src_lat, src_lon = field["lat"].values.astype(float), field["lon"].values.astype(float)
    if (
        src_lat.shape == lat.shape
        and src_lon.shape == lon.shape
        and np.allclose(src_lat, lat)
        and np.allclose(src_lon, lon)
    ):
        return field.assign_coords(lat=lat, lon=lon)
    step_src = np.nanmax([grid_step(src_lat), grid_step(src_lon)])
    step_dst = np.nanmin([grid_step(lat), grid_step(lon)])
    if step_src < 0.75 * step_dst:
        iy = _nearest_index(src_lat, lat, grid_step(lat) / 2)
        ix = _nearest_index(src_lon, lon, grid_step(lon) / 2)
        sub = field.isel(lat=np.flatnonzero(iy >= 0), lon=np.flatnonzero(ix >= 0))
        sub = sub.assign_coords(lat_index=("lat", iy[iy >= 0]), lon_index=("lon", ix[ix >= 0]))
        total = sub.fillna(0.0).groupby("lat_index").sum("lat").groupby("lon_index").sum("lon")
        count = (
            sub.notnull()
            .astype(np.float64)
            .groupby("lat_index")
            .sum("lat")
            .groupby("lon_index")
            .sum("lon")
        )
        mean = (total / count.where(count > 0)).rename(lat_index="lat", lon_index="lon")
        mean = mean.reindex(lat=np.arange(lat.size), lon=np.arange(lon.size))
        out = mean.assign_coords(lat=lat, lon=lon)
    else:
        half = np.nanmax([grid_step(src_lat), grid_step(src_lon)]) / 2
        iy = _nearest_index(lat, src_lat, half)
        ix = _nearest_index(lon, src_lon, half)
        out = field.isel(lat=np.maximum(iy, 0), lon=np.maximum(ix, 0))
        out = out.where(xr.DataArray(iy >= 0, dims="lat") & xr.DataArray(ix >= 0, dims="lon"))
        out = out.assign_coords(lat=lat, lon=lon)
    out.attrs = dict(field.attrs)
    return out.transpose("time", "lat", "lon")


def match_days(product: xr.DataArray, satellite: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Both fields on their common days, each masked where the other is missing.

    Parameters
    ----------
    product, satellite
        ``(time, lat, lon)`` on the same grid (see :func:`regrid_to_grid`).
    """
    times = np.intersect1d(product["time"].values, satellite["time"].values)
    p = product.sel(time=times)
    s = satellite.sel(time=times).assign_coords(lat=p["lat"], lon=p["lon"])
    both = p.notnull() & s.notnull()
    return p.where(both), s.where(both)


def compare_with_satellite(
    product_top: xr.DataArray,
    satellite: xr.DataArray,
    *,
    min_valid_days: int = MIN_SATELLITE_DAYS_PER_YEAR,
) -> xr.Dataset:
    """Magnitude and trend of the product's top layer and of the satellite, and their differences.

    Fig. 7 of the paper: (a) median annual SM of the product, (b) its Sen's slope, (c), (d) the
    same for the satellite, (e) product − satellite magnitude, (f) product − satellite trend. Both
    on matched days (:func:`match_days`).

    Parameters
    ----------
    product_top
        Reference product, top layer, ``(time, lat, lon)`` in m3 m-3.
    satellite
        Satellite SM ``(time, lat, lon)`` in m3 m-3, any grid (regridded to the product's).

    Returns
    -------
    xarray.Dataset
        ``product_median_annual_sm``, ``satellite_median_annual_sm``,
        ``median_annual_sm_difference`` (m3 m-3), ``product_sm_trend``, ``satellite_sm_trend``,
        ``sm_trend_difference`` (m3 m-3 yr-1), ``matched_days`` (1) on ``(lat, lon)``.
    """
    sat = regrid_to_grid(satellite, product_top["lat"].values, product_top["lon"].values)
    p, s = match_days(product_top, sat)
    mp = magnitude_and_trend(p, min_valid_days=min_valid_days)
    ms = magnitude_and_trend(s, min_valid_days=min_valid_days)
    out = xr.Dataset(
        {
            "product_median_annual_sm": mp["median_annual_sm"],
            "satellite_median_annual_sm": ms["median_annual_sm"],
            "median_annual_sm_difference": mp["median_annual_sm"] - ms["median_annual_sm"],
            "product_sm_trend": mp["sm_trend"],
            "satellite_sm_trend": ms["sm_trend"],
            "sm_trend_difference": mp["sm_trend"] - ms["sm_trend"],
            "matched_days": p.notnull().sum("time").astype(np.int32),
        }
    )
    long_names = {
        "product_median_annual_sm": ("median annual SM, NN reference 0-10 cm", SM_UNITS),
        "satellite_median_annual_sm": ("median annual SM, satellite", SM_UNITS),
        "median_annual_sm_difference": ("median annual SM, NN minus satellite", SM_UNITS),
        "product_sm_trend": ("Sen's slope of annual SM, NN reference", f"{SM_UNITS} yr-1"),
        "satellite_sm_trend": ("Sen's slope of annual SM, satellite", f"{SM_UNITS} yr-1"),
        "sm_trend_difference": ("Sen's slope, NN minus satellite", f"{SM_UNITS} yr-1"),
        "matched_days": ("days with both products valid", "1"),
    }
    for name, (long_name, units) in long_names.items():
        out[name].attrs = {"long_name": long_name, "units": units}
    out.attrs["years"] = mp.attrs.get("years", "")
    return out


def comparison_summary(comparison: xr.Dataset) -> pd.DataFrame:
    """Spatial agreement of the two products, from :func:`compare_with_satellite`.

    Rows ``magnitude`` and ``trend`` with the spatial Pearson correlation across cells, the mean
    product and satellite values, the mean difference (product − satellite), the share of cells
    whose trends have the same sign, and the number of cells.
    """
    rows = []
    for what, p_name, s_name, units in (
        ("magnitude", "product_median_annual_sm", "satellite_median_annual_sm", SM_UNITS),
        ("trend", "product_sm_trend", "satellite_sm_trend", f"{SM_UNITS} yr-1"),
    ):
        p = np.asarray(comparison[p_name].values, dtype=float).ravel()
        s = np.asarray(comparison[s_name].values, dtype=float).ravel()
        ok = np.isfinite(p) & np.isfinite(s)
        rows.append(
            {
                "quantity": what,
                "units": units,
                "cells": int(ok.sum()),
                "pearson_r": pearson_r(p, s),
                "product_mean": float(p[ok].mean()) if ok.any() else np.nan,
                "satellite_mean": float(s[ok].mean()) if ok.any() else np.nan,
                "mean_difference": float((p[ok] - s[ok]).mean()) if ok.any() else np.nan,
                "same_sign_share": float((np.sign(p[ok]) == np.sign(s[ok])).mean())
                if ok.any()
                else np.nan,
            }
        )
    return pd.DataFrame(rows)


def monthly_climatology_by_region(sm: xr.DataArray, region: xr.DataArray) -> xr.DataArray:
    """Climatological monthly SM averaged over each region and all of China (Fig. 8).

    Each cell's climatological monthly mean (all valid days of the calendar month over the
    years, :func:`cropsm.analyze.product.monthly_climatology`), then the area-weighted mean over
    the region's cells (:func:`cropsm.analyze.product.regional_mean`):

    .. math:: \\overline{SM}_{r,m} = \\frac{\\sum_{c \\in r} w_c \\overline{SM}_{c,m}}
              {\\sum_{c \\in r} w_c}

    Parameters
    ----------
    sm
        Daily SM ``(time, lat, lon)`` (or with more leading dims), m3 m-3.
    region
        Region codes ``(lat, lon)`` on the same grid.

    Returns
    -------
    xarray.DataArray
        ``(..., region, month)``, m3 m-3.
    """
    return regional_mean(monthly_climatology(sm), region).transpose(..., "region", "month")


def monthly_comparison_by_region(
    product_top: xr.DataArray, satellite: xr.DataArray, region: xr.DataArray
) -> pd.DataFrame:
    """Both products' monthly climatology by region on matched days, as a long table.

    Columns ``region``, ``month``, ``product_sm_m3_m-3``, ``satellite_sm_m3_m-3``,
    ``difference_m3_m-3`` (product − satellite).
    """
    sat = regrid_to_grid(satellite, product_top["lat"].values, product_top["lon"].values)
    p, s = match_days(product_top, sat)
    both = xr.concat([p, s], dim=pd.Index([PRODUCT_LABEL, SATELLITE_LABEL], name="product"))
    clim = monthly_climatology_by_region(both, region).compute()
    frame = clim.to_dataset(dim="product").to_dataframe().reset_index()
    frame = frame.rename(
        columns={PRODUCT_LABEL: "product_sm_m3_m-3", SATELLITE_LABEL: "satellite_sm_m3_m-3"}
    )
    frame["difference_m3_m-3"] = frame["product_sm_m3_m-3"] - frame["satellite_sm_m3_m-3"]
    return frame[
        ["region", "month", "product_sm_m3_m-3", "satellite_sm_m3_m-3", "difference_m3_m-3"]
    ]


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def satellite_maps_figure(comparison: xr.Dataset, dense_cropland: xr.DataArray | None = None):
    """Fig. 7c-f layout: both products' magnitude and trend and their differences (6 panels).

    The two magnitude maps share one colour scale, as do the two trend maps.
    """

    has_trend = bool(np.isfinite(comparison["product_sm_trend"].values).any())
    if not has_trend:  # the trend column would be empty maps: magnitude only, and say why
        fig = new_figure(16.0, map_figure_height(comparison, 3, 1, 16.0) + 0.4)
        axes = fig.subplots(1, 3)
    else:
        fig = new_figure(11.0, map_figure_height(comparison, 2, 3, 11.0))
        axes = fig.subplots(3, 2)
    years = comparison.attrs.get("years", "")
    magnitude = percentile_range(
        comparison["product_median_annual_sm"], comparison["satellite_median_annual_sm"]
    )
    trend = symmetric_limit(
        np.concatenate(
            [
                comparison["product_sm_trend"].values.ravel(),
                comparison["satellite_sm_trend"].values.ravel(),
            ]
        )
    )
    panels = [
        (
            "product_median_annual_sm",
            f"(a) NN reference 0-10 cm, median annual ({years})",
            SM_UNITS,
            False,
            {"value_range": magnitude},
        ),
        (
            "product_sm_trend",
            "(b) NN reference 0-10 cm, trend",
            TREND_UNITS,
            True,
            {"limit": trend},
        ),
        (
            "satellite_median_annual_sm",
            "(c) satellite, median annual",
            SM_UNITS,
            False,
            {"value_range": magnitude},
        ),
        ("satellite_sm_trend", "(d) satellite, trend", TREND_UNITS, True, {"limit": trend}),
        (
            "median_annual_sm_difference",
            "(e) NN minus satellite, median annual",
            SM_UNITS,
            True,
            {},
        ),
        ("sm_trend_difference", "(f) NN minus satellite, trend", TREND_UNITS, True, {}),
    ]
    if not has_trend:
        panels = [p for p in panels if "trend" not in p[0]]
        fig.suptitle(
            f"Reference product (0-10 cm) and satellite, {years}: no trend maps (fewer than "
            f"{MIN_YEARS_FOR_TREND} years)"
        )
    for ax, (name, title, units, diverging, scale) in zip(axes.ravel(), panels, strict=True):
        map_panel(
            ax,
            comparison[name],
            title=title,
            units=units,
            diverging=diverging,
            dense_cropland=dense_cropland,
            **scale,
        )
    return fig


def monthly_by_region_figure(frame: pd.DataFrame):
    """Fig. 8: monthly climatology of both products for each region and all of China."""

    with_data = frame.groupby("region", sort=False)["product_sm_m3_m-3"].apply(
        lambda v: bool(np.isfinite(v).any())
    )
    regions = [r for r in dict.fromkeys(frame["region"]) if with_data.get(r, False)]
    regions = regions or list(dict.fromkeys(frame["region"]))
    ncol = 3
    nrow = int(np.ceil(len(regions) / ncol))
    fig = new_figure(11.0, 2.8 * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, ncol, sharex=True, sharey=True)).ravel()
    for ax, region in zip(axes, regions, strict=False):
        part = frame[frame["region"] == region].sort_values("month")
        ax.plot(part["month"], part["product_sm_m3_m-3"], marker="o", ms=3, label=PRODUCT_LABEL)
        ax.plot(part["month"], part["satellite_sm_m3_m-3"], marker="s", ms=3, label=SATELLITE_LABEL)
        ax.set_title(region, fontsize=10)
        ax.set_xticks(range(1, 13))
        ax.set_ylabel(SM_LABEL)
        if not np.isfinite(part["product_sm_m3_m-3"]).any():
            ax.text(0.5, 0.5, "no cells", transform=ax.transAxes, ha="center", va="center")
    for ax in axes[len(regions) :]:
        ax.set_visible(False)
    axes[0].legend(fontsize=8)
    for ax in axes[-ncol:]:
        ax.set_xlabel("month")
    fig.suptitle("climatological monthly SM, 0-10 cm, matched days")
    return fig
