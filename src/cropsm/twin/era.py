"""Write the canonical climate as ERA5-style daily netCDF (the files users download).

The virtual China hands its weather to the rest of cropsm in the format real users bring:
ERA5 (or ERA-Interim) daily aggregates as written by the Copernicus Climate Data Store, with the
ECMWF short names, units and attributes:

========  ====================================  ============  ==========================
name      long_name                             units         from the canonical climate
========  ====================================  ============  ==========================
``tp``    Total precipitation                   ``m``         ``precipitation`` / 1000
``t2m``   2 metre temperature                   ``K``         ``air_temperature`` + 273.15
``d2m``   2 metre dewpoint temperature          ``K``         ``dewpoint_temperature`` + 273.15
``ssr``   Surface net solar radiation           ``J m**-2``   ``net_solar_radiation`` * 1e6
``u10``   10 metre U wind component             ``m s**-1``   ``u_wind``
``v10``   10 metre V wind component             ``m s**-1``   ``v_wind``
``tcc``   Total cloud cover                     ``(0 - 1)``   ``cloud_cover``
========  ====================================  ============  ==========================

``tp`` and ``ssr`` are daily accumulations (the sum over the day), the others daily means.
Without ``u_wind``/``v_wind`` the wind speed is written as ``si10`` (10 metre wind speed), as in
ERA5's derived products. Dims ``(time, latitude, longitude)`` with latitude **descending**
(north to south) as ECMWF distributes it, longitude ascending; ``time`` in hours since
1900-01-01 (ERA-Interim/ERA5 netCDF convention). Data are packed into zlib-compressed int16 with
``scale_factor``/``add_offset`` (float64) and ``_FillValue`` -32767, as ECMWF's netCDF files
are: readers that apply CF decoding (xarray does by default) get the physical values back to
within half a packing step (e.g. 0.002 mm of precipitation, 0.001 K), and zero precipitation
stays exactly zero (see :func:`packing`). A paper-size year (366 x 144 x 248) is about 130 MB
and takes 4-6 s to write (zlib level 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

import cropsm
from cropsm.io.atomic import atomic_output

ZERO_CELSIUS_K = 273.15

# short name -> (canonical name, scale, offset, attributes); ERA value = canonical * scale + offset
ERA_VARIABLES: dict[str, tuple[str, float, float, dict[str, str]]] = {
    "tp": (
        "precipitation",
        1.0e-3,
        0.0,
        {
            "units": "m",
            "long_name": "Total precipitation",
            "standard_name": "lwe_thickness_of_precipitation_amount",
            "cell_methods": "time: sum (interval: 1 day)",
        },
    ),
    "t2m": (
        "air_temperature",
        1.0,
        ZERO_CELSIUS_K,
        {
            "units": "K",
            "long_name": "2 metre temperature",
            "standard_name": "air_temperature",
            "cell_methods": "time: mean (interval: 1 day)",
        },
    ),
    "d2m": (
        "dewpoint_temperature",
        1.0,
        ZERO_CELSIUS_K,
        {
            "units": "K",
            "long_name": "2 metre dewpoint temperature",
            "standard_name": "dew_point_temperature",
            "cell_methods": "time: mean (interval: 1 day)",
        },
    ),
    "ssr": (
        "net_solar_radiation",
        1.0e6,
        0.0,
        {
            "units": "J m**-2",
            "long_name": "Surface net solar radiation",
            "standard_name": "surface_net_downward_shortwave_flux",
            "cell_methods": "time: sum (interval: 1 day)",
        },
    ),
    "u10": (
        "u_wind",
        1.0,
        0.0,
        {
            "units": "m s**-1",
            "long_name": "10 metre U wind component",
            "standard_name": "eastward_wind",
            "cell_methods": "time: mean (interval: 1 day)",
        },
    ),
    "v10": (
        "v_wind",
        1.0,
        0.0,
        {
            "units": "m s**-1",
            "long_name": "10 metre V wind component",
            "standard_name": "northward_wind",
            "cell_methods": "time: mean (interval: 1 day)",
        },
    ),
    "si10": (
        "wind_speed",
        1.0,
        0.0,
        {
            "units": "m s**-1",
            "long_name": "10 metre wind speed",
            "standard_name": "wind_speed",
            "cell_methods": "time: mean (interval: 1 day)",
        },
    ),
    "tcc": (
        "cloud_cover",
        1.0,
        0.0,
        {
            "units": "(0 - 1)",
            "long_name": "Total cloud cover",
            "standard_name": "cloud_area_fraction",
            "cell_methods": "time: mean (interval: 1 day)",
        },
    ),
}
"""ERA short name -> (canonical variable, scale, offset, netCDF attributes)."""

_TIME_UNITS = "hours since 1900-01-01 00:00:00.0"
_COMPRESSION_LEVEL = 1  # zlib level: level 1 compresses float data nearly as well, much faster


def era_dataset(climate: xr.Dataset) -> xr.Dataset:
    """ERA5-style daily dataset (in memory) from the canonical climate.

    Parameters
    ----------
    climate : xarray.Dataset
        Canonical climate (``docs/contracts.md``): ``precipitation``, ``air_temperature``,
        ``dewpoint_temperature``, ``net_solar_radiation``, ``cloud_cover`` and either
        ``u_wind``/``v_wind`` or ``wind_speed``; dims ``(time, lat, lon)``, ascending.

    Returns
    -------
    xarray.Dataset
        ``tp t2m d2m ssr u10 v10 tcc`` (or ``si10`` for the wind), float32, dims
        ``(time, latitude, longitude)``, latitude descending, ERA attributes.

    Raises
    ------
    ValueError
        If a variable or a dimension is missing.
    """
    has_components = "u_wind" in climate and "v_wind" in climate
    names = ["tp", "t2m", "d2m", "ssr"] + (["u10", "v10"] if has_components else ["si10"])
    names.append("tcc")
    missing = [ERA_VARIABLES[n][0] for n in names if ERA_VARIABLES[n][0] not in climate]
    if missing:
        raise ValueError(f"climate: missing variable(s) {missing} for the ERA file")
    for name in names:
        dims = climate[ERA_VARIABLES[name][0]].dims
        if set(dims) != {"time", "lat", "lon"}:
            raise ValueError(
                f"climate: variable {ERA_VARIABLES[name][0]!r} has dims {dims}, "
                "expected (time, lat, lon)"
            )
    lat = np.asarray(climate["lat"].values, dtype=np.float64)
    lon = np.asarray(climate["lon"].values, dtype=np.float64)
    flip = slice(None, None, -1) if len(lat) > 1 and lat[0] < lat[-1] else slice(None)
    data_vars = {}
    for name in names:
        canonical, scale, offset, attrs = ERA_VARIABLES[name]
        values = climate[canonical].transpose("time", "lat", "lon").values[:, flip, :]
        converted = values.astype(np.float32)
        if scale != 1.0:
            converted = converted * np.float32(scale)
        if offset != 0.0:
            converted = converted + np.float32(offset)
        data_vars[name] = (("time", "latitude", "longitude"), converted, dict(attrs))
    coords = {
        "time": (
            "time",
            np.asarray(climate["time"].values).astype("datetime64[ns]"),
            {"long_name": "time", "standard_name": "time"},
        ),
        "latitude": (
            "latitude",
            lat[flip],
            {"units": "degrees_north", "long_name": "latitude", "standard_name": "latitude"},
        ),
        "longitude": (
            "longitude",
            lon,
            {"units": "degrees_east", "long_name": "longitude", "standard_name": "longitude"},
        ),
    }
    source = "cropsm virtual China (synthetic weather), ERA5-style daily aggregates"
    if "source" in climate.attrs:
        source = f"{source}; {climate.attrs['source']}"
    attrs = {
        "Conventions": "CF-1.8",
        "title": "ERA5-style daily surface variables (synthetic)",
        "institution": "cropsm",
        "source": source,
        "history": (
            f"written by cropsm.twin.era.write_era_daily (cropsm {cropsm.__version__}) "
            "from the canonical daily climate"
        ),
    }
    for key in ("cropsm_seed", "cropsm_year"):
        if key in climate.attrs:
            attrs[key] = climate.attrs[key]
    return xr.Dataset(data_vars, coords=coords, attrs=attrs)


PACKED_FILL_VALUE = -32767
_PACKED_MAX = 32766


def packing(values: np.ndarray) -> tuple[float, float]:
    """``scale_factor`` and ``add_offset`` packing ``values`` into int16, as ERA files do.

    .. math::
        s = \\frac{v_{max} - v_{min}}{2 \\cdot 32766}, \\qquad o = v_{min} + 32766\\, s,
        \\qquad v = s\\, n + o, \\quad n \\in [-32766, 32766]

    (-32767 is the fill value). Anchoring the offset on the minimum makes the minimum exact
    after unpacking, so zero precipitation stays exactly zero; the largest unpacking error is
    ``s / 2``.

    Parameters
    ----------
    values : numpy.ndarray
        The data to pack; NaN (missing) are ignored.

    Returns
    -------
    tuple of float
        ``(scale_factor, add_offset)``.

    References
    ----------
    NetCDF Climate and Forecast (CF) Metadata Conventions 1.8, section 8.1 (packed data);
    ECMWF (2023), ERA5: data documentation (netCDF files store int16 packed values).
    """
    values = np.asarray(values)
    if not np.isfinite(values).any():
        return 1.0, 0.0
    lo = float(np.nanmin(values))
    hi = float(np.nanmax(values))
    scale = (hi - lo) / (2 * _PACKED_MAX) if hi > lo else 1.0
    return scale, lo + _PACKED_MAX * scale


def pack_int16(ds: xr.Dataset) -> xr.Dataset:
    """Pack every data variable into int16 with ``scale_factor``/``add_offset`` attributes.

    ``n = round((v - o) / s)`` with ``(s, o)`` from :func:`packing`; the attributes tell CF
    readers to unpack with ``v = s n + o``. NaN become the fill value -32767.

    Parameters
    ----------
    ds : xarray.Dataset
        Physical values (e.g. from :func:`era_dataset`).

    Returns
    -------
    xarray.Dataset
        Same variables as int16, with ``scale_factor`` and ``add_offset`` (float64) added to
        the attributes.
    """
    out = ds.copy()
    for name, da in ds.data_vars.items():
        scale, offset = packing(da.values)
        work = np.subtract(da.values, np.float32(offset), dtype=np.float32)
        work /= np.float32(scale)
        np.rint(work, out=work)
        np.clip(work, -_PACKED_MAX, _PACKED_MAX, out=work)
        work[np.isnan(work)] = PACKED_FILL_VALUE  # missing values become the fill value
        attrs = {**da.attrs, "scale_factor": np.float64(scale), "add_offset": np.float64(offset)}
        out[name] = xr.Variable(da.dims, work.astype(np.int16), attrs)
    return out


def _encoding(ds: xr.Dataset) -> dict:
    n_time, n_lat, n_lon = (ds.sizes[d] for d in ("time", "latitude", "longitude"))
    chunks = (min(n_time, 92), min(n_lat, 48), min(n_lon, 48))
    encoding: dict[str, dict] = {
        name: {
            "dtype": "int16",
            "_FillValue": np.int16(PACKED_FILL_VALUE),
            "zlib": True,
            "complevel": _COMPRESSION_LEVEL,
            "shuffle": True,
            "chunksizes": chunks,
        }
        for name in ds.data_vars
    }
    encoding["time"] = {"units": _TIME_UNITS, "calendar": "gregorian", "dtype": "int32"}
    encoding["latitude"] = {"_FillValue": None}
    encoding["longitude"] = {"_FillValue": None}
    return encoding


def write_era_daily(climate: xr.Dataset, path) -> None:
    """Write the canonical climate to an ERA5-style daily netCDF file, atomically.

    The file is first written to a temporary file in the destination folder and then renamed
    onto ``path`` (``os.replace``), so ``path`` is either absent, the old file or the complete
    new file; never half written. See :func:`era_dataset` and the module docstring for the
    variables, units, layout and attributes.

    Parameters
    ----------
    climate : xarray.Dataset
        Canonical climate of one period (e.g. one year), dims ``(time, lat, lon)``.
    path : str or os.PathLike
        Destination, e.g. ``climate/era5_daily_2001.nc``; its folder is created if missing.
    """
    path = Path(path)
    ds = pack_int16(era_dataset(climate))
    with atomic_output(path) as tmp:
        ds.to_netcdf(tmp, format="NETCDF4", engine="netcdf4", encoding=_encoding(ds))
