"""Agreement metrics against hand-computed values."""

import math

import numpy as np
import pytest

from cropsm.train.metrics import all_metrics, bias, n, pearson_r, r2, rmse, ubrmse

OBS = np.array([0.10, 0.20, 0.30, 0.40])


def test_perfect_prediction():
    m = all_metrics(OBS, OBS)
    assert m == {
        "r2": 1.0,
        "rmse": 0.0,
        "ubrmse": 0.0,
        "bias": 0.0,
        "r": pytest.approx(1.0),
        "n": 4,
    }


def test_mean_prediction_has_r2_zero():
    assert r2(OBS, np.full(4, OBS.mean())) == pytest.approx(0.0, abs=1e-12)


def test_constant_offset_is_pure_bias():
    sim = OBS + 0.05
    assert bias(OBS, sim) == pytest.approx(0.05)
    assert rmse(OBS, sim) == pytest.approx(0.05)
    assert ubrmse(OBS, sim) == pytest.approx(0.0, abs=1e-9)
    assert pearson_r(OBS, sim) == pytest.approx(1.0)


def test_hand_computed_values():
    obs = np.array([1.0, 2.0, 3.0])
    sim = np.array([2.0, 2.0, 5.0])
    # errors sim - obs = 1, 0, 2 -> bias 1, MSE 5/3, ubRMSE sqrt(5/3 - 1)
    assert bias(obs, sim) == pytest.approx(1.0)
    assert rmse(obs, sim) == pytest.approx(math.sqrt(5 / 3))
    assert ubrmse(obs, sim) == pytest.approx(math.sqrt(2 / 3))
    # SST = 2, SSE = 5 -> R2 = 1 - 5/2
    assert r2(obs, sim) == pytest.approx(-1.5)
    # deviations obs (-1, 0, 1), sim (-1, -1, 2): cov 3, norms sqrt(2) sqrt(6)
    assert pearson_r(obs, sim) == pytest.approx(3 / math.sqrt(12))


def test_nan_pairs_are_ignored():
    obs = np.array([1.0, np.nan, 3.0, 4.0, 5.0])
    sim = np.array([1.0, 2.0, np.nan, 4.0, 5.0])
    assert n(obs, sim) == 3
    assert r2(obs, sim) == 1.0
    assert all_metrics(obs, sim)["n"] == 3


def test_no_valid_pairs_gives_nan():
    m = all_metrics([np.nan], [1.0])
    assert m["n"] == 0
    assert all(math.isnan(m[k]) for k in ("r2", "rmse", "ubrmse", "bias", "r"))


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in length"):
        rmse([1.0, 2.0], [1.0])
