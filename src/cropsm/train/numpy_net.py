"""NumPy side of the layer networks: input standardisation and the forward pass, no JAX.

Everything needed to APPLY a trained network lives here, so that prediction (chaining between
layers during training, inference on the grid inside dask blocks) imports NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NumpyParams = list[tuple[np.ndarray, np.ndarray]]
"""Weights ``W`` ``(n_in, n_out)`` and biases ``b`` ``(n_out,)`` of each layer, as NumPy."""


@dataclass(frozen=True, eq=False)
class Scaler:
    """Per-column standardisation ``z = (x - mean) / std`` with statistics of the training rows.

    Attributes
    ----------
    mean, std
        One value per input column (float64). A column that is constant in the training rows
        gets ``std = 1`` so that it maps to zero instead of dividing by zero.
    """

    mean: np.ndarray
    std: np.ndarray

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Return ``(x - mean) / std`` in float64."""
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std


def fit_scaler(x_train: np.ndarray) -> Scaler:
    """Mean and standard deviation per column of the TRAINING rows only (section 2a).

    Parameters
    ----------
    x_train
        ``(n_rows, n_columns)`` training inputs without NaN.

    Returns
    -------
    Scaler
        ``mean = (1/n) sum_i x_i``, ``std = sqrt((1/n) sum_i (x_i - mean)^2)``, with ``std``
        replaced by 1 where it is 0 (constant column).
    """
    x = np.asarray(x_train, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return Scaler(mean=mean, std=std)


def numpy_forward(weights: NumpyParams, x: np.ndarray) -> np.ndarray:
    """Feed-forward pass in plain NumPy (float64), no JAX needed.

    ``h_l = max(0, h_{l-1} W_l + b_l)`` for the hidden layers, ``y = h_L W_out + b_out``: the
    same network as :func:`cropsm.train.mlp.mlp_forward` (section 2a, Fig. 1).

    Used for every prediction after training (chaining between layers, inference on the grid
    inside dask blocks), so that training inputs and inference inputs are computed identically.

    Parameters
    ----------
    weights
        ``[(W, b), ...]``, hidden layers first, output layer last.
    x
        ``(n_rows, n_inputs)`` standardised inputs.

    Returns
    -------
    numpy.ndarray
        ``(n_rows,)`` outputs in standardised target units.
    """
    h = np.asarray(x, dtype=np.float64)
    for w, b in weights[:-1]:
        h = np.maximum(h @ np.asarray(w, np.float64) + np.asarray(b, np.float64), 0.0)
    w, b = weights[-1]
    return (h @ np.asarray(w, np.float64) + np.asarray(b, np.float64))[..., 0]
