"""Deep ensembles: K = 1 is the single network, members are bootstrap-trained and chained
member by member, training is deterministic, intervals are calibrated, effects get a spread."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cropsm.analyze import scenarios as scen
from cropsm.features.groups import layer_feature_names
from cropsm.train import (
    GridConfig,
    TrainConfig,
    load_ensemble,
    load_residual_sd,
    predict_chain,
    predict_ensemble,
    train_layers,
    write_training_outputs,
)
from cropsm.train.ensemble import (
    Z90,
    calibrated_sd,
    ensemble_mean_and_spread,
    fit_residual_sd,
    interval_coverage,
    member_weights,
    observation_error_sd,
    station_bootstrap_weights,
)
from cropsm.train.synthetic import synthetic_station_table

CONFIG = TrainConfig(
    max_epochs=15,
    patience=4,
    seed=3,
    members=3,
    grid=GridConfig(batch_sizes=[64], learning_rates=[1e-2], hidden_layers=[1], units=[16]),
)


def features(layer: int) -> list[str]:
    return layer_feature_names(layer, ())


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_station_table(n_stations=30, n_years=4, dates_per_year=10, seed=2)


@pytest.fixture(scope="module")
def chain(table):
    return train_layers(table, CONFIG, features, n_layers=3)


def _same_weights(a, b) -> bool:
    return all(
        np.array_equal(wa, wb) and np.array_equal(ba, bb)
        for (wa, ba), (wb, bb) in zip(a.weights, b.weights, strict=True)
    )


def test_one_member_is_the_single_network(chain, table):
    single = train_layers(table, CONFIG.model_copy(update={"members": 1}), features, n_layers=3)
    assert single.members == []
    for a, b in zip(single.models, chain.models, strict=True):
        assert _same_weights(a, b)
        assert a.metrics == b.metrics
    # the ensemble's extra members are other networks
    assert len(chain.members) == 2
    assert not _same_weights(chain.members[0][0], chain.models[0])
    assert not _same_weights(chain.members[0][0], chain.members[1][0])
    pd.testing.assert_frame_equal(single.predict(table), predict_chain(chain.models, table))
    # pinned: the numbers of the single network before ensembles existed (same table, config
    # and seed, trained by the code of main at 3919d10)
    before = np.array(
        [
            [0.2749204402, 0.2744321286, 0.2731967334],
            [0.2386519839, 0.262248801, 0.2357074834],
            [0.3090432862, 0.2992657262, 0.288045902],
        ]
    )
    # to float32 resolution: XLA's CPU kernels round differently on other processors (8e-9 on
    # an AMD EPYC against the machine that pinned them); any change of the training moves
    # these by 1e-4 and more
    np.testing.assert_allclose(
        single.predict(table).iloc[[0, 500, 1000]].to_numpy(), before, rtol=0, atol=3e-8
    )


def test_same_seed_gives_the_same_ensemble(chain, table):
    again = train_layers(table, CONFIG, features, n_layers=3)
    for first, second in zip(chain.all_members, again.all_members, strict=True):
        for a, b in zip(first, second, strict=True):
            assert _same_weights(a, b)

    def numbers(ensemble):  # wall times aside
        return {k: {n: v for n, v in e.items() if "seconds" not in n} for k, e in ensemble.items()}

    assert numbers(again.ensemble) == numbers(chain.ensemble)


def test_members_trained_in_threads_are_the_members_trained_one_pair_after_another(table):
    # K = 5: the four extra members train as two pairs, side by side in two threads
    # (parallel_ensembles = 2) or one pair after the other: the same networks to the bit
    config = CONFIG.model_copy(update={"members": 5, "max_epochs": 6})
    threads = train_layers(table, config, features, n_layers=2)
    in_turn = train_layers(
        table, config.model_copy(update={"parallel_ensembles": 1}), features, n_layers=2
    )
    assert len(threads.members) == 4
    for first, second in zip(threads.members, in_turn.members, strict=True):
        for a, b in zip(first, second, strict=True):
            assert _same_weights(a, b)
            assert a.hyperparameters == b.hyperparameters


def test_members_are_chained_member_by_member(chain, table):
    member = chain.members[1]
    own = predict_chain(member, table)
    # layer 2 of member 2 on member 2's layer-1 prediction, not on member 0's
    from cropsm.train.chain import _layer_inputs, with_pattern_one_hot

    t = with_pattern_one_hot(table)
    x = _layer_inputs(t, member[1].feature_names, own["sm_pred_l1"].to_numpy(), 2)
    np.testing.assert_allclose(member[1].predict_array(x), own["sm_pred_l2"], rtol=0, atol=1e-12)
    x0 = _layer_inputs(
        t, member[1].feature_names, predict_chain(chain.models, table)["sm_pred_l1"], 2
    )
    assert not np.allclose(member[1].predict_array(x0), own["sm_pred_l2"], atol=1e-6)


def test_bootstrap_resamples_whole_stations():
    ids = np.repeat([f"s{i}" for i in range(40)], 7)
    np.testing.assert_array_equal(station_bootstrap_weights(ids, 0, 0), np.ones(ids.size))
    w = station_bootstrap_weights(ids, 0, 1)
    per_station = w.reshape(40, 7)
    assert (per_station == per_station[:, :1]).all()  # one weight per station
    assert per_station[:, 0].sum() == 40  # 40 draws
    assert (per_station[:, 0] == 0).any() and (per_station[:, 0] >= 2).any()
    assert not np.array_equal(w, station_bootstrap_weights(ids, 0, 2))
    np.testing.assert_array_equal(w, station_bootstrap_weights(ids, 0, 1))


def test_member_weights_resample_stations_rows_or_nothing():
    ids = np.repeat([f"s{i}" for i in range(40)], 25)
    np.testing.assert_array_equal(
        member_weights("stations", ids, 0, 1), station_bootstrap_weights(ids, 0, 1)
    )
    for kind in ("stations", "rows", "none"):
        np.testing.assert_array_equal(member_weights(kind, ids, 0, 0), np.ones(ids.size))
    np.testing.assert_array_equal(member_weights("none", ids, 0, 3), np.ones(ids.size))
    rows = member_weights("rows", ids, 0, 1)
    assert rows.sum() == ids.size and rows.min() == 0 and rows.max() >= 3  # n draws of n rows
    np.testing.assert_array_equal(rows, member_weights("rows", ids, 0, 1))
    assert not np.array_equal(rows, member_weights("rows", ids, 0, 2))
    # rows: every station keeps about its share; stations: about 1/e of them drop out
    per_station_rows = rows.reshape(40, 25).sum(axis=1)
    per_station_stations = member_weights("stations", ids, 0, 1).reshape(40, 25).sum(axis=1)
    assert per_station_rows.min() > 10 and per_station_rows.max() < 45
    assert 8 <= (per_station_stations == 0).sum() <= 22
    with pytest.raises(ValueError, match="bootstrap must be"):
        member_weights("blocks", ids, 0, 1)


def test_artifacts_round_trip_and_ensemble_prediction(chain, table, tmp_path):
    write_training_outputs(chain, table, tmp_path)
    members = load_ensemble(tmp_path)
    assert len(members) == 3
    for loaded, trained in zip(members, chain.all_members, strict=True):
        for a, b in zip(loaded, trained, strict=True):
            assert _same_weights(a, b)
    residual = load_residual_sd(tmp_path)
    assert set(residual) == {1, 2, 3} and all(v >= 0 for v in residual.values())
    pred = predict_ensemble(members, table, residual)
    chains = [predict_chain(m, table) for m in members]
    stack = np.stack([c["sm_pred_l2"].to_numpy() for c in chains])
    np.testing.assert_allclose(pred["sm_pred_l2"], stack.mean(0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        pred["sm_sd_l2"], np.sqrt(stack.std(0, ddof=1) ** 2 + residual[2] ** 2), atol=1e-12
    )
    # the calibrated interval covers about 90 % of the validation rows it was fitted on; the
    # synthetic table's residuals have no temporal structure at its 10-day readings (its
    # model error is as white as its noise), so no readings' error is estimated and the
    # intervals of a reading and of the soil moisture are one
    for entry in chain.ensemble.values():
        assert entry["members"] == 3
        assert entry["observation_error_sd_m3_m-3"] == 0.0
        assert "flat variogram" in entry["observation_error_source"]
        assert entry["coverage_validation_calibrated"] == pytest.approx(0.9, abs=0.02)
        assert entry["coverage_validation_calibrated"] == entry["coverage_validation_value"]
        assert entry["coverage_validation_calibrated"] >= entry["coverage_validation_raw"]


def test_residual_sd_recovers_gaussian_noise():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.1, 0.4, 40_000)
    mean = truth + rng.normal(0, 0.02, truth.size)
    spread = np.full(truth.size, 0.01)
    r = fit_residual_sd(truth, mean, spread)
    assert np.sqrt(0.01**2 + r**2) == pytest.approx(0.02, rel=0.03)
    assert interval_coverage(truth, mean, calibrated_sd(spread, r)) == pytest.approx(0.9, abs=0.005)
    assert interval_coverage(truth, mean, spread) < 0.6  # over-confident before
    assert fit_residual_sd(truth, mean, np.full(truth.size, 0.05)) == 0.0  # wide enough already
    assert Z90 == pytest.approx(1.6449, abs=1e-4)


def _residuals_with_white_error(
    daily_autocorrelation: float, white_sd: float, n_stations: int = 60, seed: int = 0
):
    """Residuals at three readings a month (days 8, 18, 28 of April-October, 6 years): an AR(1)
    model error of SD 0.03 with the given daily autocorrelation, a constant offset per station
    (SD 0.015) and white measurement error of SD ``white_sd``."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2001-01-01", "2006-12-31", freq="D")
    read = (days.day.isin([8, 18, 28])) & (days.month.isin(range(4, 11)))
    rho = daily_autocorrelation
    stations, dates, residuals = [], [], []
    for s in range(n_stations):
        shocks = rng.normal(0, 0.03 * np.sqrt(1 - rho**2), len(days))
        shocks[0] = rng.normal(0, 0.03)
        model_error = np.empty(len(days))
        for t, shock in enumerate(shocks):
            model_error[t] = shock if t == 0 else rho * model_error[t - 1] + shock
        e = model_error[read] + rng.normal(0, 0.015) + rng.normal(0, white_sd, read.sum())
        stations += [f"s{s}"] * int(read.sum())
        dates.append(days[read])
        residuals.append(e)
    return np.array(stations), np.concatenate(dates), np.concatenate(residuals)


