"""The ``analyze`` stage: every analysis of a run, numbers and figures side by side.

Reads the run's national product (:func:`cropsm.analyze.product.open_product`), the static region
codes and cropland fraction, the satellite product when the run has one, and the truth on the
virtual China; writes

* ``RUN_DIR/analysis/*.nc|csv``: the numbers of every figure, so it can be redrawn and checked;
* ``RUN_DIR/figures/*.png``: the figures (Figs. 7–10 of Liu et al. 2021, and truth checks);
* ``RUN_DIR/analysis/analyze_summary.json``: what ran, what was skipped and why, headline numbers.

The station analyses (Figs. 2, 3, S3) come from :mod:`cropsm.analyze.observations` when present.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cropsm.analyze import product as prod
from cropsm.analyze import satellite as sat
from cropsm.analyze import scenarios as scen
from cropsm.io.atomic import atomic_output
from cropsm.progress import progress_callback
from cropsm.provenance import write_json
from cropsm.sources import grid_input_paths, load_grid_inputs
from cropsm.stage_registry import RunContext, stage

ANALYSIS_DIR = "analysis"
FIGURE_DIR = "figures"
TOP_LAYER = 1
SUMMARY_FILE = "analyze_summary.json"


@dataclass
class AnalysisInputs:
    """What the analyses read, in canonical form; ``None`` where the run does not have it."""

    sm: xr.DataArray | None  # (scenario, layer, time, lat, lon), m3 m-3
    region: xr.DataArray | None  # (lat, lon) codes 1..8, 0 outside
    dense_cropland: xr.DataArray | None  # (lat, lon) bool, cropland fraction > 0.5
    satellite: xr.DataArray | None  # (time, lat, lon), m3 m-3
    truth: xr.Dataset | None  # truth store (virtual China only)
    notes: dict
    pattern_flag: xr.DataArray | None = None  # (scenario, lat, lon) 1/0, the product's flag
    cropland: xr.DataArray | None = None  # (lat, lon) bool, cells with a product
    members: xr.Dataset | None = None  # member_sum, member_days, slot_month (ensembles)
    inflation: dict | None = None  # {layer: spread inflation} from models/ensemble.json


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def write_netcdf(ds: xr.Dataset, path: Path) -> Path:
    """Write a dataset to netCDF via a temporary file (never half written)."""
    ds = ds.copy()
    for name in list(ds.coords) + list(ds.data_vars):
        if ds[name].dtype == object:
            ds[name] = ds[name].astype(str)
    with atomic_output(path) as tmp:
        ds.to_netcdf(tmp)
    return path


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write a table to CSV via a temporary file, floats with 6 significant digits."""
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")
    return path


