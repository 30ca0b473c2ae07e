"""CF netCDF copy of a product store (``cropsm export-netcdf PRODUCT OUT.nc``).

The netCDF file holds the same variables, packing and attributes as the zarr store (``sm`` as
int16 x 1e-4 m3 m-3 with ``_FillValue``, the flags with ``flag_values``/``flag_meanings``),
compressed with zlib + shuffle (readable by every netCDF-4 library), chunked like the store. The
copy streams chunk by chunk through dask, so memory stays bounded; the file is written under a
temporary name and renamed when complete. The resume record ``block_done`` is not copied; an
unfinished product is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from cropsm.errors import UsageError
from cropsm.io.atomic import atomic_output
from cropsm.predict.store import FLAG_FILL, SM_FILL, SM_SCALE, open_product

NETCDF_COMPLEVEL = 4


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
    ds = open_product(product, allow_incomplete=True)  # refused below, with a count
    if "block_done" in ds:
        done = ds["block_done"].values
        if not allow_incomplete and not done.all():
            raise UsageError(
                f"{product}: {int((done == 0).sum())} of {done.size} blocks are not computed; "
                "run `cropsm predict` again to finish it"
            )
        ds = ds.drop_vars("block_done")
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
        if name == "sm":
            enc.update(dtype="int16", scale_factor=np.float32(SM_SCALE), _FillValue=SM_FILL)
        elif name in ("time_flag", "pattern_flag"):
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
            kind = {"time_flag": np.int8, "pattern_flag": np.int8, "cropland_mask": np.int8}
            var.attrs["flag_values"] = np.asarray(
                var.attrs["flag_values"], dtype=kind.get(name, np.int16)
            )
    for name in ("scenario", "pattern"):
        if name in ds.coords:
            values = np.array([str(v) for v in ds[name].values], dtype=object)
            ds = ds.assign_coords({name: (name, values, dict(ds[name].attrs))})
    out = Path(out)
    try:
        with atomic_output(out) as tmp:
            ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
    finally:
        ds.close()
    return out


def open_export(path: str | Path) -> xr.Dataset:
    """Open an exported netCDF product lazily (decoded)."""
    return xr.open_dataset(path, engine="netcdf4", chunks={})
