"""Malformed or unusual ISMN ``.stm`` files: one clear error line, or read correctly and counted.

Swapped depths in the header, lines in reverse time order, repeated lines (identical or not) and
a sensor in percent instead of m3 m-3 (cases found by fuzzing the ``inputs`` stage).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cropsm.cli import app, error_line
from cropsm.errors import InputError
from cropsm.io.ismn import daily_sensor_means, read_ismn, read_ismn_file
from test_io_ismn import hourly, write_stm
from test_ismn_run import CONFIG, write_climate, write_download


def one_line(err: InputError, path: Path) -> str:
    """The command line's error line, checked to name the file and to be one line."""
    line = error_line(err)
    assert line.startswith(f"error: {path}: "), line
    assert "\n" not in line
    return line


def days(n: int = 4) -> list[tuple[str, float, str]]:
    """Two readings a day on ``n`` days of May 2019, all flagged good."""
    rows = []
    for d in range(1, n + 1):
        rows += hourly(f"2019/05/{d:02d}", [0.10 + 0.01 * d, 0.20 + 0.01 * d])
    return rows


def rewrite_body(path: Path, body: list[str]) -> None:
    """Replace the measurement lines of a file, keeping its header."""
    header = path.read_text(encoding="ascii").splitlines()[0]
    path.write_text("\n".join([header, *body]) + "\n", encoding="ascii")


def body_of(path: Path) -> list[str]:
    return path.read_text(encoding="ascii").splitlines()[1:]


# --------------------------------------------------------------------------------------------
# 1. depth_from deeper than depth_to in the header


def test_depth_from_below_depth_to_names_line_1_and_the_fields(tmp_path: Path) -> None:
    root = tmp_path / "ismn"
    path = write_stm(root, "N", "S", 0.50, 0.05, "Probe", days())
    with pytest.raises(InputError) as info:
        read_ismn(root, engine="builtin")
    line = one_line(info.value, path)
    assert "line 1, header fields DEPTH_FROM and DEPTH_TO" in line
    assert "depth_from 0.5 m is deeper than depth_to 0.05 m" in line
    assert "expected DEPTH_FROM <= DEPTH_TO" in line
    with pytest.raises(InputError, match="line 1, header fields DEPTH_FROM and DEPTH_TO"):
        read_ismn_file(path, root, "builtin")


def test_depth_swap_is_one_error_line_from_the_command_line(tmp_path: Path) -> None:
    rain = write_climate(tmp_path / "era5.nc")
    write_download(tmp_path / "ismn", rain)
    path = next((tmp_path / "ismn" / "NET" / "StA").glob("*_sm_0.050000_0.050000_*.stm"))
    lines = path.read_text(encoding="ascii").splitlines()
    lines[0] = lines[0].replace("   0.05    0.05 Probe", "   0.50    0.05 Probe")
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    config = tmp_path / "ismn.toml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(out), "--stages", "inputs"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith(f"error: {path}: line 1, header fields DEPTH_FROM and DEPTH_TO: ")
    assert not (out / "inputs" / "ismn_report.json").exists()
    assert not (out / "inputs" / "stations.csv").exists()


# --------------------------------------------------------------------------------------------
# 2. lines in reverse time order


def test_reversed_file_gives_the_same_daily_means_as_the_sorted_one(tmp_path: Path) -> None:
    sorted_root, reversed_root = tmp_path / "sorted", tmp_path / "reversed"
    rows = days(12)
    for root in (sorted_root, reversed_root):
        write_stm(root, "N", "S", 0.05, 0.05, "Probe", rows)
        write_stm(root, "N", "S", 0.20, 0.20, "Probe", rows[4:])
    for path in sorted(reversed_root.rglob("*.stm")):
        rewrite_body(path, body_of(path)[::-1])
    a = read_ismn(sorted_root, engine="builtin")
    b = read_ismn(reversed_root, engine="builtin")
    assert len(a.obs) == 12 + 10 + 10  # layer 1: 12 days; layers 2 and 3 (20 cm): 10 days
    pd.testing.assert_frame_equal(a.obs, b.obs)
    assert a.report == b.report
    path_a = next(sorted_root.rglob("*_0.050000_0.050000_*.stm"))
    path_b = next(reversed_root.rglob("*_0.050000_0.050000_*.stm"))
    series_a = read_ismn_file(path_a, sorted_root, "builtin")
    series_b = read_ismn_file(path_b, reversed_root, "builtin")
    pd.testing.assert_frame_equal(series_a.data, series_b.data)  # read in time order
    assert series_b.data["time"].is_monotonic_increasing
    means = daily_sensor_means(series_a.data)
    assert means.iloc[0] == pytest.approx((0.11 + 0.21) / 2)
    # the daily means of a frame in reverse order, as another reader could give it
    backwards = series_a.data.iloc[::-1].reset_index(drop=True)
    pd.testing.assert_series_equal(daily_sensor_means(backwards), means)


# --------------------------------------------------------------------------------------------
# 3. repeated time stamps


