"""USCRN daily01 reader, station-level climate and the station table from station features.

Every test writes a tiny daily01 tree in NOAA's real layout (fixed-width columns, -9999.0 and
-99.000 missing values) and checks the numbers against hand computations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from cropsm.errors import InputError
from cropsm.features.climate import vapour_pressure_deficit_kpa
from cropsm.features.station_table import build_station_table_from_station_features
from cropsm.io.station_climate import (
    accumulated_precipitation_with_gaps,
    dewpoint_from_relative_humidity,
    net_solar_from_incoming,
    recent_precipitation_with_gaps,
    station_climate_features,
    station_climate_from_uscrn,
)
from cropsm.io.uscrn import (
    LAYER_SENSOR_MAPPING,
    UscrnInput,
    find_uscrn_files,
    frozen_mask,
    interpolate_at_depth,
    read_uscrn,
    read_uscrn_daily,
)

USCRN_OFF = ["soil", "pattern", "wind", "cloud"]
"""Groups USCRN lacks."""


def daily01_line(
    wban: str,
    date: pd.Timestamp,
    *,
    lon: float = -96.85,
    lat: float = 40.70,
    t: float = 15.0,
    p: float = 1.0,
    solar: float = 20.0,
    rh: float = 60.0,
    sm: tuple[float, ...] = (0.20, 0.22, 0.26, 0.32, 0.35),
    st: tuple[float, ...] = (10.0, 10.0, 10.0, 10.0, 10.0),
) -> str:
    """One row in NOAA's daily01 fixed-width layout (28 columns)."""
    return (
        f"{wban:>5} {date:%Y%m%d} {2.422:6.3f} {lon:7.2f} {lat:7.2f} "
        f"{t + 5:7.1f} {t - 5:7.1f} {t:7.1f} {t:7.1f} {p:7.1f} {solar:8.2f} C "
        f"{t + 8:7.1f} {t - 6:7.1f} {t + 1:7.1f} {min(rh + 20, 100):7.1f} {max(rh - 20, 0):7.1f} "
        f"{rh:7.1f} " + " ".join(f"{v:7.3f}" for v in sm) + " "
        + " ".join(f"{v:7.1f}" for v in st)
    )  # fmt: skip


def write_station_year(root: Path, station: str, wban: str, year: int, rows: list[str]) -> Path:
    folder = root / str(year)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"CRND0103-{year}-{station}.txt"
    path.write_text("\n".join(rows) + "\n", encoding="ascii")
    return path


