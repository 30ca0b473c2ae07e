"""Layer networks: learning, determinism, chaining, early stopping, artifacts, errors.

One small chain (2,000 rows, a 2-configuration grid, <= 40 epochs) is trained once per module
and inspected by most tests; JAX compilations are cached within the process.
"""

import json

import numpy as np
import pandas as pd
import pytest

from cropsm.features.groups import UPPER, layer_feature_names
from cropsm.train import (
    GridConfig,
    TrainConfig,
    load_models,
    make_split,
    predict_chain,
    train_layers,
    write_scatter_plots,
    write_training_outputs,
)
from cropsm.train.artifacts import PAPER_TABLE2, TABLE2_COLUMNS
from cropsm.train.mlp import Member, train_ensemble
from cropsm.train.synthetic import synthetic_station_table

N_NAN_TAIR = 17  # rows with a NaN air temperature: dropped from every layer
N_NAN_CLAY2 = 5  # rows with a NaN layer-2 clay: dropped from layer 2 and (NaN upper) below

CONFIG = TrainConfig(
    max_epochs=40,
    patience=5,
    seed=0,
    grid=GridConfig(batch_sizes=[64], learning_rates=[1e-2, 3e-3], hidden_layers=[2], units=[32]),
)


def features(layer: int) -> list[str]:
    return layer_feature_names(layer, ())


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    t = synthetic_station_table(n_stations=40, n_years=5, dates_per_year=10, seed=1)
    rng = np.random.default_rng(0)
    rows = rng.choice(len(t), N_NAN_TAIR + N_NAN_CLAY2, replace=False)
    t.loc[t.index[rows[:N_NAN_TAIR]], "tair"] = np.nan
    t.loc[t.index[rows[N_NAN_TAIR:]], "clay_l2"] = np.nan
    return t


@pytest.fixture(scope="module")
def progress_calls() -> list:
    return []


@pytest.fixture(scope="module")
def chain(table, progress_calls):
    return train_layers(table, CONFIG, features, progress=lambda *a: progress_calls.append(a))


def test_learns_a_nonlinear_function(chain):
    assert len(chain.models) == 5
    assert chain.models[0].metrics["test"]["r2"] > 0.8
    assert all(m.metrics["test"]["r2"] > 0.6 for m in chain.models)


def test_progress_reports_every_ensemble(chain, progress_calls):
    assert progress_calls[-1] == ("train networks", 5, 5)


def test_nan_rows_dropped_and_counted(chain):
    counts = chain.row_counts
    assert counts.loc[1, "observed"] == 2000
    assert counts.loc[1, "dropped_nan"] == N_NAN_TAIR
    assert counts.loc[2, "dropped_nan"] == N_NAN_TAIR + N_NAN_CLAY2
    assert counts.loc[3, "dropped_nan"] == N_NAN_TAIR + N_NAN_CLAY2  # NaN upper prediction
    for k in range(1, 6):
        used = counts.loc[k, ["train", "validation", "test"]].sum()
        assert used == counts.loc[k, "observed"] - counts.loc[k, "dropped_nan"]


def test_same_split_for_every_layer(chain, table):
    expected = make_split(table, "random", CONFIG.seed, 0.3, 0.1)
    pd.testing.assert_series_equal(chain.split, expected)
    for k in range(2, 6):
        rows = chain.upper_inputs[k].index
        assert set(chain.split[rows]) == {"train", "validation", "test"}


def test_chaining_uses_predictions_not_observations(chain, table):
    upper = chain.upper_inputs[2]
    layer1_prediction = predict_chain(chain.models[:1], table).loc[upper.index, "sm_pred_l1"]
    np.testing.assert_array_equal(upper.to_numpy(), layer1_prediction.to_numpy())
    assert not np.allclose(upper.to_numpy(), table.loc[upper.index, "sm_l1"].to_numpy())
    assert chain.models[1].feature_names[-1] == UPPER
    upper3 = chain.upper_inputs[3]
    layer2_prediction = chain.predict(table).loc[upper3.index, "sm_pred_l2"]
    np.testing.assert_array_equal(upper3.to_numpy(), layer2_prediction.to_numpy())