def write_figure(fig, path: Path) -> Path:
    """Save a matplotlib figure as PNG via a temporary file."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def _rel(path: Path, run_dir: Path) -> str:
    return str(Path(path).relative_to(run_dir))


# --------------------------------------------------------------------------------------------
# the analyses, each from canonical inputs to files
# --------------------------------------------------------------------------------------------


def analyze_product(
    stats: xr.Dataset, run_dir: Path, dense_cropland: xr.DataArray | None = None
) -> dict:
    """Fig. 7a,b for every layer of the reference, plus the cropland-mean annual series.

    ``stats`` is :func:`cropsm.analyze.product.product_statistics` of the product.
    """
    out_dir, fig_dir = run_dir / ANALYSIS_DIR, run_dir / FIGURE_DIR
    annual = prod.annual_means_of_statistics(stats).sel(scenario=prod.REFERENCE_SCENARIO)
    annual = annual.drop_vars("scenario")
    result = prod.magnitude_and_trend_from_annual(annual)
    files = [write_netcdf(result, out_dir / "product_magnitude_trend.nc")]
    for stale in fig_dir.glob("fig7ab_product_layer*.png"):  # one figure per layer before
        stale.unlink()
    fig = prod.magnitude_trend_layers_figure(result, dense_cropland)
    files.append(write_figure(fig, fig_dir / "fig7ab_product_all_layers.png"))
    series = prod.national_series_from_annual(annual)
    frame = series.to_dataframe(name="sm_m3_m-3").reset_index()[["layer", "year", "sm_m3_m-3"]]
    files.append(write_csv(frame, out_dir / "product_national_annual.csv"))
    national = prod.national_summary(series)
    files.append(write_csv(national, out_dir / "product_national_summary.csv"))
    files.append(
        write_figure(
            prod.national_annual_figure(series), fig_dir / "fig7_product_national_annual.png"
        )
    )
    trend = result["sm_trend"]
    weights = prod.area_weights(trend["lat"]).broadcast_like(trend.isel(layer=0, drop=True))
    mean_trend = (trend.fillna(0) * weights).sum(("lat", "lon")) / (trend.notnull() * weights).sum(
        ("lat", "lon")
    )
    return {
        "years": result.attrs.get("years", ""),
        "mean_cell_trend_by_layer_m3_m-3_yr-1": {
            f"layer{int(k)}": float(v)
            for k, v in zip(trend["layer"].values, mean_trend.values, strict=True)
        },
        "national_trend_layer1_m3_m-3_yr-1": float(national["sen_slope_m3_m-3_yr-1"].iloc[0]),
        "national_top_bottom_r": float(national["pearson_r_with_layer1"].iloc[-1]),
        "files": [_rel(f, run_dir) for f in files],
    }


def analyze_satellite(
    sm: xr.DataArray,
    satellite: xr.DataArray,
    region: xr.DataArray | None,
    run_dir: Path,
    dense_cropland: xr.DataArray | None = None,
    small_regions: dict | None = None,
) -> dict:
    """Figs. 7c-f and 8: the reference top layer against the satellite product (regions in
    ``small_regions``, with too few cells, get no regional mean)."""
    out_dir, fig_dir = run_dir / ANALYSIS_DIR, run_dir / FIGURE_DIR
    top = sm.sel(scenario=prod.REFERENCE_SCENARIO, layer=TOP_LAYER, drop=True)
    comparison = sat.compare_with_satellite(top, satellite).compute()
    summary = sat.comparison_summary(comparison)
    files = [
        write_netcdf(comparison, out_dir / "satellite_comparison.nc"),
        write_csv(summary, out_dir / "satellite_comparison_summary.csv"),
        write_figure(
            sat.satellite_maps_figure(comparison, dense_cropland),
            fig_dir / "fig7cf_satellite_comparison.png",
        ),
    ]
    result = {
        "magnitude_r": float(summary.loc[summary["quantity"] == "magnitude", "pearson_r"].iloc[0]),
        "trend_r": float(summary.loc[summary["quantity"] == "trend", "pearson_r"].iloc[0]),
    }
    if region is not None:
        monthly = sat.monthly_comparison_by_region(top, satellite, region)
        monthly = prod.drop_small_regions(monthly, small_regions or {})
        files.append(write_csv(monthly, out_dir / "satellite_monthly_by_region.csv"))
        files.append(
            write_figure(
                sat.monthly_by_region_figure(monthly), fig_dir / "fig8_monthly_by_region.png"
            )
        )
    result["files"] = [_rel(f, run_dir) for f in files]
    return result


def ensemble_effects(
    members: xr.Dataset,
    region: xr.DataArray,
    time,
    inflation: dict | None = None,
    small_regions: dict | None = None,
) -> tuple[xr.Dataset, xr.DataArray]:
    """Each member's Fig. 9 and Fig. 10 effects, their mean, spread and significance.

    Returns the :func:`cropsm.analyze.scenarios.ensemble_effect_statistics` of the median annual
    effects ``(pattern, layer, lat, lon)`` and the members' monthly regional effects
    ``(pattern, member, layer, region, month)``.
    """
    reference = prod.REFERENCE_SCENARIO
    patterns = [str(p) for p in members["scenario"].values if str(p) != reference]
    diffs, monthly_parts = [], []
    for pattern in patterns:  # one pattern (and the reference) at a time bounds the memory
        pick = {"scenario": [pattern, reference]}
        annual, climatology = scen.member_means_from_sums(
            members["member_sum"].sel(pick), members["member_days"].sel(pick),
            members["slot_month"].values, time=time,
        )  # fmt: skip
        diffs.append(scen.differences_from_annual(annual, region))
        monthly_parts.append(scen.monthly_differences_from_climatology(climatology, region))
    member_diff = xr.concat(diffs, dim="pattern")
    layers = member_diff["layer"].values
    factor = xr.DataArray(
        [float((inflation or {}).get(int(k), 1.0) or 1.0) for k in layers],
        dims="layer",
        coords={"layer": layers},
    )
    effects = scen.ensemble_effect_statistics(member_diff, factor)
    effects["spread_inflation"] = factor
    monthly = xr.concat(monthly_parts, dim="pattern")
    monthly = prod.drop_small_regions(monthly, small_regions or {})
    return effects, monthly


def analyze_scenarios(
    stats: xr.Dataset,
    region: xr.DataArray,
    run_dir: Path,
    dense_cropland: xr.DataArray | None = None,
    small_regions: dict | None = None,
    members: xr.Dataset | None = None,
    inflation: dict | None = None,
    cropland: xr.DataArray | None = None,
    time=None,
) -> tuple[dict, xr.DataArray, xr.Dataset | None]:
    """Figs. 9 and 10: each pattern minus the reference, maps and monthly by region.

    Regions in ``small_regions`` (too few cells) get no regional mean (NaN, not plotted). With
    the ensemble's ``members`` (the product's per-member monthly sums) each effect also gets its
    spread over the members and a significance mask (:func:`ensemble_effects`): Fig. 9 greys the
    cells where the effect is not larger than twice its calibrated spread
    (:func:`cropsm.analyze.scenarios.ensemble_effect_statistics`), Fig. 10 gets bands, and the
    share of cropland with a significant effect is tabulated per pattern and layer.
    Returns the summary, the Fig. 9 differences ``(pattern, layer, lat, lon)`` and the effect
    statistics (None without members).
    """
    out_dir, fig_dir = run_dir / ANALYSIS_DIR, run_dir / FIGURE_DIR
    annual = prod.annual_means_of_statistics(stats)
    diff = scen.differences_from_annual(annual, region)
    ds = diff.to_dataset(name="median_annual_sm_difference")
    ds.attrs["double_cropping_patterns_ne_masked"] = " ".join(scen.double_cropping_patterns())
    ds.attrs["years"] = prod.years_label(annual[prod.YEAR_DIM].values)
    effects = member_monthly = None
    significance: dict = {}
    files = []
    if members is not None:
        effects, member_monthly = ensemble_effects(
            members, region, time, inflation, small_regions,
        )  # fmt: skip
        valid = effects["effect_mean"].notnull()
        if cropland is not None:
            valid = valid & cropland
        shares = xr.Dataset(
            {
                "share_significant": scen.significant_share(effects["significant"], valid),
                "share_significant_calibrated": scen.significant_share(
                    effects["significant_calibrated"], valid
                ),
            }
        )
        share_frame = shares.to_dataframe().reset_index()[
            ["pattern", "layer", "share_significant", "share_significant_calibrated"]
        ]
        files.append(write_csv(share_frame, out_dir / "scenario_significant_share.csv"))
        files.append(write_netcdf(effects, out_dir / "scenario_effect_ensemble.nc"))
        significance = {
            "members": int(effects.attrs["members"]),
            "rule": effects.attrs["rule"],
            "share_significant_layer1": {
                str(r.pattern): _rounded(r.share_significant)
                for r in share_frame[share_frame["layer"] == TOP_LAYER].itertuples()
            },
            "share_significant_calibrated_layer1": {
                str(r.pattern): _rounded(r.share_significant_calibrated)
                for r in share_frame[share_frame["layer"] == TOP_LAYER].itertuples()
            },
        }
        band = member_monthly.to_dataframe(name="sm_difference_m3_m-3").reset_index()
        files.append(write_csv(band, out_dir / "scenario_monthly_differences_members.csv"))
        files.append(
            write_figure(
                scen.monthly_bands_figure(
                    member_monthly,
                    TOP_LAYER,
                    inflation=float(effects["spread_inflation"].sel(layer=TOP_LAYER)),
                ),
                fig_dir / "fig10_scenario_monthly_bands.png",
            )
        )
    files += [
        write_netcdf(ds, out_dir / "scenario_differences.nc"),
        write_figure(
            scen.scenario_maps_figure(
                diff,
                TOP_LAYER,
                dense_cropland,
                None if effects is None else effects["significant_calibrated"],
            ),
            fig_dir / "fig9_scenario_differences.png",
        ),  # fmt: skip
    ]
    monthly = scen.monthly_differences_from_climatology(stats["monthly_climatology"], region)
    monthly = prod.drop_small_regions(monthly, small_regions or {})
    frame = monthly.to_dataframe(name="sm_difference_m3_m-3").reset_index()
    frame = frame[["pattern", "layer", "region", "month", "sm_difference_m3_m-3"]]
    files.append(write_csv(frame, out_dir / "scenario_monthly_differences.csv"))
    files.append(
        write_figure(
            scen.monthly_differences_figure(monthly, TOP_LAYER),
            fig_dir / "fig10_scenario_monthly_differences.png",
        )
    )
    top = diff.sel(layer=TOP_LAYER)
    weights = prod.area_weights(top["lat"]).broadcast_like(top.isel(pattern=0, drop=True))
    mean = (top.fillna(0) * weights).sum(("lat", "lon")) / (top.notnull() * weights).sum(
        ("lat", "lon")
    )
    result = {
        "mean_layer1_difference_m3_m-3": {
            str(p): float(v) for p, v in zip(mean["pattern"].values, mean.values, strict=True)
        },
        "ne_masked_patterns": list(scen.double_cropping_patterns()),
        "files": [_rel(f, run_dir) for f in files],
    }
    if significance:
        result["significance"] = significance
    return result, diff, effects


def analyze_against_truth(
    stats: xr.Dataset,
    region_cells: xr.DataArray,
    product_diff: xr.DataArray,
    run_dir: Path,
    pattern_flag: xr.DataArray | None = None,
    small_regions: dict | None = None,
    effects: xr.Dataset | None = None,
) -> dict:
    """On the virtual China: Fig. 9 against the true effects, and the product's error by region;
    with the ensemble's ``effects`` also the calibration of the effect intervals and the sign
    agreement of the significant cells (:func:`effect_calibration_table`).

    ``stats`` is :func:`cropsm.analyze.product.product_statistics` computed with the truth;
    ``region_cells`` the region code of each truth cell; ``product_diff`` the product's Fig. 9
    differences on the grid (:func:`analyze_scenarios`); ``pattern_flag`` the product's pattern
    flag ``(scenario, lat, lon)``, to score each map on the flag-1 and flag-0 cells apart
    (:func:`cropsm.analyze.scenarios.agreement_with_truth`).
    """
    out_dir, fig_dir = run_dir / ANALYSIS_DIR, run_dir / FIGURE_DIR
    cell_lat, cell_lon = stats["cell_lat"].values, stats["cell_lon"].values
    truth_annual = prod.annual_means_of_statistics(stats, variable="truth_annual_mean")
    truth_diff = scen.differences_from_annual(truth_annual, region_cells)
    product_diff_cells = scen.grid_to_cells(product_diff, cell_lat, cell_lon)
    flag_cells = None
    if pattern_flag is not None:
        patterns = [str(p) for p in truth_diff["pattern"].values]
        flag = pattern_flag.rename(scenario="pattern").sel(pattern=patterns)
        flag_cells = scen.grid_to_cells(flag, cell_lat, cell_lon)
    agreement = scen.agreement_with_truth(product_diff_cells, truth_diff, flag_cells)
    truth_grid = scen.cells_to_grid(
        truth_diff, cell_lat, cell_lon, product_diff["lat"].values, product_diff["lon"].values
    ).to_dataset(name="true_median_annual_sm_difference")
    errors = prod.drop_small_regions(scen.error_table(stats), small_regions or {})
    files = [
        write_csv(agreement, out_dir / "truth_scenario_agreement.csv"),
        write_netcdf(truth_grid, out_dir / "truth_scenario_differences.nc"),
        write_csv(errors, out_dir / "truth_product_error.csv"),
        write_figure(
            scen.truth_agreement_figure(product_diff_cells, truth_diff, TOP_LAYER),
            fig_dir / "truth_scenario_agreement.png",
        ),
        write_figure(scen.truth_error_figure(errors), fig_dir / "truth_product_error.png"),
    ]
    calibration = None
    if effects is not None:
        calibration = effect_calibration_table(effects, truth_diff, cell_lat, cell_lon)
        files.append(write_csv(calibration, out_dir / "truth_effect_calibration.csv"))
    top = agreement[(agreement["layer"] == TOP_LAYER) & (agreement["pattern_flag"] == "all")]
    ref = errors[(errors["scenario"] == prod.REFERENCE_SCENARIO) & (errors["region"] == "CHN")]
    extra = {} if calibration is None else {"effect_calibration": _calibration_summary(calibration)}
    return {
        **extra,
        "layer1_sign_agreement": {r.pattern: _rounded(r.sign_agreement) for r in top.itertuples()},
        "layer1_pearson_r": {r.pattern: _rounded(r.pearson_r) for r in top.itertuples()},
        "reference_rmse_chn_by_layer_m3_m-3": {
            f"layer{int(k)}": round(float(v), 4)
            for k, v in zip(ref["layer"], ref["rmse_m3_m-3"], strict=True)
        },
        "scenario_agreement": scen.agreement_summary(agreement),
        "files": [_rel(f, run_dir) for f in files],
    }


def effect_calibration_table(
    effects: xr.Dataset, truth_diff: xr.DataArray, cell_lat, cell_lon
) -> pd.DataFrame:
    """Per pattern and layer, against the true median annual effects at the truth's cells:
    coverage of the central 90 % interval ``mean +/- 1.645 spread`` (raw spread and calibrated
    spread), share of cells significant, and the sign agreement of the significant cells
    (:func:`cropsm.analyze.scenarios.significant_sign_agreement`)."""
    cells = {
        name: scen.grid_to_cells(effects[name], cell_lat, cell_lon)
        for name in (
            "effect_mean", "effect_spread", "effect_spread_calibrated", "significant",
            "significant_calibrated",
        )
    }  # fmt: skip
    rows = []
    for pattern in truth_diff["pattern"].values:
        for layer in truth_diff["layer"].values:
            pick = {"pattern": pattern, "layer": layer}
            t = truth_diff.sel(pick).values
            m = cells["effect_mean"].sel(pick).values
            valid = np.isfinite(t) & np.isfinite(m)
            row = {"pattern": str(pattern), "layer": int(layer), "cells": int(valid.sum())}
            for kind, spread, sig in (
                ("raw", "effect_spread", "significant"),
                ("calibrated", "effect_spread_calibrated", "significant_calibrated"),
            ):
                s_ = cells[spread].sel(pick).values
                g = cells[sig].sel(pick).values.astype(bool) & valid
                row[f"coverage90_{kind}"] = scen.effect_interval_coverage(t, m, s_)
                row[f"share_significant_{kind}"] = float(g.sum() / max(valid.sum(), 1))
                row[f"significant_cells_{kind}"] = int(g.sum())
                row[f"significant_sign_agreement_{kind}"] = scen.significant_sign_agreement(t, m, g)
            rows.append(row)
    return pd.DataFrame(rows)


def _calibration_summary(table: pd.DataFrame) -> dict:
    """Medians over the maps of :func:`effect_calibration_table` for the run summary."""
    out = {}
    for column in table.columns:
        if column in ("pattern", "layer", "cells"):
            continue
        if column.startswith("significant_cells"):
            continue
        values = table.loc[table["cells"] > 0, column].dropna()
        out[f"median_{column}"] = _rounded(values.median()) if len(values) else None
    # pooled over every map (pattern, layer): the share of all significant cells whose sign is
    # the true one, and of all cells whose true effect lies in the interval
    for kind in ("raw", "calibrated"):
        n_sig = table[f"significant_cells_{kind}"]
        agree = table[f"significant_sign_agreement_{kind}"].fillna(0.0) * n_sig
        out[f"pooled_significant_sign_agreement_{kind}"] = (
            _rounded(agree.sum() / n_sig.sum()) if n_sig.sum() else None
        )
        out[f"pooled_significant_cells_{kind}"] = int(n_sig.sum())
        covered = (table[f"coverage90_{kind}"].fillna(0.0) * table["cells"]).sum()
        out[f"pooled_coverage90_{kind}"] = (
            _rounded(covered / table["cells"].sum()) if table["cells"].sum() else None
        )
    return out


def _rounded(value, digits: int = 3) -> float | None:
    """A number for a JSON summary: rounded, None when not finite."""
    return round(float(value), digits) if np.isfinite(value) else None


# --------------------------------------------------------------------------------------------
# inputs of a run
# --------------------------------------------------------------------------------------------


def load_analysis_inputs(ctx: RunContext) -> AnalysisInputs:
    """The product, regions, dense-cropland dots, satellite and truth of a run."""
    notes: dict = {}
    try:
        product = prod.open_product(ctx.run_dir)
        sm = product["sm"]
    except FileNotFoundError as err:
        product, sm = None, None
        notes["product"] = str(err)
    paths = grid_input_paths(ctx.config, ctx.layout)
    data = load_grid_inputs(ctx.config, ctx.layout, with_satellite=True)
    static, satellite = data["static"], data["satellite"]
    if satellite is None:
        notes["satellite"] = "the run has no satellite product ([inputs.files] satellite)"
    region = dense = pattern_flag = None
    if product is not None and sm is not None and "pattern_flag" in product.data_vars:
        pattern_flag = product["pattern_flag"].load()
    if sm is not None:
        lat, lon = sm["lat"].values, sm["lon"].values
        if product is not None and "region" in product.data_vars:
            region = prod.region_on_grid(product["region"].load(), lat, lon)
        elif static is not None:
            region = prod.region_on_grid(static["region"].load(), lat, lon)
        fraction = None
        if product is not None and "cropland_fraction" in product.data_vars:
            fraction = product["cropland_fraction"]
        elif static is not None and "cropland_fraction" in static:
            fraction = static["cropland_fraction"]
        if fraction is not None:
            frac = prod.region_on_grid(fraction.load(), lat, lon)
            dense = frac > prod.DENSE_CROPLAND_FRACTION
    if region is None:
        notes["region"] = "no region codes (static file); regional analyses skipped"
    truth = None
    if paths.get("truth") is not None and Path(paths["truth"]).exists():
        from cropsm.twin.truth_store import open_truth

        truth = open_truth(paths["truth"])
    else:
        notes["truth"] = "no known truth (only the virtual China has one)"
    cropland = None
    if product is not None and sm is not None and "cropland_mask" in product.data_vars:
        cropland = prod.region_on_grid(product["cropland_mask"].load(), lat, lon) == 1
    members = None
    if product is not None and "member_sum" in product.data_vars:
        members = product[["member_sum", "member_days", "slot_month"]]
    inflation = _spread_inflation(ctx.run_dir)
    return AnalysisInputs(
        sm, region, dense, satellite, truth, notes, pattern_flag, cropland, members, inflation
    )


def _spread_inflation(run_dir: Path) -> dict | None:
    """``{layer: spread inflation}`` of the run's calibrated ensemble (models/ensemble.json)."""
    path = Path(run_dir) / "models" / "ensemble.json"
    if not path.is_file():
        return None
    layers = json.loads(path.read_text(encoding="utf-8")).get("layers", {})
    return {int(k.removeprefix("layer")): v.get("spread_inflation") for k, v in layers.items()}


