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

Successive halving (``prune_at_epochs``, off by default): the exhaustive search of the paper's
grid with ``max_epochs = 100, patience = 10`` took 562 s for layer 1 of the paper-preset virtual
China (90,034 training rows; every ensemble ran the full 100 epochs because some member was
still improving; 18,805 configuration-epochs), about 47 min for five layers. With rungs at
epochs 5, 15 and 40 keeping a third each (240 -> 80 -> 27 -> 9 configurations) the same layer
took 206 s (3,003 configuration-epochs) and selected the same configuration with the same
validation MSE. The top dozen configurations of the exhaustive search lie within 1.3 % of each
other's validation MSE, so a pruned search that picks another of them loses little.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from cropsm.train.config import GridConfig
from cropsm.train.mlp import EnsembleTrainer, Member, NumpyParams, layer_sizes

GRID_COLUMNS = (
    "hidden_layers",
    "units",
    "batch_size",
    "learning_rate",
    "validation_mse",
    "best_epoch",
    "epochs_trained",
    "pruned_at_epoch",
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


def network_weights(member: Member, n_inputs: int) -> int:
    """Number of weights of a member's network: a proxy for its training time, and the size the
    parsimonious selection (:func:`select_configuration`) minimises."""
    sizes = layer_sizes(n_inputs, member.hidden_layers, member.units)
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:], strict=False))


def successive_halving_losers(
    validation_mse: Sequence[float], keep_fraction: float, labels: Sequence
) -> list:
    """Configurations stopped at a successive-halving rung.

    Keeps the ``ceil(keep_fraction * n)`` lowest validation MSEs of the ``n`` configurations
    still in play (ties: the first in grid order) and returns the labels of the others. With
    ``keep_fraction = 1/eta`` this is the rung rule of successive halving (Jamieson & Talwalkar
    2016; Li et al. 2018, Hyperband), which spends the epochs on the configurations that are
    ahead instead of training every configuration of the paper's grid to the end.
    """
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep fraction must be in (0, 1], got {keep_fraction}")
    values = np.asarray(validation_mse, dtype=np.float64)
    values = np.where(np.isfinite(values), values, np.inf)
    n_keep = max(1, math.ceil(keep_fraction * len(values) - 1e-9))
    ranked = np.argsort(values, kind="stable")
    return [labels[i] for i in sorted(ranked[n_keep:])]


