"""ERA5 / ERA-Interim netCDF, as distributed, into the canonical daily climate dataset.

Accepted layouts
----------------
* One file or many (a list, a glob pattern or a folder), joined along time. Variables may sit
  together in each file (one file per year) or apart (one file per variable); every variable
  must cover the same time steps.
* Time dimension ``time`` or ``valid_time``; ``latitude``/``longitude`` or ``lat``/``lon``;
  latitude descending or ascending; longitude 0-360 or -180..180. ``expver`` (ERA5T) is merged.
* Variables by ERA5 short name (or the long CDS name): ``tp`` (m), ``t2m`` and ``d2m`` (K),
  ``ssr`` (J m-2), ``si10`` or ``u10`` + ``v10`` (m s-1), ``tcc`` (0-1). Units are read from
  the ``units`` attribute (the ERA5 units are assumed where it is absent) and converted once.

Time steps
----------
* Daily input: ``tp`` and ``ssr`` are daily totals; the other variables daily means. Time stamps
  are moved to midnight of their day.
* Hourly input (ERA5): ``tp`` and ``ssr`` are accumulations over the hour *ending* at the time
  stamp, so the daily total of day D sums the steps stamped D 01:00 ... D+1 00:00; ``t2m``,
  ``d2m``, wind and ``tcc`` are averaged over the steps stamped D 00:00 ... D 23:00 (wind speed
  is averaged hourly, not computed from mean components). Only days complete for every
  variable are kept, so the first and last day of a series may be trimmed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import reduce
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import xarray as xr

from cropsm.errors import InputError
from cropsm.io import open_netcdf, resolve_paths, standardize_grid
from cropsm.io.units import (
    check_temperature_units,
    convert,
    first_out_of_range,
    normalize_units,
    units_dimension,
)

CANONICAL_VARIABLES: dict[str, tuple[str, str]] = {
    "precipitation": ("mm d-1", "daily total precipitation"),
    "air_temperature": ("degC", "daily mean 2-m air temperature"),
    "dewpoint_temperature": ("degC", "daily mean 2-m dewpoint temperature"),
    "net_solar_radiation": ("MJ m-2 d-1", "daily surface net solar (shortwave) radiation"),
    "wind_speed": ("m s-1", "daily mean 10-m wind speed"),
    "cloud_cover": ("1", "daily mean total cloud cover"),
}
"""Canonical variable name → (units, long_name), in the order of the contracts."""

PHYSICAL_RANGE: dict[str, tuple[float, float]] = {
    "precipitation": (0.0, 1500.0),
    "air_temperature": (-90.0, 60.0),
    "dewpoint_temperature": (-100.0, 50.0),
    "net_solar_radiation": (0.0, 50.0),
    "wind_speed": (0.0, 50.0),
    "cloud_cover": (0.0, 1.0),
}
"""Physical range of each canonical daily variable, in its canonical units."""

# Small negative values from packing (ERA5 accumulations) and rounding are clipped, not errors.
_TOLERANCE = {"precipitation": 0.01, "net_solar_radiation": 0.01, "cloud_cover": 0.001}


@dataclass(frozen=True)
class _Source:
    names: tuple[str, ...]
    description: str
    units: str


_SOURCES: dict[str, _Source] = {
    "tp": _Source(("tp", "total_precipitation"), "total precipitation", "m"),
    "t2m": _Source(("t2m", "2t", "2m_temperature", "VAR_2T"), "2-m temperature", "K"),
    "d2m": _Source(
        ("d2m", "2d", "2m_dewpoint_temperature", "VAR_2D"), "2-m dewpoint temperature", "K"
    ),
    "ssr": _Source(("ssr", "surface_net_solar_radiation"), "surface net solar radiation", "J m-2"),
    "si10": _Source(("si10", "10si", "10m_wind_speed"), "10-m wind speed", "m s-1"),
    "u10": _Source(("u10", "10u", "10m_u_component_of_wind", "VAR_10U"), "10-m u-wind", "m s-1"),
    "v10": _Source(("v10", "10v", "10m_v_component_of_wind", "VAR_10V"), "10-m v-wind", "m s-1"),
    "tcc": _Source(("tcc", "total_cloud_cover"), "total cloud cover", "1"),
}

CANONICAL_SOURCES: dict[str, tuple[str, ...]] = {
    "precipitation": ("tp",),
    "air_temperature": ("t2m",),
    "dewpoint_temperature": ("d2m",),
    "net_solar_radiation": ("ssr",),
    "wind_speed": ("si10", "u10", "v10"),
    "cloud_cover": ("tcc",),
}
"""Canonical variable -> ERA5 short names it is made from (wind: ``si10`` or ``u10`` + ``v10``)."""

_HOUR = pd.Timedelta(hours=1)
_DAY = pd.Timedelta(days=1)


@dataclass(frozen=True)
class _Piece:
    """One variable from one file: its data on the canonical grid and its time stamps."""

    path: Path
    name: str
    data: xr.DataArray
    times: pd.DatetimeIndex


@dataclass(frozen=True)
class _Series:
    """One variable joined over all files, with the time span each file contributed."""

    short: str
    name: str
    data: xr.DataArray
    spans: tuple[tuple[pd.Timestamp, pd.Timestamp, Path], ...]
    units: str | None

    def file_at(self, time: pd.Timestamp) -> Path:
        """The file that holds a time (or the day that starts at it)."""
        for first, last, path in self.spans:
            if first.floor("D") <= time <= last:
                return path
        return self.spans[-1][2]


def _fmt(time: pd.Timestamp) -> str:
    time = pd.Timestamp(time)
    return f"{time:%Y-%m-%d}" if time == time.normalize() else f"{time:%Y-%m-%d %H:%M}"


def _standard_time(ds: xr.Dataset, path: Path) -> xr.Dataset:
    """Rename the time dimension to ``time``, merge ``expver``, drop auxiliary coordinates."""
    if "time" not in ds.dims and "valid_time" in ds.dims:
        ds = ds.drop_vars("time", errors="ignore").rename({"valid_time": "time"})
    if "time" not in ds.dims:
        raise InputError(
            path,
            "dimension 'time'",
            f"missing; found dimensions {sorted(map(str, ds.dims))}; expected 'time' or "
            "'valid_time'",
        )
    if "expver" in ds.dims:
        parts = [ds.isel(expver=i, drop=True) for i in range(ds.sizes["expver"])]
        ds = reduce(lambda a, b: a.combine_first(b), parts)
    keep = {"time", "lat", "lon", "latitude", "longitude"}
    ds = ds.drop_vars([c for c in ds.coords if c not in keep and c not in ds.dims])
    if not np.issubdtype(ds["time"].dtype, np.datetime64):
        raise InputError(
            path,
            "coordinate 'time'",
            f"could not be decoded to dates (dtype {ds['time'].dtype}); expected CF time units "
            "such as 'hours since 1900-01-01' on the standard calendar",
        )
    return ds


def _pieces_of_file(path: Path) -> tuple[dict[str, _Piece], list[str]]:
    """The climate variables one file holds (by short name), and all its variable names."""
    ds = standardize_grid(_standard_time(open_netcdf(path), path), path)
    found = [str(v) for v in ds.data_vars]
    pieces: dict[str, _Piece] = {}
    for short, source in _SOURCES.items():
        name = next((n for n in source.names if n in ds.data_vars), None)
        if name is None:
            continue
        da = ds[name]
        extra = [d for d in da.dims if d not in ("time", "lat", "lon")]
        for dim in extra:
            if da.sizes[dim] != 1:
                raise InputError(
                    path,
                    f"variable '{name}'",
                    f"has an extra dimension '{dim}' of size {da.sizes[dim]}; expected dims "
                    "(time, latitude, longitude)",
                )
        da = da.isel({d: 0 for d in extra}, drop=True)
        if set(da.dims) != {"time", "lat", "lon"}:
            raise InputError(
                path,
                f"variable '{name}'",
                f"has dims {da.dims}; expected (time, latitude, longitude)",
            )
        da = da.transpose("time", "lat", "lon")
        times = pd.DatetimeIndex(da["time"].values)
        if not times.is_monotonic_increasing:
            da = da.sortby("time")
            times = pd.DatetimeIndex(da["time"].values)
        if len(times) == 0:
            raise InputError(path, f"variable '{name}'", "holds no time steps; expected data")
        if times.has_duplicates:
            twice = times[times.duplicated()][0]
            raise InputError(
                path, "coordinate 'time'", f"holds {_fmt(twice)} twice; expected each step once"
            )
        pieces[short] = _Piece(path, name, da, times)
    return pieces, found


def _missing_error(
    shorts: tuple[str, ...], paths: list[Path], found: dict[Path, list[str]]
) -> InputError:
    """The error for a climate variable found in none of the files."""
    names = " or ".join("+".join(f"'{s}'" for s in short.split("+")) for short in shorts)
    description = _SOURCES[shorts[0].split("+")[0]].description
    if "si10" in shorts:
        description = "10-m wind speed, or its u and v components"
    all_found = sorted({v for names_ in found.values() for v in names_})
    where_files = (
        f"not in any of the {len(paths)} files given ({paths[0].name} ... {paths[-1].name})"
        if len(paths) > 1
        else "not in the file"
    )
    units = _SOURCES[shorts[0].split("+")[0]].units
    return InputError(
        paths[0],
        f"variable {names} ({description})",
        f"{where_files}; found variables {', '.join(all_found) or 'none'}; expected ERA5 "
        f"{names} in {units}",
    )


def _join(short: str, pieces: list[_Piece]) -> _Series:
    """One variable's pieces sorted by time and concatenated; overlaps and grid changes fail."""
    pieces = sorted(pieces, key=lambda p: p.times[0])
    first = pieces[0]
    units = first.data.attrs.get("units")
    for piece in pieces[1:]:
        if not (
            piece.data.sizes["lat"] == first.data.sizes["lat"]
            and piece.data.sizes["lon"] == first.data.sizes["lon"]
            and np.allclose(piece.data["lat"], first.data["lat"], atol=1e-6)
            and np.allclose(piece.data["lon"], first.data["lon"], atol=1e-6)
        ):
            raise InputError(
                piece.path,
                f"variable '{piece.name}'",
                f"grid ({_grid_text(piece.data)}) differs from that of {first.path.name} "
                f"({_grid_text(first.data)}); expected every file on the same grid",
            )
        other = piece.data.attrs.get("units")
        if normalize_units(other) != normalize_units(units):
            raise InputError(
                piece.path,
                f"variable '{piece.name}'",
                f"units {other!r} differ from {units!r} in {first.path.name}; expected the same "
                "units in every file",
            )
    for before, after in zip(pieces, pieces[1:], strict=False):
        if after.times[0] <= before.times[-1]:
            raise InputError(
                after.path,
                "coordinate 'time'",
                f"{_fmt(after.times[0])} to {_fmt(min(after.times[-1], before.times[-1]))} "
                f"overlaps {before.path.name}; expected each time step in exactly one file",
            )
    arrays = [p.data.assign_coords(lat=first.data["lat"], lon=first.data["lon"]) for p in pieces]
    data = (
        arrays[0]
        if len(arrays) == 1
        else xr.concat(arrays, dim="time", coords="minimal", compat="override", join="override")
    )
    spans = tuple((p.times[0], p.times[-1], p.path) for p in pieces)
    return _Series(short, first.name, data, spans, units)


