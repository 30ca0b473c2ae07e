"""Scenario effects against the truth: the metrics, the flag split, the summary and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cropsm.analyze import scenarios as scen
from cropsm.report.html import scenario_agreement_html

TRUE = np.array([-0.03, -0.01, -0.004, 0.0, 0.002, 0.008, 0.02, 0.05])


def test_perfect_prediction():
    m = scen.effect_agreement(TRUE, TRUE.copy())
    assert m["sign_agreement"] == 1.0
    assert m["pearson_r"] == pytest.approx(1.0)
    assert m["slope"] == pytest.approx(1.0)
    assert m["rmse_m3_m-3"] == 0.0
    assert m["cells"] == 8
    assert m["cells_above_threshold"] == 5  # |t| > 0.005: -0.03, -0.01, 0.008, 0.02, 0.05
    assert m["true_sd_m3_m-3"] == pytest.approx(np.std(TRUE, ddof=1))


def test_sign_flipped_prediction():
    m = scen.effect_agreement(TRUE, -TRUE)
    assert m["sign_agreement"] == 0.0
    assert m["pearson_r"] == pytest.approx(-1.0)
    assert m["slope"] == pytest.approx(-1.0)
    assert m["rmse_m3_m-3"] == pytest.approx(2 * np.sqrt(np.mean(TRUE**2)))


def test_exaggerated_and_offset_predictions():
    doubled = scen.effect_agreement(TRUE, 3 * TRUE)
    assert doubled["slope"] == pytest.approx(3.0)
    assert doubled["pearson_r"] == pytest.approx(1.0)
    assert doubled["sign_agreement"] == 1.0
    assert doubled["rmse_m3_m-3"] == pytest.approx(2 * np.sqrt(np.mean(TRUE**2)))
    shifted = scen.effect_agreement(TRUE, TRUE + 0.006)  # slope and r blind to an offset
    assert shifted["slope"] == pytest.approx(1.0)
    assert shifted["pearson_r"] == pytest.approx(1.0)
    assert shifted["rmse_m3_m-3"] == pytest.approx(0.006)
    # only the -0.01 and -0.03 cells are scored for sign; -0.01 + 0.006 keeps its sign
    assert shifted["sign_agreement"] == 1.0
    pushed = scen.effect_agreement(TRUE, TRUE + 0.012)
    assert pushed["sign_agreement"] == pytest.approx(4 / 5)  # -0.01 became +0.002


def test_small_true_effects_are_not_scored_for_sign():
    t = np.array([0.004, -0.005, 0.01])
    p = np.array([-0.004, 0.005, 0.01])
    assert scen.sign_agreement_where_large(t, p) == 1.0
    assert np.isnan(scen.sign_agreement_where_large(t[:2], p[:2]))
    assert scen.sign_agreement_where_large(t, p, threshold=0.001) == pytest.approx(1 / 3)


def test_nans_and_degenerate_inputs():
    t = np.array([0.01, np.nan, 0.03, 0.02])
    p = np.array([0.01, 0.5, np.nan, 0.02])
    assert scen.rmse(t, p) == 0.0  # pairs 1 and 4 only
    assert np.isnan(scen.effect_slope(t, p))  # fewer than 3 pairs
    assert np.isnan(scen.effect_slope(np.ones(5), np.arange(5.0)))  # constant truth
    assert np.isnan(scen.rmse([np.nan], [1.0]))
    assert np.isnan(scen.spatial_sd([1.0]))
    m = scen.effect_agreement(np.array([np.nan]), np.array([np.nan]))
    assert m["cells"] == 0 and np.isnan(m["sign_agreement"])


def test_slope_is_ols_of_product_on_truth_with_intercept():
    rng = np.random.default_rng(0)
    t = rng.normal(0, 0.01, 200)
    p = 0.002 + 0.8 * t + rng.normal(0, 0.002, 200)
    expected = np.polyfit(t, p, 1)[0]
    assert scen.effect_slope(t, p) == pytest.approx(expected, rel=1e-10)
    assert 0.7 < expected < 0.9


def maps(product_values, truth_values, flags):
    """Two-pattern, one-layer maps on 6 cells, and their pattern flag."""
    patterns = ["ww_fl", "fl_mz"]
    dims = ("pattern", "layer", "cell")
    coords = {"pattern": patterns, "layer": [1]}
    product = xr.DataArray(np.asarray(product_values)[:, None, :], dims=dims, coords=coords)
    truth = xr.DataArray(np.asarray(truth_values)[:, None, :], dims=dims, coords=coords)
    flag = xr.DataArray(np.asarray(flags), dims=("pattern", "cell"), coords={"pattern": patterns})
    return product, truth, flag


def test_agreement_table_splits_by_pattern_flag():
    truth = [[0.02, 0.01, -0.01, 0.03, -0.02, 0.01], [0.01, 0.02, 0.03, -0.01, -0.02, 0.0]]
    product = [[0.02, 0.01, -0.01, -0.03, 0.02, -0.01], [0.01, 0.02, 0.03, -0.01, -0.02, 0.0]]
    flags = [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]]
    table = scen.agreement_with_truth(*maps(product, truth, flags))
    assert list(table.columns[:3]) == ["pattern", "layer", "pattern_flag"]
    rows = table.set_index(["pattern", "pattern_flag"])
    assert rows.loc[("ww_fl", "1"), "sign_agreement"] == 1.0  # right where observed
    assert rows.loc[("ww_fl", "1"), "cells"] == 3
    assert rows.loc[("ww_fl", "0"), "sign_agreement"] == 0.0  # flipped elsewhere
    assert rows.loc[("ww_fl", "0"), "pearson_r"] == pytest.approx(-1.0)
    assert rows.loc[("ww_fl", "all"), "cells"] == 6
    assert rows.loc[("ww_fl", "all"), "sign_agreement"] == pytest.approx(3 / 6)
    flag_one = scen.effect_agreement(np.array(truth[0][:3]), np.array(product[0][:3]))
    for key, value in flag_one.items():
        assert rows.loc[("ww_fl", "1"), key] == pytest.approx(value, nan_ok=True)
    assert rows.loc[("fl_mz", "0"), "cells"] == 0  # flag 1 everywhere
    summary = scen.agreement_summary(table)
    assert summary["flag1"]["maps"]["ww_fl"]["layer1"]["slope"] == pytest.approx(1.0)
    assert summary["flag1"]["maps_meeting_target"] == "2/2"
    assert summary["flag0"]["maps_meeting_target"] == "0/1"
    assert summary["flag0"]["maps"]["fl_mz"]["layer1"]["sign_agreement"] is None
    assert summary["all"]["median"]["sign_agreement"] == pytest.approx(0.75)


def test_without_flags_only_all_cells():
    truth = [[0.02, 0.01, -0.01, 0.03, -0.02, 0.01], [0.01, 0.02, 0.03, -0.01, -0.02, 0.0]]
    product, truth_map, _ = maps(truth, truth, [[1] * 6, [1] * 6])
    table = scen.agreement_with_truth(product, truth_map)
    assert set(table["pattern_flag"]) == {"all"}
    assert (table["sign_agreement"] == 1.0).all()


def test_report_table_puts_flag_one_beside_flag_zero():
    truth = [[0.02, 0.01, -0.01, 0.03, -0.02, 0.01], [0.01, 0.02, 0.03, -0.01, -0.02, 0.0]]
    product = [[0.02, 0.01, -0.01, -0.03, 0.02, -0.01], [0.01, 0.02, 0.03, -0.01, -0.02, 0.0]]
    flags = [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]]
    table = scen.agreement_with_truth(*maps(product, truth, flags))
    csv_like = pd.read_csv(pd.io.common.StringIO(table.to_csv(index=False)))  # as the report reads
    html = scenario_agreement_html(csv_like)
    assert html.count("<tr>") == 1 + 2  # header + two maps
    assert "flag 0: cells" in html and "2 of 2 flag-1 maps meet" in html
    old = pd.DataFrame({"pattern": ["ww_fl"], "layer": [1], "sign_agreement": [0.9]})
    assert "ww_fl" in scenario_agreement_html(old)


def test_tiny_run_scores_every_pattern_and_layer_by_flag(link_tiny_run, predict_app, tmp_path):
    """predict + analyze on the tiny virtual China: the table, the flags, run summary numbers."""
    import json

    from rich.console import Console
    from typer.testing import CliRunner

    from cropsm import catalog
    from cropsm.analyze.commands import run_analyze
    from cropsm.analyze.product import open_product

    run = link_tiny_run(tmp_path / "run")
    result = CliRunner().invoke(predict_app, ["predict", str(run), "--workers", "0"])
    assert result.exit_code == 0, result.output
    headline = run_analyze(run, console=Console(quiet=True))

    table = pd.read_csv(run / "analysis" / "truth_scenario_agreement.csv")
    assert len(table) == 6 * 5 * 3
    assert set(table["pattern_flag"].astype(str)) == {"1", "0", "all"}
    flags = table[table["pattern_flag"].astype(str) != "all"]
    cells = flags.groupby(["pattern", "layer"])["cells"].sum().to_numpy()
    total = table[table["pattern_flag"].astype(str) == "all"]["cells"].to_numpy()
    np.testing.assert_array_equal(cells, total)  # flag 1 and flag 0 split every cell
    # the flag-1 cells are those whose region has stations with the pattern
    product = open_product(run)
    stations = pd.read_csv(run / "inputs" / "twin-tiny-seed0" / "stations" / "stations.csv")
    for pattern in catalog.pattern_ids():
        n1 = table[(table["pattern"] == pattern) & (table["pattern_flag"].astype(str) == "1")]
        if pattern not in set(stations["pattern"]):
            assert (n1["cells"] == 0).all()
        flag_map = product["pattern_flag"].sel(scenario=pattern)
        assert int((flag_map == 1).sum()) >= n1["cells"].iloc[0]
    scored = table[table["cells"] > 2]
    assert scored["pearson_r"].between(-1, 1).all()
    assert (scored["rmse_m3_m-3"] >= 0).all() and (scored["true_sd_m3_m-3"] > 0).all()
    summary = json.loads((run / "analysis" / "analyze_summary.json").read_text())
    nested = summary["ran"]["truth"]["scenario_agreement"]
    assert nested == headline["truth_scenario_agreement"]  # what run_summary.json receives
    assert set(nested) == {"flag1", "flag0", "all"}
    assert set(nested["all"]["maps"]) == set(catalog.pattern_ids())
    # the report's key results read this very table: every pattern has its true effect
    from cropsm.report.key_results import scenario_effects, scenario_maps_warning

    effects = {e.pattern: e for e in scenario_effects(run)}
    assert set(effects) == set(catalog.pattern_ids())
    for pattern, effect in effects.items():
        row = table[
            (table["pattern"] == pattern)
            & (table["layer"] == 1)
            & (table["pattern_flag"].astype(str) == "all")
        ].iloc[0]
        assert effect.true_effect == pytest.approx(row["true_mean_m3_m-3"])
        assert not effect.verdict.startswith("not checked")
    warning = scenario_maps_warning(run)
    met = nested["flag1"]["maps_meeting_target"]
    assert (warning is None) == (met.split("/")[0] == met.split("/")[1])
