"""Tests of the virtual China's weather generator, reference ET and ERA-style files."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from cropsm.twin import era, weather

REGION_CODE = {"NE": 1, "N": 2, "HHH": 3, "E": 4, "C": 5, "S": 6, "NW": 7, "SW": 8}
CANONICAL = (
    "precipitation",
    "air_temperature",
    "dewpoint_temperature",
    "net_solar_radiation",
    "wind_speed",
    "cloud_cover",
)


def synthetic_landscape(lat: np.ndarray, lon: np.ndarray) -> tuple[xr.DataArray, xr.DataArray]:
    """Elevation and region rasters from lat/lon boxes that roughly follow China's regions."""
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    boxes = [  # (region, lat_min, lat_max, lon_min, lon_max); later boxes win
        ("NW", 35, 49, 75, 105),
        ("SW", 22, 35, 80, 109),
        ("N", 40, 46, 105, 120),
        ("NE", 40, 53, 120, 134),
        ("HHH", 33, 40, 113, 120),
        ("C", 25, 33, 109, 115),
        ("E", 24, 33, 115, 122),
        ("S", 20, 25, 104, 117),
    ]
    region = np.zeros(la.shape, dtype=np.int8)
    for rid, y0, y1, x0, x1 in boxes:
        region[(la >= y0) & (la < y1) & (lo >= x0) & (lo < x1)] = REGION_CODE[rid]
    elevation = np.full(la.shape, 100.0, dtype=np.float32)
    elevation[(region == REGION_CODE["NW"])] = 1200.0
    elevation[(lo < 100) & (la >= 28) & (la < 36)] = 4500.0  # Tibetan plateau
    coords = {"lat": lat, "lon": lon}
    return (
        xr.DataArray(elevation, dims=("lat", "lon"), coords=coords, attrs={"units": "m"}),
        xr.DataArray(region, dims=("lat", "lon"), coords=coords),
    )


@pytest.fixture(scope="module")
def china():
    """One-degree China grid (36 x 62 cells) and its weather of 2001."""
    lat = np.arange(18.5, 54.0, 1.0)
    lon = np.arange(73.5, 135.0, 1.0)
    elevation, region = synthetic_landscape(lat, lon)
    climate = weather.generate_weather_year(elevation, region, 2001, seed=11)
    return elevation, region, climate


@pytest.fixture(scope="module")
def small():
    """Half-degree box over the North China Plain (8 x 10 cells)."""
    lat = np.arange(34.25, 38.0, 0.5)
    lon = np.arange(113.25, 118.0, 0.5)
    return synthetic_landscape(lat, lon)


def test_canonical_layout(china):
    _, _, climate = china
    assert set(CANONICAL) <= set(climate.data_vars)
    for name, da in climate.data_vars.items():
        assert da.dims == ("time", "lat", "lon"), name
        assert da.dtype == np.float32, name
        assert da.attrs["units"] and da.attrs["long_name"], name
    assert climate["precipitation"].attrs["units"] == "mm d-1"
    assert climate["net_solar_radiation"].attrs["units"] == "MJ m-2 d-1"
    assert climate["cloud_cover"].attrs["units"] == "1"
    time = climate["time"].values
    assert time.dtype == np.dtype("datetime64[ns]")
    assert len(time) == 365 and str(time[0])[:10] == "2001-01-01"
    assert np.all(np.diff(time) == np.timedelta64(1, "D"))
    assert np.all(np.diff(climate["lat"].values) > 0) and np.all(np.diff(climate["lon"]) > 0)


def test_deterministic_for_seed_and_year(small):
    elevation, region = small
    a = weather.generate_weather_year(elevation, region, 2004, seed=5)
    b = weather.generate_weather_year(elevation, region, 2004, seed=5)
    c = weather.generate_weather_year(elevation, region, 2004, seed=6)
    d = weather.generate_weather_year(elevation, region, 2005, seed=5)
    assert len(a["time"]) == 366  # leap year
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values)
        assert not np.array_equal(a[name].values, c[name].values), name
    assert not np.array_equal(a["air_temperature"].values[:365], d["air_temperature"].values)


def test_weather_does_not_depend_on_the_blas_threads(small):
    # a BLAS matrix product sums in an order that changes with its thread count: the weather
    # of one seed was once different under one and two OpenBLAS threads (35 values here)
    from threadpoolctl import threadpool_limits

    elevation, region = small
    with threadpool_limits(limits=2):  # explicit: the suite starts OpenBLAS with one thread
        two = weather.generate_weather_year(elevation, region, 2004, seed=5)
    with threadpool_limits(limits=1):
        one = weather.generate_weather_year(elevation, region, 2004, seed=5)
    for name in two.data_vars:
        np.testing.assert_array_equal(two[name].values, one[name].values)
    weights = np.array([[0.5, 0.25, 0.0], [0.0, 1.0, 2.0]], dtype=np.float32)
    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(weather._banded_product(weights, values), weights @ values)


