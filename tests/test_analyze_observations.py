"""Station analyses of section 3a: trends (Fig. 2), annual means per layer (Fig. 3), Fig. S3."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pymannkendall
import pytest

from cropsm.analyze.observations import (
    PAPER_MEAN_TREND_M3_M3_PER_YEAR,
    PAPER_TOP_BOTTOM_R,
    SM_COLUMN,
    TREND_COLUMN,
    analyze_observations,
    annual_station_means,
    layer_correlation,
    layer_mean_series,
    layer_series_trends,
    sen_mann_kendall,
    station_trends,
    trends_by_pattern,
)

TRUE_SLOPE = -2e-3  # m3 m-3 yr-1


def synthetic_stations(
    n_stations: int = 6, first_year: int = 2000, n_years: int = 8, seed: int = 0
):
    """Canonical meta and obs: every station declines by TRUE_SLOPE per year in every layer,
    except station S005, which rises; 12 observations per year, layer k offset by 0.02 k."""
    rng = np.random.default_rng(seed)
    ids = [f"S{i:03d}" for i in range(n_stations)]
    patterns = ["ww_mz", "fl_mz", "ww_mz", "fl_sb", "fl_mz", "ww_fl"][:n_stations]
    meta = pd.DataFrame(
        {
            "lat": np.linspace(30.0, 45.0, n_stations),
            "lon": np.linspace(105.0, 125.0, n_stations),
            "elevation": 100.0,
            "region": "HHH",
            "pattern": patterns,
            "first_year": first_year,
            "last_year": first_year + n_years - 1,
        },
        index=pd.Index(ids, name="station_id"),
    )
    rows = []
    for i, station in enumerate(ids):
        slope = -TRUE_SLOPE if station == "S005" else TRUE_SLOPE
        for y in range(n_years):
            dates = pd.date_range(f"{first_year + y}-04-01", periods=12, freq="10D")
            for layer in range(1, 6):
                level = 0.2 + 0.02 * layer + slope * y + 0.001 * np.sin(y + i)
                for date in dates:
                    rows.append((station, date, layer, level + rng.normal(0.0, 0.002)))
    obs = pd.DataFrame(rows, columns=["station_id", "date", "layer", "sm"])
    return meta, obs


def test_sen_mann_kendall_finds_a_known_trend():
    years = np.arange(1990, 2010)
    rng = np.random.default_rng(1)
    values = 0.25 + TRUE_SLOPE * (years - 1990) + rng.normal(0.0, 1e-3, years.size)
    out = sen_mann_kendall(years, values)
    assert out["slope"] == pytest.approx(TRUE_SLOPE, rel=0.1)
    assert out["p"] < 1e-4
    assert out["trend"] == "decreasing" and out["significant"]
    reference = pymannkendall.original_test(values)
    assert out["slope"] == pytest.approx(reference.slope)
    assert out["p"] == pytest.approx(reference.p)
    flat = sen_mann_kendall(years, 0.25 + rng.normal(0.0, 1e-3, years.size))
    assert flat["significant"] == (flat["p"] < 0.05)
    assert flat["trend"] == ("no trend" if not flat["significant"] else flat["trend"])


def test_sen_slope_is_per_year_with_gaps_and_any_order():
    years = np.array([2010, 2001, 2003, 2004, 2008, 2009])
    values = 0.3 + 0.004 * (years - 2000)  # exact line: every pairwise slope is 0.004
    out = sen_mann_kendall(years, values)
    assert out["slope"] == pytest.approx(0.004)
    assert out["n_years"] == 6
    short = sen_mann_kendall([2000, 2001], [0.1, 0.2])
    assert np.isnan(short["slope"]) and short["trend"] == "no trend"
    with pytest.raises(ValueError, match="unique"):
        sen_mann_kendall([2000, 2000, 2001], [0.1, 0.2, 0.3])


def test_annual_means_and_station_trends():
    meta, obs = synthetic_stations()
    # Two readings only in an extra year: dropped with the default minimum of 3 per year.
    extra = obs[(obs["station_id"] == "S000") & (obs["date"].dt.year == 2000)].head(2).copy()
    extra["date"] = extra["date"] + pd.DateOffset(years=20)
    annual = annual_station_means(pd.concat([obs, extra]))
    assert 2020 not in set(annual["year"])
    assert annual["n_observations"].eq(12).all()
    assert len(annual) == 6 * 5 * 8
    trends = station_trends(annual, meta)
    assert len(trends) == 6 * 5
    down = trends[trends["station_id"] != "S005"]
    assert down[TREND_COLUMN].to_numpy() == pytest.approx(TRUE_SLOPE, rel=0.3)
    assert (trends.loc[trends["station_id"] == "S005", TREND_COLUMN] > 0).all()
    assert set(trends["pattern"]) == set(meta["pattern"])
    # A station with fewer than 5 years gets no trend.
    few = annual[~((annual["station_id"] == "S001") & (annual["year"] >= 2004))]
    assert "S001" not in set(station_trends(few, meta)["station_id"])


def test_layer_series_trend_and_top_bottom_correlation():
    meta, obs = synthetic_stations()
    series = layer_mean_series(annual_station_means(obs))
    assert series["n_stations"].eq(6).all()
    trends = layer_series_trends(series)
    # 5 stations fall by 2e-3 and one rises by 2e-3: the mean falls by 4/6 * 2e-3 per year.
    assert trends[TREND_COLUMN].to_numpy() == pytest.approx(4 / 6 * TRUE_SLOPE, rel=0.2)
    corr = layer_correlation(series, 1, 5)
    wide = series.pivot(index="year", columns="layer", values=SM_COLUMN)
    assert corr["r"] == pytest.approx(np.corrcoef(wide[1], wide[5])[0, 1], abs=1e-12)
    assert corr["n_years"] == 8
    # By hand on a tiny series.
    hand = pd.DataFrame(
        {"layer": [1, 1, 1, 5, 5, 5, 5], "year": [1, 2, 3, 1, 2, 3, 4],
         SM_COLUMN: [0.1, 0.3, 0.2, 0.2, 0.4, 0.5, 0.9]}
    )  # fmt: skip
    a, b = np.array([0.1, 0.3, 0.2]), np.array([0.2, 0.4, 0.5])
    expected = np.sum((a - a.mean()) * (b - b.mean())) / np.sqrt(
        np.sum((a - a.mean()) ** 2) * np.sum((b - b.mean()) ** 2)
    )
    assert layer_correlation(hand)["r"] == pytest.approx(expected)
    assert layer_correlation(hand)["n_years"] == 3


def test_trends_by_pattern():
    meta, obs = synthetic_stations()
    trends = station_trends(annual_station_means(obs), meta)
    table = trends_by_pattern(trends)
    top = table[table["layer"] == 1].set_index("pattern")
    assert list(top.index) == ["ww_fl", "ww_mz", "fl_mz", "fl_sb"]  # catalog order
    assert top.loc["ww_mz", "n_stations"] == 2
    assert top.loc["ww_fl", "share_negative"] == 0.0  # S005 rises
    assert top.loc["fl_mz", "share_negative"] == 1.0


def test_analyze_observations_writes_numbers_and_figures(tmp_path):
    meta, obs = synthetic_stations()
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    meta.reset_index().to_csv(inputs / "stations.csv", index=False)
    obs.assign(date=obs["date"].dt.strftime("%Y-%m-%d")).to_csv(
        inputs / "observations.csv", index=False
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.resolved.toml").write_text(
        f"""