def test_observation_error_is_the_nugget_of_the_residuals_variogram():
    stations, dates, e = _residuals_with_white_error(0.95, 0.02, n_stations=150)
    estimate = observation_error_sd(stations, dates, e)
    assert estimate["status"] == "estimated" and estimate["interval_days"] == 10
    assert estimate["sd"] == pytest.approx(0.02, abs=0.002)
    assert 10 < estimate["range_days"] < 40  # the AR(1)'s e-folding time is 19.5 days
    # a straight line through the two shortest lags takes model error for measurement error
    order = np.lexsort((dates, stations))
    s, r = stations[order], e[order]
    one = (s[2:] == s[:-2]) & (s[1:-1] == s[:-2])
    gamma10 = 0.5 * np.mean((r[1:-1] - r[:-2])[one] ** 2)
    gamma20 = 0.5 * np.mean((r[2:] - r[:-2])[one] ** 2)
    assert np.sqrt(2 * gamma10 - gamma20) > estimate["sd"] + 0.002
    # readings without white error: no nugget
    assert observation_error_sd(*_residuals_with_white_error(0.95, 0.0))["sd"] < 0.004
    # the order of the rows does not matter
    shuffled = np.random.default_rng(1).permutation(len(e))
    again = observation_error_sd(stations[shuffled], dates[shuffled], e[shuffled])
    assert again["sd"] == pytest.approx(estimate["sd"], rel=1e-9)


