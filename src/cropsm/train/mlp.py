"""Feed-forward networks for one soil layer, trained many configurations at a time (section 2a).

The paper trains one deep feed-forward network per soil layer (ReLU hidden layers, a linear
output, mean squared error, Adam) and tunes batch size, learning rate, hidden layers and units by
grid search. Here every configuration of the grid that shares an architecture is trained at the
same time as one *ensemble*: the members' parameters are stacked along a leading axis and the
forward/backward pass is vectorised over them with :func:`jax.vmap`, the minibatches of an epoch
run inside :func:`jax.lax.scan`, and the whole epoch (training steps, validation loss and
early-stopping bookkeeping) is one :func:`jax.jit`-compiled call.

Batch sizes inside one ensemble
-------------------------------
Members with different batch sizes share an ensemble by *gradient accumulation in lockstep*: the
epoch is cut into micro-batches of ``micro = gcd(batch sizes)`` rows; a member with batch size
``b = k * micro`` sums the gradients of ``k`` consecutive micro-batches and applies one Adam
update with their mean, which is exactly the gradient of the mean loss over its ``b`` rows. All
members see the same shuffled row order of an epoch, so every configuration's result depends
only on (seed, layer, configuration), never on which other configurations it was grouped with.
Grouping by architecture alone (``grouping="shape"``, 12 ensembles of 20 members for the paper's
grid) was measured faster on CPU than grouping by (architecture, batch size) (48 ensembles of 5);
see ``benchmarks/bench_train.py`` and the module :mod:`cropsm.train.grid_search`.

Every function here is pure; state lives in the arrays passed in and returned.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

Params = list[tuple[jax.Array, jax.Array]]
"""Weights ``W`` of shape ``(n_in, n_out)`` and biases ``b`` of shape ``(n_out,)`` per layer."""

NumpyParams = list[tuple[np.ndarray, np.ndarray]]


# --------------------------------------------------------------------------------------------
# Standardisation
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
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


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------


def layer_sizes(n_inputs: int, hidden_layers: int, units: int) -> list[int]:
    """Sizes ``[n_inputs, units, ..., units, 1]`` of a network with ``hidden_layers`` layers."""
    return [n_inputs] + [units] * hidden_layers + [1]


def init_mlp_params(key: jax.Array, n_inputs: int, hidden_layers: int, units: int) -> Params:
    """Glorot-uniform weights and zero biases (the TensorFlow/Keras ``Dense`` default).

    ``W ~ U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))``, ``b = 0``.

    Parameters
    ----------
    key
        A :func:`jax.random.key`; the same key gives the same parameters.
    n_inputs, hidden_layers, units
        Architecture: ``n_inputs -> units (x hidden_layers, ReLU) -> 1 (linear)``.
    """
    sizes = layer_sizes(n_inputs, hidden_layers, units)
    keys = jax.random.split(key, len(sizes) - 1)
    params: Params = []
    for layer_key, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:], strict=True):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        w = jax.random.uniform(layer_key, (fan_in, fan_out), jnp.float32, -limit, limit)
        params.append((w, jnp.zeros((fan_out,), jnp.float32)))
    return params


def mlp_forward(params: Params, x: jax.Array) -> jax.Array:
    """Feed-forward pass ``h_l = relu(h_{l-1} W_l + b_l)``, output ``y = h_L W_out + b_out``.

    Parameters
    ----------
    params
        One network's parameters.
    x
        ``(n_rows, n_inputs)`` standardised inputs.

    Returns
    -------
    jax.Array
        ``(n_rows,)`` predictions in standardised target units.
    """
    h = x
    for w, b in params[:-1]:
        h = jax.nn.relu(h @ w + b)
    w, b = params[-1]
    return (h @ w + b)[..., 0]


def mse_loss(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean squared error ``(1/n) sum_i (f(x_i) - y_i)^2``, the paper's loss (section 2a)."""
    return jnp.mean((mlp_forward(params, x) - y) ** 2)


