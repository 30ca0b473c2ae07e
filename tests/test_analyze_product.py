"""Product, satellite and scenario analyses on synthetic data with known answers (Figs. 7-10)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymannkendall as mk
import pytest
import xarray as xr

from cropsm import catalog
from cropsm.analyze import product as prod
from cropsm.analyze import satellite as sat
from cropsm.analyze import scenarios as scen

LAT = np.array([30.0, 31.0, 32.0, 33.0])
LON = np.array([110.0, 111.0, 112.0])
YEARS = np.arange(2001, 2006)
TREND = 0.003  # m3 m-3 yr-1
DELTA = {"ww_fl": 0.02, "ww_mz": -0.01, "sw_ct": 0.005, "rs_ct": -0.03, "fl_mz": 0.0, "fl_sb": 0.01}


def daily_time(first=2001, last=2005) -> pd.DatetimeIndex:
    return pd.date_range(f"{first}-01-01", f"{last}-12-31", freq="D")


def regions() -> xr.DataArray:
    """Rows of the grid: NE, N, HHH, outside China (0)."""
    codes = np.array([[1, 1, 1], [2, 2, 2], [3, 3, 3], [0, 0, 0]])
    return xr.DataArray(codes, dims=("lat", "lon"), coords={"lat": LAT, "lon": LON})


def trend_field(time: pd.DatetimeIndex, base: float = 0.2, slope: float = TREND) -> xr.DataArray:
    """SM = base + slope (year - 2001) + cell offset, constant within a year."""
    years = time.year.to_numpy() - YEARS[0]
    offset = 0.01 * np.arange(LAT.size * LON.size).reshape(LAT.size, LON.size)
    values = base + slope * years[:, None, None] + offset[None]
    return xr.DataArray(
        values,
        dims=("time", "lat", "lon"),
        coords={"time": time, "lat": LAT, "lon": LON},
        attrs={"units": "m3 m-3"},
    )


def synthetic_product(time=None) -> xr.DataArray:
    """(scenario, layer, time, lat, lon): reference with a known trend, patterns = ref + delta."""
    time = daily_time() if time is None else time
    base = trend_field(time)
    ref = xr.concat([base, base + 0.05], dim=pd.Index([1, 2], name="layer"))
    scenarios = [ref + DELTA[p] for p in catalog.pattern_ids()] + [ref]
    names = [*catalog.pattern_ids(), "reference"]
    sm = xr.concat(scenarios, dim=pd.Index(names, name="scenario"))
    sm = sm.transpose("scenario", "layer", "time", "lat", "lon")
    sm.attrs = {"units": "m3 m-3"}
    return sm.where(regions() > 0)


# ------------------------------------------------------------------------------------------
# Sen's slope, annual means, median annual SM
# ------------------------------------------------------------------------------------------


def test_theil_sen_matches_pymannkendall():
    rng = np.random.default_rng(3)
    series = rng.normal(size=(6, 15)).cumsum(axis=1)
    series[2, 4] = np.nan
    series[5, :] = np.nan
    slopes = prod.theil_sen_slope(series, np.arange(1990, 2005))
    for k in range(5):
        assert slopes[k] == pytest.approx(mk.sens_slope(series[k]).slope, rel=1e-12)
    assert np.isnan(slopes[5])
    assert np.isnan(prod.theil_sen_slope(np.ones((2, 1)), np.array([2000.0]))).all()


def test_median_annual_and_trend_recover_known_trend():
    time = daily_time().append(pd.DatetimeIndex(["2006-01-01"]))  # a partial year is dropped
    field = trend_field(time)
    field[-1] = 9.0
    field[:, 0, 0] = np.nan
    result = prod.magnitude_and_trend(field)
    offset = 0.01 * np.arange(LAT.size * LON.size).reshape(LAT.size, LON.size)
    expected_median = 0.2 + TREND * 2 + offset
    expected_median[0, 0] = np.nan
    np.testing.assert_allclose(result["median_annual_sm"].values, expected_median, atol=1e-12)
    trend = result["sm_trend"].values
    assert np.isnan(trend[0, 0])
    np.testing.assert_allclose(trend[np.isfinite(trend)], TREND, rtol=1e-9)
    assert result.attrs["years"] == "2001-2005"
    assert int(result["n_years"].values[1, 1]) == 5
    assert result["sm_trend"].attrs["units"] == "m3 m-3 yr-1"


def test_annual_mean_needs_enough_days():
    field = trend_field(daily_time(2001, 2002))
    gappy = field.where(field["time"].dt.month == 1)  # 31 valid days a year
    assert prod.annual_mean(gappy, min_valid_days=31).notnull().all()
    assert prod.annual_mean(gappy, min_valid_days=32).isnull().all()


def test_national_summary_trend_and_top_bottom_correlation():
    sm = synthetic_product().sel(scenario="reference")
    series = prod.national_annual_series(sm)
    table = prod.national_summary(series)
    np.testing.assert_allclose(table["sen_slope_m3_m-3_yr-1"], TREND, rtol=1e-9)
    np.testing.assert_allclose(table["pearson_r_with_layer1"], 1.0)


def test_no_trend_from_fewer_years_than_the_station_rule():
    """One rule for every trend: fewer than MIN_YEARS_FOR_TREND annual means give NaN."""
    from cropsm.analyze import MIN_YEARS_FOR_TREND
    from cropsm.analyze.observations import MIN_YEARS_FOR_TREND as station_rule

    assert station_rule == MIN_YEARS_FOR_TREND == 5
    for last, expected in ((2004, np.nan), (2005, TREND)):
        sm = synthetic_product(daily_time(2001, last)).sel(scenario="reference")
        table = prod.national_summary(prod.national_annual_series(sm))
        np.testing.assert_allclose(table["sen_slope_m3_m-3_yr-1"], expected, rtol=1e-9)
        cells = prod.magnitude_and_trend(sm.sel(layer=1))["sm_trend"].values
        china = (regions() > 0).values
        np.testing.assert_allclose(cells[china], expected, rtol=1e-9)
        assert np.isnan(cells[~china]).all()


def test_small_regions_are_not_shown_as_regions():
    region = regions().copy()
    region[0, 1:] = 0  # NE keeps one cell
    assert prod.small_regions(region, min_cells=2) == {"NE": 1}
    assert prod.small_regions(region, min_cells=1) == {}
    cropland = region > 0
    cropland[1, 0] = False  # N: 2 cropland cells of 3
    assert prod.small_regions(region, cropland, min_cells=3) == {"NE": 1, "N": 2}
    field = xr.DataArray(
        np.array([[1.0, 7.0, 7.0], [2.0, 4.0, 4.0], [5.0, 5.0, 5.0], [99.0, 99.0, 99.0]]),
        dims=("lat", "lon"),
        coords={"lat": LAT, "lon": LON},
    )
    means = prod.drop_small_regions(prod.regional_mean(field, region), {"NE": 1})
    assert np.isnan(means.sel(region="NE")) and means.sel(region="N") == pytest.approx(10 / 3)
    w = np.cos(np.deg2rad(LAT[:3]))
    chn = (w[0] * 1 + w[1] * 10 + w[2] * 15) / (w[0] + w[1] * 3 + w[2] * 3)
    assert means.sel(region="CHN") == pytest.approx(chn)  # NE's cell still counts in China
    frame = pd.DataFrame({"region": ["NE", "N", "CHN"], "rmse": [0.1, 0.2, 0.3], "n": [1, 3, 4]})
    dropped = prod.drop_small_regions(frame, ["NE"])
    assert np.isnan(dropped["rmse"].iloc[0]) and dropped["rmse"].iloc[1:].tolist() == [0.2, 0.3]
    assert dropped["n"].tolist() == [1, 3, 4]


def test_regional_mean_is_area_weighted_and_includes_china():
    field = xr.DataArray(
        np.array([[1.0, 1.0, np.nan], [2.0, 4.0, 4.0], [5.0, 5.0, 5.0], [99.0, 99.0, 99.0]]),
        dims=("lat", "lon"),
        coords={"lat": LAT, "lon": LON},
    )
    means = prod.regional_mean(field, regions())
    assert means.sel(region="NE") == pytest.approx(1.0)
    assert means.sel(region="N") == pytest.approx(10.0 / 3.0)
    assert np.isnan(means.sel(region="SW"))
    w = np.cos(np.deg2rad(LAT[:3]))
    chn = (w[0] * 2 + w[1] * 10 + w[2] * 15) / (w[0] * 2 + w[1] * 3 + w[2] * 3)
    assert means.sel(region="CHN") == pytest.approx(chn)


# ------------------------------------------------------------------------------------------
# Satellite comparison
# ------------------------------------------------------------------------------------------


def fine_satellite(time: pd.DatetimeIndex) -> xr.DataArray:
    """The product's top layer minus 0.05 with half the trend, on a 0.5-degree grid."""
    product = trend_field(time, base=0.15, slope=TREND / 2)
    fine = product.interp(
        lat=np.arange(29.75, 33.5, 0.5),
        lon=np.arange(109.75, 112.5, 0.5),
        method="nearest",
        kwargs={"fill_value": "extrapolate"},
    )
    return fine.sortby("lat", ascending=False)  # satellite files run north to south


