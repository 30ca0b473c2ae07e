"""The stages of ``cropsm run``, in order. Each is a thin wrapper over importable functions.

Stages of later steps (predict, attribute, analyze, report) are defined beside their code and
registered by importing their modules at the end of this file, in pipeline order.
"""

from __future__ import annotations

from pathlib import Path

from cropsm.errors import ConfigError, InputError
from cropsm.pipeline import RunContext, stage
from cropsm.progress import progress_callback


def twin_dir(ctx: RunContext) -> Path:
    twin = ctx.config.inputs.twin
    return ctx.run_dir / "inputs" / f"twin-{twin.preset}-seed{twin.seed}"


def input_paths(ctx: RunContext) -> dict:
    """Paths of the run's input files, for the virtual China or the user's files."""
    if ctx.config.inputs.twin is not None:
        root = twin_dir(ctx)
        return {
            "stations": root / "stations" / "stations.csv",
            "observations": root / "stations" / "observations.csv",
            "climate": [str(root / "climate" / "era5_daily_*.nc")],
            "static": root / "static" / "static.nc",
            "satellite": [str(root / "satellite" / "*.nc")],
            "truth": root / "truth.zarr",
        }
    files = ctx.config.inputs.files
    return {
        "stations": files.stations,
        "observations": files.observations,
        "climate": files.climate,
        "static": files.static,
        "satellite": files.satellite,
        "truth": None,
    }


@stage("inputs", "generate the virtual China or check the user's input files", ("inputs",))
def inputs_stage(ctx: RunContext) -> dict:
    from cropsm.twin.generate import GENERATOR_VERSION, generate_twin, read_twin_summary

    if ctx.config.inputs.uscrn is not None:
        from cropsm.provenance import write_json
        from cropsm.realdata import read_uscrn_inputs

        report = read_uscrn_inputs(ctx.config.inputs.uscrn)["report"]
        write_json(ctx.run_dir / "inputs" / "uscrn_report.json", report)
        return {
            "files": report["files"],
            "stations": report["stations_with_observations"],
            "observations": report["observations"],
        }
    twin = ctx.config.inputs.twin
    if twin is None:
        from cropsm.io.check import check_inputs

        return check_inputs(input_paths(ctx), ctx.config.features.groups_off)
    root = twin_dir(ctx)
    existing = read_twin_summary(root)
    if (
        existing is not None
        and existing.get("preset") == twin.preset
        and existing.get("seed") == twin.seed
        and existing.get("generator_version") == GENERATOR_VERSION
    ):
        ctx.console.print(f"  reusing the virtual China in {root}")
        summary = existing
    else:
        with progress_callback(ctx.console) as report:
            summary = generate_twin(root, twin.preset, twin.seed, overwrite=True, progress=report)
    return {
        "twin_dir": str(root),
        "cropland_cells": summary["cropland_cells"],
        "stations": summary["stations"],
        "observations": summary["observations"],
    }


def load_run_inputs(ctx: RunContext, with_satellite: bool = False) -> dict:
    """The run's inputs in canonical form, read through the user-file readers.

    The value-range scan is skipped: the ``inputs`` stage validated the user's files, and the
    virtual China's files are written by the generator (its tests read them with validation on).
    """
    from cropsm.io.check import load_inputs

    paths = dict(input_paths(ctx))
    if not with_satellite:
        paths["satellite"] = []
    return load_inputs(paths, validate=False, groups_off=ctx.config.features.groups_off)


@stage("features", "join observations with their covariates (Table 1)", ("features",))
def features_stage(ctx: RunContext) -> dict:
    from cropsm.features.station_table import (
        build_station_table,
        station_table_path,
        write_station_table,
    )
    from cropsm.provenance import write_json

    groups_off = ctx.config.features.groups_off
    if ctx.config.inputs.uscrn is not None:
        from cropsm.realdata import build_uscrn_station_table

        table, report, _ = build_uscrn_station_table(ctx.config.inputs.uscrn, groups_off)
    else:
        data = load_run_inputs(ctx)
        if data["static"] is None:
            raise ConfigError(
                "the station table needs static fields (soil, elevation): give [inputs.files] "
                "static or switch the soil and elevation groups off"
            )
        table, report = build_station_table(
            data["stations"], data["climate"], data["static"], groups_off=groups_off
        )
    if len(table) == 0:
        source = (
            ctx.config.inputs.uscrn.root
            if ctx.config.inputs.uscrn is not None
            else input_paths(ctx)["observations"]
        )
        raise InputError(source, None, f"no observation is usable: {_unusable(report)}")
    path = write_station_table(table, station_table_path(ctx.run_dir))
    write_json(path.with_name("station_table_report.json"), report)
    kept = sum(report["observations_out_by_layer"].values())
    return {
        "rows": int(len(table)),
        "stations": int(table["station_id"].nunique()),
        "observations_kept": int(kept),
        "observations_dropped": int(report["observations_in"] - kept),
    }


def _unusable(report: dict) -> str:
    """Why no row of the station table is left, from the builder's report."""
    parts = []
    n_in = report.get("station_dates_in", report.get("observations_in"))
    period = report.get("climate_period")
    outside = report.get("dropped_outside_climate_period", 0)
    if outside:
        within = f" {period[0]} to {period[1]}" if period else ""
        parts.append(f"{outside} of {n_in} station-days lie outside the climate period{within}")
    if report.get("dropped_nan_features"):
        columns = ", ".join(f"{c} ({n})" for c, n in report["nan_features_by_column"].items())
        parts.append(f"{report['dropped_nan_features']} lack a feature: {columns}")
    if report.get("dropped_no_layer_left"):
        parts.append(f"{report['dropped_no_layer_left']} have no layer left")
    reasons = "; ".join(parts) or "every row was dropped"
    return f"{reasons}; expected observations on days the climate and static inputs cover"


