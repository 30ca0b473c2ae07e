"""Raster layers as published: GeoTIFF, ESRI ASCII grids (MIRCA2000) and plain-text grids (ETOPO).

Every reader returns an ``xarray.DataArray`` on the canonical grid orientation of
``docs/contracts.md``: dims ``(lat, lon)``, both coordinates ascending cell centres in degrees,
longitude in -180...180, no-data cells as NaN, and ``units`` / ``long_name`` attributes.

* :func:`read_geotiff` - a GeoTIFF band through ``rioxarray`` (geographic CRS only).
* :func:`read_esri_ascii` - an ESRI ASCII grid (``.asc`` or ``.asc.gz``), the format of the
  MIRCA2000 crop-area grids (Portmann et al. 2010): a header of ``ncols``, ``nrows``,
  ``xllcorner``/``xllcenter``, ``yllcorner``/``yllcenter``, ``cellsize`` and optional
  ``NODATA_value``, then ``nrows`` rows of ``ncols`` numbers, the first row the northernmost.
* :func:`read_text_grid` - a grid of three whitespace text files (optionally gzipped) like NOAA's
  ETOPO20: a matrix with one row per latitude and one column per longitude, and the latitudes and
  longitudes as one number per line. Longitudes may run past 180 (ETOPO20: 20.17 ... 380.17) and
  repeat the first column at the end; the repeat is dropped.
* :func:`read_etopo20` - :func:`read_text_grid` on the ``etopo20data.gz``, ``etopo20lats.gz``
  and ``etopo20lons.gz`` of a folder, as elevation in m.
* :func:`values_at_points` - the grid value at station coordinates (nearest cell centre, or
  bilinear), longitude periodic for a global grid.

Errors are :class:`cropsm.errors.InputError` naming the file, the header key, row or value, and
what was expected.
"""

from __future__ import annotations

import gzip
import io
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from cropsm.errors import InputError
from cropsm.io import grid_step, standardize_grid

ETOPO20_FILES: dict[str, str] = {
    "data": "etopo20data.gz",
    "lats": "etopo20lats.gz",
    "lons": "etopo20lons.gz",
}
"""File names of the ETOPO20 plain-text grid inside its folder."""

ESRI_ASCII_KEYS: tuple[str, ...] = (
    "ncols",
    "nrows",
    "xllcorner",
    "xllcenter",
    "yllcorner",
    "yllcenter",
    "cellsize",
    "nodata_value",
)
"""Header keys of an ESRI ASCII grid (compared lower-case)."""


# --------------------------------------------------------------------------------------------
# GeoTIFF


def read_geotiff(
    path: str | Path,
    *,
    band: int = 1,
    name: str | None = None,
    units: str = "1",
    long_name: str | None = None,
) -> xr.DataArray:
    """One band of a GeoTIFF in a geographic CRS as a canonical ``(lat, lon)`` DataArray.

    The file is opened with ``rioxarray.open_rasterio(masked=True)``: the band's no-data value
    becomes NaN, ``scale_factor``/``add_offset`` are applied. The ``x``/``y`` pixel-centre
    coordinates become ``lon``/``lat`` (sorted ascending, longitude wrapped into -180...180).

    Parameters
    ----------
    path
        The GeoTIFF.
    band
        Band number, 1-based.
    name
        Name of the returned DataArray (default: the file stem).
    units, long_name
        Attributes of the result (a GeoTIFF carries no UDUNITS units; give them here).

    Returns
    -------
    xarray.DataArray
        float64, dims ``(lat, lon)``.

    Raises
    ------
    InputError
        When the file cannot be read as a GeoTIFF, the band does not exist, or the CRS is
        projected (reproject to a geographic CRS such as EPSG:4326 first, e.g. with
        ``gdalwarp -t_srs EPSG:4326``).
    """
    try:
        import rioxarray
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "reading GeoTIFF needs the rioxarray package (pip install rioxarray)"
        ) from None

    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "GeoTIFF file not found")
    try:
        with warnings.catch_warnings():
            # affine's "use @ instead of *" notice, raised inside rioxarray
            warnings.simplefilter("ignore", PendingDeprecationWarning)
            raw = rioxarray.open_rasterio(path, masked=True)
            raw = raw.assign_coords(x=raw["x"].values, y=raw["y"].values)
    except Exception as exc:  # noqa: BLE001 - any failure to read is the user's file
        text = " ".join(str(exc).split())[:160]
        raise InputError(path, None, f"cannot be read as GeoTIFF ({text})") from None
    crs = raw.rio.crs
    if crs is not None and not crs.is_geographic:
        raise InputError(
            path,
            "CRS",
            f"projected CRS {crs.to_string()!r}; expected a geographic (lat/lon) CRS such as "
            "EPSG:4326 (reproject with gdalwarp -t_srs EPSG:4326)",
        )
    bands = raw["band"].values.tolist() if "band" in raw.dims else [1]
    if band not in bands:
        raise InputError(path, f"band {band}", f"not in the file; it holds bands {bands}")
    data = raw.sel(band=band) if "band" in raw.dims else raw
    data = data.drop_vars([c for c in data.coords if c not in ("x", "y")])
    data = data.rename({"x": "lon", "y": "lat"}).astype(np.float64)
    data = standardize_grid(data.load(), path).transpose("lat", "lon")
    data.name = name or path.stem
    data.attrs = {"units": units, "long_name": long_name or data.name, "source": str(path)}
    return data