def test_regrid_finer_grid_takes_the_mean():
    time = daily_time(2001, 2001)[:3]
    fine = fine_satellite(time)
    fine[:, 0, 0] = np.nan  # one missing sub-cell does not empty its target cell
    coarse = sat.regrid_to_grid(fine, LAT, LON)
    expected = trend_field(time, base=0.15, slope=TREND / 2)
    np.testing.assert_allclose(coarse.values, expected.values, atol=1e-12)


def test_satellite_comparison_on_matched_days():
    time = daily_time()
    sm = synthetic_product(time)
    top = sm.sel(scenario="reference", layer=1)
    satellite = fine_satellite(time)
    gap = (satellite["time"].dt.month <= 2).values
    satellite[gap] = np.nan
    top = top.copy()
    top[gap] = 5.0  # would spoil the product's means if unmatched days were used
    comparison = sat.compare_with_satellite(top, satellite, min_valid_days=30)
    inside = (regions() > 0).values
    diff = comparison["median_annual_sm_difference"].values
    # medians over 2001-2005 sit at 2003: (0.2 + 2 TREND) - (0.15 + 2 TREND / 2)
    np.testing.assert_allclose(diff[inside], 0.05 + TREND, atol=1e-12)
    np.testing.assert_allclose(comparison["product_sm_trend"].values[inside], TREND, rtol=1e-9)
    np.testing.assert_allclose(
        comparison["sm_trend_difference"].values[inside], TREND / 2, rtol=1e-9
    )
    assert np.isnan(diff[~inside]).all()
    summary = sat.comparison_summary(comparison).set_index("quantity")
    assert summary.loc["magnitude", "pearson_r"] == pytest.approx(1.0)
    assert summary.loc["magnitude", "mean_difference"] == pytest.approx(0.05 + TREND)
    assert summary.loc["trend", "same_sign_share"] == 1.0


