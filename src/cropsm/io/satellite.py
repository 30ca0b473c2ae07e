"""ESA CCI SM (COMBINED/ACTIVE/PASSIVE) daily netCDF into one satellite soil-moisture array.

ESA distributes one file per day (``ESACCI-SOILMOISTURE-L3S-SSMV-COMBINED-YYYYMMDD000000-
fv0X.Y.nc``) with ``sm`` (m3 m-3, ``_FillValue`` -9999) and ``flag`` (0 = no flag), dims
``(time, lat, lon)`` with latitude descending; multi-day files in the same layout are read too.
Flagged cells (``flag != 0``) become NaN; a file without ``flag`` is taken as unflagged. Days
without a file are simply absent (satellite coverage has gaps; no gap check).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import xarray as xr

from cropsm.errors import InputError
from cropsm.io import open_netcdf, resolve_paths, standardize_grid
from cropsm.io.units import convert, first_out_of_range

NAME = "satellite_sm"
UNITS = "m3 m-3"
PHYSICAL_RANGE = (0.0, 1.0)
"""Range of ESA CCI SM volumetric water content (its ``valid_range``), m3 m-3."""


def _read_one(path: Path) -> tuple[xr.DataArray, pd.DatetimeIndex]:
    """One file's soil moisture, flagged cells masked, on the canonical grid, times at midnight."""
    ds = open_netcdf(path)
    if "sm" not in ds.data_vars:
        raise InputError(
            path,
            "variable 'sm'",
            f"missing; found {', '.join(map(str, ds.data_vars)) or 'no variables'}; expected "
            "ESA CCI SM 'sm' (m3 m-3) and 'flag'",
        )
    if "time" not in ds["sm"].dims:
        raise InputError(
            path, "variable 'sm'", f"has dims {ds['sm'].dims}; expected (time, lat, lon)"
        )
    if not np.issubdtype(ds["time"].dtype, np.datetime64):
        raise InputError(
            path,
            "coordinate 'time'",
            f"could not be decoded to dates (dtype {ds['time'].dtype}); expected CF time units",
        )
    ds = standardize_grid(ds, path)
    sm = ds["sm"]
    if set(sm.dims) != {"time", "lat", "lon"}:
        raise InputError(path, "variable 'sm'", f"has dims {sm.dims}; expected (time, lat, lon)")
    sm = convert(sm, sm.attrs.get("units", UNITS), UNITS, path=path, where="variable 'sm'")
    if "flag" in ds.data_vars:
        flag = ds["flag"]
        if set(flag.dims) != set(sm.dims):
            raise InputError(
                path, "variable 'flag'", f"has dims {flag.dims}; expected those of 'sm' {sm.dims}"
            )
        sm = sm.where(flag.fillna(0) == 0)
    sm = sm.transpose("time", "lat", "lon")
    days = pd.DatetimeIndex(sm["time"].values).floor("D")
    if len(days) == 0:
        raise InputError(path, "variable 'sm'", "holds no time steps; expected daily fields")
    if days.has_duplicates:
        twice = days[days.duplicated()][0]
        raise InputError(
            path, "coordinate 'time'", f"holds {twice:%Y-%m-%d} twice; expected one field a day"
        )
    sm = sm.assign_coords(time=days.values.astype("datetime64[ns]"))
    return sm.drop_vars([c for c in sm.coords if c not in ("time", "lat", "lon")]), days


def read_cci(
    paths_or_glob: str | Path | Iterable[str | Path],
    *,
    bbox: tuple[float, float, float, float] | None = None,
    validate: bool = True,
) -> xr.DataArray:
    """Read ESA CCI SM netCDF files into one daily satellite soil-moisture array.

    Parameters
    ----------
    paths_or_glob
        A file, a glob pattern (``"satellite/ESACCI-SOILMOISTURE-*.nc"``), a folder or a list.
    bbox
        Optional ``(lat_min, lat_max, lon_min, lon_max)`` (degrees, lon -180..180): keep only
        the cells whose centres lie inside.
    validate
        Check the values lie in 0-1 m3 m-3 (one pass over the data, chunk by chunk).

    Returns
    -------
    xarray.DataArray
        ``satellite_sm`` (m3 m-3, float32), dims ``(time, lat, lon)``, time at midnight sorted
        ascending, ``lat``/``lon`` ascending; NaN where missing or flagged. Backed by dask.

    Raises
    ------
    InputError
        When a file cannot be read, has no ``sm`` variable, files repeat a day or differ in grid,
        units do not convert, or a value lies outside 0-1 m3 m-3.
    """
    paths = resolve_paths(paths_or_glob, "ESA CCI soil moisture")
    parts = [(path, *_read_one(path)) for path in paths]
    parts.sort(key=lambda part: part[2][0])
    first_path, first, _ = parts[0]
    seen: dict[pd.Timestamp, Path] = {}
    for path, sm, days in parts:
        if (
            sm.sizes["lat"] != first.sizes["lat"]
            or sm.sizes["lon"] != first.sizes["lon"]
            or not (
                np.allclose(sm["lat"], first["lat"], atol=1e-6)
                and np.allclose(sm["lon"], first["lon"], atol=1e-6)
            )
        ):
            raise InputError(
                path,
                "variable 'sm'",
                f"grid ({sm.sizes['lat']} lat x {sm.sizes['lon']} lon) differs from that of "
                f"{first_path.name} ({first.sizes['lat']} x {first.sizes['lon']}); expected "
                "every file on the same grid",
            )
        for day in days:
            if day in seen:
                raise InputError(
                    path,
                    "coordinate 'time'",
                    f"{day:%Y-%m-%d} is also in {seen[day].name}; expected each day in one file",
                )
            seen[day] = path
    arrays = [sm.assign_coords(lat=first["lat"], lon=first["lon"]) for _, sm, _ in parts]
    data = (
        arrays[0]
        if len(arrays) == 1
        else xr.concat(arrays, dim="time", coords="minimal", compat="override", join="override")
    )
    if bbox is not None:
        lat_min, lat_max, lon_min, lon_max = bbox
        data = data.sel(lat=slice(lat_min, lat_max), lon=slice(lon_min, lon_max))
        if data.sizes["lat"] == 0 or data.sizes["lon"] == 0:
            raise InputError(first_path, "grid", f"no cell centre inside the bounding box {bbox}")
    data = data.astype(np.float32)
    if validate:
        low, high = dask.compute(data.min(), data.max())
        lo, hi = PHYSICAL_RANGE
        if float(low) < lo or float(high) > hi:
            location, value = first_out_of_range(data, lo, hi)
            day = pd.Timestamp(location.split(",")[0].removeprefix("time="))
            raise InputError(
                seen.get(day, first_path),
                "variable 'sm'",
                f"value {value:.4g} at {location} is outside the physical range {lo:g} to "
                f"{hi:g} {UNITS}; check the units attribute",
            )
    data.name = NAME
    data.attrs = {
        "units": UNITS,
        "long_name": "ESA CCI SM volumetric soil moisture (flagged values removed)",
        "source_files": f"{len(paths)} files, {paths[0].name} ...",
    }
    return data