# --------------------------------------------------------------------------------------------
# ESRI ASCII grids (MIRCA2000)


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix.lower() == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="ascii", errors="replace")
    return path.open("r", encoding="ascii", errors="replace")


def _read_text(path: Path, what: str) -> str:
    if not path.exists():
        raise InputError(path, None, f"{what} file not found")
    try:
        with _open_text(path) as handle:
            return handle.read()
    except (OSError, EOFError) as exc:
        raise InputError(path, None, f"cannot be read ({type(exc).__name__}: {exc})") from None


def _esri_header(lines: list[str], path: Path) -> tuple[dict[str, float], int]:
    header: dict[str, float] = {}
    i = 0
    while i < len(lines):
        parts = lines[i].split()
        if not parts:
            i += 1
            continue
        key = parts[0].lower()
        if key not in ESRI_ASCII_KEYS:
            break
        if len(parts) != 2:
            raise InputError(path, f"line {i + 1}", f"header {parts[0]!r} expects one value")
        try:
            header[key] = float(parts[1])
        except ValueError:
            raise InputError(
                path, f"line {i + 1}", f"header {parts[0]} value {parts[1]!r} is not a number"
            ) from None
        i += 1
    for required in ("ncols", "nrows", "cellsize"):
        if required not in header:
            raise InputError(
                path,
                "header",
                f"missing {required!r}; expected an ESRI ASCII grid header with ncols, nrows, "
                "xllcorner (or xllcenter), yllcorner (or yllcenter), cellsize, NODATA_value",
            )
    for axis in ("x", "y"):
        if (f"{axis}llcorner" in header) == (f"{axis}llcenter" in header):
            raise InputError(
                path, "header", f"expected exactly one of {axis}llcorner or {axis}llcenter"
            )
    for key in ("ncols", "nrows"):
        if header[key] < 1 or header[key] != int(header[key]):
            raise InputError(path, "header", f"{key} {header[key]:g} is not a positive integer")
    if header["cellsize"] <= 0:
        raise InputError(path, "header", f"cellsize {header['cellsize']:g} is not positive")
    return header, i