def _grid_text(data: xr.DataArray) -> str:
    """``20 lat 30 to 39.5 x 16 lon 110 to 117.5``: sizes and extents of a grid."""
    lat, lon = data["lat"].values, data["lon"].values
    return (
        f"{lat.size} lat {lat.min():g} to {lat.max():g} x {lon.size} lon "
        f"{lon.min():g} to {lon.max():g}"
    )


def _check_same_grid_and_times(series: dict[str, _Series], found: dict[Path, list[str]]) -> None:
    """Every variable must lie on one grid and cover the same time steps (naming the files that
    lack a variable when they do not)."""
    reference = next(iter(series.values()))
    ref_times = pd.DatetimeIndex(reference.data["time"].values)
    ref_lat, ref_lon = reference.data["lat"].values, reference.data["lon"].values
    for item in series.values():
        lat, lon = item.data["lat"].values, item.data["lon"].values
        if not (
            lat.shape == ref_lat.shape
            and lon.shape == ref_lon.shape
            and np.allclose(lat, ref_lat, atol=1e-6)
            and np.allclose(lon, ref_lon, atol=1e-6)
        ):
            raise InputError(
                item.spans[0][2],
                f"variable '{item.name}'",
                f"grid ({lat.size} lat {lat.min():g} to {lat.max():g} x {lon.size} lon "
                f"{lon.min():g} to {lon.max():g}) differs from that of '{reference.name}' in "
                f"{reference.spans[0][2].name} ({ref_lat.size} x {ref_lon.size}, lon "
                f"{ref_lon.min():g} to {ref_lon.max():g}); expected one grid for all variables",
            )
        times = pd.DatetimeIndex(item.data["time"].values)
        if times.equals(ref_times):
            continue
        holding = {span[2] for span in item.spans}
        lacking = [p.name for p in found if p not in holding]
        hint = f" (files without it: {', '.join(lacking[:3])})" if lacking else ""
        raise InputError(
            item.spans[0][2],
            f"variable '{item.name}'",
            f"covers {_fmt(times[0])} to {_fmt(times[-1])} ({len(times)} steps) but "
            f"'{reference.name}' covers {_fmt(ref_times[0])} to {_fmt(ref_times[-1])} "
            f"({len(ref_times)} steps){hint}; expected every variable over the same time steps",
        )