def test_observation_error_is_not_estimated_where_it_cannot_be_told_apart():
    # model error that forgets within days looks like measurement error at 10-day readings
    fast = observation_error_sd(*_residuals_with_white_error(0.5, 0.02))
    assert fast["sd"] == 0.0 and "flat variogram" in fast["status"]
    few = observation_error_sd(["a", "a", "b"], pd.to_datetime(["2001-04-08"] * 3), [0.1, 0.2, 0.3])
    assert few["sd"] == 0.0 and "two readings" in few["status"]
    stations, dates, e = _residuals_with_white_error(0.95, 0.02, n_stations=1)
    sparse = observation_error_sd(stations[:20], dates[:20], e[:20])
    assert sparse["sd"] == 0.0 and "too few" in sparse["status"]


def test_intervals_leave_the_readings_error_out(table):
    from cropsm.train.chain import _ensemble_summary

    rng = np.random.default_rng(4)
    n = len(table)
    truth = rng.uniform(0.1, 0.4, n)
    predictions = truth + rng.normal(0, 0.02, n) + rng.normal(0, 0.01, (3, n))
    readings = truth + rng.normal(0, 0.03, n)
    labels = rng.choice(["train", "validation", "test"], n, p=[0.5, 0.25, 0.25])
    sets = {name: labels == name for name in ("train", "validation", "test")}
    ids, dates = table["station_id"].to_numpy(), table["date"].to_numpy()
    given = _ensemble_summary(readings, predictions, sets, 0.0, ids, dates, 0.03)
    for_readings = _ensemble_summary(readings, predictions, sets, 0.0, ids, dates, "none")
    assert given["observation_error_sd_m3_m-3"] == 0.03
    assert for_readings["observation_error_sd_m3_m-3"] == 0.0
    # a reading's interval holds 90 % of the validation readings either way
    assert given["coverage_validation_calibrated"] == pytest.approx(0.9, abs=0.01)
    assert for_readings["coverage_validation_calibrated"] == pytest.approx(0.9, abs=0.01)
    # the soil moisture's interval is narrower: it holds 90 % of the truth, not of the readings
    assert given["residual_sd_m3_m-3"] < for_readings["residual_sd_m3_m-3"] - 0.01
    mean, spread = ensemble_mean_and_spread(predictions)
    total = calibrated_sd(spread, given["residual_sd_m3_m-3"])
    val = sets["validation"]
    assert interval_coverage(truth[val], mean[val], total[val]) == pytest.approx(0.9, abs=0.03)
    wide = calibrated_sd(spread, for_readings["residual_sd_m3_m-3"])
    assert interval_coverage(truth[val], mean[val], wide[val]) > 0.98
    assert given["coverage_validation_value"] < 0.8