def read_esri_ascii(
    path: str | Path,
    *,
    name: str | None = None,
    units: str = "1",
    long_name: str | None = None,
) -> xr.DataArray:
    """An ESRI ASCII grid (MIRCA2000 crop areas, ``.asc`` or ``.asc.gz``) as ``(lat, lon)``.

    Cell centres: with ``xllcorner``/``yllcorner`` (lower-left corner of the lower-left cell)
    and cell size c, column j and row i (row 0 the northernmost) have

    .. math::

        \\mathrm{lon}_j = x_{ll} + (j + 1/2)\\,c,\\qquad
        \\mathrm{lat}_i = y_{ll} + (n_{rows} - i - 1/2)\\,c

    (with ``xllcenter``/``yllcenter`` the 1/2 is dropped). Cells equal to ``NODATA_value``
    become NaN. Reference: ESRI, "Esri ASCII raster format" (ArcGIS documentation); Portmann,
    Siebert & Döll (2010), MIRCA2000, Global Biogeochem. Cycles 24, GB1011.

    Parameters
    ----------
    path
        The grid file; gzip-compressed when it ends in ``.gz``.
    name, units, long_name
        Name and attributes of the result (MIRCA2000 harvested areas are in ``ha``).

    Returns
    -------
    xarray.DataArray
        float64, dims ``(lat, lon)``, ascending coordinates.

    Raises
    ------
    InputError
        Missing or malformed header keys, a data row with the wrong number of values (naming the
        line), a value that is not a number, or a grid outside -90...90 / -180...360 degrees.
    """
    path = Path(path)
    lines = _read_text(path, "ESRI ASCII grid").splitlines()
    header, first = _esri_header(lines, path)
    ncols, nrows = int(header["ncols"]), int(header["nrows"])
    cell = header["cellsize"]
    rows: list[list[str]] = []
    row_lines: list[int] = []
    for i in range(first, len(lines)):
        parts = lines[i].split()
        if parts:
            rows.append(parts)
            row_lines.append(i + 1)
    tokens = [t for r in rows for t in r]
    if len(tokens) != ncols * nrows:
        # Locate the first row that breaks the grid when rows are one grid row per line.
        for parts, line in zip(rows, row_lines, strict=True):
            if len(parts) != ncols:
                raise InputError(
                    path,
                    f"line {line}",
                    f"{len(parts)} values; expected ncols = {ncols} per row "
                    f"({nrows} rows of {ncols} values)",
                )
        raise InputError(
            path,
            "data",
            f"{len(rows)} rows of values; expected nrows = {nrows} rows of {ncols} values",
        )
    values = pd.to_numeric(pd.Series(tokens), errors="coerce").to_numpy(np.float64)
    if np.isnan(values).any():
        k = int(np.flatnonzero(np.isnan(values))[0])
        bad = tokens[k]
        if bad.lower() not in ("nan",):
            line = row_lines[k // ncols] if len(rows) == nrows else None
            where = f"line {line}" if line else f"value {k + 1}"
            raise InputError(path, where, f"{bad!r} is not a number")
    grid = values.reshape(nrows, ncols)
    nodata = header.get("nodata_value")
    if nodata is not None:
        grid = np.where(grid == nodata, np.nan, grid)
    x0 = header.get("xllcorner", header.get("xllcenter"))
    y0 = header.get("yllcorner", header.get("yllcenter"))
    offset = 0.5 if "xllcorner" in header else 0.0
    lon = x0 + (np.arange(ncols) + offset) * cell
    yoff = 0.5 if "yllcorner" in header else 0.0
    lat = y0 + (nrows - 1 - np.arange(nrows) + yoff) * cell
    data = xr.DataArray(grid, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    data = standardize_grid(data, path)
    data.name = name or path.name.split(".")[0]
    data.attrs = {"units": units, "long_name": long_name or data.name, "source": str(path)}
    return data


# --------------------------------------------------------------------------------------------
# Plain-text grids (ETOPO20)


def _numbers_file(path: Path, what: str) -> np.ndarray:
    text = _read_text(path, what)
    tokens = text.split()
    if not tokens:
        raise InputError(path, None, f"empty; expected the {what}, one number per line")
    values = pd.to_numeric(pd.Series(tokens), errors="coerce").to_numpy(np.float64)
    if np.isnan(values).any():
        k = int(np.flatnonzero(np.isnan(values))[0])
        raise InputError(path, f"value {k + 1}", f"{tokens[k]!r} is not a number")
    return values


def read_text_grid(
    data_path: str | Path,
    lats_path: str | Path,
    lons_path: str | Path,
    *,
    name: str = "elevation",
    units: str = "m",
    long_name: str = "surface elevation",
    nodata: float | None = None,
) -> xr.DataArray:
    """A grid stored as three whitespace text files (ETOPO20 layout) as ``(lat, lon)``.

    ``data_path`` holds one row per latitude of ``lats_path`` (in that order, ETOPO20: south to
    north) and one column per longitude of ``lons_path``; each may be gzip-compressed
    (``.gz``). Longitudes beyond 180 are wrapped into -180...180 and a last column that repeats
    the first one 360 degrees later (a closed global grid) is dropped.

    Parameters
    ----------
    data_path, lats_path, lons_path
        The matrix, the latitudes (degrees north), the longitudes (degrees east).
    name, units, long_name
        Name and attributes of the result.
    nodata
        A value that marks missing cells (NaN in the result).

    Returns
    -------
    xarray.DataArray
        float64, dims ``(lat, lon)``, ascending coordinates.

    Raises
    ------
    InputError
        A value that is not a number, or a matrix whose row or column count differs from the
        number of latitudes or longitudes (naming the line).
    """
    data_path, lats_path, lons_path = Path(data_path), Path(lats_path), Path(lons_path)
    lats = _numbers_file(lats_path, "latitudes")
    lons = _numbers_file(lons_path, "longitudes")
    if not data_path.exists():
        raise InputError(data_path, None, "grid file not found")
    try:
        frame = pd.read_csv(
            data_path, sep=r"\s+", header=None, dtype=np.float64, compression="infer"
        )
    except (ValueError, pd.errors.ParserError) as exc:
        first = " ".join(str(exc).split())[:160]
        raise InputError(
            data_path,
            None,
            f"cannot be read as a whitespace matrix of numbers ({first}); expected "
            f"{lats.size} rows of {lons.size} numbers",
        ) from None
    except pd.errors.EmptyDataError:
        raise InputError(data_path, None, "empty; expected a matrix of numbers") from None
    grid = frame.to_numpy()
    if grid.shape[1] != lons.size:
        raise InputError(
            data_path,
            "line 1",
            f"{grid.shape[1]} values; expected one per longitude in {lons_path.name} ({lons.size})",
        )
    if np.isnan(grid).any():
        row = int(np.flatnonzero(np.isnan(grid).any(axis=1))[0])
        raise InputError(
            data_path,
            f"line {row + 1}",
            f"fewer than {lons.size} values; expected one per longitude in {lons_path.name}",
        )
    if grid.shape[0] != lats.size:
        raise InputError(
            data_path,
            "data",
            f"{grid.shape[0]} rows; expected one per latitude in {lats_path.name} ({lats.size})",
        )
    if nodata is not None:
        grid = np.where(grid == nodata, np.nan, grid)
    # A closed global grid repeats its first column 360 degrees later: drop the repeat.
    if lons.size > 2:
        step = abs(lons[1] - lons[0])
        if abs((lons[-1] - lons[0]) - 360.0) < 0.5 * step:
            lons, grid = lons[:-1], grid[:, :-1]
    lons = np.where(lons > 180.0, lons - 360.0, lons)
    data = xr.DataArray(grid, dims=("lat", "lon"), coords={"lat": lats, "lon": lons})
    data = standardize_grid(data, data_path)
    data.name = name
    data.attrs = {"units": units, "long_name": long_name, "source": str(data_path)}
    return data


def read_etopo20(folder: str | Path) -> xr.DataArray:
    """The ETOPO20 global relief (NOAA, 20 arc-minutes) of a folder, as elevation in m.

    The folder holds ``etopo20data.gz`` (one row per latitude of ``etopo20lats.gz``, south to
    north; one column per longitude of ``etopo20lons.gz``, 20.17 ... 380.17 degrees east); see
    :func:`read_text_grid`. Ocean cells are negative (bathymetry).

    Raises
    ------
    InputError
        When a file is missing or malformed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, None, "elevation grid folder not found")
    paths = {key: folder / file for key, file in ETOPO20_FILES.items()}
    for path in paths.values():
        if not path.exists():
            raise InputError(
                path,
                None,
                f"file not found; expected {', '.join(ETOPO20_FILES.values())} in the folder",
            )
    return read_text_grid(paths["data"], paths["lats"], paths["lons"])


def read_elevation_grid(path: str | Path) -> xr.DataArray:
    """An elevation grid in m from an ETOPO20-style folder, a GeoTIFF, an ESRI ASCII grid or a
    netCDF file with an ``elevation`` (or single) variable.

    Raises
    ------
    InputError
        For a path of none of these kinds.
    """
    path = Path(path)
    if path.is_dir():
        return read_etopo20(path)
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith((".tif", ".tiff")):
        return read_geotiff(path, name="elevation", units="m", long_name="surface elevation")
    if suffixes.endswith((".asc", ".asc.gz")):
        return read_esri_ascii(path, name="elevation", units="m", long_name="surface elevation")
    if suffixes.endswith((".nc", ".nc4")):
        from cropsm.io import open_netcdf

        ds = open_netcdf(path, chunks={})
        names = [v for v in ds.data_vars if v in ("elevation", "z", "elev", "altitude")]
        if not names and len(ds.data_vars) == 1:
            names = list(ds.data_vars)
        if not names:
            raise InputError(
                path, None, f"no elevation variable; found {sorted(map(str, ds.data_vars))}"
            )
        data = standardize_grid(ds[names[0]].squeeze(drop=True), path).load()
        data.name = "elevation"
        data.attrs = {"units": "m", "long_name": "surface elevation", "source": str(path)}
        return data.astype(np.float64)
    if not path.exists():
        raise InputError(path, None, "elevation grid not found")
    raise InputError(
        path,
        None,
        "unknown elevation grid format; expected an ETOPO20-style folder, a GeoTIFF (.tif), an "
        "ESRI ASCII grid (.asc) or a netCDF file (.nc)",
    )


# --------------------------------------------------------------------------------------------
# Values at points


def values_at_points(
    grid: xr.DataArray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    method: Literal["nearest", "bilinear"] = "nearest",
) -> np.ndarray:
    """Grid values at point coordinates (e.g. station elevation from ETOPO20).

    ``nearest`` takes the cell whose centre is nearest along each axis. ``bilinear`` weights
    the four surrounding centres,

    .. math::

        v = (1-t)(1-u)\\,v_{00} + t(1-u)\\,v_{01} + (1-t)u\\,v_{10} + tu\\,v_{11},
        \\qquad t = \\frac{\\lambda - \\lambda_0}{\\lambda_1 - \\lambda_0},\\quad
        u = \\frac{\\varphi - \\varphi_0}{\\varphi_1 - \\varphi_0}

    (Press et al., *Numerical Recipes*, 3rd ed., section 3.6). A global grid (longitudes
    spanning 360 degrees) is periodic in longitude. Points beyond the outer cell centres take
    the outer values (within half a cell); points farther outside the grid are NaN.

    Parameters
    ----------
    grid
        ``(lat, lon)`` DataArray with ascending, evenly spaced coordinates.
    lat, lon
        Point coordinates, degrees north and east (longitude -180...360).
    method
        ``nearest`` (default) or ``bilinear``.

    Returns
    -------
    numpy.ndarray
        float64, one value per point.
    """
    grid = grid.transpose("lat", "lon")
    glat = np.asarray(grid["lat"].values, dtype=np.float64)
    glon = np.asarray(grid["lon"].values, dtype=np.float64)
    values = np.asarray(grid.values, dtype=np.float64)
    lat = np.atleast_1d(np.asarray(lat, dtype=np.float64))
    lon = np.atleast_1d(np.asarray(lon, dtype=np.float64))
    lon = np.where(lon > 180.0, lon - 360.0, lon)
    dlat = grid_step(glat, grid.attrs.get("source"), "lat") if glat.size > 1 else 0.0
    dlon = grid_step(glon, grid.attrs.get("source"), "lon") if glon.size > 1 else 0.0
    periodic = glon.size > 1 and abs(glon.size * dlon - 360.0) < 1e-6 * 360.0
    if periodic:
        # Pad one wrapped column on each side so every longitude has neighbours.
        glon = np.concatenate([[glon[-1] - 360.0], glon, [glon[0] + 360.0]])
        values = np.concatenate([values[:, -1:], values, values[:, :1]], axis=1)
    inside = (lat >= glat[0] - dlat / 2) & (lat <= glat[-1] + dlat / 2)
    inside &= (lon >= glon[0] - dlon / 2) & (lon <= glon[-1] + dlon / 2)
    if method == "nearest":
        ilat = _nearest(glat, lat)
        ilon = _nearest(glon, lon)
        out = values[ilat, ilon]
    elif method == "bilinear":
        i0, u = _bracket(glat, lat)
        j0, t = _bracket(glon, lon)
        i1 = np.minimum(i0 + 1, glat.size - 1)
        j1 = np.minimum(j0 + 1, glon.size - 1)
        out = (
            (1 - t) * (1 - u) * values[i0, j0]
            + t * (1 - u) * values[i0, j1]
            + (1 - t) * u * values[i1, j0]
            + t * u * values[i1, j1]
        )
    else:
        raise ValueError(f"unknown method {method!r}; expected nearest or bilinear")
    return np.where(inside, out, np.nan)


def _nearest(coord: np.ndarray, x: np.ndarray) -> np.ndarray:
    if coord.size == 1:
        return np.zeros(x.shape, dtype=np.int64)
    right = np.clip(np.searchsorted(coord, x), 1, coord.size - 1)
    left = right - 1
    return np.where(np.abs(x - coord[left]) <= np.abs(coord[right] - x), left, right)


def _bracket(coord: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower index and fraction 0...1 of x between coord[i] and coord[i + 1] (clamped)."""
    if coord.size == 1:
        return np.zeros(x.shape, dtype=np.int64), np.zeros(x.shape)
    i = np.clip(np.searchsorted(coord, x, side="right") - 1, 0, coord.size - 2)
    frac = np.clip((x - coord[i]) / (coord[i + 1] - coord[i]), 0.0, 1.0)
    return i, frac


__all__ = [
    "ETOPO20_FILES",
    "read_elevation_grid",
    "read_esri_ascii",
    "read_etopo20",
    "read_geotiff",
    "read_text_grid",
    "values_at_points",
]
