"""Five layer networks chained from the top soil layer down (paper section 2a).

"For deeper soil layers, we also use the SM prediction in the adjacent upper layer as an
additional input feature." The network of layer k >= 2 takes ``sm_pred_upper``: the prediction
of the trained layer k - 1 network on the same row (which in turn used the layer k - 2
prediction), never the layer k - 1 observation. Training therefore sees exactly the inputs that
inference on the grid will see. Predictions are computed with the same NumPy forward pass
(:func:`predict_chain`) during training and at inference.

``[train] chain = "none"`` drops the chained input: every layer's network then takes only its own
features. Measured on all USCRN stations with whole years held out (``examples/uscrn.toml``;
ensemble mean of 5, members without resampling), the chained input passes the upper layer's
error down the profile: test R2 0.934 0.933 0.914 0.914 0.890 chained, 0.934 0.925 0.918 0.921
0.906 unchained (layers 1-5). A model's :attr:`LayerModel.feature_names` say whether it takes
``sm_pred_upper``; prediction follows them.

Rows: for layer k the rows of the station table with ``sm_l{k}`` observed; rows with a NaN in a
used feature (including a NaN upper-layer prediction) are dropped and counted. The
train / validation / test membership is decided once per row (:func:`make_split`) and is the
same for every layer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from cropsm import N_LAYERS
from cropsm.features.groups import PATTERN_ONE_HOT, UPPER, layer_feature_names, pattern_one_hot
from cropsm.memory import release_memory, resident_mb
from cropsm.train.bounds import anchor_only_columns, is_bounded, row_anchor, row_bounds, sigmoid
from cropsm.train.config import GridConfig, TrainConfig
from cropsm.train.metrics import all_metrics
from cropsm.train.numpy_net import NumpyParams, Scaler, fit_scaler, numpy_forward
from cropsm.train.splits import SPLIT_NAMES, make_split

ProgressCallback = Callable[[str, int, int], None]
"""``report(step, done, total)``, as :func:`cropsm.progress.progress_callback` yields."""

RELEASE_ABOVE_MB = 2048.0
"""Resident size above which training collects garbage and trims the heap after each layer."""


def target_column(layer: int) -> str:
    """Observed soil moisture of a layer in the station table: ``sm_l{k}``."""
    return f"sm_l{layer}"


def _silence_inputs(weights: NumpyParams, columns: list[int]) -> NumpyParams:
    """The network with the first-layer weights of ``columns`` set to 0 (inputs it was trained
    without: they were 0 in every training row)."""
    if not columns:
        return weights
    (w1, b1), *rest = weights
    w1 = np.array(w1, copy=True)
    w1[columns] = 0.0
    return [(w1, b1), *rest]


def prediction_column(layer: int) -> str:
    """Predicted soil moisture of a layer: ``sm_pred_l{k}``."""
    return f"sm_pred_l{layer}"


@dataclass(frozen=True, eq=False)
class LayerModel:
    """The selected network of one soil layer with everything needed to apply it.

    Attributes
    ----------
    layer
        Soil layer 1...5.
    feature_names
        Input columns in network order (``sm_pred_upper`` last for layer >= 2 of a chained
        network, absent with ``[train] chain = "none"``).
    scaler
        Input standardisation with the layer's training-row statistics.
    target_mean, target_std
        Target standardisation (training rows): ``sm = target_mean + target_std * output``.
    weights
        ``[(W, b), ...]`` of the network, hidden layers ReLU, output linear.
    hyperparameters
        ``hidden_layers, units, batch_size, learning_rate, validation_mse, best_epoch,
        epochs_trained`` of the selected grid configuration.
    metrics
        ``{"train": M, "validation": M, "test": M}`` with M from :func:`all_metrics`.
    row_counts
        ``observed``, ``dropped_nan``, ``train``, ``validation``, ``test`` rows of the layer.
    output
        ``linear`` (the paper: ``sm = target_mean + target_std * z``), ``bounded``
        (``sm = lo + (hi - lo) sigmoid(z)`` between 0 and the porosity of the row's layer,
        :mod:`cropsm.train.bounds`) or ``anchored`` (the same range, ``sigmoid(z + logit(b))``
        with ``b`` the bucket's soil moisture, :func:`cropsm.train.bounds.anchor_logit`; the
        bucket store enters only through ``b``: its input weights are zero).
    """

    layer: int
    feature_names: tuple[str, ...]
    scaler: Scaler
    target_mean: float
    target_std: float
    weights: NumpyParams
    hyperparameters: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    row_counts: dict = field(default_factory=dict)
    output: str = "linear"

    @property
    def hidden_layers(self) -> int:
        return len(self.weights) - 1

    @property
    def units(self) -> int:
        return int(self.weights[0][0].shape[1]) if self.hidden_layers else 0

    def predict_array(self, x: np.ndarray) -> np.ndarray:
        """Soil moisture (m3 m-3) for inputs ``x`` ``(n, n_features)`` in :attr:`feature_names`
        order: ``target_mean + target_std * f((x - mean) / std)``. NaN where a row has a NaN.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(
                f"layer {self.layer}: expected inputs of shape (n, {len(self.feature_names)}), "
                f"got {x.shape}"
            )
        finite = np.isfinite(x).all(axis=1)
        out = np.full(x.shape[0], np.nan)
        if finite.any():
            z = self.scaler.transform(x[finite])
            raw = numpy_forward(self.weights, z)
            if is_bounded(self.output):
                bounds = row_bounds(x[finite], self.feature_names, self.layer)
                if self.output == "anchored":
                    raw = raw + row_anchor(x[finite], self.feature_names, self.layer, bounds[:, 1])
                out[finite] = bounds[:, 0] + (bounds[:, 1] - bounds[:, 0]) * sigmoid(raw)
            else:
                out[finite] = self.target_mean + self.target_std * raw
        return out


