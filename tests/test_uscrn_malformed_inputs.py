"""Damaged USCRN daily01 files give one-line errors naming the file, the line and what was expected.

The files are written here in NOAA's daily01 layout (28 fixed-width columns); one test copies the
real files of ``../shared/data/uscrn`` and skips when that folder is absent.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cropsm.cli import app
from cropsm.errors import InputError
from cropsm.io.uscrn import find_uscrn_files, read_uscrn, read_uscrn_daily
from test_io_uscrn import daily01_line

REAL_USCRN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "uscrn"

STATION, WBAN = "NE_Test_8_ENE", "94995"
OTHER, OTHER_WBAN = "KS_Other_19_SSW", "03067"


def row(
    date: pd.Timestamp, wban: str = WBAN, *, lon: float = -96.57, lat: float = 40.85, **kwargs
) -> str:
    """One daily01 row (28 columns) of this file's station, as NOAA writes it
    (:func:`test_io_uscrn.daily01_line`)."""
    return daily01_line(wban, date, lon=lon, lat=lat, **kwargs)


def year_rows(year: int, wban: str = WBAN, days: int = 40, **kwargs) -> list[str]:
    """The first ``days`` days of a year."""
    dates = pd.date_range(f"{year}-01-01", periods=days, freq="D")
    return [row(d, wban, **kwargs) for d in dates]


def write(root: Path, station: str, year: int, rows: list[str] | bytes) -> Path:
    folder = root / str(year)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"CRND0103-{year}-{station}.txt"
    data = rows if isinstance(rows, bytes) else ("\n".join(rows) + "\n").encode("ascii")
    path.write_bytes(data)
    return path


def tree(root: Path, years=(2014, 2015, 2016)) -> dict[tuple[str, int], Path]:
    """Two healthy stations; returns their files by (station, year)."""
    paths = {}
    for year in years:
        paths[STATION, year] = write(root, STATION, year, year_rows(year))
        paths[OTHER, year] = write(
            root, OTHER, year, year_rows(year, OTHER_WBAN, lon=-100.96, lat=38.87)
        )
    return paths


def error_of(root: Path) -> str:
    with pytest.raises(InputError) as info:
        read_uscrn_daily(find_uscrn_files(root))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_healthy_tree_reads(tmp_path: Path) -> None:
    tree(tmp_path)
    daily = read_uscrn_daily(find_uscrn_files(tmp_path))
    assert len(daily.frame) == 6 * 40
    assert daily.out_of_range == {}


# --------------------------------------------------------------------------------------------
# 1. a non-ASCII byte names the damaged file and line, not a healthy file


def test_non_ascii_flag_names_damaged_file_and_line(tmp_path: Path) -> None:
    paths = tree(tmp_path)
    damaged = paths[STATION, 2015]
    rows = year_rows(2015)
    data = ("\n".join(rows) + "\n").encode("ascii")
    lines = data.splitlines(keepends=True)
    lines[4] = lines[4].replace(b" C ", b" \xc9 ")
    damaged.write_bytes(b"".join(lines))
    message = error_of(tmp_path)
    assert message.startswith(f"{damaged}: line 5, column SUR_TEMP_DAILY_TYPE: ")
    assert "byte 0xc9 is not ASCII text; expected the flag C, R or U" in message
    assert str(paths[OTHER, 2014]) not in message


def test_non_ascii_in_a_number_and_unknown_flag(tmp_path: Path) -> None:
    paths = tree(tmp_path)
    rows = year_rows(2016)
    data = ("\n".join(rows) + "\n").encode("ascii").replace(b"  40.85", b"  40.8\xb5", 1)
    paths[STATION, 2016].write_bytes(data)
    message = error_of(tmp_path)
    assert f"{paths[STATION, 2016]}: line 1, column LATITUDE: byte 0xb5" in message
    assert "expected a number" in message

    rows[7] = rows[7].replace(" C ", " X ")
    write(tmp_path, STATION, 2016, rows)
    assert f"{paths[STATION, 2016]}: line 8, column SUR_TEMP_DAILY_TYPE: 'X' is not a flag" in (
        error_of(tmp_path)
    )


# --------------------------------------------------------------------------------------------
# 2./3. latitude and longitude on the globe, one position per station


@pytest.mark.parametrize("index", [0, 17, 39])
def test_latitude_outside_globe_any_line(tmp_path: Path, index: int) -> None:
    paths = tree(tmp_path)
    rows = year_rows(2016)
    rows[index] = row(pd.Timestamp("2016-01-01") + pd.Timedelta(days=index), lat=95.0)
    write(tmp_path, STATION, 2016, rows)
    message = error_of(tmp_path)
    assert message == (
        f"{paths[STATION, 2016]}: line {index + 1}, column LATITUDE: latitude 95 is outside "
        "-90 to 90; expected degrees north"
    )


def test_longitude_outside_globe(tmp_path: Path) -> None:
    paths = tree(tmp_path)
    rows = year_rows(2015)
    rows[3] = row(pd.Timestamp("2015-01-04"), lon=-196.57)
    write(tmp_path, STATION, 2015, rows)
    assert error_of(tmp_path).startswith(
        f"{paths[STATION, 2015]}: line 4, column LONGITUDE: longitude -196.57 is outside "
        "-180 to 180; expected degrees east"
    )


def test_latitude_longitude_swapped(tmp_path: Path) -> None:
    paths = tree(tmp_path)
    write(tmp_path, STATION, 2015, year_rows(2015, lon=40.85, lat=-96.57))
    message = error_of(tmp_path)
    assert message.startswith(f"{paths[STATION, 2015]}: line 1, column LATITUDE: ")
    assert "latitude -96.57 is outside -90 to 90" in message
    assert "swapped" in message


def test_position_jump_within_a_file(tmp_path: Path) -> None:
    paths = tree(tmp_path)
    rows = year_rows(2015)
    rows[20] = row(pd.Timestamp("2015-01-21"), lat=35.0)
    write(tmp_path, STATION, 2015, rows)
    message = error_of(tmp_path)
    assert message.startswith(f"{paths[STATION, 2015]}: line 21, columns LONGITUDE, LATITUDE: ")
    assert "at lat 35, lon -96.57 here, but at lat 40.85, lon -96.57" in message
    assert "expected one position per station (within 0.01 degree)" in message


def test_longitude_sign_flipped_in_one_year(tmp_path: Path) -> None:
    paths = tree(tmp_path)
    write(tmp_path, STATION, 2016, year_rows(2016, lon=96.57))
    message = error_of(tmp_path)
    assert message.startswith(f"{paths[STATION, 2016]}: line 1, columns LONGITUDE, LATITUDE: ")
    assert "lon 96.57 here, but at lat 40.85, lon -96.57" in message
    assert f"in {paths[STATION, 2014]}, line 1" in message


def test_resurvey_within_tolerance_is_accepted(tmp_path: Path) -> None:
    tree(tmp_path)
    write(tmp_path, STATION, 2016, year_rows(2016, lon=-96.58, lat=40.86))
    data = read_uscrn(tmp_path)
    assert data.meta.loc[STATION, "lat"] == pytest.approx(40.86)


def test_missing_position_marker_is_not_an_error(tmp_path: Path) -> None:
    tree(tmp_path)
    rows = year_rows(2015)
    rows[2] = row(pd.Timestamp("2015-01-03"), lon=-9999.0, lat=-9999.0)
    write(tmp_path, STATION, 2015, rows)
    assert len(read_uscrn_daily(find_uscrn_files(tmp_path)).frame) == 240


# --------------------------------------------------------------------------------------------
# 4. another station's file under a station's name


def test_other_stations_file_under_this_name(tmp_path: Path) -> None:
    paths = tree(tmp_path)
    write(tmp_path, STATION, 2015, year_rows(2015, OTHER_WBAN, lon=-100.96, lat=38.87))
    message = error_of(tmp_path)
    assert message.startswith(f"{paths[STATION, 2015]}: line 1, column WBANNO: ")
    assert f"station number {OTHER_WBAN}" in message
    assert f"station {STATION!r} (the file name's) has number {WBAN}" in message
    assert str(paths[STATION, 2014]) in message


# --------------------------------------------------------------------------------------------
# 5. a whole column in other units


def test_soil_moisture_in_percent(tmp_path: Path) -> None:
    paths = tree(tmp_path)
    write(tmp_path, STATION, 2015, year_rows(2015, sm=(20.0, 22.0, 26.0, 32.0, 35.0)))
    message = error_of(tmp_path)
    assert message.startswith(f"{paths[STATION, 2015]}: column SOIL_MOISTURE_5_DAILY: ")
    assert "40 of 40 values lie outside 0 to 0.7 (they range 20 to 20" in message
    assert "expected m3 m-3" in message and "percent" in message


def test_temperature_in_kelvin(tmp_path: Path) -> None:
    paths = tree(tmp_path)
    write(tmp_path, STATION, 2016, year_rows(2016, t=288.15))
    message = error_of(tmp_path)
    assert message.startswith(f"{paths[STATION, 2016]}: column T_DAILY_MAX: 40 of 40 values ")
    assert "expected degC" in message and "kelvin" in message


def test_single_out_of_range_value_is_set_missing_and_counted(tmp_path: Path) -> None:
    tree(tmp_path)
    rows = year_rows(2015)
    rows[9] = row(pd.Timestamp("2015-01-10"), sm=(35.0, 0.22, 0.26, 0.32, 0.35))
    write(tmp_path, STATION, 2015, rows)
    daily = read_uscrn_daily(find_uscrn_files(tmp_path))
    assert daily.out_of_range == {"SOIL_MOISTURE_5_DAILY": 1}


# --------------------------------------------------------------------------------------------
# 6./7. empty files, inf and NaN


@pytest.mark.parametrize("content", [b"", b"\n  \n"])
def test_empty_file_is_an_error_naming_it(tmp_path: Path, content: bytes) -> None:
    paths = tree(tmp_path)
    paths[STATION, 2015].write_bytes(content)
    message = error_of(tmp_path)
    assert message.startswith(f"{paths[STATION, 2015]}: empty ")
    assert "re-download that file" in message


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "NaN"])
def test_inf_is_rejected_like_nan(tmp_path: Path, value: str) -> None:
    paths = tree(tmp_path)
    rows = year_rows(2015)
    rows[11] = rows[11].replace("    1.0 ", f" {value} ", 1)
    write(tmp_path, STATION, 2015, rows)
    assert error_of(tmp_path) == (
        f"{paths[STATION, 2015]}: line 12, column P_DAILY_CALC: '{value}' is not a number"
    )


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    paths = tree(tmp_path)
    rows = year_rows(2015)
    rows[5] = row(pd.Timestamp("2015-01-06"), lat=95.0)
    write(tmp_path, STATION, 2015, ["", *rows[:3], "", *rows[3:]])
    assert error_of(tmp_path).startswith(f"{paths[STATION, 2015]}: line 8, column LATITUDE: ")


# --------------------------------------------------------------------------------------------
# through the command line and on the real files


def test_cli_reports_one_line_and_writes_no_inputs(tmp_path: Path) -> None:
    paths = tree(tmp_path / "uscrn")
    write(tmp_path / "uscrn", STATION, 2015, year_rows(2015, lat=95.0))
    config = tmp_path / "run.toml"
    config.write_text(
        '[run]\nname = "bad"\n[inputs.uscrn]\nroot = "uscrn"\n'
        '[features]\ngroups_off = ["soil", "pattern", "wind", "cloud", "elevation"]\n'
    )
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(out), "--stages", "inputs"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert f"{paths[STATION, 2015]}: line 1, column LATITUDE: latitude 95" in result.output
    assert not (out / "inputs" / "stations.csv").exists()


@pytest.mark.skipif(
    not REAL_USCRN.is_dir(),
    reason=f"real USCRN data not found at {REAL_USCRN} (the shared data folder beside the "
    "project); this test needs it",
)
def test_real_files_load_and_a_flipped_longitude_is_caught(tmp_path: Path) -> None:
    station = "NE_Lincoln_8_ENE"
    for year in (2014, 2015, 2016):
        source = REAL_USCRN / str(year) / f"CRND0103-{year}-{station}.txt"
        if not source.is_file():
            pytest.skip(f"{source} not found")
        (tmp_path / str(year)).mkdir()
        shutil.copy(source, tmp_path / str(year) / source.name)
    daily = read_uscrn_daily(find_uscrn_files(tmp_path))
    assert daily.frame["station_id"].unique().tolist() == [station]
    damaged = tmp_path / "2016" / f"CRND0103-2016-{station}.txt"
    damaged.write_text(damaged.read_text().replace("  -96.57 ", "   96.57 "))
    message = error_of(tmp_path)
    assert message.startswith(f"{damaged}: line 1, columns LONGITUDE, LATITUDE: ")
    assert "lon 96.57 here, but at lat 40.85, lon -96.57" in message