def test_monthly_climatology_by_region():
    time = daily_time(2001, 2002)
    month = time.month.to_numpy().astype(float)
    code = regions().values
    values = month[:, None, None] * 0.01 + 0.1 * code[None]
    sm = xr.DataArray(
        values, dims=("time", "lat", "lon"), coords={"time": time, "lat": LAT, "lon": LON}
    )
    clim = sat.monthly_climatology_by_region(sm, regions())
    assert clim.dims == ("region", "month")
    np.testing.assert_allclose(clim.sel(region="N").values, 0.2 + 0.01 * np.arange(1, 13))
    np.testing.assert_allclose(clim.sel(region="NE").values, 0.1 + 0.01 * np.arange(1, 13))
    assert clim.sel(region="SW").isnull().all()
    frame = sat.monthly_comparison_by_region(sm, sm - 0.02, regions())
    np.testing.assert_allclose(frame["difference_m3_m-3"].dropna(), 0.02)
    assert set(frame["region"]) >= {"NE", "N", "HHH", "CHN"}


# ------------------------------------------------------------------------------------------
# Scenarios and the truth
# ------------------------------------------------------------------------------------------


def test_double_cropping_patterns_come_from_the_catalog():
    assert scen.double_cropping_patterns() == ("ww_mz", "rs_ct")


def test_scenario_differences_with_northeast_masked():
    sm = synthetic_product()
    diff = scen.median_annual_differences(sm, regions())
    assert diff.dims == ("pattern", "layer", "lat", "lon")
    ne = (regions() == 1).values
    china = (regions() > 0).values
    for pattern, delta in DELTA.items():
        values = diff.sel(pattern=pattern, layer=1).values
        if pattern in ("ww_mz", "rs_ct"):
            assert np.isnan(values[ne]).all()
            np.testing.assert_allclose(values[china & ~ne], delta, atol=1e-12)
        else:
            np.testing.assert_allclose(values[china], delta, atol=1e-12)
    unmasked = scen.median_annual_differences(sm)
    assert np.isfinite(unmasked.sel(pattern="ww_mz", layer=1).values[ne]).all()


def test_monthly_scenario_differences_by_region():
    sm = synthetic_product(daily_time(2001, 2002))
    monthly = scen.monthly_differences_by_region(sm, regions())
    assert monthly.dims == ("pattern", "layer", "region", "month")
    for pattern, delta in DELTA.items():
        part = monthly.sel(pattern=pattern, layer=2)
        for region in ("N", "HHH", "CHN"):
            np.testing.assert_allclose(part.sel(region=region).values, delta, atol=1e-12)
        ne = part.sel(region="NE").values
        if pattern in scen.double_cropping_patterns():
            assert np.isnan(ne).all()
        else:
            np.testing.assert_allclose(ne, delta, atol=1e-12)


