"""National control experiments: where omitting a feature group changes the product (section 2c(3)).

The paper simulates the reference product (crop-area-weighted over the six patterns, section
2c(2)) with four reduced network sets -- without precipitation P, without soil properties, without
air temperature T and without the cropping pattern -- and compares each with the reference made by
the full networks (Fig. 6, 0-10 cm). For both, the *median annual* soil moisture is used: the
annual mean of every calendar year, then the median over the years (Fig. 6 caption),

``dSM_g(c) = median_y mean_{d in y} SM_{no g}(d, c) - median_y mean_{d in y} SM_full(d, c)``

in m3 m-3; positive where the reduced model is wetter, i.e. where omitting the group causes an
overestimation of soil moisture.

The reduced network sets are trained by the station-level experiments
(:mod:`cropsm.attribute.station`, saved under ``RUN_DIR/attribution/models_no_<group>/``);
their products are made by the national product code (:mod:`cropsm.predict`) with those models.
The science here is the pure :func:`national_differences`; :func:`write_national_attribution`
and :func:`national_attribution_from_products` do the I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from cropsm.analyze.product import (
    DENSE_CROPLAND_FRACTION,
    annual_mean,
    median_annual,
    product_path,
    region_on_grid,
    standardize_product,
)
from cropsm.attribute.station import GROUP_LABELS, attribution_dir, reduced_models_dir
from cropsm.catalog import regions
from cropsm.io.atomic import atomic_output
from cropsm.io.static import read_static
from cropsm.maps import colorbar, field_extent, map_panel, new_figure, save_figure
from cropsm.predict.store import check_complete
from cropsm.run_layout import RunLayout, load_run_config
from cropsm.sources import grid_input_paths

SM_UNITS = "m3 m-3"
TOP_LAYER = 1
"""The paper's Fig. 6 shows the 0-10 cm layer."""

GROUP_TITLES: dict[str, str] = {
    "precipitation": "omitting precipitation P",
    "soil": "omitting soil properties",
    "temperature": "omitting air temperature T",
    "pattern": "omitting cropping patterns",
    "elevation": "omitting elevation",
    "vpd": "omitting VPD",
    "ssr": "omitting surface net solar radiation",
    "wind": "omitting wind speed",
    "cloud": "omitting total cloud cover",
}
"""Panel titles of Fig. 6 (the paper's wording for its four panels)."""

SUMMARY_COLUMNS: tuple[str, ...] = (
    "group",
    "area",
    "n_cells",
    "mean_m3_m-3",
    "area_weighted_mean_m3_m-3",
    "median_m3_m-3",
    "p05_m3_m-3",
    "p95_m3_m-3",
    "mean_abs_m3_m-3",
    "share_positive",
)
"""Columns of ``RUN_DIR/attribution/national_differences_summary.csv``."""

ALL_CHINA = "CHN"
"""Area label of the statistics over every cell of the product."""


def _check_field(da: xr.DataArray, name: str) -> xr.DataArray:
    if set(da.dims) != {"time", "lat", "lon"}:
        raise ValueError(f"{name}: expected dims (time, lat, lon), got {da.dims}")
    return da.transpose("time", "lat", "lon")


def median_annual_sm(sm: xr.DataArray) -> xr.DataArray:
    """Median over the calendar years of the annual mean soil moisture, cell by cell (Fig. 6).

    ``SM~(cell) = median_y ( mean_{d in y} SM(d, cell) )``; only complete calendar years are used
    when the series has any (:func:`cropsm.analyze.product.annual_mean`, the same definition as
    the product maps of Fig. 7a).

    Parameters
    ----------
    sm
        Daily soil moisture, dims ``(time, lat, lon)``, m3 m-3.

    Returns
    -------
    xarray.DataArray
        Dims ``(lat, lon)``, m3 m-3.
    """
    return median_annual(annual_mean(_check_field(sm, "soil moisture")))


