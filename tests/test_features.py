"""Tests of cropsm.features: feature groups, climate features and the station table."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cropsm.catalog import pattern_ids
from cropsm.errors import InputError
from cropsm.features import climate as fclim
from cropsm.features import groups as fgroups
from cropsm.features.station_table import (
    TABLE_UNITS,
    build_station_table,
    climate_at_cells,
    nearest_cell_index,
    read_station_table,
    station_table_path,
    write_station_table,
)

# --------------------------------------------------------------------------------------------
# VPD


def test_saturation_vapour_pressure_at_zero_is_magnus_constant():
    assert fclim.saturation_vapour_pressure_kpa(0.0) == pytest.approx(0.6108)


def test_vpd_hand_values():
    # e_s(25) = 0.6108 exp(17.27*25/262.3) = 3.1678 kPa; e_s(15) = 1.7053 kPa
    assert fclim.vapour_pressure_deficit_kpa(25.0, 15.0) == pytest.approx(1.4624, abs=1e-4)
    # e_s(30) = 0.6108 exp(518.1/267.3) = 4.2431 kPa, e_s(10) = 0.6108 exp(172.7/247.3) = 1.2280
    assert fclim.vapour_pressure_deficit_kpa(30.0, 10.0) == pytest.approx(3.0151, abs=1e-4)


def test_vpd_zero_when_saturated_clipped_and_nan_kept():
    t = np.array([10.0, 5.0, -3.0, np.nan])
    td = np.array([10.0, 6.0, -3.0, 1.0])
    vpd = fclim.vapour_pressure_deficit_kpa(t, td)
    np.testing.assert_array_equal(vpd[:3], [0.0, 0.0, 0.0])
    assert np.isnan(vpd[3])


def test_vpd_on_dataarray_keeps_type():
    t = xr.DataArray(np.array([[25.0, 20.0]]), dims=("time", "cell"))
    td = xr.DataArray(np.array([[15.0, 25.0]]), dims=("time", "cell"))
    vpd = fclim.vapour_pressure_deficit_kpa(t, td)
    assert isinstance(vpd, xr.DataArray)
    np.testing.assert_allclose(vpd.values, [[1.4624, 0.0]], atol=1e-4)


# --------------------------------------------------------------------------------------------
# accumulated precipitation and day of year

DAYS = pd.date_range("2000-01-01", "2001-12-31", freq="D")


def _at(series: np.ndarray, day: str) -> float:
    return float(series[DAYS.get_loc(pd.Timestamp(day))])


def test_accumulated_precipitation_of_one_mm_per_day_counts_days():
    ones = np.ones(DAYS.size)
    p1 = fclim.accumulated_precipitation_mm(ones, DAYS, 1)
    # window [t - 1 month, t - 1 day]
    assert np.isnan(_at(p1, "2000-01-01"))
    assert np.isnan(_at(p1, "2000-01-31"))  # starts 1999-12-31, before the data
    assert _at(p1, "2000-02-01") == 31  # all of January 2000
    assert _at(p1, "2000-03-01") == 29  # February of a leap year
    assert _at(p1, "2001-03-01") == 28  # February of a common year
    assert _at(p1, "2001-03-31") == 31  # 2001-02-28 ... 2001-03-30 (month end clipped)
    assert _at(p1, "2000-03-31") == 31  # 2000-02-29 ... 2000-03-30
    assert _at(p1, "2001-03-15") == 28  # 2001-02-15 ... 2001-03-14
    assert _at(p1, "2000-03-15") == 29  # 2000-02-15 ... 2000-03-14
    p12 = fclim.accumulated_precipitation_mm(ones, DAYS, 12)
    assert np.isnan(_at(p12, "2000-12-31"))
    assert _at(p12, "2001-01-01") == 366  # all of leap year 2000
    assert _at(p12, "2001-03-01") == 365  # 2000-03-01 ... 2001-02-28
    assert _at(p12, "2001-02-28") == 366  # 2000-02-28 ... 2001-02-27 (incl. 2000-02-29)
    assert _at(p12, "2001-03-31") == 365  # 2000-03-31 ... 2001-03-30
    assert np.isnan(p12[: DAYS.get_loc(pd.Timestamp("2001-01-01"))]).all()
    assert not np.isnan(p12[DAYS.get_loc(pd.Timestamp("2001-01-01")) :]).any()


def test_accumulated_precipitation_of_a_single_rainy_day():
    rain = np.zeros(DAYS.size)
    rain[DAYS.get_loc(pd.Timestamp("2001-02-15"))] = 10.0
    p1 = fclim.accumulated_precipitation_mm(rain, DAYS, 1)
    assert _at(p1, "2001-02-15") == 0  # the day itself is not in its window
    assert _at(p1, "2001-02-16") == 10
    assert _at(p1, "2001-03-15") == 10  # window starts 2001-02-15
    assert _at(p1, "2001-03-16") == 0
    p2 = fclim.accumulated_precipitation_mm(rain, DAYS, 2)
    assert _at(p2, "2001-04-15") == 10
    assert _at(p2, "2001-04-16") == 0
    # rain on 2000-01-31: 1 month after it ends on 2000-02-29 (31 Jan + 1 month clips to 29 Feb)
    rain = np.zeros(DAYS.size)
    rain[DAYS.get_loc(pd.Timestamp("2000-01-31"))] = 5.0
    p1 = fclim.accumulated_precipitation_mm(rain, DAYS, 1)
    assert _at(p1, "2000-02-29") == 5  # window 2000-01-29 ... 2000-02-28
    assert _at(p1, "2000-03-01") == 0  # window 2000-02-01 ... 2000-02-29


def _reference_accumulation(precip: np.ndarray, dates: pd.DatetimeIndex, months: int):
    out = np.full(precip.shape, np.nan)
    for i, t in enumerate(dates):
        start = t - pd.DateOffset(months=months)
        if start < dates[0]:
            continue
        window = (dates >= start) & (dates <= t - pd.Timedelta(days=1))
        out[i] = precip[window].sum()
    return out


@pytest.mark.parametrize("months", [1, 3, 12])
def test_accumulated_precipitation_matches_loop_reference(months):
    dates = DAYS[:500]
    rng = np.random.default_rng(months)
    precip = rng.gamma(0.5, 4.0, size=(dates.size, 2, 3)).astype(np.float32)
    got = fclim.accumulated_precipitation_mm(precip, dates, months)
    assert got.dtype == np.float32 and got.shape == precip.shape
    for j in range(2):
        for k in range(3):
            ref = _reference_accumulation(precip[:, j, k].astype(np.float64), dates, months)
            np.testing.assert_allclose(got[:, j, k], ref, rtol=1e-5, equal_nan=True)


def test_accumulated_precipitation_nan_day_only_spoils_its_windows():
    precip = np.ones(DAYS.size)
    precip[DAYS.get_loc(pd.Timestamp("2001-06-10"))] = np.nan
    p1 = fclim.accumulated_precipitation_mm(precip, DAYS, 1)
    assert _at(p1, "2001-06-10") == 31
    assert np.isnan(_at(p1, "2001-06-11"))
    assert np.isnan(_at(p1, "2001-07-10"))
    assert _at(p1, "2001-07-11") == 30


def test_accumulated_precipitation_on_dataarray_and_gaps():
    da = xr.DataArray(
        np.ones((3, DAYS.size)), dims=("cell", "time"), coords={"time": DAYS}, name="p"
    )
    p1 = fclim.accumulated_precipitation_mm(da, None, 1)
    assert p1.dims == ("cell", "time")
    assert p1.attrs["units"] == "mm"
    assert float(p1.sel(time="2000-03-01")[0]) == 29
    with pytest.raises(ValueError, match="consecutive"):
        fclim.accumulated_precipitation_mm(np.ones(3), DAYS[[0, 1, 3]], 1)
    with pytest.raises(ValueError):
        fclim.accumulated_precipitation_mm(np.ones(3), DAYS[:3], 0)


def test_recent_precipitation_sums_the_days_before():
    rain = np.zeros(DAYS.size)
    rain[DAYS.get_loc(pd.Timestamp("2001-02-15"))] = 10.0
    rain[DAYS.get_loc(pd.Timestamp("2001-02-17"))] = 4.0
    p3 = fclim.recent_precipitation_mm(rain, DAYS, 3)
    p7 = fclim.recent_precipitation_mm(rain, DAYS, 7)
    assert np.isnan(p3[:3]).all() and not np.isnan(p3[3:]).any()
    assert np.isnan(p7[:7]).all() and p7[7] == 0
    assert _at(p3, "2001-02-15") == 0  # the day itself is not in its window
    assert _at(p3, "2001-02-16") == 10
    assert _at(p3, "2001-02-18") == 14  # 15th ... 17th
    assert _at(p3, "2001-02-19") == 4  # 16th ... 18th
    assert _at(p3, "2001-02-21") == 0
    assert _at(p7, "2001-02-22") == 14  # 15th ... 21st
    assert _at(p7, "2001-02-23") == 4
    # the same as a loop over the previous N days, float32 kept, on a DataArray too
    rng = np.random.default_rng(3)
    precip = rng.gamma(0.5, 4.0, size=(60, 4)).astype(np.float32)
    got = fclim.recent_precipitation_mm(precip, DAYS[:60], 7)
    assert got.dtype == np.float32
    ref = np.array([precip[i - 7 : i].sum(axis=0) for i in range(7, 60)])
    np.testing.assert_allclose(got[7:], ref, rtol=1e-5)
    da = xr.DataArray(precip.T, dims=("cell", "time"), coords={"time": DAYS[:60]})
    np.testing.assert_allclose(fclim.recent_precipitation_mm(da, None, 7).values.T, got)
    with pytest.raises(ValueError, match="days"):
        fclim.recent_precipitation_mm(precip, DAYS[:60], 0)


def test_day_of_year():
    doy = fclim.day_of_year(pd.to_datetime(["2000-01-01", "2000-12-31", "2001-12-31"]))
    np.testing.assert_array_equal(doy, [1, 366, 365])


# --------------------------------------------------------------------------------------------
# the tiny world

LAT = 30.0 + 0.25 * np.arange(4)
LON = 110.0 + 0.25 * np.arange(5)
TIME = pd.date_range("2000-01-01", "2001-12-31", freq="D")


def _climate() -> xr.Dataset:
    rng = np.random.default_rng(1)
    shape = (TIME.size, LAT.size, LON.size)

    def var(values, units, long_name):
        return (
            ("time", "lat", "lon"),
            values.astype(np.float32),
            {"units": units, "long_name": long_name},
        )

    tair = rng.normal(15.0, 8.0, shape)
    return xr.Dataset(
        {
            "precipitation": var(rng.gamma(0.5, 5.0, shape), "mm d-1", "precipitation"),
            "air_temperature": var(tair, "degC", "air temperature"),
            "dewpoint_temperature": var(tair - rng.gamma(2.0, 2.0, shape), "degC", "dewpoint"),
            "net_solar_radiation": var(rng.uniform(2, 25, shape), "MJ m-2 d-1", "ssr"),
            "wind_speed": var(rng.uniform(0, 8, shape), "m s-1", "wind speed"),
            "cloud_cover": var(rng.uniform(0, 1, shape), "1", "cloud cover"),
        },
        coords={"time": TIME, "lat": LAT, "lon": LON},
    )


def _static() -> xr.Dataset:
    rng = np.random.default_rng(2)
    shape = (5, LAT.size, LON.size)

    def soil(lo, hi, units):
        return (
            ("layer", "lat", "lon"),
            rng.uniform(lo, hi, shape),
            {"units": units, "long_name": "soil"},
        )

    ds = xr.Dataset(
        {
            "elevation": (("lat", "lon"), rng.uniform(0, 2000, shape[1:]), {"units": "m"}),
            "ph": soil(5, 8, "1"),
            "sand": soil(10, 60, "%"),
            "silt": soil(10, 50, "%"),
            "clay": soil(5, 40, "%"),
            "bulk_density": soil(1.1, 1.6, "g cm-3"),
        },
        coords={"layer": np.arange(1, 6), "lat": LAT, "lon": LON},
    )
    # station B's cell (lat index 3, lon index 4) has no layer-3 clay
    ds["clay"][2, 3, 4] = np.nan
    return ds


@dataclass
class Stations:
    meta: pd.DataFrame
    obs: pd.DataFrame


# station -> (lat, lon, nearest lat index, nearest lon index)
STATION_CELLS = {
    "A": (30.30, 110.26, 1, 1),
    "B": (30.85, 110.98, 3, 4),  # 0.1 deg beyond the last lat centre: inside (half cell 0.125)
    "C": (30.00, 110.62, 0, 2),  # 110.62 is nearer 110.5 than 110.75
}


def _stations() -> Stations:
    meta = pd.DataFrame(
        {
            "lat": [v[0] for v in STATION_CELLS.values()],
            "lon": [v[1] for v in STATION_CELLS.values()],
            "elevation": [100.0, 200.0, 300.0],
            "region": ["N", "HHH", "NE"],
            "pattern": ["ww_mz", "ww_fl", "fl_sb"],
            "first_year": 2000,
            "last_year": 2002,
        },
        index=pd.Index(list(STATION_CELLS), name="station_id"),
    )
    rows = []
    rng = np.random.default_rng(3)
    for sid in STATION_CELLS:
        for date in pd.date_range("2001-04-01", "2001-10-31", freq="10D"):
            for layer in range(1, 6):
                rows.append((sid, date, layer, rng.uniform(0.1, 0.4)))
    # A on 2001-05-05: layers 1 and 3 only
    rows += [("A", pd.Timestamp("2001-05-05"), 1, 0.21), ("A", pd.Timestamp("2001-05-05"), 3, 0.23)]
    # C in 2000: the 12-month look-back starts before the climate -> dropped (NaN features)
    rows += [("C", pd.Timestamp("2000-06-01"), k, 0.3) for k in (1, 2)]
    # B after the climate period -> dropped (outside)
    rows += [("B", pd.Timestamp("2002-01-05"), 1, 0.3)]
    obs = pd.DataFrame(rows, columns=["station_id", "date", "layer", "sm"])
    return Stations(meta, obs)


@pytest.fixture(scope="module")
def world():
    return _stations(), _climate(), _static()


@pytest.fixture(scope="module")
def built(world):
    stations, climate, static = world
    return build_station_table(stations, climate, static)


CONTRACT_COLUMNS = (
    ["station_id", "date", "region", "pattern", "lat", "lon", "precip"]
    + [f"precip_{n}m" for n in (1, 2, 3, 4, 5, 12)]
    + ["precip_3d", "precip_7d"]
    + ["ssr", "tair", "vpd", "wind", "cloud"]
    + [f"{s}_l{k}" for k in range(1, 6) for s in ("ph", "sand", "silt", "clay", "bd")]
    + ["elevation", "doy"]
    + ["doy_sin", "doy_cos", "cal_kc", "cal_root_cm", "cal_crop_on"]
    + ["wb_top", "wb_sub", "wb_top_bare", "wb_sub_bare"]
    + ["clim_precip_mm_yr", "clim_aridity"]
    + ["loc_x", "loc_y", "loc_z"]
    + [f"sm_l{k}" for k in range(1, 6)]
)


def test_station_table_columns_and_units(built):
    table, _ = built
    assert list(table.columns) == CONTRACT_COLUMNS
    units = table.attrs["units"]
    assert units["precip"] == "mm d-1" and units["precip_12m"] == "mm" == units["precip_7d"]
    assert units["ssr"] == "MJ m-2 d-1" and units["tair"] == "degC" and units["vpd"] == "kPa"
    assert units["wind"] == "m s-1" and units["cloud"] == "1" and units["elevation"] == "m"
    assert units["ph_l2"] == "1" and units["sand_l2"] == "%" and units["bd_l5"] == "g cm-3"
    assert units["sm_l3"] == "m3 m-3" and units["doy"] == "day"
    assert units["wb_top"] == "1" and units["cal_root_cm"] == "cm"
    assert units["clim_precip_mm_yr"] == "mm yr-1"
    assert table["wb_sub"].between(0, 1).all() and table["cal_crop_on"].isin([0, 1]).all()
    assert table["date"].dtype == "datetime64[ns]"
    assert list(table["pattern"].cat.categories) == list(pattern_ids())
    assert not table.duplicated(["station_id", "date"]).any()
    assert table[["station_id", "date"]].equals(
        table[["station_id", "date"]].sort_values(["station_id", "date"]).reset_index(drop=True)
    )


def test_station_table_values_are_the_nearest_cell_values(world, built):
    stations, climate, static = world
    table, _ = built
    grid_features = fclim.climate_features(climate)
    rows = table.sample(40, random_state=0) if len(table) > 40 else table
    for _, row in rows.iterrows():
        _, _, i, j = STATION_CELLS[row["station_id"]]
        # nearest by brute force agrees with the documented indices
        assert np.argmin(np.abs(LAT - row["lat"])) == i
        assert np.argmin(np.abs(LON - row["lon"])) == j
        t = TIME.get_loc(row["date"])
        assert row["precip"] == climate["precipitation"].values[t, i, j]
        assert row["tair"] == climate["air_temperature"].values[t, i, j]
        assert row["ssr"] == climate["net_solar_radiation"].values[t, i, j]
        assert row["wind"] == climate["wind_speed"].values[t, i, j]
        assert row["cloud"] == climate["cloud_cover"].values[t, i, j]
        for name in ("vpd", "precip_1m", "precip_5m", "precip_12m"):
            assert row[name] == grid_features[name].values[t, i, j]
        assert row["elevation"] == static["elevation"].values[i, j]
        for k in range(1, 6):
            assert row[f"ph_l{k}"] == static["ph"].sel(layer=k).values[i, j]
            assert row[f"bd_l{k}"] == static["bulk_density"].sel(layer=k).values[i, j]
        assert row["doy"] == row["date"].dayofyear
        assert row["lat"] == stations.meta.loc[row["station_id"], "lat"]
        assert row["region"] == stations.meta.loc[row["station_id"], "region"]
        assert row["pattern"] == stations.meta.loc[row["station_id"], "pattern"]


def test_station_table_pivot(world, built):
    stations, _, _ = world
    table, _ = built
    row = table[(table["station_id"] == "A") & (table["date"] == "2001-05-05")]
    assert len(row) == 1
    assert row["sm_l1"].item() == 0.21 and row["sm_l3"].item() == 0.23
    assert row[["sm_l2", "sm_l4", "sm_l5"]].isna().all(axis=None)
    obs = stations.obs.set_index(["station_id", "date", "layer"])["sm"]
    for _, r in table.sample(20, random_state=1).iterrows():
        for k in (1, 2, 4, 5):
            assert r[f"sm_l{k}"] == obs[(r["station_id"], r["date"], k)]


def test_station_table_drops_and_counts(world, built):
    stations, _, _ = world
    table, report = built
    n_regular = 3 * len(pd.date_range("2001-04-01", "2001-10-31", freq="10D"))
    assert report["observations_in"] == len(stations.obs)
    assert report["station_dates_in"] == n_regular + 3
    assert report["dropped_outside_climate_period"] == 1
    assert report["dropped_nan_features"] == 1  # C on 2000-06-01
    assert report["nan_features_by_column"] == {"precip_12m": 1}
    assert report["masked_nan_soil"]["sm_l3"] == n_regular // 3  # B's clay_l3 is NaN
    assert report["dropped_no_layer_left"] == 0
    assert report["rows_out"] == len(table) == n_regular + 1
    assert report["cells"] == 3
    assert report["observations_out_by_layer"]["sm_l3"] == 2 * (n_regular // 3) + 1
    assert report["observations_out_by_layer"]["sm_l1"] == n_regular + 1
    assert table.loc[table["station_id"] == "B", "sm_l3"].isna().all()
    assert not (table["date"] < "2001-01-01").any()
    assert not (table["date"] > "2001-12-31").any()
    assert report["climate_period"] == ["2000-01-01", "2001-12-31"]


def test_station_outside_grid_is_an_input_error(world):
    stations, climate, static = world
    meta = stations.meta.copy()
    meta.loc["B", "lat"] = 30.9  # 0.15 beyond the last centre, more than half a cell
    with pytest.raises(InputError, match="'B'.*outside"):
        build_station_table(Stations(meta, stations.obs), climate, static)


def test_nearest_cell_index_edges_and_ties():
    coord = np.array([0.0, 1.0, 2.0])
    index, inside = nearest_cell_index(coord, np.array([-0.5, -0.51, 0.5, 1.6, 2.5, 2.6]))
    np.testing.assert_array_equal(index, [0, 0, 0, 2, 2, 2])
    np.testing.assert_array_equal(inside, [True, False, True, True, True, False])


def test_bad_observations_are_input_errors(world):
    stations, climate, static = world
    dup = pd.concat([stations.obs, stations.obs.iloc[:1]], ignore_index=True)
    with pytest.raises(InputError, match="duplicate"):
        build_station_table(Stations(stations.meta, dup), climate, static)
    unknown = stations.obs.copy()
    unknown.loc[0, "station_id"] = "Z"
    with pytest.raises(InputError, match="'Z'"):
        build_station_table(Stations(stations.meta, unknown), climate, static)
    meta = stations.meta.copy()
    meta.loc["A", "pattern"] = "rice"
    with pytest.raises(InputError, match="rice"):
        build_station_table(Stations(meta, stations.obs), climate, static)


def test_missing_climate_group_is_an_error_unless_switched_off(world):
    stations, climate, static = world
    no_wind = climate.drop_vars("wind_speed")
    with pytest.raises(InputError, match=r"'wind'.*wind_speed.*groups_off = \[\"wind\"\]"):
        build_station_table(stations, no_wind, static)
    table, _ = build_station_table(stations, no_wind, static, groups_off=["wind"])
    assert "wind" not in table.columns and "tair" in table.columns


def test_lazy_dask_climate_gives_the_same_table(world, built):
    stations, climate, static = world
    table, _ = built
    lazy_table, _ = build_station_table(stations, climate.chunk({"time": 100}), static)
    pd.testing.assert_frame_equal(lazy_table, table)


def test_climate_read_once_at_cells_gives_the_same_table(world, built):
    stations, climate, static = world
    table, _ = built
    meta = stations.meta
    iy, _ = nearest_cell_index(climate["lat"].values, meta["lat"].to_numpy(), name="lat")
    ix, _ = nearest_cell_index(climate["lon"].values, meta["lon"].to_numpy(), name="lon")
    # more cells than the stations use, repeated and out of order: each read once
    extra_y, extra_x = np.r_[iy[::-1], 0, 0], np.r_[ix[::-1], 0, 0]
    cells = climate_at_cells(climate, extra_y, extra_x)
    keys = cells["cell_ilat"].values * climate.sizes["lon"] + cells["cell_ilon"].values
    assert np.all(np.diff(keys) > 0) and set(keys) >= set(iy * climate.sizes["lon"] + ix)
    again, _ = build_station_table(stations, climate, static, climate_cells=cells)
    pd.testing.assert_frame_equal(again, table)
    # a station whose cell was not read is an error, not a silent wrong table
    one = cells.isel(cell=[0])
    if len(set(zip(iy, ix, strict=True))) > 1:
        with pytest.raises(ValueError, match="lacks"):
            build_station_table(stations, climate, static, climate_cells=one)


def test_write_and_read_station_table(tmp_path, built):
    table, _ = built
    path = station_table_path(tmp_path)
    assert path == tmp_path / "features" / "station_table.parquet"
    write_station_table(table, path)
    assert [p.name for p in path.parent.iterdir()] == ["station_table.parquet"]
    back = read_station_table(path)
    pd.testing.assert_frame_equal(back, table, check_dtype=False, check_categorical=False)
    assert back.attrs["units"] == {c: u for c, u in TABLE_UNITS.items() if c in table}


# --------------------------------------------------------------------------------------------
# feature groups


def test_feature_groups_registry():
    assert list(fgroups.FEATURE_GROUPS) == [
        "precipitation", "soil", "elevation", "temperature", "vpd", "pattern", "ssr", "wind",
        "cloud",
    ]  # fmt: skip
    assert len(fgroups.FEATURE_GROUPS["precipitation"]) == 7
    assert fgroups.FEATURE_GROUPS["soil"] == ("ph", "sand", "silt", "clay", "bd")
    assert fgroups.PATTERN_ONE_HOT == tuple(f"pattern_{p}" for p in pattern_ids())
    assert fgroups.ALWAYS == ("doy",) and fgroups.UPPER == "sm_pred_upper"


def test_layer_feature_names_order_is_stable():
    names1 = fgroups.layer_feature_names(1)
    assert names1 == (
        ["precip", "precip_1m", "precip_2m", "precip_3m", "precip_4m", "precip_5m", "precip_12m"]
        + ["ph_l1", "sand_l1", "silt_l1", "clay_l1", "bd_l1", "elevation", "tair", "vpd"]
        + list(fgroups.PATTERN_ONE_HOT)
        + ["ssr", "wind", "cloud", "doy"]
    )
    names3 = fgroups.layer_feature_names(3)
    assert names3[-1] == "sm_pred_upper" and names3[-2] == "doy"
    assert "ph_l3" in names3 and "ph_l1" not in names3
    assert names3 == fgroups.layer_feature_names(3, ())
    with pytest.raises(ValueError):
        fgroups.layer_feature_names(6)


def test_recent_precipitation_is_an_input_of_the_crop_set_only():
    recent = ["precip_3d", "precip_7d"]
    for layer in (1, 3, 5):
        names = fgroups.layer_feature_names(layer, feature_set="crop")
        assert names[7:9] == recent  # after the paper's seven precipitation inputs
        assert not any(n in fgroups.layer_feature_names(layer) for n in recent)  # paper set
        off = fgroups.layer_feature_names(layer, ["precipitation"], feature_set="crop")
        assert not any(n.startswith("precip") for n in off)
    assert fgroups.group_columns("precipitation", feature_set="crop")[-2:] == recent


@pytest.mark.parametrize("group", list(fgroups.FEATURE_GROUPS))
def test_groups_off_removes_exactly_the_group(group):
    full = fgroups.layer_feature_names(2)
    reduced = fgroups.layer_feature_names(2, [group])
    removed = [n for n in full if n not in reduced]
    expected = {
        "soil": [f"{s}_l2" for s in fgroups.SOIL_PROPERTIES],
        "pattern": list(fgroups.PATTERN_ONE_HOT),
    }.get(group, list(fgroups.FEATURE_GROUPS[group]))
    assert removed == expected
    assert reduced == [n for n in full if n not in expected]
    cols = fgroups.required_columns([group])
    assert set(fgroups.required_columns()) - set(cols) == set(fgroups.group_columns(group))


def test_unknown_group_is_an_error():
    with pytest.raises(ValueError, match="'rain'.*precipitation, soil"):
        fgroups.validate_groups(["rain"])
    with pytest.raises(ValueError, match="always"):
        fgroups.layer_feature_names(1, ["doy"])
    assert fgroups.validate_groups(["wind", "wind", "soil"]) == ("wind", "soil")


def test_missing_group_in_the_data(built):
    table, _ = built
    assert fgroups.missing_groups(table.columns) == {}
    no_wind = table.drop(columns=["wind", "bd_l4"])
    assert fgroups.missing_groups(no_wind.columns) == {"soil": ["bd_l4"], "wind": ["wind"]}
    assert fgroups.missing_groups(no_wind.columns, ["wind"], layers=[1]) == {}
    with pytest.raises(InputError, match=r"'wind'.*groups_off = \[\"wind\"\].*\[features\]"):
        fgroups.require_groups(no_wind.columns, ["soil"])
    fgroups.require_groups(no_wind.columns, ["soil", "wind"])


def test_pattern_one_hot():
    onehot = fgroups.pattern_one_hot(pd.Series(["fl_sb", "ww_fl"], index=[5, 7]))
    assert list(onehot.columns) == list(fgroups.PATTERN_ONE_HOT)
    assert list(onehot.index) == [5, 7]
    assert onehot.loc[5, "pattern_fl_sb"] == 1 and onehot.loc[5].sum() == 1
    with pytest.raises(ValueError, match="rice"):
        fgroups.pattern_one_hot(["rice"])


def test_climate_features_on_a_dask_grid_match_numpy(world):
    _, climate, _ = world
    eager = fclim.climate_features(climate)
    lazy = fclim.climate_features(climate.chunk({"time": 200, "lat": 2}))
    assert set(eager.data_vars) == set(fclim.FEATURE_ATTRS)
    for name, attrs in fclim.FEATURE_ATTRS.items():
        assert eager[name].attrs == attrs
        assert eager[name].dims == ("time", "lat", "lon")
        np.testing.assert_array_equal(lazy[name].values, eager[name].values)
