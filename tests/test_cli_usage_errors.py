"""Misuse of the commands and quietly lost data: clear errors, counts and warnings.

Each case is a real file or folder handed to the command line: a config that is not UTF-8,
negative seeds, an empty stage list, a folder that is no run, a zarr store that is no product,
years the wrong way round, stations with nothing left to score; and observations that the
inputs drop (empty ``sm``, a station whose every value is missing, a station whose grid cell
lacks a static field), which must be counted and named rather than vanish.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from cropsm.cli import app

runner = CliRunner()


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def one_clean_error(result) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output)
    errors = error_lines(result)
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.output
    return errors[0]


def test_a_config_that_is_not_utf8_names_its_line(tmp_path: Path):
    config = tmp_path / "run.toml"
    config.write_bytes(b'[run]\nname = "caf\xe9"\n[inputs.twin]\npreset = "tiny"\n')
    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "run")])
    line = one_clean_error(result)
    assert "run.toml: line 2: byte 0xe9 is not UTF-8" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("section", ["run", "inputs.twin", "train"])
def test_negative_seeds_are_refused_by_the_config(tmp_path: Path, section: str):
    config = tmp_path / "run.toml"
    text = '[run]\nname = "x"\n[inputs.twin]\npreset = "tiny"\n[train]\n'
    config.write_text(text.replace(f"[{section}]\n", f"[{section}]\nseed = -1\n"))
    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "run")])
    line = one_clean_error(result)
    assert f"{section}.seed" in line and "greater than or equal to 0" in line


def test_the_twin_command_refuses_a_negative_seed(tmp_path: Path):
    result = runner.invoke(app, ["twin", str(tmp_path / "vc"), "--seed", "-1"])
    assert result.exit_code == 2
    assert "--seed" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "vc").exists()
    from cropsm.twin.generate import generate_twin

    with pytest.raises(ValueError, match="expected an integer of 0 or more"):
        generate_twin(tmp_path / "vc", "tiny", seed=-3)


def test_an_empty_stage_list_is_an_error_not_every_stage(tmp_path: Path):
    config = tmp_path / "run.toml"
    config.write_text('[run]\nname = "x"\n[inputs.twin]\npreset = "tiny"\n')
    for stages in ("", " , "):
        result = runner.invoke(
            app, ["run", str(config), "--out", str(tmp_path / "run"), "--stages", stages]
        )
        assert "no stage given; expected some of ['inputs'" in one_clean_error(result)
        assert not (tmp_path / "run").exists()


def test_report_and_export_refuse_what_is_not_theirs(tmp_path: Path, tiny_twin):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not a run")
    line = one_clean_error(runner.invoke(app, ["report", str(folder)]))
    assert "notes: not a cropsm run directory (no config.resolved.toml" in line
    assert not (folder / "report").exists()

    root, _ = tiny_twin  # the twin's truth store is a zarr store, but no product
    result = runner.invoke(
        app, ["export-netcdf", str(root / "truth.zarr"), str(tmp_path / "truth.nc")]
    )
    line = one_clean_error(result)
    assert "truth.zarr: not a cropsm product store" in line and "cropsm-product/2" in line
    assert not (tmp_path / "truth.nc").exists()


def test_evaluate_years_the_wrong_way_round(tmp_path: Path, tiny_run):
    run_dir, _ = tiny_run
    result = runner.invoke(
        app,
        ["evaluate", str(run_dir), "--stations", str(tmp_path), "--format", "uscrn",
         "--first-year", "2016", "--last-year", "2014", "--json", str(tmp_path / "e.json")],
    )  # fmt: skip
    assert "--first-year 2016 is after --last-year 2014" in one_clean_error(result)


def test_evaluate_with_nothing_to_score_says_why(tmp_path: Path, tiny_run):
    """Observations only in the climate's first months: the 12-month precipitation sums are
    missing there, so no row can be scored. An error that says so, no JSON of NaNs."""
    run_dir, _ = tiny_run
    twin = run_dir / "inputs" / "twin-tiny-seed0"
    obs = pd.read_csv(twin / "stations" / "observations.csv", parse_dates=["date"])
    with xr.open_mfdataset(sorted((twin / "climate").glob("*.nc"))) as climate:
        time = "valid_time" if "valid_time" in climate.coords else "time"
        start = pd.Timestamp(climate[time].values.min()).normalize()
    # each station's first day of observations, moved into the climate's second month
    early = obs[obs["date"] == obs.groupby("station_id")["date"].transform("min")].copy()
    early["date"] = start + pd.Timedelta(days=40)
    early.to_csv(tmp_path / "observations.csv", index=False, date_format="%Y-%m-%d")
    shutil.copy(twin / "stations" / "stations.csv", tmp_path / "stations.csv")
    out = tmp_path / "eval.json"
    result = runner.invoke(
        app,
        ["evaluate", str(run_dir), "--stations", str(tmp_path / "stations.csv"),
         "--observations", str(tmp_path / "observations.csv"), "--json", str(out)],
    )  # fmt: skip
    line = one_clean_error(result)
    assert "stations.csv: no observation can be scored" in line
    assert "precip_12m" in line and "look back up to 12 months" in line
    assert not out.exists()


@pytest.fixture(scope="module")
def twin_files(tmp_path_factory, tiny_twin) -> Path:
    """The tiny twin's station, climate and static files, to damage copies of."""
    root, _ = tiny_twin
    return root


