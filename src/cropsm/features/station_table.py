"""The station table: observations joined with their covariates (paper section 2b, Table 1).

One row per station and date with at least one layer observed (``docs/contracts.md``, "Station
table"). Covariates come from the grid cell nearest to the station. Climate is read only at the
distinct station cells (vectorized point indexing on the lazy dataset), the climate features are
computed on that small ``(time, cell)`` array, and the values of every station-date are then
taken with integer index arrays, so a paper-size table (273 stations, 33 years) takes seconds.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import xarray as xr

from cropsm import N_LAYERS
from cropsm.catalog import fallow as catalog_fallow
from cropsm.catalog import pattern_ids, region_ids
from cropsm.errors import InputError
from cropsm.features.calendar import CALENDAR_ATTRS, CALENDAR_FEATURES
from cropsm.features.climate import (
    DIRECT_FEATURES,
    FEATURE_ATTRS,
    VPD_SOURCES,
    climate_features,
    cyclic_day_of_year,
    day_of_year,
)
from cropsm.features.groups import (
    SOIL_PROPERTIES,
    active_groups,
    group_columns,
    missing_group_error,
    soil_column,
    validate_groups,
)
from cropsm.features.location import LOCATION_ATTRS, location_unit_vector
from cropsm.features.phenology import (
    HARMONIC_FEATURES,
    calendar_on_days,
    climate_calendar_table,
    temperature_harmonics,
)
from cropsm.features.water_balance import FEATURE_ATTRS as WATER_BALANCE_ATTRS
from cropsm.features.water_balance import (
    REFERENCE_KC,
    REFERENCE_ROOT_CM,
    climate_descriptors,
    pattern_bucket_inputs,
)
from cropsm.io.atomic import atomic_output

LAYERS: tuple[int, ...] = tuple(range(1, N_LAYERS + 1))

SOIL_SOURCES: dict[str, str] = {
    "ph": "ph",
    "sand": "sand",
    "silt": "silt",
    "clay": "clay",
    "bd": "bulk_density",
}
"""Layer-generic soil feature -> canonical static variable (dims ``(layer, lat, lon)``)."""

GROUP_SOURCES: dict[str, tuple[str, ...]] = {
    "precipitation": (DIRECT_FEATURES["precip"],),
    "soil": tuple(SOIL_SOURCES[n] for n in SOIL_PROPERTIES),
    "elevation": ("elevation",),
    "temperature": (DIRECT_FEATURES["tair"],),
    "vpd": VPD_SOURCES,
    "pattern": ("pattern",),
    "ssr": (DIRECT_FEATURES["ssr"],),
    "wind": (DIRECT_FEATURES["wind"],),
    "cloud": (DIRECT_FEATURES["cloud"],),
}
"""Feature group -> canonical input variables it is made from (climate, static or station meta)."""

STATION_TABLE_RELPATH = Path("features") / "station_table.parquet"
"""Where the station table lives inside a run directory."""

PARQUET_METADATA_KEY = b"cropsm"

ID_COLUMNS: tuple[str, ...] = ("station_id", "date", "region", "pattern", "lat", "lon")
CLIMATE_COLUMNS: tuple[str, ...] = tuple(FEATURE_ATTRS)
SOIL_COLUMNS: tuple[str, ...] = tuple(soil_column(n, k) for k in LAYERS for n in SOIL_PROPERTIES)
SM_COLUMNS: tuple[str, ...] = tuple(f"sm_l{k}" for k in LAYERS)

_SOIL_UNITS = {"ph": "1", "sand": "%", "silt": "%", "clay": "%", "bd": "g cm-3"}
TABLE_UNITS: dict[str, str] = {
    "lat": "degrees_north",
    "lon": "degrees_east",
    **{name: attrs["units"] for name, attrs in FEATURE_ATTRS.items()},
    **{soil_column(n, k): _SOIL_UNITS[n] for k in LAYERS for n in SOIL_PROPERTIES},
    "elevation": "m",
    "doy": "day",
    "doy_sin": "1",
    "doy_cos": "1",
    **{name: attrs["units"] for name, attrs in LOCATION_ATTRS.items()},
    **{name: attrs["units"] for name, attrs in CALENDAR_ATTRS.items()},
    **{name: attrs["units"] for name, attrs in WATER_BALANCE_ATTRS.items()},
    **{c: "m3 m-3" for c in SM_COLUMNS},
}
"""Units of the station-table columns (UDUNITS spelling; id columns have none)."""


class StationDataLike(Protocol):
    """Anything with the canonical station ``meta`` and ``obs`` frames (``docs/contracts.md``)."""

    meta: pd.DataFrame
    obs: pd.DataFrame


def nearest_cell_index(
    coord: np.ndarray, values: np.ndarray, *, name: str = "coordinate"
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest cell centre along one ascending grid axis.

    For a cell-centre coordinate c_0 < c_1 < ... < c_{n-1}, the index of value x is
    ``argmin_j |x - c_j|`` (ties go to the lower index). x lies inside the grid extent when
    ``c_0 - dc_0 / 2 <= x <= c_{n-1} + dc_{n-1} / 2`` with dc the spacing at that edge, i.e.
    at most half a cell beyond the outermost centre.

    Parameters
    ----------
    coord
        Ascending cell-centre coordinate (at least 2 cells), degrees.
    values
        Positions to look up, degrees.
    name
        Axis name, for error messages.

    Returns
    -------
    (index, inside): int64 indices and a boolean mask of values inside the extent.
    """
    coord = np.asarray(coord, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if coord.ndim != 1 or coord.size < 2:
        raise ValueError(f"{name} needs at least 2 cells to find nearest cells")
    if not np.all(np.diff(coord) > 0):
        raise ValueError(f"{name} must be strictly ascending")
    right = np.clip(np.searchsorted(coord, values), 1, coord.size - 1)
    left = right - 1
    index = np.where(np.abs(values - coord[left]) <= np.abs(coord[right] - values), left, right)
    half_low = 0.5 * (coord[1] - coord[0])
    half_high = 0.5 * (coord[-1] - coord[-2])
    inside = (values >= coord[0] - half_low) & (values <= coord[-1] + half_high)
    return index.astype(np.int64), inside


def build_station_table(
    stations: StationDataLike,
    climate: xr.Dataset,
    static: xr.Dataset,
    *,
    groups_off: Iterable[str] = (),
    climate_cells: xr.Dataset | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Join station observations with the features of paper Table 1 at the nearest grid cell.

    Steps (paper section 2b; ``docs/contracts.md``, "Station table"):

    1. Observations are pivoted to one row per (station, date) with ``sm_l1 ... sm_l5``
       (m3 m-3, NaN where that layer was not observed).
    2. Each station takes the covariates of the grid cell whose centre is nearest (per axis,
       :func:`nearest_cell_index`); a station more than half a cell outside the grid is an error.
    3. Climate is read only at the distinct station cells (vectorized ``isel`` on the lazy
       dataset), :func:`cropsm.features.climate.climate_features` is computed on that
       ``(time, cell)`` array over the whole climate period (so the accumulations look back
       across the full record), and values are taken with integer (date, cell) index arrays.
    4. Soil of layer k (``ph_l{k}`` ... ``bd_l{k}``), ``elevation`` from the static grid;
       ``region``, ``pattern``, ``lat``, ``lon`` from the station metadata; ``doy`` from the date.

    Rows are then removed, and counted, in this order: (a) the date is not in the climate
    period; (b) a feature of a group that is on (or ``doy``) is NaN, except soil, e.g. the
    12-month precipitation look-back before the climate starts; (c) for each layer k, the
    observation ``sm_l{k}`` is set to NaN where a soil feature of layer k is NaN (the network of
    layer k cannot use it; other layers keep the row); (d) rows left with no observed layer.

    Parameters
    ----------
    stations
        Canonical stations: ``meta`` indexed by ``station_id`` with ``lat``, ``lon``, ``region``,
        ``pattern``; ``obs`` long with ``station_id``, ``date``, ``layer``, ``sm``.
    climate
        Canonical climate, ``(time, lat, lon)``, daily without gaps; may be lazy (dask or
        lazily indexed backend).
    static
        Canonical static: ``elevation`` ``(lat, lon)``; ``ph``, ``sand``, ``silt``, ``clay``,
        ``bulk_density`` ``(layer, lat, lon)``.
    groups_off
        Feature groups switched off. A group that is on but whose inputs are missing is an
        :class:`~cropsm.errors.InputError`; the columns of a group that is off are still written
        when their inputs exist, and their NaNs do not drop rows.
    climate_cells
        The climate already read at a set of cells (:func:`climate_at_cells`) that holds every
        station's cell: step 3 takes the series from it instead of reading ``climate`` again.
        Reading the series of scattered cells decompresses every chunk of the record, so a
        caller building several tables over the same cells reads them once.

    Returns
    -------
    (table, report): the station table (``table.attrs["units"]`` holds the column units) and a
    JSON-ready dict of counts: ``observations_in``, ``station_dates_in``, ``stations_in``,
    ``dropped_outside_climate_period``, ``dropped_nan_features`` (with
    ``nan_features_by_column``), ``masked_nan_soil`` (observations per layer),
    ``dropped_no_layer_left``, ``rows_out``, ``stations_out``, ``observations_in_by_layer``,
    ``observations_out_by_layer``, ``cells``, ``climate_period``.
    """
    groups_off = validate_groups(groups_off)
    on = active_groups(groups_off)
    meta, obs = _check_stations(stations)
    climate_path = climate.encoding.get("source")
    static_path = static.encoding.get("source")
    _check_group_sources(on, climate, static, climate_path, static_path)
    if "pattern" in on:
        _check_patterns(meta.loc[meta.index.isin(obs["station_id"])], stations)

    time_index = _climate_time_index(climate, climate_path)

    # 1. pivot to one row per station-date
    wide = _pivot_observations(obs)
    report: dict[str, Any] = {
        "observations_in": int(len(obs)),
        "station_dates_in": int(len(wide)),
        "stations_in": int(obs["station_id"].nunique()),
        "observations_in_by_layer": {c: int(wide[c].notna().sum()) for c in SM_COLUMNS},
    }

    # 2. nearest cells of the stations that have observations
    station_ids = pd.Index(wide["station_id"].unique())
    station_meta = meta.loc[station_ids]
    ilat, ilon = _station_cells(station_meta, climate, climate_path, "climate")
    row_station = station_ids.get_indexer(wide["station_id"])

    # (a) dates outside the climate period
    row_time = time_index.get_indexer(wide["date"])
    outside = row_time < 0
    report["dropped_outside_climate_period"] = int(outside.sum())
    wide = wide.loc[~outside].reset_index(drop=True)
    row_time = row_time[~outside]
    row_station = row_station[~outside]

    # 3. climate features at the distinct station cells
    cell_key = ilat * climate.sizes["lon"] + ilon
    unique_keys, station_cell = np.unique(cell_key, return_inverse=True)
    cell_ilat = unique_keys // climate.sizes["lon"]
    cell_ilon = unique_keys % climate.sizes["lon"]
    report["cells"] = int(unique_keys.size)
    if climate_cells is None:
        at_cells = climate_at_cells(climate, cell_ilat, cell_ilon)
    else:
        at_cells = _cells_of(climate_cells, cell_ilat, cell_ilon, climate.sizes["lon"])
    features = climate_features(at_cells.drop_vars(["cell_ilat", "cell_ilon"]))
    row_cell = station_cell[row_station]

    columns: dict[str, Any] = {
        "station_id": wide["station_id"].to_numpy(),
        "date": wide["date"].to_numpy(),
        "region": _categorical(station_meta["region"].to_numpy()[row_station], region_ids()),
        "pattern": _categorical(station_meta["pattern"].to_numpy()[row_station], pattern_ids()),
        "lat": station_meta["lat"].to_numpy(dtype=np.float64)[row_station],
        "lon": station_meta["lon"].to_numpy(dtype=np.float64)[row_station],
    }
    for name in CLIMATE_COLUMNS:
        if name in features:
            values = features[name].transpose("time", "cell").to_numpy()
            columns[name] = values[row_time, row_cell]

    # 4. static covariates at the stations' nearest static cells
    s_ilat, s_ilon = _station_cells(station_meta, static, static_path, "static")
    for k in LAYERS:
        for name in SOIL_PROPERTIES:
            source = SOIL_SOURCES[name]
            if source in static:
                layer_grid = _static_layer(static, source, k, static_path)
                columns[soil_column(name, k)] = layer_grid[s_ilat, s_ilon][row_station]
    if "elevation" in static:
        columns["elevation"] = (
            static["elevation"].transpose("lat", "lon").to_numpy()[s_ilat, s_ilon][row_station]
        )
    columns["doy"] = day_of_year(wide["date"])
    station_series = {
        name: features[name].transpose("time", "cell").to_numpy()[:, station_cell]
        for name in BUCKET_SERIES
        if name in features
    }
    _add_crop_aware_columns(
        columns, station_series, station_meta["pattern"], time_index, row_time, row_station
    )
    for c in SM_COLUMNS:
        columns[c] = wide[c].to_numpy()
    table = pd.DataFrame(columns)

    return _finish_table(table, report, on, time_index)


BUCKET_SERIES: tuple[str, ...] = ("precip", "tair", "ssr")
"""Climate columns the pattern buckets and the long-term climate are made from."""


def _add_crop_aware_columns(
    columns: dict,
    station_series: dict,
    station_patterns: pd.Series,
    time_index: pd.DatetimeIndex,
    row_time: np.ndarray,
    row_station: np.ndarray,
) -> None:
    """Add :func:`crop_aware_columns` and the location inputs
    (:func:`cropsm.features.location.location_unit_vector` of the rows' ``lat``, ``lon``) to
    ``columns`` (static inputs taken from ``columns``)."""
    columns.update(
        crop_aware_columns(
            station_series,
            station_static=_station_static(columns, row_station, len(station_patterns)),
            station_patterns=station_patterns.to_numpy(dtype=object),
            dates=time_index,
            row_time=row_time,
            row_station=row_station,
        )
    )
    columns.update(location_unit_vector(columns["lat"], columns["lon"]))


def _station_static(columns: dict, row_station: np.ndarray, n_stations: int) -> dict:
    """Per-station elevation and texture (``(5, station)``) from the rows' static columns."""
    first_row = np.full(n_stations, -1)
    first_row[row_station[::-1]] = np.arange(len(row_station))[::-1]
    out = {}
    if "elevation" in columns and (first_row >= 0).all():
        out["elevation"] = np.asarray(columns["elevation"], dtype=np.float64)[first_row]
    for prop in ("sand", "clay"):
        names = [soil_column(prop, k) for k in LAYERS]
        if all(n in columns for n in names) and (first_row >= 0).all():
            out[prop] = np.stack([np.asarray(columns[n], np.float64)[first_row] for n in names])
    return out


def crop_aware_columns(
    station_series: dict[str, np.ndarray],
    *,
    station_static: dict[str, np.ndarray],
    station_patterns: np.ndarray,
    dates: pd.DatetimeIndex,
    row_time: np.ndarray,
    row_station: np.ndarray,
) -> dict[str, np.ndarray]:
    """Columns of the crop-aware feature set for the station-table rows.

    * ``doy_sin``, ``doy_cos``: :func:`cropsm.features.climate.cyclic_day_of_year`;
    * ``cal_kc``, ``cal_root_cm``, ``cal_crop_on``: the calendar of the station's pattern moved
      to the station's long-term temperature cycle (:mod:`cropsm.features.phenology`; the
      nominal calendar without air temperature), when the station has one;
    * ``wb_top``, ``wb_sub``, ``clim_precip_mm_yr``, ``clim_aridity`` (and the fallow field's
      ``wb_top_bare``, ``wb_sub_bare``): the bucket run over the whole climate record with
      that calendar's Kc and rooting depth (Kc = 1 and 50 cm without a pattern) and the long-term
      climate (:func:`cropsm.features.water_balance.pattern_bucket_inputs`), when daily
      precipitation, air temperature and net solar radiation exist.

    Parameters
    ----------
    station_series
        ``precip``, ``tair``, ``ssr`` as ``(time, station)`` arrays over ``dates``.
    station_static
        Optional ``elevation`` ``(station,)``, ``sand`` and ``clay`` ``(5, station)``.
    station_patterns
        Pattern id per station (anything else: no pattern).
    dates
        The climate days.
    row_time, row_station
        Day and station index of every row.
    """
    row_dates = dates[row_time]
    row_doy = day_of_year(row_dates)
    doy_sin, doy_cos = cyclic_day_of_year(row_doy)
    out: dict[str, np.ndarray] = {"doy_sin": doy_sin, "doy_cos": doy_cos}
    known = set(pattern_ids())
    has_pattern = np.array([isinstance(p, str) and p in known for p in station_patterns])
    n_stations = len(station_patterns)
    if "tair" in station_series:
        harmonics = temperature_harmonics(dates, station_series["tair"])
    else:
        harmonics = {name: np.full(n_stations, np.nan) for name in HARMONIC_FEATURES}
    # (station, 366, 3) climate-adjusted calendar of each station's own pattern
    tables = np.full((n_stations, 366, len(CALENDAR_FEATURES)), np.nan, dtype=np.float32)
    for pid in sorted({p for p, ok in zip(station_patterns, has_pattern, strict=True) if ok}):
        members = np.flatnonzero(station_patterns == pid)
        tables[members] = climate_calendar_table(pid, {k: v[members] for k, v in harmonics.items()})
    if has_pattern.all():
        for j, name in enumerate(CALENDAR_FEATURES):
            out[name] = tables[row_station, row_doy.astype(np.int64) - 1, j].astype(np.float64)
    if not all(name in station_series for name in BUCKET_SERIES):
        return out
    kc = np.full(station_series["precip"].shape, REFERENCE_KC)
    root = np.full(station_series["precip"].shape, REFERENCE_ROOT_CM)
    with_pattern = np.flatnonzero(has_pattern)
    kc[:, with_pattern] = calendar_on_days(tables[with_pattern], dates, 0)
    root[:, with_pattern] = calendar_on_days(tables[with_pattern], dates, 1)
    bucket = pattern_bucket_inputs(
        station_series["precip"],
        station_series["tair"],
        station_series["ssr"],
        kc,
        root,
        elevation_m=station_static.get("elevation"),
        sand_by_layer_pct=station_static.get("sand"),
        clay_by_layer_pct=station_static.get("clay"),
    )
    for name in ("wb_top", "wb_sub"):
        out[name] = bucket[name][row_time, row_station]
    fallow = catalog_fallow()
    bare = pattern_bucket_inputs(
        station_series["precip"],
        station_series["tair"],
        station_series["ssr"],
        float(fallow["kc"]),
        float(fallow["root_depth_cm"]),
        elevation_m=station_static.get("elevation"),
        sand_by_layer_pct=station_static.get("sand"),
        clay_by_layer_pct=station_static.get("clay"),
    )
    out["wb_top_bare"] = bare["wb_top"][row_time, row_station]
    out["wb_sub_bare"] = bare["wb_sub"][row_time, row_station]
    climate = climate_descriptors(station_series["precip"], bucket["et0_mm"])
    for name, values in climate.items():
        out[name] = values[row_station]
    return out


def build_station_table_from_station_features(
    stations: StationDataLike,
    features: xr.Dataset,
    *,
    groups_off: Iterable[str] = (),
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The station table from STATION-LEVEL climate features (a site's own weather, no grid).

    Same columns, units and row rules as :func:`build_station_table`, but every covariate is the
    station's own: the climate features come from ``features`` at the station itself (e.g.
    :func:`cropsm.io.station_climate.station_climate_features` of USCRN weather), and the static
    covariates from the station metadata: ``elevation`` and, when present, the soil columns
    ``ph_l{k}``, ``sand_l{k}``, ``silt_l{k}``, ``clay_l{k}``, ``bd_l{k}``.

    ``region`` is taken from the metadata as is (ids outside the catalog, e.g. ``"US"``, become
    extra categories). ``pattern`` is written only when every station has a catalog pattern id;
    otherwise (no crop information, e.g. USCRN) the column is left out and the ``pattern`` group
    must be switched off.

    Rows are removed, and counted, as in :func:`build_station_table`: (a) the date is outside
    the features' period; (b) a feature of a group that is on (or ``doy``) is NaN, soil excepted;
    (c) per layer, the observation is masked where a soil feature of that layer is NaN (soil
    on); (d) rows left with no observed layer.

    Parameters
    ----------
    stations
        Canonical stations (``meta`` indexed by ``station_id`` with ``lat``, ``lon``,
        ``region``, ``pattern`` and ``elevation``; long ``obs``).
    features
        Climate features with dims ``(time, station)``; ``station`` holds the station ids.
    groups_off
        Feature groups switched off. A group that is on but whose inputs are missing (e.g.
        ``wind`` for USCRN, or ``elevation`` with NaN elevations) is an
        :class:`~cropsm.errors.InputError` naming how to switch it off.

    Returns
    -------
    (table, report)
        As :func:`build_station_table`; the report's ``climate`` is ``"station-level"``.
    """
    groups_off = validate_groups(groups_off)
    on = active_groups(groups_off)
    src = getattr(stations, "path", None)
    meta, obs = _check_stations(stations)
    meta = meta.loc[meta.index.isin(obs["station_id"])]
    _check_station_level_sources(on, meta, features, src)
    if "pattern" in on:
        _check_patterns(meta, stations)
    if "station" not in features.dims or "time" not in features.dims:
        raise InputError(src, "station-level climate", "expected dims (time, station)")
    time_index = pd.DatetimeIndex(features["time"].values).normalize()
    feature_stations = pd.Index(features["station"].values.astype(str))
    absent = ~meta.index.isin(feature_stations)
    if absent.any():
        raise InputError(
            src,
            f"station {meta.index[absent][0]!r}",
            "has observations but no station-level climate; expected weather for every station",
        )

    wide = _pivot_observations(obs)
    report: dict[str, Any] = {
        "climate": "station-level",
        "observations_in": int(len(obs)),
        "station_dates_in": int(len(wide)),
        "stations_in": int(obs["station_id"].nunique()),
        "observations_in_by_layer": {c: int(wide[c].notna().sum()) for c in SM_COLUMNS},
    }
    station_ids = pd.Index(wide["station_id"].unique())
    station_meta = meta.loc[station_ids]
    row_station = station_ids.get_indexer(wide["station_id"])
    row_time = time_index.get_indexer(wide["date"])
    outside = row_time < 0
    report["dropped_outside_climate_period"] = int(outside.sum())
    wide = wide.loc[~outside].reset_index(drop=True)
    row_time, row_station = row_time[~outside], row_station[~outside]
    row_feature_station = feature_stations.get_indexer(station_ids)[row_station]
    report["cells"] = int(station_ids.size)

    columns: dict[str, Any] = {
        "station_id": wide["station_id"].to_numpy(),
        "date": wide["date"].to_numpy(),
        "region": _categorical(station_meta["region"].to_numpy()[row_station], region_ids()),
    }
    patterns = station_meta["pattern"].to_numpy(dtype=object)
    if all(isinstance(p, str) and p in pattern_ids() for p in patterns):
        columns["pattern"] = _categorical(patterns[row_station], pattern_ids())
    columns["lat"] = station_meta["lat"].to_numpy(dtype=np.float64)[row_station]
    columns["lon"] = station_meta["lon"].to_numpy(dtype=np.float64)[row_station]
    for name in CLIMATE_COLUMNS:
        if name in features:
            values = np.asarray(features[name].transpose("time", "station").values)
            columns[name] = values[row_time, row_feature_station].astype(np.float64)
    for name in SOIL_COLUMNS:
        if name in station_meta:
            columns[name] = station_meta[name].to_numpy(dtype=np.float64)[row_station]
    if "elevation" in station_meta:
        columns["elevation"] = station_meta["elevation"].to_numpy(dtype=np.float64)[row_station]
    columns["doy"] = day_of_year(wide["date"])
    station_columns = feature_stations.get_indexer(station_ids)
    station_series = {
        name: np.asarray(features[name].transpose("time", "station").values, np.float64)[
            :, station_columns
        ]
        for name in BUCKET_SERIES
        if name in features
    }
    _add_crop_aware_columns(
        columns, station_series, station_meta["pattern"], time_index, row_time, row_station
    )
    for c in SM_COLUMNS:
        columns[c] = wide[c].to_numpy()
    table = pd.DataFrame(columns)

    return _finish_table(table, report, on, time_index)


def _check_station_level_sources(
    on: tuple[str, ...], meta: pd.DataFrame, features: xr.Dataset, path: str | None
) -> None:
    """Every group that is on has its columns in the features or the station metadata."""
    lacking: dict[str, list[str]] = {}
    for group in on:
        if group == "pattern":
            continue  # checked by _check_patterns
        if group == "soil":
            missing = [c for c in group_columns("soil") if c not in meta]
        elif group == "elevation":
            has = "elevation" in meta and np.isfinite(meta["elevation"].to_numpy(float)).all()
            missing = [] if has else ["elevation"]
        else:
            missing = [c for c in group_columns(group) if c not in features]
        if missing:
            lacking[group] = missing
    if lacking:
        raise missing_group_error(lacking, path=path, what="station-level value(s)")


def _finish_table(
    table: pd.DataFrame, report: dict, on: tuple[str, ...], time_index: pd.DatetimeIndex
) -> tuple[pd.DataFrame, dict]:
    """Drop and mask rows the networks cannot use, counting each reason in ``report``.

    (b) rows with a NaN in a feature of a group that is on (soil handled per layer) are dropped;
    (c) where the soil of layer k is NaN only that layer's observation is blanked;
    (d) rows left with no observed layer are dropped.
    """
    entering = pd.Index(table["station_id"].astype(str).unique())
    checked = [
        c for g in on if g not in ("soil", "pattern") for c in group_columns(g) if c in table
    ] + ["doy"]
    nan_by_col = {c: int(table[c].isna().sum()) for c in checked}
    has_nan = table[checked].isna().any(axis=1).to_numpy()
    report["dropped_nan_features"] = int(has_nan.sum())
    report["nan_features_by_column"] = {c: n for c, n in nan_by_col.items() if n}
    table = table.loc[~has_nan].copy()

    masked: dict[str, int] = {}
    for k in LAYERS:
        sm = f"sm_l{k}"
        masked[sm] = 0
        if "soil" in on:
            soil_cols = [soil_column(n, k) for n in SOIL_PROPERTIES]
            bad = table[soil_cols].isna().any(axis=1) & table[sm].notna()
            masked[sm] = int(bad.sum())
            table.loc[bad, sm] = np.nan
    report["masked_nan_soil"] = masked

    empty = table[list(SM_COLUMNS)].isna().all(axis=1)
    report["dropped_no_layer_left"] = int(empty.sum())
    table = table.loc[~empty].sort_values(["station_id", "date"], kind="stable")
    table = table.reset_index(drop=True)
    table.attrs["units"] = {c: u for c, u in TABLE_UNITS.items() if c in table}
    report["rows_out"] = int(len(table))
    report["stations_out"] = int(table["station_id"].nunique())
    lost = entering.difference(pd.Index(table["station_id"].astype(str).unique()))
    report["stations_without_rows"] = sorted(lost.tolist())
    report["observations_out_by_layer"] = {c: int(table[c].notna().sum()) for c in SM_COLUMNS}
    report["climate_period"] = [str(time_index[0].date()), str(time_index[-1].date())]
    return table, report


def write_station_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write the station table as Parquet, atomically (temporary file + rename).

    Column units (``table.attrs["units"]``, else :data:`TABLE_UNITS`) go into the Parquet schema
    metadata under the key ``cropsm`` as JSON ``{"units": {...}}``.

    Returns
    -------
    The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    units = table.attrs.get("units") or {c: u for c, u in TABLE_UNITS.items() if c in table}
    frame = table.copy()
    frame.attrs = {}
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = dict(arrow.schema.metadata or {})
    metadata[PARQUET_METADATA_KEY] = json.dumps({"units": units}).encode()
    arrow = arrow.replace_schema_metadata(metadata)
    with atomic_output(path) as tmp:
        pq.write_table(arrow, tmp)
    return path


def read_station_table(path: str | Path) -> pd.DataFrame:
    """Read a station table written by :func:`write_station_table` (units in ``attrs``).

    A missing or damaged file is an :class:`~cropsm.errors.InputError` naming it.
    """
    try:
        arrow = pq.read_table(path)
    except FileNotFoundError:
        raise InputError(path, None, f"missing; {_REBUILD_TABLE}") from None
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(path, None, f"cannot be read ({first}); {_REBUILD_TABLE}") from None
    table = arrow.to_pandas()
    raw = (arrow.schema.metadata or {}).get(PARQUET_METADATA_KEY)
    table.attrs["units"] = json.loads(raw)["units"] if raw else {}
    return table


_REBUILD_TABLE = "rebuild it: cropsm run CONFIG --stages features --force"


def station_table_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/features/station_table.parquet``."""
    return Path(run_dir) / STATION_TABLE_RELPATH


# --------------------------------------------------------------------------------------------
# helpers


def _check_stations(stations: StationDataLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    meta, obs = stations.meta, stations.obs
    src = getattr(stations, "path", None)
    for frame, what, cols in (
        (meta, "station metadata", ("lat", "lon", "region", "pattern")),
        (obs, "observations", ("station_id", "date", "layer", "sm")),
    ):
        lacking = [c for c in cols if c not in frame.columns]
        if lacking:
            raise InputError(src, what, f"missing column(s) {', '.join(lacking)}")
    meta = meta.copy()
    meta.index = meta.index.astype(str)
    if meta.index.has_duplicates:
        dup = meta.index[meta.index.duplicated()][0]
        raise InputError(src, f"station {dup!r}", "listed more than once in the metadata")
    bad_loc = meta[["lat", "lon"]].isna().any(axis=1)
    if bad_loc.any():
        raise InputError(src, f"station {meta.index[bad_loc][0]!r}", "lat/lon missing")
    obs = obs[["station_id", "date", "layer", "sm"]].copy()
    obs["station_id"] = obs["station_id"].astype(str)
    obs["date"] = pd.to_datetime(obs["date"]).dt.normalize().astype("datetime64[ns]")
    unknown = ~obs["station_id"].isin(meta.index)
    if unknown.any():
        raise InputError(
            src,
            f"observations of station {obs['station_id'][unknown].iloc[0]!r}",
            "station not in the metadata",
        )
    bad_layer = ~obs["layer"].isin(LAYERS)
    if bad_layer.any():
        raise InputError(
            src,
            f"observation row {int(np.flatnonzero(bad_layer.to_numpy())[0])}, column 'layer'",
            f"expected a layer 1...{N_LAYERS}, got {obs['layer'][bad_layer].iloc[0]!r}",
        )
    obs["layer"] = obs["layer"].astype(np.int64)
    obs = obs.loc[obs["sm"].notna()]
    dup = obs.duplicated(["station_id", "date", "layer"])
    if dup.any():
        first = obs.loc[dup].iloc[0]
        raise InputError(
            src,
            f"observations of station {first['station_id']!r} on {first['date'].date()} "
            f"layer {first['layer']}",
            "duplicate record; expected one value per station, date and layer",
        )
    return meta, obs


def _check_group_sources(
    on: tuple[str, ...],
    climate: xr.Dataset,
    static: xr.Dataset,
    climate_path: str | None,
    static_path: str | None,
) -> None:
    lacking: dict[str, list[str]] = {}
    paths: list[str] = []
    for group in on:
        if group == "pattern":
            continue  # the column is always in the metadata (checked in _check_stations)
        data = static if group in ("soil", "elevation") else climate
        missing = [v for v in GROUP_SOURCES[group] if v not in data]
        if missing:
            lacking[group] = missing
            path = static_path if data is static else climate_path
            if path and path not in paths:
                paths.append(path)
    if lacking:
        raise missing_group_error(lacking, path=", ".join(paths) or None, what="variable(s)")


def _check_patterns(meta: pd.DataFrame, stations: StationDataLike) -> None:
    known = pattern_ids()
    bad = ~meta["pattern"].isin(known)
    if bad.any():
        raise InputError(
            getattr(stations, "path", None),
            f"station {meta.index[bad][0]!r}, column 'pattern'",
            f"unknown cropping pattern {meta['pattern'][bad].iloc[0]!r}; expected one of "
            f"{', '.join(known)} (or switch the group off with "
            f'groups_off = ["pattern"] in the [features] section)',
        )


def _climate_time_index(climate: xr.Dataset, path: str | None) -> pd.DatetimeIndex:
    if "time" not in climate.coords:
        raise InputError(path, "coordinate 'time'", "missing; expected daily dates")
    index = pd.DatetimeIndex(climate["time"].values)
    if index.size == 0:
        raise InputError(path, "coordinate 'time'", "empty")
    steps = np.diff(index.asi8)
    if not np.all(steps == pd.Timedelta(days=1).value):
        bad = int(np.flatnonzero(steps != pd.Timedelta(days=1).value)[0])
        raise InputError(
            path,
            "coordinate 'time'",
            f"expected consecutive days; {index[bad].date()} is followed by "
            f"{index[bad + 1].date()}",
        )
    return index.normalize()


def _pivot_observations(obs: pd.DataFrame) -> pd.DataFrame:
    wide = obs.set_index(["station_id", "date", "layer"])["sm"].unstack("layer")
    wide = wide.reindex(columns=list(LAYERS))
    wide.columns = list(SM_COLUMNS)
    wide = wide.dropna(how="all").sort_index().reset_index()
    return wide


def _station_cells(
    meta: pd.DataFrame, grid: xr.Dataset, path: str | None, what: str
) -> tuple[np.ndarray, np.ndarray]:
    out = []
    for axis in ("lat", "lon"):
        if axis not in grid.coords:
            raise InputError(path, f"coordinate {axis!r}", f"missing from the {what} grid")
        coord = grid[axis].values
        values = meta[axis].to_numpy(dtype=np.float64)
        try:
            index, inside = nearest_cell_index(coord, values, name=f"{what} {axis}")
        except ValueError as err:
            raise InputError(path, f"coordinate {axis!r}", str(err)) from None
        if not inside.all():
            j = int(np.flatnonzero(~inside)[0])
            sid = meta.index[j]
            raise InputError(
                path,
                f"station {sid!r} ({axis} {values[j]:g})",
                f"lies outside the {what} grid ({axis} {coord[0]:g} ... {coord[-1]:g} cell "
                "centres) by more than half a cell; expected every station inside the grid",
            )
        out.append(index)
    return out[0], out[1]


def climate_at_cells(climate: xr.Dataset, ilat: np.ndarray, ilon: np.ndarray) -> xr.Dataset:
    """The climate variables the station features use, loaded at grid cells ``(ilat[c],
    ilon[c])`` as a ``(time, cell)`` dataset (each distinct cell once, in order of its flat
    index) with the cells' indices as coordinates ``cell_ilat``, ``cell_ilon`` (for
    :func:`build_station_table`'s ``climate_cells``)."""
    needed = [v for v in (*DIRECT_FEATURES.values(), *VPD_SOURCES) if v in climate]
    n_lon = climate.sizes["lon"]
    keys = np.unique(np.asarray(ilat, dtype=np.int64) * n_lon + np.asarray(ilon, dtype=np.int64))
    ilat, ilon = keys // n_lon, keys % n_lon
    values = _values_at_cells(climate[list(dict.fromkeys(needed))], ilat, ilon)
    return values.assign_coords(cell_ilat=("cell", ilat), cell_ilon=("cell", ilon))


def _cells_of(
    climate_cells: xr.Dataset, ilat: np.ndarray, ilon: np.ndarray, n_lon: int
) -> xr.Dataset:
    """The cells ``(ilat[c], ilon[c])`` of a :func:`climate_at_cells` dataset, in that order."""
    have = climate_cells["cell_ilat"].values * n_lon + climate_cells["cell_ilon"].values
    want = np.asarray(ilat) * n_lon + np.asarray(ilon)
    index = pd.Index(have).get_indexer(want)
    if (index < 0).any():
        missing = int((index < 0).sum())
        raise ValueError(f"climate_cells lacks {missing} of the stations' {want.size} grid cells")
    return climate_cells.isel(cell=index)


def _values_at_cells(data: xr.Dataset, ilat: np.ndarray, ilon: np.ndarray) -> xr.Dataset:
    """Load ``data[time, ilat[c], ilon[c]]`` for cells c as a ``(time, cell)`` dataset.

    A lazily indexed (not dask) backend variable is first chunked along time, so that the
    point selection streams over time blocks instead of loading the outer product of the
    selected rows and columns at once.
    """
    lazy = [v for v in data.data_vars if data[v].chunks is None and not data[v].variable._in_memory]
    if lazy:
        data = data.chunk({"time": 366})
    cells = data.isel(lat=xr.DataArray(ilat, dims="cell"), lon=xr.DataArray(ilon, dims="cell"))
    cells = cells.transpose("time", "cell", ...).compute()
    return cells


def _static_layer(static: xr.Dataset, name: str, layer: int, path: str | None) -> np.ndarray:
    var = static[name]
    if "layer" not in var.dims:
        raise InputError(path, f"variable {name!r}", "expected dims (layer, lat, lon)")
    try:
        grid = var.sel(layer=layer)
    except KeyError:
        raise InputError(
            path, f"variable {name!r}", f"no layer {layer}; expected layer coordinate 1...5"
        ) from None
    return np.asarray(grid.transpose("lat", "lon").values, dtype=np.float64)


def _categorical(values: np.ndarray, known: tuple[str, ...]) -> pd.Categorical:
    """Categorical with the catalog ids as categories (in catalog order), plus any others."""
    values = np.asarray(values, dtype=object)
    present = [v for v in pd.unique(values) if isinstance(v, str)]
    extra = sorted(v for v in present if v not in known)
    return pd.Categorical(values, categories=list(known) + extra)


__all__ = [
    "GROUP_SOURCES",
    "STATION_TABLE_RELPATH",
    "TABLE_UNITS",
    "build_station_table",
    "build_station_table_from_station_features",
    "climate_at_cells",
    "nearest_cell_index",
    "read_station_table",
    "station_table_path",
    "write_station_table",
]
