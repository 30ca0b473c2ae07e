"""The station-level pipeline on the real USCRN files (skipped when the shared data is absent).

A few stations and years with a one-configuration grid, so that it runs in well under a minute:
what it checks is that real files flow through ``cropsm run`` (reading, station-level features,
the networks and the baselines) into the run files, and that ``cropsm evaluate --format uscrn``
scores unseen stations.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cropsm.cli import app

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
USCRN = DATA / "uscrn"
ETOPO = DATA / "etopo20"
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "uscrn.toml"

pytestmark = pytest.mark.skipif(
    not (USCRN.is_dir() and ETOPO.is_dir()),
    reason=f"real USCRN / ETOPO20 data not found at {DATA} (the shared data folder beside the "
    "project); these tests need it",
)

STATIONS = ["NE_Lincoln_11_SW", "OK_Stillwater_2_W", "MO_Salem_10_W"]


def small_config(tmp_path: Path) -> Path:
    text = f"""
[run]
name = "uscrn test"
[inputs.uscrn]
root = "{USCRN}"
stations = {json.dumps(STATIONS)}
first_year = 2016
last_year = 2019
days_of_month = [8, 18, 28]
elevation_grid = "{ETOPO}"
[features]
groups_off = ["soil", "pattern", "wind", "cloud"]
[train]
split = "year"
max_epochs = 4
patience = 2
[train.grid]
batch_sizes = [256]
learning_rates = [5e-3]
hidden_layers = [1]
units = [8]
"""
    path = tmp_path / "uscrn.toml"
    path.write_text(text)
    return path


def test_example_config_is_valid_and_its_stations_exist() -> None:
    from cropsm.config import load_config
    from cropsm.io.uscrn import find_uscrn_files

    config = load_config(EXAMPLE)
    uscrn = config.inputs.uscrn
    assert config.inputs.source == "uscrn"
    assert uscrn.root == USCRN.resolve()
    assert uscrn.elevation_grid == ETOPO.resolve()
    assert set(config.features.groups_off) == {"soil", "pattern", "wind", "cloud"}
    files = find_uscrn_files(uscrn.root, uscrn.stations, uscrn.first_year, uscrn.last_year)
    assert {f.station for f in files} == set(uscrn.stations)


def test_run_trains_networks_and_baselines_and_evaluate_scores_new_stations(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["run", str(small_config(tmp_path)), "--out", str(run_dir), "--stages",
         "inputs,features,train"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((run_dir / "run_summary.json").read_text())
    assert summary["features"]["stations"] == len(STATIONS)
    assert summary["features"]["rows"] > 200
    for name in (
        "config.resolved.toml", "features/station_table.parquet", "inputs/uscrn_report.json",
        "inputs/stations.csv", "inputs/source.json", "models/layer5/model.json", "metrics.json",
        "splits.csv", "baselines/linear.json", "baselines/climatology.csv",
        "baselines/comparison.csv", "run_summary.json",
    ):  # fmt: skip
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"] == "year"
    for model in ("climatology", "linear", "gradient_boosting"):
        for k in range(1, 6):
            test = metrics["baselines"][model][f"layer{k}"]["test"]
            assert test["n"] == metrics[f"layer{k}"]["test"]["n"]  # same rows as the network
            assert test["rmse"] < 0.2
    assert metrics["baselines"]["gradient_boosting"]["layer1"]["test"]["r2"] > 0.0

    out = tmp_path / "oakley.json"
    result = runner.invoke(
        app,
        ["evaluate", str(run_dir), "--stations", str(USCRN), "--format", "uscrn",
         "--station", "KS_Oakley_19_SSW", "--first-year", "2017", "--last-year", "2019",
         "--json", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    scored = json.loads(out.read_text())
    assert scored["stations"] == 1
    assert scored["layer1"]["test"]["n"] > 20
    assert set(scored["baselines"]) == {"climatology", "linear", "gradient_boosting"}
    assert scored["baselines"]["linear"]["layer3"]["test"]["n"] > 0
