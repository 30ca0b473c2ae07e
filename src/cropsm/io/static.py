"""Static inputs (soil, elevation, cropland, harvested areas, regions) into the canonical form.

The file holds, on one regular lat/lon grid:

* ``elevation`` (m);
* ``ph`` (1), ``sand``, ``silt``, ``clay`` (%; a fraction with units ``1`` or ``g kg-1`` is
  converted), ``bulk_density`` (g cm-3; ``kg m-3`` and ``cg cm-3`` are converted), either on a
  ``depth`` dimension of source depths in cm (layer mid-depths, e.g. SoilGrids' 2.5, 10, 22.5,
  45, 80; the mid-points of ``depth_bounds`` when present) - linearly interpolated to the five
  layer mid-depths 5, 15, 25, 35, 45 cm, held constant beyond the outer source depths - or on a
  ``layer`` dimension of five, taken as is;
* ``cropland_fraction`` (1; ``%`` is converted);
* ``harvested_area`` (ha) on a ``crop`` dimension naming at least the crops of
  :func:`cropsm.catalog.crops`;
* ``region``: integer codes 1-8 (0 outside); with ``flag_values``/``flag_meanings`` the codes
  are mapped to the catalog's codes through the region ids.

Given a target grid, a file on a finer grid (by an integer factor, cells aligned) is
block-averaged onto it: means for soil, elevation and cropland fraction, sums for harvested
area, the most common code for region (ties go to the smaller code).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from cropsm import LAYER_MID_CM, N_LAYERS, catalog
from cropsm.errors import InputError
from cropsm.io import grid_step, open_netcdf, standardize_grid
from cropsm.io.units import check_range, convert, first_out_of_range

STATIC_VARIABLES: dict[str, tuple[str, str]] = {
    "elevation": ("m", "surface elevation"),
    "ph": ("1", "soil pH in water"),
    "sand": ("%", "sand content"),
    "silt": ("%", "silt content"),
    "clay": ("%", "clay content"),
    "bulk_density": ("g cm-3", "soil bulk density"),
    "cropland_fraction": ("1", "cropland area fraction"),
    "harvested_area": ("ha", "harvested area"),
    "region": ("1", "agricultural region"),
}
"""Canonical variable → (units, long_name)."""

SOIL_VARIABLES = ("ph", "sand", "silt", "clay", "bulk_density")

PHYSICAL_RANGE: dict[str, tuple[float, float]] = {
    "elevation": (-500.0, 9000.0),
    "ph": (3.0, 11.0),
    "sand": (0.0, 100.0),
    "silt": (0.0, 100.0),
    "clay": (0.0, 100.0),
    "bulk_density": (0.8, 2.0),
    "cropland_fraction": (0.0, 1.0),
    "harvested_area": (0.0, np.inf),
}
"""Physical range of each variable in its canonical units."""

TEXTURE_SUM_TOLERANCE = 2.0
"""sand + silt + clay must be 100 % within this many percentage points where all are defined."""

_OUTSIDE_MEANINGS = ("outside", "none", "no_region", "other", "missing", "ocean", "not_china")


def _units(da: xr.DataArray, name: str) -> str:
    """The declared units; the canonical ones when the attribute is absent."""
    return str(da.attrs.get("units", STATIC_VARIABLES[name][0]))


def _depths_cm(ds: xr.Dataset, path: Path) -> np.ndarray:
    """Source depths (cm): mid-points of the depth bounds if given, else the coordinate."""
    depth = ds["depth"]
    bounds_name = depth.attrs.get("bounds", "depth_bounds")
    if bounds_name in ds.variables and ds[bounds_name].ndim == 2:
        values = np.asarray(ds[bounds_name].values, dtype=float).mean(axis=1)
        units = ds[bounds_name].attrs.get("units", depth.attrs.get("units", "cm"))
    else:
        values = np.asarray(depth.values, dtype=float)
        units = depth.attrs.get("units", "cm")
    values = convert(values, units, "cm", path=path, where="coordinate 'depth'")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise InputError(
            path, "coordinate 'depth'", "holds negative or missing depths; expected depths in cm"
        )
    if np.unique(values).size != values.size:
        raise InputError(path, "coordinate 'depth'", "holds a depth twice")
    return values


def _soil_source(ds: xr.Dataset, name: str, path: Path) -> xr.DataArray:
    """One soil property in canonical units, range-checked, on its source depths (cm,
    ascending) or on the five layers."""
    da = ds[name]
    units = STATIC_VARIABLES[name][0]
    da = convert(da, _units(da, name), units, path=path, where=f"variable '{name}'")
    if "layer" in da.dims and set(da.dims) == {"layer", "lat", "lon"}:
        if da.sizes["layer"] != N_LAYERS:
            raise InputError(
                path,
                f"variable '{name}'",
                f"has {da.sizes['layer']} layers; expected {N_LAYERS} (0-10 ... 40-50 cm) or "
                "source depths on a 'depth' dimension",
            )
        da = da.transpose("layer", "lat", "lon").assign_coords(layer=np.arange(1, N_LAYERS + 1))
    elif "depth" in da.dims and set(da.dims) == {"depth", "lat", "lon"}:
        da = da.assign_coords(depth=_depths_cm(ds, path)).sortby("depth")
        da = da.transpose("depth", "lat", "lon")
    else:
        raise InputError(
            path,
            f"variable '{name}'",
            f"has dims {da.dims}; expected (depth, lat, lon) with source depths in cm, or "
            f"(layer, lat, lon) with {N_LAYERS} layers",
        )
    check_range(da, *PHYSICAL_RANGE[name], path, f"variable '{name}'", units)
    return da


def _on_layers(da: xr.DataArray) -> xr.DataArray:
    """A soil property on the five layers: linear in depth between source depths, constant
    beyond the outer ones."""
    if "layer" in da.dims:
        return da
    source = da["depth"].values
    if source.size == 1:
        layered = da.isel(depth=np.zeros(N_LAYERS, dtype=int))
    else:
        targets = np.clip(np.asarray(LAYER_MID_CM), source.min(), source.max())
        layered = da.interp(depth=targets, method="linear")
    layered = layered.rename(depth="layer").assign_coords(layer=np.arange(1, N_LAYERS + 1))
    return layered.transpose("layer", "lat", "lon")


def _check_texture(soil: dict[str, xr.DataArray], path: Path) -> None:
    """sand + silt + clay ≈ 100 % wherever all three are defined (on the source depths when
    all three share them, else on the layers)."""
    parts = [soil[name] for name in ("sand", "silt", "clay")]
    same_depths = all(p.dims == parts[0].dims for p in parts) and all(
        np.array_equal(p[p.dims[0]].values, parts[0][parts[0].dims[0]].values) for p in parts
    )
    if not same_depths:
        parts = [_on_layers(p) for p in parts]
    total = parts[0] + parts[1] + parts[2]
    found = first_out_of_range(total, 100.0 - TEXTURE_SUM_TOLERANCE, 100.0 + TEXTURE_SUM_TOLERANCE)
    if found is not None:
        location, value = found
        raise InputError(
            path,
            "variables 'sand', 'silt', 'clay'",
            f"sum to {value:.4g} % at {location}; expected 100 +/- {TEXTURE_SUM_TOLERANCE:g} % "
            "(all three in %, or all three as fractions with units '1')",
        )


def _plane(ds: xr.Dataset, name: str, path: Path) -> xr.DataArray:
    """A (lat, lon) variable in canonical units, range-checked."""
    da = ds[name]
    if set(da.dims) != {"lat", "lon"}:
        raise InputError(path, f"variable '{name}'", f"has dims {da.dims}; expected (lat, lon)")
    units = STATIC_VARIABLES[name][0]
    da = convert(da, _units(da, name), units, path=path, where=f"variable '{name}'")
    check_range(da, *PHYSICAL_RANGE[name], path, f"variable '{name}'", units)
    return da.transpose("lat", "lon")


def _crop_names(values: np.ndarray) -> list[str]:
    out = []
    for v in values:
        out.append(v.decode() if isinstance(v, bytes) else str(v))
    return [v.strip() for v in out]


def _harvested_area(ds: xr.Dataset, path: Path) -> xr.DataArray:
    """Harvested area (ha) of the catalog's crops, in catalog order."""
    da = ds["harvested_area"]
    if set(da.dims) != {"crop", "lat", "lon"}:
        raise InputError(
            path, "variable 'harvested_area'", f"has dims {da.dims}; expected (crop, lat, lon)"
        )
    names = _crop_names(da["crop"].values) if "crop" in da.coords else []
    wanted = catalog.crops()
    missing = [c for c in wanted if c not in names]
    if missing:
        raise InputError(
            path,
            "variable 'harvested_area'",
            f"no crop(s) {', '.join(missing)} on the 'crop' dimension (found "
            f"{', '.join(names) or 'no crop names'}); expected {', '.join(wanted)}",
        )
    da = da.assign_coords(crop=names).sel(crop=list(wanted))
    units = STATIC_VARIABLES["harvested_area"][0]
    da = convert(
        da, _units(da, "harvested_area"), units, path=path, where="variable 'harvested_area'"
    )
    check_range(da, *PHYSICAL_RANGE["harvested_area"], path, "variable 'harvested_area'", units)
    return da.transpose("crop", "lat", "lon")


