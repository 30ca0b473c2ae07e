"""The ``predict`` stage of ``cropsm run`` and the ``cropsm predict`` command's work.

Reads the run's inputs (climate lazily, without the full validation pass the inputs stage has
already made), the networks of ``RUN_DIR/models`` (or another model set, e.g. one trained with
feature groups switched off for the national control experiments), computes or resumes the
product store and, on the virtual China, scores the product against the truth
(``RUN_DIR/truth_skill.json`` key ``product``, map ``RUN_DIR/figures/product_error_map.png``).
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

from cropsm.errors import ConfigError
from cropsm.io.atomic import check_writable
from cropsm.io.check import optional_climate_variables
from cropsm.io.climate import read_climate
from cropsm.io.static import read_static
from cropsm.io.stations import read_stations
from cropsm.io.zarr_damage import naming_damaged_stores
from cropsm.predict.cluster import dask_client
from cropsm.predict.config import PredictConfig
from cropsm.predict.product import check_grid_inputs, predict_product
from cropsm.predict.skill import product_truth_skill, update_truth_skill_json, write_error_map
from cropsm.progress import progress_callback
from cropsm.run_layout import PRODUCT_NAME, RunLayout, load_run_config
from cropsm.sources import grid_input_paths
from cropsm.stage_registry import RunContext, stage
from cropsm.train import load_ensemble, load_observation_error_sd, load_residual_sd
from cropsm.twin.truth_store import open_truth


def run_predict_config(config) -> PredictConfig:
    """The run's ``[predict]`` section, or the defaults when the config has none."""
    section = getattr(config, "predict", None)
    return section if isinstance(section, PredictConfig) else PredictConfig()


def model_set_label(run_dir: Path, models_dir: Path | None) -> str | None:
    """``None`` for the run's own networks, else a label naming the other model set."""
    if models_dir is None:
        return None
    models_dir = Path(models_dir).resolve()
    if models_dir in {(Path(run_dir) / "models").resolve(), Path(run_dir).resolve()}:
        return None
    name = models_dir.parent.name if models_dir.name == "models" else models_dir.name
    return name or "models"


def default_product_path(run_dir: Path, models_dir: Path | None = None) -> Path:
    """``RUN_DIR/product.zarr``; for another model set ``RUN_DIR/products/<label>.zarr``."""
    label = model_set_label(run_dir, models_dir)
    if label is None:
        return Path(run_dir) / PRODUCT_NAME
    return Path(run_dir) / "products" / f"{label}.zarr"


def load_product_inputs(ctx: RunContext) -> dict:
    """Climate (lazy, not re-validated), static and stations of a run, canonical forms."""

    paths = grid_input_paths(ctx.config, ctx.layout)
    if not paths.get("static"):
        raise ConfigError("the product needs static fields (cropland, soil, crop areas)")

    groups_off = ctx.config.features.groups_off
    climate = read_climate(
        paths["climate"], validate=False, optional=optional_climate_variables(groups_off)
    )
    static = read_static(paths["static"], climate["lat"].values, climate["lon"].values)
    stations = read_stations(paths["stations"], paths["observations"])
    return {"climate": climate, "static": static, "stations": stations, "truth": paths["truth"]}


