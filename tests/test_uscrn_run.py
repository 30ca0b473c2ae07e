"""USCRN stations through ``cropsm run``: the stages that need a grid say why they are skipped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from cropsm.cli import app
from test_io_uscrn import daily01_line, write_station_year

CONFIG = """
[run]
name = "USCRN test"
seed = 0
[inputs.uscrn]
root = "uscrn"
first_year = 2015
last_year = 2016
days_of_month = [8, 18, 28]
[features]
groups_off = ["soil", "pattern", "wind", "cloud", "elevation"]
[train]
split = "random"
max_epochs = 5
patience = 2
[train.grid]
batch_sizes = [32]
learning_rates = [5e-3]
hidden_layers = [1]
units = [8]
[attribute]
groups = ["precipitation", "temperature"]
national = false
"""


STATIONS = [("NE_A_1", "90001"), ("KS_B_2", "90002"), ("IA_C_3", "90003"), ("MO_D_4", "90004")]


def write_uscrn_tree(root: Path, stations, years=(2015, 2016), seed: int = 0) -> None:
    """Daily01 files in NOAA's layout whose soil moisture follows the recent rain."""
    rng = np.random.default_rng(seed)
    for s, (name, wban) in enumerate(stations):
        for year in years:
            days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
            rain = rng.gamma(0.4, 6.0, len(days))
            wet = pd.Series(rain).rolling(20, min_periods=1).mean().to_numpy()
            rows = [
                daily01_line(
                    wban, day, lon=-96.0 - s, lat=38.0 + s, t=12 + 12 * np.sin(i / 58.0 - 1.8),
                    p=round(float(rain[i]), 1),
                    sm=tuple(round(0.15 + 0.02 * k + 0.02 * wet[i] + 0.01 * s, 3)
                             for k in range(5)),
                )
                for i, day in enumerate(days)
            ]  # fmt: skip
            write_station_year(root, name, wban, year, rows)


def test_uscrn_stations_run_start_to_finish(tmp_path: Path) -> None:
    # MO_D_4 lies at longitude -99.00, which is a value, not the soil-moisture missing marker
    write_uscrn_tree(tmp_path / "uscrn", STATIONS)
    config = tmp_path / "uscrn.toml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["train"]["status"] == "ran"
    assert summary["features"]["stations"] == 4
    for name in ("predict", "analyze"):
        assert summary[name] == {
            "status": "not applicable",
            "reason": "the uscrn input has no grid",
        }
    assert "stage predict: skipped, the uscrn input has no grid" in result.output
    assert summary["attribute"]["status"] == "ran"
    assert json.loads((out / "inputs" / "source.json").read_text()) == {
        "source": "uscrn",
        "provides": [],
    }
    assert (out / "inputs" / "uscrn_report.json").is_file()
    assert (out / "inputs" / "stations.csv").is_file()
    assert not (out / "truth_skill.json").exists()
    assert not (out / "product.zarr").exists()
    assert result.output.strip().splitlines()[-1] == f"report: {out / 'report' / 'index.html'}"

    # the report shows only what a station network without a grid can have
    page = (out / "report" / "index.html").read_text()
    toc = page[page.index("<nav>") : page.index("</nav>")]
    for anchor in ("inputs", "networks", "attribution", "provenance"):
        assert f'href="#{anchor}"' in toc
    for anchor in ("observations", "product", "satellite", "scenarios", "truth"):
        assert f'href="#{anchor}"' not in toc
        assert f'<section id="{anchor}"' not in page
    assert "National product: Fig. 7a,b (the uscrn input has no grid)" in page

    # a fifth station, never seen in training, scored through the run's own USCRN options
    other = tmp_path / "other"
    write_uscrn_tree(other, [("NE_A_1", "90001"), ("KS_E_5", "90005")], seed=1)
    scored_path = tmp_path / "e.json"
    result = runner.invoke(
        app,
        ["evaluate", str(out), "--stations", str(other), "--format", "uscrn",
         "--station", "KS_E_5", "--json", str(scored_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    scored = json.loads(scored_path.read_text())
    assert scored["stations"] == 1
    # 2015 lacks the 12-month precipitation look-back: at most 2016's 12 months x 3 days
    assert 20 <= scored["layer1"]["test"]["n"] <= 36
    assert set(scored["baselines"]) == {"climatology", "linear", "gradient_boosting"}
    assert scored["baselines"]["linear"]["layer1"]["test"]["n"] == scored["layer1"]["test"]["n"]

    # the format of the stations must be the run's: one line saying which to use
    result = runner.invoke(
        app,
        ["evaluate", str(out), "--stations", str(other), "--observations", str(other),
         "--json", str(scored_path)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: --format csv: the run's networks were trained on the uscrn input; score other "
        "stations with --format uscrn"
    )
