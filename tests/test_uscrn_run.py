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


def test_uscrn_stations_run_start_to_finish(tmp_path: Path) -> None:
    # MO_D_4 lies at longitude -99.00, which is a value, not the soil-moisture missing marker
    rng = np.random.default_rng(0)
    root = tmp_path / "uscrn"
    for s, (name, wban) in enumerate(
        [("NE_A_1", "90001"), ("KS_B_2", "90002"), ("IA_C_3", "90003"), ("MO_D_4", "90004")]
    ):
        for year in (2015, 2016):
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
    config = tmp_path / "uscrn.toml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["train"]["status"] == "ran"
    for name in ("predict", "analyze"):
        assert summary[name] == {
            "status": "not applicable",
            "reason": "the uscrn input has no grid",
        }
    assert "stage predict: skipped, the uscrn input has no grid" in result.output
    assert summary["attribute"]["status"] == "ran"
    assert (out / "report" / "index.html").is_file()
    assert not (out / "product.zarr").exists()
    assert result.output.strip().splitlines()[-1] == f"report: {out / 'report' / 'index.html'}"