def test_anomalies_continue_across_new_year_and_subgrids():
    lat = np.arange(20.5, 50.0, 1.0)
    lon = np.arange(80.5, 130.0, 1.0)
    kwargs = {"seed": 3, "width_deg": 4.0, "lag1_correlation": 0.85, "stream": 2}
    dec = weather.anomaly_field(lat, lon, 2000, **kwargs)[-1]
    jan = weather.anomaly_field(lat, lon, 2001, **kwargs)[0]
    jan_later = weather.anomaly_field(lat, lon, 2001, **kwargs)[60]
    assert np.corrcoef(dec.ravel(), jan.ravel())[0, 1] > 0.7  # same AR(1) series
    assert abs(np.corrcoef(dec.ravel(), jan_later.ravel())[0, 1]) < 0.5
    # a sub-grid gets the same large-scale field at the same cells, to the bit (every cell sums
    # its nodes in one order)
    sub = weather.anomaly_field(lat[5:12], lon[10:20], 2001, **kwargs)
    full = weather.anomaly_field(lat, lon, 2001, **kwargs)
    np.testing.assert_array_equal(sub, full[:, 5:12, 10:20])
    # unit variance
    assert 0.8 < full.std() < 1.2


def test_physical_ranges(china):
    elevation, _, climate = china
    p = climate["precipitation"].values
    t = climate["air_temperature"].values
    td = climate["dewpoint_temperature"].values
    cloud = climate["cloud_cover"].values
    ssr = climate["net_solar_radiation"].values
    wind = climate["wind_speed"].values
    for values in (p, t, td, cloud, ssr, wind):
        assert np.isfinite(values).all()
    assert p.min() >= 0.0 and p.max() < 500.0
    assert (td <= t).all()
    assert -60.0 < t.min() and t.max() < 50.0
    assert cloud.min() >= 0.0 and cloud.max() <= 1.0
    assert ssr.min() >= 0.0
    doy = climate["time"].dt.dayofyear.values
    ra = weather.extraterrestrial_radiation_mj(climate["lat"].values[None, :], doy[:, None])
    clear_sky = weather.clear_sky_radiation_mj(ra[:, :, None], elevation.values[None])
    assert (ssr <= (1.0 - weather.ALBEDO) * clear_sky + 1e-4).all()
    np.testing.assert_allclose(
        wind, np.hypot(climate["u_wind"].values, climate["v_wind"].values), rtol=1e-5
    )
    assert 1.5 < wind.mean() < 4.5


def test_rain_days_cloudier_and_more_humid(china):
    _, region, climate = china
    inside = np.broadcast_to(region.values > 0, climate["precipitation"].shape)
    wet = (climate["precipitation"].values > 1.0) & inside
    dry = (climate["precipitation"].values == 0.0) & inside
    cloud = climate["cloud_cover"].values
    depression = climate["air_temperature"].values - climate["dewpoint_temperature"].values
    assert cloud[wet].mean() > cloud[dry].mean() + 0.2
    assert depression[wet].mean() < 0.5 * depression[dry].mean()
    # drier air in the north-west than in the south
    nw = np.broadcast_to(region.values == REGION_CODE["NW"], depression.shape)
    south = np.broadcast_to(region.values == REGION_CODE["S"], depression.shape)
    assert depression[nw].mean() > depression[south].mean() + 3.0


def _regional_means(annual: np.ndarray, region: xr.DataArray) -> dict[str, float]:
    return {r: float(annual[region.values == c].mean()) for r, c in REGION_CODE.items()}


def test_regional_precipitation_gradient(china):
    elevation, region, climate = china
    # the climatology itself (no weather noise): the full ordering and the target ranges
    clim = _regional_means(
        weather.annual_precipitation_climatology_mm(
            climate["lat"].values, climate["lon"].values, elevation.values
        ),
        region,
    )
    assert clim["NW"] < min(clim["N"], clim["NE"])
    assert max(clim["N"], clim["NE"]) < clim["HHH"]
    assert clim["HHH"] < min(clim["E"], clim["C"])
    assert max(clim["E"], clim["C"]) < clim["S"]
    assert clim["NW"] < 300.0
    assert 250.0 < clim["N"] < 700.0 and 400.0 < clim["NE"] < 700.0
    assert 500.0 < clim["HHH"] < 850.0
    assert 1000.0 < clim["E"] < 1700.0 and 1000.0 < clim["C"] < 1600.0
    assert clim["S"] > 1500.0
    # one year of weather: near the climatology; the orderings with wide margins hold
    # (NE against HHH and E/C against S are within one year's natural variability)
    year = _regional_means(climate["precipitation"].sum("time").values, region)
    for r in REGION_CODE:
        assert 0.6 < year[r] / clim[r] < 1.4, r
    assert year["NW"] < year["N"] < year["HHH"] < min(year["E"], year["C"])
    assert year["NW"] < year["NE"] < min(year["E"], year["C"])
    assert max(year["N"], year["NE"], year["HHH"]) < year["S"]