def test_deterministic(chain, table):
    again = train_layers(table, CONFIG, features, n_layers=2)
    pd.testing.assert_frame_equal(
        again.grid_search, chain.grid_search[chain.grid_search["layer"] <= 2]
    )
    for a, b in zip(again.models, chain.models[:2], strict=True):
        for (wa, ba), (wb, bb) in zip(a.weights, b.weights, strict=True):
            np.testing.assert_array_equal(wa, wb)
            np.testing.assert_array_equal(ba, bb)
    pd.testing.assert_frame_equal(again.predict(table), predict_chain(chain.models[:2], table))


def test_grid_search_table(chain):
    grid = chain.grid_search
    assert list(grid.columns[:5]) == [
        "layer",
        "hidden_layers",
        "units",
        "batch_size",
        "learning_rate",
    ]
    assert {"validation_mse", "epochs_trained", "selected"} <= set(grid.columns)
    assert len(grid) == 5 * 2
    assert (grid.groupby("layer")["selected"].sum() == 1).all()
    for k, rows in grid.groupby("layer"):
        chosen = rows.loc[rows["selected"]].iloc[0]
        assert chosen["validation_mse"] == rows["validation_mse"].min()
        assert chain.models[k - 1].hyperparameters["learning_rate"] == chosen["learning_rate"]
    assert (grid["epochs_trained"] <= CONFIG.max_epochs).all()


def test_artifacts_round_trip(chain, table, tmp_path):
    paths = write_training_outputs(chain, table, tmp_path)
    for k in range(1, 6):
        assert (tmp_path / "models" / f"layer{k}" / "weights.npz").is_file()
        description = json.loads((tmp_path / "models" / f"layer{k}" / "model.json").read_text())
        assert {"jax", "optax", "numpy", "cropsm"} <= set(description["versions"])
        assert description["feature_names"] == list(chain.models[k - 1].feature_names)
    loaded = load_models(tmp_path)
    pd.testing.assert_frame_equal(predict_chain(loaded, table), chain.predict(table))
    assert loaded[0].hyperparameters == chain.models[0].hyperparameters

    metrics = json.loads(paths["metrics"].read_text())
    assert list(metrics) == ["split", "layer1", "layer2", "layer3", "layer4", "layer5"]
    assert metrics["split"] == "random"
    for k in range(1, 6):
        assert list(metrics[f"layer{k}"]) == ["train", "validation", "test"]
        for part in metrics[f"layer{k}"].values():
            assert list(part) == ["r2", "rmse", "ubrmse", "bias", "r", "n"]

    table2 = pd.read_csv(paths["table2"])
    assert list(table2.columns) == list(TABLE2_COLUMNS)
    np.testing.assert_allclose(table2["paper_r2_train"], PAPER_TABLE2["r2_train"])
    np.testing.assert_allclose(table2["paper_r2_test"], PAPER_TABLE2["r2_test"])
    assert table2.loc[0, "r2_test"] == pytest.approx(chain.models[0].metrics["test"]["r2"])

    grid = pd.read_csv(paths["grid_search"])
    assert grid["layer"].tolist() == chain.grid_search["layer"].tolist()
    splits = pd.read_csv(paths["splits"])
    assert list(splits.columns) == ["station_id", "date", "split"]
    assert len(splits) == len(table)


def test_scatter_plots(chain, table, tmp_path):
    paths = write_scatter_plots(chain, table, tmp_path / "figures")
    assert [p.name for p in paths] == ["scatter_all_layers.png"]  # five layers, one figure
    assert all(p.stat().st_size > 1000 for p in paths)


def test_layer_without_observations_is_an_error(table):
    no_layer3 = table.assign(sm_l3=np.nan)
    with pytest.raises(ValueError, match="layer 3"):
        train_layers(no_layer3, CONFIG, features)


def small_problem():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((256, 4))
    y = np.tanh(x[:, 0]) + 0.2 * x[:, 1]
    return x[:200], y[:200], x[200:], y[200:]