def _region(ds: xr.Dataset, path: Path) -> xr.DataArray:
    """Region codes 0-8 in the catalog's numbering (through flag_meanings when present)."""
    da = ds["region"]
    where = "variable 'region'"
    if set(da.dims) != {"lat", "lon"}:
        raise InputError(path, where, f"has dims {da.dims}; expected (lat, lon)")
    da = da.transpose("lat", "lon")
    values = np.asarray(da.values, dtype=float)
    values = np.where(np.isnan(values), 0.0, values)
    if np.any(values != np.round(values)):
        bad = values[values != np.round(values)][0]
        raise InputError(path, where, f"holds {bad:g}; expected integer region codes")
    codes = values.astype(np.int64)
    flag_values = da.attrs.get("flag_values")
    flag_meanings = da.attrs.get("flag_meanings")
    if flag_values is not None and flag_meanings is not None:
        flags = np.atleast_1d(np.asarray(flag_values)).astype(np.int64)
        meanings = str(flag_meanings).split()
        if len(flags) != len(meanings):
            raise InputError(
                path,
                where,
                f"{len(flags)} flag_values but {len(meanings)} flag_meanings; expected one "
                "meaning per value",
            )
        mapping = {0: 0}
        for flag, meaning in zip(flags, meanings, strict=True):
            if meaning in catalog.region_ids():
                mapping[int(flag)] = catalog.region_code(meaning)
            elif meaning.lower() in _OUTSIDE_MEANINGS:
                mapping[int(flag)] = 0
            else:
                raise InputError(
                    path,
                    where,
                    f"flag meaning {meaning!r} is not a region id; expected one of "
                    f"{', '.join(catalog.region_ids())} (or 'outside')",
                )
        unknown = np.setdiff1d(np.unique(codes), list(mapping))
        if unknown.size:
            raise InputError(
                path,
                where,
                f"holds code {unknown[0]} that is not among flag_values {flags.tolist()}; "
                "expected only listed codes (or 0 outside)",
            )
        lookup = np.zeros(max(mapping) + 1, dtype=np.int64)
        for flag, code in mapping.items():
            lookup[flag] = code
        codes = lookup[codes]
    else:
        n_regions = len(catalog.regions())
        bad = (codes < 0) | (codes > n_regions)
        if bad.any():
            raise InputError(
                path,
                where,
                f"holds code {codes[bad][0]}; expected 0 (outside) or 1 to {n_regions}",
            )
    return xr.DataArray(codes.astype(np.int16), coords={"lat": da["lat"], "lon": da["lon"]})


