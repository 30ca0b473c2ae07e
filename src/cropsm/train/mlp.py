"""Feed-forward networks for one soil layer, trained many configurations at a time (section 2a).

The paper trains one deep feed-forward network per soil layer (ReLU hidden layers, a linear
output, mean squared error, Adam) and tunes batch size, learning rate, hidden layers and units by
grid search. Here every configuration of the grid that shares an architecture is trained at the
same time as one *ensemble*: the members' parameters are stacked along a leading axis and the
forward/backward pass is vectorised over them with :func:`jax.vmap`, the minibatches of an epoch
run inside :func:`jax.lax.fori_loop`, and an epoch is two :func:`jax.jit`-compiled calls: the
training steps (:func:`_train_steps`, on training rows padded to a count that soil layers of
about the same size share, :func:`padded_row_count`, so that they share the program) and the
validation loss with the early-stopping bookkeeping (:func:`_validate`).

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
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cropsm.train.numpy_net import NumpyParams, Scaler, fit_scaler, numpy_forward

Params = list[tuple[jax.Array, jax.Array]]
"""Weights ``W`` of shape ``(n_in, n_out)`` and biases ``b`` of shape ``(n_out,)`` per layer."""

__all__ = [
    "EnsembleResult",
    "EnsembleTrainer",
    "Member",
    "NumpyParams",
    "Scaler",
    "epoch_key",
    "fit_scaler",
    "init_mlp_params",
    "member_key",
    "mlp_forward",
    "mse_loss",
    "numpy_forward",
    "train_ensemble",
]


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


def bounded_output(raw: jax.Array, bounds: jax.Array | None) -> jax.Array:
    """The network's output, bounded between a lower and an upper value per row.

    ``y = lo + (hi - lo) sigmoid(z)`` with ``z`` the linear output of :func:`mlp_forward` and
    ``bounds[:, 0] = lo``, ``bounds[:, 1] = hi`` in standardised target units (the physical range
    0 ... porosity of the row's soil, see :mod:`cropsm.train.bounds`). ``bounds=None`` is the
    paper's linear output ``y = z``. A third column is the anchored output's offset
    ``logit(b)`` (:func:`cropsm.train.bounds.anchor_logit`): ``y = lo + (hi - lo)
    sigmoid(z + logit(b))``.
    """
    if bounds is None:
        return raw
    lower, upper = bounds[..., 0], bounds[..., 1]
    if bounds.shape[-1] > 2:
        raw = raw + bounds[..., 2]
    return lower + (upper - lower) * jax.nn.sigmoid(raw)


def mse_loss(
    params: Params, x: jax.Array, y: jax.Array, bounds: jax.Array | None = None
) -> jax.Array:
    """Mean squared error ``(1/n) sum_i (f(x_i) - y_i)^2``, the paper's loss (section 2a), with
    ``f`` the (optionally bounded, :func:`bounded_output`) network output."""
    return jnp.mean((bounded_output(mlp_forward(params, x), bounds) - y) ** 2)


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


def member_key(seed: int, layer: int, member: Member, ensemble_member: int = 0) -> jax.Array:
    """Initialisation key of one configuration: depends on seed, soil layer, configuration and
    deep-ensemble member only.

    ``fold_in(fold_in(key(seed), layer), crc32("L-U-B-lr"))`` for ensemble member 0 (the grid
    search's network), so a configuration gets the same initial weights whichever ensemble it
    is trained in; member ``m >= 1`` folds in ``2_000_003 + m`` on top.
    """
    tag = f"{member.hidden_layers}-{member.units}-{member.batch_size}-{member.learning_rate!r}"
    code = zlib.crc32(tag.encode()) & 0x7FFFFFFF
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), layer), code)
    if ensemble_member:
        key = jax.random.fold_in(key, 2_000_003 + int(ensemble_member))
    return key


def epoch_key(seed: int, layer: int, epoch: int) -> jax.Array:
    """Shuffling key of one epoch, shared by every configuration of a layer."""
    base = jax.random.fold_in(jax.random.key(seed), 1_000_003 + layer)
    return jax.random.fold_in(base, epoch)


class EnsembleState(NamedTuple):
    """Everything that changes during training, stacked over the M members (leading axis)."""

    params: Params
    opt_state: optax.OptState
    best_params: Params
    best_val_mse: jax.Array  # (M,) float32, standardised target units
    best_epoch: jax.Array  # (M,) int32, 0-based epoch of best_params; -1 = initial params
    epochs_trained: jax.Array  # (M,) int32
    active: jax.Array  # (M,) bool: not yet stopped early


class EnsembleResult(NamedTuple):
    """Outcome of :func:`train_ensemble`, one entry per member in the order given."""

    best_params: list[NumpyParams]
    best_val_mse: np.ndarray  # standardised target units, float64
    best_epoch: np.ndarray  # 0-based epoch of the kept parameters (-1: initial parameters)
    epochs_trained: np.ndarray
    epoch_seconds: list[float]  # wall time of every ensemble epoch, compilation included
    member_epochs: int  # sum over epochs of the ensemble width that was computed


_ADAM = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-7)
"""Adam moments without the step size; each member multiplies by its own learning rate.

``eps = 1e-7`` as in TensorFlow/Keras, which the paper used.
"""


def noisy_inputs(x: jax.Array, key: jax.Array, sd: float) -> jax.Array:
    """Training inputs with Gaussian input noise: ``x + sd * eps``, ``eps ~ N(0, 1)`` per row,
    input and epoch (``x`` standardised, so ``sd`` is in units of each input's training SD).

    A regulariser (Bishop 1995, "Training with noise is equivalent to Tikhonov
    regularization"): the network cannot rely on exact input values, e.g. the exact location
    and elevation that single out a training station. ``sd = 0`` returns ``x`` unchanged.
    Every column gets noise, a constant one too (an anchored layer's bucket store, silenced to
    0): there the noise carries nothing about the target and acts as noise on the first
    layer's units; the column's weights are zeroed after training, which is the same as
    feeding its training value 0. Measured on USCRN new sites (where ``wb_sub_bare`` is
    constant), leaving constant columns without noise lowered the ensemble's R2 by 0.01-0.05
    on the mean of three split draws.
    """
    if sd <= 0.0:
        return x
    return x + sd * jax.random.normal(jax.random.fold_in(key, 0x5EED), x.shape, x.dtype)


def decayed_step(w, b, update_w, update_b, lr_w, lr_b, weight_decay: float):
    """One Adam step with decoupled weight decay (AdamW; Loshchilov & Hutter 2019):
    ``W <- W - lr (adam(g_W) + lambda W)``, ``b <- b - lr adam(g_b)`` (biases not decayed).

    ``lambda`` is per step, relative to the learning rate; the weights shrink towards 0 unless
    the data pull them away, a regulariser against fitting what singles out a training station.
    """
    return w - lr_w * (update_w + weight_decay * w), b - lr_b * update_b


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
    micro = max(1, min(micro, n_rows))
    fit = max(micro, (n_rows // micro) * micro)
    return [min(int(b), fit) for b in batch_sizes], micro


@partial(jax.jit, static_argnums=(1,))
def _split_member_keys(keys: jax.Array, n_layers: int) -> tuple[jax.Array, ...]:
    """``jax.random.split(key, n_layers)`` of every member's key, one stack per layer."""
    split = jax.vmap(lambda key: jax.random.split(key, n_layers))(keys)
    return tuple(split[:, i] for i in range(n_layers))


@partial(jax.jit, static_argnums=(1, 2))
def _glorot_members(keys: jax.Array, fan_in: int, fan_out: int) -> jax.Array:
    """The Glorot-uniform weights of :func:`init_mlp_params` for one layer of every member."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return jax.vmap(
        lambda key: jax.random.uniform(key, (fan_in, fan_out), jnp.float32, -limit, limit)
    )(keys)


def init_members(keys: jax.Array, n_inputs: int, hidden_layers: int, units: int) -> Params:
    """:func:`init_mlp_params` for a stack of keys: parameters stacked over members.

    The same numbers as ``vmap(init_mlp_params)``, compiled per weight-matrix shape instead of
    per architecture, so the programs recur across architectures, soil layers and experiments
    (the 12 architectures of the paper's grid share 3 + 12 small programs; compiling one
    program per architecture cost 1.3-1.5 s each, per layer). Biases are zeros made on the
    host (no program).
    """
    sizes = layer_sizes(n_inputs, hidden_layers, units)
    layer_keys = _split_member_keys(keys, len(sizes) - 1)
    n_members = keys.shape[0]
    return [
        (
            _glorot_members(layer_key, fan_in, fan_out),
            jnp.asarray(np.zeros((n_members, fan_out), np.float32)),
        )
        for layer_key, fan_in, fan_out in zip(layer_keys, sizes[:-1], sizes[1:], strict=True)
    ]


def host_zeros_like(tree):
    """Zeros shaped like every leaf of ``tree`` (arrays or shape/dtype structs), made on the
    host and put on the device: no compiled program per shape, as ``jnp.zeros_like`` has."""
    return jax.tree_util.tree_map(lambda a: jnp.asarray(np.zeros(a.shape, a.dtype)), tree)


def adam_init_members(params: Params) -> optax.OptState:
    """``vmap(adam.init)(params)`` -- Adam's step count and moments, all zeros -- made on the
    host (:func:`host_zeros_like` of the state's structure, traced without compiling)."""
    return host_zeros_like(jax.eval_shape(jax.vmap(_ADAM.init), params))


def host_copy(tree):
    """A copy of every leaf in new device buffers, through the host (no program per shape)."""
    return jax.tree_util.tree_map(lambda a: jnp.asarray(np.array(a)), tree)


def host_take(tree, rows: np.ndarray):
    """Rows ``rows`` of every leaf's leading (member) axis, indexed on the host (a gather
    compiled per leaf shape cost ~60 ms each, on every compaction)."""
    return jax.tree_util.tree_map(lambda a: jnp.asarray(np.asarray(a)[rows]), tree)


def _per_member(mask: jax.Array, leaf: jax.Array) -> jax.Array:
    """Reshape a ``(M,)`` vector to broadcast against a stacked leaf ``(M, ...)``."""
    return mask.reshape((-1,) + (1,) * (leaf.ndim - 1))


def _where_members(mask: jax.Array, new, old):
    """Per-member select on stacked pytrees: ``new`` where ``mask[m]`` else ``old``."""
    return jax.tree_util.tree_map(lambda a, b: jnp.where(_per_member(mask, a), a, b), new, old)


def padded_row_count(n_rows: int) -> int:
    """Rows the training arrays are padded to: ``n`` rounded up to a multiple of
    ``2^(floor(log2 n) - 5)`` (at most ~3 % more rows, none below 64).

    The compiled training programs depend on the row count, so soil layers with about the same
    number of rows (the paper preset's five layers have 89,925-90,079) pad to one count and share
    their programs instead of compiling their own (:class:`EnsembleTrainer`). The padding rows
    are never trained on: :func:`valid_first_permutation` puts them last and
    :func:`_train_steps` runs only the micro-steps the valid rows fill.
    """
    n_rows = int(n_rows)
    quantum = 1 << max(0, n_rows.bit_length() - 6)
    return -(-n_rows // quantum) * quantum


def permutation_rounds(n_rows: int) -> int:
    """Sort rounds :func:`jax.random.permutation` uses for ``n_rows`` elements
    (``ceil(3 ln n / ln(2^32 - 1))``, JAX's ``_shuffle``)."""
    return int(np.ceil(3 * np.log(max(1, int(n_rows))) / np.log(np.iinfo(np.uint32).max)))


def valid_first_permutation(
    key: jax.Array, n_valid: jax.Array, n_rows: int, n_rounds: int
) -> jax.Array:
    """A permutation of ``range(n_rows)`` whose first ``n_valid`` entries are
    ``jax.random.permutation(key, n_valid)``, the padding rows ``n_valid...n_rows-1`` last.

    JAX shuffles by ``n_rounds`` stable sorts of the indices on fresh random 32-bit keys; the
    keys of the first ``n_valid`` positions are the same whatever the array length (threefry
    bits are counter-based), and a padding position gets the largest key, so a stable sort
    keeps it behind every valid row. ``n_valid`` may be traced: one compiled program serves
    every row count padded to ``n_rows`` (:func:`padded_row_count`); ``n_rounds`` is
    :func:`permutation_rounds` of the valid count.
    """
    position = jnp.arange(n_rows, dtype=jnp.int32)
    padding = position >= n_valid
    order = position
    for _ in range(n_rounds):
        key, subkey = jax.random.split(key)
        sort_keys = jax.random.bits(subkey, (n_rows,), jnp.uint32)
        sort_keys = jnp.where(padding, jnp.uint32(np.iinfo(np.uint32).max), sort_keys)
        _, order = jax.lax.sort_key_val(sort_keys, order, 0, is_stable=True)
    return order


@partial(
    jax.jit,
    static_argnames=(
        "micro",
        "accumulate",
        "n_rounds",
        "input_noise",
        "weight_decay",
    ),
    donate_argnums=(0, 1),
)
def _train_steps(
    params: Params,
    opt_state: optax.OptState,
    x_train: jax.Array,
    y_train: jax.Array,
    bounds_train: jax.Array | None,
    key: jax.Array,
    n_valid: jax.Array,
    learning_rates: jax.Array,
    steps_per_update: jax.Array,
    updates_per_epoch: jax.Array,
    *,
    micro: int,
    accumulate: bool,
    n_rounds: int,
    input_noise: float = 0.0,
    weight_decay: float = 0.0,
) -> tuple[Params, optax.OptState]:
    """The training steps of one epoch of every member: shuffled micro-batches (a loop), Adam.

    The first ``n_valid`` rows of the (padded, :func:`padded_row_count`) training arrays are
    shuffled with :func:`valid_first_permutation`, i.e. in the order of
    ``jax.random.permutation(key, n_valid)``. Member ``m`` with ``k_m = steps_per_update[m]``
    applies after micro-steps ``i`` with ``(i + 1) % k_m == 0`` the update
    ``theta <- theta - lr_m * adam((1/k_m) sum g_i)``, for the first ``updates_per_epoch[m]``
    such steps (the last incomplete batch is dropped; steps on padding rows update nothing).
    ``input_noise > 0`` adds :func:`noisy_inputs` to the epoch's training inputs;
    ``weight_decay > 0`` makes the step :func:`decayed_step`.
    """
    n_micro_steps = x_train.shape[0] // micro  # the most the (padded) rows hold
    perm = valid_first_permutation(key, n_valid, x_train.shape[0], n_rounds)
    perm = perm[: n_micro_steps * micro]
    xb = noisy_inputs(x_train[perm], key, input_noise)
    xb = xb.reshape(n_micro_steps, micro, x_train.shape[1])
    yb = y_train[perm].reshape(n_micro_steps, micro)
    bb = (
        None
        if bounds_train is None
        else bounds_train[perm].reshape(n_micro_steps, micro, bounds_train.shape[-1])
    )

    member_grad = jax.vmap(jax.grad(mse_loss), in_axes=(0, None, None, None))
    member_adam = jax.vmap(_ADAM.update)

    def apply_update(params, opt_state, grads):
        updates, opt_state = member_adam(grads, opt_state)
        if weight_decay > 0.0:
            params = [
                decayed_step(w, b, uw, ub, _per_member(learning_rates, w),
                             _per_member(learning_rates, b), weight_decay)
                for (w, b), (uw, ub) in zip(params, updates, strict=True)
            ]  # fmt: skip
            return params, opt_state
        params = jax.tree_util.tree_map(
            lambda p, u: p - _per_member(learning_rates, p) * u, params, updates
        )
        return params, opt_state

    def step(i, carry):
        params, opt_state, grad_sum = carry
        x, y, b = (
            None if a is None else jax.lax.dynamic_index_in_dim(a, i, keepdims=False)
            for a in (xb, yb, bb)
        )
        grads = member_grad(params, x, y, b)
        if not accumulate:
            params, opt_state = apply_update(params, opt_state, grads)
            return params, opt_state, grad_sum
        grad_sum = jax.tree_util.tree_map(jnp.add, grad_sum, grads)
        done = (i + 1) % steps_per_update == 0
        apply = done & ((i + 1) // steps_per_update <= updates_per_epoch)
        scale = 1.0 / steps_per_update.astype(jnp.float32)
        mean_grads = jax.tree_util.tree_map(lambda g: g * _per_member(scale, g), grad_sum)
        new_params, new_opt = apply_update(params, opt_state, mean_grads)
        params = _where_members(apply, new_params, params)
        opt_state = _where_members(apply, new_opt, opt_state)
        grad_sum = _where_members(done, jax.tree_util.tree_map(jnp.zeros_like, grad_sum), grad_sum)
        return params, opt_state, grad_sum

    grad_sum = jax.tree_util.tree_map(jnp.zeros_like, params) if accumulate else ()
    # as many micro-steps as the valid rows need (a traced count): the steps on padding rows
    # are not run, and the loop's body is the same whatever the count
    n_steps = jnp.max(steps_per_update * updates_per_epoch)
    params, opt_state, _ = jax.lax.fori_loop(0, n_steps, step, (params, opt_state, grad_sum))
    return params, opt_state


@partial(jax.jit, static_argnames=("patience",), donate_argnums=(0,))
def _validate(
    state: EnsembleState,
    x_val: jax.Array,
    y_val: jax.Array,
    bounds_val: jax.Array | None,
    epoch: jax.Array,
    *,
    patience: int,
) -> EnsembleState:
    """Validation MSE of every member after an epoch, best parameters and early stopping.

    A program of its own (forward passes only, quick to compile), so that the training steps'
    program does not depend on the validation row count.
    """
    params = state.params
    val_raw = jax.vmap(mlp_forward, in_axes=(0, None))(params, x_val)
    val_pred = bounded_output(val_raw, bounds_val)
    val_mse = jnp.mean((val_pred - y_val) ** 2, axis=1)
    improved = state.active & (val_mse < state.best_val_mse)
    best_epoch = jnp.where(improved, epoch, state.best_epoch)
    return EnsembleState(
        params=params,
        opt_state=state.opt_state,
        best_params=_where_members(improved, params, state.best_params),
        best_val_mse=jnp.where(improved, val_mse, state.best_val_mse),
        best_epoch=best_epoch,
        epochs_trained=jnp.where(state.active, epoch + 1, state.epochs_trained),
        active=state.active & (epoch - best_epoch < patience),
    )


def release_training_programs(*, keep_training_steps: bool) -> None:
    """Drop compiled training programs a later soil layer cannot use.

    The validation programs (:func:`_validate`) depend on a layer's own validation row count
    and the bootstrap members' epochs on its selected network, so they are dropped; the
    training steps' programs (:func:`_train_steps`) are kept for a next layer with the same
    input count, whose rows pad to about the same count and reuse them, and dropped otherwise
    (``keep_training_steps=False``). Each compiled program holds its machine code: on the
    paper preset the train stage's process peaked at 3.66 GB keeping every program of the five
    layers and at 3.58 GB dropping these (one run each).
    """
    from cropsm.train.ensemble import _members_epoch

    _validate.clear_cache()
    _members_epoch.clear_cache()
    if not keep_training_steps:
        _train_steps.clear_cache()


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
    compact: bool = True,
    epoch_callback: Callable[[int, int], None] | None = None,
    bounds_train: np.ndarray | None = None,
    bounds_val: np.ndarray | None = None,
    input_noise: float = 0.0,
    weight_decay: float = 0.0,
) -> EnsembleResult:
    """Train configurations of ONE architecture together, early stopping per member.

    Parameters
    ----------
    members
        Configurations sharing ``hidden_layers`` and ``units``; batch sizes and learning rates
        may differ (see the module docstring for how batch sizes share a lockstep).
    x_train, y_train, x_val, y_val
        Standardised inputs ``(n, d)`` and targets ``(n,)``; computed in float32.
    seed, layer
        Determine initial weights (:func:`member_key`) and the row order of every epoch
        (:func:`epoch_key`); the same inputs and seed give the same numbers.
    max_epochs, patience
        A member stops when its validation MSE has not improved for ``patience`` epochs; the
        ensemble stops when all members have stopped or after ``max_epochs``. Each member keeps
        the parameters of its best validation epoch.
    compact
        When at most half of the members (of an ensemble of at least 4) are still training,
        continue with those only (one recompilation; the lockstep micro-batch may grow).
        Results do not depend on it.
    epoch_callback
        Optional ``f(epoch, n_active)`` called after every epoch.
    bounds_train, bounds_val
        Optional ``(n, 2)`` lower and upper bound of every row in standardised target units
        (a third column: the anchored output's offset, :func:`bounded_output`):
        the output is then :func:`bounded_output` (else linear, as in the paper).
    input_noise
        SD of the Gaussian noise added to the standardised training inputs every epoch
        (:func:`noisy_inputs`); 0: none (the paper).
    weight_decay
        Decoupled weight decay ``lambda`` (:func:`decayed_step`); 0: plain Adam (the paper).

    Returns
    -------
    EnsembleResult
    """
    trainer = EnsembleTrainer(
        members, x_train, y_train, x_val, y_val,
        seed=seed, layer=layer, patience=patience, compact=compact,
        bounds_train=bounds_train, bounds_val=bounds_val, input_noise=input_noise,
        weight_decay=weight_decay,
    )  # fmt: skip
    trainer.advance(max_epochs, epoch_callback)
    return trainer.result()


class EnsembleTrainer:
    """An ensemble being trained, which can be advanced epoch by epoch and told to stop members.

    :func:`train_ensemble` is ``advance(max_epochs)`` followed by ``result()``; the grid search
    uses the pieces to rank configurations across ensembles at fixed epochs and stop the worst
    (successive halving, :func:`cropsm.train.grid_search.run_grid_search`). Stopping a member
    keeps its best parameters so far. Same parameters and data as :func:`train_ensemble`;
    ``pad_rows=False`` trains on the training rows unpadded (the same numbers, a program of
    its own for every row count; :func:`padded_row_count`).
    """

    def __init__(
        self,
        members: Sequence[Member],
        x_train: np.ndarray,
        y_train: np.ndarray,
        x_val: np.ndarray,
        y_val: np.ndarray,
        *,
        seed: int,
        layer: int,
        patience: int,
        compact: bool = True,
        bounds_train: np.ndarray | None = None,
        bounds_val: np.ndarray | None = None,
        input_noise: float = 0.0,
        weight_decay: float = 0.0,
        pad_rows: bool = True,
    ) -> None:
        shapes = {m.shape for m in members}
        if len(shapes) != 1:
            raise ValueError(f"an ensemble needs one architecture, got {sorted(shapes)}")
        hidden_layers, units = shapes.pop()
        n_train, n_inputs = x_train.shape
        if n_train == 0:
            raise ValueError("no training rows")
        if len(x_val) == 0:
            raise ValueError("no validation rows for early stopping")
        if patience < 1:
            raise ValueError("max_epochs and patience must be at least 1")

        self.members = list(members)
        self.seed, self.layer, self.patience, self.compact = seed, layer, patience, compact
        self.input_noise = float(input_noise)
        self.weight_decay = float(weight_decay)
        self.n_train = n_train
        n_members = len(members)
        keys = jnp.stack([member_key(seed, layer, m) for m in members])
        params = init_members(keys, n_inputs, hidden_layers, units)
        self.state = EnsembleState(
            params=params,
            opt_state=adam_init_members(params),
            best_params=host_copy(params),
            best_val_mse=jnp.asarray(np.full(n_members, np.inf, np.float32)),
            best_epoch=jnp.asarray(np.full(n_members, -1, np.int32)),
            epochs_trained=jnp.asarray(np.zeros(n_members, np.int32)),
            active=jnp.asarray(np.ones(n_members, bool)),
        )
        if (bounds_train is None) != (bounds_val is None):
            raise ValueError("give bounds for both the training and the validation rows, or none")
        # Training rows padded (edge rows, never trained on) to a count that soil layers of
        # about the same size share, so that they share the compiled training steps.
        self.n_rows = padded_row_count(n_train) if pad_rows else n_train
        self.n_rounds = permutation_rounds(n_train)

        def padded(a):
            a = np.asarray(a, np.float32)
            pad = [(0, self.n_rows - n_train)] + [(0, 0)] * (a.ndim - 1)
            return jnp.asarray(np.pad(a, pad, mode="edge"))

        self.data = (
            padded(x_train),
            padded(y_train),
            jnp.asarray(x_val, jnp.float32),
            jnp.asarray(y_val, jnp.float32),
        )
        self.bounds = (
            None
            if bounds_train is None
            else (padded(bounds_train), jnp.asarray(bounds_val, jnp.float32))
        )
        self.finished: dict[int, tuple] = {}
        self.current = list(range(n_members))  # original index of each row of `state`
        self.plan = self._schedule(self.current)
        self.epoch = 0
        self.epoch_seconds: list[float] = []
        self.member_epochs = 0

    @property
    def n_active(self) -> int:
        """Members still training."""
        return int(np.asarray(self.state.active).sum())

    def best_val_mse(self) -> np.ndarray:
        """Best validation MSE so far of every member, in the order of ``members``."""
        values = np.full(len(self.members), np.inf)
        for index, outcome in self.finished.items():
            values[index] = outcome[1]
        current = np.asarray(self.state.best_val_mse, dtype=np.float64)
        values[self.current] = current
        return values

    def stop(self, indices: Sequence[int]) -> None:
        """Stop the members at these positions of ``members`` (they keep their best so far)."""
        wanted = set(indices)
        rows = [row for row, index in enumerate(self.current) if index in wanted]
        if not rows:
            return
        active = np.asarray(self.state.active).copy()
        active[rows] = False
        self.state = self.state._replace(active=jnp.asarray(active))
        self._maybe_compact(final=False)

    def advance(
        self, until_epoch: int, epoch_callback: Callable[[int, int], None] | None = None
    ) -> None:
        """Train epochs ``epoch ... until_epoch - 1`` (fewer when every member has stopped)."""
        if until_epoch < 1:
            raise ValueError("max_epochs and patience must be at least 1")
        x_train, y_train, x_val, y_val = self.data
        bounds_train, bounds_val = self.bounds or (None, None)
        while self.epoch < until_epoch and self.n_active > 0:
            start = time.perf_counter()
            params, opt_state = _train_steps(
                self.state.params, self.state.opt_state, x_train, y_train, bounds_train,
                epoch_key(self.seed, self.layer, self.epoch), jnp.int32(self.n_train),
                n_rounds=self.n_rounds, input_noise=self.input_noise,
                weight_decay=self.weight_decay, **self.plan,
            )  # fmt: skip
            self.state = _validate(
                self.state._replace(params=params, opt_state=opt_state), x_val, y_val,
                bounds_val, jnp.int32(self.epoch), patience=self.patience,
            )  # fmt: skip
            n_active = self.n_active
            self.epoch_seconds.append(time.perf_counter() - start)
            self.member_epochs += len(self.current)
            if epoch_callback is not None:
                epoch_callback(self.epoch, n_active)
            self.epoch += 1
            self._maybe_compact(final=self.epoch >= until_epoch)

    def result(self) -> EnsembleResult:
        """Every member's best parameters and history, in the order of ``members``."""
        self._collect(range(len(self.current)))
        ordered = [self.finished[i] for i in range(len(self.members))]
        return EnsembleResult(
            best_params=[o[0] for o in ordered],
            best_val_mse=np.array([o[1] for o in ordered], dtype=np.float64),
            best_epoch=np.array([o[2] for o in ordered], dtype=np.int64),
            epochs_trained=np.array([o[3] for o in ordered], dtype=np.int64),
            epoch_seconds=list(self.epoch_seconds),
            member_epochs=self.member_epochs,
        )

    def _collect(self, rows: Sequence[int]) -> None:
        best, val, best_epoch, trained = jax.device_get(
            (
                self.state.best_params,
                self.state.best_val_mse,
                self.state.best_epoch,
                self.state.epochs_trained,
            )
        )
        for row in rows:
            weights = [(np.asarray(w[row]), np.asarray(b[row])) for w, b in best]
            self.finished[self.current[row]] = (weights, val[row], best_epoch[row], trained[row])

    def _maybe_compact(self, *, final: bool) -> None:
        """Continue with the active members only, once at most half of them are active."""
        active = np.asarray(self.state.active)
        n_active = int(active.sum())
        if (
            not self.compact
            or final
            or n_active == 0
            or len(self.current) < 4
            or 2 * n_active > len(self.current)
        ):
            return
        self._collect([row for row in range(len(self.current)) if not active[row]])
        keep = np.flatnonzero(active)
        self.state = host_take(self.state, keep)
        self.current = [self.current[row] for row in keep]
        self.plan = self._schedule(self.current)

    def _schedule(self, rows: Sequence[int]) -> dict:
        batch_sizes, micro = effective_batch_sizes(
            [self.members[i].batch_size for i in rows], self.n_train
        )
        steps_per_update = np.array([b // micro for b in batch_sizes], dtype=np.int32)
        updates_per_epoch = np.array([self.n_train // b for b in batch_sizes], dtype=np.int32)
        return {
            "learning_rates": jnp.asarray(
                [self.members[i].learning_rate for i in rows], jnp.float32
            ),
            "steps_per_update": jnp.asarray(steps_per_update),
            "updates_per_epoch": jnp.asarray(updates_per_epoch),
            "micro": micro,
            "accumulate": bool(np.any(steps_per_update != 1)),
        }