# Same architecture, data shapes and patience in the next two tests: one compilation serves both.
SINGLE = Member(1, 8, 64, 5e-3)
PATIENCE = 3


def test_early_stopping_stops_before_max_epochs():
    result = train_ensemble(
        [SINGLE], *small_problem(), seed=3, layer=2, max_epochs=1000, patience=PATIENCE
    )
    assert result.epochs_trained[0] < 1000
    assert result.epochs_trained[0] == result.best_epoch[0] + 1 + PATIENCE
    assert len(result.epoch_seconds) == result.epochs_trained[0]


def test_lockstep_batch_sizes_match_separate_training():
    """A member trained among other batch sizes (gradient accumulation) matches it alone."""
    kwargs = dict(seed=3, layer=2, max_epochs=3, patience=PATIENCE)
    members = [Member(1, 8, 16, 5e-3), SINGLE, Member(1, 8, 32, 1e-2)]
    together = train_ensemble(members, *small_problem(), **kwargs)
    alone = train_ensemble([SINGLE], *small_problem(), **kwargs)
    assert together.best_val_mse[1] == pytest.approx(alone.best_val_mse[0], rel=1e-4)
    np.testing.assert_allclose(together.best_params[1][0][0], alone.best_params[0][0][0], atol=1e-5)
    assert together.best_val_mse[0] != together.best_val_mse[1]


def test_input_noise_shrinks_the_fit_and_is_reproducible():
    import jax

    from cropsm.train.mlp import noisy_inputs
    from cropsm.train.numpy_net import numpy_forward

    x = jax.numpy.zeros((4000, 3))
    key = jax.random.key(0)
    assert noisy_inputs(x, key, 0.0) is x  # 0: the paper's training, untouched
    eps = np.asarray(noisy_inputs(x, key, 0.5))
    assert abs(eps.mean()) < 0.03 and 0.48 < eps.std() < 0.52
    np.testing.assert_array_equal(eps, noisy_inputs(x, key, 0.5))
    assert not np.array_equal(eps, noisy_inputs(x, jax.random.key(1), 0.5))
    # noise of 1 SD on every input: errors in the variables attenuate the fitted response
    # (a linear slope would halve); same seed and noise, same numbers
    kwargs = dict(seed=3, layer=2, max_epochs=40, patience=40)
    x_train, y_train, x_val, y_val = small_problem()
    plain = train_ensemble([SINGLE], x_train, y_train, x_val, y_val, **kwargs)
    noisy = train_ensemble([SINGLE], x_train, y_train, x_val, y_val, input_noise=1.0, **kwargs)
    again = train_ensemble([SINGLE], x_train, y_train, x_val, y_val, input_noise=1.0, **kwargs)
    np.testing.assert_array_equal(noisy.best_params[0][0][0], again.best_params[0][0][0])
    spread_plain = numpy_forward(plain.best_params[0], x_val).std()
    spread_noisy = numpy_forward(noisy.best_params[0], x_val).std()
    assert spread_noisy < 0.65 * spread_plain  # measured 0.35 vs 0.68
    assert plain.best_val_mse[0] < noisy.best_val_mse[0]  # clean data: noise only costs here


def test_weight_decay_shrinks_the_weights_not_the_biases():
    from cropsm.train.mlp import decayed_step

    w, b = np.full((2, 3), 2.0), np.full(3, 2.0)
    new_w, new_b = decayed_step(w, b, np.zeros_like(w), np.zeros_like(b), 0.1, 0.1, 0.5)
    np.testing.assert_allclose(new_w, 2.0 - 0.1 * 0.5 * 2.0)  # W - lr lambda W
    np.testing.assert_array_equal(new_b, b)
    kwargs = dict(seed=3, layer=2, max_epochs=40, patience=40)
    problem = small_problem()
    plain = train_ensemble([SINGLE], *problem, **kwargs)
    decayed = train_ensemble([SINGLE], *problem, weight_decay=1.0, **kwargs)
    again = train_ensemble([SINGLE], *problem, weight_decay=1.0, **kwargs)
    np.testing.assert_array_equal(decayed.best_params[0][0][0], again.best_params[0][0][0])

    def norm(params):
        return sum(float(np.sum(np.asarray(w) ** 2)) for w, _ in params)

    assert norm(decayed.best_params[0]) < 0.6 * norm(plain.best_params[0])  # measured 2.9 vs 6.3


