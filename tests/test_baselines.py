"""Baselines: climatology, linear regression, gradient boosting; files without pickle."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from cropsm.features.groups import UPPER, layer_feature_names
from cropsm.train.baselines import (
    BASELINE_NAMES,
    GRADIENT_BOOSTING_PARAMS,
    TreeEnsembleBaseline,
    add_baselines_to_metrics,
    baseline_feature_names,
    comparison_table,
    fit_baselines,
    fit_climatology,
    fit_gradient_boosting,
    fit_linear,
    load_baselines,
    predict_climatology,
    run_baselines,
    save_baselines,
    score_baselines,
)
from cropsm.train.splits import make_split

GROUPS_OFF = ("soil", "pattern", "wind", "cloud")


def synthetic_table(n_stations: int = 6, seed: int = 0) -> pd.DataFrame:
    """Station-level table: a seasonal cycle per station plus a precipitation response."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2014-01-01", "2016-12-31", freq="5D")
    rows = []
    for s in range(n_stations):
        base = 0.15 + 0.03 * s
        precip = rng.gamma(0.5, 4.0, dates.size)
        p1m = pd.Series(precip).rolling(6, min_periods=1).sum().to_numpy()
        doy = dates.dayofyear.to_numpy()
        season = 0.05 * np.cos(2 * np.pi * (doy - 60) / 365)
        frame = pd.DataFrame(
            {
                "station_id": f"S{s}",
                "date": dates,
                "region": "US",
                "lat": 40.0 + s,
                "lon": -100.0,
                "precip": precip,
                **{f"precip_{n}m": p1m * n for n in (1, 2, 3, 4, 5, 12)},
                "ssr": rng.uniform(5, 25, dates.size),
                "tair": 10 + 10 * np.cos(2 * np.pi * (doy - 200) / 365),
                "vpd": rng.uniform(0.2, 2.0, dates.size),
                "elevation": 300.0 + 100 * s,
                "doy": doy.astype(np.int16),
            }
        )
        for k in range(1, 6):
            frame[f"sm_l{k}"] = base + season + 0.002 * p1m / k + rng.normal(0, 0.005, dates.size)
        frame.loc[frame.index[::7], "sm_l3"] = np.nan
        rows.append(frame)
    return pd.concat(rows, ignore_index=True)


def test_feature_names_drop_the_chained_input() -> None:
    names = baseline_feature_names(3, GROUPS_OFF)
    assert UPPER not in names
    assert names == [n for n in layer_feature_names(3, GROUPS_OFF) if n != UPPER]
    assert names[-1] == "doy"


def test_climatology_window_and_fallbacks() -> None:
    clim = fit_climatology(
        np.array(["A", "A", "A", "B"]), np.array([100, 110, 360, 200]),
        np.array([0.2, 0.3, 0.5, 0.1]), half_window=15,
    )  # fmt: skip
    value = clim.set_index(["station_id", "doy"])
    assert value.loc[("A", 105), "sm"] == pytest.approx(0.25)
    assert value.loc[("A", 105), "source"] == "station_window"
    assert value.loc[("A", 5), "sm"] == pytest.approx(0.5)  # circular: 360 is 11 days before 5
    assert value.loc[("A", 250), "sm"] == pytest.approx((0.2 + 0.3 + 0.5) / 3)
    assert value.loc[("A", 250), "source"] == "station_mean"
    assert value.loc[("*", 205), "sm"] == pytest.approx(0.1)  # all-station window
    assert value.loc[("*", 300), "source"] == "all_mean"
    pred = predict_climatology(clim, np.array(["A", "B", "new"]), np.array([105, 200, 110]))
    np.testing.assert_allclose(pred, [0.25, 0.1, 0.25])


def test_linear_recovers_coefficients() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, 1.0]
    y = 1.0 + 2.0 * x[:, 0] - 0.5 * x[:, 1] + 0.0 * x[:, 2]
    model = fit_linear(x, y, ["a", "b", "c"])
    np.testing.assert_allclose(model.predict(x), y, atol=1e-10)
    np.testing.assert_allclose(model.coef / model.scale, [2.0, -0.5, 0.0], atol=1e-10)


def test_gradient_boosting_export_matches_sklearn_with_missing_values() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(2)
    x = rng.normal(size=(600, 3))
    x[::9, 1] = np.nan
    y = np.sin(x[:, 0]) + np.nan_to_num(x[:, 1]) ** 2 + 0.1 * rng.normal(size=600)
    ensemble = fit_gradient_boosting(x[:500], y[:500], ["a", "b", "c"], seed=3,
                                     x_val=x[500:], y_val=y[500:])  # fmt: skip
    reference = HistGradientBoostingRegressor(random_state=3, **GRADIENT_BOOSTING_PARAMS)
    reference.fit(x[:500], y[:500], X_val=x[500:], y_val=y[500:])
    # the compiled path is scikit-learn's own sum, to the bit, also after a save/load round trip
    np.testing.assert_array_equal(ensemble.predict(x), reference.predict(x))
    reloaded = TreeEnsembleBaseline.from_arrays(ensemble.arrays(), ensemble.feature_names)
    np.testing.assert_array_equal(reloaded.predict(x), reference.predict(x))
    # the NumPy walk (where that internal is missing) reaches the same leaves
    np.testing.assert_allclose(ensemble.predict_numpy(x), reference.predict(x), atol=1e-12)
    assert ensemble.n_iter == reference.n_iter_


