"""Readers: users' files into the canonical in-memory forms of ``docs/contracts.md``.

Every reader converts and validates once, at the edge; bad input raises
:class:`cropsm.errors.InputError`, one line that names the file, the row or variable, and what
was expected.

Public API (imported lazily, so ``import cropsm.io`` stays cheap):

* :func:`cropsm.io.stations.read_stations`, :func:`cropsm.io.stations.check_stations_in_grid`,
  :class:`cropsm.io.stations.StationData`
* :func:`cropsm.io.climate.read_climate`
* :func:`cropsm.io.static.read_static`
* :func:`cropsm.io.satellite.read_cci`

This module also holds what the gridded readers share: finding the files
(:func:`resolve_paths`), opening them (:func:`open_netcdf`) and putting a grid into the
canonical orientation (:func:`standardize_grid`, :func:`grid_step`).
"""

from __future__ import annotations

import glob
import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from cropsm.errors import InputError

_PUBLIC = {
    "StationData": "stations",
    "read_stations": "stations",
    "check_stations_in_grid": "stations",
    "read_climate": "climate",
    "read_static": "static",
    "read_cci": "satellite",
}

__all__ = [*_PUBLIC, "grid_step", "open_netcdf", "resolve_paths", "standardize_grid"]

_LAT_NAMES = ("lat", "latitude", "Latitude", "LAT", "LATITUDE")
_LON_NAMES = ("lon", "longitude", "Longitude", "LON", "LONGITUDE")
_AXIS_WORDS = {"lat": "latitudes", "lon": "longitudes"}
_GLOB_CHARS = "*?["


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        module = importlib.import_module(f"{__name__}.{_PUBLIC[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def resolve_paths(
    paths_or_glob: str | Path | Iterable[str | Path],
    what: str,
    suffixes: tuple[str, ...] = (".nc", ".nc4", ".netcdf"),
) -> list[Path]:
    """The files a reader was given: one path, a glob pattern, a folder, or a list of these.

    Parameters
    ----------
    paths_or_glob
        A file, a glob pattern (``"era5_*.nc"``), a folder (all files in it ending in one of
        ``suffixes``) or a list of any of these.
    what
        What the files hold (``"climate"``), for the errors.
    suffixes
        File endings taken from a folder.

    Returns
    -------
    list of Path
        The files, in the order given (a pattern's or folder's matches sorted by name).

    Raises
    ------
    InputError
        When nothing is given, a pattern or folder matches nothing, a file does not exist or
        the same file is given twice.
    """
    items = [paths_or_glob] if isinstance(paths_or_glob, str | Path) else list(paths_or_glob)
    if not items:
        raise InputError(None, None, f"no {what} files given; expected a file, folder or glob")
    out: list[Path] = []
    for item in items:
        text = str(item)
        path = Path(text)
        if any(ch in text for ch in _GLOB_CHARS) and not path.exists():
            matches = sorted(glob.glob(text))
            if not matches:
                raise InputError(text, None, f"no {what} files match this pattern")
            out.extend(Path(m) for m in matches)
        elif path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.suffix.lower() in suffixes)
            if not matches:
                raise InputError(
                    path, None, f"folder holds no {what} files; expected files ending {suffixes}"
                )
            out.extend(matches)
        elif not path.exists():
            raise InputError(path, None, f"{what} file not found")
        else:
            out.append(path)
    seen: set[Path] = set()
    for path in out:
        key = path.resolve()
        if key in seen:
            raise InputError(path, None, f"{what} file given twice; expected each file once")
        seen.add(key)
    return out


NETCDF_CHUNK_CACHE_BYTES = 1024 * 1024
"""HDF5 chunk cache per variable of the netCDF files a cropsm process opens
(:func:`open_netcdf` and the product's block tasks call :func:`limit_netcdf_chunk_cache`).

netCDF-C's default (64 MiB per variable, 1,000 chunks) keeps the whole decompressed content of
a year of ERA5 daily fields at 0.25 deg (~30 MiB per variable) cached for as long as the file
stays open in xarray's file cache (up to 128 files). Measured on the paper-preset virtual China
(33 yearly files, 7 variables): building the station table of 200 cells took 10.1 GB peak RSS
with the default and 4.0 GB with 4 MiB; a product worker grew by ~210 MB per yearly file with
the default (4.5 -> 8 GB over a run) and by 56 MB per one-year block with 4 MiB. cropsm reads
each chunk once per dask chunk or product block, so a cache of about two chunks costs nothing.
"""


def limit_netcdf_chunk_cache(bytes_per_variable: int = NETCDF_CHUNK_CACHE_BYTES) -> None:
    """Set the HDF5 chunk cache of netCDF files opened from now on in this process.

    Files already open keep their cache. Without ``netCDF4`` installed this does nothing.
    """
    try:
        import netCDF4
    except ImportError:  # pragma: no cover - h5netcdf-only installs
        return
    size, elements, preemption = netCDF4.get_chunk_cache()
    if size != bytes_per_variable:
        netCDF4.set_chunk_cache(int(bytes_per_variable), elements, preemption)