def _time_step(series: _Series) -> pd.Timedelta:
    """Daily or hourly step of the joined series; a gap names the first missing step."""
    times = pd.DatetimeIndex(series.data["time"].values)
    if len(times) < 2:
        return _DAY
    steps = times[1:] - times[:-1]
    step = steps.min()
    if step not in (_HOUR, _DAY):
        raise InputError(
            series.spans[0][2],
            "coordinate 'time'",
            f"time step of {step}; expected daily or hourly data",
        )
    gap = np.flatnonzero(steps != step)
    if gap.size:
        i = int(gap[0])
        kind = "day" if step == _DAY else "hour"
        missing = times[i] + step
        raise InputError(
            series.file_at(times[i]),
            "coordinate 'time'",
            f"no data for {_fmt(missing.floor('D') if step == _DAY else missing)} (first "
            f"missing {kind}; next step {_fmt(times[i + 1])}); expected consecutive "
            f"{'daily' if step == _DAY else 'hourly'} steps",
        )
    return step


def _where(series: _Series) -> str:
    return f"variable '{series.name}'"


def _amount_per_step(
    series: _Series, amount: str, rate: str, rate_times_second: str, step: pd.Timedelta
) -> xr.DataArray:
    """An accumulated variable as an amount per time step (in ``amount``), from an amount or a
    rate (converted to ``rate``, times the step in seconds gives ``rate_times_second``)."""
    units = series.units if series.units is not None else _SOURCES[series.short].units
    path = series.spans[0][2]
    dimension = units_dimension(units)
    if dimension == units_dimension(amount):
        return convert(series.data, units, amount, path=path, where=_where(series))
    if dimension == units_dimension(rate):
        per_second = convert(series.data, units, rate, path=path, where=_where(series))
        return convert(per_second * step.total_seconds(), rate_times_second, amount)
    raise InputError(
        path,
        _where(series),
        f"units {units!r}; expected an amount per time step such as {amount!r} or a rate such "
        f"as {rate!r}",
    )


