"""Network inputs on the grid, one compute block (time chunk x cropland cells) at a time.

The same feature code as the station table (:mod:`cropsm.features.climate`) runs on
``(time, cell)`` arrays of the block's cropland cells, so a cell's product inputs are exactly the
inputs a station at the cell centre would get (paper Table 1, section 2b):

* climate features of the block's days, the accumulated precipitation from a halo of earlier
  days (the 12-month look-back starts ``12 calendar months`` before the block's first day);
* soil of each layer and elevation of the cell (static, one value per cell);
* day of year.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import dask
import dask.array
import numpy as np
import pandas as pd
import xarray as xr

from cropsm.features.climate import (
    DIRECT_FEATURES,
    VPD_SOURCES,
    accumulated_precipitation_mm,
    climate_features,
    day_of_year,
    recent_precipitation_mm,
)
from cropsm.features.groups import (
    PRECIPITATION_ACCUMULATION_MONTHS,
    PRECIPITATION_RECENT_DAYS,
    SOIL_PROPERTIES,
)
from cropsm.features.location import LOCATION_FEATURES, location_unit_vector
from cropsm.features.station_table import SOIL_SOURCES

CROPLAND_MIN_FRACTION = 0.1
"""A cell is cropland when its cropland fraction is at least this (paper section 2c(2))."""

ACCUMULATED = {
    **{
        f"precip_{m}m": (accumulated_precipitation_mm, m) for m in PRECIPITATION_ACCUMULATION_MONTHS
    },
    **{f"precip_{d}d": (recent_precipitation_mm, d) for d in PRECIPITATION_RECENT_DAYS},
}
"""Precipitation window features: name -> (function, look-back in months or days). The halo of
the longest (12 months) covers every other."""

STATIC_FEATURES = (
    ("elevation",)
    + tuple(f"{name}_l{k}" for k in range(1, 6) for name in SOIL_PROPERTIES)
    + LOCATION_FEATURES
)
"""Network inputs that are one value per cell (elevation, soil of each layer, location)."""


def cropland_cells(
    cropland_fraction: np.ndarray, min_fraction: float = CROPLAND_MIN_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """Grid indices ``(ilat, ilon)`` of the cropland cells, in (lat, lon) row-major order.

    A cell is cropland when ``cropland_fraction >= min_fraction`` (NaN is not cropland).
    """
    fraction = np.nan_to_num(np.asarray(cropland_fraction, dtype=np.float64), nan=-1.0)
    ilat, ilon = np.nonzero(fraction >= min_fraction)
    return ilat.astype(np.int64), ilon.astype(np.int64)


def lookback_start(day, months: int = max(PRECIPITATION_ACCUMULATION_MONTHS)) -> pd.Timestamp:
    """First day of the ``months``-calendar-month precipitation window of ``day``.

    ``day - DateOffset(months=N)``, the convention of
    :func:`cropsm.features.climate.accumulated_precipitation_mm` (month ends clip as in pandas).
    """
    return pd.Timestamp(day) - pd.DateOffset(months=int(months))


def first_complete_day(climate_start, months: int = max(PRECIPITATION_ACCUMULATION_MONTHS)):
    """The first day whose ``months``-month look-back lies inside a climate starting on
    ``climate_start``: the earliest day t with ``t - N months >= climate_start``."""
    start = pd.Timestamp(climate_start)
    day = start + pd.DateOffset(months=int(months)) - pd.Timedelta(days=4)
    while lookback_start(day, months) < start:  # monotone in day; month ends clip
        day += pd.Timedelta(days=1)
    return pd.Timestamp(day)


def climate_sources(feature_names: Iterable[str]) -> tuple[tuple[str, ...], bool]:
    """Canonical climate variables the features need, and whether a look-back halo is needed.

    Returns
    -------
    (variables, needs_halo): variables in canonical order; ``needs_halo`` when an accumulated
    precipitation feature is among the names.
    """
    names = set(feature_names)
    needed: list[str] = []
    for feature, source in DIRECT_FEATURES.items():
        if feature in names or (feature == "precip" and names & set(ACCUMULATED)):
            needed.append(source)
    if "vpd" in names:
        needed.extend(VPD_SOURCES)
    order = (
        "precipitation",
        "air_temperature",
        "dewpoint_temperature",
        "net_solar_radiation",
        "wind_speed",
        "cloud_cover",
    )
    return tuple(v for v in order if v in needed), bool(names & set(ACCUMULATED))


def static_cell_features(
    static: xr.Dataset, ilat: np.ndarray, ilon: np.ndarray, names: Iterable[str]
) -> dict[str, np.ndarray]:
    """Per-cell static inputs (``elevation``, ``ph_l{k}`` ...) at grid indices ``(ilat, ilon)``.

    Same sources as the station table: ``elevation``, the canonical soil variables of
    :data:`cropsm.features.station_table.SOIL_SOURCES` on layer k, and the location inputs
    (:func:`cropsm.features.location.location_unit_vector` of the grid's ``lat``, ``lon``).
    Float64, NaN where the static field is NaN.
    """
    out: dict[str, np.ndarray] = {}
    names = list(names)
    if any(name in LOCATION_FEATURES for name in names):
        lat = np.asarray(static["lat"].values, dtype=np.float64)[ilat]
        lon = np.asarray(static["lon"].values, dtype=np.float64)[ilon]
        location = location_unit_vector(lat, lon)
    for name in names:
        if name in LOCATION_FEATURES:
            out[name] = location[name]
            continue
        if name == "elevation":
            grid = static["elevation"].transpose("lat", "lon").values
        else:
            prop, layer = name.rsplit("_l", 1)
            var = static[SOIL_SOURCES[prop]].sel(layer=int(layer))
            grid = var.transpose("lat", "lon").values
        out[name] = np.asarray(grid, dtype=np.float64)[ilat, ilon]
    return out


def read_tile_climate(
    climate: xr.Dataset,
    variables: Sequence[str],
    time_slices: Mapping[str, slice],
    lat_slice: slice,
    lon_slice: slice,
    cell_ilat: np.ndarray,
    cell_ilon: np.ndarray,
) -> dict[str, np.ndarray]:
    """Climate of a tile's cropland cells as ``(time, cell)`` float32 arrays.

    Each variable is read for its own time slice over the tile's bounding box (one variable at a
    time, so that memory holds one box), then the cropland cells are picked.

    Parameters
    ----------
    climate
        Canonical climate (lazy), dims ``(time, lat, lon)``.
    variables
        Canonical variable names to read.
    time_slices
        Time index slice per variable (the precipitation slice includes the look-back halo).
    lat_slice, lon_slice
        Index slices of the tile.
    cell_ilat, cell_ilon
        Grid indices of the tile's cropland cells (absolute, inside the slices).
    """
    out: dict[str, np.ndarray] = {}
    ly = np.asarray(cell_ilat) - lat_slice.start
    lx = np.asarray(cell_ilon) - lon_slice.start
    for name in variables:
        box = climate[name].isel(time=time_slices[name], lat=lat_slice, lon=lon_slice)
        values = synchronous_values(box.transpose("time", "lat", "lon"))
        out[name] = np.ascontiguousarray(values[:, ly, lx], dtype=np.float32)
        del values
    return out


def synchronous_values(array: xr.DataArray) -> np.ndarray:
    """The values of a (possibly dask-backed) array, computed in this thread.

    The scheduler is passed to the compute call, not set in dask's global config: a worker
    that runs tasks in threads (``LocalCluster(processes=False)``) would otherwise race the
    client's own config change when it closes and leave ``scheduler = "dask.distributed"``
    behind with no client.
    """
    data = array.data
    if isinstance(data, dask.array.Array):
        return np.asarray(data.compute(scheduler="synchronous"))
    return np.asarray(data)


def block_climate_features(
    cell_climate: Mapping[str, np.ndarray],
    dates: pd.DatetimeIndex,
    halo_days: int,
    names: Iterable[str],
) -> dict[str, np.ndarray]:
    """Climate features of a block's days at its cropland cells (paper Table 1).

    Parameters
    ----------
    cell_climate
        Canonical variables as ``(time, cell)`` float32 arrays: ``precipitation`` covering
        ``halo_days`` days before the block plus the block's days, every other variable the
        block's days only.
    dates
        The block's consecutive days.
    halo_days
        Days of precipitation before ``dates[0]``.
    names
        Features wanted (only those are returned).

    Returns
    -------
    dict of ``(n_days, n_cells)`` float32 arrays, computed by
    :func:`cropsm.features.climate.climate_features` and
    :func:`cropsm.features.climate.accumulated_precipitation_mm` (and
    :func:`~cropsm.features.climate.recent_precipitation_mm`) exactly as for the station
    table. An accumulation whose window starts before the halo is NaN.
    """
    names = list(dict.fromkeys(names))
    dates = pd.DatetimeIndex(dates)
    n_days = len(dates)
    out: dict[str, np.ndarray] = {}
    direct = {
        name: (("time", "cell"), values[-n_days:])
        for name, values in cell_climate.items()
        if name != "precipitation"
    }
    if "precipitation" in cell_climate:
        direct["precipitation"] = (("time", "cell"), cell_climate["precipitation"][-n_days:])
    if direct:
        block = xr.Dataset(direct, coords={"time": dates.values})
        features = climate_features(block, accumulation_months=(), recent_days=())
        for name in names:
            if name in features:
                out[name] = np.ascontiguousarray(features[name].values, dtype=np.float32)
    wanted = [n for n in names if n in ACCUMULATED]
    if wanted:
        # time-contiguous per cell: the cumulative sums run along memory (same values)
        precip = np.asfortranarray(cell_climate["precipitation"])
        halo_dates = pd.date_range(end=dates[-1], periods=precip.shape[0], freq="D")
        if precip.shape[0] != n_days + halo_days:
            raise ValueError("precipitation must hold the halo days and the block's days")
        for name in wanted:
            window_sums, look_back = ACCUMULATED[name]
            acc = window_sums(precip, halo_dates.values, look_back)
            out[name] = np.ascontiguousarray(acc[halo_days:], dtype=np.float32)
    return out


def block_day_of_year(dates) -> np.ndarray:
    """Day of year (1...366) of each day of a block, float32 (the ``doy`` input)."""
    return day_of_year(dates).astype(np.float32)