def test_groups_off_removes_features(table, monkeypatch):
    """``groups_off`` reaches the feature lists (grid search replaced by a stub: no training)."""
    import cropsm.train.grid_search as grid_search

    seen = {}

    def stub(x_train, y_train, x_val, y_val, grid, **kwargs):
        seen[kwargs["layer"]] = x_train.shape[1]
        n = x_train.shape[1]
        weights = [(np.zeros((n, 1), np.float32), np.zeros(1, np.float32))]
        selected = {"hidden_layers": 0, "units": 0, "batch_size": 1, "learning_rate": 0.1}
        frame = pd.DataFrame([{**selected, "selected": True}])
        return grid_search.GridSearchResult(frame, selected, weights, 0.0, 0)

    monkeypatch.setattr(grid_search, "run_grid_search", stub)
    off = ("wind", "pattern")
    result = train_layers(table, CONFIG, groups_off=off, n_layers=2)
    names = result.models[0].feature_names
    assert "wind" not in names and not any(n.startswith("pattern_") for n in names)
    assert names == tuple(layer_feature_names(1, off))
    assert result.models[1].feature_names == tuple(layer_feature_names(2, off))
    assert seen == {1: len(names), 2: len(names) + 1}


def test_parallel_ensembles_give_the_same_numbers():
    from cropsm.train.grid_search import run_grid_search

    grid = GridConfig(batch_sizes=[64], learning_rates=[5e-3], hidden_layers=[1], units=[8, 4])
    kwargs = dict(seed=3, layer=2, max_epochs=3, patience=PATIENCE)
    one = run_grid_search(*small_problem(), grid, parallel=1, **kwargs)
    two = run_grid_search(*small_problem(), grid, parallel=2, **kwargs)
    pd.testing.assert_frame_equal(one.results, two.results)
    assert one.results["units"].tolist() == [8, 4]  # grid order, whatever finished first


def test_trainer_resumed_in_steps_equals_one_run():
    """Advancing an ensemble 2 + 3 epochs gives exactly what 5 epochs in one go give."""
    from cropsm.train.mlp import EnsembleTrainer

    members = [Member(1, 8, 16, 5e-3), SINGLE]
    kwargs = dict(seed=3, layer=2, patience=PATIENCE)
    whole = EnsembleTrainer(members, *small_problem(), **kwargs)
    whole.advance(5)
    steps = EnsembleTrainer(members, *small_problem(), **kwargs)
    steps.advance(2)
    steps.advance(5)
    a, b = whole.result(), steps.result()
    np.testing.assert_array_equal(a.best_val_mse, b.best_val_mse)
    np.testing.assert_array_equal(a.epochs_trained, b.epochs_trained)
    np.testing.assert_array_equal(a.best_params[1][0][0], b.best_params[1][0][0])


def test_successive_halving_keeps_the_best_share():
    from cropsm.train.grid_search import successive_halving_losers

    labels = ["a", "b", "c", "d", "e", "f", "g"]
    mse = [0.5, 0.1, np.nan, 0.3, 0.1, 0.9, 0.2]
    # ceil(7 / 3) = 3 kept: b and e (0.1, tie kept in grid order) and g (0.2); NaN ranks last.
    assert successive_halving_losers(mse, 1 / 3, labels) == ["a", "c", "d", "f"]
    assert successive_halving_losers(mse, 1.0, labels) == []
    assert successive_halving_losers([0.4], 1 / 3, ["only"]) == []
    with pytest.raises(ValueError, match="keep fraction"):
        successive_halving_losers(mse, 0.0, labels)


