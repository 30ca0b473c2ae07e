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

An *anchored* network (``output = "anchored"``) keeps the same range and, in the layers of the
bucket's 20-50 cm store (layers 3-5, :mod:`cropsm.features.water_balance`), starts from the
pattern's bucket instead of the middle of it::

    SM = lo + (hi - lo) sigmoid(z + logit(b)),   b = clip(theta_b / hi, 0.02, 0.98)
    theta_b = theta_1500,k + W_sub (theta_33,k - theta_1500,k)

with ``W_sub`` the relative water of the store (``wb_sub``) and the layer's wilting point and
field capacity from its texture (Saxton & Rawls 2006, Eqs. 1-2; a loam without soil inputs).
The store enters *only* through ``b`` (its input weights are zero), so the network learns the
departure from the bucket and cannot learn the bucket's pattern contrast away again: a change of
cropping pattern moves the prediction by the bucket's physical size. A regression on the store
(the bounded output) shrinks that contrast, because the daily store is a proxy with errors
(regression dilution): on the demo twin the bounded networks' scenario effects were 0.6 of the
true size in layers 3-5, the anchored ones 0.9 (README, "Cropping-pattern effects").

The 0-20 cm layers are not anchored. Until session 23 the bucket's top store lacked what sets a
crop's effect on the topsoil (no split of soil evaporation and transpiration, no shading by the
canopy) and its pattern contrast ran against the true one in the virtual China (r -0.64 with
the true 0-10 cm effect on the demo twin). With the dual crop coefficient
(:mod:`cropsm.features.water_balance`) it follows it (r +0.72), but anchoring layer 1 on it
(``wb_top``), measured on the demo (K = 3, seed 0), changed neither the product (R2 against the
truth 0.894 0.912 0.904 0.901 0.881 -> 0.900 0.906 0.907 0.904 0.876) nor the effect maps (12
-> 13 flag-0 maps meeting the target, flag 1 unchanged) beyond run-to-run noise, so it stays
the plain bounded output. Without the ``wb_sub`` input the anchor is 0 (the plain bounded
output), so it never carries information the network's inputs lack.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cropsm.features.water_balance import (
    ORGANIC_MATTER_PCT,
    TOP_DEPTH_CM,
    porosity_m3_m3,
    saxton_rawls_retention,
)

LOWER_BOUND_M3_M3 = 0.0
"""Lower bound of volumetric soil moisture, m3 m-3."""

DEFAULT_BULK_DENSITY_G_CM3 = 1.0
"""Bulk density behind the upper bound when the network has no bulk-density input (a light
mineral soil: porosity 0.62)."""


DEFAULT_SAND_PCT, DEFAULT_CLAY_PCT = 40.0, 20.0
"""Texture (a loam) behind the anchor's wilting point and field capacity without soil inputs."""

ANCHOR_CLIP = 0.02
"""The anchor's relative position ``b`` is kept within ``[ANCHOR_CLIP, 1 - ANCHOR_CLIP]``."""

BOUNDED_OUTPUTS: tuple[str, ...] = ("bounded", "anchored")
"""Output kinds (``[train] output``) that lie between 0 and the porosity by construction."""


def is_bounded(output: str) -> bool:
    """True for the output kinds of :data:`BOUNDED_OUTPUTS`."""
    return output in BOUNDED_OUTPUTS


def anchor_store_feature(layer: int) -> str | None:
    """The bucket store an anchored layer starts from: ``wb_sub`` for the layers of the 20-50 cm
    store; None (no anchor) for the 0-20 cm layers (see the module docstring)."""
    return None if (layer - 1) * 10.0 < TOP_DEPTH_CM else "wb_sub"


def anchor_only_columns(layer: int, feature_names: Sequence[str], output: str) -> list[int]:
    """Input columns of an anchored layer that enter only through the anchor (the store)."""
    if output != "anchored":
        return []
    store = anchor_inputs(layer, feature_names)[0]
    return [] if store is None else [list(feature_names).index(store)]