def test_sign_agreement_and_correlation():
    a = np.array([1.0, -2.0, 3.0, np.nan, 0.5])
    b = np.array([2.0, -1.0, -3.0, 1.0, np.nan])
    assert scen.sign_agreement(a, b) == pytest.approx(2 / 3)
    assert np.isnan(scen.sign_agreement(np.array([np.nan]), np.array([1.0])))
    x = np.linspace(-1, 1, 20)
    assert prod.pearson_r(x, 3 * x + 1) == pytest.approx(1.0)
    assert prod.pearson_r(x, -x) == pytest.approx(-1.0)
    assert np.isnan(prod.pearson_r(x, np.ones_like(x)))


def test_agreement_with_truth():
    truth = scen.median_annual_differences(synthetic_product(daily_time(2001, 2002)))
    rng = np.random.default_rng(0)
    truth = truth + xr.DataArray(rng.normal(0, 0.01, truth.shape), dims=truth.dims)
    same = scen.agreement_with_truth(2 * truth, truth)
    assert (same["sign_agreement"] == 1.0).all()
    np.testing.assert_allclose(same["pearson_r"], 1.0)
    opposite = scen.agreement_with_truth(-truth, truth).set_index(["pattern", "layer"])
    assert opposite.loc[("ww_fl", 1), "sign_agreement"] == 0.0
    assert opposite.loc[("ww_fl", 1), "pearson_r"] == pytest.approx(-1.0)
    assert opposite.loc[("ww_fl", 1), "cells"] == 9


def test_error_by_region_in_cell_space():
    sm = synthetic_product(daily_time(2001, 2001))
    cell_lat = np.array([30.0, 31.0, 31.0, 32.0])
    cell_lon = np.array([110.0, 110.0, 112.0, 111.0])
    truth = scen.grid_to_cells(sm, cell_lat, cell_lon)
    region = scen.grid_to_cells(regions(), cell_lat, cell_lon)
    np.testing.assert_array_equal(region.values, [1, 2, 2, 3])
    bias = xr.DataArray([0.0, 0.01, -0.01, 0.02], dims="cell")
    errors = scen.error_by_region(truth + bias, truth, region).set_index(
        ["scenario", "layer", "region"]
    )
    n_days = 365
    assert errors.loc[("reference", 1, "N"), "bias_m3_m-3"] == pytest.approx(0.0, abs=1e-12)
    assert errors.loc[("reference", 1, "N"), "rmse_m3_m-3"] == pytest.approx(0.01)
    assert errors.loc[("ww_fl", 2, "HHH"), "rmse_m3_m-3"] == pytest.approx(0.02)
    assert errors.loc[("ww_fl", 2, "CHN"), "n"] == 4 * n_days
    assert errors.loc[("ww_fl", 2, "CHN"), "bias_m3_m-3"] == pytest.approx(0.005)
    assert np.isnan(errors.loc[("ww_fl", 2, "SW"), "rmse_m3_m-3"])
    grid = scen.cells_to_grid(truth.isel(time=0), cell_lat, cell_lon, LAT, LON)
    assert grid.sel(lat=31.0, lon=112.0, scenario="reference", layer=1) == pytest.approx(
        float(sm.sel(lat=31.0, lon=112.0, scenario="reference", layer=1).isel(time=0))
    )
    assert np.isnan(grid.sel(lat=33.0, lon=110.0, scenario="reference", layer=1))


def test_open_product_standardizes_the_store(tmp_path):
    sm = synthetic_product(daily_time(2001, 2001))
    patterns = sm.drop_sel(scenario="reference").rename(scenario="pattern")
    store = xr.Dataset({"sm": patterns, "reference_sm": sm.sel(scenario="reference", drop=True)})
    store["cropland"] = regions() > 0
    store.to_zarr(tmp_path / "product.zarr", zarr_format=3, consolidated=False)
    opened = prod.open_product(tmp_path)
    assert opened["sm"].dims == ("scenario", "layer", "time", "lat", "lon")
    assert list(opened["scenario"].values) == [*catalog.pattern_ids(), "reference"]
    np.testing.assert_allclose(opened["sm"].values, sm.values)
    assert "cropland" in opened
    with pytest.raises(FileNotFoundError, match="predict"):
        prod.open_product(tmp_path / "nothing")


# ------------------------------------------------------------------------------------------
# Files: numbers next to figures
# ------------------------------------------------------------------------------------------