[inputs.files]
stations = "{inputs / "stations.csv"}"
observations = "{inputs / "observations.csv"}"
climate = ["{inputs / "none_*.nc"}"]
"""
    )
    result = analyze_observations(run_dir)
    assert result["paper_mean_trend_m3_m-3_yr-1"] == PAPER_MEAN_TREND_M3_M3_PER_YEAR
    assert result["paper_top_bottom_r"] == PAPER_TOP_BOTTOM_R
    assert result["mean_trend_all_layers_m3_m-3_yr-1"] == pytest.approx(4 / 6 * TRUE_SLOPE,
                                                                         rel=0.2)  # fmt: skip
    assert result["station_trends"]["layer1"]["share_negative"] == pytest.approx(5 / 6)
    for name in result["files"]:
        assert (run_dir / name).stat().st_size > 0, name
    for name in (
        "fig2_station_trends.png",
        "fig3_annual_mean_sm.png",
        "figS3_trends_by_pattern.png",
    ):
        assert (run_dir / "figures" / name).stat().st_size > 20_000
    comparison = pd.read_csv(run_dir / "analysis" / "observations_paper_comparison.csv")
    assert list(comparison["paper"]) == [PAPER_MEAN_TREND_M3_M3_PER_YEAR, PAPER_TOP_BOTTOM_R]
    summary = json.loads((run_dir / "analysis" / "observations_summary.json").read_text())
    assert summary["top_bottom_years"] == 8