def national_differences(
    reference_full: xr.DataArray, reference_reduced: Mapping[str, xr.DataArray]
) -> xr.Dataset:
    """Median annual SM of each reduced reference product minus the full one (2c(3), Fig. 6).

    ``dSM_g = median_y annual_mean(SM_no_g) - median_y annual_mean(SM_full)``, cell by cell.

    Parameters
    ----------
    reference_full
        Reference product of the full networks, top layer, dims ``(time, lat, lon)``, m3 m-3.
    reference_reduced
        ``{group: reference product of the networks without that group}``, same grid and days.

    Returns
    -------
    xarray.Dataset
        ``median_annual_sm_full (lat, lon)``, ``median_annual_sm_reduced (group, lat, lon)`` and
        ``sm_difference (group, lat, lon)``, all m3 m-3; ``group`` in the order given; attribute
        ``years`` gives the first and last calendar year used.

    Raises
    ------
    ValueError
        On wrong dims, no reduced product, or grids/days that differ from the full product's.
    """
    if not reference_reduced:
        raise ValueError("give at least one reduced reference product")
    full = _check_field(reference_full, "reference_full")
    full_median = median_annual_sm(full)
    years = sorted({int(y) for y in annual_mean(full)["year"].values})
    reduced_medians = []
    for group, da in reference_reduced.items():
        da = _check_field(da, f"reference_reduced[{group!r}]")
        try:
            xr.align(full, da, join="exact")
        except ValueError as err:
            raise ValueError(
                f"reference_reduced[{group!r}]: grid or days differ from the full product ({err})"
            ) from None
        reduced_medians.append(median_annual_sm(da).expand_dims(group=[group]))
    groups = list(reference_reduced)
    reduced = xr.concat(reduced_medians, dim="group").assign_coords(
        group=np.array(groups, dtype=object)
    )
    difference = reduced - full_median
    full_median.attrs = {"long_name": "median annual soil moisture, full networks",
                         "units": SM_UNITS}  # fmt: skip
    reduced.attrs = {"long_name": "median annual soil moisture, networks without the group",
                     "units": SM_UNITS}  # fmt: skip
    difference.attrs = {
        "long_name": "median annual soil moisture without the group minus the full reference",
        "units": SM_UNITS,
    }
    return xr.Dataset(
        {
            "median_annual_sm_full": full_median,
            "median_annual_sm_reduced": reduced,
            "sm_difference": difference,
        },
        attrs={
            "title": "national control experiments (Liu et al. 2021, section 2c(3), Fig. 6)",
            "years": f"{years[0]}-{years[-1]}" if years else "none",
        },
    )