def test_grid_search_with_pruning_stops_the_worst_at_each_rung():
    from cropsm.train.grid_search import run_grid_search

    grid = GridConfig(
        batch_sizes=[32, 64], learning_rates=[5e-3, 5e-4, 5e-5], hidden_layers=[1], units=[8, 4]
    )  # 12 configurations, 2 ensembles
    kwargs = dict(seed=3, layer=2, max_epochs=8, patience=100)
    full = run_grid_search(*small_problem(), grid, **kwargs).results
    pruned = run_grid_search(
        *small_problem(), grid, prune_at_epochs=[2, 4], prune_keep_fraction=0.5, **kwargs
    ).results
    assert (full["pruned_at_epoch"] == 0).all() and (full["epochs_trained"] == 8).all()
    # 12 -> 6 go on after epoch 2 -> 3 after epoch 4.
    assert (pruned["pruned_at_epoch"] == 2).sum() == 6
    assert (pruned["pruned_at_epoch"] == 4).sum() == 3
    assert (pruned.loc[pruned["pruned_at_epoch"] == 0, "epochs_trained"] == 8).all()
    stopped = pruned["pruned_at_epoch"] > 0
    assert (pruned.loc[stopped, "epochs_trained"] == pruned.loc[stopped, "pruned_at_epoch"]).all()
    # Survivors trained exactly like in the exhaustive search (pruning changes nobody else).
    survivors = ~stopped
    np.testing.assert_allclose(
        pruned.loc[survivors, "validation_mse"], full.loc[survivors, "validation_mse"], rtol=1e-5
    )
    assert pruned["selected"].sum() == 1
    assert pruned.loc[pruned["selected"], "validation_mse"].item() == pruned["validation_mse"].min()


def test_selection_tolerance_prefers_the_smallest_near_best_network():
    from cropsm.train.grid_search import run_grid_search, select_configuration

    mse = [0.100, 0.102, 0.130, np.nan, 0.1005]
    weights = [900, 300, 50, 10, 300]
    assert select_configuration(mse, weights) == 0  # the paper's rule
    assert select_configuration(mse, weights, 0.01) == 4  # 300 weights; 0.1005 < 0.102
    assert select_configuration(mse, weights, 0.5) == 2  # 50 weights, NaN never chosen
    with pytest.raises(ValueError, match="tolerance"):
        select_configuration(mse, weights, -0.1)

    grid = GridConfig(batch_sizes=[64], learning_rates=[5e-3], hidden_layers=[1], units=[8, 4])
    kwargs = dict(seed=3, layer=2, max_epochs=3, patience=PATIENCE)
    loose = run_grid_search(*small_problem(), grid, selection_tolerance=1.0, **kwargs).results
    best = loose["validation_mse"].min()
    chosen = loose.loc[loose["selected"]].iloc[0]
    assert chosen["validation_mse"] <= 2.0 * best
    assert (
        chosen["units"] == 4 or loose.loc[loose["units"] == 4, "validation_mse"].item() > 2 * best
    )


