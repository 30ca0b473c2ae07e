"""The first stages of ``cropsm run`` (inputs, features, train), each a thin wrapper over
importable functions; the later stages (predict, attribute, analyze, report) are defined beside
their code. Importing this module registers every stage (:data:`STAGE_MODULES`).

What differs between input sources (the virtual China, the user's files, USCRN, ISMN) is asked
of the source's plug-in (:mod:`cropsm.sources`); where a file lives, of the run layout
(:mod:`cropsm.run_layout`).
"""

from __future__ import annotations

from pathlib import Path

from cropsm.analyze import stage as analyze_stage
from cropsm.attribute import stage as attribute_stage
from cropsm.errors import InputError
from cropsm.features.station_table import read_station_table, write_station_table
from cropsm.memory import release_memory
from cropsm.predict import stage as predict_stage
from cropsm.progress import StepClock, progress_callback
from cropsm.provenance import write_json
from cropsm.report import stage as report_stage
from cropsm.run_layout import load_run_config
from cropsm.skill.truth import write_truth_skill
from cropsm.sources import (
    EvaluationRequest,
    check_evaluation_format,
    provided,
    source_of,
)
from cropsm.stage_registry import RunContext, stage
from cropsm.train import (
    all_metrics,
    load_ensemble,
    load_observation_error_sd,
    load_residual_sd,
    predict_ensemble,
    train_layers,
    write_scatter_plots,
    write_training_outputs,
)
from cropsm.train.baselines import load_baselines, run_baselines, score_baselines
from cropsm.train.ensemble import calibrated_sd, interval_coverage


def _source_prepares_in_own_process(ctx: RunContext) -> bool:
    return source_of(ctx.config)[0].prepares_in_own_process


@stage(
    "inputs",
    "make or read and check the inputs (the input source's plug-in)",
    ("inputs",),
    own_process=_source_prepares_in_own_process,
)
def inputs_stage(ctx: RunContext) -> dict:
    source, section = source_of(ctx.config)
    result = source.prepare(section, ctx)
    write_json(
        ctx.layout.input_source,
        {"source": source.name, "provides": sorted(source.provides(section))},
    )
    return result


# The twin's station table (paper preset: 1.5 GB at its peak) is built in a process of its own:
# in the driver it left 650 instead of 420 MB behind for the train and predict stages
# (`benchmarks/bench_run.py`, session 21), whose processes run beside it.
@stage(
    "features",
    "join observations with their covariates (Table 1)",
    ("features",),
    own_process=_source_prepares_in_own_process,
)
def features_stage(ctx: RunContext) -> dict:
    source, section = source_of(ctx.config)
    table, report = source.station_table(section, ctx)
    if len(table) == 0:
        origin = source.observations_origin(section, ctx.layout)
        raise InputError(origin, None, f"no observation is usable: {_unusable(report)}")
    write_station_table(table, ctx.layout.station_table)
    write_json(ctx.layout.station_table_report, report)
    kept = sum(report["observations_out_by_layer"].values())
    result = {
        "rows": int(len(table)),
        "stations": int(table["station_id"].nunique()),
        "observations_kept": int(kept),
        "observations_dropped": int(report["observations_in"] - kept),
    }
    lost = report.get("stations_without_rows") or []
    if lost:
        names = ", ".join(lost[:5]) + (f" and {len(lost) - 5} more" if len(lost) > 5 else "")
        ctx.console.print(
            f"  warning: {len(lost)} station(s) lost every observation: {names} "
            f"({_unusable(report).removesuffix('; ' + _EXPECTED_ROWS)}); "
            f"see {ctx.layout.station_table_report.name}",
            highlight=False,
            markup=False,
        )
        result["stations_without_rows"] = len(lost)
    return result


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
        by_column = report["nan_features_by_column"]
        columns = ", ".join(f"{c} ({n})" for c, n in by_column.items())
        parts.append(f"{report['dropped_nan_features']} lack a feature: {columns}")
        if any(c.startswith("precip_") and c[-1] == "m" for c in by_column):
            parts.append(
                "the precipitation sums look back up to 12 months, so the first year of a "
                "record cannot be scored"
            )
    if report.get("dropped_no_layer_left"):
        parts.append(f"{report['dropped_no_layer_left']} have no layer left")
    reasons = "; ".join(parts) or "every row was dropped"
    return f"{reasons}; {_EXPECTED_ROWS}"


_EXPECTED_ROWS = "expected observations on days the climate and static inputs cover"


