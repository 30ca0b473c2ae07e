"""The station-level pipeline on real data (USCRN): no grid, the site's own weather as climate.

``run_uscrn_station_pipeline(config, run_dir)`` does what ``cropsm run`` does for a config with
``[inputs.uscrn]``, up to and including training: read the USCRN daily01 files
(:mod:`cropsm.io.uscrn`), turn the site weather into station-level climate features
(:mod:`cropsm.io.station_climate`), build the station table
(:func:`cropsm.features.station_table.build_station_table_from_station_features`), train the five
chained networks (:func:`cropsm.train.train_layers`) and fit the baselines
(:mod:`cropsm.train.baselines`) on the same rows and split. There is no national (gridded)
stage: without a climate grid there is nothing to map.

Run directory (the same files as ``cropsm run`` writes)::

    config.resolved.toml, provenance.json
    inputs/uscrn_report.json, inputs/stations.csv   what was read, station metadata
    features/station_table.parquet, features/station_table_report.json
    models/, grid_search.csv, table2.csv, metrics.json (with "baselines"), splits.csv,
    layer_rows.csv, figures/, baselines/
    run_summary.json                                 rows, timings, per-layer metrics

``evaluate_uscrn(run_dir, root, ...)`` scores a run's networks and baselines on other USCRN
stations or years (``cropsm evaluate RUN_DIR --stations ROOT --format uscrn``).
"""

from __future__ import annotations

import json
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field, ValidationError

from cropsm.config import FeaturesSection, RunSection, StrictModel, strict_validate
from cropsm.errors import ConfigError
from cropsm.io.atomic import atomic_output
from cropsm.io.uscrn import UscrnInput
from cropsm.train.config import TrainConfig

Log = Callable[[str], None]


class UscrnInputsSection(StrictModel):
    uscrn: UscrnInput


class UscrnRunConfig(StrictModel):
    """A run config with ``[inputs.uscrn]`` (used until :class:`cropsm.config.RunConfig` has it).

    Same sections as ``RunConfig``: ``[run]``, ``[inputs.uscrn]``, ``[features]``, ``[train]``.
    """

    run: RunSection = Field(default_factory=RunSection)
    inputs: UscrnInputsSection
    features: FeaturesSection = Field(default_factory=FeaturesSection)
    train: TrainConfig = Field(default_factory=TrainConfig)