@dataclass
class TrainedChain:
    """The five trained layer networks and how they were obtained.

    Attributes
    ----------
    models
        One :class:`LayerModel` per layer, top layer first.
    split
        ``train`` / ``validation`` / ``test`` per station-table row (same for every layer).
    split_kind
        ``random``, ``station`` or ``year``.
    grid_search
        Every configuration of every layer (:data:`cropsm.train.grid_search.GRID_COLUMNS`
        with a leading ``layer`` column).
    upper_inputs
        ``{k: Series}``: the ``sm_pred_upper`` values layer k >= 2 was trained and evaluated on,
        for its used rows (index of the station table); empty with ``chain = "none"``.
    row_counts
        Per layer: observed rows, rows dropped for NaN features, train / validation / test rows.
    config
        The training configuration.
    groups_off
        Feature groups that were switched off.
    seconds
        Wall time of the grid search per layer.
    members
        Deep-ensemble members 1...K-1 (:mod:`cropsm.train.ensemble`), each a list of layer
        models, top layer first; :attr:`models` is member 0. Empty for K = 1.
    ensemble
        Per layer: ensemble size, bootstrap training seconds, the calibrated residual SD
        (m3 m-3) and the 90 % interval coverage on validation and test rows before and after
        calibration, and the ensemble mean's metrics.
    """

    models: list[LayerModel]
    split: pd.Series
    split_kind: str
    grid_search: pd.DataFrame
    upper_inputs: dict[int, pd.Series]
    row_counts: pd.DataFrame
    config: TrainConfig
    groups_off: tuple[str, ...] = ()
    seconds: dict[int, float] = field(default_factory=dict)
    feature_set: str = "paper"
    members: list[list[LayerModel]] = field(default_factory=list)
    ensemble: dict[int, dict] = field(default_factory=dict)

    @property
    def metrics(self) -> dict:
        """``{"split": kind, "layer1": {"train": M, "validation": M, "test": M}, ...}`` of
        member 0, the selected network (the ensemble's numbers: :attr:`ensemble`,
        ``models/ensemble.json``)."""
        out: dict = {"split": self.split_kind}
        for model in self.models:
            out[f"layer{model.layer}"] = {name: model.metrics[name] for name in SPLIT_NAMES}
        return out

    @property
    def all_members(self) -> list[list[LayerModel]]:
        """Every ensemble member's layer models, member 0 (:attr:`models`) first."""
        return [self.models, *self.members]

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        """Chained predictions ``sm_pred_l1...`` for the rows of ``table``."""
        return predict_chain(self.models, table)