def predict_run(
    run_dir: str | Path,
    *,
    out: str | Path | None = None,
    models_dir: str | Path | None = None,
    config: PredictConfig | None = None,
    console: Console | None = None,
    run_config=None,
    layers: int | None = None,
    score_truth: bool = True,
) -> dict:
    """Compute (or resume) a run's product and, on the virtual China, score it.

    Parameters
    ----------
    run_dir
        A run directory with trained networks.
    out
        The zarr store (default :func:`default_product_path`).
    models_dir
        Another model set (``.../models`` with ``layer{k}/``); default ``RUN_DIR/models``.
    config
        Product settings (default: the run's ``[predict]`` section or the defaults).
    console
        Where progress goes (stderr by default).
    run_config
        The run's config when already loaded (else read from the run directory).
    layers
        Only the layers ``1 ... layers`` of the chain (e.g. 1 for a product whose top layer
        alone is used); None: every layer of the model set.
    score_truth
        Score the product against the virtual China's truth (when the run has one).

    Returns
    -------
    dict
        The summary of :func:`cropsm.predict.product.predict_product` plus ``skill_key``
        and per-layer ``layer{k}_r2_truth`` of the reference on the virtual China.
    """

    run_dir = Path(run_dir)
    console = console or Console(stderr=True)
    run_config = run_config or load_run_config(run_dir)
    config = config or run_predict_config(run_config)
    models_path = Path(models_dir) if models_dir is not None else RunLayout(run_dir).models_dir
    label = model_set_label(run_dir, models_path)
    out = Path(out) if out is not None else default_product_path(run_dir, models_path)
    check_writable(out, "--out", beside=True)  # before inputs are read or a cluster starts
    models = load_ensemble(models_path)
    check_grid_inputs(models[0], models_path)  # before inputs are read or a cluster starts
    if layers is not None:
        models = [[m for m in member if m.layer <= layers] for member in models]
    residual_sd = load_residual_sd(models_path)
    observation_error_sd = load_observation_error_sd(models_path)
    ctx = RunContext(config=run_config, run_dir=run_dir, console=console)
    data = load_product_inputs(ctx)
    with naming_damaged_stores(run_dir), dask_client(config.scheduler, config.workers) as client:
        where = "this process" if client is None else f"dask ({_describe(client)})"
        console.print(f"  product -> {out} on {where}", highlight=False, markup=False)
        with progress_callback(console) as report:
            summary = predict_product(
                out,
                data["climate"],
                data["static"],
                data["stations"],
                models,
                config,
                client=client,
                progress=report,
                source=(
                    "networks in the run directory's models/"
                    if label is None
                    else f"networks of the model set {label!r}"
                ),
                residual_sd=residual_sd,
                observation_error_sd=observation_error_sd,
            )
        if summary["blocks_computed"] and summary["seconds"] > 0:
            summary["cell_days_per_s"] = round(summary["cell_days"] / summary["seconds"], 1)
            parts = ", ".join(
                f"{part} {summary[f'{part}_cpu_s']:.0f}"
                for part in ("read", "features", "network", "assemble", "write")
            )
            console.print(
                f"  blocks' CPU seconds, all workers: {parts} (of {summary['cpu_s']:.0f})",
                highlight=False,
            )
        if score_truth and data["truth"] is not None and Path(data["truth"]).exists():
            summary.update(_score_against_truth(run_dir, out, data["truth"], label, client))
    return summary


def _describe(client) -> str:
    try:
        n = len(client.scheduler_info()["workers"])
    except Exception:  # pragma: no cover - information only
        return "cluster"
    return f"{n} worker{'s' if n != 1 else ''}"


def _score_against_truth(
    run_dir: Path, product: Path, truth_path, label: str | None, client=None
) -> dict:

    key = "product" if label is None else f"product_{label}"
    started = time.perf_counter()
    skill, rmse_map, lat, lon = product_truth_skill(product, open_truth(truth_path), client=client)
    skill["seconds"] = round(time.perf_counter() - started, 1)
    skill["product"] = str(product)
    update_truth_skill_json(RunLayout(run_dir).truth_skill, key, skill)
    out = {"skill_key": key}
    if rmse_map is not None:
        name = "product_error_map.png" if label is None else f"{key}_error_map.png"
        write_error_map(
            rmse_map, lat, lon, RunLayout(run_dir).figures_dir / name,
            title="reference product vs truth: RMSE per cell over all days",
        )  # fmt: skip
        for k in range(1, 6):
            r2 = skill[f"layer{k}"]["reference"]["r2"]
            out[f"layer{k}_r2_truth"] = None if r2 != r2 else round(float(r2), 3)
            coverage = skill[f"layer{k}"].get("interval90_coverage")
            if coverage:
                out[f"layer{k}_interval90_coverage_truth"] = {
                    "raw": round(coverage["raw"], 3),
                    "calibrated": round(coverage["calibrated"], 3),
                }
    return out


@stage(
    "predict",
    "the daily five-layer product of every cropland cell under six patterns and the reference",
    ("predict",),
    needs=("grid",),
)
def predict_stage(ctx: RunContext) -> dict:
    summary = predict_run(
        ctx.run_dir,
        config=run_predict_config(ctx.config),
        console=ctx.console,
        run_config=ctx.config,
    )
    keep = (
        "path", "status", "cells", "days", "blocks", "blocks_computed", "blocks_skipped",
        "cell_days_per_s", *[f"layer{k}_r2_truth" for k in range(1, 6)],
        *[f"layer{k}_interval90_coverage_truth" for k in range(1, 6)],
    )  # fmt: skip
    result = {k: summary[k] for k in keep if k in summary}
    # the store's created/resumed/repaired/replaced, apart from the stage's ran/skipped
    result["product_status"] = result.pop("status", None)
    return result