def numpy_forward(weights: NumpyParams, x: np.ndarray) -> np.ndarray:
    """The same forward pass as :func:`mlp_forward` in plain NumPy (float64), no JAX needed.

    Used for every prediction after training (chaining between layers, inference on the grid
    inside dask blocks), so that training inputs and inference inputs are computed identically.
    """
    h = np.asarray(x, dtype=np.float64)
    for w, b in weights[:-1]:
        h = np.maximum(h @ np.asarray(w, np.float64) + np.asarray(b, np.float64), 0.0)
    w, b = weights[-1]
    return (h @ np.asarray(w, np.float64) + np.asarray(b, np.float64))[..., 0]


# --------------------------------------------------------------------------------------------
# Ensemble training
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One grid configuration trained inside an ensemble."""

    hidden_layers: int
    units: int
    batch_size: int
    learning_rate: float

    @property
    def shape(self) -> tuple[int, int]:
        return (self.hidden_layers, self.units)


def member_key(seed: int, layer: int, member: Member) -> jax.Array:
    """Initialisation key of one configuration: depends on seed, soil layer and configuration only.

    ``fold_in(fold_in(key(seed), layer), crc32("L-U-B-lr"))``, so a configuration gets the same
    initial weights whichever ensemble it is trained in.
    """
    tag = f"{member.hidden_layers}-{member.units}-{member.batch_size}-{member.learning_rate!r}"
    code = zlib.crc32(tag.encode()) & 0x7FFFFFFF
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), layer), code)


def epoch_key(seed: int, layer: int, epoch: int) -> jax.Array:
    """Shuffling key of one epoch, shared by every configuration of a layer."""
    base = jax.random.fold_in(jax.random.key(seed), 1_000_003 + layer)
    return jax.random.fold_in(base, epoch)


class EnsembleState(NamedTuple):
    """Everything that changes during training, stacked over the M members (leading axis)."""

    params: Params
    opt_state: optax.OptState
    grad_sum: Params
    best_params: Params
    best_val_mse: jax.Array  # (M,) float32, standardised units
    best_epoch: jax.Array  # (M,) int32, 0-based epoch of best_params, -1 = initial params
    epochs_trained: jax.Array  # (M,) int32
    active: jax.Array  # (M,) bool: not yet stopped early


class EnsembleResult(NamedTuple):
    """Outcome of :func:`train_ensemble` per member, as NumPy."""

    best_params: list[NumpyParams]
    best_val_mse: np.ndarray  # standardised target units
    best_epoch: np.ndarray
    epochs_trained: np.ndarray
    epoch_seconds: list[float]


_ADAM = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-7)
"""Adam moments without the step size; each member multiplies by its own learning rate.

