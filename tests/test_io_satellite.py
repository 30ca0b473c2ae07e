"""ESA CCI SM daily files as distributed: round trip, masking and malformed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cropsm.errors import InputError
from cropsm.io.satellite import read_cci

LAT = np.array([40.125, 39.875, 39.625])  # descending, as ESA CCI
LON = np.array([110.125, 110.375])
FILL = -9999.0


def write_cci(
    folder: Path,
    day: str,
    *,
    days: int = 1,
    sm: np.ndarray | None = None,
    flag: np.ndarray | None = None,
    with_sm: bool = True,
) -> Path:
    """One file in ESA's layout: sm with _FillValue -9999, flag (0 = good), descending lat."""
    times = pd.date_range(day, periods=days, freq="D")
    shape = (days, len(LAT), len(LON))
    if sm is None:
        sm = 0.2 + 0.01 * np.arange(np.prod(shape)).reshape(shape)
    if flag is None:
        flag = np.zeros(shape, dtype=np.int8)
    variables = {"flag": (("time", "lat", "lon"), flag.astype(np.int8), {"long_name": "Flag"})}
    if with_sm:
        variables["sm"] = (
            ("time", "lat", "lon"),
            sm.astype(np.float32),
            {"units": "m3 m-3", "long_name": "Volumetric Soil Moisture"},
        )
    ds = xr.Dataset(variables, coords={"time": times, "lat": LAT, "lon": LON})
    stamp = times[0].strftime("%Y%m%d")
    path = folder / f"ESACCI-SOILMOISTURE-L3S-SSMV-COMBINED-{stamp}000000-fv04.7.nc"
    encoding = {"sm": {"_FillValue": FILL}} if with_sm else {}
    ds.to_netcdf(path, encoding=encoding)
    return path


def raises(paths) -> InputError:
    with pytest.raises(InputError) as info:
        read_cci(paths)
    assert "\n" not in str(info.value)
    return info.value


def test_daily_files_round_trip_with_fill_and_flags(tmp_path: Path) -> None:
    sm = np.full((1, 3, 2), 0.25)
    sm[0, 0, 0] = np.nan  # written as _FillValue -9999
    flag = np.zeros((1, 3, 2))
    flag[0, 2, 1] = 1  # e.g. snow
    write_cci(tmp_path, "2001-01-02", sm=sm, flag=flag)
    write_cci(tmp_path, "2001-01-01")
    write_cci(tmp_path, "2001-01-04")  # a day without a file is simply absent
    data = read_cci(str(tmp_path / "ESACCI-SOILMOISTURE-*.nc"))
    assert data.name == "satellite_sm"
    assert data.attrs["units"] == "m3 m-3"
    assert data.dims == ("time", "lat", "lon")
    assert data.dtype == np.float32
    assert list(data["lat"].values) == sorted(LAT)
    assert pd.DatetimeIndex(data["time"].values).equals(
        pd.DatetimeIndex(["2001-01-01", "2001-01-02", "2001-01-04"])
    )
    day2 = data.sel(time="2001-01-02").load()
    assert np.isnan(float(day2.sel(lat=40.125, lon=110.125)))  # fill value
    assert np.isnan(float(day2.sel(lat=39.625, lon=110.375)))  # flagged
    assert float(day2.sel(lat=39.875, lon=110.125)) == pytest.approx(0.25)
    # Orientation: the file's first row (40.125 N) is the last row here.
    day1 = data.sel(time="2001-01-01").values
    assert day1[-1, 0] == pytest.approx(0.2)


def test_multi_day_file(tmp_path: Path) -> None:
    data = read_cci(write_cci(tmp_path, "2001-06-01", days=3))
    assert data.sizes == {"time": 3, "lat": 3, "lon": 2}


def test_missing_sm_variable(tmp_path: Path) -> None:
    path = write_cci(tmp_path, "2001-01-01", with_sm=False)
    error = raises(path)
    assert error.path == path and error.where == "variable 'sm'"
    assert "found flag" in str(error) and "expected ESA CCI SM 'sm'" in str(error)


def test_same_day_in_two_files(tmp_path: Path) -> None:
    first = write_cci(tmp_path, "2001-01-01", days=3)
    second = write_cci(tmp_path, "2001-01-03")
    error = raises([first, second])
    assert "2001-01-03 is also in" in str(error)


def test_values_out_of_range(tmp_path: Path) -> None:
    sm = np.full((1, 3, 2), 25.0)  # percent declared as m3 m-3
    path = write_cci(tmp_path, "2001-01-01", sm=sm)
    error = raises(path)
    assert error.path == path
    assert "value 25 at time=2001-01-01" in str(error) and "0 to 1 m3 m-3" in str(error)