def test_monsoon_summer_share(china):
    _, _, climate = china
    p = climate["precipitation"]
    summer = p.where(p["time"].dt.month.isin([6, 7, 8])).sum("time")
    north = (climate["lat"] >= 36.0) & (climate["lon"] >= 105.0)
    share = float(summer.where(north).sum() / p.sum("time").where(north).sum())
    assert share > 0.5
    # climatological weights: each column sums to one; the north is more peaked in summer
    doy = np.arange(1, 366)
    w = weather.precipitation_seasonal_weights(np.array([22.0, 40.0]), np.array([113.0]), doy)
    np.testing.assert_allclose(w.sum(axis=0), 1.0, rtol=1e-5)
    jja = (doy >= 152) & (doy <= 243)
    assert w[jja, 1, 0].sum() > 0.65 > w[jja, 0, 0].sum()
    amjjas = (doy >= 91) & (doy <= 273)
    assert w[amjjas, 0, 0].sum() > 0.75


def test_precipitation_spatially_coherent(china):
    _, _, climate = china
    wet_box = climate["precipitation"].sel(lat=slice(22, 34), lon=slice(105, 122))
    by_month = wet_box.groupby("time.month")
    anomaly = (by_month - by_month.mean("time")).values  # daily anomalies, no seasonal cycle
    anomaly /= anomaly.std(axis=0)
    n = anomaly.shape[0]
    neighbour = (anomaly[:, :, :-1] * anomaly[:, :, 1:]).sum(axis=0) / n
    distant = (anomaly[:, :, :5] * anomaly[:, :, -5:]).sum(axis=0) / n  # >= 12 degrees apart
    assert neighbour.mean() > 0.5
    assert abs(distant.mean()) < 0.1


def test_temperature_gradients_and_trend():
    lat = np.arange(20.5, 50.0, 3.0)
    lon = np.arange(110.5, 120.0, 3.0)
    t_mean = weather.annual_mean_temperature_c(lat[:, None], lon[None, :], 0.0)
    assert (np.diff(t_mean, axis=0) < 0).all()  # colder northwards
    amplitude = weather.seasonal_temperature_amplitude_k(lat[:, None], lon[None, :], 0.0)
    assert (np.diff(amplitude, axis=0) > 0).all()  # more continental northwards
    drop = weather.annual_mean_temperature_c(30.0, 115.0, 0.0) - (
        weather.annual_mean_temperature_c(30.0, 115.0, 1000.0)
    )
    assert drop == pytest.approx(6.5)
    elevation, region = synthetic_landscape(lat, lon)
    early = weather.generate_weather_year(elevation, region, 1981, seed=2)
    late = weather.generate_weather_year(elevation, region, 2013, seed=2)
    warming = float(late["air_temperature"].mean() - early["air_temperature"].mean())
    assert 0.2 < warming < 2.0  # 0.03 K/yr over 32 years = 0.96 K, plus weather noise
    t = late["air_temperature"]
    july = t.where(t["time"].dt.month == 7).mean("time")
    january = t.where(t["time"].dt.month == 1).mean("time")
    assert (july > january + 5.0).all()


def test_extraterrestrial_radiation_fao56_example():
    # FAO-56 Example 8: 20 S on 3 September (day 246): Ra = 32.2 MJ m-2 d-1
    assert weather.extraterrestrial_radiation_mj(-20.0, 246) == pytest.approx(32.2, abs=0.1)
    # FAO-56 Example 3 for Eq. 47: 3.2 m/s at 10 m -> 2.4 m/s at 2 m
    assert weather.wind_speed_2m(3.2) == pytest.approx(2.4, abs=0.01)


