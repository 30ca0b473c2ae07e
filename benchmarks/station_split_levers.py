"""Which settings move the networks against gradient boosting at new stations? A lever table.

Issue 10 asks the default model to match gradient boosting's test R2 in every layer when whole
stations are held out (``[train] split = "station"``). The grid search of that split takes ~10
min on 2 cores; this script skips it: every layer keeps the configuration a finished run selected
(its ``table2.csv``), and each variant below retrains the five chained layers with K members on
the same split, then prints the ensemble mean's test R2 beside gradient boosting's, fitted in the
same run on the same rows (:func:`cropsm.train.baselines.fit_baselines` on the networks' rows, as
the train stage does).

Variants (``--variants``, default all):

* ``as_is``: the run's ``[train]`` settings and selected configurations, retrained (the
  reference row; within a few 0.001 of the run's own ensemble);
* ``train_seed_1``: the same with another training seed (same split): run-to-run noise;
* ``members_10``: K = 10 instead of the run's K;
* ``log_precipitation``: ``log(1 + P)`` of every precipitation input (daily, 3/7 days, 1-12
  months; gradient boosting is unchanged by a monotone transform);
* ``bounded``: ``output = "bounded"``, the 20-50 cm layers not anchored on the pattern's bucket;
* ``store_visible``: anchored, but the network also sees the bucket's 20-50 cm store as an
  ordinary input (which lets it learn the pattern contrast away: R2 only, not a candidate);
* ``retention_inputs``: the anchor's wilting point and field capacity (Saxton & Rawls) of the
  layer as two more inputs;
* ``every_group``: every group of the feature set on, whatever the run switched off
  (gradient boosting keeps the run's features);
* ``without_location``, ``without_climate_normals``: those feature groups switched off too;
* ``no_chain``: ``chain = "none"``;
* ``regularised``: the selected networks with ``weight_decay = 0.01`` and ``input_noise = 0.1``;
* ``best_validation``, ``tolerance_0.01``, ``tolerance_0.02``: each layer's configuration chosen
  again from the run's ``grid_search.csv`` with that ``selection_tolerance`` (0: the paper's
  rule, the lowest validation MSE; :func:`cropsm.train.grid_search.select_configuration`);
* ``wide_regularised``: 2 x 64 units with ``weight_decay = 0.01`` and ``input_noise = 0.1``.

Usage::

    .venv/bin/python benchmarks/station_split_levers.py RUN [--variants as_is,bounded]

``RUN`` is a run directory trained with ``split = "station"`` (``config.resolved.toml``,
``table2.csv``; the station table from ``RUN/features`` or ``--table``).
"""

from __future__ import annotations

import argparse
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from cropsm import N_LAYERS
from cropsm.features.groups import feature_groups, layer_feature_names
from cropsm.features.station_table import read_station_table
from cropsm.train.artifacts import load_models
from cropsm.train.baselines import fit_baselines, network_rows
from cropsm.train.bounds import anchor_retention
from cropsm.train.chain import train_layers
from cropsm.train.config import GridConfig, TrainConfig
from cropsm.train.grid_search import network_weights, select_configuration
from cropsm.train.mlp import Member
from cropsm.train.splits import make_split


