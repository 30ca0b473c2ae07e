"""Neural networks of the five soil layers (paper section 2a).

One feed-forward network per soil layer, chained from the top down (layer k >= 2 takes the
prediction of layer k - 1), each tuned by a grid search over batch size, learning rate, hidden
layers and units. The grid is trained as vectorised JAX ensembles (:mod:`cropsm.train.mlp`);
trained networks are applied with plain NumPy (:func:`predict_chain`).

Main entry points: :func:`train_layers`, :func:`predict_chain`, :func:`write_training_outputs`,
:func:`load_models`, :func:`write_scatter_plots`.
"""

from cropsm.train.artifacts import (
    load_ensemble,
    load_layer_model,
    load_models,
    load_observation_error_sd,
    load_residual_sd,
    save_layer_model,
    save_models,
    table2,
    write_metrics_json,
    write_training_outputs,
)
from cropsm.train.chain import (
    LayerModel,
    TrainedChain,
    predict_chain,
    predict_ensemble,
    train_layers,
)
from cropsm.train.config import GridConfig, TrainConfig
from cropsm.train.metrics import all_metrics
from cropsm.train.splits import make_split, split_membership

__all__ = [
    "GridConfig",
    "LayerModel",
    "TrainConfig",
    "TrainedChain",
    "all_metrics",
    "load_ensemble",
    "load_layer_model",
    "load_models",
    "load_observation_error_sd",
    "load_residual_sd",
    "make_split",
    "predict_chain",
    "predict_ensemble",
    "save_layer_model",
    "save_models",
    "split_membership",
    "table2",
    "train_layers",
    "write_metrics_json",
    "write_scatter_plots",
    "write_training_outputs",
]


def write_scatter_plots(chain, table, figures_dir):
    """Fig. 4 scatter plots; see :func:`cropsm.train.plots.write_scatter_plots` (lazy import)."""
    from cropsm.train.plots import write_scatter_plots as _write

    return _write(chain, table, figures_dir)
