"""Speed of the vectorised grid search against one-configuration-at-a-time training.

Trains the FULL hyperparameter grid (240 configurations, paper section 2a) for one soil layer as
vectorised JAX ensembles (:mod:`cropsm.train.mlp`) without early stopping, so every
configuration runs exactly ``--epochs`` epochs, and in the same run trains a balanced subset of
the grid one configuration at a time with

* scikit-learn's ``MLPRegressor`` (Adam, same architecture, batch size, learning rate, epochs),
* plain per-configuration JAX (the same jitted epoch with an ensemble of one member).

The subset has every architecture once, each batch size three times (Latin-square style), so
its mean cost per configuration is representative of the grid's.

Reported: seconds per epoch over all 240 configurations (steady state: compilation excluded;
and wall time including compilation), and the per-configuration speed ratio
``baseline seconds per configuration-epoch / ensemble seconds per configuration-epoch``.

Usage::

    .venv/bin/python benchmarks/bench_train.py --epochs 5
    .venv/bin/python benchmarks/bench_train.py --table runs/x/features/station_table.parquet

Without ``--table`` a synthetic station table of the paper's size is used (273 stations x 33
years x 10 dates = 90,090 station-dates, :func:`cropsm.train.synthetic.synthetic_station_table`).
For a layer k >= 2 the observed layer k - 1 stands in for ``sm_pred_upper`` (timing only).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd

from cropsm.features.groups import UPPER, layer_feature_names
from cropsm.train.chain import target_column, with_pattern_one_hot
from cropsm.train.config import GridConfig
from cropsm.train.grid_search import ensemble_groups
from cropsm.train.mlp import Member, train_ensemble
from cropsm.train.numpy_net import fit_scaler
from cropsm.train.splits import make_split
from cropsm.train.synthetic import synthetic_station_table


def layer_arrays(table: pd.DataFrame, layer: int, seed: int) -> dict[str, np.ndarray]:
    """Standardised training and validation arrays of one layer (paper's random 70/30, 10 %)."""
    table = with_pattern_one_hot(table)
    names = layer_feature_names(layer)
    columns = []
    for name in names:
        source = target_column(layer - 1) if name == UPPER else name
        columns.append(pd.to_numeric(table[source], errors="coerce").to_numpy(np.float64))
    x = np.column_stack(columns)
    y = pd.to_numeric(table[target_column(layer)], errors="coerce").to_numpy(np.float64)
    split = make_split(table, "random", seed).to_numpy()
    used = np.isfinite(y) & np.isfinite(x).all(axis=1)
    train, val = used & (split == "train"), used & (split == "validation")
    scaler = fit_scaler(x[train])
    mean, std = y[train].mean(), y[train].std()
    return {
        "x_train": scaler.transform(x[train]),
        "y_train": (y[train] - mean) / std,
        "x_val": scaler.transform(x[val]),
        "y_val": (y[val] - mean) / std,
    }


def balanced_subset(grid: GridConfig) -> list[Member]:
    """Every architecture once; batch sizes in a Latin-square pattern; learning rates cycled."""
    members = []
    for i, hidden in enumerate(grid.hidden_layers):
        for j, units in enumerate(grid.units):
            batch = grid.batch_sizes[(i + j) % len(grid.batch_sizes)]
            lr = grid.learning_rates[(i * len(grid.units) + j) % len(grid.learning_rates)]
            members.append(Member(hidden, units, batch, lr))
    return members


def run_ensembles(data: dict, grid: GridConfig, epochs: int, grouping: str, layer: int) -> dict:
    """All configurations as vectorised ensembles, no early stopping (patience = epochs)."""
    steady = 0.0
    start = time.perf_counter()
    groups = ensemble_groups(grid, grouping)
    for group in groups:
        result = train_ensemble(
            group, data["x_train"], data["y_train"], data["x_val"], data["y_val"],
            seed=0, layer=layer, max_epochs=epochs, patience=epochs + 1,
        )  # fmt: skip
        assert len(result.epoch_seconds) == epochs
        steady += float(np.mean(result.epoch_seconds[1:])) if epochs > 1 else float("nan")
    wall = time.perf_counter() - start
    n_configs = grid.n_configurations
    return {
        "n_configurations": n_configs,
        "n_ensembles": len(groups),
        "grouping": grouping,
        "wall_seconds": wall,
        "seconds_per_epoch_all_configs_steady": steady,
        "seconds_per_epoch_all_configs_wall": wall / epochs,
        "seconds_per_config_epoch_steady": steady / n_configs,
        "seconds_per_config_epoch_wall": wall / epochs / n_configs,
    }


def run_sklearn(data: dict, members: list[Member], epochs: int) -> dict:
    """One scikit-learn MLPRegressor per configuration, exactly ``epochs`` epochs each."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    x = data["x_train"].astype(np.float32)
    y = data["y_train"].astype(np.float32)
    seconds = []
    for m in members:
        model = MLPRegressor(
            hidden_layer_sizes=(m.units,) * m.hidden_layers,
            activation="relu",
            solver="adam",
            alpha=0.0,
            batch_size=m.batch_size,
            learning_rate_init=m.learning_rate,
            max_iter=epochs,
            tol=0.0,
            n_iter_no_change=epochs + 1,
            epsilon=1e-7,
            shuffle=True,
            random_state=0,
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x, y)
        seconds.append(time.perf_counter() - start)
        assert model.n_iter_ == epochs
    return {
        "n_configurations": len(members),
        "seconds": seconds,
        "seconds_per_config_epoch": float(np.sum(seconds)) / (len(members) * epochs),
    }


def run_jax_single(data: dict, members: list[Member], epochs: int, layer: int) -> dict:
    """The same jitted epoch, one configuration (ensemble of one) at a time."""
    steady, wall = [], []
    for m in members:
        start = time.perf_counter()
        result = train_ensemble(
            [m], data["x_train"], data["y_train"], data["x_val"], data["y_val"],
            seed=0, layer=layer, max_epochs=epochs, patience=epochs + 1,
        )  # fmt: skip
        wall.append(time.perf_counter() - start)
        steady.append(float(np.mean(result.epoch_seconds[1:])) if epochs > 1 else float("nan"))
    n = len(members)
    return {
        "n_configurations": n,
        "seconds_per_config_epoch_steady": float(np.sum(steady)) / n,
        "seconds_per_config_epoch_wall": float(np.sum(wall)) / (n * epochs),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", help="station table parquet (default: synthetic, paper size)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per configuration")
    parser.add_argument("--layers", default="1", help="soil layers to time, e.g. 1 or 1,5")
    parser.add_argument("--grouping", choices=["shape", "shape_batch"], default="shape")
    parser.add_argument("--baseline", choices=["sklearn", "jax", "both", "none"], default="both")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch includes compilation)")

    if args.table:
        table = pd.read_parquet(args.table)
    else:
        table = synthetic_station_table(273, 33, 10, seed=0, noise=0.02, missing_fraction=0.05)
    grid = GridConfig()
    subset = balanced_subset(grid)
    report: dict = {"n_station_dates": len(table), "epochs": args.epochs, "layers": {}}
    for layer in [int(k) for k in args.layers.split(",")]:
        data = layer_arrays(table, layer, seed=0)
        n_train, n_inputs = data["x_train"].shape
        print(f"layer {layer}: {n_train} training rows, {len(data['y_val'])} validation rows, "
              f"{n_inputs} inputs, {args.epochs} epochs")  # fmt: skip
        out = {"n_train": n_train, "n_inputs": n_inputs}
        out["ensemble"] = ens = run_ensembles(data, grid, args.epochs, args.grouping, layer)
        print(
            f"  ensemble ({ens['n_ensembles']} ensembles, {ens['n_configurations']} configs): "
            f"{ens['seconds_per_epoch_all_configs_steady']:.2f} s per epoch over all configs "
            f"(steady), {ens['seconds_per_epoch_all_configs_wall']:.2f} s incl. compilation; "
            f"{ens['wall_seconds']:.1f} s total"
        )
        if args.baseline in ("sklearn", "both"):
            out["sklearn"] = sk = run_sklearn(data, subset, args.epochs)
            out["ratio_sklearn_steady"] = (
                sk["seconds_per_config_epoch"] / ens["seconds_per_config_epoch_steady"]
            )
            out["ratio_sklearn_wall"] = (
                sk["seconds_per_config_epoch"] / ens["seconds_per_config_epoch_wall"]
            )
            print(
                f"  sklearn MLPRegressor, {sk['n_configurations']} configs one at a time: "
                f"{sk['seconds_per_config_epoch'] * 1e3:.1f} ms per config-epoch; ensemble "
                f"{ens['seconds_per_config_epoch_steady'] * 1e3:.1f} ms (steady), "
                f"{ens['seconds_per_config_epoch_wall'] * 1e3:.1f} ms (incl. compilation) -> "
                f"speed-up x{out['ratio_sklearn_steady']:.1f} (steady), "
                f"x{out['ratio_sklearn_wall']:.1f} (incl. compilation)"
            )
        if args.baseline in ("jax", "both"):
            out["jax_single"] = js = run_jax_single(data, subset, args.epochs, layer)
            out["ratio_jax_single_steady"] = (
                js["seconds_per_config_epoch_steady"] / ens["seconds_per_config_epoch_steady"]
            )
            out["ratio_jax_single_wall"] = (
                js["seconds_per_config_epoch_wall"] / ens["seconds_per_config_epoch_wall"]
            )
            print(
                f"  JAX one config at a time, {js['n_configurations']} configs: "
                f"{js['seconds_per_config_epoch_steady'] * 1e3:.1f} ms per config-epoch "
                f"(steady), {js['seconds_per_config_epoch_wall'] * 1e3:.1f} ms incl. "
                f"compilation -> speed-up x{out['ratio_jax_single_steady']:.1f} (steady), "
                f"x{out['ratio_jax_single_wall']:.1f} (incl. compilation)"
            )
        report["layers"][str(layer)] = out
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