def anchor_inputs(layer: int, feature_names: Sequence[str]) -> tuple[str, str | None, str | None]:
    """``(store, sand, clay)`` input names of the anchor of layer ``layer``; store is None when
    the network lacks the bucket input (no anchor), sand/clay None without soil inputs."""
    names = list(feature_names)
    store = anchor_store_feature(layer)
    sand, clay = f"sand_l{layer}", f"clay_l{layer}"
    return (
        store if store is not None and store in names else None,
        sand if sand in names else None,
        clay if clay in names else None,
    )


def anchor_retention(sand_pct, clay_pct) -> tuple[np.ndarray, np.ndarray]:
    """The anchor's wilting point ``theta_1500`` and available water ``max(theta_33 -
    theta_1500, 0.02)`` (m3 m-3) of a layer's texture (Saxton & Rawls 2006, Eqs. 1-2, organic
    matter :data:`ORGANIC_MATTER_PCT`); sand and clay in %, None: the default loam."""
    sand = DEFAULT_SAND_PCT if sand_pct is None else np.asarray(sand_pct, dtype=np.float64)
    clay = DEFAULT_CLAY_PCT if clay_pct is None else np.asarray(clay_pct, dtype=np.float64)
    theta_1500, theta_33 = saxton_rawls_retention(sand / 100.0, clay / 100.0, ORGANIC_MATTER_PCT)
    return theta_1500, np.maximum(theta_33 - theta_1500, 0.02)


def anchor_logit_of(relative_water, theta_1500, available_water, upper_m3_m3) -> np.ndarray:
    """``logit(b)``, ``b = clip((theta_1500 + W available_water) / upper, 0.02, 0.98)``, from a
    precomputed :func:`anchor_retention`; computed in the dtype of ``relative_water``."""
    w = np.asarray(relative_water)
    with np.errstate(invalid="ignore", divide="ignore"):
        b = (theta_1500 + w * available_water) / upper_m3_m3
        b = np.clip(b, ANCHOR_CLIP, 1.0 - ANCHOR_CLIP)
        return np.log(b / (1.0 - b))


def anchor_logit(relative_water, sand_pct, clay_pct, upper_m3_m3) -> np.ndarray:
    """The anchored output's offset ``logit(b)`` (see the module docstring).

    Parameters
    ----------
    relative_water
        Relative water of the layer's bucket store (``wb_sub``), 0-1.
    sand_pct, clay_pct
        The layer's texture, % (None: :data:`DEFAULT_SAND_PCT`, :data:`DEFAULT_CLAY_PCT`).
    upper_m3_m3
        The row's upper bound (porosity), m3 m-3.

    Returns
    -------
    numpy.ndarray
        ``log(b / (1 - b))`` with ``b = clip(theta_b / hi, 0.02, 0.98)``; NaN where an input is
        NaN.
    """
    theta_1500, available = anchor_retention(sand_pct, clay_pct)
    return anchor_logit_of(
        np.asarray(relative_water, dtype=np.float64),
        theta_1500,
        available,
        np.asarray(upper_m3_m3, dtype=np.float64),
    )


def row_anchor(
    x: np.ndarray, feature_names: Sequence[str], layer: int, upper_m3_m3=None
) -> np.ndarray:
    """``(n,)`` anchor offset ``logit(b)`` of every row of a layer's input matrix (0 without the
    bucket input); ``upper_m3_m3``: the rows' upper bounds when the caller has them already
    (None: :func:`row_bounds`)."""
    x = np.asarray(x)
    names = list(feature_names)
    store, sand, clay = anchor_inputs(layer, names)
    if store is None:
        return np.zeros(x.shape[0])
    upper = row_bounds(x, names, layer)[:, 1] if upper_m3_m3 is None else upper_m3_m3
    column = lambda name: None if name is None else x[:, names.index(name)]  # noqa: E731
    return anchor_logit(column(store), column(sand), column(clay), upper)


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