def _block(source: np.ndarray, target: np.ndarray, path: Path, name: str) -> tuple[int, int]:
    """First source index and integer factor that tile the target cells with source cells."""
    source_step = grid_step(source, path, name)
    target_step = grid_step(target, None, f"target {name}")
    if np.isnan(target_step):
        target_step = source_step
    if np.isnan(source_step):
        source_step = target_step
    if np.isnan(source_step):
        source_step = target_step = 1.0
    ratio = target_step / source_step
    factor = int(round(ratio))
    if ratio < 1.0 - 1e-3:
        raise InputError(
            path,
            f"coordinate '{name}'",
            f"grid step {source_step:g} is coarser than the target step {target_step:g}; "
            "expected the target grid or a finer one",
        )
    if abs(ratio - factor) > 1e-3:
        raise InputError(
            path,
            f"coordinate '{name}'",
            f"target step {target_step:g} is not a whole multiple of the grid step "
            f"{source_step:g}; expected a finer grid by an integer factor",
        )
    first_edge = target[0] - target_step / 2.0
    start_float = (first_edge + source_step / 2.0 - source[0]) / source_step
    start = int(round(start_float))
    if abs(start_float - start) > 1e-3:
        raise InputError(
            path,
            f"coordinate '{name}'",
            f"cells are not aligned with the target grid (target cell edge {first_edge:g} falls "
            f"inside a cell); expected cell edges of the target grid to be cell edges here",
        )
    if start < 0 or start + factor * len(target) > len(source):
        raise InputError(
            path,
            f"coordinate '{name}'",
            f"grid {source[0]:g} to {source[-1]:g} does not cover the target grid "
            f"{target[0]:g} to {target[-1]:g}; expected the file to cover the target",
        )
    return start, factor