def _layer_with_fast_error(fast_sd: float, slow: bool, seed: int):
    """Summary inputs of one layer: readings with white error 0.02 of a truth the members miss
    by a slow AR(1) error and a station offset (0.4 x those of
    :func:`_residuals_with_white_error`, or none) plus an error independent from one reading
    to the next of SD ``fast_sd`` (model error faster than the readings, which the nugget
    takes for the instrument's)."""
    stations, dates, model_error = _residuals_with_white_error(0.95, 0.0, 80, seed)
    rng = np.random.default_rng(seed + 100)
    n = len(model_error)
    truth = rng.uniform(0.15, 0.35, n)
    readings = truth + rng.normal(0, 0.02, n)
    mean = truth - (0.4 * model_error if slow else 0.0) - rng.normal(0, fast_sd, n)
    predictions = mean + rng.normal(0, 0.005, (3, n))
    labels = rng.choice(["train", "validation", "test"], n, p=[0.6, 0.3, 0.1])
    sets = {name: labels == name for name in ("train", "validation", "test")}
    return truth, (readings, predictions, sets, 0.0, stations, dates)


def test_layers_share_the_smallest_nugget_as_their_readings_error():
    from cropsm.train.chain import _ensemble_summary, _share_observation_error

    layers = {1: (0.015, True), 2: (0.0, True), 3: (0.03, False)}
    truths, inputs, ensemble = {}, {}, {}
    for k, (fast_sd, slow) in layers.items():
        truths[k], inputs[k] = _layer_with_fast_error(fast_sd, slow, seed=k)
        ensemble[k] = _ensemble_summary(*inputs[k], observation_error="estimate_by_layer")
    before = {k: dict(e) for k, e in ensemble.items()}
    sigma = {k: e["observation_error_sd_m3_m-3"] for k, e in before.items()}
    # the fast error sits in layer 1's nugget (sqrt(0.02^2 + 0.015^2) = 0.025); layer 2's is
    # the instrument's; layer 3's residuals have no temporal structure: no estimate
    assert sigma[1] == pytest.approx(0.025, abs=0.002)
    assert sigma[2] == pytest.approx(0.020, abs=0.0015)
    assert sigma[3] == 0.0
    _share_observation_error(ensemble, inputs)
    assert ensemble[1]["observation_error_sd_m3_m-3"] == sigma[2]
    assert "layer 2's nugget, the smallest" in ensemble[1]["observation_error_source"]
    for k in (2, 3):  # the smallest keeps its own; a layer without an estimate keeps none
        assert {a: b for a, b in ensemble[k].items() if a != "observation_error_source"} == {
            a: b for a, b in before[k].items() if a != "observation_error_source"
        }
    # a reading's interval is what it was; the soil moisture's widens by what the nugget took
    reading_before = np.hypot(before[1]["residual_sd_m3_m-3"], sigma[1])
    reading_after = np.hypot(ensemble[1]["residual_sd_m3_m-3"], sigma[2])
    assert reading_after == pytest.approx(reading_before, rel=1e-6)
    assert ensemble[1]["residual_sd_m3_m-3"] > before[1]["residual_sd_m3_m-3"] + 0.004
    readings, predictions, sets = inputs[1][:3]
    mean, spread = ensemble_mean_and_spread(predictions)
    val = sets["validation"]

    def truth_coverage(entry):
        sd = calibrated_sd(spread[val], entry["residual_sd_m3_m-3"])
        return interval_coverage(truths[1][val], mean[val], sd)

    assert truth_coverage(before[1]) < 0.8  # the fast error was taken out of the interval
    assert truth_coverage(ensemble[1]) == pytest.approx(0.9, abs=0.02)
    # one layer with an estimate: nothing to share
    alone = {2: dict(before[2])}
    _share_observation_error(alone, {2: inputs[2]})
    assert alone[2] == before[2]


