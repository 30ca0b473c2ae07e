"""ISMN stations through ``cropsm run``: soil from the static variables, climate from a grid.

Every file is written here in the layout ISMN and the CDS ship: ``.stm`` sensor files and a
``*_static_variables.csv`` per station folder, an ERA5-style daily netCDF.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from typer.testing import CliRunner

from cropsm.cli import app
from test_io_ismn import SUB, TOP, static_rows, write_static, write_stm

LAT = np.array([41.0, 40.5, 40.0, 39.5])  # descending, as ERA5
LON = np.array([100.0, 100.5, 101.0])
DAYS = pd.date_range("2017-01-01", "2018-12-31", freq="D")
STATIONS = {"StA": (40.9, 100.1), "StB": (40.1, 100.4), "StC": (39.6, 100.9), "StD": (40.6, 101.0)}


def write_climate(path: Path, seed: int = 0) -> np.ndarray:
    """Daily ERA5-style fields; returns the daily rain in mm, (time, lat, lon)."""
    rng = np.random.default_rng(seed)
    shape = (len(DAYS), len(LAT), len(LON))
    rain_mm = rng.gamma(0.5, 4.0, shape)
    season = np.sin(2 * np.pi * (DAYS.dayofyear.to_numpy() - 100) / 365.0)[:, None, None]
    t2m = 273.15 + 10.0 + 12.0 * season + 0.1 * rng.standard_normal(shape)
    ds = xr.Dataset(
        {
            "tp": (("valid_time", "latitude", "longitude"), rain_mm / 1000.0, {"units": "m"}),
            "t2m": (("valid_time", "latitude", "longitude"), t2m, {"units": "K"}),
            "d2m": (("valid_time", "latitude", "longitude"), t2m - 6.0, {"units": "K"}),
            "ssr": (
                ("valid_time", "latitude", "longitude"),
                1.2e7 + 6e6 * season + 0 * t2m,
                {"units": "J m**-2"},
            ),
        },  # fmt: skip
        coords={
            "valid_time": DAYS,
            "latitude": ("latitude", LAT, {"units": "degrees_north"}),
            "longitude": ("longitude", LON, {"units": "degrees_east"}),
        },
    )
    ds.to_netcdf(path)
    return rain_mm


def write_download(root: Path, rain_mm: np.ndarray, soil: bool = True) -> None:
    """Three sensors a station (5, 20 and 40 cm) whose water follows the cell's recent rain."""
    for s, (station, (lat, lon)) in enumerate(STATIONS.items()):
        iy, ix = int(np.abs(LAT - lat).argmin()), int(np.abs(LON - lon).argmin())
        wet = pd.Series(rain_mm[:, iy, ix]).rolling(15, min_periods=1).mean().to_numpy()
        for depth in (0.05, 0.20, 0.40):
            sm = 0.12 + 0.03 * s + 0.1 * depth + 0.015 * wet
            rows = [(f"{d:%Y/%m/%d} 12:00", float(v), "G") for d, v in zip(DAYS, sm, strict=True)]
            write_stm(root, "NET", station, depth, depth, "Probe", rows, lat=lat, lon=lon)
        if soil:
            top = {**TOP, "sand fraction": 30.0 + 5 * s, "silt fraction": 47.0 - 5 * s}
            write_static(root, "NET", station, static_rows(top, SUB))


CONFIG = """
[run]
name = "ISMN test"
[inputs.ismn]
root = "ismn"
climate = ["era5.nc"]
stations = ["StA", "StB", "StC"]
days_of_month = [8, 18, 28]
engine = "builtin"
[features]
groups_off = ["pattern", "wind", "cloud"]
[train]
split = "random"
max_epochs = 5
patience = 2
[train.grid]
batch_sizes = [32]
learning_rates = [5e-3]
hidden_layers = [1]
units = [8]
"""