def test_one_pass_statistics_equal_the_definitions():
    time = daily_time(2001, 2003)[40:]  # 2001 incomplete: dropped from the annual means
    sm = synthetic_product(time)
    rng = np.random.default_rng(5)
    sm = sm + xr.DataArray(rng.normal(0, 0.01, sm.shape), dims=sm.dims)
    sm = sm.where(xr.DataArray(rng.random(sm.shape) > 0.1, dims=sm.dims))  # gaps
    lazy = sm.chunk({"time": 100})  # chunks that straddle years and months
    cell_lat, cell_lon = np.array([30.0, 31.0, 32.0]), np.array([110.0, 112.0, 111.0])
    truth_cells = scen.grid_to_cells(sm, cell_lat, cell_lon).isel(time=slice(20, None)) + 0.01
    region_cells = scen.grid_to_cells(regions(), cell_lat, cell_lon)
    stats = prod.product_statistics(lazy, truth=truth_cells, truth_region=region_cells.values)
    annual = prod.annual_means_of_statistics(stats)
    np.testing.assert_array_equal(annual["year"], [2002, 2003])
    xr.testing.assert_allclose(annual, prod.annual_mean(sm).transpose(*annual.dims))
    climatology = prod.monthly_climatology(sm).transpose(*stats["monthly_climatology"].dims)
    xr.testing.assert_allclose(stats["monthly_climatology"], climatology)
    common = sm.isel(time=slice(20, None))
    truth_annual = prod.annual_means_of_statistics(stats, variable="truth_annual_mean")
    expected = prod.annual_mean(truth_cells.sel(time=common["time"]))
    np.testing.assert_allclose(truth_annual.values, expected.transpose(*truth_annual.dims).values)
    by_region = scen.error_by_region(
        scen.grid_to_cells(common, cell_lat, cell_lon), truth_cells, region_cells
    )
    pd.testing.assert_frame_equal(scen.error_table(stats), by_region, check_dtype=False)
    monthly = scen.monthly_differences_from_climatology(stats["monthly_climatology"], regions())
    xr.testing.assert_allclose(monthly, scen.monthly_differences_by_region(sm, regions()))


def test_analyses_write_numbers_and_figures(tmp_path):
    from cropsm.analyze import stage as analyze_stage

    time = daily_time(2001, 2005)  # five years: the fewest a trend is computed from
    sm = synthetic_product(time)
    dense = regions() == 2
    cell_lat, cell_lon = np.array([31.0, 32.0, 30.0]), np.array([110.0, 111.0, 112.0])
    truth = scen.grid_to_cells(sm, cell_lat, cell_lon)
    region_cells = scen.grid_to_cells(regions(), cell_lat, cell_lon)
    stats = prod.product_statistics(sm, truth=truth, truth_region=region_cells.values)
    product = analyze_stage.analyze_product(stats, tmp_path, dense)
    assert product["national_trend_layer1_m3_m-3_yr-1"] == pytest.approx(TREND)
    satellite = analyze_stage.analyze_satellite(sm, fine_satellite(time), regions(), tmp_path)
    assert satellite["magnitude_r"] == pytest.approx(1.0)
    result, diff, effects = analyze_stage.analyze_scenarios(stats, regions(), tmp_path, dense)
    assert effects is None and "significance" not in result  # no ensemble members
    assert result["ne_masked_patterns"] == ["ww_mz", "rs_ct"]
    truth_result = analyze_stage.analyze_against_truth(stats, region_cells, diff, tmp_path)
    assert truth_result["layer1_sign_agreement"]["ww_fl"] == 1.0
    assert truth_result["reference_rmse_chn_by_layer_m3_m-3"]["layer1"] == 0.0
    written = product["files"] + satellite["files"] + result["files"] + truth_result["files"]
    for rel in written:
        assert (tmp_path / rel).stat().st_size > 0, rel
    names = {p.name for p in (tmp_path / "figures").glob("*.png")}
    expected = {
        "fig7ab_product_all_layers.png",
        "fig7cf_satellite_comparison.png",
        "fig8_monthly_by_region.png",
        "fig9_scenario_differences.png",
        "fig10_scenario_monthly_differences.png",
        "truth_product_error.png",
    }
    assert expected <= names
    nc = xr.open_dataset(tmp_path / "analysis" / "scenario_differences.nc")
    assert nc["median_annual_sm_difference"].attrs["units"] == "m3 m-3"
    monthly = pd.read_csv(tmp_path / "analysis" / "scenario_monthly_differences.csv")
    assert set(monthly.columns) == {"pattern", "layer", "region", "month", "sm_difference_m3_m-3"}