def test_observation_error_config_is_checked():
    assert TrainConfig().observation_error == "estimate"
    assert TrainConfig(observation_error=0.02).observation_error == 0.02
    assert TrainConfig(observation_error="estimate_by_layer").observation_error == (
        "estimate_by_layer"
    )
    for bad in (0.5, -0.01, "nugget"):
        with pytest.raises(ValueError, match="observation_error"):
            TrainConfig(observation_error=bad)


def test_mean_and_spread_over_members():
    values = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]])
    mean, spread = ensemble_mean_and_spread(values)
    np.testing.assert_allclose(mean, [3.0, 2.0])
    np.testing.assert_allclose(spread, [2.0, 0.0])
    _, one = ensemble_mean_and_spread(values[:1])
    np.testing.assert_array_equal(one, [0.0, 0.0])


def test_effect_significance_and_sign_agreement():
    # three cells: a clear positive effect, a noisy one, a clear negative one
    members = xr.DataArray(
        [[0.05, 0.01, -0.04], [0.06, -0.02, -0.05], [0.055, 0.015, -0.045]],
        dims=("member", "cell"),
    )
    stats = scen.ensemble_effect_statistics(members)
    np.testing.assert_array_equal(stats["significant"].values, [True, False, True])
    np.testing.assert_allclose(stats["effect_spread"].values[0], 0.005)
    # calibrated spread = inflation x small-sample factor (1.775 for 3 members) x spread
    wide = scen.ensemble_effect_statistics(members, inflation=5.0 / scen.small_sample_factor(3))
    np.testing.assert_allclose(wide["effect_spread_calibrated"].values[0], 0.025)
    # 5 x 0.005 = 0.025: |0.055| > 0.05 stays, |-0.045| < 0.05 does not
    np.testing.assert_array_equal(wide["significant_calibrated"].values, [True, False, False])
    plain = scen.ensemble_effect_statistics(members)
    calibrated = plain["effect_spread_calibrated"].values[0]
    np.testing.assert_allclose(calibrated, 0.005 * 1.7751, rtol=1e-4)
    truth = np.array([0.05, -0.01, 0.01])
    # the significant cells: first right, third wrong
    assert scen.significant_sign_agreement(truth, stats["effect_mean"], stats["significant"]) == 0.5
    cov = scen.effect_interval_coverage(truth, stats["effect_mean"], stats["effect_spread"])
    assert cov == pytest.approx(2 / 3)  # the third cell lies outside its interval
    share = scen.significant_share(stats["significant"], xr.ones_like(stats["significant"]))
    assert float(share) == pytest.approx(2 / 3)