def with_pattern_one_hot(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the ``pattern_<id>`` one-hot columns; computed from ``pattern`` if absent.

    Returns the table itself when the columns are already there (or when there is no
    ``pattern`` column to compute them from), else a copy with the columns added.
    """
    if all(c in table.columns for c in PATTERN_ONE_HOT) or "pattern" not in table.columns:
        return table
    onehot = pattern_one_hot(table["pattern"].astype(str).reset_index(drop=True))
    onehot.index = table.index
    missing = [c for c in PATTERN_ONE_HOT if c not in table.columns]
    return pd.concat([table, onehot[missing]], axis=1)


def _layer_inputs(
    table: pd.DataFrame, names: Sequence[str], upper: np.ndarray | None, layer: int
) -> np.ndarray:
    """Input matrix ``(n_rows, n_features)`` of one layer, ``sm_pred_upper`` from ``upper``."""
    columns = []
    for name in names:
        if name == UPPER:
            if upper is None:
                raise ValueError(f"layer {layer}: {UPPER} needs the layer {layer - 1} prediction")
            columns.append(np.asarray(upper, dtype=np.float64))
        else:
            columns.append(pd.to_numeric(table[name], errors="coerce").to_numpy(np.float64))
    if not columns:
        raise ValueError(f"layer {layer}: no input features")
    return np.column_stack(columns)


def _as_model_list(models: Sequence[LayerModel] | Mapping[int, LayerModel] | TrainedChain):
    if isinstance(models, TrainedChain):
        models = models.models
    if isinstance(models, Mapping):
        models = [models[k] for k in sorted(models)]
    models = sorted(models, key=lambda m: m.layer)
    layers = [m.layer for m in models]
    if layers != list(range(1, len(layers) + 1)):
        raise ValueError(f"a chain needs layers 1...k without gaps, got {layers}")
    return models


def predict_chain(
    models: Sequence[LayerModel] | Mapping[int, LayerModel] | TrainedChain, table: pd.DataFrame
) -> pd.DataFrame:
    """Chained predictions from the top layer down, in plain NumPy (usable in dask blocks).

    ``sm_pred_l1 = f_1(x_1)``, ``sm_pred_lk = f_k(x_k, sm_pred_l(k-1))`` for k >= 2, where
    ``x_k`` are the layer's features (section 2a); ``sm_pred_lk = f_k(x_k)`` for a network
    without the ``sm_pred_upper`` input (``[train] chain = "none"``). A row with a NaN feature
    gets NaN in that layer and in every chained layer below.

    Parameters
    ----------
    models
        Layer models 1...k (a sequence, a ``{layer: model}`` mapping or a :class:`TrainedChain`).
    table
        Rows with the models' feature columns; ``pattern_<id>`` columns are derived from
        ``pattern`` when absent.

    Returns
    -------
    pandas.DataFrame
        Columns ``sm_pred_l1 ... sm_pred_lk`` (m3 m-3), indexed like ``table``.
    """
    model_list = _as_model_list(models)
    table = with_pattern_one_hot(table)
    out = {}
    upper = None
    for model in model_list:
        x = _layer_inputs(table, model.feature_names, upper, model.layer)
        upper = model.predict_array(x)
        out[prediction_column(model.layer)] = upper
    return pd.DataFrame(out, index=table.index)


def predict_ensemble(
    members: Sequence[Sequence[LayerModel]],
    table: pd.DataFrame,
    residual_sd: Mapping[int, float] | None = None,
) -> pd.DataFrame:
    """Ensemble-mean chained predictions and their standard error, member by member.

    Each member's chain is :func:`predict_chain` (member m of layer k takes member m's layer
    k-1 prediction). Per layer ``sm_pred_l{k}`` is the members' mean and ``sm_sd_l{k}``
    ``sqrt(s^2 + r_k^2)``, ``s`` their spread
    (:func:`cropsm.train.ensemble.ensemble_mean_and_spread`) and ``r_k`` the calibrated
    residual SD (``residual_sd``; 0 when not given).
    """
    from cropsm.train.ensemble import calibrated_sd, ensemble_mean_and_spread

    chains = [predict_chain(m, table) for m in members]
    out = {}
    for column in chains[0].columns:
        mean, spread = ensemble_mean_and_spread(np.stack([c[column].to_numpy() for c in chains]))
        layer = int(column.rsplit("_l", 1)[1])
        out[column] = mean
        out[f"sm_sd_l{layer}"] = calibrated_sd(spread, (residual_sd or {}).get(layer, 0.0))
    return pd.DataFrame(out, index=table.index)


def _check_table(
    table: pd.DataFrame, layers: Iterable[int], names_of: Mapping[int, list[str]]
) -> None:
    """Fail early, before any training, on missing columns or a layer without observations."""
    needed = {"station_id", "date"}
    for k in layers:
        needed.add(target_column(k))
        needed.update(n for n in names_of[k] if n != UPPER)
    missing = sorted(c for c in needed if c not in table.columns)
    if missing:
        raise ValueError(f"station table lacks column(s) {', '.join(missing)}")
    for k in layers:
        if not table[target_column(k)].notna().any():
            raise ValueError(
                f"layer {k}: no observations of {target_column(k)} in the station table; "
                "every soil layer needs observed soil moisture to train its network"
            )


def _layer_names(
    feature_names_for_layer: Callable[[int], Sequence[str]], layer: int, chain: str = "upper"
) -> list[str]:
    """Input columns of one layer's network: ``feature_names_for_layer(layer)`` without
    repeats, with ``sm_pred_upper`` last for layer >= 2 when ``chain == "upper"`` and without
    it when ``chain == "none"``."""
    names = list(dict.fromkeys(feature_names_for_layer(layer)))
    if layer == 1 and UPPER in names:
        raise ValueError(f"layer 1 has no layer above; remove {UPPER} from its features")
    names = [n for n in names if n != UPPER]
    if layer >= 2 and chain == "upper":
        # The paper's design (section 2a): the prediction of the layer above is an input of
        # the layers below, last in the input order.
        names.append(UPPER)
    return names


def train_layers(
    table: pd.DataFrame,
    config: TrainConfig,
    feature_names_for_layer: Callable[[int], Sequence[str]] | None = None,
    progress: ProgressCallback | None = None,
    *,
    groups_off: Iterable[str] = (),
    n_layers: int = N_LAYERS,
    log: Callable[[str], None] | None = None,
    split: pd.Series | None = None,
    grid_for_layer: Callable[[int], GridConfig] | None = None,
    feature_set: str = "paper",
) -> TrainedChain:
    """Grid-search and train the networks of layers 1...``n_layers``, chained top to bottom.

    Parameters
    ----------
    table
        Station table (docs/contracts.md, STATION TABLE), one row per station-date.
    config
        Split, grid and early-stopping settings.
    feature_names_for_layer
        ``f(layer) -> input column names``; default
        ``cropsm.features.groups.layer_feature_names(layer, groups_off)``. For layer >= 2
        ``sm_pred_upper`` is added (last) if the list lacks it, or removed when
        ``config.chain == "none"``.
    progress
        Optional ``report(step, done, total)``, called once per trained ensemble.
    groups_off
        Feature groups switched off (used by the default ``feature_names_for_layer``).
    n_layers
        Train layers 1...n_layers (default all five).
    log
        Optional callable receiving one line of text per event (rows dropped, selection).
    split
        Train / validation / test membership of the table's rows (index-aligned); default the
        split of ``config`` (:func:`cropsm.train.splits.make_split`). The control experiments
        pass the full model's split.
    grid_for_layer
        ``f(layer) -> GridConfig``; default ``config.grid`` for every layer. The control
        experiments pass each layer's winning configuration as a one-configuration grid.
    feature_set
        ``paper`` or ``crop`` (:data:`cropsm.features.groups.FEATURE_SETS`), used by the
        default ``feature_names_for_layer``.

    Returns
    -------
    TrainedChain

    Raises
    ------
    ValueError
        A missing column, a layer without observations (naming the layer), or a layer left
        without training or validation rows after dropping NaN features.
    """
    from cropsm.train.grid_search import ensemble_groups, run_grid_search  # imports JAX
    from cropsm.train.mlp import release_training_programs

    groups_off = tuple(groups_off)
    if feature_names_for_layer is None:

        def feature_names_for_layer(layer: int) -> list[str]:
            return layer_feature_names(layer, groups_off, feature_set)

    if not 1 <= n_layers <= N_LAYERS:
        raise ValueError(f"n_layers must be 1...{N_LAYERS}, got {n_layers}")
    layers = list(range(1, n_layers + 1))
    table = with_pattern_one_hot(table)
    names_of = {k: _layer_names(feature_names_for_layer, k, config.chain) for k in layers}
    _check_table(table, layers, names_of)

    if split is None:
        split = make_split(
            table, config.split, config.seed, config.test_fraction, config.validation_fraction
        )
    else:
        split = split.reindex(table.index).rename("split")
    membership = split.to_numpy()
    if grid_for_layer is None:

        def grid_for_layer(layer: int) -> GridConfig:
            return config.grid

    n_ensembles_of = {
        k: len(ensemble_groups(grid_for_layer(k), config.ensemble_grouping)) for k in layers
    }
    total_steps = sum(n_ensembles_of.values())

    models: list[LayerModel] = []
    grid_tables: list[pd.DataFrame] = []
    upper_inputs: dict[int, pd.Series] = {}
    counts: list[dict] = []
    seconds: dict[int, float] = {}
    upper: np.ndarray | None = None
    extra = list(range(1, config.members))  # ensemble members beyond the selected network
    member_models: dict[int, list[LayerModel]] = {m: [] for m in extra}
    member_upper: dict[int, np.ndarray | None] = {m: None for m in extra}
    ensemble: dict[int, dict] = {}
    summary_inputs: dict[int, tuple] = {}  # to refit r with the layers' shared readings' error
    station_ids = table["station_id"].to_numpy()  # bootstrap resamples and the nugget
    dates = table["date"].to_numpy()
    for k in layers:
        names = names_of[k]
        x = _layer_inputs(table, names, upper, k)
        y = pd.to_numeric(table[target_column(k)], errors="coerce").to_numpy(np.float64)
        observed = np.isfinite(y)
        used = observed & np.isfinite(x).all(axis=1)
        sets = {name: used & (membership == name) for name in SPLIT_NAMES}
        row_count = {
            "layer": k,
            "observed": int(observed.sum()),
            "dropped_nan": int((observed & ~used).sum()),
            **{name: int(mask.sum()) for name, mask in sets.items()},
        }
        counts.append(row_count)
        if log is not None and row_count["dropped_nan"]:
            log(
                f"layer {k}: dropped {row_count['dropped_nan']} of {row_count['observed']} "
                "observed rows with a NaN feature"
            )
        for name in ("train", "validation"):
            if not sets[name].any():
                raise ValueError(
                    f"layer {k}: no {name} rows left ({row_count['observed']} observed, "
                    f"{row_count['dropped_nan']} dropped for NaN features)"
                )

        scaler = fit_scaler(x[sets["train"]])
        target_mean = float(np.mean(y[sets["train"]]))
        target_std = float(np.std(y[sets["train"]])) or 1.0

        # an anchored layer's bucket store enters only through the anchor (zero input weights)
        silent = anchor_only_columns(k, names, config.output)

        def standardise(rows: np.ndarray, scaler=scaler, silent=silent) -> np.ndarray:
            z = scaler.transform(rows)
            z[:, silent] = 0.0
            return z

        x_train = standardise(x[sets["train"]])
        y_train = (y[sets["train"]] - target_mean) / target_std
        x_val = standardise(x[sets["validation"]])
        y_val = (y[sets["validation"]] - target_mean) / target_std
        bounds_train = bounds_val = None
        if is_bounded(config.output):
            physical = row_bounds(x, names, k)
            bounds = (physical - target_mean) / target_std  # standardised
            if config.output == "anchored":  # the offset in logit space, not standardised
                bounds = np.column_stack([bounds, row_anchor(x, names, k, physical[:, 1])])
            bounds_train, bounds_val = bounds[sets["train"]], bounds[sets["validation"]]

        done_before = sum(n_ensembles_of[j] for j in layers if j < k)
        counter = {"done": 0}

        def ensemble_done(_message: str, done_before=done_before, counter=counter) -> None:
            counter["done"] += 1
            if progress is not None:
                progress("train networks", done_before + counter["done"], total_steps)
            if log is not None:
                log(_message)

        search = run_grid_search(
            x_train, y_train, x_val, y_val, grid_for_layer(k),
            seed=config.seed, layer=k, max_epochs=config.max_epochs, patience=config.patience,
            grouping=config.ensemble_grouping, target_std=target_std,
            parallel=config.parallel_ensembles, prune_at_epochs=config.prune_at_epochs,
            prune_keep_fraction=config.prune_keep_fraction,
            selection_tolerance=config.selection_tolerance, progress=ensemble_done,
            bounds_train=bounds_train, bounds_val=bounds_val, input_noise=config.input_noise,
            weight_decay=config.weight_decay,
        )  # fmt: skip
        seconds[k] = search.seconds
        model = LayerModel(
            layer=k,
            feature_names=tuple(names),
            scaler=scaler,
            target_mean=target_mean,
            target_std=target_std,
            weights=_silence_inputs(search.weights, silent),
            hyperparameters=dict(search.selected),
            row_counts={key: v for key, v in row_count.items() if key != "layer"},
            output=config.output,
        )
        prediction = model.predict_array(x)
        metrics = {name: all_metrics(y[mask], prediction[mask]) for name, mask in sets.items()}
        model = replace(model, metrics=metrics)
        models.append(model)
        grid_tables.append(search.results.assign(layer=k))
        chained = UPPER in names
        if chained:
            upper_inputs[k] = pd.Series(x[used, -1], index=table.index[used], name=UPPER)
        if log is not None:
            s = search.selected
            log(
                f"layer {k}: selected {s['hidden_layers']} x {s['units']} units, batch "
                f"{s['batch_size']}, learning rate {s['learning_rate']:g}; R2 train "
                f"{metrics['train']['r2']:.3f}, test {metrics['test']['r2']:.3f}"
            )
        upper = prediction
        member_predictions = [prediction]
        if extra:
            from cropsm.train.ensemble import member_weights, train_bootstrap_members

            # member m's layer k takes member m's own layer k-1 prediction (chain = "upper")
            x_of = {
                m: np.column_stack([x[:, :-1], member_upper[m]]) if chained else x for m in extra
            }
            weights, info = train_bootstrap_members(
                search.selected,
                np.stack([standardise(x_of[m][sets["train"]]) for m in extra]),
                y_train,
                np.stack(
                    [member_weights(config.bootstrap, station_ids, config.seed, m)[sets["train"]]
                     for m in extra]
                ),
                np.stack([standardise(x_of[m][sets["validation"]]) for m in extra]),
                y_val,
                seed=config.seed, layer=k, members=extra, max_epochs=config.max_epochs,
                patience=config.patience, bounds_train=bounds_train, bounds_val=bounds_val,
                input_noise=config.input_noise, weight_decay=config.weight_decay,
                parallel=config.parallel_ensembles,
            )  # fmt: skip
            for i, m in enumerate(extra):
                member = replace(
                    model,
                    weights=_silence_inputs(weights[i], silent),
                    hyperparameters={
                        **search.selected,
                        "best_epoch": info["best_epoch"][i],
                        "validation_mse": info["validation_mse_standardised"][i] * target_std**2,
                        "ensemble_member": m,
                    },
                )
                member_upper[m] = member.predict_array(x_of[m])
                member = replace(
                    member,
                    metrics={
                        name: all_metrics(y[mask], member_upper[m][mask])
                        for name, mask in sets.items()
                    },
                )
                member_models[m].append(member)
                member_predictions.append(member_upper[m])
            seconds[k] += info["seconds"]
        summary_inputs[k] = (
            y,
            np.stack(member_predictions),
            sets,
            0.0 if not extra else info["seconds"],
            station_ids,
            dates,
        )
        ensemble[k] = _ensemble_summary(
            *summary_inputs[k],
            observation_error="estimate_by_layer"
            if config.observation_error == "estimate"
            else config.observation_error,
        )
        if log is not None and extra:
            e = ensemble[k]
            log(
                f"layer {k}: {len(member_predictions)} ensemble members; 90 % interval covers "
                f"{e['coverage_validation_raw']:.2f} of validation rows from the spread alone, "
                f"residual SD {e['residual_sd_m3_m-3']:.4f} m3 m-3 added, readings' error "
                f"{e['observation_error_sd_m3_m-3']:.4f} m3 m-3 ({e['observation_error_source']})"
            )
        # free what this layer left behind when the process has grown large; the compiled
        # training steps stay for a next layer with as many inputs: it pads its rows to about
        # the same count and reuses them (cropsm.train.mlp.padded_row_count)
        if resident_mb() > RELEASE_ABOVE_MB:
            following = [j for j in layers if j > k]
            release_training_programs(
                keep_training_steps=bool(following) and len(names_of[following[0]]) == len(names)
            )
            release_memory(jax_caches=False)

    if config.observation_error == "estimate":
        _share_observation_error(ensemble, summary_inputs, log)
    del summary_inputs

    grid_search = pd.concat(grid_tables, ignore_index=True)
    grid_search = grid_search.loc[:, ["layer", *[c for c in grid_search.columns if c != "layer"]]]
    return TrainedChain(
        models=models,
        split=split,
        split_kind=config.split,
        grid_search=grid_search,
        upper_inputs=upper_inputs,
        row_counts=pd.DataFrame(counts).set_index("layer"),
        config=config,
        groups_off=groups_off,
        seconds=seconds,
        feature_set=feature_set,
        members=[member_models[m] for m in extra],
        ensemble=ensemble,
    )


def _share_observation_error(
    ensemble: dict[int, dict], summary_inputs: Mapping[int, tuple], log=None
) -> None:
    """Refit each layer's residual SD with the readings' error all layers share.

    Every layer is read with one instrument (one gravimetric procedure or one probe type), so
    their white errors are one number, and each layer's nugget
    (:func:`cropsm.train.ensemble.observation_error_sd`) is an upper bound on it: at readings
    10 days apart it also holds the model error that changes faster than that, which is largest
    near the surface, where rain moves the soil moisture within days. The tightest bound is the
    smallest of the layers' nuggets,

    .. math:: \\hat\\sigma_\\eta = \\min_k \\sigma_{\\eta,k},

    and layers with a larger nugget of their own are refitted with it
    (:func:`_ensemble_summary`): their residual SD ``r`` grows so that the interval of a
    reading, ``sqrt(s^2 + r^2 + sigma_eta^2)``, stays what it was, and the soil moisture's,
    ``sqrt(s^2 + r^2)``, widens by what the nugget had taken from it. Layers without an
    estimate of their own keep none (their intervals are a reading's, the wider). Modified in
    place.

    Measured on USCRN (24 stations, each reading the mean of three probes): the nuggets at
    three readings a month fall with depth, 0.0147 0.0122 0.0112 0.0091 0.0086 m3 m-3, and
    the daily readings' are smaller than all of them (0.0069 to 0.0036). On the virtual
    China's paper preset the nuggets are 0.0222 0.0222 0.0210 0.0208 0.0205 against the twin's
    0.020, and the product's 90 % intervals held 0.847 0.836 0.899 0.903 0.911 of the truth
    with each layer's nugget, 0.867 0.869 0.904 0.906 0.911 with the smallest (README,
    "Since session 19").
    """
    own = {
        k: e["observation_error_sd_m3_m-3"]
        for k, e in ensemble.items()
        if e["observation_error_sd_m3_m-3"] > 0.0
    }
    if len(own) < 2:
        return
    smallest_layer = min(own, key=lambda k: (own[k], k))
    shared = own[smallest_layer]
    for k, sigma in own.items():
        if sigma <= shared:
            ensemble[k]["observation_error_source"] = (
                f"{ensemble[k]['observation_error_source']}; the smallest of the layers', "
                "shared by all"
            )
            continue
        source = (
            f"layer {smallest_layer}'s nugget, the smallest of the layers' (one instrument); "
            f"this layer's own {sigma:.4f}: {ensemble[k]['observation_error_source']}"
        )
        ensemble[k] = _ensemble_summary(*summary_inputs[k], observation_error=shared)
        ensemble[k]["observation_error_source"] = source
        if log is not None:
            log(
                f"layer {k}: readings' error {shared:.4f} m3 m-3 (layer {smallest_layer}'s "
                f"nugget, the smallest; its own {sigma:.4f}), residual SD "
                f"{ensemble[k]['residual_sd_m3_m-3']:.4f} m3 m-3"
            )


def _ensemble_summary(
    y: np.ndarray,
    predictions: np.ndarray,
    sets: Mapping[str, np.ndarray],
    train_seconds: float,
    station_ids: np.ndarray,
    dates: np.ndarray,
    observation_error: str | float = "estimate",
) -> dict:
    """Calibration and skill of one layer's ensemble on its rows (:mod:`cropsm.train.ensemble`).

    The intervals are for the soil moisture a reading measures, not for the reading: with
    ``sigma_eta`` the readings' own error (``observation_error``: ``estimate`` or
    ``estimate_by_layer``, this layer's nugget from the residuals of its training and
    validation rows, :func:`cropsm.train.ensemble.observation_error_sd`, which
    :func:`_share_observation_error` replaces with the layers' smallest for ``estimate``; a
    number; ``none`` for 0), the
    residual SD ``r`` is fitted on the validation readings so that
    ``mean +/- 1.645 sqrt(s^2 + r^2 + sigma_eta^2)`` covers 90 % of them
    (:func:`cropsm.train.ensemble.fit_residual_sd` with the spread widened by ``sigma_eta``),
    and the product's standard error is ``sqrt(s^2 + r^2)``. Coverage of the
    central 90 % interval is reported on validation and test rows from the spread alone
    (``raw``), for a reading (``calibrated``, with ``sigma_eta``) and for the value
    (``value``, what the product's interval would cover of the readings). The effect maps'
    factor ``spread_inflation`` is the widening of a reading's interval (``r`` and
    ``sigma_eta``): see :func:`cropsm.train.ensemble.spread_inflation`.
    """
    from cropsm.train.ensemble import (
        calibrated_sd,
        ensemble_mean_and_spread,
        fit_residual_sd,
        interval_coverage,
        observation_error_sd,
        spread_inflation,
    )

    mean, spread = ensemble_mean_and_spread(predictions)
    val, test = sets["validation"], sets["test"]
    if observation_error in ("estimate", "estimate_by_layer"):
        fitted = sets["train"] | val
        estimate = observation_error_sd(station_ids[fitted], dates[fitted], (y - mean)[fitted])
        sigma, source = estimate["sd"], f"nugget of {estimate['pairs']} pairs: {estimate['status']}"
    elif observation_error == "none":
        sigma, source = 0.0, "none: intervals for a reading"
    else:
        sigma, source = float(observation_error), "given in the config"
    reading_spread = calibrated_sd(spread, sigma)
    residual = fit_residual_sd(y[val], mean[val], reading_spread[val])
    total = calibrated_sd(spread, residual)
    reading_total = calibrated_sd(total, sigma)
    return {
        "members": int(predictions.shape[0]),
        "bootstrap_train_seconds": round(float(train_seconds), 3),
        "residual_sd_m3_m-3": residual,
        "observation_error_sd_m3_m-3": sigma,
        "observation_error_source": source,
        # the effect maps' calibration (cropsm.analyze.scenarios.effect_ensemble): the widening
        # of a reading's interval, not of the soil moisture's (see spread_inflation)
        "spread_inflation": spread_inflation(spread[val], float(np.hypot(residual, sigma))),
        "mean_spread_m3_m-3": float(np.nanmean(spread[val])) if val.any() else float("nan"),
        "coverage_validation_raw": interval_coverage(y[val], mean[val], spread[val]),
        "coverage_validation_calibrated": interval_coverage(y[val], mean[val], reading_total[val]),
        "coverage_validation_value": interval_coverage(y[val], mean[val], total[val]),
        "coverage_test_raw": interval_coverage(y[test], mean[test], spread[test]),
        "coverage_test_calibrated": interval_coverage(y[test], mean[test], reading_total[test]),
        "coverage_test_value": interval_coverage(y[test], mean[test], total[test]),
        "ensemble_mean_test": all_metrics(y[test], mean[test]),
    }
