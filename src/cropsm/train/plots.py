"""Predicted against observed soil moisture for training and testing (the paper's Fig. 4).

Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg canvas, without
pyplot and its global state, and saved as PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cropsm import LAYER_BOTTOM_CM, LAYER_TOP_CM
from cropsm.io.atomic import atomic_output
from cropsm.train.chain import TrainedChain, prediction_column, target_column
from cropsm.train.metrics import r2

HEXBIN_ABOVE = 3000
"""Panels with more points than this are drawn as hexagonal bins, fewer as a scatter."""


def _panel(ax, obs: np.ndarray, sim: np.ndarray, title: str, limits: tuple[float, float]):
    ok = np.isfinite(obs) & np.isfinite(sim)
    obs, sim = obs[ok], sim[ok]
    if obs.size > HEXBIN_ABOVE:
        bins = ax.hexbin(obs, sim, gridsize=60, bins="log", mincnt=1, cmap="viridis",
                         extent=(*limits, *limits))  # fmt: skip
        ax.figure.colorbar(bins, ax=ax, shrink=0.8, label="observations per bin")
    else:
        ax.scatter(obs, sim, s=6, alpha=0.4, color="tab:blue", linewidths=0)
    ax.plot(limits, limits, color="black", lw=1, ls="--", label="1:1")
    ax.set_xlim(limits)
    ax.set_ylim(limits)
    ax.set_aspect("equal")
    ax.set_xlabel("observed SM (m$^3$ m$^{-3}$)")
    ax.set_ylabel("predicted SM (m$^3$ m$^{-3}$)")
    score = r2(obs, sim) if obs.size else float("nan")
    ax.set_title(f"{title}: R$^2$ = {score:.2f} (n = {obs.size})")


def scatter_figure(
    obs_train: np.ndarray,
    sim_train: np.ndarray,
    obs_test: np.ndarray,
    sim_test: np.ndarray,
    layer: int,
) -> Figure:
    """Two panels, training and testing, of predicted against observed SM with a 1:1 line.

    The title of each panel gives ``R2 = 1 - SSE/SST`` (:func:`cropsm.train.metrics.r2`).
    """
    values = np.concatenate([obs_train, sim_train, obs_test, sim_test]).astype(np.float64)
    values = values[np.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.6)
    pad = 0.02 * (high - low or 1.0)
    limits = (low - pad, high + pad)
    fig = Figure(figsize=(9.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax_train, ax_test = fig.subplots(1, 2)
    _panel(ax_train, np.asarray(obs_train, float), np.asarray(sim_train, float), "training",
           limits)  # fmt: skip
    _panel(ax_test, np.asarray(obs_test, float), np.asarray(sim_test, float), "testing", limits)
    top, bottom = LAYER_TOP_CM[layer - 1], LAYER_BOTTOM_CM[layer - 1]
    fig.suptitle(f"Soil layer {layer} ({top}-{bottom} cm)")
    return fig


def write_scatter_plots(
    chain: TrainedChain, table: pd.DataFrame, figures_dir: str | Path
) -> list[Path]:
    """Write ``figures_dir/scatter_layer{k}.png`` for every trained layer.

    Predictions come from :meth:`TrainedChain.predict` (chained, as at inference); the split is
    the chain's own.
    """
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    predictions = chain.predict(table)
    split = chain.split.reindex(table.index).to_numpy()
    paths = []
    for model in chain.models:
        k = model.layer
        obs = pd.to_numeric(table[target_column(k)], errors="coerce").to_numpy(np.float64)
        sim = predictions[prediction_column(k)].to_numpy(np.float64)
        train, test = split == "train", split == "test"
        fig = scatter_figure(obs[train], sim[train], obs[test], sim[test], k)
        path = figures_dir / f"scatter_layer{k}.png"
        with atomic_output(path) as tmp:
            fig.savefig(tmp, dpi=110)
        paths.append(path)
    return paths