def test_small_sample_factor_gives_the_student_t_interval():
    # t_{K-1}(0.95) / z(0.95) from the t table: 2.919986 (2 dof), 2.131847 (4 dof)
    assert scen.small_sample_factor(3) == pytest.approx(2.919986 / 1.644854, rel=1e-5)
    assert scen.small_sample_factor(5) == pytest.approx(2.131847 / 1.644854, rel=1e-5)
    assert np.isnan(scen.small_sample_factor(1))
    # members drawn around a true effect whose mean error has the members' SD: the interval
    # mean +/- 1.645 s covers the truth far less than 90 % with 3 members, the t interval 90 %
    rng = np.random.default_rng(3)
    truth = np.zeros(20000)
    members = xr.DataArray(rng.normal(0.0, 0.01, (3, truth.size)), dims=("member", "cell"))
    error = rng.normal(0.0, 0.01, truth.size)  # the ensemble mean's error, SD = member SD
    stats = scen.ensemble_effect_statistics(members)
    mean = truth + error
    naive = scen.effect_interval_coverage(truth, mean, stats["effect_spread"])
    corrected = scen.effect_interval_coverage(truth, mean, stats["effect_spread_calibrated"])
    assert naive == pytest.approx(0.76, abs=0.01)  # P(|t_2| <= 1.645)
    assert corrected == pytest.approx(0.90, abs=0.01)


def test_monthly_bands_use_the_calibrated_spread():
    # 3 members of one pattern's monthly all-China effect: mean 0.01, member SD 0.002 every month
    values = np.array([0.008, 0.010, 0.012])[:, None] * np.ones((3, 12))
    values[:, 6] = [-0.001, 0.0, 0.001]  # July: mean 0, never significant
    members = xr.DataArray(
        values[None, :, None, :],
        dims=("pattern", "member", "region", "month"),
        coords={"pattern": ["ww_fl"], "region": ["CHN"], "month": np.arange(1, 13)},
    )
    fig = scen.monthly_bands_figure(members, inflation=1.5)
    ax = fig.axes[0]
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    half_width = 2 * 1.5 * scen.small_sample_factor(3) * 0.002  # 0.0107 > |mean| 0.01
    assert band.max() == pytest.approx(0.01 + half_width, rel=1e-6)
    assert band.min() == pytest.approx(-half_width / 2, rel=1e-6)  # July, SD 0.001
    # with the calibrated spread no month is significant (all hollow); the raw 2 x 0.002 would
    # have made 11 of 12 months significant
    filled, hollow = ax.collections[1], ax.collections[2]
    assert len(filled.get_offsets()) == 0 and len(hollow.get_offsets()) == 12
    narrow = scen.monthly_bands_figure(members, inflation=0.5).axes[0]
    assert len(narrow.collections[1].get_offsets()) == 11


def test_pooled_spread_borrows_from_the_neighbouring_cells():
    # a 3 x 4 grid of spreads 0.01 with one cell where the members agreed by chance (0) and one
    # cell outside cropland (NaN)
    values = np.full((3, 4), 0.01)
    values[1, 1] = 0.0
    values[0, 3] = np.nan
    spread = xr.DataArray(
        values, dims=("lat", "lon"), coords={"lat": [1, 2, 3], "lon": [1, 2, 3, 4]}
    )
    pooled = scen.pooled_spread(spread).values
    # the chance cell: its 9-cell window holds 8 spreads of 0.01 and its own 0
    assert pooled[1, 1] == pytest.approx(0.01 * np.sqrt(8 / 9))
    # a corner: 4 cells in the grid, one of them the 0
    assert pooled[2, 0] == pytest.approx(0.01 * np.sqrt(3 / 4))
    # next to the NaN cell: it does not count (5 finite cells of 6, one of them the 0)
    assert pooled[0, 2] == pytest.approx(0.01 * np.sqrt(4 / 5))
    assert np.isnan(pooled[0, 3])
    # other dimensions stay apart, and the order of the dimensions is kept
    stacked = xr.concat([spread, spread * 2], dim="layer").transpose("lat", "layer", "lon")
    both = scen.pooled_spread(stacked)
    assert both.dims == ("lat", "layer", "lon")
    np.testing.assert_allclose(both.isel(layer=1).values, 2 * pooled)
    # no grid, no pooling; window 1 is each cell's own
    cells = xr.DataArray([0.0, 0.01], dims="cell")
    assert scen.pooled_spread(cells) is cells
    np.testing.assert_array_equal(scen.pooled_spread(spread, 1).values, values)