def _observations(run_dir: Path) -> dict | None:
    """Station analyses of :mod:`cropsm.analyze.observations`, when that module exists."""
    try:
        from cropsm.analyze.observations import analyze_observations
    except ModuleNotFoundError as err:
        if err.name not in ("cropsm.analyze.observations",):
            raise
        return None
    return analyze_observations(run_dir) or {}


def run_analyses(ctx: RunContext) -> dict:
    """Run every analysis the run's inputs allow; write the summary; return headline numbers."""
    run_dir = Path(ctx.run_dir)
    say = ctx.console.print
    summary: dict = {"ran": {}, "skipped": {}}
    observations = _observations(run_dir)
    if observations is None:
        summary["skipped"]["observations"] = "cropsm.analyze.observations is not installed"
    else:
        summary["ran"]["observations"] = observations
    inputs = load_analysis_inputs(ctx)
    sm = inputs.sm
    if sm is not None and prod.REFERENCE_SCENARIO not in set(map(str, sm["scenario"].values)):
        inputs.notes["product"] = "the product has no 'reference' scenario ([predict] scenarios)"
        sm = None
    if sm is None:
        for name in ("product", "satellite", "scenarios", "truth"):
            summary["skipped"][name] = inputs.notes["product"]
    else:
        truth = region_cells = None
        small: dict = {}  # regions with too few cells: not averaged as regions (CHN keeps them)
        if inputs.region is not None:
            small = prod.small_regions(inputs.region, inputs.cropland)
            summary["small_regions"] = small
            summary["min_region_cells"] = prod.MIN_REGION_CELLS
        if inputs.truth is not None and inputs.region is not None:
            truth = scen.truth_scenarios(inputs.truth)
            region_cells = scen.grid_to_cells(
                inputs.region, truth["cell_lat"].values, truth["cell_lon"].values
            )
        say(
            "  one pass over the product: annual means, monthly climatology"
            + (", error against the truth" if truth is not None else "")
        )
        with progress_callback(ctx.console) as report:
            stats = prod.product_statistics(
                sm,
                truth=truth,
                truth_region=None if region_cells is None else region_cells.values,
                progress=report,
            )
        say("  product: median annual SM and trend (Fig. 7a,b)")
        summary["ran"]["product"] = analyze_product(stats, run_dir, inputs.dense_cropland)
        if inputs.satellite is None:
            summary["skipped"]["satellite"] = inputs.notes["satellite"]
        else:
            say("  satellite comparison (Figs. 7c-f, 8)")
            summary["ran"]["satellite"] = analyze_satellite(
                sm, inputs.satellite, inputs.region, run_dir, inputs.dense_cropland, small
            )
        if inputs.region is None or not scen.pattern_scenarios(sm):
            reason = inputs.notes.get("region", "the product holds no pattern scenario")
            summary["skipped"]["scenarios"] = reason
            summary["skipped"]["truth"] = reason
        else:
            say("  scenarios: pattern minus reference (Figs. 9, 10)")
            result, diff, effects = analyze_scenarios(
                stats, inputs.region, run_dir, inputs.dense_cropland, small,
                inputs.members, inputs.inflation, inputs.cropland, sm["time"].values,
            )  # fmt: skip
            summary["ran"]["scenarios"] = result
            if truth is None:
                summary["skipped"]["truth"] = inputs.notes["truth"]
            else:
                say("  virtual China: product and scenario effects against the truth")
                summary["ran"]["truth"] = analyze_against_truth(
                    stats, region_cells, diff, run_dir, inputs.pattern_flag, small, effects
                )

    write_json(run_dir / ANALYSIS_DIR / SUMMARY_FILE, summary)
    return _headline(summary)


