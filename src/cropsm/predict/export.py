"""CF netCDF copy of a product store (``cropsm export-netcdf PRODUCT OUT.nc``).

The netCDF file holds the same variables, packing and attributes as the zarr store (``sm`` as
int16 x 1e-4 m3 m-3 with ``_FillValue``, the flags with ``flag_values``/``flag_meanings``),
compressed with zlib + shuffle (readable by every netCDF-4 library), chunked like the store. The
copy streams chunk by chunk through dask, so memory stays bounded; the file is written under a
temporary name and renamed when complete. The resume record ``block_done`` is not copied; an
unfinished product is refused.

CF-1.8 as checked by the CF checker (``cfchecks``, no errors, no warnings): ``scenario`` and
``pattern`` are character arrays ``(scenario, string<n>)`` named in the ``coordinates``
attribute of the variables on them (labels, CF section 6.1), which xarray reads back as string
coordinates, so ``ds.sm.sel(scenario="reference")`` works; ``time`` has ``time_bounds`` (one
day), the interval of ``sm``'s ``cell_methods: time: mean``. :func:`read_product` opens either
format with ``sm`` as float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from xarray.indexes import PandasIndex

from cropsm.errors import UsageError
from cropsm.io.atomic import atomic_output
from cropsm.predict.store import (
    FLAG_FILL,
    PRODUCT_FORMAT,
    READABLE_FORMATS,
    SM_FILL,
    SM_SCALE,
    check_complete,
    missing_variables,
    open_product,
    reading_product,
    time_bounds,
)

NETCDF_COMPLEVEL = 4
LABEL_COORDINATES = ("scenario", "pattern")
MEMBER_VARIABLES = ("member_sum", "member_days", "slot_month")
"""Store variables of the deep-ensemble members (not exported)."""
"""Coordinates of names; written to netCDF as CF character-array labels."""


def export_netcdf(product: str | Path, out: str | Path, allow_incomplete: bool = False) -> Path:
    """Write a CF netCDF-4 copy of a product store.

    Parameters
    ----------
    product
        The zarr store.
    out
        The netCDF file to write (replaced if it exists).
    allow_incomplete
        Export even when some blocks are not computed yet (they are fill).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    FileNotFoundError
        When ``product`` is not a product store.
    ValueError
        When the product is unfinished (and ``allow_incomplete`` is false).
    """
    product = Path(product)
    if not (product / "zarr.json").is_file():
        raise FileNotFoundError(f"{product}: not a zarr product store")
    if missing_variables(product):
        check_complete(product)  # refused before zarr opens it without the variable
    ds = open_product(product, allow_incomplete=True)  # refused below, with a count
    if ds.attrs.get("product_format") not in READABLE_FORMATS:
        raise UsageError(
            f"{product}: not a cropsm product store (attribute product_format "
            f"{ds.attrs.get('product_format')!r}; expected {PRODUCT_FORMAT!r}, as written by "
            "`cropsm predict`)"
        )
    if "block_done" in ds:
        done = ds["block_done"].values
        if not allow_incomplete and not done.all():
            raise UsageError(
                f"{product}: {int((done == 0).sum())} of {done.size} blocks are not computed; "
                "run `cropsm predict` again to finish it"
            )
        ds = ds.drop_vars("block_done")
    elif not allow_incomplete:
        check_complete(product)  # a finished store: every chunk file there
    # per-member sums feed the analysis of scenario effects; the exported product carries the
    # ensemble mean sm and its standard error sm_sd
    ds = ds.drop_vars([v for v in MEMBER_VARIABLES if v in ds.variables])
    ds.attrs.pop("cropsm_fingerprint", None)
    ds.attrs["history"] = (
        ds.attrs.get("history", "") + f"\nexported to netCDF from {product.name}"
    ).strip()
    encoding = {}
    for name, var in ds.variables.items():
        enc: dict = {}
        chunks = var.encoding.get("preferred_chunks") or {}
        if var.ndim and chunks:
            enc["chunksizes"] = tuple(int(chunks.get(d, var.sizes[d])) for d in var.dims)
        if name in ("sm", "sm_sd"):
            enc.update(dtype="int16", scale_factor=np.float32(SM_SCALE), _FillValue=SM_FILL)
        elif name in ("time_flag", "pattern_flag", "season_flag"):
            enc.update(dtype="int8", _FillValue=FLAG_FILL)
        elif name in ("cropland_mask",):
            enc.update(dtype="int8", _FillValue=None)
        elif name == "region":
            enc.update(dtype="int16", _FillValue=None)
        elif name == "time":
            enc.update(units=var.encoding.get("units", "days since 1970-01-01"), dtype="int32")
        elif var.dtype.kind == "f" and name in ds.coords:
            enc.update(_FillValue=None)
        if var.dtype.kind in "fiu" and var.ndim >= 2:
            enc.update(zlib=True, complevel=NETCDF_COMPLEVEL, shuffle=True)
        encoding[name] = enc
        if "flag_values" in var.attrs:
            kind = dict.fromkeys(
                ("time_flag", "pattern_flag", "season_flag", "cropland_mask"), np.int8
            )
            var.attrs["flag_values"] = np.asarray(
                var.attrs["flag_values"], dtype=kind.get(name, np.int16)
            )
    if "time_bounds" not in ds.variables:  # a store made before time bounds were stored
        ds = ds.assign_coords(
            time_bounds=(("time", "bounds"), time_bounds(pd.DatetimeIndex(ds["time"].values)))
        )
        ds["time"].attrs["bounds"] = "time_bounds"
    encoding["time_bounds"] = {
        "units": encoding.get("time", {}).get("units", "days since 1970-01-01"),
        "dtype": "int32",
    }
    for name in LABEL_COORDINATES:
        if name in ds.coords:
            values = np.array([str(v) for v in ds[name].values], dtype=object)
            ds = ds.assign_coords({name: (name, values, dict(ds[name].attrs))})
            encoding[name] = {"dtype": "S1"}  # a CF label: char array (name, string<n>)
    for var in ds.data_vars.values():
        if coordinates := _coordinates_attribute(ds, var):
            var.encoding["coordinates"] = coordinates
    out = Path(out)
    try:
        with reading_product(product), atomic_output(out) as tmp:
            ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    finally:
        ds.close()
    return out


def _coordinates_attribute(ds: xr.Dataset, var: xr.DataArray) -> str:
    """The CF ``coordinates`` attribute of a data variable: its label dimensions (``scenario``,
    ``pattern``, stored as character arrays, i.e. CF auxiliary coordinates of section 6.1) and
    every other non-dimension coordinate on its dimensions (``depth``)."""
    labels = [d for d in var.dims if d in LABEL_COORDINATES and d in ds.coords]
    others = [
        str(c)
        for c in ds.coords
        if c not in ds.dims and c not in labels and set(ds[c].dims) <= set(var.dims)
    ]
    return " ".join([*labels, *others])


def open_export(path: str | Path) -> xr.Dataset:
    """Open an exported netCDF product lazily (decoded)."""
    return xr.open_dataset(path, engine="netcdf4", chunks={})


class LabelIndex(PandasIndex):
    """An index of names (``scenario``, ``pattern``) that always matches exactly.

    ``ds.sel(scenario="reference", lat=35, lon=116, method="nearest")`` passes ``method`` to every
    index; a plain string index cannot take the nearest string and fails. This one ignores
    ``method`` and ``tolerance``, so a name still selects exactly while the numeric axes take
    the nearest value.
    """

    def sel(self, labels, method=None, tolerance=None):  # noqa: ARG002 - see class docstring
        return super().sel(labels)


def read_product(path: str | Path) -> xr.Dataset:
    """Open a product, zarr store or exported netCDF, the way a user reads it.

    ``sm`` (the ensemble mean) and ``sm_sd`` (its standard error; ``sm +/- 1.645 sm_sd`` is the
    calibrated central 90 % interval) decode to float32 m3 m-3 from both formats (a zarr store
    keeps its ``scale_factor`` in JSON, where :func:`xarray.open_zarr` reads it as float64 and
    would decode to float64),
    ``scenario`` and ``pattern`` select by name even together with ``method="nearest"`` on
    lat/lon; an unfinished store is refused (:func:`cropsm.predict.store.open_product`).

    Parameters
    ----------
    path
        ``RUN_DIR/product.zarr`` or a netCDF file written by :func:`export_netcdf`.

    Returns
    -------
    xarray.Dataset
        Lazy (dask) dataset.

    Examples
    --------
    >>> ds = read_product("runs/tiny/product.zarr")  # doctest: +SKIP
    >>> ds.sm.sel(scenario="reference", lat=35, lon=116, method="nearest")  # doctest: +SKIP
    """
    path = Path(path)
    ds = open_product(path) if (path / "zarr.json").is_file() else open_export(path)
    ds = ds.drop_vars([v for v in ("block_done",) if v in ds.variables])
    for name in ("sm", "sm_sd"):
        if name in ds:
            ds[name] = ds[name].astype(np.float32, keep_attrs=True)
    for name in LABEL_COORDINATES:
        if name in ds.indexes:
            ds = ds.drop_indexes(name).set_xindex(name, LabelIndex)
    return ds
