"""Physical bounds of soil moisture, the range of a bounded network output.

Volumetric soil moisture lies between 0 and the total porosity of the soil,
``phi = 1 - rho_b / rho_s`` (bulk density ``rho_b``, particle density ``rho_s = 2.65 g cm-3``).
A network with ``output = "bounded"`` predicts ``SM = lo + (hi - lo) sigmoid(z)`` with
``lo = 0`` and ``hi = phi`` of the row's layer, so no prediction is physically impossible, by
construction rather than by clipping.

The porosity comes from the layer's bulk-density input ``bd_l{k}`` when the network takes it
(the soil group is on); a network without soil inputs (data without soil, or the control
experiment without soil) uses :data:`DEFAULT_BULK_DENSITY_G_CM3`, so a bound never carries
information that the network's inputs lack.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cropsm.features.water_balance import porosity_m3_m3

LOWER_BOUND_M3_M3 = 0.0
"""Lower bound of volumetric soil moisture, m3 m-3."""

DEFAULT_BULK_DENSITY_G_CM3 = 1.0
"""Bulk density behind the upper bound when the network has no bulk-density input (a light
mineral soil: porosity 0.62)."""


def bound_feature(layer: int, feature_names: Sequence[str]) -> str | None:
    """The input the upper bound of layer ``layer`` comes from (``bd_l{k}``), or None."""
    name = f"bd_l{layer}"
    return name if name in feature_names else None


def upper_bound_m3_m3(bulk_density_g_cm3) -> np.ndarray:
    """Upper bound (porosity) from bulk density; NaN densities take the default density."""
    bd = np.asarray(bulk_density_g_cm3, dtype=np.float64)
    bd = np.where(np.isfinite(bd), bd, DEFAULT_BULK_DENSITY_G_CM3)
    return porosity_m3_m3(bd)


def row_bounds(x: np.ndarray, feature_names: Sequence[str], layer: int) -> np.ndarray:
    """``(n, 2)`` lower and upper bound (m3 m-3) of every row of a layer's input matrix."""
    x = np.asarray(x)
    feature = bound_feature(layer, feature_names)
    if feature is None:
        upper = np.full(x.shape[0], float(upper_bound_m3_m3(DEFAULT_BULK_DENSITY_G_CM3)))
    else:
        upper = upper_bound_m3_m3(x[:, list(feature_names).index(feature)])
    return np.column_stack([np.full(x.shape[0], LOWER_BOUND_M3_M3), upper])


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function ``1 / (1 + exp(-z))``, overflow-free for large ``|z|``."""
    z = np.asarray(z)
    out = np.empty_like(z)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    e = np.exp(z[~positive])
    out[~positive] = e / (1.0 + e)
    return out