def select_configuration(
    validation_mse: Sequence[float], n_weights: Sequence[int], tolerance: float = 0.0
) -> int:
    """Index of the selected configuration.

    With ``tolerance = 0`` the lowest validation MSE (ties: first in grid order), the paper's
    rule (section 2a). With ``tolerance > 0`` the configuration with the fewest weights among
    those whose validation MSE is at most ``(1 + tolerance) * min(MSE)`` (ties: lower MSE, then
    grid order) -- a parsimony rule in the spirit of the one-standard-error rule: the product's
    cost grows with the network (every cell-day runs it six times), while on the paper-preset
    virtual China the dozen best configurations of a layer lie within 1-2 % of each other.
    """
    if tolerance < 0:
        raise ValueError(f"selection tolerance must be >= 0, got {tolerance}")
    values = np.asarray(validation_mse, dtype=np.float64)
    values = np.where(np.isfinite(values), values, np.inf)
    best = int(np.argmin(values))
    if tolerance == 0 or not np.isfinite(values[best]):
        return best
    within = np.flatnonzero(values <= values[best] * (1.0 + tolerance))
    return int(min(within, key=lambda i: (n_weights[i], values[i], i)))


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
    prune_at_epochs: Sequence[int] = (),
    prune_keep_fraction: float = 1.0 / 3.0,
    selection_tolerance: float = 0.0,
    progress: Callable[[str], None] | None = None,
    bounds_train: np.ndarray | None = None,
    bounds_val: np.ndarray | None = None,
    input_noise: float = 0.0,
    weight_decay: float = 0.0,
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
    prune_at_epochs, prune_keep_fraction
        Successive halving: after each of these epochs every configuration still in play is
        ranked by its best validation MSE so far across all ensembles, and only the best
        ``ceil(prune_keep_fraction * n)`` go on (:func:`successive_halving_losers`); the others
        keep their best parameters and are marked ``pruned_at_epoch`` in the results. Empty
        (default): every configuration trains until early stopping or ``max_epochs``, an
        exhaustive grid search.
    selection_tolerance
        0 (default): the configuration with the lowest validation MSE, the paper's rule.
        Otherwise the smallest network among those within ``1 + selection_tolerance`` of the
        lowest validation MSE (:func:`select_configuration`).
    progress
        Optional callable receiving one line of text per finished ensemble (called from the
        calling thread).
    bounds_train, bounds_val
        Optional ``(n, 2)`` per-row output bounds in standardised target units (bounded output,
        :func:`cropsm.train.mlp.bounded_output`); None: the paper's linear output.
    input_noise
        SD of the Gaussian noise on the standardised training inputs
        (:func:`cropsm.train.mlp.noisy_inputs`); 0: none.
    weight_decay
        Decoupled weight decay (:func:`cropsm.train.mlp.decayed_step`); 0: none.

    Returns
    -------
    GridSearchResult
    """
    start = time.perf_counter()
    groups = ensemble_groups(grid, grouping)
    n_inputs = x_train.shape[1]
    trainers = [
        EnsembleTrainer(
            group,
            x_train,
            y_train,
            x_val,
            y_val,
            seed=seed,
            layer=layer,
            patience=patience,
            bounds_train=bounds_train,
            bounds_val=bounds_val,
            input_noise=input_noise,
            weight_decay=weight_decay,
        )  # fmt: skip
        for group in groups
    ]
    seconds = [0.0] * len(groups)
    reported: set[int] = set()
    # Position of every configuration: (ensemble, member), in grid order of the groups.
    positions = [(g, i) for g, group in enumerate(groups) for i in range(len(group))]
    pruned_at = {position: 0 for position in positions}

    def train(g: int, until_epoch: int) -> None:
        group_start = time.perf_counter()
        trainers[g].advance(until_epoch)
        seconds[g] += time.perf_counter() - group_start

    # Largest architectures first, so that the parallel workers finish together.
    order = sorted(range(len(groups)), key=lambda g: -network_weights(groups[g][0], n_inputs))
    rungs = sorted({int(r) for r in prune_at_epochs if 0 < int(r) < max_epochs})
    for until_epoch in [*rungs, max_epochs]:
        todo = [g for g in order if trainers[g].n_active > 0]
        with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
            futures = {pool.submit(train, g, until_epoch): g for g in todo}
            for future in as_completed(futures):
                future.result()
        if until_epoch < max_epochs:
            in_play = [pos for pos in positions if not pruned_at[pos]]
            best = {g: trainers[g].best_val_mse() for g in range(len(groups))}
            losers = successive_halving_losers(
                [best[g][i] for g, i in in_play], prune_keep_fraction, in_play
            )
            for position in losers:
                pruned_at[position] = until_epoch
            for g in range(len(groups)):
                trainers[g].stop([i for h, i in losers if h == g])
        for g in order:  # ensembles that finished, reported once, largest first
            if g not in reported and (trainers[g].n_active == 0 or until_epoch == max_epochs):
                reported.add(g)
                if progress is not None:
                    progress(
                        f"layer {layer}: {groups[g][0].hidden_layers} x {groups[g][0].units} "
                        f"units, {len(groups[g])} configurations, "
                        f"{len(trainers[g].epoch_seconds)} epochs, {seconds[g]:.1f} s"
                    )
    outcomes = {g: trainers[g].result() for g in range(len(groups))}

    rows: list[dict] = []
    weights: list[NumpyParams] = []
    member_epochs = 0
    for g, group in enumerate(groups):
        outcome = outcomes[g]
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
                    "pruned_at_epoch": pruned_at[(g, i)],
                }
            )
            weights.append(outcome.best_params[i])
    results = pd.DataFrame(rows)
    costs = [network_weights(member, n_inputs) for group in groups for member in group]
    best = select_configuration(results["validation_mse"].to_numpy(), costs, selection_tolerance)
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