def _headline(summary: dict) -> dict:
    """A few numbers for the run summary table."""
    ran = summary["ran"]
    out: dict = {"analyses": ",".join(ran) or "none"}
    if "product" in ran:
        out["layer1_national_trend"] = f"{ran['product']['national_trend_layer1_m3_m-3_yr-1']:.2e}"
    if "satellite" in ran:
        out["satellite_r_magnitude"] = round(ran["satellite"]["magnitude_r"], 3)
    if "truth" in ran:
        signs = [v for v in ran["truth"]["layer1_sign_agreement"].values() if v is not None]
        out["truth_sign_agreement_mean"] = round(float(np.mean(signs)), 3) if signs else None
        # every pattern and layer by pattern flag (analysis/truth_scenario_agreement.csv)
        out["truth_scenario_agreement"] = ran["truth"].get("scenario_agreement", {})
    if "significance" in ran.get("scenarios", {}):
        out["scenario_significance"] = ran["scenarios"]["significance"]
    if "effect_calibration" in ran.get("truth", {}):
        out["truth_effect_calibration"] = ran["truth"]["effect_calibration"]
    if summary["skipped"]:
        out["skipped"] = ",".join(summary["skipped"])
    return out


def read_analysis_summary(run_dir: Path) -> dict | None:
    """``RUN_DIR/analysis/analyze_summary.json``, or None if the stage has not run."""
    path = Path(run_dir) / ANALYSIS_DIR / SUMMARY_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


@stage(
    "analyze",
    "median annual SM and trends, satellite comparison, cropping-pattern effects (Figs. 2-3, 7-10)",
    ("analyze",),
    needs=("grid",),
)
def analyze_stage(ctx: RunContext) -> dict:
    return run_analyses(ctx)  # (a torn chunk is named by the stage registry's guard)