def files_config(root: Path, observations: Path, static: Path) -> str:
    climate = sorted(str(p) for p in (root / "climate").glob("*.nc"))
    return (
        '[run]\nname = "lost"\n[inputs.files]\n'
        f"stations = {json.dumps(str(root / 'stations' / 'stations.csv'))}\n"
        f"observations = {json.dumps(str(observations))}\n"
        f"climate = {json.dumps(climate)}\n"
        f"static = {json.dumps(str(static))}\n"
    )


def test_dropped_observations_are_counted_and_lost_stations_named(tmp_path: Path, twin_files):
    root = twin_files
    stations = pd.read_csv(root / "stations" / "stations.csv")
    obs = pd.read_csv(root / "stations" / "observations.csv")
    silent, lost = str(stations["station_id"].iloc[0]), str(stations["station_id"].iloc[1])
    # one empty sm value, and a station whose every value is empty
    obs.loc[obs.index[obs["station_id"] != silent][0], "sm"] = np.nan
    n_silent = int((obs["station_id"] == silent).sum())
    obs.loc[obs["station_id"] == silent, "sm"] = np.nan
    obs.to_csv(tmp_path / "observations.csv", index=False)
    # another station's grid cell without elevation
    static = xr.open_dataset(root / "static" / "static.nc").load()
    row = stations.set_index("station_id").loc[lost]
    cell = {"lat": row["lat"], "lon": row["lon"]}
    ilat = int(np.abs(static["lat"].values - cell["lat"]).argmin())
    ilon = int(np.abs(static["lon"].values - cell["lon"]).argmin())
    static["elevation"][ilat, ilon] = np.nan
    static.to_netcdf(tmp_path / "static.nc")
    config = tmp_path / "run.toml"
    config.write_text(files_config(root, tmp_path / "observations.csv", tmp_path / "static.nc"))
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(config), "--out", str(out), "--stages",
                                 "inputs,features"])  # fmt: skip
    assert result.exit_code == 0, result.output
    inputs = json.loads((out / "stages" / "inputs.json").read_text())["result"]
    assert inputs["observations_missing_sm"] == n_silent + 1
    assert inputs["stations_without_observations"] == 1
    features = json.loads((out / "stages" / "features.json").read_text())["result"]
    assert features["stations_without_rows"] == 1
    report = json.loads((out / "features" / "station_table_report.json").read_text())
    assert report["stations_without_rows"] == [lost]
    warning = [line for line in result.stderr.splitlines() if "warning:" in line]
    assert len(warning) == 1 and lost in warning[0] and "elevation" in warning[0]


def test_ctrl_c_is_one_line_and_status_130(tmp_path: Path, monkeypatch):
    import cropsm.stages

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cropsm.stages, "evaluate_run", interrupted)
    json_out = tmp_path / "e.json"
    result = runner.invoke(
        app, ["evaluate", str(tmp_path), "--stations", str(tmp_path), "--json", str(json_out)]
    )
    assert result.exit_code == 130
    assert result.stderr.strip() == (
        "interrupted; what was finished is kept: run the same command again to go on"
    )