def test_ismn_stations_train_with_their_soil(tmp_path: Path) -> None:
    rain = write_climate(tmp_path / "era5.nc")
    write_download(tmp_path / "ismn", rain)
    config = tmp_path / "ismn.toml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(
        app, ["run", str(config), "--out", str(out), "--stages", "inputs,features,train"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["inputs"]["stations"] == 3
    assert summary["features"]["stations"] == 3
    assert summary["train"]["status"] == "ran"
    assert json.loads((out / "inputs" / "source.json").read_text()) == {
        "source": "ismn",
        "provides": ["soil"],
    }
    report = json.loads((out / "inputs" / "ismn_report.json").read_text())
    assert report["soil"]["static_variables_files"] == 3
    stations = pd.read_csv(out / "inputs" / "stations.csv", index_col="station_id")
    assert stations.loc["NET.StB", "climate_class"] == "Cfa"

    table = pd.read_parquet(out / "features" / "station_table.parquet")
    first = table.groupby("station_id").first()
    # soil of the static variables on the five layers: 0-30 cm in layers 1-3, 30-100 in 4-5
    np.testing.assert_allclose(first["sand_l1"], [30.0, 35.0, 40.0])
    np.testing.assert_allclose(first["sand_l3"], [30.0, 35.0, 40.0])
    np.testing.assert_allclose(first[["sand_l4", "sand_l5"]], 29.0)
    np.testing.assert_allclose(first["bd_l1"], 2.65 * (1 - 0.46))
    np.testing.assert_allclose(first["bd_l5"], 2.65 * (1 - 0.44))
    # the climate is the nearest cell's: StC (39.6 N, 100.9 E) has the rain of (39.5, 101.0)
    row = table.loc[table["station_id"] == "NET.StC"].iloc[0]
    day = DAYS.get_loc(pd.Timestamp(row["date"]))
    assert np.isclose(row["precip"], rain[day, 3, 2], rtol=1e-5)  # float32 in the file
    assert set(table["date"].dt.day) == {8, 18, 28}
    metrics = json.loads((out / "metrics.json").read_text())
    models = json.loads((out / "models" / "layer1" / "model.json").read_text())
    assert {"sand_l1", "clay_l1", "bd_l1"} <= set(models["feature_names"])
    assert metrics["layer1"]["test"]["n"] > 0

    # a station the networks have not seen, read with the run's own ISMN options
    scored_path = tmp_path / "d.json"
    result = runner.invoke(
        app,
        ["evaluate", str(out), "--stations", str(tmp_path / "ismn"), "--format", "ismn",
         "--station", "StD", "--json", str(scored_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    scored = json.loads(scored_path.read_text())
    assert scored["stations"] == 1
    assert scored["layer1"]["test"]["n"] > 20
    assert scored["baselines"]["linear"]["layer1"]["test"]["n"] == scored["layer1"]["test"]["n"]


def test_a_station_without_static_variables_is_one_line(tmp_path: Path) -> None:
    rain = write_climate(tmp_path / "era5.nc")
    write_download(tmp_path / "ismn", rain, soil=False)
    config = tmp_path / "ismn.toml"
    config.write_text(CONFIG)
    result = CliRunner().invoke(
        app, ["run", str(config), "--out", str(tmp_path / "run"), "--stages", "inputs"]
    )
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines[-1] == (
        f"error: {tmp_path / 'ismn' / 'NET' / 'StA'}: no NET_NET_StA_static_variables.csv; "
        "expected the ISMN static variables (soil) beside the .stm files, or switch the soil "
        'group off ([features] groups_off = ["soil"])'
    )
    # with the soil group off the same download runs
    config.write_text(CONFIG.replace('groups_off = ["pattern"', 'groups_off = ["soil", "pattern"'))
    result = CliRunner().invoke(
        app, ["run", str(config), "--out", str(tmp_path / "run2"), "--stages", "inputs,features"]
    )
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "run2" / "features" / "station_table.parquet")
    assert "sand_l1" not in table
