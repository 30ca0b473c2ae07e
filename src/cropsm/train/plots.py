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


def _panel(
    ax,
    obs: np.ndarray,
    sim: np.ndarray,
    title: str,
    limits: tuple[float, float],
    colorbar: bool = True,
):
    ok = np.isfinite(obs) & np.isfinite(sim)
    obs, sim = obs[ok], sim[ok]
    bins = None
    if obs.size > HEXBIN_ABOVE:
        bins = ax.hexbin(obs, sim, gridsize=60, bins="log", mincnt=1, cmap="viridis",
                         extent=(*limits, *limits))  # fmt: skip
        if colorbar:
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
    return bins


def _limits(*arrays: np.ndarray) -> tuple[float, float]:
    values = np.concatenate([np.asarray(a, np.float64).ravel() for a in arrays])
    values = values[np.isfinite(values)]
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.6)
    pad = 0.02 * (high - low or 1.0)
    return low - pad, high + pad


def scatter_layers_figure(panels: dict[int, tuple[np.ndarray, ...]]) -> Figure:
    """Fig. 4 for every layer in one figure: training (top row) and testing (bottom row),
    predicted against observed SM with a 1:1 line, the same axes in every panel.

    ``panels`` maps a layer to ``(obs_train, sim_train, obs_test, sim_test)``. Each panel's
    title gives ``R2 = 1 - SSE/SST`` (:func:`cropsm.train.metrics.r2`) and n; dense panels are
    hexagonal bins on one shared colour scale.
    """
    layers = sorted(panels)
    limits = _limits(*[a for k in layers for a in panels[k]])
    fig = Figure(figsize=(2.9 * max(1, len(layers)) + 1.0, 6.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(2, max(1, len(layers)), sharex=True, sharey=True))
    if len(layers) == 1:
        axes = axes.reshape(2, 1)
    hexbins = []
    for j, k in enumerate(layers):
        obs_train, sim_train, obs_test, sim_test = (np.asarray(a, float) for a in panels[k])
        depth = f"{LAYER_TOP_CM[k - 1]}-{LAYER_BOTTOM_CM[k - 1]} cm"
        for i, (obs, sim, part) in enumerate(
            ((obs_train, sim_train, "train"), (obs_test, sim_test, "test"))
        ):
            bins = _panel(axes[i, j], obs, sim, f"{depth}, {part}", limits, colorbar=False)
            axes[i, j].title.set_fontsize(9)
            if j:
                axes[i, j].set_ylabel("")
            if i == 0:
                axes[i, j].set_xlabel("")
            if bins is not None:
                hexbins.append(bins)
    if hexbins:
        top = max(float(np.nanmax(b.get_array())) for b in hexbins)
        for b in hexbins:
            b.set_clim(1, top)
        fig.colorbar(hexbins[0], ax=axes.ravel().tolist(), shrink=0.6, label="observations per bin")
    fig.suptitle("Predicted against observed SM, every layer (the paper's Fig. 4)")
    return fig


def write_scatter_plots(
    chain: TrainedChain, table: pd.DataFrame, figures_dir: str | Path
) -> list[Path]:
    """Write ``figures_dir/scatter_all_layers.png``: every trained layer in one figure
    (:func:`scatter_layers_figure`); per-layer files of earlier versions are removed.

    Predictions come from :meth:`TrainedChain.predict` (chained, as at inference); the split is
    the chain's own.
    """
    figures_dir = Path(figures_dir)
    figures_dir.mkdir(parents=True, exist_ok=True)
    predictions = chain.predict(table)
    split = chain.split.reindex(table.index).to_numpy()
    panels = {}
    for model in chain.models:
        k = model.layer
        obs = pd.to_numeric(table[target_column(k)], errors="coerce").to_numpy(np.float64)
        sim = predictions[prediction_column(k)].to_numpy(np.float64)
        train, test = split == "train", split == "test"
        panels[k] = (obs[train], sim[train], obs[test], sim[test])
    for stale in figures_dir.glob("scatter_layer*.png"):
        stale.unlink()
    path = figures_dir / "scatter_all_layers.png"
    with atomic_output(path) as tmp:
        scatter_layers_figure(panels).savefig(tmp, dpi=110)
    return [path]