@stage(
    "train",
    "train the five chained layer networks with the grid search",
    ("train",),
    own_process=True,
)
def train_stage(ctx: RunContext) -> dict:
    table = read_station_table(ctx.layout.station_table)
    with progress_callback(ctx.console) as report:
        chain = train_layers(
            table,
            ctx.config.train,
            progress=report,
            groups_off=ctx.config.features.groups_off,
            log=lambda line: ctx.console.print(f"  {line}", highlight=False),
            feature_set=ctx.config.features.set,
        )
    clock = StepClock(ctx.console)
    write_training_outputs(chain, table, ctx.run_dir)
    write_scatter_plots(chain, table, ctx.layout.figures_dir)
    clock.done("training outputs and scatter plots")
    run_baselines(
        table,
        chain,
        ctx.run_dir,
        groups_off=ctx.config.features.groups_off,
        seed=ctx.config.train.seed,
    )
    clock.done("baselines (climatology, linear, gradient boosting)")
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
    if "truth" in provided(ctx.config):
        release_memory()  # the training's compiled programs and buffers, before the scoring
        skill = write_truth_skill(ctx, chain.models, chain, table)
        clock.done("networks against the truth at station-free cells")
        days = skill.get("station_days", {})
        result["interval90_coverage_test_truth"] = {
            name: round(float(v["test"]["coverage_truth"]), 3)
            for name, v in days.items()
            if name.startswith("layer") and "test" in v
        }
        result.update(
            {
                f"layer{k}_r2_truth": round(float(skill[f"layer{k}"]["reference"]["r2"]), 3)
                for k in range(1, 6)
                if f"layer{k}" in skill
            }
        )
    return result


def evaluate_run(run_dir: Path, request: EvaluationRequest) -> dict:
    """Apply a run's trained networks (and baselines) to other stations or years; score them.

    The new stations' table is built by the run's input source exactly as for training
    (:meth:`cropsm.sources.InputSource.evaluation_table`): on a gridded run, covariates from the
    run's climate and static inputs (``--format csv``); on a USCRN or ISMN run, the run's
    reading options on another folder, stations or years (``--format uscrn`` / ``ismn``).

    Returns
    -------
    dict
        ``{"run_dir", "stations", "rows", "rows_dropped", "ensemble_members", "layer1": {"test":
        M, "interval90_coverage": {"raw": c, "calibrated": c, "value": c}}, ..., "baselines":
        {...}}`` with M from :func:`cropsm.train.metrics.all_metrics` of the ensemble mean and c
        the share of observations inside the central 90 % interval: from the deep-ensemble
        spread alone, calibrated for a reading (the soil moisture's interval widened by the
        readings' own error, :func:`cropsm.train.load_observation_error_sd`), and the soil
        moisture's interval (the product's ``sm_sd``, which leaves that error out).
    """
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    ctx = RunContext(config=config, run_dir=run_dir)
    source = check_evaluation_format(config, request)
    table, report = source.evaluation_table(config.inputs.section, ctx, request)
    if len(table) == 0:
        raise InputError(request.path, None, f"no observation can be scored: {_unusable(report)}")
    members = load_ensemble(ctx.layout.models_dir)
    residual = load_residual_sd(ctx.layout.models_dir)
    observation = load_observation_error_sd(ctx.layout.models_dir)
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
        value_sd = pred[f"sm_sd_l{k}"].to_numpy()
        out[f"layer{k}"] = {
            "test": all_metrics(table[f"sm_l{k}"], pred[f"sm_pred_l{k}"]),
            # share of observations inside the central 90 % interval (ensemble mean +/- 1.645
            # standard errors): from the members' spread alone, calibrated for a reading (the
            # readings' own error added back), and the soil moisture's interval (the product's)
            "interval90_coverage": {
                "raw": interval_coverage(observed, mean, raw[f"sm_sd_l{k}"].to_numpy()),
                "calibrated": interval_coverage(
                    observed, mean, calibrated_sd(value_sd, observation.get(k, 0.0))
                ),
                "value": interval_coverage(observed, mean, value_sd),
            },
        }
    if ctx.layout.baselines.is_file():
        out["baselines"] = score_baselines(load_baselines(run_dir), table)
    return out


def evaluate_stations(run_dir: Path, stations_path: Path, observations_path: Path) -> dict:
    """:func:`evaluate_run` on other stations given as CSV/Parquet (a gridded run)."""
    request = EvaluationRequest("csv", Path(stations_path), Path(observations_path))
    return evaluate_run(run_dir, request)


STAGE_MODULES = (predict_stage, attribute_stage, analyze_stage, report_stage)
"""The modules of the later stages; importing them (above) registered their stages."""
