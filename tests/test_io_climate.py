"""ERA5 climate files as distributed: round trips, hourly to daily, and malformed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cropsm.errors import InputError
from cropsm.io.climate import CANONICAL_VARIABLES, read_climate
from cropsm.io.units import check_range, convert, normalize_units

LAT = np.array([40.0, 39.5, 39.0])  # descending, as ERA5
LON = np.array([100.0, 100.5, 101.0, 359.5])  # 0-360, as ERA5
ERA5_UNITS = {
    "tp": "m",
    "t2m": "K",
    "d2m": "K",
    "ssr": "J m**-2",
    "u10": "m s**-1",
    "v10": "m s**-1",
    "tcc": "(0 - 1)",
}


def era5_values(times: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    """Source values that differ by cell, so orientation errors show."""
    lat = LAT[None, :, None]
    lon = LON[None, None, :]
    shape = (len(times), len(LAT), len(LON))
    ones = np.ones(shape)
    return {
        "tp": 0.002 * ones + 1e-5 * lat,
        "t2m": 273.15 + 10.0 + lat / 10.0 + lon / 1000.0 + 0 * ones,
        "d2m": 273.15 + 2.0 * ones,
        "ssr": 1.5e7 * ones,
        "u10": 3.0 * ones,
        "v10": 4.0 * ones,
        "tcc": 0.5 * ones + 0.0 * lon,
    }


def write_era5(
    path: Path,
    start: str,
    periods: int,
    *,
    freq: str = "D",
    variables: tuple[str, ...] = tuple(ERA5_UNITS),
    units: dict[str, str] | None = None,
    values: dict[str, np.ndarray] | None = None,
    time_name: str = "valid_time",
) -> Path:
    """A file in the layout of the CDS: valid_time, descending latitude, longitude 0-360."""
    times = pd.date_range(start, periods=periods, freq=freq)
    data = era5_values(times)
    data.update(values or {})
    declared = {**ERA5_UNITS, **(units or {})}
    ds = xr.Dataset(
        {
            name: ((time_name, "latitude", "longitude"), data[name], {"units": declared[name]})
            for name in variables
        },
        coords={
            time_name: times,
            "latitude": ("latitude", LAT, {"units": "degrees_north"}),
            "longitude": ("longitude", LON, {"units": "degrees_east"}),
            "number": 0,
        },
    )
    ds.to_netcdf(path)
    return path


def raises(paths) -> InputError:
    with pytest.raises(InputError) as info:
        read_climate(paths)
    assert "\n" not in str(info.value)
    return info.value


def test_daily_file_round_trip(tmp_path: Path) -> None:
    path = write_era5(tmp_path / "era5_daily_2001.nc", "2001-01-01", 4)
    ds = read_climate(path)
    assert list(ds.data_vars) == list(CANONICAL_VARIABLES)
    for name, (units, _) in CANONICAL_VARIABLES.items():
        assert ds[name].attrs["units"] == units
        assert ds[name].dims == ("time", "lat", "lon")
        assert ds[name].dtype == np.float32
    assert ds["time"].dtype == np.dtype("datetime64[ns]")
    assert list(ds["lat"].values) == [39.0, 39.5, 40.0]
    assert list(ds["lon"].values) == [-0.5, 100.0, 100.5, 101.0]
    ds = ds.load()
    cell = ds.sel(lat=40.0, lon=-0.5).isel(time=0)
    assert float(cell["air_temperature"]) == pytest.approx(10.0 + 4.0 + 0.3595, abs=1e-4)
    assert float(cell["precipitation"]) == pytest.approx(2.0 + 0.4, abs=1e-4)
    assert float(cell["dewpoint_temperature"]) == pytest.approx(2.0, abs=1e-4)
    assert float(cell["net_solar_radiation"]) == pytest.approx(15.0)
    assert float(cell["wind_speed"]) == pytest.approx(5.0)
    assert float(cell["cloud_cover"]) == pytest.approx(0.5)


def test_many_files_by_glob_are_joined_in_time(tmp_path: Path) -> None:
    write_era5(tmp_path / "era5_daily_2002.nc", "2002-01-01", 3)
    write_era5(tmp_path / "era5_daily_2001.nc", "2001-12-29", 3)
    ds = read_climate(str(tmp_path / "era5_daily_*.nc"))
    assert pd.DatetimeIndex(ds["time"].values).equals(
        pd.date_range("2001-12-29", "2002-01-03", freq="D")
    )
    # A list given out of order gives the same result.
    listed = read_climate([tmp_path / "era5_daily_2002.nc", tmp_path / "era5_daily_2001.nc"])
    xr.testing.assert_identical(ds.load(), listed.load())


def test_one_variable_per_file_with_wind_speed(tmp_path: Path) -> None:
    paths = [
        write_era5(tmp_path / f"{name}.nc", "2001-01-01", 2, variables=(name,), time_name="time")
        for name in ("tp", "t2m", "d2m", "ssr", "tcc")
    ]
    times = pd.date_range("2001-01-01", periods=2)
    wind = np.full((2, len(LAT), len(LON)), 6.0)
    xr.Dataset(
        {"si10": (("time", "lat", "lon"), wind, {"units": "m/s"})},
        coords={"time": times, "lat": LAT[::-1], "lon": LON - 180.0},
    ).to_netcdf(tmp_path / "si10.nc")
    with pytest.raises(InputError, match="grid .* differs"):
        read_climate([*paths, tmp_path / "si10.nc"])
    xr.Dataset(
        {"si10": (("time", "lat", "lon"), wind, {"units": "m/s"})},
        coords={"time": times, "lat": LAT[::-1], "lon": np.where(LON > 180, LON - 360, LON)},
    ).to_netcdf(tmp_path / "si10_ok.nc")
    ds = read_climate([*paths, tmp_path / "si10_ok.nc"])
    assert float(ds["wind_speed"].mean()) == pytest.approx(6.0)


def test_hourly_accumulations_become_daily_totals(tmp_path: Path) -> None:
    step = np.arange(72, dtype=float)[:, None, None] * np.ones((1, len(LAT), len(LON)))
    tp = 1e-4 * (1.0 + step)  # m per hour, different every hour
    t2m = 273.15 + step / 10.0
    path = write_era5(
        tmp_path / "era5_hourly.nc",
        "2001-01-01",
        72,
        freq="h",
        values={"tp": tp, "t2m": t2m, "ssr": np.full(tp.shape, 1.0e6)},
    )
    ds = read_climate(path).load()
    # tp stamped 00:00 closes the previous day's last hour: day 1 = steps 1..24, day 2 = 25..48;
    # day 3 lacks its last hour (stamped day 4 00:00) and is dropped.
    assert pd.DatetimeIndex(ds["time"].values).equals(pd.date_range("2001-01-01", periods=2))
    expected_day1 = 1e-4 * (1.0 + np.arange(1, 25)).sum() * 1000.0
    expected_day2 = 1e-4 * (1.0 + np.arange(25, 49)).sum() * 1000.0
    precipitation = ds["precipitation"].isel(lat=0, lon=0).values
    assert precipitation == pytest.approx([expected_day1, expected_day2], rel=1e-5)
    temperature = ds["air_temperature"].isel(lat=0, lon=0).values
    assert temperature == pytest.approx([np.arange(24).mean() / 10, np.arange(24, 48).mean() / 10])
    assert float(ds["net_solar_radiation"][0, 0, 0]) == pytest.approx(24.0)
    assert float(ds["wind_speed"][0, 0, 0]) == pytest.approx(5.0)
    assert ds.attrs["time_step_of_source"] == "hourly"


def test_temperature_in_degc_declared_as_kelvin(tmp_path: Path) -> None:
    t2m_celsius = era5_values(pd.date_range("2001-01-01", periods=3))["t2m"] - 273.15
    path = write_era5(tmp_path / "era5.nc", "2001-01-01", 3, values={"t2m": t2m_celsius})
    error = raises(path)
    assert error.path == path and error.where == "variable 't2m'"
    assert "declared units 'K'" in str(error) and "which is degC" in str(error)


def test_missing_variable_names_it_the_files_and_what_was_found(tmp_path: Path) -> None:
    a = write_era5(tmp_path / "a.nc", "2001-01-01", 2, variables=("tp", "t2m", "ssr", "tcc"))
    b = write_era5(tmp_path / "b.nc", "2001-01-03", 2, variables=("tp", "t2m", "ssr", "tcc"))
    error = raises([a, b])
    message = str(error)
    assert error.path == a
    assert "variable 'd2m' (2-m dewpoint temperature)" in message
    assert "not in any of the 2 files given (a.nc ... b.nc)" in message
    assert "found variables ssr, t2m, tcc, tp" in message and "expected ERA5 'd2m' in K" in message

    no_wind = write_era5(
        tmp_path / "c.nc", "2001-01-01", 2, variables=("tp", "t2m", "d2m", "ssr", "tcc")
    )
    assert "'si10' or 'u10'+'v10'" in str(raises(no_wind))


def test_gap_in_daily_time_names_first_missing_date(tmp_path: Path) -> None:
    a = write_era5(tmp_path / "a.nc", "2001-01-01", 3)
    b = write_era5(tmp_path / "b.nc", "2001-01-06", 3)
    error = raises([a, b])
    assert error.path == a and error.where == "coordinate 'time'"
    assert "no data for 2001-01-04" in str(error) and "consecutive daily steps" in str(error)


def test_overlapping_files(tmp_path: Path) -> None:
    a = write_era5(tmp_path / "a.nc", "2001-01-01", 5)
    b = write_era5(tmp_path / "b.nc", "2001-01-04", 5)
    error = raises(tmp_path / "*.nc")
    assert error.path == b
    assert "2001-01-04 to 2001-01-05 overlaps a.nc" in str(error)
    assert a.exists()


def test_value_out_of_physical_range(tmp_path: Path) -> None:
    tcc = np.full((3, len(LAT), len(LON)), 0.5)
    tcc[1, 0, 2] = 50.0  # percent written into a 0-1 variable
    path = write_era5(tmp_path / "era5.nc", "2001-01-01", 3, values={"tcc": tcc})
    error = raises(path)
    assert error.where == "variable 'tcc'"
    assert "daily cloud_cover 50 at time=2001-01-02, lat=40, lon=101" in str(error)
    assert "physical range 0 to 1" in str(error)


def test_units_that_do_not_convert(tmp_path: Path) -> None:
    path = write_era5(tmp_path / "era5.nc", "2001-01-01", 2, units={"ssr": "K"})
    error = raises(path)
    assert error.where == "variable 'ssr'" and "units 'K'" in str(error)


def test_unreadable_file_and_empty_glob(tmp_path: Path) -> None:
    bad = tmp_path / "era5.nc"
    bad.write_text("not a netCDF file")
    assert "cannot be read as netCDF" in str(raises(bad))
    assert "no climate files match" in str(raises(str(tmp_path / "none_*.nc")))


@pytest.mark.parametrize(
    ("spellings", "normal"),
    [
        (("m s**-1", "m s-1", "m/s", "m s^-1"), "m s-1"),
        (("K", "kelvin"), "K"),
        (("degC", "C", "celsius", "degree_Celsius", "°C"), "degC"),
        (("J m**-2", "J/m2", "J m⁻²"), "J m-2"),
        (("(0 - 1)", "1", "fraction", "", None), "1"),
        (("%", "percent"), "%"),
        (("MJ/m2/day", "MJ m-2 d-1"), "MJ m-2 d-1"),
    ],
)
def test_unit_spellings_normalise(spellings: tuple, normal: str) -> None:
    assert {normalize_units(s) for s in spellings} == {normal}


def test_unit_conversion_and_range_check() -> None:
    assert convert(np.array([273.15]), "K", "degC") == pytest.approx([0.0])
    assert convert(np.array([2.0]), "m", "mm") == pytest.approx([2000.0])
    assert convert(np.array([50.0]), "%", "(0 - 1)") == pytest.approx([0.5])
    assert convert(np.array([1.0]), "kg m-2 s-1", "mm d-1") == pytest.approx([86400.0])
    with pytest.raises(InputError, match=r"f.nc: variable 'x': units 'K' cannot be converted"):
        convert(np.array([1.0]), "K", "mm", path="f.nc", where="variable 'x'")
    values = xr.DataArray(
        [[0.1, 0.2], [1.5, 0.3]], coords={"lat": [30.0, 31.0], "lon": [100.0, 101.0]}
    )
    with pytest.raises(InputError) as info:
        check_range(values, 0.0, 1.0, "f.nc", "variable 'x'", "1")
    assert str(info.value) == (
        "f.nc: variable 'x': value 1.5 at lat=31, lon=100 is outside the physical range 0 to 1"
    )
