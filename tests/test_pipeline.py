"""The main job on the tiny virtual China: inputs -> features -> train, and evaluate."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cropsm.cli import app
from cropsm.config import load_config
from cropsm.features.station_table import read_station_table, station_table_path
from cropsm.pipeline import run_pipeline
from cropsm.train import load_models, predict_chain

runner = CliRunner()


def test_training_outputs(tiny_run):
    run_dir, _ = tiny_run
    for k in range(1, 6):
        assert (run_dir / "models" / f"layer{k}" / "weights.npz").exists()
        meta = json.loads((run_dir / "models" / f"layer{k}" / "model.json").read_text())
        assert meta["feature_names"][-1] == ("sm_pred_upper" if k > 1 else "doy_cos")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["split"] == "random"
    for k in range(1, 6):
        for split in ("train", "validation", "test"):
            m = metrics[f"layer{k}"][split]
            assert set(m) >= {"r2", "rmse", "ubrmse", "bias", "r", "n"}
            assert m["n"] > 0
    grid = pd.read_csv(run_dir / "grid_search.csv")
    assert len(grid) == 5 * 2  # five layers x two configurations
    table2 = pd.read_csv(run_dir / "table2.csv")
    assert {"paper_r2_train", "paper_r2_test", "r2_train", "r2_test"} <= set(table2.columns)
    splits = pd.read_csv(run_dir / "splits.csv")
    assert set(splits["split"]) == {"train", "validation", "test"}
    assert (run_dir / "figures" / "scatter_all_layers.png").stat().st_size > 1000


def test_truth_skill_written_for_virtual_china(tiny_run):
    run_dir, _ = tiny_run
    skill = json.loads((run_dir / "truth_skill.json").read_text())
    assert skill["cells"] > 0
    for k in range(1, 6):
        layer = skill[f"layer{k}"]
        assert set(layer["by_pattern"]) == {"ww_fl", "ww_mz", "sw_ct", "rs_ct", "fl_mz", "fl_sb"}
        assert np.isfinite(layer["reference"]["rmse"])
        assert layer["reference"]["rmse"] < 0.15


def test_station_day_coverage_separates_readings_from_truth(tiny_run):
    """The intervals are calibrated on readings; at the same station days the twin also knows
    the truth: the readings' coverage is the one the calibration reports, the readings differ
    from the truth by the twin's observation error, and the readings' white error estimated
    from the residuals (or none, where it cannot be told apart) is near the twin's."""
    from cropsm.twin.stations import MEASUREMENT_NOISE_SD, REPRESENTATIVENESS_SD

    run_dir, _ = tiny_run
    days = json.loads((run_dir / "truth_skill.json").read_text())["station_days"]
    ensemble = json.loads((run_dir / "models" / "ensemble.json").read_text())["layers"]
    observation_error = np.hypot(MEASUREMENT_NOISE_SD, REPRESENTATIVENESS_SD)
    for k in range(1, 6):
        validation, test = days[f"layer{k}"]["validation"], days[f"layer{k}"]["test"]
        calibration = ensemble[f"layer{k}"]
        assert validation["coverage_readings"] == pytest.approx(
            calibration["coverage_validation_calibrated"], abs=1e-9
        )
        assert test["coverage_readings"] == pytest.approx(
            calibration["coverage_test_calibrated"], abs=1e-9
        )
        sigma = calibration["observation_error_sd_m3_m-3"]
        # 30 stations: the nugget's sampling error is several 0.001 (0.012-0.028 seen)
        assert sigma == 0.0 or abs(sigma - MEASUREMENT_NOISE_SD) < 0.01, (k, calibration)
        for split in (validation, test):
            assert 0.0 <= split["coverage_truth"] <= 1.0
            assert split["rmse_readings_vs_truth"] == pytest.approx(observation_error, rel=0.3)


def test_models_reproduce_their_test_metrics(tiny_run):
    run_dir, _ = tiny_run
    table = read_station_table(station_table_path(run_dir))
    models = load_models(run_dir / "models")
    pred = predict_chain(models, table)
    splits = pd.read_csv(run_dir / "splits.csv")
    assert len(splits) == len(table)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    from cropsm.train.metrics import r2

    test = splits["split"].to_numpy() == "test"
    obs = table["sm_l1"].to_numpy()[test]
    sim = pred["sm_pred_l1"].to_numpy()[test]
    assert r2(obs, sim) == pytest.approx(metrics["layer1"]["test"]["r2"], abs=1e-9)


def test_rerun_skips_current_stages(tiny_run):
    run_dir, config_path = tiny_run
    summary = run_pipeline(
        load_config(config_path), run_dir, stages=["inputs", "features", "train"]
    )
    assert all(rec["status"] == "skipped" for rec in summary.values())


def test_evaluate_on_stations(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    twin = run_dir / "inputs" / "twin-tiny-seed0" / "stations"
    out = tmp_path / "eval.json"
    result = runner.invoke(
        app,
        [
            "evaluate",
            str(run_dir),
            "--stations",
            str(twin / "stations.csv"),
            "--observations",
            str(twin / "observations.csv"),
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["stations"] == 30
    assert data["ensemble_members"] == 2  # the tiny run's [train] members
    for k in range(1, 6):
        assert set(data[f"layer{k}"]) == {"test", "interval90_coverage"}
        assert data[f"layer{k}"]["test"]["n"] > 0
        coverage = data[f"layer{k}"]["interval90_coverage"]
        # the training stations themselves: the calibrated interval covers about 90 %, the
        # two members' spread alone far less
        assert 0.8 <= coverage["calibrated"] <= 0.97
        assert coverage["raw"] <= coverage["value"] <= coverage["calibrated"]
        assert coverage["raw"] < coverage["calibrated"]
    assert "calibrat" in result.output  # the coverage columns of the table


def test_groups_off_unknown_group_is_config_error(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[inputs.twin]\npreset = "tiny"\n[features]\ngroups_off = ["windd"]\n')
    result = runner.invoke(app, ["run", str(cfg), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "features.groups_off" in result.output