def difference_summary(
    differences: xr.Dataset, region: xr.DataArray | None = None, region_names=None
) -> pd.DataFrame:
    """Statistics of every group's difference map over China and, optionally, by region.

    Per group and area: cells with a value, mean, ``cos(lat)``-area-weighted mean, median, 5th and
    95th percentiles, mean absolute difference (all m3 m-3) and the share of cells where the
    reduced model is wetter (difference > 0).

    Parameters
    ----------
    differences
        :func:`national_differences` output.
    region
        Optional region codes on the same ``(lat, lon)`` grid (0 outside).
    region_names
        ``{code: id}`` for the ``area`` column (default the codes as text).
    """
    weights_2d = np.broadcast_to(
        np.cos(np.deg2rad(differences["lat"].values))[:, None],
        (differences.sizes["lat"], differences.sizes["lon"]),
    )
    areas: dict[str, np.ndarray] = {
        ALL_CHINA: np.ones(weights_2d.shape, dtype=bool),
    }
    if region is not None:
        codes = region.transpose("lat", "lon").values
        for code in sorted(int(c) for c in np.unique(codes) if c > 0):
            name = (region_names or {}).get(code, str(code))
            areas[name] = codes == code
    rows = []
    for group in differences["group"].values:
        values = differences["sm_difference"].sel(group=group).transpose("lat", "lon").values
        for area, mask in areas.items():
            ok = mask & np.isfinite(values)
            v, w = values[ok], weights_2d[ok]
            rows.append(
                {
                    "group": str(group),
                    "area": area,
                    "n_cells": int(v.size),
                    "mean_m3_m-3": float(v.mean()) if v.size else np.nan,
                    "area_weighted_mean_m3_m-3": float(np.sum(v * w) / np.sum(w))
                    if v.size
                    else np.nan,
                    "median_m3_m-3": float(np.median(v)) if v.size else np.nan,
                    "p05_m3_m-3": float(np.percentile(v, 5)) if v.size else np.nan,
                    "p95_m3_m-3": float(np.percentile(v, 95)) if v.size else np.nan,
                    "mean_abs_m3_m-3": float(np.mean(np.abs(v))) if v.size else np.nan,
                    "share_positive": float(np.mean(v > 0)) if v.size else np.nan,
                }
            )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def national_differences_figure(
    differences: xr.Dataset, dense_cropland: xr.DataArray | None = None
) -> Figure:
    """Maps of every group's difference (2 x 2 for the paper's four groups; Fig. 6).

    One diverging colour scale centred on zero, shared by the panels (limits: the 98th
    percentile of ``|dSM|`` over all panels), China's outline and provinces, grey dots where the
    cropland fraction exceeds 0.5 when ``dense_cropland`` is given.
    """

    groups = [str(g) for g in differences["group"].values]
    n_cols = 2 if len(groups) > 1 else 1
    n_rows = int(np.ceil(len(groups) / n_cols))
    fig = new_figure((6.0 * n_cols + 1.0, 4.6 * n_rows))
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols)).ravel()
    values = differences["sm_difference"].values
    finite = np.abs(values[np.isfinite(values)])
    limit = float(np.percentile(finite, 98)) if finite.size else 1e-3
    limit = limit if limit > 0 else 1e-3
    extent = field_extent(differences["sm_difference"])
    mesh = None
    for i, (ax, group) in enumerate(zip(axes, groups, strict=False)):
        letter = chr(ord("a") + i)
        what = GROUP_TITLES.get(group, f"omitting {GROUP_LABELS.get(group, group)}")
        mesh = map_panel(
            ax, differences["sm_difference"].sel(group=group), cmap="RdBu", vmax=limit,
            symmetric=True, dots=dense_cropland, extent=extent, title=f"({letter}) {what}",
        )  # fmt: skip
    for ax in axes[len(groups) :]:
        ax.set_visible(False)
    colorbar(fig, mesh, list(axes[: len(groups)]), SM_UNITS,
             "median annual SM, reduced minus reference")  # fmt: skip
    years = differences.attrs.get("years", "")
    fig.suptitle(f"Annual SM difference, 0-10 cm, control experiments minus reference ({years})")
    return fig


# --------------------------------------------------------------------------------------------
# I/O
# --------------------------------------------------------------------------------------------


def reduced_product_path(run_dir: str | Path, group: str) -> Path:
    """Where the reference product of the networks without ``group`` goes:
    ``RUN_DIR/attribution/product_no_<group>.zarr``."""
    return attribution_dir(run_dir) / f"product_no_{group}.zarr"


def top_layer_reference(path: str | Path) -> xr.DataArray:
    """The reference scenario's top layer ``(time, lat, lon)`` of a product store (lazy)."""

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no national product")
    check_complete(path)  # a missing chunk file is refused, not read as fill
    ds = standardize_product(xr.open_zarr(path, consolidated=None), path)
    return ds["sm"].sel(scenario="reference", layer=TOP_LAYER, drop=True)