@stage("train", "train the five chained layer networks with the grid search", ("train",))
def train_stage(ctx: RunContext) -> dict:
    from cropsm.features.station_table import read_station_table, station_table_path
    from cropsm.progress import progress_callback
    from cropsm.train import train_layers, write_scatter_plots, write_training_outputs

    table = read_station_table(station_table_path(ctx.run_dir))
    with progress_callback(ctx.console) as report:
        chain = train_layers(
            table,
            ctx.config.train,
            progress=report,
            groups_off=ctx.config.features.groups_off,
            log=lambda line: ctx.console.print(f"  {line}", highlight=False),
            feature_set=ctx.config.features.set,
        )
    write_training_outputs(chain, table, ctx.run_dir)
    write_scatter_plots(chain, table, ctx.run_dir / "figures")
    from cropsm.train.baselines import run_baselines

    run_baselines(
        table,
        chain,
        ctx.run_dir,
        groups_off=ctx.config.features.groups_off,
        seed=ctx.config.train.seed,
    )
    result = {
        f"layer{k}_r2_test": round(float(chain.metrics[f"layer{k}"]["test"]["r2"]), 3)
        for k in range(1, 6)
        if f"layer{k}" in chain.metrics
    }
    result["ensemble_members"] = 1 + len(chain.members)
    result["interval90_coverage_test"] = {
        f"layer{k}": {
            "raw": round(float(e["coverage_test_raw"]), 3),
            "calibrated": round(float(e["coverage_test_calibrated"]), 3),
        }
        for k, e in sorted(chain.ensemble.items())
    }
    if ctx.config.inputs.twin is not None:
        from cropsm.skill.truth import write_truth_skill

        skill = write_truth_skill(ctx, chain.models)
        result.update(
            {
                f"layer{k}_r2_truth": round(float(skill[f"layer{k}"]["reference"]["r2"]), 3)
                for k in range(1, 6)
                if f"layer{k}" in skill
            }
        )
    return result


def load_run_config(run_dir: Path):
    """The resolved config a run directory was made with."""
    from cropsm.config import load_config

    path = Path(run_dir) / "config.resolved.toml"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a cropsm run directory (run `cropsm run` first)")
    return load_config(path)


def evaluate_stations(run_dir: Path, stations_path: Path, observations_path: Path) -> dict:
    """Apply a run's trained networks to other stations or years and score every layer.

    The new stations' covariates come from the run's own climate and static inputs, through the
    same feature code as training. Returns ``{"stations": n, "rows": n, "layer1": {"test": M,
    "interval90_coverage": {"raw": c, "calibrated": c}}, ...}`` with M from
    :func:`cropsm.train.metrics.all_metrics` of the ensemble mean and c the share of
    observations inside the central 90 % interval (deep-ensemble spread alone, calibrated).
    """
    from cropsm.features.station_table import build_station_table
    from cropsm.io.stations import check_stations_in_grid, read_stations
    from cropsm.train import all_metrics, load_ensemble, load_residual_sd, predict_ensemble
    from cropsm.train.ensemble import interval_coverage

    config = load_run_config(run_dir)
    ctx = RunContext(config=config, run_dir=Path(run_dir))
    data = load_run_inputs(ctx)
    stations = read_stations(stations_path, observations_path)
    check_stations_in_grid(
        stations.meta, data["climate"]["lat"].values, data["climate"]["lon"].values, stations_path
    )
    table, report = build_station_table(
        stations, data["climate"], data["static"], groups_off=config.features.groups_off
    )
    members = load_ensemble(Path(run_dir) / "models")
    residual = load_residual_sd(Path(run_dir) / "models")
    raw = predict_ensemble(members, table)
    pred = predict_ensemble(members, table, residual)
    models = members[0]
    out = {
        "ensemble_members": len(members),
        "run_dir": str(run_dir),
        "stations": int(table["station_id"].nunique()),
        "rows": int(len(table)),
        "rows_dropped": int(report["station_dates_in"] - report["rows_out"]),
    }
    for model in models:
        k = model.layer
        observed = table[f"sm_l{k}"].to_numpy(dtype=float)
        mean = pred[f"sm_pred_l{k}"].to_numpy()
        out[f"layer{k}"] = {
            "test": all_metrics(table[f"sm_l{k}"], pred[f"sm_pred_l{k}"]),
            # share of observations inside the central 90 % interval (ensemble mean +/- 1.645
            # standard errors): from the members' spread alone, and calibrated
            "interval90_coverage": {
                "raw": interval_coverage(observed, mean, raw[f"sm_sd_l{k}"].to_numpy()),
                "calibrated": interval_coverage(observed, mean, pred[f"sm_sd_l{k}"].to_numpy()),
            },
        }
    if (Path(run_dir) / "baselines" / "baselines.json").is_file():
        from cropsm.train.baselines import load_baselines, score_baselines

        out["baselines"] = score_baselines(load_baselines(run_dir), table)
    return out


# Later stages, in pipeline order (importing registers them).
STAGE_MODULES: tuple[str, ...] = (
    "cropsm.predict.stage",
    "cropsm.attribute.stage",
    "cropsm.analyze.stage",
    "cropsm.report.stage",
)
for _name in STAGE_MODULES:
    __import__(_name)
