"""The layer networks folded for fast float32 inference on many cell-days at once.

A trained layer network (:class:`cropsm.train.chain.LayerModel`, paper section 2a) computes

.. math::

    z = \\frac{x - \\mu}{\\sigma},\\quad h_1 = g(W_1^T z + b_1),\\ \\ldots,\\quad
    \\mathrm{SM} = m_y + s_y\\,(W_L^T h_{L-1} + b_L)

with ReLU ``g`` on the hidden layers. The standardisation is folded into the first layer and the
target scaling into the last one, so inference is plain affine maps:

.. math::

    W_1' = W_1 / \\sigma,\\quad b_1' = b_1 - (\\mu / \\sigma)^T W_1,\\qquad
    W_L' = s_y W_L,\\quad b_L' = s_y b_L + m_y.

The first layer's inputs split into the **shared** inputs (climate, soil, elevation, day of
year: the same under every cropping pattern), the pattern one-hot and, for layer k >= 2 of a
chained network, the prediction of layer k - 1 (``sm_pred_upper``; a network trained with
``[train] chain = "none"`` lacks it and the term drops out). Under pattern p

.. math::

    W_1'^T x = \\underbrace{W_{1,s}'^T x_s + b_1'}_{\\text{once for all patterns}}
               + W_{1,p}' + w_{1,u}'\\,\\mathrm{SM}^{(k-1)}_p

so the shared product is computed once per cell-day and each pattern adds a column and a rank-1
term (applied as a step from the previous pattern, :func:`forward_chain`). Inputs that depend on
the pattern *and* the cell-day (the crop-aware set's nominal calendar and bucket,
``cropsm.features.groups.PATTERN_INPUTS``) join the step: ``W_{1,c}' (x_{c,p} - x_{c,p-1})``.

A network with a bounded output (``LayerModel.output == "bounded"``) keeps the last map in the
network's own units ``z`` and ends with ``SM = phi sigmoid(z)``, ``phi`` the porosity of the
cell's layer from its bulk-density input (:mod:`cropsm.train.bounds`); an anchored output
(``"anchored"``) adds the bucket's offset ``logit(b_p)`` of each pattern's bucket store before
the sigmoid (:func:`cropsm.train.bounds.anchor_logit`). Every affine map is
one float32 matrix product in "feature-major" layout (``(units, cell-days)``, one BLAS thread);
biases ride along as a constant row of ones (augmented weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg.blas import sgemm  # imported early so that threadpool limits reach its BLAS

from cropsm.features.groups import PATTERN_INPUTS, PATTERN_ONE_HOT, UPPER
from cropsm.train.bounds import (
    DEFAULT_BULK_DENSITY_G_CM3,
    LOWER_BOUND_M3_M3,
    anchor_inputs,
    anchor_logit_of,
    anchor_retention,
    bound_feature,
    is_bounded,
    upper_bound_m3_m3,
)
from cropsm.train.chain import LayerModel


@dataclass(frozen=True)
class FoldedNet:
    """One layer network with scaler and target scaling folded in, float32.

    Attributes
    ----------
    layer
        Soil layer 1...5.
    shared_names
        Shared inputs in the order of the columns of :attr:`first` (without the bias column).
    first
        ``(n_first, len(shared_names) + 1)``: first affine map on the shared inputs, the last
        column the folded bias (units of the pre-activation).
    pattern_columns
        ``(n_first, 6)``: what the one-hot input of each pattern (``pattern_ids()`` order) adds;
        zeros when the network has no pattern input.
    upper_column
        ``(n_first,)``: weight of ``sm_pred_upper`` (m3 m-3 folded), ``None`` for layer 1 and
        for a network without that input (``[train] chain = "none"``).
    hidden
        Augmented ``(n_out, n_in + 1)`` maps after the first one; the last is the output map
        (target scaling folded) unless :attr:`first` already is the output.
    pattern_steps
        ``(6, n_first, r)``: the columns that take the first pre-activation from one pattern
        to the next, multiplying ``[1; SM_p - SM_(p-1)]`` (``r = 2``) or ``[1]`` (``r = 1``,
        layer 1): ``[c_p - c_(p-1), upper column]`` (``c_(-1) = 0``, ``SM_(-1) = 0``).
    first_is_output
        True for a network without hidden layers.
    uses_pattern
        Whether any input depends on the pattern (one-hot, calendar or bucket).
    pattern_input_names
        Inputs that depend on pattern and cell-day (calendar, bucket), in the order of the last
        columns of :attr:`pattern_steps`.
    bounded
        Output ``phi sigmoid(z)`` (else the linear output, target scaling folded).
    bound_index
        Index in :attr:`shared_names` of the bulk density behind ``phi``; None: the default.
    default_upper
        ``phi`` without a bulk-density input, m3 m-3.
    anchor_index
        Anchored output: index in :attr:`pattern_input_names` of the bucket store behind the
        offset ``logit(b)``; None: no anchor.
    anchor_texture_index
        Indices in :attr:`shared_names` of the layer's sand and clay (the anchor's retention);
        None: the default loam.
    """

    layer: int
    shared_names: tuple[str, ...]
    first: np.ndarray
    pattern_columns: np.ndarray
    upper_column: np.ndarray | None
    hidden: tuple[np.ndarray, ...]
    pattern_steps: np.ndarray
    first_is_output: bool
    uses_pattern: bool
    pattern_input_names: tuple[str, ...] = ()
    bounded: bool = False
    bound_index: int | None = None
    default_upper: float = float(upper_bound_m3_m3(DEFAULT_BULK_DENSITY_G_CM3))
    anchor_index: int | None = None
    anchor_texture_index: tuple[int, int] | None = None

    @property
    def n_first(self) -> int:
        return int(self.first.shape[0])


def fold_layer_model(model: LayerModel) -> FoldedNet:
    """Fold a trained layer network into float32 affine maps (see the module docstring).

    The folding is done in float64 and rounded once to float32.
    """
    names = list(model.feature_names)
    mean = np.asarray(model.scaler.mean, dtype=np.float64)
    std = np.asarray(model.scaler.std, dtype=np.float64)
    weights = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in model.weights]
    w1, b1 = weights[0]
    w1_scaled = w1 / std[:, None]  # (n_in, n_first)
    b1_folded = b1 - (mean / std) @ w1
    is_output = len(weights) == 1
    bounded = is_bounded(model.output)
    if is_output and not bounded:
        w1_scaled = w1_scaled * model.target_std
        b1_folded = b1_folded * model.target_std + model.target_mean
    shared = [i for i, n in enumerate(names) if n not in PATTERN_INPUTS and n != UPPER]
    cell_pattern = [
        i for i, n in enumerate(names) if n in PATTERN_INPUTS and n not in PATTERN_ONE_HOT
    ]
    first = np.concatenate([w1_scaled[shared].T, b1_folded[:, None]], axis=1)
    pattern_columns = np.zeros((w1.shape[1], len(PATTERN_ONE_HOT)))
    for j, column in enumerate(PATTERN_ONE_HOT):
        if column in names:
            pattern_columns[:, j] = w1_scaled[names.index(column)]
    upper = w1_scaled[names.index(UPPER)] if UPPER in names else None
    hidden = []
    for i, (w, b) in enumerate(weights[1:], start=1):
        if i == len(weights) - 1 and not bounded:
            w, b = w * model.target_std, b * model.target_std + model.target_mean
        hidden.append(np.concatenate([w.T, b[:, None]], axis=1).astype(np.float32))
    steps = np.diff(pattern_columns.T, axis=0, prepend=0.0)  # (6, n_first): c_p - c_(p-1)
    columns = [steps]
    if upper is not None:
        columns.append(np.broadcast_to(upper, steps.shape))
    columns += [np.broadcast_to(w1_scaled[i], steps.shape) for i in cell_pattern]
    per_pattern = np.stack(columns, axis=2)
    shared_names = tuple(names[i] for i in shared)
    feature = bound_feature(model.layer, names) if bounded else None
    pattern_input_names = tuple(names[i] for i in cell_pattern)
    anchor_index = anchor_texture_index = None
    if model.output == "anchored":
        store, sand, clay = anchor_inputs(model.layer, names)
        if store is not None:
            anchor_index = pattern_input_names.index(store)
            if sand is not None and clay is not None:
                anchor_texture_index = (shared_names.index(sand), shared_names.index(clay))
    return FoldedNet(
        layer=model.layer,
        shared_names=shared_names,
        first=np.ascontiguousarray(first, dtype=np.float32),
        pattern_columns=np.ascontiguousarray(pattern_columns, dtype=np.float32),
        upper_column=None if upper is None else upper.astype(np.float32),
        hidden=tuple(np.ascontiguousarray(h) for h in hidden),
        pattern_steps=np.ascontiguousarray(per_pattern, dtype=np.float32),
        first_is_output=is_output,
        uses_pattern=any(c in names for c in PATTERN_INPUTS),
        pattern_input_names=pattern_input_names,
        bounded=bounded,
        bound_index=None if feature is None else shared_names.index(feature),
        anchor_index=anchor_index,
        anchor_texture_index=anchor_texture_index,
    )


def fold_chain(models: Sequence[LayerModel]) -> tuple[FoldedNet, ...]:
    """Fold layers 1...k (sorted, without gaps) of a model set.

    Each network keeps the inputs its saved feature names list: layer k >= 2 takes the layer
    k - 1 prediction only when ``sm_pred_upper`` is among them (``[train] chain = "upper"``).
    """
    models = sorted(models, key=lambda m: m.layer)
    layers = [m.layer for m in models]
    if layers != list(range(1, len(layers) + 1)):
        raise ValueError(f"a chain needs layers 1...k without gaps, got {layers}")
    if UPPER in models[0].feature_names:
        raise ValueError(f"layer 1 has no layer above; its network lists the {UPPER} input")
    return tuple(fold_layer_model(m) for m in models)


def chain_uses_pattern(nets: Sequence[FoldedNet]) -> bool:
    """True when any layer takes the cropping pattern (else every pattern gives the same SM)."""
    return any(net.uses_pattern for net in nets)


def executed_flops_per_cell_day(nets: Sequence[FoldedNet], n_patterns: int) -> int:
    """Floating-point operations :func:`forward_chain` executes per cell-day.

    Matrix products count ``2 m k n`` with the bias row included (the pattern step is an
    ``n1 x r`` by ``r x B`` product accumulated into the pre-activation: ``2 r + 1`` per unit,
    ``r = 2`` with ``sm_pred_upper``, else 1); ReLU and the ``SM_p - SM_(p-1)`` difference count
    one operation per element::

        sum_k [ 2 n1 (F_k + 1)
                + P ( n1 (2 r_k + 1) + [k > 1] + n1 [hidden]
                      + sum_i 2 n_out,i (n_in,i + 1) + sum_(i hidden) n_out,i ) ]

    ``F_k`` shared inputs of layer k, ``n1`` its first-layer units, ``P`` patterns.
    """
    total = 0
    for net in nets:
        n1, f1 = net.first.shape
        total += 2 * n1 * f1
        rank = net.pattern_steps.shape[2]  # 1, + upper, + pattern inputs
        per_pattern = n1 * (2 * rank + 1)  # sgemm accumulate of the pattern step
        per_pattern += len(net.pattern_input_names)  # x_(c,p) - x_(c,p-1)
        per_pattern += 5 if net.bounded else 0  # sigmoid bound
        per_pattern += 1 if net.upper_column is not None else 0  # SM_p - SM_(p-1)
        per_pattern += 0 if net.first_is_output else n1  # ReLU
        for i, w in enumerate(net.hidden):
            n_out, n_in1 = w.shape
            per_pattern += 2 * n_out * n_in1
            if i < len(net.hidden) - 1:
                per_pattern += n_out
        total += n_patterns * per_pattern
    return int(total)


def nominal_flops_per_cell_day(models: Sequence[LayerModel], n_patterns: int) -> int:
    """Multiply-adds (x2) of the networks as trained, evaluated once per pattern: the work a
    direct, unshared evaluation of every pattern would do (``2 n_in n_out`` per dense map)."""
    total = 0
    for m in models:
        total += sum(2 * int(w.shape[0]) * int(w.shape[1]) for w, _ in m.weights)
    return int(total * n_patterns)


class Workspace:
    """Reusable float32 buffers (avoids page faults from re-allocating large temporaries)."""

    def __init__(self) -> None:
        self._buffers: dict[tuple, np.ndarray] = {}

    def get(self, key, shape: tuple[int, ...], fill: float | None = None) -> np.ndarray:
        """A buffer of ``shape`` for ``key``; ``fill`` initialises a new one (e.g. a ones row)."""
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape:
            buf = (
                np.empty(shape, dtype=np.float32)
                if fill is None
                else np.full(shape, fill, dtype=np.float32)
            )
            self._buffers[key] = buf
        return buf

    def ones_last_row(self, key, shape: tuple[int, int]) -> np.ndarray:
        """A ``(n + 1, B)`` buffer whose last row is ones (the bias row of augmented maps)."""
        buf = self._buffers.get(key)
        if buf is None or buf.shape != shape:
            buf = np.empty(shape, dtype=np.float32)
            buf[-1] = 1.0
            self._buffers[key] = buf
        return buf


def _relu_inplace(values: np.ndarray, zeros: np.ndarray) -> None:
    """``max(values, 0)`` in place; NaN stays NaN (an array of zeros is much faster than a
    scalar 0 in NumPy's broadcasting loop)."""
    np.maximum(values, zeros[: values.shape[0]], out=values)


def _accumulate(target: np.ndarray, columns: np.ndarray, rows: np.ndarray) -> None:
    """``target += columns @ rows`` in place with one BLAS call (sgemm with beta = 1).

    ``target`` ``(n, B)`` and ``rows`` ``(r, B)`` are C-contiguous float32, ``columns``
    ``(n, r)``; BLAS sees the transposes (Fortran order) so nothing is copied.
    """
    result = sgemm(1.0, rows.T, columns.T, beta=1.0, c=target.T, overwrite_c=1)
    if not np.shares_memory(result, target):  # pragma: no cover - layout guard
        target[...] = result.T


@dataclass
class BatchTerms:
    """What a batch's forward pass needs that does not depend on the weights of a chain.

    Deep-ensemble members share their inputs, so these are computed once per batch
    (:func:`batch_terms`) and used by every member's :func:`forward_chain`.

    Attributes
    ----------
    pattern_rows
        Per layer, ``(P, r, B)`` float32: the rows the per-pattern columns multiply,
        ``[1; SM_p - SM_(p-1); x_(c,p) - x_(c,p-1)]``; the second row (chained networks) is
        written by each chain before its step, the others are filled here.
    half_range
        Per layer, ``(B,)`` ``(phi - lo) / 2`` of a bounded network, else None.
    anchor_half_logit
        Per layer, ``(P, B)`` ``logit(b_p) / 2`` of an anchored network, else None.
    """

    pattern_rows: list[np.ndarray]
    half_range: list[np.ndarray | None]
    anchor_half_logit: list[np.ndarray | None]


def _input_layout(net: FoldedNet) -> tuple:
    """What :func:`batch_terms` reads of a network (the same for chains that can share)."""
    return (
        net.shared_names,
        net.pattern_input_names,
        net.upper_column is not None,
        net.bounded,
        net.bound_index,
        net.default_upper,
        net.anchor_index,
        net.anchor_texture_index,
    )


def share_batch_terms(chains: Sequence[Sequence[FoldedNet]]) -> bool:
    """True when every chain reads its inputs alike, so one :class:`BatchTerms` serves all."""
    layouts = [tuple(_input_layout(net) for net in nets) for nets in chains]
    return all(layout == layouts[0] for layout in layouts)


def batch_terms(
    nets: Sequence[FoldedNet],
    shared_inputs: Sequence[np.ndarray],
    n_patterns: int,
    pattern_inputs: Sequence[np.ndarray | None] | None = None,
    workspace: Workspace | None = None,
) -> BatchTerms:
    """The weight-free terms of a batch (:class:`BatchTerms`); arguments as
    :func:`forward_chain`."""
    ws = workspace or Workspace()
    n_rows = shared_inputs[0].shape[1]
    rows_by_layer, half_ranges, anchors = [], [], []
    for k, (net, x) in enumerate(zip(nets, shared_inputs, strict=True)):
        n_cell = len(net.pattern_input_names)
        cell_inputs = None if pattern_inputs is None else pattern_inputs[k]
        if n_cell and cell_inputs is None:
            raise ValueError(f"layer {net.layer}: inputs {net.pattern_input_names} are missing")
        offset = 2 if net.upper_column is not None else 1
        rows = ws.get(("pattern_rows", k), (n_patterns, offset + n_cell, n_rows))
        rows[:, 0] = 1.0
        if offset == 2:
            rows[:, 1] = 0.0
        if n_cell:
            rows[0, offset:] = cell_inputs[0]
            np.subtract(cell_inputs[1:n_patterns], cell_inputs[: n_patterns - 1],
                        out=rows[1:, offset:])  # fmt: skip
        rows_by_layer.append(rows)
        porosity = _upper_row(net, x, ws, k) if net.bounded else None
        half_range = None
        if porosity is not None:
            half_range = ws.get(("half_range", k), (n_rows,))
            np.subtract(porosity, np.float32(LOWER_BOUND_M3_M3), out=half_range)
            half_range *= np.float32(0.5)
        half_ranges.append(half_range)
        anchor = None
        if net.anchor_index is not None:
            texture = net.anchor_texture_index
            retention = [
                np.asarray(v, dtype=np.float32)
                for v in anchor_retention(
                    None if texture is None else x[texture[0]],
                    None if texture is None else x[texture[1]],
                )
            ]
            anchor = ws.get(("anchor", k), (n_patterns, n_rows))
            for p in range(n_patterns):
                anchor[p] = anchor_logit_of(cell_inputs[p][net.anchor_index], *retention, porosity)
            anchor *= np.float32(0.5)
        anchors.append(anchor)
    return BatchTerms(rows_by_layer, half_ranges, anchors)


def forward_chain(
    nets: Sequence[FoldedNet],
    shared_inputs: Sequence[np.ndarray],
    n_patterns: int,
    workspace: Workspace | None = None,
    pattern_inputs: Sequence[np.ndarray | None] | None = None,
    terms: BatchTerms | None = None,
) -> np.ndarray:
    r"""Chained soil moisture of every layer under each pattern for a batch of cell-days.

    For layer k the first pre-activation under pattern p (see the module docstring) is

    .. math::

        z_p = S_k + W_{1,p}' + w_{1,u}' \mathrm{SM}^{(k-1)}_p + W_{1,c}' x_{c,p},\qquad
        S_k = [W_{1,s}'\ b_1'] [x_s; 1]

    :math:`S_k` is one matrix product for all patterns; the patterns are then visited in
    order, each step adding :math:`[W_{1,p}' - W_{1,p-1}',\ w_{1,u}',\ W_{1,c}']
    [1;\ \mathrm{SM}^{(k-1)}_p - \mathrm{SM}^{(k-1)}_{p-1};\ x_{c,p} - x_{c,p-1}]` in place
    (one BLAS call, no copy of :math:`S_k`), followed by the ReLU, the hidden and output maps
    and, for a bounded network, :math:`\mathrm{SM} = lo + (\phi - lo)\,\sigma(z)`, evaluated
    as :math:`lo + \tfrac{\phi - lo}{2} (1 + \tanh(z / 2))` (the same function; ``tanh``
    cannot overflow, so no clipping is needed).

    Parameters
    ----------
    nets
        Folded layer networks 1...L.
    shared_inputs
        Per layer, ``(len(net.shared_names) + 1, B)`` float32: the shared inputs of the batch in
        :attr:`FoldedNet.shared_names` order, last row ones.
    n_patterns
        P: patterns 0...P-1 of ``pattern_ids()`` (1 when the chain ignores the pattern).
    workspace
        Buffers reused between calls.
    pattern_inputs
        Per layer, ``(P, len(net.pattern_input_names), B)`` float32 or None (no such inputs).
    terms
        The batch's weight-free terms (:func:`batch_terms`), shared by chains that read their
        inputs alike (:func:`share_batch_terms`: the members of a deep ensemble); None: computed
        here.

    Returns
    -------
    numpy.ndarray
        ``(L, P, B)`` float32 soil moisture, m3 m-3 (a workspace buffer: copy it before the next
        call); NaN where an input of the cell-day (or of a chained layer above) is NaN.
    """
    ws = workspace or Workspace()
    if terms is None:
        terms = batch_terms(nets, shared_inputs, n_patterns, pattern_inputs, ws)
    n_rows = shared_inputs[0].shape[1]
    widest = max(max([net.n_first, *(w.shape[0] for w in net.hidden)]) for net in nets)
    zeros = ws.get("zeros", (widest, n_rows), fill=0.0)
    out = ws.get("out", (len(nets), n_patterns, n_rows))
    upper = None
    for k, (net, x) in enumerate(zip(nets, shared_inputs, strict=True)):
        n1 = net.n_first
        chained = net.upper_column is not None
        pattern_rows = terms.pattern_rows[k]
        half_range = terms.half_range[k]
        anchor = terms.anchor_half_logit[k]
        # pre-activation of the first layer; stepped from pattern to pattern in place
        act = ws.get(("act", n1), (n1, n_rows))
        np.matmul(net.first, x, out=act)
        first = ws.ones_last_row(("first", n1), (n1 + 1, n_rows))
        for p in range(n_patterns):
            rows = pattern_rows[p]
            if chained:
                if p == 0:
                    rows[1] = upper[0]
                else:
                    np.subtract(upper[p], upper[p - 1], out=rows[1])
            _accumulate(act, net.pattern_steps[p], rows)
            target = out[k, p]
            if net.first_is_output:
                target[...] = act[0]
            else:
                np.maximum(act, zeros[:n1], out=first[:n1])  # ReLU
                h = first
                for i, w in enumerate(net.hidden):
                    n_out = w.shape[0]
                    if i == len(net.hidden) - 1:
                        np.matmul(w, h, out=out[k, p : p + 1])
                        break
                    nxt = ws.ones_last_row(("hidden", i, n_out), (n_out + 1, n_rows))
                    np.matmul(w, h, out=nxt[:n_out])
                    _relu_inplace(nxt[:n_out], zeros)
                    h = nxt
            if half_range is not None:
                target *= np.float32(0.5)
                if anchor is not None:
                    target += anchor[p]
                _bound_inplace(target, half_range)
        upper = out[k]
    return out


def _upper_row(net: FoldedNet, shared: np.ndarray, ws: Workspace, k: int) -> np.ndarray:
    """Porosity of every row of the batch (the bounded output's upper value), float32."""
    row = ws.get(("porosity", k), (shared.shape[1],))
    if net.bound_index is None:
        row[...] = net.default_upper
    else:
        row[...] = upper_bound_m3_m3(shared[net.bound_index])
    return row


def _bound_inplace(half_values: np.ndarray, half_range: np.ndarray) -> None:
    """``lo + (phi - lo) sigmoid(z)`` in place from ``z / 2`` and ``(phi - lo) / 2``, as
    ``lo + (phi - lo) / 2 (1 + tanh(z / 2))`` (lo = 0 m3 m-3); NaN stays NaN."""
    np.tanh(half_values, out=half_values)
    half_values += np.float32(1.0)
    half_values *= half_range
    if LOWER_BOUND_M3_M3:
        half_values += np.float32(LOWER_BOUND_M3_M3)