def load_uscrn_run_config(path: str | Path):
    """Read a TOML run config with ``[inputs.uscrn]``; paths resolved against its folder.

    Uses :func:`cropsm.config.load_config` when ``RunConfig`` knows ``[inputs.uscrn]``, else
    :class:`UscrnRunConfig`.

    Raises
    ------
    ConfigError
        One line naming the file and the key.
    """
    from cropsm.config import InputsSection, load_config

    path = Path(path)
    if "uscrn" in InputsSection.model_fields:
        return load_config(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return parse_uscrn_run_config(data, path)


def parse_uscrn_run_config(data: Mapping, path: str | Path) -> UscrnRunConfig:
    """Validate a mapping as :class:`UscrnRunConfig`; relative paths against ``path``'s folder."""
    path = Path(path)
    try:
        config = strict_validate(UscrnRunConfig, data)
    except ValidationError as err:
        parts = []
        for e in err.errors():
            loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
            if e["type"] == "extra_forbidden":
                parts.append(f"{path}: {loc}: unknown key{_allowed_keys(e['loc'])}")
            elif e["type"] == "missing":
                parts.append(f"{path}: {loc}: required key is missing")
            else:
                parts.append(f"{path}: {loc}: {e['msg']}")
        raise ConfigError("; ".join(parts)) from None
    uscrn = config.inputs.uscrn.resolve_paths(path.parent.resolve())
    inputs = config.inputs.model_copy(update={"uscrn": uscrn})
    return config.model_copy(update={"inputs": inputs})


def _allowed_keys(loc: tuple) -> str:
    """`` (allowed: a, b, ...)`` for the section holding the unknown key at ``loc``."""
    from pydantic import BaseModel

    model: Any = UscrnRunConfig
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            return ""
        candidates = [field.annotation, *getattr(field.annotation, "__args__", ())]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if model is None:
            return ""
    return f" (allowed: {', '.join(model.model_fields)})"


def _as_config(config_like) -> Any:
    if isinstance(config_like, str | Path):
        return load_uscrn_run_config(config_like)
    if isinstance(config_like, Mapping):
        return parse_uscrn_run_config(config_like, Path.cwd() / "config.toml")
    if getattr(getattr(config_like, "inputs", None), "uscrn", None) is None:
        raise ConfigError("the run config has no [inputs.uscrn] section")
    return config_like


# --------------------------------------------------------------------------------------------
# Inputs and features


def read_uscrn_inputs(uscrn: UscrnInput) -> dict:
    """Read the USCRN files of an ``[inputs.uscrn]`` section.

    Returns
    -------
    dict
        ``stations`` (:class:`cropsm.io.uscrn.UscrnStations`), ``climate`` (station-level,
        ``(time, station)``), ``report`` (JSON-ready counts).
    """
    from cropsm.io.station_climate import station_climate_from_uscrn
    from cropsm.io.uscrn import read_uscrn

    stations = read_uscrn(
        uscrn.root,
        stations=uscrn.stations,
        first_year=uscrn.first_year,
        last_year=uscrn.last_year,
        days_of_month=uscrn.days_of_month,
        frozen=uscrn.frozen,
        elevation_grid=uscrn.elevation_grid,
    )
    climate = station_climate_from_uscrn(stations.daily.frame, uscrn.net_solar_fraction)
    return {"stations": stations, "climate": climate, "report": stations.report}


def build_uscrn_station_table(
    uscrn: UscrnInput, groups_off: Iterable[str] = ()
) -> tuple[pd.DataFrame, dict, dict]:
    """The station table of USCRN inputs (station-level climate features).

    Returns
    -------
    (table, table_report, inputs)
        The station table, its report, and :func:`read_uscrn_inputs`' result.
    """
    from cropsm.features.station_table import build_station_table_from_station_features
    from cropsm.io.station_climate import station_climate_features

    inputs = read_uscrn_inputs(uscrn)
    features = station_climate_features(
        inputs["climate"], min_valid_fraction=uscrn.min_precip_valid_fraction
    )
    table, report = build_station_table_from_station_features(
        inputs["stations"], features, groups_off=groups_off
    )
    return table, report, inputs


# --------------------------------------------------------------------------------------------
# Training


def train_networks_and_baselines(
    table: pd.DataFrame,
    train_config: TrainConfig,
    out_dir: str | Path,
    *,
    groups_off: Iterable[str] = (),
    log: Log | None = None,
    figures: bool = True,
) -> dict:
    """Train the chained networks and fit the baselines on the same rows and split.

    Writes the training outputs (:func:`cropsm.train.write_training_outputs`), the scatter plots
    (``figures/``) and the baselines (:func:`cropsm.train.baselines.run_baselines`) into
    ``out_dir``.

    Returns
    -------
    dict
        ``metrics`` (``metrics.json`` content, with ``baselines``), ``seconds`` (``networks``,
        ``baselines``) and ``rows`` per layer.
    """
    from cropsm.train import train_layers, write_scatter_plots, write_training_outputs
    from cropsm.train.baselines import run_baselines

    out = Path(out_dir)
    groups_off = tuple(groups_off)
    t0 = time.perf_counter()
    chain = train_layers(table, train_config, groups_off=groups_off, log=log)
    seconds_networks = time.perf_counter() - t0
    write_training_outputs(chain, table, out)
    if figures:
        write_scatter_plots(chain, table, out / "figures")
    t1 = time.perf_counter()
    run_baselines(table, chain, out, groups_off=groups_off, seed=train_config.seed)
    seconds_baselines = time.perf_counter() - t1
    metrics = json.loads((out / "metrics.json").read_text("utf-8"))
    return {
        "metrics": metrics,
        "seconds": {
            "networks": round(seconds_networks, 1),
            "baselines": round(seconds_baselines, 1),
        },
        "rows": chain.row_counts.reset_index().to_dict(orient="records"),
    }


def run_uscrn_station_pipeline(
    config_like,
    run_dir: str | Path,
    *,
    splits: Iterable[str] | None = None,
    log: Log | None = None,
    figures: bool = True,
) -> dict:
    """Read USCRN, build the station table, train the networks and the baselines.

    Parameters
    ----------
    config_like
        A run config with ``[inputs.uscrn]``: a TOML path, a mapping, a
        :class:`UscrnRunConfig` or a ``cropsm.config.RunConfig`` that has ``inputs.uscrn``.
    run_dir
        Output folder (created).
    splits
        None: train once with ``[train] split``, outputs at the top of ``run_dir`` (as
        ``cropsm run``). A list such as ``["year", "station"]``: train once per split kind on
        the same station table, outputs in ``run_dir/split-<kind>/``.
    log
        Receives one line per event (default: print to stderr).
    figures
        Write the scatter plots.

    Returns
    -------
    dict
        The run summary (also written to ``run_dir/run_summary.json``): inputs and table
        counts, seconds per step, and per split the per-layer metrics of the networks and the
        baselines.
    """
    import sys

    from cropsm.config import config_to_dict
    from cropsm.features.station_table import station_table_path, write_station_table
    from cropsm.provenance import write_json, write_provenance

    if log is None:

        def log(line: str) -> None:
            print(f"  {line}", file=sys.stderr, flush=True)

    config = _as_config(config_like)
    run_dir = Path(run_dir)
    uscrn: UscrnInput = config.inputs.uscrn
    groups_off = tuple(config.features.groups_off)
    write_provenance(run_dir, config_to_dict(config), {"run": config.run.seed})

    t0 = time.perf_counter()
    table, table_report, inputs = build_uscrn_station_table(uscrn, groups_off)
    seconds_features = time.perf_counter() - t0
    (run_dir / "inputs").mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "inputs" / "uscrn_report.json", inputs["report"])
    with atomic_output(run_dir / "inputs" / "stations.csv") as tmp:
        inputs["stations"].meta.to_csv(tmp)
    path = write_station_table(table, station_table_path(run_dir))
    write_json(path.with_name("station_table_report.json"), table_report)
    log(
        f"station table: {len(table)} rows, {table['station_id'].nunique()} stations "
        f"({seconds_features:.1f} s)"
    )

    summary: dict[str, Any] = {
        "name": config.run.name,
        "inputs": {
            "files": inputs["report"]["files"],
            "stations_with_observations": inputs["report"]["stations_with_observations"],
            "observations": inputs["report"]["observations"],
        },
        "table": {
            "rows": int(len(table)),
            "stations": int(table["station_id"].nunique()),
            "observations_by_layer": table_report["observations_out_by_layer"],
        },
        "seconds": {"read_and_features": round(seconds_features, 1)},
        "splits": {},
    }
    kinds = [config.train.split] if splits is None else list(splits)
    for kind in kinds:
        out = run_dir if splits is None else run_dir / f"split-{kind}"
        train_config = config.train.model_copy(update={"split": kind})
        log(f"split {kind}: training networks and baselines")
        result = train_networks_and_baselines(
            table, train_config, out, groups_off=groups_off, log=log, figures=figures
        )
        summary["splits"][kind] = {
            "out_dir": str(out),
            "seconds": result["seconds"],
            "metrics": result["metrics"],
        }
        summary["seconds"][f"train_{kind}"] = round(sum(result["seconds"].values()), 1)
    summary["seconds"]["total"] = round(time.perf_counter() - t0, 1)
    write_json(run_dir / "run_summary.json", summary)
    return summary