@pytest.mark.parametrize("input_noise", [0.0, 0.1])
def test_anchored_layers_take_the_subsoil_store_only_through_the_anchor(
    table, tmp_path, input_noise
):
    """``output = "anchored"``: layers 3-5 learn the departure from the bucket's 20-50 cm store;
    the store's input weights stay 0, so the prediction's logit moves with the store exactly by
    the anchor's logit; layers 1-2 are plain bounded networks that use the store as an input.
    With input noise too (the silenced column's noise is zeroed with its weights)."""
    from cropsm.train.bounds import row_anchor, row_bounds
    from cropsm.train.chain import with_pattern_one_hot

    rng = np.random.default_rng(3)
    store = rng.uniform(0.0, 1.0, len(table))
    with_store = table.assign(wb_sub=store)
    # the target follows the store a little, so that it matters to every layer
    for k in range(1, 4):
        with_store[f"sm_l{k}"] = with_store[f"sm_l{k}"] + 0.02 * (store - 0.5)
    config = CONFIG.model_copy(
        update={"output": "anchored", "max_epochs": 10, "input_noise": input_noise}
    )
    result = train_layers(
        with_store, config, lambda k: [*layer_feature_names(k, ()), "wb_sub"], n_layers=3
    )
    for model in result.models:
        w1 = model.weights[0][0]
        row = list(model.feature_names).index("wb_sub")
        if model.layer <= 2:
            assert model.output == "anchored" and np.abs(w1[row]).max() > 0.01
            continue
        np.testing.assert_array_equal(w1[row], 0.0)
        names = list(model.feature_names)
        rows = with_pattern_one_hot(with_store.iloc[:50])
        x = rows[names[:-1]].assign(**{UPPER: 0.25}).to_numpy()
        x = x[np.isfinite(x).all(axis=1)]
        moved = x.copy()
        moved[:, names.index("wb_sub")] = rng.uniform(0.0, 1.0, len(x))
        upper = row_bounds(x, names, model.layer)[:, 1]
        before, after = model.predict_array(x), model.predict_array(moved)
        shift = np.log(after / (upper - after)) - np.log(before / (upper - before))
        expected = row_anchor(moved, names, model.layer) - row_anchor(x, names, model.layer)
        np.testing.assert_allclose(shift, expected, atol=1e-6)
        assert np.abs(expected).max() > 0.5
    # the saved networks say how they end and predict the same after loading
    from cropsm.train.artifacts import save_models

    loaded = load_models(save_models(result, tmp_path))
    assert [m.output for m in loaded] == ["anchored"] * 3
    description = json.loads((tmp_path / "models" / "layer3" / "model.json").read_text())
    assert (
        description["output"]["kind"] == "anchored" and "wb_sub" in description["output"]["anchor"]
    )
    rows = with_pattern_one_hot(with_store)
    np.testing.assert_allclose(
        predict_chain(loaded, rows).to_numpy(), predict_chain(result.models, rows).to_numpy()
    )


def test_member_initialisation_is_init_mlp_params_compiled_per_matrix():
    """The stacked initial weights and Adam states are exactly ``vmap(init_mlp_params)`` and
    ``vmap(adam.init)``, made without a program per architecture."""
    from functools import partial

    import jax
    import jax.numpy as jnp

    from cropsm.train.mlp import _ADAM, adam_init_members, init_members, init_mlp_params, member_key

    for hidden_layers, units, n_inputs in [(1, 16, 5), (3, 64, 31)]:
        config = Member(hidden_layers, units, 128, 0.01)
        keys = jnp.stack([member_key(0, 2, config, m) for m in range(3)])
        params = init_members(keys, n_inputs, hidden_layers, units)
        one = partial(init_mlp_params, n_inputs=n_inputs, hidden_layers=hidden_layers, units=units)
        expected = jax.jit(jax.vmap(one))(keys)
        got_leaves, want_leaves = (
            jax.tree_util.tree_leaves(params),
            jax.tree_util.tree_leaves(expected),
        )
        assert len(got_leaves) == 2 * (hidden_layers + 1)
        assert all(np.array_equal(g, w) for g, w in zip(got_leaves, want_leaves, strict=True))
        state, want = adam_init_members(params), jax.vmap(_ADAM.init)(params)
        assert jax.tree_util.tree_structure(state) == jax.tree_util.tree_structure(want)
        for g, w in zip(
            jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(want), strict=True
        ):
            assert g.dtype == w.dtype and g.shape == w.shape and not np.any(np.asarray(g))


def test_valid_first_permutation_is_jax_permutation_of_the_valid_rows():
    """The padded rows' permutation starts with exactly ``jax.random.permutation`` of the valid
    rows (whatever the padded length) and ends with the padding rows."""
    import jax

    from cropsm.train.mlp import epoch_key, permutation_rounds, valid_first_permutation

    for n_valid, n_rows in [(1000, 1024), (1700, 2048), (90034, 90112), (5, 8), (37, 37)]:
        key = epoch_key(0, 2, n_valid % 7)
        order = np.asarray(
            valid_first_permutation(key, np.int32(n_valid), n_rows, permutation_rounds(n_valid))
        )
        np.testing.assert_array_equal(order[:n_valid], jax.random.permutation(key, n_valid))
        np.testing.assert_array_equal(np.sort(order[n_valid:]), np.arange(n_valid, n_rows))