def _reduce_blocks(values: np.ndarray, factors: tuple[int, int], how: str) -> np.ndarray:
    """Reduce (..., lat, lon) over blocks of factor x factor cells: mean, sum or mode."""
    f_lat, f_lon = factors
    *lead, n_lat, n_lon = values.shape
    blocks = values.reshape(*lead, n_lat // f_lat, f_lat, n_lon // f_lon, f_lon)
    blocks = np.moveaxis(blocks, -3, -2).reshape(*lead, n_lat // f_lat, n_lon // f_lon, -1)
    if how == "mode":
        counts = np.stack([(blocks == code).sum(axis=-1) for code in range(blocks.max() + 1)])
        return counts.argmax(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if how == "sum":
            total = np.nansum(blocks, axis=-1)
            return np.where(np.isnan(blocks).all(axis=-1), np.nan, total)
        return np.nanmean(blocks, axis=-1)


def _to_target(
    fields: dict[str, xr.DataArray],
    target_lat: np.ndarray,
    target_lon: np.ndarray,
    path: Path,
) -> dict[str, xr.DataArray]:
    """All fields cropped and block-reduced onto the target grid."""
    any_field = next(iter(fields.values()))
    lat0, f_lat = _block(any_field["lat"].values, target_lat, path, "lat")
    lon0, f_lon = _block(any_field["lon"].values, target_lon, path, "lon")
    window = {
        "lat": slice(lat0, lat0 + f_lat * len(target_lat)),
        "lon": slice(lon0, lon0 + f_lon * len(target_lon)),
    }
    how = {"harvested_area": "sum", "region": "mode"}
    out = {}
    for name, da in fields.items():
        values = np.asarray(da.isel(window).values)
        reduced = _reduce_blocks(values, (f_lat, f_lon), how.get(name, "mean"))
        coords = {d: da[d].values for d in da.dims if d not in ("lat", "lon")}
        coords.update(lat=target_lat, lon=target_lon)
        out[name] = xr.DataArray(reduced.astype(values.dtype), coords=coords, dims=da.dims)
    return out


def read_static(
    path: str | Path,
    target_lat: np.ndarray | None = None,
    target_lon: np.ndarray | None = None,
) -> xr.Dataset:
    """Read the static input file into the canonical static dataset.

    Parameters
    ----------
    path
        The netCDF file (see the module docstring for its variables).
    target_lat, target_lon
        Optional ascending cell centres of the grid the model runs on. The file's grid must
        then be that grid (it may cover more) or finer by an integer factor with aligned cells;
        it is block-averaged onto the target.

    Returns
    -------
    xarray.Dataset
        ``elevation`` (lat, lon; m), ``ph``, ``sand``, ``silt``, ``clay``, ``bulk_density``
        (layer, lat, lon; 1, %, %, %, g cm-3), ``cropland_fraction`` (lat, lon; 1),
        ``harvested_area`` (crop, lat, lon; ha), ``region`` (lat, lon; int16 codes 0-8 with
        ``flag_values``/``flag_meanings``); ``lat``/``lon`` ascending, ``layer`` 1-5, ``crop``
        in the catalog's order. Loaded in memory.

    Raises
    ------
    InputError
        When the file cannot be read, a variable is missing or on the wrong dimensions, units
        do not convert, a value is out of range (pH 3-11, bulk density 0.8-2.0 g cm-3,
        fractions 0-1, texture 0-100 % summing to 100 +/- 2), a crop or region code is
        unknown, or the grid is coarser than, or not aligned with, the target grid.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, None, "static file not found")
    raw = open_netcdf(path)
    try:
        ds = standardize_grid(raw, path).load()
    finally:
        raw.close()
    missing = [name for name in STATIC_VARIABLES if name not in ds.data_vars]
    if missing:
        raise InputError(
            path,
            f"variable(s) {', '.join(repr(m) for m in missing)}",
            f"missing; found {', '.join(map(str, ds.data_vars)) or 'no variables'}; expected "
            f"{', '.join(STATIC_VARIABLES)}",
        )
    soil_sources = {name: _soil_source(ds, name, path) for name in SOIL_VARIABLES}
    _check_texture(soil_sources, path)
    soil = {name: _on_layers(da) for name, da in soil_sources.items()}
    fields: dict[str, xr.DataArray] = {
        "elevation": _plane(ds, "elevation", path),
        **soil,
        "cropland_fraction": _plane(ds, "cropland_fraction", path),
        "harvested_area": _harvested_area(ds, path),
        "region": _region(ds, path),
    }
    for name, da in fields.items():
        if da.dtype.kind == "f" and bool(da.isnull().all()):
            raise InputError(
                path,
                f"variable '{name}'",
                "every value is missing (NaN or the fill value); expected values at the "
                "stations' and the cropland's cells",
            )
    if target_lat is not None or target_lon is not None:
        if target_lat is None or target_lon is None:
            raise ValueError("give both target_lat and target_lon, or neither")
        fields = _to_target(
            fields,
            np.asarray(target_lat, dtype=np.float64),
            np.asarray(target_lon, dtype=np.float64),
            path,
        )
    regions = catalog.regions()
    out = xr.Dataset()
    for name, (units, long_name) in STATIC_VARIABLES.items():
        da = fields[name]
        attrs = {"units": units, "long_name": long_name}
        if name == "region":
            attrs.update(
                flag_values=np.array([r.code for r in regions], dtype=np.int16),
                flag_meanings=" ".join(r.id for r in regions),
                comment="0 outside the regions",
            )
            data = np.asarray(da.values).astype(np.int16)
        else:
            data = np.asarray(da.values, dtype=np.float32)
        out[name] = xr.DataArray(data, coords=da.coords, dims=da.dims, attrs=attrs)
    out = out.assign_coords(
        lat=("lat", out["lat"].values, {"units": "degrees_north", "standard_name": "latitude"}),
        lon=("lon", out["lon"].values, {"units": "degrees_east", "standard_name": "longitude"}),
        layer=(
            "layer",
            np.arange(1, N_LAYERS + 1),
            {"long_name": "soil layer (0-10 ... 40-50 cm)"},
        ),
        crop=("crop", np.array(catalog.crops(), dtype=object)),
    )
    out.attrs = {"title": "static inputs (cropsm canonical form)", "source_file": path.name}
    return out