def test_member_means_from_monthly_sums():
    # two members, one scenario, one layer, one time block of 3 month slots on a 1 x 2 grid
    days = np.array([31, 29, 31])  # Jan, Feb, Mar 2012
    member_sum = xr.DataArray(
        np.zeros((2, 1, 1, 1, 3, 1, 2)),
        dims=("member", "scenario", "layer", "time_block", "month_slot", "lat", "lon"),
        coords={"scenario": ["reference"], "layer": [1], "lat": [30.0], "lon": [110.0, 111.0]},
    )
    values = np.array([[0.2, 0.3, 0.4], [0.25, 0.35, 0.45]])  # member x month
    member_sum[:, 0, 0, 0, :, 0, :] = (values * days)[..., None]
    member_days = xr.DataArray(
        np.broadcast_to(days[None, None, None, :, None, None], (1, 1, 1, 3, 1, 2)).copy(),
        dims=("scenario", "layer", "time_block", "month_slot", "lat", "lon"),
    )
    slot_month = np.array([[2012 * 12, 2012 * 12 + 1, 2012 * 12 + 2]])
    annual, clim = scen.member_means_from_sums(member_sum, member_days, slot_month)
    expected = (values * days).sum(1) / days.sum()
    np.testing.assert_allclose(annual.sel(year=2012)[:, 0, 0, 0, 0], expected)
    np.testing.assert_allclose(clim.sel(month=2)[:, 0, 0, 0, 1], values[:, 1])
    assert np.isnan(clim.sel(month=7)).all()


def _member_sums(daily: xr.DataArray, time_chunk_days: int = 366) -> xr.Dataset:
    """What the product stores for the members: monthly-slot sums per time block
    (:mod:`cropsm.predict.store`), from daily ``(member, scenario, layer, time, lat, lon)``."""
    from cropsm.predict.store import ProductLayout, month_slot_of_days, month_slots, slot_months

    dates = pd.DatetimeIndex(daily["time"].values)
    layout = ProductLayout(
        dates=dates, lat=daily["lat"].values, lon=daily["lon"].values,
        scenarios=tuple(str(s) for s in daily["scenario"].values),
        time_chunk_days=time_chunk_days, space_chunk_cells=8,
        tiles=(((0, daily.sizes["lat"]), (0, daily.sizes["lon"])),),
    )  # fmt: skip
    n_slots = month_slots(layout)
    values = daily.values
    sums = np.zeros((*values.shape[:3], layout.n_time_blocks, n_slots, *values.shape[-2:]))
    days = np.zeros((*values.shape[1:3], layout.n_time_blocks, n_slots, *values.shape[-2:]))
    for tb in range(layout.n_time_blocks):
        t = slice(tb * time_chunk_days, (tb + 1) * time_chunk_days)
        block_days = range(t.start, min(t.stop, len(dates)))
        for day, slot in zip(block_days, month_slot_of_days(dates[t]), strict=True):
            v = values[:, :, :, day]
            sums[:, :, :, tb, slot] += np.nan_to_num(v)
            days[:, :, tb, slot] += np.isfinite(v[0])
    dims = ("member", "scenario", "layer", "time_block", "month_slot", "lat", "lon")
    coords = {c: daily[c].values for c in ("scenario", "layer", "lat", "lon")}
    return xr.Dataset(
        {
            "member_sum": (dims, sums.astype(np.float32)),
            "member_days": (dims[1:], days.astype(np.int16)),
            "slot_month": (("time_block", "month_slot"), slot_months(layout)),
        },
        coords=coords,
    )


