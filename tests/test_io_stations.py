"""Station metadata and observations: round trips and real malformed files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cropsm.errors import InputError
from cropsm.io.stations import StationData, check_stations_in_grid, read_stations

META_HEADER = "station_id,lat,lon,elevation,region,pattern,first_year,last_year"
META_ROWS = [
    "S001,45.5,126.6,150,NE,fl_sb,2000,2010",
    "S002,36.7,117.0,50,HHH,ww_mz,2001,2010",
]
OBS_HEADER = "station_id,date,layer,sm"
OBS_ROWS = [
    "S001,2001-05-03,1,0.21",
    "S001,2001-05-03,2,0.25",
    "S002,2001-05-03,1,0.30",
    "S001,2001-05-13,1,",
    "S002,2001-05-13,5,0.33",
]


def write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def meta_csv(tmp_path: Path) -> Path:
    return write(tmp_path / "stations.csv", META_HEADER, META_ROWS)


@pytest.fixture
def obs_csv(tmp_path: Path) -> Path:
    return write(tmp_path / "observations.csv", OBS_HEADER, OBS_ROWS)


def error_of(meta: Path, obs: Path) -> InputError:
    with pytest.raises(InputError) as info:
        read_stations(meta, obs)
    message = str(info.value)
    assert "\n" not in message
    return info.value


def test_csv_round_trip(meta_csv: Path, obs_csv: Path) -> None:
    data = read_stations(meta_csv, obs_csv)
    assert isinstance(data, StationData)
    assert list(data.meta.index) == ["S001", "S002"]
    assert data.meta.index.name == "station_id"
    assert list(data.meta.columns) == [
        "lat", "lon", "elevation", "region", "pattern", "first_year", "last_year"
    ]  # fmt: skip
    assert data.meta.loc["S002", "region"] == "HHH"
    assert data.meta["first_year"].dtype == np.int64
    assert list(data.obs.columns) == ["station_id", "date", "layer", "sm"]
    assert data.obs["date"].dtype == np.dtype("datetime64[ns]")
    assert data.obs["layer"].dtype == np.int64
    assert len(data.obs) == 4
    assert data.n_dropped_missing == 1
    assert not data.obs["sm"].isna().any()
    first = data.obs.iloc[0]
    assert (first.station_id, first.date, first.layer, first.sm) == (
        "S001", pd.Timestamp("2001-05-03"), 1, 0.21
    )  # fmt: skip


def test_parquet_round_trip_matches_csv(tmp_path: Path, meta_csv: Path, obs_csv: Path) -> None:
    meta = pd.read_csv(meta_csv, dtype={"station_id": str})
    obs = pd.read_csv(obs_csv, dtype={"station_id": str}, parse_dates=["date"])
    meta.to_parquet(tmp_path / "stations.parquet")
    obs.to_parquet(tmp_path / "observations.parquet")
    from_parquet = read_stations(tmp_path / "stations.parquet", tmp_path / "observations.parquet")
    from_csv = read_stations(meta_csv, obs_csv)
    pd.testing.assert_frame_equal(from_parquet.meta, from_csv.meta)
    pd.testing.assert_frame_equal(from_parquet.obs, from_csv.obs)


def test_gravimetric_station_converted_with_bulk_density(tmp_path: Path) -> None:
    header = META_HEADER + ",sm_type,bd_layer1,bd_layer2,bd_layer3,bd_layer4,bd_layer5"
    meta = write(
        tmp_path / "stations.csv",
        header,
        [
            "G1,45.5,126.6,150,NE,fl_sb,2000,2010,gravimetric,1.2,1.3,1.4,1.5,1.6",
            "V1,36.7,117.0,50,HHH,ww_mz,2001,2010,,,,,,",
        ],
    )
    obs = write(
        tmp_path / "obs.csv",
        OBS_HEADER,
        ["G1,2001-05-03,1,0.20", "G1,2001-05-03,5,0.25", "V1,2001-05-03,1,0.20"],
    )
    data = read_stations(meta, obs)
    sm = data.obs.set_index(["station_id", "layer"])["sm"]
    assert sm[("G1", 1)] == pytest.approx(0.20 * 1.2)
    assert sm[("G1", 5)] == pytest.approx(0.25 * 1.6)
    assert sm[("V1", 1)] == pytest.approx(0.20)


def test_gravimetric_station_without_bulk_density(tmp_path: Path) -> None:
    meta = write(
        tmp_path / "stations.csv",
        META_HEADER + ",sm_type,bd_layer1,bd_layer2",
        ["G1,45.5,126.6,150,NE,fl_sb,2000,2010,gravimetric,1.2,"],
    )
    obs = write(tmp_path / "obs.csv", OBS_HEADER, ["G1,2001-05-03,1,0.2", "G1,2001-05-03,2,0.2"])
    error = error_of(meta, obs)
    assert error.path == meta
    assert "row 2, column 'bd_layer2'" in str(error)
    assert "gravimetric" in str(error) and "bulk density" in str(error)

    no_columns = write(
        tmp_path / "stations2.csv",
        META_HEADER + ",sm_type",
        ["G1,45.5,126.6,150,NE,fl_sb,2000,2010,gravimetric"],
    )
    message = str(error_of(no_columns, obs))
    assert "'bd_layer1'" in message and "stations2.csv" in message


def test_missing_columns_are_named(tmp_path: Path, obs_csv: Path) -> None:
    meta = write(
        tmp_path / "stations.csv",
        "station_id,lat,lon,elevation,first_year,last_year",
        ["S001,45.5,126.6,150,2000,2010"],
    )
    message = str(error_of(meta, obs_csv))
    assert "stations.csv" in message
    assert "'region', 'pattern'" in message
    assert "expected columns station_id, lat" in message


def test_unknown_region_and_pattern_list_allowed_ids(tmp_path: Path, obs_csv: Path) -> None:
    meta = write(
        tmp_path / "s.csv", META_HEADER, [META_ROWS[0], "S002,36.7,117,50,XX,ww_mz,2001,2010"]
    )
    message = str(error_of(meta, obs_csv))
    assert "row 3, column 'region'" in message
    assert "'XX' is not a region id" in message and "NE, N, HHH, E, C, S, NW, SW" in message

    meta = write(
        tmp_path / "p.csv", META_HEADER, [META_ROWS[0], "S002,36.7,117,50,HHH,rice,2001,2010"]
    )
    message = str(error_of(meta, obs_csv))
    assert "row 3, column 'pattern'" in message
    assert "ww_fl, ww_mz, sw_ct, rs_ct, fl_mz, fl_sb" in message


def test_latitude_out_of_range(tmp_path: Path, obs_csv: Path) -> None:
    meta = write(
        tmp_path / "s.csv", META_HEADER, [META_ROWS[0], "S002,96.7,117,50,HHH,ww_mz,2001,2010"]
    )
    message = str(error_of(meta, obs_csv))
    assert "s.csv: row 3, column 'lat': value 96.7" in message and "-90 to 90" in message


def test_unparsable_date_reports_file_row_and_text(tmp_path: Path, meta_csv: Path) -> None:
    # A blank line in the file still counts: the bad date is on row 4 (header = row 1).
    obs = tmp_path / "observations.csv"
    obs.write_text(
        "station_id,date,layer,sm\nS001,2001-05-03,1,0.2\n\nS001,2001-13-45,1,0.2\n",
        encoding="utf-8",
    )
    error = error_of(meta_csv, obs)
    assert error.path == obs
    assert error.where == "row 4, column 'date'"
    assert "'2001-13-45'" in str(error) and "YYYY-MM-DD" in str(error)


def test_layer_outside_one_to_five(tmp_path: Path, meta_csv: Path) -> None:
    obs = write(tmp_path / "o.csv", OBS_HEADER, ["S001,2001-05-03,1,0.2", "S001,2001-05-03,6,0.2"])
    message = str(error_of(meta_csv, obs))
    assert "row 3, column 'layer'" in message and "expected an integer 1 to 5" in message


def test_soil_moisture_out_of_physical_range(tmp_path: Path, meta_csv: Path) -> None:
    obs = write(tmp_path / "o.csv", OBS_HEADER, ["S001,2001-05-03,1,0.2", "S002,2001-05-03,1,23.5"])
    error = error_of(meta_csv, obs)
    assert error.where == "row 3, column 'sm' (volumetric station)"
    assert "value 23.5" in str(error) and "0 to 0.7 m3 m-3" in str(error)


def test_gravimetric_out_of_range_uses_its_own_limit(tmp_path: Path) -> None:
    meta = write(
        tmp_path / "s.csv",
        META_HEADER + ",sm_type,bd_layer1",
        ["G1,45.5,126.6,150,NE,fl_sb,2000,2010,gravimetric,1.3"],
    )
    obs = write(tmp_path / "o.csv", OBS_HEADER, ["G1,2001-05-03,1,0.65"])
    message = str(error_of(meta, obs))
    assert "gravimetric station" in message and "0 to 0.6 g g-1" in message


def test_duplicate_station_date_layer(tmp_path: Path, meta_csv: Path) -> None:
    obs = write(
        tmp_path / "o.csv",
        OBS_HEADER,
        ["S001,2001-05-03,1,0.2", "S001,2001-05-03,2,0.2", "S001,2001-05-03,1,0.3"],
    )
    error = error_of(meta_csv, obs)
    assert error.where == "rows 2 and 4"
    assert "'S001' on 2001-05-03, layer 1" in str(error)
    assert "expected one row per (station_id, date, layer)" in str(error)


def test_observation_of_unknown_station(tmp_path: Path, meta_csv: Path) -> None:
    obs = write(tmp_path / "o.csv", OBS_HEADER, ["S001,2001-05-03,1,0.2", "S999,2001-05-03,1,0.2"])
    message = str(error_of(meta_csv, obs))
    assert "o.csv: row 3, column 'station_id'" in message
    assert "'S999' is not in the station metadata stations.csv" in message


def test_unparsable_number_and_unknown_extension(tmp_path: Path, meta_csv: Path) -> None:
    obs = write(tmp_path / "o.csv", OBS_HEADER, ["S001,2001-05-03,1,wet"])
    message = str(error_of(meta_csv, obs))
    assert "row 2, column 'sm'" in message and "'wet' is not a number" in message
    odd = write(tmp_path / "o.xlsx", OBS_HEADER, [])
    assert "expected a .csv or .parquet file" in str(error_of(meta_csv, odd))


def test_station_outside_grid(meta_csv: Path, obs_csv: Path) -> None:
    data = read_stations(meta_csv, obs_csv)
    lat = np.arange(30.25, 50.0, 0.5)
    lon = np.arange(110.25, 130.0, 0.5)
    check_stations_in_grid(data.meta, lat, lon, meta_csv)
    with pytest.raises(InputError) as info:
        check_stations_in_grid(data.meta, lat, np.arange(120.25, 130.0, 0.5), meta_csv)
    message = str(info.value)
    assert "stations.csv" in message and "'S002' (lat 36.7, lon 117)" in message
    assert "'S001'" not in message and "lon 120 to 130" in message
