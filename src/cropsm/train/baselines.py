"""Baselines beside the networks: same features, same rows, same train/validation/test split.

Three baselines per soil layer k, each scored with :func:`cropsm.train.metrics.all_metrics`:

``climatology``
    Per-station day-of-year climatology: the mean of the station's *training* observations of
    layer k whose day of year lies within +-15 days (circular over 366 days) of the day,

    .. math:: \\hat\\theta_{s}(d) = \\frac{1}{|W_s(d)|}\\sum_{i \\in W_s(d)} \\theta_i,\\qquad
              W_s(d) = \\{i \\in \\mathrm{train}: s_i = s,\\ |d_i - d|_{366} \\le 15\\}

    falling back, when the window is empty, to the station's mean over all its training
    observations, then (a station without training observations: the ``station`` split) to the
    same window over *all* training stations, then to the global training mean. It uses no
    weather at all: it is the bar that says how much the weather inputs add.
``linear``
    Ordinary least squares on standardised inputs (``StandardScaler`` + ``LinearRegression``).
``gradient_boosting``
    ``sklearn.ensemble.HistGradientBoostingRegressor`` (seed fixed, at most 500 trees of 31
    leaves, learning rate 0.1), early-stopped on the networks' own validation rows (10 rounds
    without improvement), as the networks are.

Features and rows: layer k uses the networks' inputs of that layer
(:func:`cropsm.features.groups.layer_feature_names`, same ``groups_off``) *except*
``sm_pred_upper``: the chained upper-layer prediction is a network output, so the baselines are
not chained. A row is used when ``sm_l{k}`` is observed and every baseline feature is finite;
given the chain, exactly the rows its layer-k network used (which differ only where the upper
prediction was NaN). The split is the networks' (:attr:`cropsm.train.chain.TrainedChain.split`).

A ``random`` split lets every model see each test station's other days, so the per-station
climatology alone can score high there; only the ``station`` and ``year`` splits measure
transfer to new places and new years.

Saved state (no pickle): ``baselines/climatology.csv`` (layer, station_id, doy 1-366, sm; the
all-station rows have ``station_id`` ``*``), ``baselines/linear.json`` (feature names, scaler
mean and scale, coefficients, intercept per layer), ``baselines/gradient_boosting_layer{k}.npz``
(the fitted trees as flat arrays: feature, threshold, missing-goes-left, children, leaf values;
predictions rebuild them as scikit-learn's compiled tree predictors, or walk them in NumPy where
that internal is missing, checked against scikit-learn at fit time), and
``baselines/baselines.json`` describing them. Scoring new stations (:func:`score_baselines`)
needs no refit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cropsm import N_LAYERS
from cropsm.features.groups import UPPER, layer_feature_names
from cropsm.io.atomic import atomic_output, atomic_write_text
from cropsm.train.artifacts import json_safe
from cropsm.train.metrics import all_metrics
from cropsm.train.splits import SPLIT_NAMES

BASELINE_NAMES: tuple[str, ...] = ("climatology", "linear", "gradient_boosting")
"""The baselines, in report order."""

CLIMATOLOGY_HALF_WINDOW_DAYS = 15
"""Half width of the day-of-year window of the climatology, days."""

DAYS_IN_CYCLE = 366
"""Length of the circular day-of-year axis (day 366 only in leap years)."""

ALL_STATIONS = "*"
"""``station_id`` of the all-station rows of the climatology table."""

GRADIENT_BOOSTING_PARAMS: dict[str, Any] = {
    "max_iter": 500,
    "learning_rate": 0.1,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 20,
    "l2_regularization": 0.0,
    "early_stopping": True,
    "n_iter_no_change": 10,
    "tol": 1e-7,
}
"""Fixed settings of the gradient boosting baseline (``random_state`` is the run's seed)."""

BASELINES_FORMAT = "cropsm-baselines/1"
BASELINES_DIR = "baselines"


# --------------------------------------------------------------------------------------------
# Features and rows


def baseline_feature_names(
    layer: int, groups_off: Iterable[str] = (), feature_set: str = "paper"
) -> list[str]:
    """The networks' inputs of one layer without ``sm_pred_upper`` (the baselines' inputs)."""
    return [n for n in layer_feature_names(layer, groups_off, feature_set) if n != UPPER]


def _feature_matrix(table: pd.DataFrame, names: list[str]) -> np.ndarray:
    from cropsm.train.chain import with_pattern_one_hot

    table = with_pattern_one_hot(table)
    missing = [n for n in names if n not in table.columns]
    if missing:
        raise ValueError(f"station table lacks column(s) {', '.join(missing)}")
    if not names:
        return np.zeros((len(table), 0))
    return np.column_stack(
        [pd.to_numeric(table[n], errors="coerce").to_numpy(np.float64) for n in names]
    )


def _used_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.isfinite(y) & np.isfinite(x).all(axis=1)


# --------------------------------------------------------------------------------------------
# Climatology


def _circular_window_sum(values: np.ndarray, half_window: int) -> np.ndarray:
    """Sum over ``d - h ... d + h`` along the last axis, circular (366 days)."""
    out = np.zeros_like(values)
    for shift in range(-half_window, half_window + 1):
        out += np.roll(values, shift, axis=-1)
    return out


def fit_climatology(
    station_ids: np.ndarray,
    doy: np.ndarray,
    sm: np.ndarray,
    half_window: int = CLIMATOLOGY_HALF_WINDOW_DAYS,
) -> pd.DataFrame:
    """Day-of-year climatology of one layer from training observations (module docstring).

    Parameters
    ----------
    station_ids, doy, sm
        Training rows: station, day of year (1-366) and observed soil moisture (m3 m-3).
    half_window
        Half width of the window, days.

    Returns
    -------
    pandas.DataFrame
        ``station_id, doy, sm, source`` for every training station and every day 1-366 with
        the fallbacks resolved (``source``: ``station_window``, ``station_mean``), plus the
        ``station_id = "*"`` rows for new stations (``all_window``, ``all_mean``).
    """
    station_ids = np.asarray(station_ids).astype(str)
    doy = np.asarray(doy, dtype=np.int64)
    sm = np.asarray(sm, dtype=np.float64)
    if sm.size == 0:
        raise ValueError("the climatology needs at least one training observation")
    if ((doy < 1) | (doy > DAYS_IN_CYCLE)).any():
        raise ValueError("day of year must lie in 1...366")
    stations, codes = np.unique(station_ids, return_inverse=True)
    sums = np.zeros((stations.size + 1, DAYS_IN_CYCLE))
    counts = np.zeros((stations.size + 1, DAYS_IN_CYCLE))
    np.add.at(sums, (codes, doy - 1), sm)
    np.add.at(counts, (codes, doy - 1), 1.0)
    sums[-1] = sums[:-1].sum(axis=0)
    counts[-1] = counts[:-1].sum(axis=0)
    window_sums = _circular_window_sum(sums, half_window)
    window_counts = _circular_window_sum(counts, half_window)
    with np.errstate(invalid="ignore", divide="ignore"):
        window_mean = window_sums / window_counts
        overall = sums.sum(axis=1) / counts.sum(axis=1)
    has_window = window_counts > 0
    value = np.where(has_window, window_mean, overall[:, None])
    source = np.where(has_window, "station_window", "station_mean").astype(object)
    source[-1] = np.where(has_window[-1], "all_window", "all_mean")
    ids = np.concatenate([stations, [ALL_STATIONS]])
    return pd.DataFrame(
        {
            "station_id": np.repeat(ids, DAYS_IN_CYCLE),
            "doy": np.tile(np.arange(1, DAYS_IN_CYCLE + 1), ids.size),
            "sm": value.ravel(),
            "source": source.ravel(),
        }
    )


def predict_climatology(
    climatology: pd.DataFrame, station_ids: np.ndarray, doy: np.ndarray
) -> np.ndarray:
    """Climatology values for rows (station, day of year); unknown stations take the ``*`` rows.

    Parameters
    ----------
    climatology
        One layer's table from :func:`fit_climatology`.
    station_ids, doy
        The rows to predict.
    """
    station_ids = np.asarray(station_ids).astype(str)
    doy = np.asarray(doy, dtype=np.int64)
    out = np.full(station_ids.shape, np.nan)
    ok = (doy >= 1) & (doy <= DAYS_IN_CYCLE)
    known = pd.Index(pd.unique(climatology["station_id"].astype(str)))
    values = (
        climatology.assign(station_id=climatology["station_id"].astype(str))
        .pivot(index="station_id", columns="doy", values="sm")
        .reindex(index=known, columns=range(1, DAYS_IN_CYCLE + 1))
        .to_numpy()
    )
    row = known.get_indexer(station_ids)
    row = np.where(row < 0, known.get_loc(ALL_STATIONS), row)
    out[ok] = values[row[ok], doy[ok] - 1]
    return out


# --------------------------------------------------------------------------------------------
# Linear regression


@dataclass(frozen=True)
class LinearBaseline:
    """OLS on standardised inputs: ``sm = intercept + sum_j coef_j (x_j - mean_j) / scale_j``."""

    feature_names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predictions for inputs ``x`` ``(n, n_features)`` (NaN where a row has a NaN)."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[1] == 0:
            return np.full(x.shape[0], self.intercept)
        return self.intercept + ((x - self.mean) / self.scale) @ self.coef

    def to_json(self) -> dict:
        return {
            "feature_names": list(self.feature_names),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> LinearBaseline:
        return cls(
            feature_names=tuple(data["feature_names"]),
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            coef=np.asarray(data["coef"], dtype=np.float64),
            intercept=float(data["intercept"]),
        )


def fit_linear(x: np.ndarray, y: np.ndarray, feature_names: Iterable[str]) -> LinearBaseline:
    """Least squares on inputs standardised with the training mean and standard deviation.

    .. math:: \\min_{\\beta_0, \\beta} \\sum_i \\left(y_i - \\beta_0 -
              \\sum_j \\beta_j \\frac{x_{ij} - \\bar x_j}{s_j}\\right)^2

    (scikit-learn ``StandardScaler`` + ``LinearRegression``). A constant input (s_j = 0) gets
    scale 1 and coefficient 0.
    """
    from sklearn.linear_model import LinearRegression
    from sklearn.preprocessing import StandardScaler

    names = tuple(feature_names)
    if x.shape[1] == 0:
        return LinearBaseline(names, np.zeros(0), np.ones(0), np.zeros(0), float(np.mean(y)))
    scaler = StandardScaler().fit(x)
    regression = LinearRegression().fit(scaler.transform(x), y)
    return LinearBaseline(
        feature_names=names,
        mean=np.asarray(scaler.mean_, dtype=np.float64),
        scale=np.asarray(scaler.scale_, dtype=np.float64),
        coef=np.asarray(regression.coef_, dtype=np.float64),
        intercept=float(regression.intercept_),
    )


# --------------------------------------------------------------------------------------------
# Gradient boosting as flat tree arrays


@dataclass(frozen=True)
class TreeEnsembleBaseline:
    """A fitted ``HistGradientBoostingRegressor`` as flat arrays (no pickle).

    Trees are stored back to back: node ``offsets[t] + i`` is node i of tree t. The prediction
    is ``baseline + sum_t value(leaf_t(x))``, where the leaf is reached from node 0 by going
    left when ``x[feature] <= threshold`` (NaN: left when ``missing_left``), as in
    scikit-learn's numerical split nodes.
    """

    feature_names: tuple[str, ...]
    baseline: float
    offsets: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray
    n_iter: int = 0

    def predict(self, x: np.ndarray, chunk_rows: int = 4096) -> np.ndarray:
        """Predictions for ``x`` ``(n, n_features)``: ``baseline + sum_t value(leaf_t(x))``.

        The trees are rebuilt as scikit-learn's compiled tree predictors and summed in their
        order, as ``HistGradientBoostingRegressor.predict`` does (the same numbers, to the bit).
        Measured on the paper-preset virtual China's station table (148,863 rows, cProfile of
        :func:`fit_baselines`): a layer's three baselines predicted in ~1.1 s, against ~7.6 s
        for the NumPy walk of the trees alone. Where that scikit-learn internal is not there,
        :meth:`predict_numpy` walks the trees in NumPy.
        """
        x = np.ascontiguousarray(x, dtype=np.float64)
        predictors = self._compiled_predictors()
        if predictors is None:
            return self.predict_numpy(x, chunk_rows)
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

        out = np.full(x.shape[0], self.baseline)
        known_categories = np.zeros((0, 8), dtype=np.uint32)
        feature_map = np.zeros(max(1, x.shape[1]), dtype=np.uint32)
        threads = _openmp_effective_n_threads()
        for predictor in predictors:
            out += predictor.predict(x, known_categories, feature_map, threads)
        return out

    def _compiled_predictors(self) -> list | None:
        """scikit-learn ``TreePredictor`` objects of the trees, or None where the internal API
        is missing (made once per instance)."""
        if "_predictors" in self.__dict__:
            return self.__dict__["_predictors"]
        try:
            from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
            from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

            no_bitsets = np.zeros((0, 8), dtype=np.uint32)
            predictors = []
            for start, stop in zip(self.offsets[:-1], self.offsets[1:], strict=True):
                nodes = np.zeros(int(stop - start), dtype=PREDICTOR_RECORD_DTYPE)
                nodes["value"] = self.value[start:stop]
                nodes["feature_idx"] = self.feature[start:stop]
                nodes["num_threshold"] = self.threshold[start:stop]
                nodes["missing_go_to_left"] = self.missing_left[start:stop]
                nodes["left"] = self.left[start:stop]
                nodes["right"] = self.right[start:stop]
                nodes["is_leaf"] = self.is_leaf[start:stop]
                predictors.append(TreePredictor(nodes, no_bitsets, no_bitsets))
        except (ImportError, AttributeError, TypeError, ValueError):
            predictors = None
        object.__setattr__(self, "_predictors", predictors)  # a frozen dataclass's cache
        return predictors

    def predict_numpy(self, x: np.ndarray, chunk_rows: int = 4096) -> np.ndarray:
        """:meth:`predict` in NumPy: all trees walked at once, one level per step, over blocks
        of ``chunk_rows`` rows (the sum over trees in NumPy's pairwise order, so it may differ
        from scikit-learn's in the last bits)."""
        x = np.asarray(x, dtype=np.float64)
        n = x.shape[0]
        out = np.full(n, self.baseline)
        roots = self.offsets[:-1]
        if roots.size == 0:
            return out
        for start in range(0, n, chunk_rows):
            block = x[start : start + chunk_rows]
            rows = np.arange(block.shape[0])[:, None]
            node = np.broadcast_to(roots, (block.shape[0], roots.size)).copy()
            active = ~self.is_leaf[node]
            while active.any():
                g = node[active]
                xv = block[np.broadcast_to(rows, node.shape)[active], self.feature[g]]
                go_left = np.where(np.isnan(xv), self.missing_left[g], xv <= self.threshold[g])
                tree_base = np.broadcast_to(roots, node.shape)[active]
                node[active] = tree_base + np.where(go_left, self.left[g], self.right[g])
                active = ~self.is_leaf[node]
            out[start : start + chunk_rows] += self.value[node].sum(axis=1)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "baseline": np.array([self.baseline]),
            "offsets": self.offsets,
            "feature": self.feature,
            "threshold": self.threshold,
            "missing_left": self.missing_left,
            "left": self.left,
            "right": self.right,
            "is_leaf": self.is_leaf,
            "value": self.value,
            "n_iter": np.array([self.n_iter]),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping, feature_names: Iterable[str]) -> TreeEnsembleBaseline:
        return cls(
            feature_names=tuple(feature_names),
            baseline=float(arrays["baseline"][0]),
            offsets=np.asarray(arrays["offsets"], dtype=np.int64),
            feature=np.asarray(arrays["feature"], dtype=np.int64),
            threshold=np.asarray(arrays["threshold"], dtype=np.float64),
            missing_left=np.asarray(arrays["missing_left"], dtype=bool),
            left=np.asarray(arrays["left"], dtype=np.int64),
            right=np.asarray(arrays["right"], dtype=np.int64),
            is_leaf=np.asarray(arrays["is_leaf"], dtype=bool),
            value=np.asarray(arrays["value"], dtype=np.float64),
            n_iter=int(arrays["n_iter"][0]),
        )


def fit_gradient_boosting(
    x: np.ndarray,
    y: np.ndarray,
    feature_names: Iterable[str],
    *,
    seed: int = 0,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
) -> TreeEnsembleBaseline:
    """Fit ``HistGradientBoostingRegressor`` (:data:`GRADIENT_BOOSTING_PARAMS`) and export it.

    Early stopping uses ``(x_val, y_val)`` when given (the networks' validation rows), else 10 %
    of the training rows. The exported trees are checked to reproduce scikit-learn's
    predictions on the training rows (to 1e-9); otherwise a ``RuntimeError`` is raised (a
    scikit-learn version whose internals changed).

    Reference: Ke et al. (2017), LightGBM, NeurIPS 30 - the histogram algorithm scikit-learn
    implements; Friedman (2001), Ann. Stat. 29(5), gradient boosting.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor

    names = tuple(feature_names)
    params = dict(GRADIENT_BOOSTING_PARAMS)
    fit_kwargs: dict[str, Any] = {}
    if x_val is not None and y_val is not None and len(y_val) > 0:
        fit_kwargs = {"X_val": x_val, "y_val": y_val}
    else:
        params["validation_fraction"] = 0.1
    if x.shape[1] == 0:
        x = np.zeros((x.shape[0], 1))
        if fit_kwargs:
            fit_kwargs["X_val"] = np.zeros((len(y_val), 1))
    model = HistGradientBoostingRegressor(random_state=seed, **params)
    with _threads_for(len(y)):
        model.fit(x, y, **fit_kwargs)
    ensemble = _export_trees(model, names)
    check = slice(0, min(len(y), 5000))
    reference = model.predict(x[check])
    mine = ensemble.predict(x[check])
    if not np.allclose(mine, reference, rtol=0, atol=1e-9):
        raise RuntimeError(
            "the exported gradient-boosting trees do not reproduce scikit-learn's predictions "
            f"(max difference {np.max(np.abs(mine - reference)):.3g}); this scikit-learn version "
            "is not supported by the baseline export"
        )
    return ensemble


SINGLE_THREAD_BELOW_ROWS = 20_000
"""Fits on fewer training rows run on one OpenMP thread: for small tables the thread start-up
and synchronisation of each tree node cost more than they save where the other core is busy
(measured 5x slower with two threads on a busy two-core machine, 1.2 k rows; the test suite
runs two workers). Above it both cores fit: on the paper-preset virtual China, an idle two-core
machine, 90,000 training rows 4.3 -> 3.5 s (layer 1) and 5.1 -> 3.2 s (layer 4), 30,000 rows
1.12 -> 0.68 s; the same trees (histograms are built per feature, each by one thread)."""


def _threads_for(n_rows: int):
    from contextlib import nullcontext

    if n_rows >= SINGLE_THREAD_BELOW_ROWS:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def _export_trees(model, names: tuple[str, ...]) -> TreeEnsembleBaseline:
    predictors = [iteration[0] for iteration in model._predictors]
    nodes = [p.nodes for p in predictors]
    if any(n["is_categorical"].any() for n in nodes):
        raise RuntimeError("categorical splits are not supported by the baseline export")
    sizes = np.array([n.size for n in nodes], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    flat = np.concatenate(nodes) if nodes else np.zeros(0, dtype=np.float64)
    baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
    if not nodes:
        empty_i = np.zeros(0, dtype=np.int64)
        return TreeEnsembleBaseline(
            names, baseline, offsets, empty_i, np.zeros(0), empty_i.astype(bool), empty_i,
            empty_i, empty_i.astype(bool), np.zeros(0), 0,
        )  # fmt: skip
    return TreeEnsembleBaseline(
        feature_names=names,
        baseline=baseline,
        offsets=offsets,
        feature=flat["feature_idx"].astype(np.int64),
        threshold=flat["num_threshold"].astype(np.float64),
        missing_left=flat["missing_go_to_left"].astype(bool),
        left=flat["left"].astype(np.int64),
        right=flat["right"].astype(np.int64),
        is_leaf=flat["is_leaf"].astype(bool),
        value=flat["value"].astype(np.float64),
        n_iter=int(model.n_iter_),
    )


# --------------------------------------------------------------------------------------------
# All baselines of all layers


@dataclass
class LayerBaselines:
    """The three fitted baselines of one soil layer, with their scores and row counts."""

    layer: int
    feature_names: tuple[str, ...]
    climatology: pd.DataFrame
    linear: LinearBaseline
    gradient_boosting: TreeEnsembleBaseline
    metrics: dict[str, dict[str, dict]] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        """Predictions of the three baselines for the rows of ``table`` (NaN where a feature is
        NaN; the climatology needs only the station and the day of year)."""
        x = _feature_matrix(table, list(self.feature_names))
        finite = np.isfinite(x).all(axis=1)
        out = {}
        clim = predict_climatology(
            self.climatology, table["station_id"].to_numpy(), table["doy"].to_numpy()
        )
        out["climatology"] = np.where(finite, clim, np.nan)
        for name, model in (("linear", self.linear), ("gradient_boosting", self.gradient_boosting)):
            values = np.full(len(table), np.nan)
            if finite.any():
                values[finite] = model.predict(x[finite])
            out[name] = values
        return pd.DataFrame(out, index=table.index)


@dataclass
class Baselines:
    """Baselines of layers 1...k.

    Attributes
    ----------
    layers
        One :class:`LayerBaselines` per layer, top first.
    split_kind
        The split they were fitted and scored with.
    groups_off
        Feature groups switched off (same as the networks).
    seed
        Seed of the gradient boosting.
    """

    layers: list[LayerBaselines]
    split_kind: str = "random"
    groups_off: tuple[str, ...] = ()
    seed: int = 0

    @property
    def metrics(self) -> dict:
        """``{"climatology": {"layer1": {"train": M, "validation": M, "test": M}, ...}, ...}``."""
        return {
            name: {f"layer{lb.layer}": lb.metrics[name] for lb in self.layers}
            for name in BASELINE_NAMES
        }

    def predict(self, table: pd.DataFrame) -> pd.DataFrame:
        """Columns ``<baseline>_l{k}`` for every baseline and layer, indexed like ``table``."""
        parts = []
        for lb in self.layers:
            pred = lb.predict(table)
            pred.columns = [f"{c}_l{lb.layer}" for c in pred.columns]
            parts.append(pred)
        return pd.concat(parts, axis=1)


def network_rows(chain) -> dict[int, pd.Index]:
    """The station-table rows each layer network of a trained chain used (layers >= 2)."""
    return {k: series.index for k, series in chain.upper_inputs.items()}


def fit_baselines(
    table: pd.DataFrame,
    split: pd.Series,
    *,
    groups_off: Iterable[str] = (),
    seed: int = 0,
    split_kind: str = "random",
    rows_by_layer: Mapping[int, pd.Index] | None = None,
    n_layers: int = N_LAYERS,
    feature_set: str = "paper",
) -> Baselines:
    """Fit and score the three baselines of every layer (module docstring).

    Parameters
    ----------
    table
        The station table the networks were trained on.
    split
        ``train`` / ``validation`` / ``test`` per row (the networks' split), indexed like
        ``table``.
    groups_off
        Feature groups switched off (as for the networks).
    seed
        Seed of the gradient boosting.
    split_kind
        Name of the split, recorded.
    rows_by_layer
        Optional ``{layer: index}``: restrict layer k to these rows (the networks' rows, from
        :func:`network_rows`).
    n_layers
        Layers 1...n_layers.
    feature_set
        The networks' feature set (``paper`` or ``crop``).

    Returns
    -------
    Baselines

    Raises
    ------
    ValueError
        A missing feature column, or a layer without training rows.
    """
    groups_off = tuple(groups_off)
    membership = split.reindex(table.index).to_numpy()
    layers = []
    for k in range(1, n_layers + 1):
        names = baseline_feature_names(k, groups_off, feature_set)
        x = _feature_matrix(table, names)
        y = pd.to_numeric(table[f"sm_l{k}"], errors="coerce").to_numpy(np.float64)
        used = _used_rows(x, y)
        if rows_by_layer is not None and k in rows_by_layer:
            used &= table.index.isin(rows_by_layer[k])
        sets = {name: used & (membership == name) for name in SPLIT_NAMES}
        if not sets["train"].any():
            raise ValueError(f"layer {k}: no training rows for the baselines")
        train = sets["train"]
        clim = fit_climatology(
            table["station_id"].to_numpy()[train], table["doy"].to_numpy()[train], y[train]
        )
        linear = fit_linear(x[train], y[train], names)
        val = sets["validation"]
        boosting = fit_gradient_boosting(
            x[train], y[train], names, seed=seed, x_val=x[val], y_val=y[val]
        )
        lb = LayerBaselines(k, tuple(names), clim, linear, boosting)
        pred = lb.predict(table)
        lb.metrics = {
            name: {s: all_metrics(y[mask], pred[name].to_numpy()[mask]) for s, mask in sets.items()}
            for name in BASELINE_NAMES
        }
        lb.row_counts = {s: int(mask.sum()) for s, mask in sets.items()}
        layers.append(lb)
    return Baselines(layers=layers, split_kind=split_kind, groups_off=groups_off, seed=seed)


def score_baselines(baselines: Baselines, table: pd.DataFrame) -> dict:
    """Score fitted baselines on other stations or years (``cropsm evaluate``).

    Every row with ``sm_l{k}`` observed and finite baseline features is a test row. Stations
    absent from training take the all-station climatology.

    Returns
    -------
    dict
        ``{"climatology": {"layer1": {"test": M}, ...}, "linear": ..., "gradient_boosting": ...}``.
    """
    out: dict = {name: {} for name in BASELINE_NAMES}
    for lb in baselines.layers:
        column = f"sm_l{lb.layer}"
        if column not in table:
            continue
        y = pd.to_numeric(table[column], errors="coerce").to_numpy(np.float64)
        pred = lb.predict(table)
        for name in BASELINE_NAMES:
            out[name][f"layer{lb.layer}"] = {"test": all_metrics(y, pred[name].to_numpy())}
    return out


# --------------------------------------------------------------------------------------------
# Files


def _write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


def save_baselines(baselines: Baselines, out_dir: str | Path) -> Path:
    """Write the fitted baselines to ``out_dir/baselines/`` (module docstring); no pickle.

    Returns
    -------
    pathlib.Path
        The ``baselines`` folder.
    """
    folder = Path(out_dir) / BASELINES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    clim = pd.concat(
        [
            lb.climatology[["station_id", "doy", "sm"]].assign(layer=lb.layer)
            for lb in baselines.layers
        ],
        ignore_index=True,
    )[["layer", "station_id", "doy", "sm"]]
    with atomic_output(folder / "climatology.csv") as tmp:
        clim.to_csv(tmp, index=False, float_format="%.6g")
    _write_json(
        folder / "linear.json",
        {f"layer{lb.layer}": lb.linear.to_json() for lb in baselines.layers},
    )
    for lb in baselines.layers:
        with atomic_output(folder / f"gradient_boosting_layer{lb.layer}.npz") as tmp:
            np.savez(tmp, **lb.gradient_boosting.arrays())
    description = {
        "format": BASELINES_FORMAT,
        "split": baselines.split_kind,
        "groups_off": list(baselines.groups_off),
        "seed": baselines.seed,
        "climatology_half_window_days": CLIMATOLOGY_HALF_WINDOW_DAYS,
        "gradient_boosting_params": GRADIENT_BOOSTING_PARAMS,
        "layers": {
            f"layer{lb.layer}": {
                "feature_names": list(lb.feature_names),
                "rows": lb.row_counts,
                "gradient_boosting_trees": lb.gradient_boosting.n_iter,
            }
            for lb in baselines.layers
        },
        "metrics": baselines.metrics,
    }
    _write_json(folder / "baselines.json", description)
    return folder


def load_baselines(out_dir: str | Path) -> Baselines:
    """Read baselines written by :func:`save_baselines` (``out_dir`` or its ``baselines``)."""
    folder = Path(out_dir)
    if (folder / BASELINES_DIR).is_dir():
        folder = folder / BASELINES_DIR
    path = folder / "baselines.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no baselines (the run predates them, or train again)")
    description = json.loads(path.read_text("utf-8"))
    if description.get("format") != BASELINES_FORMAT:
        raise ValueError(f"{path}: not a {BASELINES_FORMAT} description")
    clim = pd.read_csv(folder / "climatology.csv", dtype={"station_id": str})
    linear = json.loads((folder / "linear.json").read_text("utf-8"))
    layers = []
    for key, info in description["layers"].items():
        k = int(key.removeprefix("layer"))
        names = tuple(info["feature_names"])
        with np.load(folder / f"gradient_boosting_layer{k}.npz", allow_pickle=False) as data:
            boosting = TreeEnsembleBaseline.from_arrays(data, names)
        table = clim.loc[clim["layer"] == k, ["station_id", "doy", "sm"]].reset_index(drop=True)
        saved = description.get("metrics", {})
        layers.append(
            LayerBaselines(
                layer=k,
                feature_names=names,
                climatology=table,
                linear=LinearBaseline.from_json(linear[key]),
                gradient_boosting=boosting,
                metrics={name: saved.get(name, {}).get(key, {}) for name in BASELINE_NAMES},
                row_counts=dict(info.get("rows", {})),
            )
        )
    layers.sort(key=lambda lb: lb.layer)
    return Baselines(
        layers=layers,
        split_kind=description.get("split", "random"),
        groups_off=tuple(description.get("groups_off", ())),
        seed=int(description.get("seed", 0)),
    )


def add_baselines_to_metrics(metrics_path: str | Path, baselines_metrics: Mapping) -> Path:
    """Add (or replace) the ``baselines`` entry of an existing ``metrics.json``.

    Parameters
    ----------
    metrics_path
        ``RUN_DIR/metrics.json`` written by :func:`cropsm.train.write_metrics_json`.
    baselines_metrics
        :attr:`Baselines.metrics`.
    """
    path = Path(metrics_path)
    metrics = json.loads(path.read_text("utf-8")) if path.exists() else {}
    metrics["baselines"] = json_safe(dict(baselines_metrics))
    _write_json(path, metrics)
    return path


def comparison_table(
    metrics: Mapping, ensemble: Mapping[int, Mapping] | None = None
) -> pd.DataFrame:
    """Networks vs baselines per layer and split, from a ``metrics.json`` mapping.

    Parameters
    ----------
    metrics
        ``metrics.json``: the selected networks' (member 0's) metrics and ``baselines``.
    ensemble
        Per layer the deep ensemble's summary (``TrainedChain.ensemble``); with more than one
        member, its mean's test metrics (what the product holds) are the ``ensemble`` rows.

    Returns
    -------
    pandas.DataFrame
        ``model, layer, split, r2, rmse, ubrmse, bias, r, n``; ``model`` is ``network`` (member
        0), ``ensemble`` (the ensemble mean, test rows) or a baseline name.
    """
    rows = []
    sources = [("network", {k: v for k, v in metrics.items() if k.startswith("layer")})]
    sources += [
        (
            "ensemble",
            {
                f"layer{k}": {"test": e["ensemble_mean_test"]}
                for k, e in (ensemble or {}).items()
                if e.get("members", 1) > 1 and "ensemble_mean_test" in e
            },
        )
    ]
    sources += [(name, metrics.get("baselines", {}).get(name, {})) for name in BASELINE_NAMES]
    for model, layers in sources:
        for key, by_split in layers.items():
            for split_name, m in by_split.items():
                if isinstance(m, Mapping):
                    rows.append({"model": model, "layer": int(key[5:]), "split": split_name, **m})
    columns = ["model", "layer", "split", "r2", "rmse", "ubrmse", "bias", "r", "n"]
    return pd.DataFrame(rows).reindex(columns=columns)


def run_baselines(
    table: pd.DataFrame,
    chain,
    out_dir: str | Path,
    *,
    groups_off: Iterable[str] = (),
    seed: int = 0,
) -> Baselines:
    """Fit, score and save the baselines of a trained chain; update ``metrics.json``.

    The baselines take the chain's feature set (``chain.feature_set``).

    Writes ``out_dir/baselines/`` (:func:`save_baselines`), adds the ``baselines`` entry to
    ``out_dir/metrics.json`` and writes ``out_dir/baselines/comparison.csv``
    (:func:`comparison_table`).

    Parameters
    ----------
    table
        The station table the chain was trained on.
    chain
        :class:`cropsm.train.chain.TrainedChain` (its split and rows are used).
    out_dir
        The run directory (holding ``metrics.json``).
    groups_off
        Feature groups switched off.
    seed
        Seed of the gradient boosting.
    """
    out = Path(out_dir)
    baselines = fit_baselines(
        table,
        chain.split,
        groups_off=groups_off,
        seed=seed,
        split_kind=chain.split_kind,
        rows_by_layer=network_rows(chain),
        n_layers=len(chain.models),
        feature_set=getattr(chain, "feature_set", "paper"),
    )
    folder = save_baselines(baselines, out)
    path = add_baselines_to_metrics(out / "metrics.json", baselines.metrics)
    metrics = json.loads(path.read_text("utf-8"))
    with atomic_output(folder / "comparison.csv") as tmp:
        comparison_table(metrics, getattr(chain, "ensemble", None)).to_csv(
            tmp, index=False, float_format="%.6g"
        )
    return baselines


__all__ = [
    "BASELINE_NAMES",
    "Baselines",
    "LayerBaselines",
    "LinearBaseline",
    "TreeEnsembleBaseline",
    "add_baselines_to_metrics",
    "baseline_feature_names",
    "comparison_table",
    "fit_baselines",
    "fit_climatology",
    "fit_gradient_boosting",
    "fit_linear",
    "load_baselines",
    "network_rows",
    "predict_climatology",
    "run_baselines",
    "save_baselines",
    "score_baselines",
]