def test_padded_row_count():
    from cropsm.train.mlp import padded_row_count

    assert [padded_row_count(n) for n in (1, 63, 64, 100, 1000, 89925, 90034, 90112)] == [
        1, 63, 64, 100, 1008, 90112, 90112, 90112,
    ]  # fmt: skip
    counts = np.arange(1, 200_000, 37)
    padded = np.array([padded_row_count(int(n)) for n in counts])
    assert np.all(padded >= counts) and np.all(padded <= counts * (1 + 1 / 32))


@pytest.mark.parametrize("bounded", [False, True])
def test_padded_rows_train_the_same_networks_in_one_program(bounded):
    """Training on rows padded to a shared count gives the networks of unpadded training to the
    bit, and two row counts that pad alike compile the training steps once."""
    from cropsm.train.mlp import EnsembleTrainer, _train_steps, padded_row_count

    rng = np.random.default_rng(5)
    members = [Member(1, 8, b, lr) for b in (32, 64) for lr in (0.01, 0.003)]

    def data(n):
        x = rng.normal(size=(n, 4)).astype(np.float32)
        y = (x @ np.array([0.5, -0.3, 0.2, 0.1]) + 0.1 * rng.normal(size=n)).astype(np.float32)
        return x, y

    def bounds(n):
        if not bounded:
            return None
        return np.column_stack([np.full(n, -3.0), np.full(n, 3.0), np.zeros(n)])

    def trained(n_train, pad_rows, noise):
        x, y = data(n_train)
        xv, yv = data(97)
        trainer = EnsembleTrainer(
            members, x, y, xv, yv, seed=1, layer=2, patience=10, pad_rows=pad_rows,
            bounds_train=bounds(n_train), bounds_val=bounds(97), input_noise=noise,
        )  # fmt: skip
        trainer.advance(6)
        return trainer.result()

    assert padded_row_count(1003) == padded_row_count(1000) == 1008
    for noise in (0.0, 0.1):
        state = rng.bit_generator.state
        padded = trained(1003, True, noise)
        rng.bit_generator.state = state
        unpadded = trained(1003, False, noise)
        np.testing.assert_array_equal(padded.best_val_mse, unpadded.best_val_mse)
        np.testing.assert_array_equal(padded.best_epoch, unpadded.best_epoch)
        for a, b in zip(padded.best_params, unpadded.best_params, strict=True):
            for (wa, ba), (wb, bb) in zip(a, b, strict=True):
                np.testing.assert_array_equal(wa, wb)
                np.testing.assert_array_equal(ba, bb)
        assert np.isfinite(padded.best_val_mse).all() and (padded.best_epoch >= 1).all()
    compiled = _train_steps._cache_size()  # the padded 1003 rows' programs are compiled
    trained(1000, True, 0.0)
    trained(1001, True, 0.0)
    assert _train_steps._cache_size() == compiled
    trained(1000, False, 0.0)
    assert _train_steps._cache_size() == compiled + 1


def test_releasing_programs_keeps_the_training_steps_for_a_layer_like_this_one():
    from cropsm.train.mlp import _train_steps, _validate, release_training_programs

    x = np.random.default_rng(2).normal(size=(300, 3)).astype(np.float32)
    y = x.sum(axis=1)
    train_ensemble([Member(1, 4, 32, 0.01)], x, y, x[:50], y[:50], seed=0, layer=1,
                   max_epochs=2, patience=5)  # fmt: skip
    steps = _train_steps._cache_size()
    assert steps >= 1 and _validate._cache_size() >= 1
    release_training_programs(keep_training_steps=True)
    assert _train_steps._cache_size() == steps and _validate._cache_size() == 0
    release_training_programs(keep_training_steps=False)
    assert _train_steps._cache_size() == 0