def open_netcdf(path: Path, chunks: dict | str | None = None) -> Any:
    """Open a netCDF file lazily (dask chunks), turning read failures into an InputError.

    Parameters
    ----------
    path
        The file.
    chunks
        Passed to :func:`xarray.open_dataset`; the default ``"auto"`` takes multiples of the
        file's own chunks of a sensible size.

    Returns
    -------
    xarray.Dataset
        Decoded (``_FillValue`` → NaN, ``scale_factor``/``add_offset`` applied, times as
        datetimes), backed by dask arrays.
    """
    import xarray as xr

    limit_netcdf_chunk_cache()
    try:
        return xr.open_dataset(path, chunks="auto" if chunks is None else chunks)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the user's file
        text = " ".join(str(exc).split())
        if "did not find a match" in text or "Unknown file format" in text:
            reason = "not a netCDF file"
        else:
            reason = f"{type(exc).__name__}: {text.split('. ')[0][:160]}"
        raise InputError(
            path, None, f"cannot be read as netCDF ({reason}); expected a netCDF-3 or netCDF-4 file"
        ) from None


def grid_step(values: np.ndarray, path: str | Path | None, name: str) -> float:
    """The constant spacing of an ascending coordinate, or an InputError if irregular.

    Returns NaN for a coordinate of one value.
    """
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return float("nan")
    steps = np.diff(values)
    step = float(np.median(steps))
    irregular = np.abs(steps - step) > 1e-3 * abs(step) + 1e-9
    if step <= 0 or irregular.any():
        i = int(np.argmax(irregular)) if irregular.any() else 0
        raise InputError(
            path,
            f"coordinate '{name}'",
            f"not a regular grid: step {steps[i]:g} between {values[i]:g} and {values[i + 1]:g} "
            f"differs from the usual step {step:g}; expected evenly spaced cell centres",
        )
    return step


def standardize_grid(obj: Any, path: str | Path | None) -> Any:
    """A Dataset or DataArray on the canonical grid orientation of the contracts.

    Renames ``latitude``/``longitude`` to ``lat``/``lon``, wraps longitudes 0-360 into
    -180..180, and sorts both coordinates ascending (a descending latitude is reversed lazily).

    Raises
    ------
    InputError
        When there is no 1-D latitude or longitude dimension, a coordinate is out of range or
        holds the same value twice.
    """
    renames = {}
    for canonical, names in (("lat", _LAT_NAMES), ("lon", _LON_NAMES)):
        if canonical in obj.dims:
            continue
        found = [n for n in names if n in obj.dims]
        if found:
            renames[found[0]] = canonical
    obj = obj.rename(renames)
    for name, names in (("lat", _LAT_NAMES), ("lon", _LON_NAMES)):
        if name not in obj.dims:
            raise InputError(
                path,
                f"dimension '{name}'",
                f"missing; found dimensions {sorted(map(str, obj.dims))}; expected one of "
                f"{list(names[:2])} as a 1-D dimension with coordinates",
            )
        if name not in obj.coords:
            raise InputError(
                path,
                f"dimension '{name}'",
                "has no coordinate values; expected a 1-D coordinate variable of that name "
                f"(one of {list(names[:2])}) holding the grid's {_AXIS_WORDS[name]}",
            )
    lat = np.asarray(obj["lat"].values, dtype=float)
    lon = np.asarray(obj["lon"].values, dtype=float)
    for name, values, lo, hi in (("lat", lat, -90.0, 90.0), ("lon", lon, -180.0, 360.0)):
        bad = ~np.isfinite(values) | (values < lo) | (values > hi)
        if bad.any():
            raise InputError(
                path,
                f"coordinate '{name}'",
                f"value {values[np.argmax(bad)]:g} is outside {lo:g} to {hi:g} degrees",
            )
    if lon.size and lon.max() > 180.0:
        lon = ((lon + 180.0) % 360.0) - 180.0
        obj = obj.assign_coords(lon=("lon", lon))
    for name, values in (("lat", lat), ("lon", lon)):
        unique, counts = np.unique(values, return_counts=True)
        if (counts > 1).any():
            raise InputError(
                path,
                f"coordinate '{name}'",
                f"holds {unique[counts > 1][0]:g} twice; expected distinct cell centres",
            )
        if values.size > 1 and np.all(np.diff(values) < 0):
            obj = obj.isel({name: slice(None, None, -1)})
        elif values.size > 1 and not np.all(np.diff(values) > 0):
            obj = obj.sortby(name)
    return obj.assign_coords(
        lat=(
            "lat",
            np.asarray(obj["lat"].values, dtype=np.float64),
            {"units": "degrees_north", "standard_name": "latitude"},
        ),
        lon=(
            "lon",
            np.asarray(obj["lon"].values, dtype=np.float64),
            {"units": "degrees_east", "standard_name": "longitude"},
        ),
    )