def test_identical_repeated_lines_are_dropped_and_counted(tmp_path: Path) -> None:
    clean, repeated = tmp_path / "clean", tmp_path / "repeated"
    write_stm(clean, "N", "S", 0.05, 0.05, "Probe", days())
    path = write_stm(repeated, "N", "S", 0.05, 0.05, "Probe", days())
    body = body_of(path)
    rewrite_body(path, [*body[:3], body[2], *body[3:], body[0]])  # twice line 4, once line 2
    a = read_ismn(clean, engine="builtin")
    b = read_ismn(repeated, engine="builtin")
    pd.testing.assert_frame_equal(a.obs, b.obs)  # the repeats do not weigh twice
    assert a.report["duplicate_lines_dropped"] == 0
    assert b.report["duplicate_lines_dropped"] == 2
    assert read_ismn_file(path, repeated, "builtin").duplicates_dropped == 2


def test_same_time_different_value_names_the_file_and_both_lines(tmp_path: Path) -> None:
    root = tmp_path / "ismn"
    path = write_stm(root, "N", "S", 0.05, 0.05, "Probe", days())
    body = body_of(path)
    assert body[1].startswith("2019/05/01 01:00")
    rewrite_body(path, [*body, body[1].replace("0.2100", "0.2500")])  # line 3 and line 10
    with pytest.raises(InputError) as info:
        read_ismn(root, engine="builtin")
    line = one_line(info.value, path)
    assert f"error: {path}: lines 3 and 10: two measurements at the same time" in line
    assert "'2019/05/01 01:00 0.21 G' and '2019/05/01 01:00 0.25 G'" in line
    assert "expected one value per time" in line


def test_same_time_different_flag_is_an_error_in_a_reversed_file(tmp_path: Path) -> None:
    root = tmp_path / "ismn"
    path = write_stm(root, "N", "S", 0.05, 0.05, "Probe", days())
    body = body_of(path)
    rewrite_body(path, [body[4].replace(" G ", " D02 "), *body[::-1]])  # line 2 and line 6
    with pytest.raises(InputError) as info:
        read_ismn_file(path, root, "builtin")
    line = one_line(info.value, path)
    assert "lines 2 and 6:" in line
    assert "'2019/05/03 00:00 0.13 D02' and '2019/05/03 00:00 0.13 G'" in line


# --------------------------------------------------------------------------------------------
# 4. values outside 0-0.7 m3 m-3


def test_a_sensor_in_percent_is_a_units_error(tmp_path: Path) -> None:
    root = tmp_path / "ismn"
    write_stm(root, "N", "S", 0.20, 0.20, "Probe", days())
    rows = [(when, 100.0 * value, flag) for when, value, flag in days(12)]
    rows[3] = (rows[3][0], 0.35, "G")  # one value happens to lie within 0-0.7
    path = write_stm(root, "N", "S", 0.05, 0.05, "Probe", rows)
    with pytest.raises(InputError) as info:
        read_ismn(root, engine="builtin")
    line = one_line(info.value, path)
    assert "column VALUE: 23 of the 24 values flagged G lie outside 0-0.7" in line
    assert "range from 0.35 to 32)" in line
    assert "expected soil moisture in m3 m-3" in line


def test_single_values_out_of_range_are_dropped_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "ismn"
    rows = days()
    rows[2] = (rows[2][0], 0.95, "G")  # 2019/05/02 00:00: dropped, counted
    rows[5] = (rows[5][0], -0.05, "G")  # 2019/05/03 01:00: dropped, counted
    rows[6] = (rows[6][0], 0.90, "C03")  # flagged: dropped for its flag, not counted here
    write_stm(root, "N", "S", 0.05, 0.05, "Probe", rows)
    write_stm(root, "N", "S", 1.00, 1.00, "Deep", [(rows[0][0], 0.95, "G")])  # unused sensor
    data = read_ismn(root, engine="builtin")
    assert data.report["values_out_of_range_dropped"] == 2
    assert data.report["sensors_unused_below_50cm"] == 1
    layer1 = data.obs.loc[data.obs["layer"] == 1].set_index("date")["sm"]
    assert layer1.tolist() == pytest.approx([0.16, 0.22, 0.13, 0.24])


# --------------------------------------------------------------------------------------------
# the ismn package's reader gives the same results (run where the package is installed)


def test_the_ismn_engine_sorts_drops_repeats_and_names_conflicting_lines(tmp_path: Path) -> None:
    pytest.importorskip("ismn")
    root = tmp_path / "ismn"
    path = write_stm(root, "N", "S", 0.05, 0.05, "Probe", days())
    body = body_of(path)
    rewrite_body(path, [*body[::-1], body[2]])  # reversed, line 4 repeated as line 10
    builtin = read_ismn(root, engine="builtin")
    by_ismn = read_ismn(root, engine="ismn")
    pd.testing.assert_frame_equal(builtin.obs, by_ismn.obs)
    assert by_ismn.report["duplicate_lines_dropped"] == 1
    rewrite_body(path, [*body, body[1].replace("0.2100", "0.2500")])
    with pytest.raises(InputError) as info:
        read_ismn(root, engine="ismn")
    assert "lines 3 and 10: two measurements at the same time" in one_line(info.value, path)