# --------------------------------------------------------------------------------------------
# Evaluation on other stations or years


def evaluate_uscrn(
    run_dir: str | Path,
    root: str | Path,
    *,
    stations: Iterable[str] = (),
    first_year: int | None = None,
    last_year: int | None = None,
    config_like=None,
) -> dict:
    """Score a run's networks and baselines on USCRN stations or years it has not seen.

    The USCRN options of the run (frozen rule, days of the month, elevation grid, solar
    fraction, accumulation tolerance) are applied to the files under ``root``; only the stations
    and years are chosen here.

    Parameters
    ----------
    run_dir
        A run directory with ``models/`` (and ``baselines/``).
    root
        USCRN daily01 folder.
    stations, first_year, last_year
        Which files (:func:`cropsm.io.uscrn.find_uscrn_files`).
    config_like
        The run's config; default ``run_dir/config.resolved.toml``.

    Returns
    -------
    dict
        ``{"run_dir", "stations", "rows", "rows_dropped", "layer1": {"test": M}, ...,
        "baselines": {"climatology": {"layer1": {"test": M}}, ...}}``.
    """
    from cropsm.train import all_metrics, load_models, predict_chain
    from cropsm.train.baselines import load_baselines, score_baselines

    run_dir = Path(run_dir)
    config = _as_config(config_like or run_dir / "config.resolved.toml")
    uscrn = config.inputs.uscrn.model_copy(
        update={
            "root": Path(root),
            "stations": list(stations),
            "first_year": first_year,
            "last_year": last_year,
        }
    )
    table, report, _ = build_uscrn_station_table(uscrn, config.features.groups_off)
    models = load_models(run_dir / "models")
    pred = predict_chain(models, table)
    out: dict[str, Any] = {
        "run_dir": str(run_dir),
        "stations": int(table["station_id"].nunique()),
        "rows": int(len(table)),
        "rows_dropped": int(report["station_dates_in"] - report["rows_out"]),
    }
    for model in models:
        k = model.layer
        out[f"layer{k}"] = {"test": all_metrics(table[f"sm_l{k}"], pred[f"sm_pred_l{k}"])}
    if (run_dir / "baselines" / "baselines.json").is_file():
        out["baselines"] = score_baselines(load_baselines(run_dir), table)
    return out


__all__ = [
    "UscrnRunConfig",
    "build_uscrn_station_table",
    "evaluate_uscrn",
    "load_uscrn_run_config",
    "parse_uscrn_run_config",
    "read_uscrn_inputs",
    "run_uscrn_station_pipeline",
    "train_networks_and_baselines",
]
