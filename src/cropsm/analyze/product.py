"""Magnitude and trend of the national product (Liu et al. 2021, section 3d, Fig. 7a,b).

Pure functions over :class:`xarray.DataArray` objects with a daily ``time`` dimension and any other
dimensions (``(scenario, layer, time, lat, lon)``, ``(layer, time, cell)``, ...), plus the few
spatial helpers the other analyses share (area weights, regional means, regions on a grid).

The paper maps the *median annual* soil moisture: the annual mean of every calendar year, then the
median over the years ("which tends to represent the general condition of SM over the study
period", Fig. 6 caption). Trends are Theil–Sen (Sen's) slopes of the annual means against the year
(Sen 1968), in m3 m-3 yr-1, computed for all cells at once with numpy (:func:`theil_sen_slope`);
the result equals :func:`pymannkendall.sens_slope` on complete series of consecutive years.

The functions on daily data (:func:`annual_mean`, :func:`monthly_climatology`) are the
definitions; for a national product too large to hold in memory, :func:`product_statistics`
computes the same annual means and monthly climatologies (and the error against a known truth)
in one streaming pass over the store, and the analyses work from its small results. The I/O of
the product lives in one place, :func:`open_product`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cropsm import LAYER_BOTTOM_CM, LAYER_TOP_CM, catalog, maps
from cropsm.analyze import MIN_REGION_CELLS, MIN_YEARS_FOR_TREND
from cropsm.errors import UsageError
from cropsm.maps import new_figure as maps_new_figure
from cropsm.predict.store import check_complete

SM_UNITS = "m3 m-3"
TREND_UNITS = "m3 m-3 yr-1"
YEAR_DIM = "year"
REFERENCE_SCENARIO = "reference"
ALL_CHINA = "CHN"
"""Label of the all-of-China aggregate beside the eight regions (the paper's Fig. 10 'CHN')."""

_SLOPE_BLOCK_ELEMENTS = 2**24
"""Upper bound on the pairwise-slope work array of :func:`theil_sen_slope` (floats)."""


# --------------------------------------------------------------------------------------------
# I/O: the one place that knows how the predict stage stores the product
# --------------------------------------------------------------------------------------------


def product_path(run_dir: str | Path) -> Path:
    """Where the predict stage writes the national product: ``RUN_DIR/product.zarr``."""
    return Path(run_dir) / "product.zarr"


def open_product(run_dir: str | Path) -> xr.Dataset:
    """Open the national product of a run lazily, in the form every analysis expects.

    The returned dataset holds ``sm`` with dims ``(scenario, layer, time, lat, lon)`` in m3 m-3,
    ``scenario`` = pattern ids and ``"reference"``, ascending ``lat``/``lon``, plus the store's
    variables on those dims (``region``, ``cropland_fraction``, ``cropland_mask``, flags).

    The store is the one :mod:`cropsm.predict.store` writes (``RUN_DIR/product.zarr``, zarr v3,
    ``sm`` packed int16 and decoded here, ``scenario`` = six pattern ids then ``"reference"``);
    :func:`standardize_product` also accepts a ``pattern`` dimension with a separate
    ``reference_sm`` variable. This is the one place to adapt if the store changes.

    Raises
    ------
    FileNotFoundError
        When the run has no product (run ``cropsm run`` with the predict stage first).
    cropsm.errors.UsageError
        When the product misses chunk files (:func:`cropsm.predict.store.check_complete`).
    """
    path = product_path(run_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no national product (run the predict stage first)")
    check_complete(path)  # unfinished, or a chunk file missing: refused, not read as fill
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "no consolidated metadata" fallback
        ds = xr.open_zarr(path, consolidated=None)
    return standardize_product(ds, path)


def standardize_product(ds: xr.Dataset, where: str | Path = "product") -> xr.Dataset:
    """Bring a product dataset to ``sm (scenario, layer, time, lat, lon)`` with a reference.

    An unfinished store (a resume record ``block_done`` with unwritten blocks) is refused.
    """
    if "block_done" in ds.data_vars:
        done = ds["block_done"].values
        if not done.all():
            raise UsageError(
                f"{where}: unfinished product ({int((done == 0).sum())} of {done.size} blocks "
                "not computed); run `cropsm predict` again to finish it"
            )
        ds = ds.drop_vars("block_done")
    if "sm" not in ds.data_vars:
        raise ValueError(f"{where}: no variable 'sm'; found {', '.join(map(str, ds.data_vars))}")
    ds = ds.sortby("lat").sortby("lon")  # the contract's ascending grid, for every variable
    sm = ds["sm"]
    if "pattern" in sm.dims and "scenario" not in sm.dims:
        sm = sm.rename(pattern="scenario")
    if "scenario" not in sm.dims:
        raise ValueError(f"{where}: 'sm' has dims {sm.dims}; expected a 'scenario' dimension")
    scenarios = [str(s) for s in sm["scenario"].values]
    sm = sm.assign_coords(scenario=np.array(scenarios, dtype=object))
    if REFERENCE_SCENARIO not in scenarios:
        if "reference_sm" not in ds.data_vars:
            raise ValueError(f"{where}: no 'reference' scenario and no 'reference_sm' variable")
        ref = ds["reference_sm"].expand_dims(scenario=[REFERENCE_SCENARIO])
        sm = xr.concat([sm, ref.astype(sm.dtype)], dim="scenario")
    sm = sm.transpose("scenario", "layer", "time", "lat", "lon")
    sm.attrs.setdefault("units", SM_UNITS)
    keep = [
        v for v in ds.data_vars if v not in ("sm", "reference_sm") and "pattern" not in ds[v].dims
    ]
    return ds[keep].drop_dims("pattern", errors="ignore").assign(sm=sm)


# --------------------------------------------------------------------------------------------
# Annual means, median annual SM and Sen's slope
# --------------------------------------------------------------------------------------------


def complete_years(time: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    """Calendar years of which ``time`` holds every day (365 or 366 daily steps)."""
    index = pd.DatetimeIndex(time)
    counts = pd.Series(1, index=index.year).groupby(level=0).sum()
    length = np.array(
        [366 if pd.Timestamp(year=y, month=1, day=1).is_leap_year else 365 for y in counts.index]
    )
    return counts.index.to_numpy()[counts.to_numpy() >= length]


def annual_mean(
    sm: xr.DataArray,
    *,
    min_valid_days: int = 1,
    complete_years_only: bool = True,
) -> xr.DataArray:
    """Mean of each calendar year, cell by cell.

    .. math:: \\overline{SM}_y = \\frac{1}{|D_y|}\\sum_{d \\in D_y} SM_d

    over the valid (non-NaN) days :math:`D_y` of year :math:`y`; years with fewer than
    ``min_valid_days`` valid days are NaN (Liu et al. 2021, section 3d).

    Parameters
    ----------
    sm
        Daily soil moisture with a ``time`` dimension (m3 m-3).
    min_valid_days
        Fewest valid days a year needs (use more for gappy data such as satellite retrievals).
    complete_years_only
        Drop years the time axis does not cover completely (a partial year's mean is biased by
        the seasonal cycle), unless no year is complete.

    Returns
    -------
    xarray.DataArray
        Dimension ``year`` (int) in place of ``time``, same units.
    """
    if complete_years_only:
        full = complete_years(sm["time"].values)
        if full.size:
            sm = sm.sel(time=np.isin(sm["time"].dt.year.values, full))
    years = sm["time"].dt.year.rename(YEAR_DIM)
    grouped = sm.groupby(years)
    mean = grouped.mean("time", skipna=True)
    count = sm.notnull().groupby(years).sum("time")
    mean = mean.where(count >= min_valid_days)
    mean.attrs = {
        "long_name": "annual mean soil moisture",
        "units": sm.attrs.get("units", SM_UNITS),
    }
    return mean


def median_annual(annual: xr.DataArray) -> xr.DataArray:
    """Median over the years of the annual means (the paper's "median annual SM", Fig. 7a).

    .. math:: \\widetilde{SM} = \\operatorname{median}_y \\overline{SM}_y

    Parameters
    ----------
    annual
        Annual means with a ``year`` dimension, from :func:`annual_mean`.
    """
    out = xr.apply_ufunc(
        _quiet_nanmedian,
        annual,
        input_core_dims=[[YEAR_DIM]],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"allow_rechunk": True},
    )
    out.attrs = {
        "long_name": "median annual soil moisture",
        "units": annual.attrs.get("units", SM_UNITS),
    }
    return out


def _quiet_nanmedian(values: np.ndarray) -> np.ndarray:
    """``nanmedian`` over the last axis; NaN, without numpy's warning, where all are NaN."""
    values = np.asarray(values, dtype=np.float64)
    empty = ~np.isfinite(values).any(axis=-1)
    filled = np.where(empty[..., None], 0.0, values)
    return np.where(empty, np.nan, np.nanmedian(filled, axis=-1))


def theil_sen_slope(values: np.ndarray, years: np.ndarray) -> np.ndarray:
    """Theil–Sen slope along the last axis, for many series at once (Sen 1968).

    .. math:: \\beta = \\operatorname{median}_{i<j}\\ \\frac{x_j - x_i}{t_j - t_i}

    over the pairs of years where both values are finite. With consecutive years and no gaps this
    is exactly :func:`pymannkendall.sens_slope`; with gaps the true year differences are used.
    Series with fewer than two finite values give NaN. Work is done in blocks of series so the
    pairwise array stays below about 128 MB.

    Parameters
    ----------
    values
        Array ``(..., n_years)``.
    years
        The ``n_years`` time coordinates (years, strictly increasing).

    Returns
    -------
    numpy.ndarray
        Slopes ``(...)`` in units of ``values`` per year.
    """
    values = np.asarray(values, dtype=np.float64)
    years = np.asarray(years, dtype=np.float64)
    lead = values.shape[:-1]
    n = values.shape[-1]
    flat = values.reshape(-1, n)
    out = np.full(flat.shape[0], np.nan)
    if n < 2:
        return out.reshape(lead)
    i, j = np.triu_indices(n, k=1)
    dt = years[j] - years[i]
    block = max(1, _SLOPE_BLOCK_ELEMENTS // max(1, i.size))
    for start in range(0, flat.shape[0], block):
        chunk = flat[start : start + block]
        slopes = (chunk[:, j] - chunk[:, i]) / dt
        finite = np.isfinite(slopes).any(axis=1)
        if finite.any():
            res = np.full(chunk.shape[0], np.nan)
            res[finite] = np.nanmedian(slopes[finite], axis=1)
            out[start : start + block] = res
    return out.reshape(lead)


def sen_slope(annual: xr.DataArray, min_years: int = MIN_YEARS_FOR_TREND) -> xr.DataArray:
    """Sen's slope of annual means against the year, every cell (Fig. 7b), m3 m-3 yr-1.

    See :func:`theil_sen_slope` for the estimator. Cells with fewer than ``min_years`` valid
    annual means get NaN (:data:`cropsm.analyze.MIN_YEARS_FOR_TREND`, the stations' rule).
    """
    annual = annual.transpose(..., YEAR_DIM)
    years = annual[YEAR_DIM].values
    slope = xr.apply_ufunc(
        theil_sen_slope,
        annual,
        kwargs={"years": years},
        input_core_dims=[[YEAR_DIM]],
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"allow_rechunk": True},
    )
    slope = slope.where(annual.notnull().sum(YEAR_DIM) >= min_years)
    slope.attrs = {
        "long_name": "Sen's slope of annual mean soil moisture",
        "units": f"{annual.attrs.get('units', SM_UNITS)} yr-1",
        "min_years": min_years,
    }
    return slope


def magnitude_and_trend(sm: xr.DataArray, *, min_valid_days: int = 1) -> xr.Dataset:
    """Median annual soil moisture and its Sen's slope, cell by cell (Fig. 7a,b).

    Parameters
    ----------
    sm
        Daily soil moisture with a ``time`` dimension, e.g. the reference ``(layer, time, lat,
        lon)``.

    Returns
    -------
    xarray.Dataset
        See :func:`magnitude_and_trend_from_annual`.
    """
    annual = annual_mean(sm, min_valid_days=min_valid_days).compute()
    return magnitude_and_trend_from_annual(annual)


def magnitude_and_trend_from_annual(annual: xr.DataArray) -> xr.Dataset:
    """Median annual SM (:func:`median_annual`) and Sen's slope (:func:`sen_slope`) of annual means.

    Returns
    -------
    xarray.Dataset
        ``median_annual_sm`` (m3 m-3), ``sm_trend`` (m3 m-3 yr-1) and ``n_years`` (the number of
        valid annual means), on the non-year dimensions of ``annual``; attribute ``years``.
    """
    out = xr.Dataset(
        {
            "median_annual_sm": median_annual(annual),
            "sm_trend": sen_slope(annual),
            "n_years": annual.notnull().sum(YEAR_DIM).astype(np.int16),
        }
    )
    out["n_years"].attrs = {"long_name": "number of valid annual means", "units": "1"}
    out.attrs["years"] = years_label(annual[YEAR_DIM].values)
    return out


def years_label(years: np.ndarray) -> str:
    """``"2004-2013"`` for a set of years, ``"none"`` when empty."""
    years = np.asarray(years)
    return f"{years.min()}-{years.max()}" if years.size else "none"


# --------------------------------------------------------------------------------------------
# One pass over a large product: annual means, monthly climatology, error against the truth
# --------------------------------------------------------------------------------------------

TIME_BLOCK_DAYS = 366
"""Days read at a time when the product is not chunked (one slab is ``days x lat x lon``)."""


def _time_blocks(sm: xr.DataArray) -> list[slice]:
    """Slices of the time axis along the stored chunks (each chunk read once), else 366 days."""
    n = sm.sizes["time"]
    if sm.chunks:
        sizes = sm.chunks[sm.dims.index("time")]
    else:
        sizes = [TIME_BLOCK_DAYS] * (n // TIME_BLOCK_DAYS) + (
            [n % TIME_BLOCK_DAYS] if n % TIME_BLOCK_DAYS else []
        )
    edges = np.concatenate([[0], np.cumsum(sizes)])
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _runs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start index and key of every run of equal consecutive ``keys``."""
    starts = np.flatnonzero(np.concatenate([[True], keys[1:] != keys[:-1]]))
    return starts, keys[starts]


def _sums_by_run(values: np.ndarray, valid: np.ndarray, starts: np.ndarray):
    """Sums of valid values and valid counts over runs along axis 0."""
    filled = np.where(valid, values, 0.0)
    return (
        np.add.reduceat(filled, starts, axis=0),
        np.add.reduceat(valid.astype(np.int32), starts, axis=0),
    )


def product_statistics(
    sm: xr.DataArray,
    *,
    truth: xr.DataArray | None = None,
    truth_region: np.ndarray | None = None,
    progress=None,
) -> xr.Dataset:
    """Per-cell annual means and monthly climatology of every scenario and layer in one pass.

    The product is read one ``(scenario, layer, time chunk)`` slab at a time, so memory stays at
    one slab (``days x lat x lon``) plus the results, whatever the period. Per cell, valid days
    only:

    .. math:: \\overline{SM}_{y} = \frac{\\sum_{d \\in y} SM_d}{N_y}, \\qquad
              \\overline{SM}_{m} = \frac{\\sum_{d:\\ \\mathrm{month}(d) = m} SM_d}{N_m}

    equal to :func:`annual_mean` (without the minimum-days and complete-year rules, applied by
    the caller) and to :func:`monthly_climatology`.

    With ``truth`` (the virtual China's true SM ``(scenario, layer, time, cell)`` with
    ``cell_lat``/``cell_lon``, see :func:`cropsm.analyze.scenarios.truth_scenarios`) the same pass
    also accumulates, on the days both have, the truth's per-cell annual means and the pooled
    error of the product at the truth's cells per region (``truth_region``: region code of each
    cell): :math:`\\sum (P - T)`, :math:`\\sum (P - T)^2` and the number of pairs.

    Returns
    -------
    xarray.Dataset
        ``annual_mean`` (scenario, layer, year, lat, lon), ``annual_days`` (year: days of each
        year on the time axis), ``monthly_climatology`` (scenario, layer, month, lat, lon); with
        ``truth`` also ``truth_annual_mean`` (scenario, layer, year, cell), ``error_sum``,
        ``squared_error_sum``, ``pairs`` (scenario, layer, region incl. ``CHN``).
    """
    sm = sm.transpose("scenario", "layer", "time", "lat", "lon")
    time = pd.DatetimeIndex(sm["time"].values)
    years_all = time.year.to_numpy()
    years = np.unique(years_all)
    months_all = time.month.to_numpy()
    n_s, n_k = sm.sizes["scenario"], sm.sizes["layer"]
    shape = (sm.sizes["lat"], sm.sizes["lon"])
    annual_sum = np.zeros((n_s, n_k, years.size, *shape))
    annual_n = np.zeros((n_s, n_k, years.size, *shape), dtype=np.int64)
    month_sum = np.zeros((n_s, n_k, 12, *shape))
    month_n = np.zeros((n_s, n_k, 12, *shape), dtype=np.int64)
    scenarios = [str(v) for v in sm["scenario"].values]
    layers = list(sm["layer"].values)
    with_truth = truth is not None
    if with_truth:
        labels = region_labels()
        truth = truth.transpose("scenario", "layer", "time", "cell")
        truth_names = {str(v): i for i, v in enumerate(truth["scenario"].values)}
        truth_layers = {int(v): i for i, v in enumerate(truth["layer"].values)}
        truth_time = truth.indexes["time"]
        lat_index = np.abs(sm["lat"].values[None, :] - truth["cell_lat"].values[:, None]).argmin(1)
        lon_index = np.abs(sm["lon"].values[None, :] - truth["cell_lon"].values[:, None]).argmin(1)
        n_cell = truth.sizes["cell"]
        codes = np.asarray(truth_region, dtype=np.int64)
        n_regions = len(labels) + 1
        truth_sum = np.zeros((n_s, n_k, years.size, n_cell))
        truth_n = np.zeros((n_s, n_k, years.size, n_cell), dtype=np.int64)
        err = np.zeros((3, n_s, n_k, n_regions))  # sum, squared sum, pairs
    blocks = _time_blocks(sm)
    total, done = n_s * len(blocks), 0
    for s, name in enumerate(scenarios):
        for block in blocks:
            year_starts, block_years = _runs(years_all[block])
            year_index = np.searchsorted(years, block_years)
            month_keys = years_all[block] * 12 + months_all[block]
            month_starts, keys = _runs(month_keys)
            month_index = (keys - years_all[block][month_starts] * 12) - 1
            truth_block = None
            if with_truth and name in truth_names:
                position = truth_time.get_indexer(time[block])
                have = position >= 0
                if have.any():
                    truth_block = np.asarray(
                        truth.isel(scenario=truth_names[name], time=position[have]).values,
                        dtype=np.float64,
                    )  # (layer, days with truth, cell)
                    t_starts, t_years = _runs(years_all[block][have])
                    t_year_index = np.searchsorted(years, t_years)
            for k, layer in enumerate(layers):
                slab = np.asarray(sm.isel(scenario=s, layer=k, time=block).values, np.float64)
                valid = np.isfinite(slab)
                total_y, count_y = _sums_by_run(slab, valid, year_starts)
                annual_sum[s, k, year_index] += total_y
                annual_n[s, k, year_index] += count_y
                total_m, count_m = _sums_by_run(slab, valid, month_starts)
                np.add.at(month_sum[s, k], month_index, total_m)
                np.add.at(month_n[s, k], month_index, count_m)
                if truth_block is None or int(layer) not in truth_layers:
                    continue
                true = truth_block[truth_layers[int(layer)]]
                at_cells = slab[have][:, lat_index, lon_index]
                true_valid = np.isfinite(true)
                t_sum, t_count = _sums_by_run(true, true_valid, t_starts)
                truth_sum[s, k, t_year_index] += t_sum
                truth_n[s, k, t_year_index] += t_count
                diff = at_cells - true
                pair = np.isfinite(diff)
                diff = np.where(pair, diff, 0.0)
                for i, values in enumerate(
                    (diff.sum(0), (diff * diff).sum(0), pair.sum(0).astype(np.float64))
                ):
                    by_code = np.bincount(codes, weights=values, minlength=n_regions)
                    err[i, s, k, : n_regions - 1] += by_code[1:n_regions]
                    err[i, s, k, n_regions - 1] += by_code[1:].sum()
            done += 1
            if progress is not None and (done == total or done % max(1, total // 10) == 0):
                progress("product statistics", done, total)
    with np.errstate(invalid="ignore", divide="ignore"):
        annual = annual_sum / annual_n
        climatology = month_sum / month_n
    coords = {"scenario": np.array(scenarios, dtype=object), "layer": sm["layer"].values}
    grid = {"lat": sm["lat"].values, "lon": sm["lon"].values}
    units = sm.attrs.get("units", SM_UNITS)
    out = xr.Dataset(
        {
            "annual_mean": (
                ("scenario", "layer", YEAR_DIM, "lat", "lon"),
                annual,
                {"long_name": "annual mean soil moisture", "units": units},
            ),
            "annual_days": (
                (YEAR_DIM,),
                np.array([(years_all == y).sum() for y in years]),
                {"long_name": "days of the year on the time axis", "units": "1"},
            ),
            "monthly_climatology": (
                ("scenario", "layer", "month", "lat", "lon"),
                climatology,
                {"long_name": "climatological monthly soil moisture", "units": units},
            ),
        },
        coords={**coords, YEAR_DIM: years, "month": np.arange(1, 13), **grid},
    )
    if with_truth:
        with np.errstate(invalid="ignore", divide="ignore"):
            truth_annual = truth_sum / truth_n
        out["truth_annual_mean"] = (
            ("scenario", "layer", YEAR_DIM, "cell"),
            np.where(
                np.isin(scenarios, list(truth_names))[:, None, None, None], truth_annual, np.nan
            ),
            {"long_name": "true annual mean soil moisture on the product's days", "units": units},
        )
        out = out.assign_coords(
            cell_lat=("cell", truth["cell_lat"].values),
            cell_lon=("cell", truth["cell_lon"].values),
            region=[*labels.values(), ALL_CHINA],
        )
        for i, (var, long_name) in enumerate(
            (
                ("error_sum", "sum of product minus truth"),
                ("squared_error_sum", "sum of squared product minus truth"),
                ("pairs", "number of (cell, day) pairs"),
            )
        ):
            out[var] = (("scenario", "layer", "region"), err[i], {"long_name": long_name})
    return out


def annual_means_of_statistics(
    stats: xr.Dataset, *, variable: str = "annual_mean", complete_years_only: bool = True
) -> xr.DataArray:
    """The annual means of :func:`product_statistics`, incomplete years dropped (as
    :func:`annual_mean` does) unless no year is complete."""
    annual = stats[variable]
    if complete_years_only:
        years = stats[YEAR_DIM].values
        length = np.array(
            [366 if pd.Timestamp(year=int(y), month=1, day=1).is_leap_year else 365 for y in years]
        )
        full = stats["annual_days"].values >= length
        if full.any():
            annual = annual.sel({YEAR_DIM: years[full]})
    return annual


# --------------------------------------------------------------------------------------------
# Spatial helpers shared by the analyses
# --------------------------------------------------------------------------------------------


def area_weights(lat: xr.DataArray) -> xr.DataArray:
    """Relative area of regular lat/lon cells, :math:`w = \\cos\\varphi` (dimensionless)."""
    w = np.cos(np.deg2rad(lat))
    w.attrs = {"long_name": "relative cell area", "units": "1"}
    return w


def region_labels() -> dict[int, str]:
    """Region code → id (1 NE … 8 SW) from :func:`cropsm.catalog.regions`."""
    return {r.code: r.id for r in catalog.regions()}


def region_on_grid(region: xr.DataArray, lat: np.ndarray, lon: np.ndarray) -> xr.DataArray:
    """Region codes on another grid (nearest cell; codes are categories, never averaged)."""
    if np.array_equal(region["lat"].values, lat) and np.array_equal(region["lon"].values, lon):
        return region
    out = region.sel(
        lat=xr.DataArray(lat, dims="lat"), lon=xr.DataArray(lon, dims="lon"), method="nearest"
    )
    return out.assign_coords(lat=lat, lon=lon)


def region_cell_counts(region: xr.DataArray, cells: xr.DataArray | None = None) -> dict[str, int]:
    """Number of cells (where ``cells`` is true, default every cell) of each region id."""
    codes = np.asarray(region.values)
    keep = np.ones(codes.shape, bool) if cells is None else np.asarray(cells.values, bool)
    return {rid: int(((codes == c) & keep).sum()) for c, rid in region_labels().items()}


def small_regions(
    region: xr.DataArray, cells: xr.DataArray | None = None, min_cells: int = MIN_REGION_CELLS
) -> dict[str, int]:
    """Regions with at least one but fewer than ``min_cells`` cells: ``{id: cells}``."""
    counts = region_cell_counts(region, cells)
    return {rid: n for rid, n in counts.items() if 0 < n < min_cells}


def drop_small_regions(values, small: dict[str, int] | list[str]):
    """``values`` (DataArray with a ``region`` dim, or DataFrame with a ``region`` column) with
    the regions in ``small`` (:func:`small_regions`) set to NaN: a mean of one or two cells is
    not shown as a region's. All of China (``CHN``) keeps those cells."""
    names = list(small)
    if not names:
        return values
    if isinstance(values, pd.DataFrame):
        out = values.copy()
        numeric = [c for c in out.columns if c != "region" and out[c].dtype.kind == "f"]
        out.loc[out["region"].isin(names), numeric] = np.nan
        return out
    return values.where(~values["region"].isin(names))


def regional_mean(
    field: xr.DataArray,
    region: xr.DataArray,
    *,
    weights: xr.DataArray | None = None,
    include_all_china: bool = True,
) -> xr.DataArray:
    """Area-weighted mean over the cells of each region, skipping NaN.

    .. math:: \\bar{x}_r = \\frac{\\sum_{c \\in r} w_c x_c}
              {\\sum_{c \\in r} w_c [x_c\\ \\text{valid}]}

    Parameters
    ----------
    field
        Values with the spatial dims of ``region`` (``(lat, lon)`` or ``(cell,)``) and any others.
    region
        Integer region codes 1…8 (0 outside China) on the spatial dims.
    weights
        Cell weights on the spatial dims; default :func:`area_weights` of a ``lat`` coordinate
        of ``region`` when it has one, else equal weights.
    include_all_china
        Add the aggregate over every region, labelled ``"CHN"``.

    Returns
    -------
    xarray.DataArray
        The spatial dims replaced by ``region`` (ids ``NE`` … ``SW`` [, ``CHN``]); regions
        without a valid cell are NaN.
    """
    spatial = list(region.dims)
    if weights is None:
        weights = (
            area_weights(region["lat"])
            if "lat" in region.coords
            else xr.ones_like(region, dtype=float)
        )
    weights = weights.broadcast_like(region).astype(np.float64)
    labels = region_labels()
    codes = list(labels)
    ids = [labels[c] for c in codes]
    onehot = xr.concat([(region == c) for c in codes], dim="region")
    if include_all_china:
        onehot = xr.concat([onehot, (region > 0).expand_dims("region")], dim="region")
        ids.append(ALL_CHINA)
    onehot = (onehot * weights).assign_coords(region=ids)
    valid = field.notnull()
    total = xr.dot(field.fillna(0.0), onehot, dim=spatial)
    norm = xr.dot(valid.astype(np.float64), onehot, dim=spatial)
    out = (total / norm.where(norm > 0)).transpose(
        *[d for d in field.dims if d not in spatial], "region"
    )
    out.attrs = dict(field.attrs)
    return out


def monthly_climatology(series: xr.DataArray) -> xr.DataArray:
    """Climatological monthly mean: the mean of all days of each calendar month over the years.

    .. math:: \\overline{SM}_m = \\operatorname{mean}_{d:\\ \\mathrm{month}(d) = m} SM_d

    (Fig. 8, "climatological monthly SM"). ``time`` becomes ``month`` (1…12).
    """
    out = series.groupby(series["time"].dt.month.rename("month")).mean("time", skipna=True)
    out.attrs = dict(series.attrs)
    return out.reindex(month=np.arange(1, 13))


def national_annual_series(reference: xr.DataArray, *, min_valid_days: int = 1) -> xr.DataArray:
    """Area-weighted mean over all cropland cells of the annual means, per layer (m3 m-3).

    Parameters
    ----------
    reference
        Daily reference soil moisture ``(layer, time, lat, lon)``, NaN outside cropland.
    """
    return national_series_from_annual(annual_mean(reference, min_valid_days=min_valid_days))


def national_series_from_annual(annual: xr.DataArray) -> xr.DataArray:
    r"""Area-weighted (:func:`area_weights`) mean over the valid cells of annual means
    ``(…, year, lat, lon)``:

    .. math:: \overline{SM}_{y} = \sum_c w_c \overline{SM}_{c,y} / \sum_c w_c
    """
    w = area_weights(annual["lat"]).broadcast_like(annual.isel({YEAR_DIM: 0}, drop=True))
    valid = annual.notnull()
    total = (valid * w).sum(("lat", "lon"))
    out = (annual.fillna(0) * w).sum(("lat", "lon")) / total.where(total > 0)
    out.attrs = {"long_name": "cropland mean annual soil moisture", "units": SM_UNITS}
    return out


def national_summary(series: xr.DataArray, min_years: int = MIN_YEARS_FOR_TREND) -> pd.DataFrame:
    """Trend of the national annual series per layer and its correlation with the top layer.

    The product-side counterparts of the paper's station numbers (section 3a, Fig. 3): the mean
    trend (−1.5e-3 m3 m-3 yr-1) and the top–bottom correlation (r = 0.85). A layer with fewer
    than ``min_years`` annual means has no trend (NaN), the stations' rule.

    Parameters
    ----------
    series
        ``(layer, year)`` from :func:`national_annual_series`.

    Returns
    -------
    pandas.DataFrame
        One row per layer: ``layer``, ``mean_sm_m3_m-3``, ``sen_slope_m3_m-3_yr-1``,
        ``pearson_r_with_layer1``, ``n_years``.
    """
    series = series.transpose("layer", YEAR_DIM)
    values = np.asarray(series.values, dtype=float)
    years = series[YEAR_DIM].values
    slopes = theil_sen_slope(values, years)
    slopes[np.isfinite(values).sum(axis=1) < min_years] = np.nan
    top = values[0]
    rows = []
    for k, layer in enumerate(series["layer"].values):
        rows.append(
            {
                "layer": int(layer),
                "mean_sm_m3_m-3": float(np.nanmean(values[k]))
                if np.isfinite(values[k]).any()
                else np.nan,
                "sen_slope_m3_m-3_yr-1": float(slopes[k]),
                "pearson_r_with_layer1": pearson_r(top, values[k]),
                "n_years": int(np.isfinite(values[k]).sum()),
            }
        )
    return pd.DataFrame(rows)


def pearson_r(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation over the pairs where both are finite; NaN if < 3 pairs or constant.

    .. math:: r = \\frac{\\sum (a - \\bar a)(b - \\bar b)}
              {\\sqrt{\\sum (a - \\bar a)^2 \\sum (b - \\bar b)^2}}
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    da, db = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    denom = np.sqrt((da * da).sum() * (db * db).sum())
    return float((da * db).sum() / denom) if denom > 0 else float("nan")


# --------------------------------------------------------------------------------------------
# Figures (matplotlib Figure objects on the Agg canvas, no pyplot state)
# --------------------------------------------------------------------------------------------

SM_LABEL = "m$^3$ m$^{-3}$"
TREND_LABEL = "m$^3$ m$^{-3}$ yr$^{-1}$"
DENSE_CROPLAND_FRACTION = 0.5
"""Cells above this cropland fraction get a grey dot on maps (the paper's Fig. 6 notation)."""


def new_figure(width_in: float, height_in: float):
    """An empty :class:`matplotlib.figure.Figure` with an Agg canvas and constrained layout."""

    return maps_new_figure((width_in, height_in))


def map_panel(
    ax,
    field: xr.DataArray,
    *,
    title: str,
    units: str,
    diverging: bool = False,
    dense_cropland: xr.DataArray | None = None,
    cmap: str | None = None,
    limit: float | None = None,
    value_range: tuple[float, float] | None = None,
    colorbar: bool = True,
):
    """Draw a ``(lat, lon)`` field on ``ax`` with China's outline and provinces, a colour bar
    and its ``units`` (UDUNITS spelling), zoomed to the field's grid (:mod:`cropsm.maps`).

    Sequential fields use the 2nd–98th percentiles as limits; diverging ones (differences,
    trends) are centred on zero at ±``limit`` (default the 98th percentile of the absolute
    values), so panels that share ``limit`` share a colour scale; sequential ones span
    ``value_range`` (default the 2nd–98th percentiles). Cells where
    ``dense_cropland`` is true get a grey dot (the paper's notation for cropland > 0.5).
    """

    field = field.transpose("lat", "lon")
    lat, lon = field["lat"].values, field["lon"].values
    step_lat = float(np.median(np.diff(lat))) if lat.size > 1 else 1.0
    step_lon = float(np.median(np.diff(lon))) if lon.size > 1 else 1.0
    extent = (
        float(lon.min() - step_lon),
        float(lon.max() + step_lon),
        float(lat.min() - step_lat),
        float(lat.max() + step_lat),
    )
    dots = None
    if dense_cropland is not None:
        dots = dense_cropland.transpose("lat", "lon") & field.notnull()
    mesh = maps.map_panel(
        ax,
        field,
        cmap=cmap or ("RdBu" if diverging else "YlGnBu"),
        symmetric=diverging,
        vmin=None if diverging or value_range is None else value_range[0],
        vmax=limit if diverging else (None if value_range is None else value_range[1]),
        dots=dots,
        extent=extent,
    )
    ax.set_title(title, fontsize=10)
    if not np.isfinite(np.asarray(field.values, dtype=float)).any():
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center")
    if colorbar:
        maps.colorbar(ax.figure, mesh, ax, units)
    return mesh


def map_figure_height(field: xr.DataArray, ncols: int, nrows: int, width_in: float) -> float:
    """Figure height (inches) for ``nrows x ncols`` maps of ``field``'s grid at ``width_in``.

    Each panel keeps the map's shape (lat span / lon span x 1/cos(mid latitude)), plus room for
    a title and axis labels; the colour bar takes about 1.3 in of each panel's width.
    """
    lat, lon = field["lat"].values, field["lon"].values
    lat_span = float(lat.max() - lat.min()) + 2 * float(
        np.median(np.diff(lat)) if lat.size > 1 else 1.0
    )
    lon_span = float(lon.max() - lon.min()) + 2 * float(
        np.median(np.diff(lon)) if lon.size > 1 else 1.0
    )
    aspect = lat_span / lon_span / max(0.2, float(np.cos(np.deg2rad(np.mean(lat)))))
    panel_width = width_in / ncols - 1.3
    return float(np.clip(nrows * (panel_width * aspect + 0.9), 2.5, 30.0))


def percentile_range(*fields, low: float = 2.0, high: float = 98.0) -> tuple[float, float]:
    """Shared colour range of several fields: the ``low``–``high`` percentiles of their values."""
    values = np.concatenate([np.asarray(f, dtype=float).ravel() for f in fields])
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    vmin, vmax = (float(v) for v in np.percentile(values, [low, high]))
    return vmin, vmax if vmax > vmin else vmin + 1e-6


def symmetric_limit(values: np.ndarray | xr.DataArray, percentile: float = 98.0) -> float:
    """Colour limit for a diverging scale: the ``percentile`` of ``|values|`` (finite), > 0."""
    values = np.asarray(values, dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    limit = float(np.percentile(finite, percentile)) if finite.size else 1.0
    return limit if limit > 0 else 1e-6


def magnitude_trend_layers_figure(result: xr.Dataset, dense_cropland: xr.DataArray | None = None):
    """Fig. 7a,b for every layer in one figure: median annual SM (top row) and its Sen's slope
    (bottom row), one colour scale per row so the layers compare at a glance.

    The trend row is left out when no cell has :data:`cropsm.analyze.MIN_YEARS_FOR_TREND`
    annual means (the title says so); it is never drawn empty.
    """

    layers = [int(k) for k in result["layer"].values]
    has_trend = bool(np.isfinite(np.asarray(result["sm_trend"].values, dtype=float)).any())
    rows = 2 if has_trend else 1
    width = 3.0 * len(layers) + 1.5
    fig = new_figure(width, map_figure_height(result, len(layers), rows, width - 1.5) + 0.4)
    axes = np.atleast_2d(fig.subplots(rows, len(layers)))
    years = result.attrs.get("years", "")
    magnitude_range = percentile_range(result["median_annual_sm"].values)
    trend_limit = symmetric_limit(result["sm_trend"].values) if has_trend else None
    meshes = [None, None]
    for j, k in enumerate(layers):
        depth = f"{LAYER_TOP_CM[k - 1]}-{LAYER_BOTTOM_CM[k - 1]} cm"
        sel = result.sel(layer=k)
        meshes[0] = map_panel(
            axes[0, j], sel["median_annual_sm"], title=f"(a) median SM, {depth}", units=SM_UNITS,
            dense_cropland=dense_cropland, value_range=magnitude_range, colorbar=False,
        )  # fmt: skip
        if has_trend:
            meshes[1] = map_panel(
                axes[1, j], sel["sm_trend"], title=f"(b) trend, {depth}", units=TREND_UNITS,
                diverging=True, dense_cropland=dense_cropland, limit=trend_limit, colorbar=False,
            )  # fmt: skip
    maps.colorbar(fig, meshes[0], axes[0, :].tolist(), SM_UNITS, "median annual SM")
    if has_trend:
        maps.colorbar(fig, meshes[1], axes[1, :].tolist(), TREND_UNITS, "Sen's slope")
        fig.suptitle(f"Reference product, {years}: median annual SM and its trend")
    else:
        n_years = int(np.nanmax(result["n_years"].values)) if result["n_years"].size else 0
        fig.suptitle(
            f"Reference product, {years}: median annual SM (no trend map: {n_years} years, "
            f"fewer than the {MIN_YEARS_FOR_TREND} a trend needs)"
        )
    return fig


def national_annual_figure(series: xr.DataArray):
    """Cropland-mean annual SM of the reference product per layer (the product's Fig. 3)."""

    fig = new_figure(7.0, 4.0)
    ax = fig.subplots()
    for layer in series["layer"].values:
        k = int(layer)
        ax.plot(
            series[YEAR_DIM].values,
            series.sel(layer=layer).values,
            marker="o",
            ms=3,
            label=f"{LAYER_TOP_CM[k - 1]}-{LAYER_BOTTOM_CM[k - 1]} cm",
        )
    ax.set_xlabel("year")
    ax.xaxis.get_major_locator().set_params(integer=True)  # 2012, 2013; not 2012.2
    ax.set_ylabel(f"cropland mean annual SM ({SM_LABEL})")
    ax.set_title("reference product: cropland-mean annual SM by layer")
    ax.legend(fontsize=8)
    return fig