def test_fit_save_load_score_round_trip(tmp_path: Path) -> None:
    table = synthetic_table()
    split = make_split(table, "station", seed=0)
    baselines = fit_baselines(table, split, groups_off=GROUPS_OFF, seed=0, split_kind="station")
    metrics = baselines.metrics
    assert set(metrics) == set(BASELINE_NAMES)
    for name in BASELINE_NAMES:
        assert set(metrics[name]) == {f"layer{k}" for k in range(1, 6)}
        assert set(metrics[name]["layer1"]) == {"train", "validation", "test"}
    # the gradient boosting learns the precipitation response the climatology cannot see
    test_r2 = {name: metrics[name]["layer1"]["test"]["r2"] for name in BASELINE_NAMES}
    assert test_r2["gradient_boosting"] > test_r2["climatology"]
    # station split: test stations are unseen, the climatology falls back to all stations
    test_rows = split == "test"
    assert metrics["climatology"]["layer1"]["test"]["n"] == int(test_rows.sum())
    assert baselines.layers[2].row_counts["train"] < baselines.layers[1].row_counts["train"]

    folder = tmp_path / "run"
    folder.mkdir()
    saved = save_baselines(baselines, folder)
    assert sorted(p.name for p in saved.iterdir()) == sorted(
        ["baselines.json", "climatology.csv", "linear.json"]
        + [f"gradient_boosting_layer{k}.npz" for k in range(1, 6)]
    )
    loaded = load_baselines(folder)
    pd.testing.assert_frame_equal(loaded.predict(table), baselines.predict(table))
    assert loaded.metrics["linear"]["layer2"]["test"]["r2"] == pytest.approx(
        metrics["linear"]["layer2"]["test"]["r2"]
    )
    scored = score_baselines(loaded, table.loc[test_rows])
    assert scored["gradient_boosting"]["layer1"]["test"]["r2"] == pytest.approx(
        metrics["gradient_boosting"]["layer1"]["test"]["r2"]
    )


def test_metrics_json_and_comparison(tmp_path: Path) -> None:
    table = synthetic_table(n_stations=4)
    split = make_split(table, "year", seed=0)
    net = {"r2": 0.5, "rmse": 0.02, "ubrmse": 0.02, "bias": 0.0, "r": 0.7, "n": 10}
    metrics_path = tmp_path / "metrics.json"
    metrics_path.write_text(json.dumps(
        {"split": "year", **{f"layer{k}": {s: net for s in ("train", "validation", "test")}
                             for k in range(1, 6)}}))  # fmt: skip
    chain = SimpleNamespace(
        split=split,
        split_kind="year",
        upper_inputs={k: pd.Series(0.0, index=table.index[table[f"sm_l{k}"].notna()])
                      for k in range(2, 6)},
        models=[None] * 5,
    )  # fmt: skip
    run_baselines(table, chain, tmp_path, groups_off=GROUPS_OFF, seed=0)
    written = json.loads(metrics_path.read_text())
    assert written["split"] == "year"
    assert set(written["baselines"]) == set(BASELINE_NAMES)
    assert written["baselines"]["climatology"]["layer5"]["test"]["n"] > 0
    comparison = comparison_table(written)
    assert set(comparison["model"]) == {"network", *BASELINE_NAMES}
    assert len(comparison) == 4 * 5 * 3
    assert (tmp_path / "baselines" / "comparison.csv").exists()
    again = add_baselines_to_metrics(metrics_path, {"linear": {}})
    assert json.loads(again.read_text())["baselines"] == {"linear": {}}


def test_comparison_table_has_the_ensemble_mean_rows_only_for_an_ensemble():
    metrics = {
        "layer1": {"test": {"r2": 0.80, "rmse": 0.04, "n": 10}},
        "baselines": {"linear": {"layer1": {"test": {"r2": 0.70, "rmse": 0.05, "n": 10}}}},
    }
    mean_test = {"r2": 0.83, "rmse": 0.038, "n": 10}
    table = comparison_table(metrics, {1: {"members": 3, "ensemble_mean_test": mean_test}})
    ensemble = table[table["model"] == "ensemble"]
    assert ensemble[["layer", "split", "r2"]].values.tolist() == [[1, "test", 0.83]]
    single = comparison_table(metrics, {1: {"members": 1, "ensemble_mean_test": mean_test}})
    assert set(single["model"]) == {"network", "linear"}