def test_scenario_significance_from_member_sums(tmp_path):
    from cropsm.analyze import product as prod
    from cropsm.analyze import stage as analyze_stage
    from test_analyze_product import DELTA, regions, synthetic_product

    sm = synthetic_product()  # patterns = reference + DELTA[p]; fl_mz: no effect
    # three members: every effect shifted by -s, 0, +s; s = 0.002 (0.01 for fl_mz)
    shifts = {p: (0.01 if p == "fl_mz" else 0.002) for p in DELTA}
    members = []
    for sign in (-1, 0, 1):
        member = sm.copy()
        for p, s in shifts.items():
            member.loc[{"scenario": p}] = sm.sel(scenario=p) + sign * s
        members.append(member)
    daily = xr.concat(members, dim="member").transpose("member", ...)
    stats = prod.product_statistics(sm)
    cropland = regions() > 0
    result, diff, effects = analyze_stage.analyze_scenarios(
        stats, regions(), tmp_path, None, None, _member_sums(daily), {1: 2.0, 2: 1.0},
        cropland, sm["time"].values,
    )  # fmt: skip
    spread = effects["effect_spread"].sel(layer=1)
    inside = cropland.values
    np.testing.assert_allclose(spread.sel(pattern="ww_fl").values[inside], 0.002, atol=1e-6)
    mean = effects["effect_mean"].sel(layer=1, pattern="ww_fl").values
    np.testing.assert_allclose(mean[inside], 0.02, atol=1e-6)
    assert np.isnan(mean[~inside]).all()
    share = result["significance"]["share_significant_layer1"]
    # 0.02 > 2 x 0.002; 0 < 2 x 0.01; the north-east is masked for the double-cropping ww_mz
    assert share["ww_fl"] == 1.0 and share["fl_mz"] == 0.0 and share["ww_mz"] == 1.0
    assert share["sw_ct"] == 1.0  # 0.005 > 0.004
    calibrated = result["significance"]["share_significant_calibrated_layer1"]
    assert calibrated["sw_ct"] == 0.0 and calibrated["ww_fl"] == 1.0  # 0.005 < 2 x 2 x 0.002
    table = pd.read_csv(tmp_path / "analysis" / "scenario_significant_share.csv")
    assert set(table["layer"]) == {1, 2}
    for name in ("fig10_scenario_monthly_bands.png", "fig9_scenario_differences.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 0


def test_unchained_layers_predict_alike_on_product_and_station_paths(table, tmp_path):
    """``[train] chain = "none"``: layers 2-3 of every member lack ``sm_pred_upper``; the saved
    ensemble predicts the same through the product's folded float32 path and the station path,
    and a NaN that only layer 1 uses leaves the layers below finite."""
    from cropsm import catalog
    from cropsm.attribute.station import train_chain_fixed, winning_hyperparameters
    from cropsm.features.groups import UPPER
    from cropsm.predict.network import Workspace, fold_chain, forward_chain
    from cropsm.train.chain import _layer_inputs, with_pattern_one_hot

    config = CONFIG.model_copy(update={"chain": "none"})
    unchained = train_layers(table, config, features, n_layers=3)
    assert unchained.upper_inputs == {}
    for member in unchained.all_members:
        assert UPPER not in member[1].feature_names and UPPER not in member[2].feature_names
        assert list(member[1].feature_names) == [n for n in features(2) if n != UPPER]
    # learned, not merely run: the ensemble mean's test R2 (measured 0.88 0.82 0.73; the
    # chained networks 0.88 0.83 0.76 on this table)
    for k in (1, 2, 3):
        assert unchained.ensemble[k]["ensemble_mean_test"]["r2"] > 0.7
    # layer 2 is its own function of its own features: no layer-1 prediction goes in
    t = with_pattern_one_hot(table)
    layer2 = unchained.models[1]
    np.testing.assert_allclose(
        layer2.predict_array(_layer_inputs(t, layer2.feature_names, None, 2)),
        unchained.predict(table)["sm_pred_l2"],
        rtol=0,
        atol=0,
    )

    write_training_outputs(unchained, table, tmp_path)
    members = load_ensemble(tmp_path)
    rows = table.iloc[:60].copy()
    rows.loc[rows.index[7], "clay_l1"] = np.nan  # a layer-1 input only
    station = predict_ensemble(members, rows)
    assert np.isnan(station.loc[rows.index[7], "sm_pred_l1"])
    assert np.isfinite(station.loc[rows.index[7], ["sm_pred_l2", "sm_pred_l3"]]).all()

    folded = [fold_chain(m) for m in members]  # raised before: "lacks the sm_pred_upper input"
    assert all(net.upper_column is None for nets in folded for net in nets)
    per_member = []
    for nets in folded:
        inputs = [
            np.vstack([rows[list(net.shared_names)].to_numpy(np.float32).T, np.ones((1, 60), "f4")])
            for net in nets
        ]
        per_member.append(forward_chain(nets, inputs, 6, Workspace()).copy())  # (layer, p, row)
    product_mean = np.mean(per_member, axis=0)
    for p, pid in enumerate(catalog.pattern_ids()):
        want = predict_ensemble(members, rows.assign(pattern=pid))
        for k in (1, 2, 3):
            np.testing.assert_allclose(
                product_mean[k - 1, p], want[f"sm_pred_l{k}"], rtol=0, atol=2e-6
            )

    # the control experiments retrain the run's way: unchained, same numbers as the run
    fixed = train_chain_fixed(
        table,
        config,
        winning_hyperparameters(unchained.models),
        unchained.split,
    )
    assert all(UPPER not in m.feature_names for m in fixed.models)
    for a, b in zip(fixed.models, unchained.models, strict=True):
        assert _same_weights(a, b)
