"""Speed of the vectorised grid search against one-configuration-at-a-time training.

Trains the FULL hyperparameter grid (240 configurations, paper section 2a) for one soil layer as
vectorised JAX ensembles (:mod:`cropsm.train.mlp`) without early stopping, so every
configuration runs exactly ``--epochs`` epochs, and in the same run trains a balanced subset of
the grid one configuration at a time with

* scikit-learn's ``MLPRegressor`` (Adam, same architecture, batch size, learning rate, epochs,
  float32), in a separate process without JAX, one BLAS thread by default,
* plain per-configuration JAX (the same jitted epoch with an ensemble of one member).

The subset has every architecture once and each batch size three times (Latin-square style),
so its mean cost per configuration is representative of the grid's.

Phases (the machine may be shared, so the comparison is *paired*):

1. cold: the whole grid as in ``train_layers`` (``--parallel`` ensembles at a time), including
   the XLA compilations -> seconds per epoch over all configurations incl. compilation;
2. warm: the same again, reusing the compiled code -> steady seconds per epoch (the fastest
   of ``--repeats`` runs);
3. paired: for each architecture in turn, its ensemble (20 configurations, alone), then the
   subset's configuration of that architecture with scikit-learn and with single JAX, so that
   the baseline and the ensemble run under the same machine load. The speed ratio is
   ``baseline seconds per configuration-epoch / ensemble seconds per configuration-epoch``
   (ensembles one at a time here, which is conservative; each timing is the fastest of
   ``--repeats`` interleaved repetitions). The full-grid steady time is also compared with the
   scikit-learn time.

With ``--members K`` (default 5) the deep ensemble's extra members (:mod:`cropsm.train.ensemble`,
members 1...K-1 of the selected configuration, here the paper's Table 2 one) are timed in the same
run and the ratio of training with K members to training with one is printed.

Usage::

    .venv/bin/python benchmarks/bench_train.py --epochs 4
    .venv/bin/python benchmarks/bench_train.py --table runs/x/features/station_table.parquet

Without ``--table`` a synthetic station table of the paper's size is used (273 stations x 33
years x 10 dates = 90,090 station-dates, :func:`cropsm.train.synthetic.synthetic_station_table`).
For a layer k >= 2 the observed layer k - 1 stands in for ``sm_pred_upper`` (timing only).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

MEMBER_FIELDS = ("hidden_layers", "units", "batch_size", "learning_rate")
NO_EARLY_STOP = 1_000_000
"""Patience larger than any run: every configuration trains all epochs. (Patience is a static
argument of the compiled epoch, so every phase uses the same value and shares compilations.)"""


def layer_arrays(table, layer: int, seed: int) -> dict[str, np.ndarray]:
    """Standardised training and validation arrays of one layer (paper's random 70/30, 10 %)."""
    import pandas as pd

    from cropsm.features.groups import UPPER, layer_feature_names
    from cropsm.train.chain import target_column, with_pattern_one_hot
    from cropsm.train.numpy_net import fit_scaler
    from cropsm.train.splits import make_split

    table = with_pattern_one_hot(table)
    columns = []
    for name in layer_feature_names(layer):
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


def balanced_subset(grid) -> dict[tuple[int, int], object]:
    """One configuration per architecture; batch sizes Latin-square, learning rates cycled."""
    from cropsm.train.mlp import Member

    subset = {}
    for i, hidden in enumerate(grid.hidden_layers):
        for j, units in enumerate(grid.units):
            batch = grid.batch_sizes[(i + j) % len(grid.batch_sizes)]
            lr = grid.learning_rates[(i * len(grid.units) + j) % len(grid.learning_rates)]
            subset[(hidden, units)] = Member(hidden, units, batch, lr)
    return subset


# --------------------------------------------------------------------------------------------
# scikit-learn in its own process (no JAX threads around), fed one configuration at a time
# --------------------------------------------------------------------------------------------


def sklearn_worker(npz_path: str, epochs: int) -> None:
    """Read one configuration per stdin line (JSON), fit it, answer the seconds on stdout."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    with np.load(npz_path, allow_pickle=False) as data:
        x = data["x_train"].astype(np.float32)
        y = data["y_train"].astype(np.float32)
    for line in sys.stdin:
        m = json.loads(line)
        model = MLPRegressor(
            hidden_layer_sizes=(m["units"],) * m["hidden_layers"],
            activation="relu",
            solver="adam",
            alpha=0.0,
            batch_size=m["batch_size"],
            learning_rate_init=m["learning_rate"],
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
        seconds = time.perf_counter() - start
        assert model.n_iter_ == epochs
        print(json.dumps(seconds), flush=True)


class SklearnBaseline:
    """A worker process that times scikit-learn fits on the layer's training arrays."""

    def __init__(self, data: dict, epochs: int, threads: str):
        self._tmp = tempfile.TemporaryDirectory()
        npz = os.path.join(self._tmp.name, "data.npz")
        np.savez(npz, x_train=data["x_train"], y_train=data["y_train"])
        env = dict(os.environ)
        if threads != "default":
            for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
                env[name] = threads
        command = [sys.executable, __file__, "--sklearn-worker", npz, "--epochs", str(epochs)]
        self._process = subprocess.Popen(
            command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def fit_seconds(self, member) -> float:
        self._process.stdin.write(json.dumps({f: getattr(member, f) for f in MEMBER_FIELDS}))
        self._process.stdin.write("\n")
        self._process.stdin.flush()
        return float(json.loads(self._process.stdout.readline()))

    def close(self) -> None:
        self._process.stdin.close()
        self._process.wait(timeout=60)
        self._tmp.cleanup()


# --------------------------------------------------------------------------------------------
# Phases
# --------------------------------------------------------------------------------------------


def time_grid(data: dict, grid, epochs: int, grouping: str, parallel: int, layer: int) -> float:
    """Wall seconds of the whole grid search without early stopping."""
    from cropsm.train.grid_search import run_grid_search

    start = time.perf_counter()
    result = run_grid_search(
        data["x_train"], data["y_train"], data["x_val"], data["y_val"], grid,
        seed=0, layer=layer, max_epochs=epochs, patience=NO_EARLY_STOP,
        grouping=grouping, parallel=parallel,
    )  # fmt: skip
    assert (result.results["epochs_trained"] == epochs).all()
    return time.perf_counter() - start


def time_ensemble(data: dict, members: list, epochs: int, layer: int) -> float:
    """Wall seconds of one ensemble (or of a single configuration when ``members`` has one)."""
    from cropsm.train.mlp import train_ensemble

    start = time.perf_counter()
    train_ensemble(
        members, data["x_train"], data["y_train"], data["x_val"], data["y_val"],
        seed=0, layer=layer, max_epochs=epochs, patience=NO_EARLY_STOP,
    )  # fmt: skip
    return time.perf_counter() - start


def time_bootstrap_members(
    data: dict, hyper: dict, n_members: int, epochs: int, layer: int, parallel: int = 2
):
    """Wall seconds of ensemble members 1...K-1 of one layer (:mod:`cropsm.train.ensemble`):
    the selected configuration retrained K - 1 times in vectorised pairs, ``parallel`` pairs at
    a time as the train stage does, station-like bootstrap weights, every member ``epochs``
    epochs (no early stopping)."""
    from cropsm.train.ensemble import train_bootstrap_members

    extra = list(range(1, n_members))
    if not extra:
        return 0.0
    rng = np.random.default_rng(0)
    n = len(data["y_train"])
    stack = lambda a: np.broadcast_to(a, (len(extra), *a.shape))  # noqa: E731
    weights = rng.poisson(1.0, (len(extra), n)).astype(np.float64)
    start = time.perf_counter()
    train_bootstrap_members(
        hyper, stack(data["x_train"]), data["y_train"], weights, stack(data["x_val"]),
        data["y_val"], seed=0, layer=layer, members=extra, max_epochs=epochs,
        patience=NO_EARLY_STOP, parallel=parallel,
    )  # fmt: skip
    return time.perf_counter() - start


def paired(data: dict, grid, epochs: int, grouping: str, layer: int, args) -> dict:
    """Per architecture: its ensemble, then the baselines of its subset configuration."""
    from cropsm.train.grid_search import ensemble_groups

    subset = balanced_subset(grid)
    sklearn = None
    if args.baseline in ("sklearn", "both"):
        sklearn = SklearnBaseline(data, epochs, args.sklearn_threads)
    rows = []
    try:
        groups = ensemble_groups(grid, grouping)
        shapes = sorted({g[0].shape for g in groups})
        for shape in shapes:
            shape_groups = [g for g in groups if g[0].shape == shape]
            member = subset[shape]
            if args.baseline in ("jax", "both"):
                time_ensemble(data, [member], 2, layer)  # compile
            row = {"hidden_layers": shape[0], "units": shape[1]}
            row["ensemble_configs"] = sum(len(g) for g in shape_groups)
            row["baseline_batch_size"] = member.batch_size
            timings: dict[str, list[float]] = {}
            for _ in range(args.repeats):  # interleaved; the minimum filters out load bursts
                seconds = sum(time_ensemble(data, g, epochs, layer) for g in shape_groups)
                timings.setdefault("ensemble_seconds", []).append(seconds)
                if sklearn is not None:
                    timings.setdefault("sklearn_seconds", []).append(sklearn.fit_seconds(member))
                if args.baseline in ("jax", "both"):
                    seconds = time_ensemble(data, [member], epochs, layer)
                    timings.setdefault("jax_single_seconds", []).append(seconds)
            row.update({name: min(values) for name, values in timings.items()})
            rows.append(row)
            print(f"    {shape[0]} x {shape[1]:>2}: " + ", ".join(
                f"{k} {v:.2f}" for k, v in row.items() if k.endswith("seconds")
            ), flush=True)  # fmt: skip
    finally:
        if sklearn is not None:
            sklearn.close()
    n_configs = sum(r["ensemble_configs"] for r in rows)
    ens = sum(r["ensemble_seconds"] for r in rows) / (n_configs * epochs)
    out = {"rows": rows, "ensemble_seconds_per_config_epoch": ens}
    for name in ("sklearn", "jax_single"):
        key = f"{name}_seconds"
        if rows and key in rows[0]:
            base = sum(r[key] for r in rows) / (len(rows) * epochs)
            out[f"{name}_seconds_per_config_epoch"] = base
            out[f"ratio_{name}"] = base / ens
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", help="station table parquet (default: synthetic, paper size)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per configuration")
    parser.add_argument(
        "--stations", type=int, default=273, help="synthetic table: stations (x 33 years x 10)"
    )
    parser.add_argument("--layers", default="1", help="soil layers to time, e.g. 1 or 1,5")
    parser.add_argument("--grouping", choices=["shape", "shape_batch"], default="shape")
    parser.add_argument("--parallel", type=int, default=2, help="ensembles at the same time")
    parser.add_argument("--baseline", choices=["sklearn", "jax", "both", "none"], default="both")
    parser.add_argument(
        "--sklearn-threads", default="1", help="BLAS threads of scikit-learn ('default': as is)"
    )
    parser.add_argument("--repeats", type=int, default=2, help="timings repeated, the minimum kept")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument(
        "--members", type=int, default=5, help="deep-ensemble size K timed against K = 1"
    )
    parser.add_argument("--sklearn-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sklearn_worker:
        sklearn_worker(args.sklearn_worker, args.epochs)
        return {}
    if args.epochs < 2:
        parser.error("--epochs must be at least 2")

    import pandas as pd

    from cropsm.train.config import GridConfig
    from cropsm.train.synthetic import synthetic_station_table

    if args.table:
        table = pd.read_parquet(args.table)
    else:
        table = synthetic_station_table(
            args.stations, 33, 10, seed=0, noise=0.02, missing_fraction=0.05
        )
    grid = GridConfig()
    n_configs = grid.n_configurations
    report: dict = {"n_station_dates": len(table), "epochs": args.epochs, "layers": {}}
    report["cpu_count"] = os.cpu_count()
    report["load_average_start"] = os.getloadavg()
    print(f"{len(table)} station-dates; {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    for layer in [int(k) for k in args.layers.split(",")]:
        data = layer_arrays(table, layer, seed=0)
        n_train, n_inputs = data["x_train"].shape
        print(f"layer {layer}: {n_train} training rows, {len(data['y_val'])} validation rows, "
              f"{n_inputs} inputs, {args.epochs} epochs per configuration")  # fmt: skip
        cold = time_grid(data, grid, args.epochs, args.grouping, args.parallel, layer)
        warm = min(
            time_grid(data, grid, args.epochs, args.grouping, args.parallel, layer)
            for _ in range(args.repeats)
        )
        out: dict = {
            "n_train": n_train,
            "n_inputs": n_inputs,
            "grid_seconds_cold": cold,
            "grid_seconds_warm": warm,
            "seconds_per_epoch_all_configs_incl_compilation": cold / args.epochs,
            "seconds_per_epoch_all_configs_steady": warm / args.epochs,
        }
        print(
            f"  full grid, {n_configs} configurations, {args.parallel} ensembles at a time: "
            f"{warm / args.epochs:.2f} s per epoch over all configurations (steady, "
            f"{_ms(warm / args.epochs / n_configs)} per configuration-epoch), "
            f"{cold / args.epochs:.2f} s including compilation "
            f"(load average {os.getloadavg()[0]:.2f})"
        )
        if args.members > 1:
            from cropsm import paper

            row = next(r for r in paper.TABLE2 if r.layer == layer)
            hyper = {f: getattr(row, f) for f in MEMBER_FIELDS}
            timing = (data, hyper, args.members, args.epochs, layer, args.parallel)
            time_bootstrap_members(*timing)  # compile
            members_s = min(time_bootstrap_members(*timing) for _ in range(args.repeats))
            out["members"] = args.members
            out["bootstrap_members_seconds"] = members_s
            out["ratio_training_k_to_k1"] = (warm + members_s) / warm
            print(
                f"  deep ensemble K = {args.members}: members 1...{args.members - 1} with the "
                f"paper's Table 2 configuration ({hyper['hidden_layers']} x {hyper['units']}, "
                f"batch {hyper['batch_size']}) take {members_s:.2f} s for {args.epochs} epochs; "
                f"training K = {args.members} / K = 1 (grid search + members / grid search): "
                f"x{out['ratio_training_k_to_k1']:.3f}"
            )
        if args.baseline != "none":
            print("  paired, seconds per architecture (ensemble of all its configurations, "
                  "then one configuration):")  # fmt: skip
            out["paired"] = p = paired(data, grid, args.epochs, args.grouping, layer, args)
            line = f"  ensembles {_ms(p['ensemble_seconds_per_config_epoch'])} per config-epoch"
            for name, label in (("sklearn", "scikit-learn"), ("jax_single", "single JAX")):
                if f"ratio_{name}" in p:
                    line += (
                        f"; {label} {_ms(p[f'{name}_seconds_per_config_epoch'])} "
                        f"-> x{p[f'ratio_{name}']:.1f} per configuration"
                    )
            print(line)
            if "sklearn_seconds_per_config_epoch" in p:
                out["ratio_sklearn_full_grid"] = p["sklearn_seconds_per_config_epoch"] / (
                    warm / args.epochs / n_configs
                )
                print(
                    f"  full grid ({args.parallel} ensembles at a time, steady) against "
                    f"scikit-learn: x{out['ratio_sklearn_full_grid']:.1f} per configuration"
                )
        report["layers"][str(layer)] = out
    report["load_average_end"] = os.getloadavg()
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2)
    return report


if __name__ == "__main__":
    main()