def test_potential_et(china):
    elevation, region, climate = china
    pet = weather.potential_et_mm(climate, elevation)
    assert pet.dims == ("time", "lat", "lon") and pet.dtype == np.float32
    assert pet.attrs["units"] == "mm d-1"
    month = climate["time"].dt.month
    inside = region > 0
    summer = pet.where(month.isin([6, 7, 8])).mean("time").where(inside)
    winter = pet.where(month.isin([12, 1, 2])).mean("time").where(inside)
    assert float(summer.min()) > 0.5
    assert bool((summer > winter).where(inside, True).all())
    assert 2.0 < float(summer.mean()) < 8.0
    assert float(pet.min()) >= 0.0
    # the cropland cells only: (time, cell) with lat/lon coordinates on cell
    iy, ix = np.nonzero(region.values == REGION_CODE["HHH"])
    pick = {"lat": xr.DataArray(iy, dims="cell"), "lon": xr.DataArray(ix, dims="cell")}
    cells = climate.isel(**pick)
    on_cells = weather.potential_et_mm(cells, elevation.isel(**pick))
    assert on_cells.dims == ("time", "cell")
    np.testing.assert_allclose(on_cells.values, pet.values[:, iy, ix], rtol=1e-5, atol=1e-6)
    from_grid = weather.potential_et_mm(cells, elevation)  # nearest grid cell's elevation
    np.testing.assert_allclose(from_grid.values, on_cells.values, rtol=1e-6)
    with pytest.raises(ValueError, match="elevation"):
        weather.potential_et_mm(climate, elevation.isel(lat=slice(0, 5)))


def test_write_era_daily_round_trip(tmp_path, small):
    elevation, region = small
    climate = weather.generate_weather_year(elevation, region, 2003, seed=1)
    path = tmp_path / "climate" / "era5_daily_2003.nc"
    era.write_era_daily(climate, path)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    with xr.open_dataset(path) as ds:
        ds.load()
    assert set(ds.data_vars) == {"tp", "t2m", "d2m", "ssr", "u10", "v10", "tcc"}
    units = {k: ds[k].attrs["units"] for k in ds.data_vars}
    assert units == {
        "tp": "m",
        "t2m": "K",
        "d2m": "K",
        "ssr": "J m**-2",
        "u10": "m s**-1",
        "v10": "m s**-1",
        "tcc": "(0 - 1)",
    }
    for name in ds.data_vars:
        assert ds[name].dims == ("time", "latitude", "longitude")
        assert ds[name].attrs["long_name"]
        assert ds[name].encoding["dtype"] == np.int16 and ds[name].encoding["zlib"]
    assert ds["t2m"].attrs["standard_name"] == "air_temperature"
    assert ds.attrs["Conventions"] == "CF-1.8" and ds.attrs["source"] and ds.attrs["history"]
    assert np.all(np.diff(ds["latitude"].values) < 0)  # descending, as ERA distributes it
    assert np.all(np.diff(ds["longitude"].values) > 0)
    np.testing.assert_array_equal(ds["time"].values, climate["time"].values)
    back = ds.isel(latitude=slice(None, None, -1)).rename(latitude="lat", longitude="lon")
    np.testing.assert_allclose(back["lat"].values, climate["lat"].values)
    checks = [  # (ERA name, canonical, ERA -> canonical, absolute tolerance)
        ("tp", "precipitation", lambda v: v * 1000.0, 0.01),
        ("t2m", "air_temperature", lambda v: v - 273.15, 0.01),
        ("d2m", "dewpoint_temperature", lambda v: v - 273.15, 0.01),
        ("ssr", "net_solar_radiation", lambda v: v / 1.0e6, 0.01),
        ("u10", "u_wind", lambda v: v, 0.01),
        ("v10", "v_wind", lambda v: v, 0.01),
        ("tcc", "cloud_cover", lambda v: v, 1e-4),
    ]
    for short, canonical, convert, tol in checks:
        np.testing.assert_allclose(
            convert(back[short].values), climate[canonical].values, atol=tol, err_msg=short
        )
    dry = climate["precipitation"].values == 0.0
    assert (back["tp"].values[dry] == 0.0).all()  # zero rain stays exactly zero


def test_write_era_daily_is_atomic(tmp_path, small):
    elevation, region = small
    climate = weather.generate_weather_year(elevation, region, 2003, seed=1)
    path = tmp_path / "era5_daily_2003.nc"
    with pytest.raises(ValueError, match="cloud_cover"):
        era.write_era_daily(climate.drop_vars("cloud_cover"), path)
    assert list(tmp_path.iterdir()) == []
    path.write_text("old")
    era.write_era_daily(climate.isel(time=slice(0, 31)), path)
    with xr.open_dataset(path) as ds:
        assert ds.sizes["time"] == 31
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_packing_keeps_missing_values_missing(tmp_path, small):
    elevation, region = small
    climate = weather.generate_weather_year(elevation, region, 2003, seed=1).isel(time=slice(0, 10))
    climate["air_temperature"][0, 0, 0] = np.nan
    path = tmp_path / "era5_daily_2003.nc"
    era.write_era_daily(climate, path)
    with xr.open_dataset(path) as ds:
        t2m = ds["t2m"].isel(latitude=slice(None, None, -1)).values
    assert np.isnan(t2m[0, 0, 0]) and np.isfinite(t2m.ravel()[1:]).all()
    scale, offset = era.packing(np.array([0.0, 0.25, np.nan]))
    assert -32766 * scale + offset == 0.0  # the minimum unpacks exactly