``eps = 1e-7`` as in TensorFlow/Keras, which the paper used.
"""


def effective_batch_sizes(batch_sizes: Sequence[int], n_rows: int) -> tuple[list[int], int]:
    """Batch sizes the ensemble actually uses, and the micro-batch of the lockstep.

    ``micro = gcd(batch sizes)``; a batch size larger than the training set is reduced to the
    largest multiple of ``micro`` that fits (at least ``micro``), so that every member makes at
    least one update per epoch. With the paper's grid and ~60,000 training rows nothing changes.

    Returns
    -------
    (list[int], int)
        Effective batch size per member, and ``micro``.
    """
    micro = math.gcd(*[int(b) for b in batch_sizes])
    if micro > n_rows:
        micro = max(1, n_rows)
    fit = max(micro, (n_rows // micro) * micro)
    return [min(int(b), fit) for b in batch_sizes], micro


def _stack(trees: Sequence) -> object:
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def _where_members(mask: jax.Array, new, old):
    """Per-member select on stacked pytrees: ``new`` where ``mask[m]`` else ``old``."""

    def pick(a, b):
        m = mask.reshape((-1,) + (1,) * (a.ndim - 1))
        return jnp.where(m, a, b)

    return jax.tree_util.tree_map(pick, new, old)


@partial(
    jax.jit,
    static_argnames=("n_micro_steps", "micro", "accumulate", "patience"),
    donate_argnums=(0,),
)
def _train_epoch(
    state: EnsembleState,
    x_train: jax.Array,
    y_train: jax.Array,
    x_val: jax.Array,
    y_val: jax.Array,
    key: jax.Array,
    epoch: jax.Array,
    learning_rates: jax.Array,
    steps_per_update: jax.Array,
    updates_per_epoch: jax.Array,
    *,
    n_micro_steps: int,
    micro: int,
    accumulate: bool,
    patience: int,
) -> tuple[EnsembleState, jax.Array]:
    """One epoch of every member: shuffled micro-batches (scan), Adam, validation, early stop."""
    n = x_train.shape[0]
    perm = jax.random.permutation(key, n)[: n_micro_steps * micro]
    xb = x_train[perm].reshape(n_micro_steps, micro, x_train.shape[1])
    yb = y_train[perm].reshape(n_micro_steps, micro)

    member_grad = jax.vmap(jax.grad(mse_loss), in_axes=(0, None, None))
    member_adam = jax.vmap(_ADAM.update)

    def apply_update(params, opt_state, grads):
        updates, opt_state = member_adam(grads, opt_state)
        params = jax.tree_util.tree_map(
            lambda p, u: p - learning_rates.reshape((-1,) + (1,) * (p.ndim - 1)) * u,
            params,
            updates,
        )
        return params, opt_state

    def step(carry, inputs):
        params, opt_state, grad_sum = carry
        i, x, y = inputs
        grads = member_grad(params, x, y)
        if not accumulate:
            params, opt_state = apply_update(params, opt_state, grads)
            return (params, opt_state, grad_sum), None
        grad_sum = jax.tree_util.tree_map(jnp.add, grad_sum, grads)
        done = (i + 1) % steps_per_update == 0
        apply = done & ((i + 1) // steps_per_update <= updates_per_epoch)
        mean_grads = jax.tree_util.tree_map(
            lambda g: g / steps_per_update.reshape((-1,) + (1,) * (g.ndim - 1)).astype(g.dtype),
            grad_sum,
        )
        new_params, new_opt = apply_update(params, opt_state, mean_grads)
        params = _where_members(apply, new_params, params)
        opt_state = _where_members(apply, new_opt, opt_state)
        grad_sum = _where_members(done, jax.tree_util.tree_map(jnp.zeros_like, grad_sum), grad_sum)
        return (params, opt_state, grad_sum), None

    carry = (state.params, state.opt_state, state.grad_sum)
    steps = jnp.arange(n_micro_steps, dtype=jnp.int32)
    (params, opt_state, grad_sum), _ = jax.lax.scan(step, carry, (steps, xb, yb))

    val_pred = jax.vmap(mlp_forward, in_axes=(0, None))(params, x_val)
    val_mse = jnp.mean((val_pred - y_val) ** 2, axis=1)
    improved = state.active & (val_mse < state.best_val_mse)
    best_params = _where_members(improved, params, state.best_params)
    best_val = jnp.where(improved, val_mse, state.best_val_mse)
    best_epoch = jnp.where(improved, epoch, state.best_epoch)
    epochs_trained = jnp.where(state.active, epoch + 1, state.epochs_trained)
    active = state.active & (epoch - best_epoch < patience)
    new_state = EnsembleState(
        params, opt_state, grad_sum, best_params, best_val, best_epoch, epochs_trained, active
    )
    return new_state, active.any()


def train_ensemble(
    members: Sequence[Member],
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    seed: int,
    layer: int,
    max_epochs: int,
    patience: int,
    epoch_callback=None,
) -> EnsembleResult:
    """Train members of ONE architecture together; early stopping on validation MSE per member.

    Parameters
    ----------
    members
        Configurations sharing ``hidden_layers`` and ``units``; batch sizes and learning rates
        may differ (see the module docstring for how batch sizes share a lockstep).
    x_train, y_train, x_val, y_val
        Standardised inputs ``(n, d)`` and targets ``(n,)``; float32 is used on the device.
    seed, layer
        Determine initial weights (:func:`member_key`) and the row order of every epoch
        (:func:`epoch_key`); same inputs and seed give the same numbers.
    max_epochs, patience
        A member stops when its validation MSE has not improved for ``patience`` epochs; the
        ensemble stops when all members have stopped or after ``max_epochs``. Each member keeps
        the parameters of its best validation epoch.
    epoch_callback
        Optional ``f(epoch, n_active)`` called after every epoch.

    Returns
    -------
    EnsembleResult
    """
    shapes = {m.shape for m in members}
    if len(shapes) != 1:
        raise ValueError(f"an ensemble needs one architecture, got {sorted(shapes)}")
    hidden_layers, units = shapes.pop()
    n_train, n_inputs = x_train.shape
    if n_train == 0:
        raise ValueError("no training rows")
    if len(x_val) == 0:
        raise ValueError("no validation rows for early stopping")

    batch_sizes, micro = effective_batch_sizes([m.batch_size for m in members], n_train)
    steps_per_update = np.array([b // micro for b in batch_sizes], dtype=np.int32)
    updates_per_epoch = np.array([n_train // b for b in batch_sizes], dtype=np.int32)
    n_micro_steps = int(max(steps_per_update * updates_per_epoch))
    accumulate = bool(np.any(steps_per_update != 1))

    params = _stack([init_mlp_params(member_key(seed, layer, m), n_inputs, hidden_layers, units)
                     for m in members])
    opt_state = jax.vmap(_ADAM.init)(params)
    n_members = len(members)
    state = EnsembleState(
        params=params,
        opt_state=opt_state,
        grad_sum=jax.tree_util.tree_map(jnp.zeros_like, params),
        best_params=jax.tree_util.tree_map(jnp.copy, params),
        best_val_mse=jnp.full((n_members,), jnp.inf, jnp.float32),
        best_epoch=jnp.full((n_members,), -1, jnp.int32),
        epochs_trained=jnp.zeros((n_members,), jnp.int32),
        active=jnp.ones((n_members,), bool),
    )
    xt = jnp.asarray(x_train, jnp.float32)
    yt = jnp.asarray(y_train, jnp.float32)
    xv = jnp.asarray(x_val, jnp.float32)
    yv = jnp.asarray(y_val, jnp.float32)
    lrs = jnp.asarray([m.learning_rate for m in members], jnp.float32)
    spu = jnp.asarray(steps_per_update)
    upe = jnp.asarray(updates_per_epoch)

    import time

    epoch_seconds: list[float] = []
    for epoch in range(max_epochs):
        start = time.perf_counter()
        state, any_active = _train_epoch(
            state, xt, yt, xv, yv, epoch_key(seed, layer, epoch), jnp.int32(epoch), lrs, spu,
            upe, n_micro_steps=n_micro_steps, micro=micro, accumulate=accumulate,
            patience=patience,
        )
        still_running = bool(any_active)
        epoch_seconds.append(time.perf_counter() - start)
        if epoch_callback is not None:
            epoch_callback(epoch, int(np.asarray(state.active).sum()))
        if not still_running:
            break

    best = jax.tree_util.tree_map(np.asarray, state.best_params)
    best_params = [[(w[i], b[i]) for w, b in best] for i in range(n_members)]
    return EnsembleResult(
        best_params=best_params,
        best_val_mse=np.asarray(state.best_val_mse, dtype=np.float64),
        best_epoch=np.asarray(state.best_epoch),
        epochs_trained=np.asarray(state.epochs_trained),
        epoch_seconds=epoch_seconds,
    )