def write_national_attribution(
    run_dir: str | Path,
    reference_full: xr.DataArray,
    reference_reduced: Mapping[str, xr.DataArray],
    *,
    region: xr.DataArray | None = None,
    dense_cropland: xr.DataArray | None = None,
) -> dict:
    """Compute :func:`national_differences` and write its numbers and Fig. 6.

    Writes ``RUN_DIR/attribution/national_differences.nc`` (the maps),
    ``RUN_DIR/attribution/national_differences_summary.csv`` (:data:`SUMMARY_COLUMNS`) and
    ``RUN_DIR/figures/fig6_national_differences.png``.

    Returns
    -------
    dict
        National mean difference per group (m3 m-3) and the paths written.
    """

    run_dir = Path(run_dir)
    differences = national_differences(
        reference_full.load(), {g: da.load() for g, da in reference_reduced.items()}
    )
    out_dir = attribution_dir(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nc_path = out_dir / "national_differences.nc"
    with atomic_output(nc_path) as tmp:
        differences.assign_coords(group=differences["group"].astype(str)).to_netcdf(tmp)
    names = {r.code: r.id for r in regions()}
    summary = difference_summary(differences, region, names)
    csv_path = out_dir / "national_differences_summary.csv"
    with atomic_output(csv_path) as tmp:
        summary.to_csv(tmp, index=False)
    fig_path = save_figure(
        national_differences_figure(differences, dense_cropland),
        RunLayout(run_dir).figures_dir / "fig6_national_differences.png",
    )
    china = summary[summary["area"] == ALL_CHINA].set_index("group")
    return {
        "national_mean_difference_m3_m-3": {
            g: round(float(china.loc[g, "area_weighted_mean_m3_m-3"]), 5) for g in china.index
        },
        "files": [str(nc_path), str(csv_path), str(fig_path)],
    }


def national_attribution_from_products(
    run_dir: str | Path,
    reference_full_path: str | Path,
    reduced_product_paths: Mapping[str, str | Path],
) -> dict:
    """Fig. 6 from product stores: the full run's and one per reduced model set.

    Parameters
    ----------
    run_dir
        The run directory (outputs go to its ``attribution/`` and ``figures/``; the region codes
        and cropland fraction come from its static input when it has one).
    reference_full_path
        Product of the full networks (normally ``RUN_DIR/product.zarr``).
    reduced_product_paths
        ``{group: product store made with RUN_DIR/attribution/models_no_<group>}``.
    """
    full = top_layer_reference(reference_full_path)
    reduced = {g: top_layer_reference(p) for g, p in reduced_product_paths.items()}
    region, dense = _static_maps(run_dir, full)
    return write_national_attribution(run_dir, full, reduced, region=region, dense_cropland=dense)


def _static_maps(run_dir: str | Path, like: xr.DataArray):
    """Region codes and dense-cropland dots on the product grid, from the run's static input."""
    config = load_run_config(run_dir)
    static_path = grid_input_paths(config, RunLayout(Path(run_dir)))["static"]
    if not static_path or not Path(static_path).exists():
        return None, None

    lat, lon = like["lat"].values, like["lon"].values
    static = read_static(static_path, lat, lon)
    region = region_on_grid(static["region"].load(), lat, lon) if "region" in static else None
    dense = None
    if "cropland_fraction" in static:
        dense = region_on_grid(static["cropland_fraction"].load(), lat, lon)
        dense = dense > DENSE_CROPLAND_FRACTION
    return region, dense


ProductMaker = Callable[[Path, Path, Path], Path]
"""``make(run_dir, models_dir, out_path) -> out_path``: the reference product of a run made with
another model set (``models_dir`` in the layout of ``RUN_DIR/models``), written to ``out_path``."""


def national_attribution(
    run_dir: str | Path,
    groups: Sequence[str],
    *,
    make_product: ProductMaker | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Fig. 6 of a run, as far as its products allow.

    Needs the run's product (``RUN_DIR/product.zarr``, the predict stage) and one reference
    product per group at :func:`reduced_product_path`. With ``make_product`` each reduced product
    is made (or resumed, or found current) from ``RUN_DIR/attribution/models_no_<group>``;
    without it only reduced products that already exist are used. When something is missing the
    national maps are skipped and the reason returned.

    Returns
    -------
    dict
        :func:`write_national_attribution`'s summary, or ``{"national": "skipped: <reason>"}``.
    """

    run_dir = Path(run_dir)
    full_path = product_path(run_dir)
    if not full_path.exists():
        return {"national": f"skipped: no national product {full_path} (run the predict stage)"}
    if not groups:
        return {"national": "skipped: no national groups"}
    paths: dict[str, Path] = {}
    for group in groups:
        models = reduced_models_dir(run_dir, group)
        if not (models / "layer1" / "model.json").is_file():
            return {"national": f"skipped: no reduced model set {models} (station level first)"}
        out = reduced_product_path(run_dir, group)
        if make_product is not None:
            if log is not None:
                log(f"national product without {group}: {out}")
            make_product(run_dir, models, out)
        elif not out.exists():
            return {
                "national": f"skipped: no reduced product {out}; make it with `cropsm predict "
                f"{run_dir} --models {models} --out {out} --scenarios reference`"
            }
        paths[group] = out
    try:
        return national_attribution_from_products(run_dir, full_path, paths)
    except ValueError as err:  # e.g. a product stored without the reference scenario
        return {"national": f"skipped: {err}"}