def _log_precipitation(table: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    out = table.copy()
    for name in names:
        out[name] = np.log1p(out[name])
    return out


def _with_retention(table: pd.DataFrame) -> pd.DataFrame:
    out = table.copy()
    for k in range(1, N_LAYERS + 1):
        wilting, available = anchor_retention(out[f"sand_l{k}"], out[f"clay_l{k}"])
        out[f"wp_l{k}"] = wilting
        out[f"fc_l{k}"] = wilting + available
    return out


def _with_store_copy(table: pd.DataFrame) -> pd.DataFrame:
    return table.assign(wb_sub_input=table["wb_sub"])


def variants(config: TrainConfig, feature_set: str, groups_off: tuple[str, ...]) -> dict[str, dict]:
    """Name -> ``{"config", "table" (transform or None), "features" (f(layer)), "architecture"
    ((hidden layers, units) or None), "tolerance" (re-selection from the grid search or None)}``;
    the run's ``groups_off`` stay off."""

    def names(k: int, also_off: tuple[str, ...] = ()) -> list[str]:
        return list(layer_feature_names(k, (*groups_off, *also_off), feature_set))

    def plus(extra: Callable[[int], list[str]]):
        return lambda k: [*names(k), *extra(k)]

    same = {"table": None, "features": names, "architecture": None, "tolerance": None}
    return {
        "as_is": {**same, "config": config},
        "train_seed_1": {**same, "config": config.model_copy(update={"seed": config.seed + 1})},
        "members_10": {**same, "config": config.model_copy(update={"members": 10})},
        "log_precipitation": {
            **same,
            "config": config,
            "table": lambda t: _log_precipitation(t, feature_groups(feature_set)["precipitation"]),
        },
        "bounded": {**same, "config": config.model_copy(update={"output": "bounded"})},
        "store_visible": {
            **same,
            "config": config,
            "table": _with_store_copy,
            "features": plus(lambda k: ["wb_sub_input"]),
        },
        "retention_inputs": {
            **same,
            "config": config,
            "table": _with_retention,
            "features": plus(lambda k: [f"wp_l{k}", f"fc_l{k}"]),
        },
        "every_group": {
            **same,
            "config": config,
            "features": lambda k: list(layer_feature_names(k, (), feature_set)),
        },
        "without_location": {
            **same,
            "config": config,
            "features": lambda k: names(k, ("location",)),
        },
        "without_climate_normals": {
            **same,
            "config": config,
            "features": lambda k: names(k, ("climate_normals",)),
        },
        "no_chain": {**same, "config": config.model_copy(update={"chain": "none"})},
        "regularised": {
            **same,
            "config": config.model_copy(update={"weight_decay": 0.01, "input_noise": 0.1}),
        },
        "best_validation": {**same, "config": config, "tolerance": 0.0},
        "tolerance_0.01": {**same, "config": config, "tolerance": 0.01},
        "tolerance_0.02": {**same, "config": config, "tolerance": 0.02},
        "wide_regularised": {
            **same,
            "config": config.model_copy(update={"weight_decay": 0.01, "input_noise": 0.1}),
            "architecture": (2, 64),
        },
    }


def reselected(
    grid_search: pd.DataFrame, tolerance: float, n_inputs: dict[int, int]
) -> pd.DataFrame:
    """Each layer's configuration chosen from a run's ``grid_search.csv`` with ``tolerance``."""
    rows = []
    for layer, trained in grid_search.groupby("layer"):
        members = [
            Member(int(r.hidden_layers), int(r.units), int(r.batch_size), float(r.learning_rate))
            for r in trained.itertuples()
        ]
        weights = [network_weights(m, n_inputs[layer]) for m in members]
        rows.append(
            trained.iloc[select_configuration(trained["validation_mse"], weights, tolerance)]
        )
    return pd.DataFrame(rows).set_index("layer")


def ensemble_test_r2(chain) -> list[float]:
    """Test R2 of the members' mean per layer, as the training computed it
    (``ensemble_mean_test`` of :attr:`cropsm.train.chain.TrainedChain.ensemble`)."""
    return [float(chain.ensemble[k]["ensemble_mean_test"]["r2"]) for k in range(1, N_LAYERS + 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run directory trained with split = 'station'")
    parser.add_argument("--table", type=Path, help="station table (default RUN/features/...)")
    parser.add_argument("--variants", default="all", help="comma-separated names, or all")
    args = parser.parse_args()

    for needed in ("config.resolved.toml", "table2.csv"):
        if not (args.run / needed).is_file():
            parser.error(f"{args.run / needed} is missing: RUN must be a trained run directory")
    resolved = tomllib.loads((args.run / "config.resolved.toml").read_text())
    config = TrainConfig(**{**resolved["train"], "prune_at_epochs": []})
    feature_set = resolved.get("features", {}).get("set", "crop")
    groups_off = tuple(resolved.get("features", {}).get("groups_off", ()))
    selected = pd.read_csv(args.run / "table2.csv").set_index("layer")
    table = read_station_table(args.table or args.run / "features" / "station_table.parquet")
    table_of = variants(config, feature_set, groups_off)
    names = list(table_of) if args.variants == "all" else args.variants.split(",")
    unknown = sorted(set(names) - set(table_of))
    if unknown:
        parser.error(f"unknown variants {unknown}; allowed: {', '.join(table_of)}")
    print(
        f"{args.run}: split {config.split!r}, K = {config.members}, output {config.output!r}, "
        f"groups off {list(groups_off)}, "
        f"selected {' '.join(f'{r.hidden_layers}x{r.units}' for r in selected.itertuples())}"
    )
    split = make_split(
        table, config.split, config.seed, config.test_fraction, config.validation_fraction
    )  # every variant on the run's split, the training seed of train_seed_1 aside
    boosting = None
    for name in names:
        spec = table_of[name]
        data = spec["table"](table) if spec["table"] else table
        chosen = selected
        if spec["tolerance"] is not None:
            inputs = {m.layer: len(m.feature_names) for m in load_models(args.run)}
            grid_search = pd.read_csv(args.run / "grid_search.csv")
            chosen = reselected(grid_search, spec["tolerance"], inputs)

        def grid(k: int, architecture=spec["architecture"], chosen=chosen) -> GridConfig:
            row = chosen.loc[k]
            hidden, units = architecture or (int(row.hidden_layers), int(row.units))
            return GridConfig(
                batch_sizes=[int(row.batch_size)],
                learning_rates=[float(row.learning_rate)],
                hidden_layers=[hidden],
                units=[units],
            )

        started = time.perf_counter()
        chain = train_layers(
            data,
            spec["config"],
            feature_names_for_layer=spec["features"],
            grid_for_layer=grid,
            feature_set=feature_set,
            split=split,
        )
        seconds = time.perf_counter() - started
        if boosting is None:
            fitted = fit_baselines(
                table,
                split,
                groups_off=groups_off,
                seed=config.seed,
                split_kind=config.split,
                rows_by_layer=network_rows(chain),
                feature_set=feature_set,
            )
            boosting = [
                float(lb.metrics["gradient_boosting"]["test"]["r2"]) for lb in fitted.layers
            ]
            print(f"{'gradient boosting':18s} test R2 " + " ".join(f"{v:.3f}" for v in boosting))
        ensemble = ensemble_test_r2(chain)
        gaps = [e - b for e, b in zip(ensemble, boosting, strict=True)]
        networks = " ".join(f"{r.hidden_layers}x{r.units}" for r in chosen.itertuples())
        print(
            f"{name:18s} ({networks}) test R2 {' '.join(f'{v:.3f}' for v in ensemble)}  "
            f"minus boosting {' '.join(f'{v:+.3f}' for v in gaps)}  ({seconds:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
