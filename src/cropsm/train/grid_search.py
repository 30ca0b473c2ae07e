"""Grid search over batch size, learning rate, hidden layers and units for one layer (section 2a).

"The set of hyper parameters is selected by choosing the one that achieve the lowest loss
function value (mean squared error) on the validation set." Every configuration is trained with
early stopping and keeps the parameters of its best validation epoch; the configuration with the
lowest best-epoch validation MSE is selected (ties: the first in grid order).

Configurations are trained as vectorised ensembles (:func:`cropsm.train.mlp.train_ensemble`).
With ``grouping="shape"`` all configurations of one architecture form one ensemble (12 of them
for the paper's grid), their batch sizes run in lockstep by gradient accumulation, and stopped
members are dropped when at most half remain. Measured on 2 CPU cores with ~56,000 training rows
and three architectures, early stopping on (30 epochs, patience 4): 52 s, against 77 s for one
ensemble per (architecture, batch size) (``grouping="shape_batch"``) and 85 s for ``shape``
without dropping stopped members. A configuration's result does not depend on the grouping
beyond float32 round-off. Two ensembles train at the same time in threads (``parallel``),
measured 10-20 % faster than one at a time on 2 cores.

Throughput (``benchmarks/bench_train.py``, 2 shared CPU cores, 53,928 training rows, 25 inputs,
no early stopping): the 240 configurations take 4.2 s per epoch together on an idle machine
(17 ms per configuration-epoch; 9-11 s under a load average of 4-6), against 116-155 ms per
configuration-epoch for scikit-learn's MLPRegressor one configuration at a time. Large
architectures are compute-bound (~60 GFLOP/s), so the gain comes mostly from small networks and
small batches, and from compiling 12 programs instead of 240.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from cropsm.train.config import GridConfig
from cropsm.train.mlp import EnsembleResult, Member, NumpyParams, layer_sizes, train_ensemble

GRID_COLUMNS = (
    "hidden_layers",
    "units",
    "batch_size",
    "learning_rate",
    "validation_mse",
    "best_epoch",
    "epochs_trained",
    "selected",
)


@dataclass(frozen=True)
class GridSearchResult:
    """Every configuration's outcome and the selected network of one soil layer.

    Attributes
    ----------
    results
        One row per configuration, columns :data:`GRID_COLUMNS`. ``validation_mse`` is the
        best-epoch validation MSE in target units squared ((m3 m-3)^2); ``best_epoch`` is
        1-based (0: the initial weights were never improved on); ``selected`` marks the chosen
        configuration.
    selected
        ``hidden_layers, units, batch_size, learning_rate, validation_mse, best_epoch,
        epochs_trained`` of the chosen configuration.
    weights
        Parameters of the chosen network (standardised inputs and target).
    seconds
        Wall time of the whole search.
    member_epochs
        Configuration-epochs computed (including members kept in lockstep after stopping).
    """

    results: pd.DataFrame
    selected: dict
    weights: NumpyParams
    seconds: float
    member_epochs: int


def ensemble_groups(
    grid: GridConfig, grouping: Literal["shape", "shape_batch"] = "shape"
) -> list[list[Member]]:
    """Split the grid into ensembles that are trained together.

    ``shape``: one ensemble per (hidden layers, units); ``shape_batch``: one per (hidden layers,
    units, batch size). Members keep the grid order.
    """
    members = [Member(*c) for c in grid.configurations()]
    groups: dict[tuple, list[Member]] = {}
    for m in members:
        key = m.shape if grouping == "shape" else (*m.shape, m.batch_size)
        groups.setdefault(key, []).append(m)
    return list(groups.values())


def _cost(member: Member, n_inputs: int) -> int:
    """Number of weights of a member's network, a proxy for its training time."""
    sizes = layer_sizes(n_inputs, member.hidden_layers, member.units)
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def run_grid_search(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    grid: GridConfig,
    *,
    seed: int,
    layer: int,
    max_epochs: int,
    patience: int,
    grouping: Literal["shape", "shape_batch"] = "shape",
    target_std: float = 1.0,
    parallel: int = 2,
    progress: Callable[[str], None] | None = None,
) -> GridSearchResult:
    """Train every configuration of ``grid`` on one layer's rows and select the best.

    Parameters
    ----------
    x_train, y_train, x_val, y_val
        Standardised inputs and targets of the training and validation rows.
    grid
        Hyperparameter values.
    seed, layer
        Fix initial weights and shuffling (see :func:`cropsm.train.mlp.member_key`).
    max_epochs, patience
        Early stopping on validation MSE, per configuration.
    grouping
        How configurations are batched into ensembles (:func:`ensemble_groups`).
    target_std
        Standard deviation used to standardise the target; validation MSE is reported as
        ``mse_standardised * target_std^2`` in the target's own units.
    parallel
        Ensembles trained at the same time, each in its own thread (XLA releases the GIL).
        Results do not depend on it.
    progress
        Optional callable receiving one line of text per finished ensemble (called from the
        calling thread).

    Returns
    -------
    GridSearchResult
    """
    start = time.perf_counter()
    groups = ensemble_groups(grid, grouping)
    n_inputs = x_train.shape[1]

    def train(group: list[Member]) -> tuple[EnsembleResult, float]:
        group_start = time.perf_counter()
        outcome = train_ensemble(
            group, x_train, y_train, x_val, y_val,
            seed=seed, layer=layer, max_epochs=max_epochs, patience=patience,
        )  # fmt: skip
        return outcome, time.perf_counter() - group_start

    # Largest architectures first, so that the parallel workers finish together.
    order = sorted(range(len(groups)), key=lambda g: -_cost(groups[g][0], n_inputs))
    outcomes: dict[int, tuple[EnsembleResult, float]] = {}
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        futures = {pool.submit(train, groups[g]): g for g in order}
        for future in as_completed(futures):
            g = futures[future]
            outcomes[g] = future.result()
            if progress is not None:
                outcome, seconds = outcomes[g]
                progress(
                    f"layer {layer}: {groups[g][0].hidden_layers} x {groups[g][0].units} units, "
                    f"{len(groups[g])} configurations, {len(outcome.epoch_seconds)} epochs, "
                    f"{seconds:.1f} s"
                )

    rows: list[dict] = []
    weights: list[NumpyParams] = []
    member_epochs = 0
    for g, group in enumerate(groups):
        outcome, _ = outcomes[g]
        member_epochs += outcome.member_epochs
        for i, member in enumerate(group):
            mse = float(outcome.best_val_mse[i]) * target_std**2
            rows.append(
                {
                    "hidden_layers": member.hidden_layers,
                    "units": member.units,
                    "batch_size": member.batch_size,
                    "learning_rate": member.learning_rate,
                    "validation_mse": mse if np.isfinite(mse) else np.inf,
                    "best_epoch": int(outcome.best_epoch[i]) + 1,
                    "epochs_trained": int(outcome.epochs_trained[i]),
                }
            )
            weights.append(outcome.best_params[i])
    results = pd.DataFrame(rows)
    best = int(np.argmin(results["validation_mse"].to_numpy()))
    results["selected"] = np.arange(len(results)) == best
    results = results.loc[:, list(GRID_COLUMNS)]
    selected = results.iloc[best].drop("selected").to_dict()
    for name in ("hidden_layers", "units", "batch_size", "best_epoch", "epochs_trained"):
        selected[name] = int(selected[name])
    for name in ("learning_rate", "validation_mse"):
        selected[name] = float(selected[name])
    return GridSearchResult(
        results=results,
        selected=selected,
        weights=weights[best],
        seconds=time.perf_counter() - start,
        member_epochs=member_epochs,
    )