def _state(series: _Series, target: str) -> xr.DataArray:
    units = series.units if series.units is not None else _SOURCES[series.short].units
    return convert(series.data, units, target, path=series.spans[0][2], where=_where(series))


def _check_temperatures(pieces: dict[str, list[_Piece]]) -> None:
    for short in ("t2m", "d2m"):
        for piece in pieces[short]:
            units = piece.data.attrs.get("units", _SOURCES[short].units)
            check_temperature_units(piece.data, units, piece.path, f"variable '{piece.name}'")


def _canonical_steps(
    series: dict[str, _Series], step: pd.Timedelta
) -> dict[str, tuple[xr.DataArray, bool, _Series]]:
    """Each canonical variable at the source time step, in canonical units (accumulations as
    amounts per step), with whether it is accumulated and the source series it comes from."""
    out: dict[str, tuple[xr.DataArray, bool, _Series]] = {}
    if "tp" in series:
        tp = series["tp"]
        out["precipitation"] = (_amount_per_step(tp, "mm", "mm s-1", "mm", step), True, tp)
    if "t2m" in series:
        out["air_temperature"] = (_state(series["t2m"], "degC"), False, series["t2m"])
    if "d2m" in series:
        out["dewpoint_temperature"] = (_state(series["d2m"], "degC"), False, series["d2m"])
    if "ssr" in series:
        ssr = series["ssr"]
        out["net_solar_radiation"] = (
            _amount_per_step(ssr, "MJ m-2", "W m-2", "J m-2", step),
            True,
            ssr,
        )
    if "si10" in series:
        out["wind_speed"] = (_state(series["si10"], "m s-1"), False, series["si10"])
    elif "u10" in series:
        speed = np.hypot(_state(series["u10"], "m s-1"), _state(series["v10"], "m s-1"))
        out["wind_speed"] = (speed, False, series["u10"])
    if "tcc" in series:
        out["cloud_cover"] = (_state(series["tcc"], "1"), False, series["tcc"])
    return out