def full_year(wban: str, year: int, **kwargs) -> list[str]:
    days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
    return [daily01_line(wban, d, **kwargs) for d in days]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Two stations, 2015-2016 every day; a few special days in NE_Test_1 2016."""
    root = tmp_path / "uscrn"
    for year in (2015, 2016):
        write_station_year(root, "NE_Test_1", "94996", year, full_year("94996", year))
        write_station_year(
            root, "KS_Test_2", "53974", year,
            full_year("53974", year, lon=-98.0, lat=38.5, p=2.0, sm=(0.1, 0.1, 0.1, 0.1, 0.1)),
        )  # fmt: skip
    rows = full_year("94996", 2016)
    # 2016-01-05: 5 cm sensor frozen (soil temperature -1), others fine
    rows[4] = daily01_line(
        "94996", pd.Timestamp("2016-01-05"), st=(-1.0, 2.0, 2.0, 2.0, 2.0), t=-3.0
    )
    # 2016-01-06: soil moisture missing markers (-99.000), weather missing (-9999.0)
    rows[5] = (
        "94996 20160106  2.422  -96.85   40.70 -9999.0 -9999.0 -9999.0 -9999.0 -9999.0 "
        "-9999.00 U -9999.0 -9999.0 -9999.0 -9999.0 -9999.0 -9999.0 -99.000 -99.000 -99.000 "
        "-99.000 -99.000 -9999.0 -9999.0 -9999.0 -9999.0 -9999.0"
    )
    # 2016-01-07: soil temperature missing and air temperature below zero -> frozen
    rows[6] = daily01_line("94996", pd.Timestamp("2016-01-07"), t=-2.0, st=(-9999.0,) * 5)
    # 2016-01-08: an impossible solar value (glitch) -> set missing and counted
    rows[7] = daily01_line("94996", pd.Timestamp("2016-01-08"), solar=104.65)
    write_station_year(root, "NE_Test_1", "94996", 2016, rows)
    return root


# --------------------------------------------------------------------------------------------
# files and parsing


def test_find_files_subsets_and_errors(tree: Path) -> None:
    files = find_uscrn_files(tree)
    assert [(f.station, f.year) for f in files] == [
        ("KS_Test_2", 2015), ("KS_Test_2", 2016), ("NE_Test_1", 2015), ("NE_Test_1", 2016)
    ]  # fmt: skip
    assert [f.station for f in find_uscrn_files(tree, ["NE_*"], 2016)] == ["NE_Test_1"]
    with pytest.raises(InputError, match="station 'XX_Nowhere'.*no daily01 file"):
        find_uscrn_files(tree, ["XX_Nowhere"])
    with pytest.raises(InputError, match="USCRN folder not found"):
        find_uscrn_files(tree / "missing")
    with pytest.raises(InputError, match="no daily01 files of the chosen stations"):
        find_uscrn_files(tree, first_year=2030)


def test_parse_missing_values_and_out_of_range(tree: Path) -> None:
    daily = read_uscrn_daily(find_uscrn_files(tree, ["NE_*"], 2016, 2016))
    frame = daily.frame.set_index("date")
    assert len(frame) == 366
    missing_day = frame.loc["2016-01-06"]
    assert np.isnan(missing_day["P_DAILY_CALC"]) and np.isnan(missing_day["T_DAILY_AVG"])
    assert np.isnan(missing_day["SOIL_MOISTURE_5_DAILY"])
    assert np.isnan(frame.loc["2016-01-08", "SOLARAD_DAILY"])
    assert daily.out_of_range == {"SOLARAD_DAILY": 1}
    assert frame.loc["2016-03-01", "SOIL_MOISTURE_20_DAILY"] == pytest.approx(0.26)
    assert frame["station_id"].unique().tolist() == ["NE_Test_1"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda line: line + " 1.0", r"line 3: 29 columns; expected 28"),
        (lambda line: line.rsplit(" ", 1)[0], r"line 3: 27 columns; expected 28"),
        (lambda line: line.replace("20150103", "20151303"), r"line 3, column LST_DATE: "
         r"'20151303' is not a date"),
        (lambda line: line.replace("  0.260 ", "  0.2x0 "), r"line 3, column "
         r"SOIL_MOISTURE_20_DAILY: '0.2x0' is not a number"),
        (lambda line: line.replace("20150103", "20140103"), r"line 3, column LST_DATE: date "
         r"20140103 is not in the file's year 2015"),
        (lambda line: line.replace("20150103", "20150102"), r"line 3, column LST_DATE: date "
         r"20150102 appears twice"),
        (lambda line: line.replace("94996", "94997", 1), r"line 3, column WBANNO"),
    ],
)  # fmt: skip
def test_malformed_files_name_file_and_line(tmp_path: Path, mutate, message: str) -> None:
    rows = full_year("94996", 2015)[:10]
    rows[2] = mutate(rows[2])
    path = write_station_year(tmp_path, "NE_Bad_1", "94996", 2015, rows)
    with pytest.raises(InputError, match=message) as info:
        read_uscrn_daily(find_uscrn_files(tmp_path))
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


# --------------------------------------------------------------------------------------------
# layers and frozen soil


def test_layer_mapping_numbers(tree: Path) -> None:
    data = read_uscrn(tree, stations=["NE_*"], first_year=2015, last_year=2015)
    day = data.obs.loc[data.obs["date"] == "2015-06-01"].set_index("layer")["sm"]
    t5, t10, t20, t50 = 0.20, 0.22, 0.26, 0.32
    expected = {
        1: (t5 + t10) / 2,
        2: t10 + (t20 - t10) * (15 - 10) / (20 - 10),
        3: t20 + (t50 - t20) * (25 - 20) / 30,
        4: t20 + (t50 - t20) * (35 - 20) / 30,
        5: t20 + (t50 - t20) * (45 - 20) / 30,
    }
    for k, value in expected.items():
        assert day[k] == pytest.approx(value)
    assert set(LAYER_SENSOR_MAPPING) == {1, 2, 3, 4, 5}
    assert interpolate_at_depth(np.array([0.1]), np.array([0.4]), 20, 50, 35)[0] == pytest.approx(
        0.25
    )


def test_frozen_rules() -> None:
    soil = np.array([-1.0, 0.0, 3.0, np.nan, np.nan, np.nan])
    air = np.array([5.0, 5.0, -5.0, -1.0, 4.0, np.nan])
    assert frozen_mask(soil, air, "soil_temperature").tolist() == [
        True, True, False, True, False, True
    ]  # fmt: skip
    assert frozen_mask(soil, air, "air_temperature").tolist() == [
        False, False, True, True, False, True
    ]  # fmt: skip
    assert not frozen_mask(soil, air, "none").any()


def test_frozen_and_missing_days_dropped(tree: Path) -> None:
    data = read_uscrn(tree, stations=["NE_*"], first_year=2016, last_year=2016)
    by_day = data.obs.groupby("date")["layer"].apply(list)
    assert by_day[pd.Timestamp("2016-01-05")] == [2, 3, 4, 5]  # 5 cm frozen -> no layer 1
    assert pd.Timestamp("2016-01-06") not in by_day.index  # all missing
    assert pd.Timestamp("2016-01-07") not in by_day.index  # air below zero, no soil temperature
    assert data.report["dropped_frozen"]["5cm"] == 2
    kept_all = read_uscrn(tree, stations=["NE_*"], first_year=2016, last_year=2016, frozen="none")
    assert pd.Timestamp("2016-01-07") in set(kept_all.obs["date"])


def test_days_of_month_subsample_and_meta(tree: Path) -> None:
    data = read_uscrn(tree, days_of_month=[8, 18, 28])
    assert set(data.obs["date"].dt.day) == {8, 18, 28}
    assert data.obs.duplicated(["station_id", "date", "layer"]).sum() == 0
    meta = data.meta
    assert list(meta.index) == ["KS_Test_2", "NE_Test_1"]
    assert meta.loc["KS_Test_2", ["lat", "lon"]].tolist() == [38.5, -98.0]
    assert meta.loc["NE_Test_1", "region"] == "US"
    assert meta["pattern"].isna().all()
    assert np.isnan(meta["elevation"]).all()  # no elevation grid given
    assert meta.loc["NE_Test_1", ["first_year", "last_year"]].tolist() == [2015, 2016]


def test_elevation_from_text_grid(tree: Path, tmp_path: Path) -> None:
    import gzip

    folder = tmp_path / "etopo"
    folder.mkdir()
    lats = np.arange(30.0, 50.0, 1.0)
    lons = np.arange(-110.0, -89.0, 1.0)
    grid = np.add.outer(10.0 * lats, lons)  # elevation = 10 lat + lon
    for name, values in (("etopo20lats.gz", lats), ("etopo20lons.gz", lons)):
        with gzip.open(folder / name, "wt") as handle:
            handle.write("\n".join(f"{v:.6e}" for v in values) + "\n")
    with gzip.open(folder / "etopo20data.gz", "wt") as handle:
        for row in grid:
            handle.write(" ".join(f"{v:.6e}" for v in row) + "\n")
    data = read_uscrn(tree, elevation_grid=folder)
    assert data.meta.loc["KS_Test_2", "elevation"] == pytest.approx(10 * 38.5 - 98.0)


# --------------------------------------------------------------------------------------------
# config section


def test_uscrn_input_section(tmp_path: Path) -> None:
    section = UscrnInput(root="uscrn", days_of_month=[28, 8, 18, 8], elevation_grid="etopo")
    assert section.days_of_month == [8, 18, 28]
    resolved = section.resolve_paths(tmp_path)
    assert resolved.root == (tmp_path / "uscrn").resolve()
    assert resolved.elevation_grid == (tmp_path / "etopo").resolve()
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        UscrnInput(root="x", statons=["A"])
    with pytest.raises(ValidationError, match="days of the month"):
        UscrnInput(root="x", days_of_month=[32])
    with pytest.raises(ValidationError, match="first_year 2019 is after"):
        UscrnInput(root="x", first_year=2019, last_year=2015)
    with pytest.raises(ValidationError):
        UscrnInput(root="x", frozen="ice")


# --------------------------------------------------------------------------------------------
# station-level climate


def test_dewpoint_gives_vpd_from_relative_humidity() -> None:
    t = np.array([25.0, 5.0, -3.0])
    rh = np.array([40.0, 90.0, 100.0])
    td = dewpoint_from_relative_humidity(t, rh)
    e_s = 0.6108 * np.exp(17.27 * t / (t + 237.3))
    np.testing.assert_allclose(vapour_pressure_deficit_kpa(t, td), e_s * (1 - rh / 100), atol=1e-12)
    assert td[2] == pytest.approx(-3.0)
    assert np.isnan(dewpoint_from_relative_humidity(20.0, 0.0))
    assert net_solar_from_incoming(20.0) == pytest.approx(0.77 * 20.0)


def test_gap_tolerant_accumulation() -> None:
    dates = pd.date_range("2001-01-01", "2001-03-31", freq="D")
    precip = np.ones(dates.size)
    exact = accumulated_precipitation_with_gaps(precip, dates, 1, 1.0)
    i = dates.get_loc(pd.Timestamp("2001-03-01"))
    assert exact[i] == pytest.approx(28.0)  # February 2001
    assert np.isnan(exact[0])
    precip[dates.get_indexer(pd.to_datetime(["2001-02-10", "2001-02-11"]))] = np.nan
    assert np.isnan(accumulated_precipitation_with_gaps(precip, dates, 1, 1.0)[i])
    assert accumulated_precipitation_with_gaps(precip, dates, 1, 0.9)[i] == pytest.approx(28.0)
    precip[dates.get_indexer(pd.date_range("2001-02-12", "2001-02-16"))] = np.nan
    assert np.isnan(accumulated_precipitation_with_gaps(precip, dates, 1, 0.9)[i])  # 7/28 gaps
    # a window of the previous N days: a single gap spoils a 3-day sum at f = 0.9, not at f = 0.6
    j = dates.get_loc(pd.Timestamp("2001-02-12"))  # window 9th ... 11th (10th, 11th missing)
    assert np.isnan(recent_precipitation_with_gaps(precip, dates, 3)[j])
    k = dates.get_loc(pd.Timestamp("2001-02-11"))  # window 8th ... 10th (10th missing)
    assert np.isnan(recent_precipitation_with_gaps(precip, dates, 3)[k])
    assert recent_precipitation_with_gaps(precip, dates, 3, 0.6)[k] == 3.0
    assert recent_precipitation_with_gaps(precip, dates, 7)[7] == 7.0
    assert np.isnan(recent_precipitation_with_gaps(precip, dates, 7)[6])


def test_station_climate_and_table(tree: Path) -> None:
    data = read_uscrn(tree)
    climate = station_climate_from_uscrn(data.daily.frame)
    assert climate["precipitation"].dims == ("time", "station")
    assert climate.sizes["time"] == 731
    assert climate["net_solar_radiation"].attrs["units"] == "MJ m-2 d-1"
    features = station_climate_features(climate)
    assert {"precip", "precip_12m", "tair", "vpd", "ssr"} <= set(features.data_vars)
    assert "wind" not in features

    with pytest.raises(InputError, match="feature group 'elevation'.*groups_off"):
        build_station_table_from_station_features(data, features, groups_off=USCRN_OFF)
    with pytest.raises(InputError, match="feature group 'wind'"):
        build_station_table_from_station_features(
            data, features, groups_off=["soil", "pattern", "cloud", "elevation"]
        )
    table, report = build_station_table_from_station_features(
        data, features, groups_off=[*USCRN_OFF, "elevation"]
    )
    assert report["climate"] == "station-level"
    assert "pattern" not in table.columns
    assert str(table["region"].iloc[0]) == "US"
    assert table["date"].min() >= pd.Timestamp("2016-01-01")  # 12-month look-back
    row = table.loc[(table["station_id"] == "KS_Test_2") & (table["date"] == "2016-06-01")].iloc[0]
    assert row["precip"] == pytest.approx(2.0)
    assert row["precip_1m"] == pytest.approx(2.0 * 31)  # May
    assert row["ssr"] == pytest.approx(0.77 * 20.0)
    assert row["tair"] == pytest.approx(15.0)
    assert row["doy"] == 153
    assert row["sm_l3"] == pytest.approx(0.1)
    assert report["rows_out"] == len(table)
    assert table.attrs["units"]["vpd"] == "kPa"
    # location inputs: the unit vector of the station's own lat/lon, one per station
    lat, lon = np.radians(data.meta.loc["KS_Test_2", ["lat", "lon"]].astype(float))
    assert row["loc_x"] == pytest.approx(np.cos(lat) * np.cos(lon))
    assert row["loc_y"] == pytest.approx(np.cos(lat) * np.sin(lon))
    assert row["loc_z"] == pytest.approx(np.sin(lat))
    assert (table.groupby("station_id")["loc_z"].nunique() == 1).all()
    assert table.attrs["units"]["loc_x"] == "1"


def test_run_config_with_uscrn_section(tmp_path: Path) -> None:
    from cropsm.config import parse_config
    from cropsm.errors import ConfigError

    config = parse_config(
        {"inputs": {"uscrn": {"root": "data/uscrn"}}, "features": {"groups_off": ["wind"]}},
        tmp_path / "run.toml",
    )
    assert config.inputs.uscrn.root == (tmp_path / "data" / "uscrn").resolve()
    assert config.inputs.source == "uscrn"
    assert config.train.split == "random"
    with pytest.raises(ConfigError, match=r"inputs\.uscrn\.year: unknown key \(allowed: root,"):
        parse_config({"inputs": {"uscrn": {"root": "x", "year": 1}}}, tmp_path / "a")
    with pytest.raises(ConfigError, match=r"inputs\.uscrn\.root: required key is missing"):
        parse_config({"inputs": {"uscrn": {}}}, tmp_path / "a")