def _daily(
    data: xr.DataArray, step: pd.Timedelta, accumulated: bool
) -> tuple[xr.DataArray, pd.DatetimeIndex]:
    """Daily values and their days.

    Daily input only moves its time stamps to midnight. Hourly input (regular, gap-checked) is
    cut to whole days and reduced in blocks of 24 steps: sums of the hours ending at D 01:00 ...
    D+1 00:00 for accumulations, means of D 00:00 ... D 23:00 otherwise.
    """
    times = pd.DatetimeIndex(data["time"].values)
    if step == _DAY:
        days = times.floor("D")
        return data.assign_coords(time=days.values), days
    starts = times - _HOUR if accumulated else times  # the start of each step's hour
    first_day = starts[0].ceil("D")
    n_days = max(0, (starts[-1] + _HOUR - first_day) // _DAY)
    offset = (first_day - starts[0]) // _HOUR
    days = pd.date_range(first_day, periods=n_days, freq="D")
    hours = data.isel(time=slice(offset, offset + 24 * n_days))
    blocks = hours.coarsen(time=24, boundary="exact")
    daily = blocks.reduce(np.sum if accumulated else np.mean)  # NaN in any hour gives NaN
    return daily.assign_coords(time=days.values), days


def _check_files_lacking(pieces: dict[str, list[_Piece]], used: tuple[str, ...]) -> None:
    """A file that lacks a variable which a file of the same kind holds is named.

    Files are of the same kind when they share a climate variable (e.g. yearly files with all
    variables). Files that share none (one file per variable, or ERA5's separate files of
    instantaneous and accumulated variables) may each lack the others' variables.
    """
    holds: dict[Path, dict[str, str]] = {}
    for short in used:
        for piece in pieces[short]:
            holds.setdefault(piece.path, {})[short] = piece.name
    for path, mine in holds.items():
        for short in used:
            if short in mine:
                continue
            peer = next(
                (
                    other
                    for other, theirs in holds.items()
                    if short in theirs and set(theirs) & set(mine)
                ),
                None,
            )
            if peer is None:
                continue
            source = _SOURCES[short]
            raise InputError(
                path,
                f"variable '{holds[peer][short]}' ({source.description})",
                f"not in this file, which holds {', '.join(sorted(mine.values()))}; expected "
                f"it here as in {peer.name} (files holding the same variables must all hold it)",
            )


def _missing_value_counts(
    pieces: dict[str, list[_Piece]], used: tuple[str, ...]
) -> list[tuple[_Piece, object]]:
    """Lazy count of missing (NaN or fill) values of every variable in every file."""
    return [(piece, piece.data.isnull().sum()) for short in used for piece in pieces[short]]


def _check_missing_values(counted: list[tuple[_Piece, int]]) -> str:
    """Raise when a variable is missing everywhere in a file; else describe the gaps.

    Returns
    -------
    str
        ``"'t2m' in era5_2001.nc: 24 of 8760 values"`` for each file and variable with gaps,
        joined by ``"; "`` (empty when there are none).
    """
    gaps = []
    for piece, n_missing in counted:
        size = int(piece.data.size)
        n_missing = int(n_missing)
        if size and n_missing == size:
            raise InputError(
                piece.path,
                f"variable '{piece.name}'",
                f"every value ({size}) is missing (NaN or _FillValue); expected data",
            )
        if n_missing:
            gaps.append(f"'{piece.name}' in {piece.path.name}: {n_missing} of {size} values")
    return "; ".join(gaps)


def _validate(
    dataset: xr.Dataset, series_of: dict[str, _Series], counts: list | None = None
) -> str:
    """Check physical ranges (one pass over the data, chunk by chunk) and, when ``counts``
    (:func:`_missing_value_counts`) are given, missing values in the same pass; returns the
    gaps of :func:`_check_missing_values`."""
    names = list(dataset.data_vars)
    counts = counts or []
    daily: dict[str, xr.DataArray] = {}  # per-day summaries for _check_plausible
    if {"air_temperature", "dewpoint_temperature"} <= set(names):
        excess = dataset["dewpoint_temperature"] - dataset["air_temperature"]
        daily["dew_above"] = (excess > DEWPOINT_EXCESS_K).sum(["lat", "lon"])
        daily["dew_cells"] = excess.count(["lat", "lon"])
    if "net_solar_radiation" in names:
        daily["solar_peak"] = dataset["net_solar_radiation"].max(["lat", "lon"])
    extremes, numbers, daily = dask.compute(
        [(dataset[n].min(), dataset[n].max()) for n in names], [c for _, c in counts], daily
    )
    pieces = [piece for piece, _ in counts]
    gaps = _check_missing_values(list(zip(pieces, numbers, strict=True)))
    for name, (low, high) in zip(names, extremes, strict=True):
        lo, hi = PHYSICAL_RANGE[name]
        tolerance = _TOLERANCE.get(name, 0.0)
        low, high = float(low), float(high)
        if not (low < lo - tolerance or high > hi + tolerance):
            continue
        found = first_out_of_range(dataset[name], lo - tolerance, hi + tolerance)
        if found is None:  # pragma: no cover - min/max and the search agree
            continue
        location, value = found
        series = series_of[name]
        day = pd.Timestamp(dataset["time"].values[0])
        for part in location.split(", "):
            if part.startswith("time="):
                day = pd.Timestamp(part[5:])
        units = CANONICAL_VARIABLES[name][0]
        unit_text = "" if units == "1" else f" {units}"
        raise InputError(
            series.file_at(day),
            f"variable '{series.name}'",
            f"daily {name} {value:.4g}{unit_text} at {location} is outside the physical range "
            f"{lo:g} to {hi:g}{unit_text}; check the units attribute ({series.units!r})",
        )
    _check_plausible(pd.DatetimeIndex(dataset["time"].values), series_of, daily)
    return gaps


DEWPOINT_EXCESS_K = 1.0
"""Daily mean dew point above the daily mean air temperature by more than this (K) is
impossible (every hourly dew point is at most the air temperature)."""

DEWPOINT_EXCESS_SHARE = 0.01
"""Share of cell-days above :data:`DEWPOINT_EXCESS_K` that is an error (rounding and
regridding leave a few)."""

NET_SOLAR_MIN_PEAK_MJ = 1.0
"""The largest daily net solar radiation of a record of a month or more lies far above this
(MJ m-2 d-1; about 10-30 where crops grow); below it the values are in other units."""


def _check_plausible(days: pd.DatetimeIndex, series_of: dict, daily: dict) -> None:
    """Values within their physical ranges that still cannot be right as a whole, per file:

    * a dew point above the air temperature on more than 1 % of a file's cell-days (e.g. the
      two variables swapped, or the dew point in other units);
    * net solar radiation whose largest daily value in a file of 28 days or more is below
      1 MJ m-2 (e.g. W m-2 values labelled J m-2: a daily mean of ~200 W m-2 read as a daily
      sum in J m-2 is 0.0002 MJ m-2).

    ``daily`` holds per-day summaries over the grid: ``dew_above`` (cell-days with the dew
    point more than :data:`DEWPOINT_EXCESS_K` above the air temperature) and ``dew_cells``,
    ``solar_peak`` (the day's largest net solar radiation, MJ m-2).
    """

    def in_file(first: pd.Timestamp, last: pd.Timestamp) -> tuple[np.ndarray, str]:
        rows = (days >= first.floor("D")) & (days <= last)
        return rows, f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"

    if "dew_above" in daily:
        series = series_of["dewpoint_temperature"]
        for first, last, path in series.spans:
            rows, span = in_file(first, last)
            above = int(np.asarray(daily["dew_above"])[rows].sum())
            total = int(np.asarray(daily["dew_cells"])[rows].sum())
            if total and above > DEWPOINT_EXCESS_SHARE * total:
                raise InputError(
                    path,
                    f"variable '{series.name}'",
                    f"the daily dew point exceeds the air temperature by more than "
                    f"{DEWPOINT_EXCESS_K:g} K on {above} of {total} cell-days of {span}; "
                    "expected a dew point at or below the air temperature: check that the dew "
                    "point and air temperature are not swapped, and their units attributes",
                )
    if "solar_peak" in daily:
        series = series_of["net_solar_radiation"]
        for first, last, path in series.spans:
            rows, span = in_file(first, last)
            if rows.sum() < 28:
                continue
            peak = float(np.nanmax(np.asarray(daily["solar_peak"], dtype=float)[rows]))
            if np.isfinite(peak) and peak < NET_SOLAR_MIN_PEAK_MJ:
                raise InputError(
                    path,
                    f"variable '{series.name}'",
                    f"the largest daily net solar radiation of {span} is {peak:.4g} MJ m-2, "
                    "implausibly small (expected a peak of about 10-30 MJ m-2 per day); check "
                    f"the units attribute ({series.units!r}): values in W m-2 labelled J m-2?",
                )


def _clip_noise(dataset: xr.Dataset) -> xr.Dataset:
    """Clip the tolerated rounding noise: tiny negative accumulations, cloud cover 1.0001."""
    clipped = {
        name: dataset[name]
        .clip(PHYSICAL_RANGE[name][0], 1.0 if name == "cloud_cover" else None)
        .assign_attrs(dataset[name].attrs)
        for name in _TOLERANCE
        if name in dataset
    }
    return dataset.assign(clipped)


def _files_signature(paths: Iterable[Path]) -> str:
    """SHA-256 (hex, 16 characters) of the files' absolute paths, sizes and modification times:
    equal for two reads of the same, unchanged files (what may be computed once from them)."""
    h = hashlib.sha256()
    for path in sorted(Path(p).resolve() for p in paths):
        stat = path.stat()
        h.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def read_climate(
    paths_or_glob: str | Path | Iterable[str | Path],
    *,
    bbox: tuple[float, float, float, float] | None = None,
    validate: bool = True,
    optional: Collection[str] = (),
) -> xr.Dataset:
    """Read ERA5 / ERA-Interim netCDF files into the canonical daily climate dataset.

    Parameters
    ----------
    paths_or_glob
        A file, a glob pattern (``"climate/era5_*.nc"``), a folder or a list of these.
    bbox
        Optional ``(lat_min, lat_max, lon_min, lon_max)`` in degrees (lon -180..180): keep only
        the cells whose centres lie inside, before anything is computed.
    validate
        Check physical ranges and missing values (one pass over the data, chunk by chunk) and
        the temperature units (a small sample of each file). Without it nothing is read here
        (later stages read files the ``inputs`` stage checked; the sample alone took 21 s per
        read of the paper preset's 34 years).
    optional
        Canonical variables the run can do without (those of feature groups switched off,
        e.g. ``wind_speed`` with ``groups_off = ["wind"]``): read when present, left out of
        the result when absent.

    Returns
    -------
    xarray.Dataset
        Variables of :data:`CANONICAL_VARIABLES` (float32, with ``units`` and ``long_name``),
        dims ``(time, lat, lon)``, daily ``time`` at midnight without gaps, ``lat``/``lon``
        ascending with lon in -180..180. Backed by dask arrays: call ``.load()`` to compute.
        With ``validate``, ``attrs["missing_values"]`` counts the values missing per file and
        variable (empty when none are).

    Raises
    ------
    InputError
        When a file cannot be read, a variable is missing (naming it, the files and what was
        found, or the one file that lacks it), files overlap in time or differ in grid or
        units, a day (or hour) is missing, temperatures are declared in the wrong unit, a value
        is outside the physical range, or a variable is missing everywhere in a file.
    """
    unknown = sorted(set(optional) - set(CANONICAL_VARIABLES))
    if unknown:
        raise ValueError(f"optional: unknown canonical variable(s) {unknown}")
    optional_shorts = {s for name in optional for s in CANONICAL_SOURCES[name]}
    paths = resolve_paths(paths_or_glob, "climate")
    pieces: dict[str, list[_Piece]] = {short: [] for short in _SOURCES}
    found: dict[Path, list[str]] = {}
    for path in paths:
        file_pieces, found[path] = _pieces_of_file(path)
        for short, piece in file_pieces.items():
            pieces[short].append(piece)

    present = []
    for short in ("tp", "t2m", "d2m", "ssr", "tcc"):
        if pieces[short]:
            present.append(short)
        elif short not in optional_shorts:
            raise _missing_error((short,), paths, found)
    wind = ("si10",) if pieces["si10"] else ("u10", "v10")
    if all(pieces[s] for s in wind):
        present += wind
    elif "si10" not in optional_shorts:
        raise _missing_error(("si10", "u10+v10"), paths, found)
    if not present:
        raise _missing_error(("tp",), paths, found)
    if validate:
        _check_temperatures(pieces)

    used = tuple(present)
    _check_files_lacking(pieces, used)
    series = {short: _join(short, pieces[short]) for short in used}
    _check_same_grid_and_times(series, found)
    step = _time_step(next(iter(series.values())))

    if bbox is not None:
        lat_min, lat_max, lon_min, lon_max = bbox
        for short, item in series.items():
            data = item.data.sel(lat=slice(lat_min, lat_max), lon=slice(lon_min, lon_max))
            if data.sizes["lat"] == 0 or data.sizes["lon"] == 0:
                raise InputError(
                    item.spans[0][2], "grid", f"no cell centre inside the bounding box {bbox}"
                )
            series[short] = _Series(item.short, item.name, data, item.spans, item.units)

    canonical = _canonical_steps(series, step)
    daily: dict[str, xr.DataArray] = {}
    complete: list[pd.DatetimeIndex] = []
    for name, (data, accumulated, _) in canonical.items():
        daily[name], days = _daily(data, step, accumulated)
        complete.append(days)
    days = reduce(lambda a, b: a.intersection(b), complete).sort_values()
    if len(days) == 0:
        raise InputError(
            paths[0], "coordinate 'time'", "holds no complete day; expected 24 hourly steps a day"
        )
    days = pd.DatetimeIndex(days.values.astype("datetime64[ns]"))

    out = xr.Dataset(
        {
            name: xr.DataArray(
                daily[name].sel(time=days).astype(np.float32).data,
                coords={"time": days.values, "lat": daily[name]["lat"], "lon": daily[name]["lon"]},
                dims=("time", "lat", "lon"),
                attrs={"units": units, "long_name": long_name},
            )
            for name, (units, long_name) in CANONICAL_VARIABLES.items()
            if name in daily
        }
    )
    out = out.assign_coords(time=("time", days.values, {"long_name": "day"}))
    out.attrs = {
        "title": "daily climate (cropsm canonical form)",
        "source_files": ", ".join(sorted(p.name for p in paths)),
        "source_signature": _files_signature(paths),
        "time_step_of_source": "hourly" if step == _HOUR else "daily",
    }
    if validate:
        sources = {name: source for name, (_, _, source) in canonical.items()}
        gaps = _validate(out, sources, _missing_value_counts(pieces, used))
        out.attrs["missing_values"] = gaps
    return _clip_noise(out)
