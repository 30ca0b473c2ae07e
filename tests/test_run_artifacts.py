"""Damaged run artifacts and stale stages: clear errors, no silent reuse, no product lost.

The networks of a real tiny run are copied and damaged one way at a time (NaN weights, a
truncated weights file, a truncated description, a scale of 0, a missing layer, an ensemble
description that disagrees with its folders, a negative residual SD); reading them must name the
file and the field. ``cropsm predict`` with fewer scenarios than the run's product must not
replace it. The pipeline must re-run a stage whose outputs are gone, whose marker is damaged or
whose earlier stages ran again, and must refuse to build on an earlier stage that ran with
other settings than the config has now.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cropsm.cli import app
from cropsm.config import load_config
from cropsm.errors import InputError, UsageError
from cropsm.pipeline import run_pipeline
from cropsm.train.artifacts import load_ensemble, load_models, load_residual_sd

runner = CliRunner()


@pytest.fixture
def models_copy(tiny_run, tmp_path) -> Path:
    run_dir, _ = tiny_run
    return Path(shutil.copytree(run_dir / "models", tmp_path / "models"))


def _rewrite_npz(path: Path, **changes) -> None:
    with np.load(path) as data:
        arrays = {k: data[k].copy() for k in data.files}
    for name, change in changes.items():
        arrays[name] = change(arrays[name])
    np.savez(path, **arrays)


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_the_copied_networks_load(models_copy):
    members = load_ensemble(models_copy)
    assert len(members) == 2 and len(members[0]) == 5
    assert all(r > 0 for r in load_residual_sd(models_copy).values())


@pytest.mark.parametrize(
    ("damage", "file", "fragments"),
    [
        (lambda m: _rewrite_npz(m / "layer1" / "weights.npz",
                                w0=lambda w: np.where(np.arange(w.size).reshape(w.shape) == 0,
                                                      np.nan, w)),
         "layer1/weights.npz", ("arrays w0, b0", "expected finite values")),
        (lambda m: (m / "layer2" / "weights.npz").write_bytes(
            (m / "layer2" / "weights.npz").read_bytes()[:300]),
         "layer2/weights.npz", ("cannot be read",)),
        (lambda m: _rewrite_npz(m / "layer4" / "weights.npz", w1=lambda w: w[:-1]),
         "layer4/weights.npz", ("arrays w1, b1", "to follow the previous map")),
        (lambda m: (m / "layer2" / "model.json").write_text(
            (m / "layer2" / "model.json").read_text()[:200]),
         "layer2/model.json", ("cannot be read",)),
        (lambda m: _edit_json(m / "layer3" / "model.json",
                              lambda d: d["scaler"]["std"].__setitem__(2, 0.0)),
         "layer3/model.json", ("field scaler.std", "std > 0")),
        (lambda m: _edit_json(m / "layer1" / "model.json",
                              lambda d: d["scaler"]["mean"].pop()),
         "layer1/model.json", ("field scaler.mean", "values for")),
        (lambda m: shutil.rmtree(m / "layer4"), "models/layer4", ("missing model.json",)),
        (lambda m: _edit_json(m / "ensemble.json", lambda d: d.__setitem__("members", 7)),
         "ensemble.json", ("fields members, member_folders", "members 7 but 2")),
        (lambda m: _edit_json(m / "ensemble.json", lambda d: d["layers"]["layer2"].__setitem__(
            "residual_sd_m3_m-3", -0.03)),
         "ensemble.json", ("layers.layer2.residual_sd_m3_m-3", "finite standard deviation")),
        (lambda m: _edit_json(m / "ensemble.json", lambda d: d["layers"]["layer4"].__setitem__(
            "observation_error_sd_m3_m-3", float("nan"))),
         "ensemble.json", ("layers.layer4.observation_error_sd_m3_m-3", "finite standard")),
        (lambda m: (m / "ensemble.json").write_text('{"members": 2'),
         "ensemble.json", ("cannot be read",)),
    ],
    ids=["nan-weight", "truncated-npz", "wrong-shape", "truncated-json", "zero-scale",
         "short-scaler", "missing-layer", "members-count", "negative-residual",
         "nan-observation-error", "truncated-ensemble"],
)  # fmt: skip
def test_damaged_networks_name_the_file_and_field(models_copy, damage, file, fragments):
    damage(models_copy)
    with pytest.raises(InputError) as info:
        load_ensemble(models_copy)
        load_residual_sd(models_copy)
    message = str(info.value)
    assert file in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def _run_with_own_models(tiny_run, tmp_path) -> Path:
    """A run directory sharing the tiny run's inputs, with a copy of its networks."""
    run_dir, _ = tiny_run
    mine = tmp_path / "run"
    mine.mkdir()
    (mine / "inputs").symlink_to(run_dir / "inputs", target_is_directory=True)
    shutil.copy(run_dir / "config.resolved.toml", mine)
    shutil.copytree(run_dir / "models", mine / "models")
    return mine


def test_predict_refuses_damaged_networks_and_keeps_nothing(tiny_run, tmp_path):
    mine = _run_with_own_models(tiny_run, tmp_path)
    _rewrite_npz(mine / "models" / "layer1" / "weights.npz", b0=lambda b: b * np.inf)
    result = runner.invoke(app, ["predict", str(mine), "--workers", "0"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "layer1/weights.npz: arrays w0, b0" in errors[0]
    assert not (mine / "product.zarr").exists()
    assert not (mine / "product.zarr.partial").exists()


def test_predict_names_the_network_whose_input_it_cannot_compute(tiny_run, tmp_path):
    from cropsm.features.climate import FEATURE_ATTRS

    mine = _run_with_own_models(tiny_run, tmp_path)

    def rename(data):
        names = data["feature_names"]
        climate = next(i for i, n in enumerate(names) if n in FEATURE_ATTRS)
        names[climate] = "rainfall_bogus"

    _edit_json(mine / "models" / "layer2" / "model.json", rename)
    result = runner.invoke(app, ["predict", str(mine), "--workers", "0"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "models/layer2/model.json: the networks take input(s) rainfall_bogus" in errors[0]
    assert not (mine / "product.zarr").exists()
    assert not (mine / "product.zarr.partial").exists()


def test_predict_with_fewer_scenarios_does_not_replace_the_product(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    result = runner.invoke(app, ["predict", str(run_dir), "--scenarios", "reference"])
    assert result.exit_code == 2, result.output
    assert "leaves out ww_fl, ww_mz" in result.stderr and "--out OTHER.zarr" in result.stderr
    assert load_models(run_dir / "models")  # nothing touched


@pytest.fixture
def staged_run(tmp_path, tiny_twin) -> tuple[Path, Path]:
    """A run with the inputs and features stages done (the tiny twin copied in)."""
    root, _ = tiny_twin
    config = tmp_path / "tiny.toml"
    config.write_text('[run]\nname = "stale"\n[inputs.twin]\npreset = "tiny"\n')
    run_dir = tmp_path / "run"
    shutil.copytree(root, run_dir / "inputs" / "twin-tiny-seed0")
    run_pipeline(load_config(config), run_dir, stages=["inputs", "features"])
    return run_dir, config


def _status(config: Path, run_dir: Path, stages: list[str], force: bool = False) -> list[str]:
    summary = run_pipeline(load_config(config), run_dir, stages=stages, force=force)
    return [summary[s]["status"] for s in stages]


def test_a_stage_whose_outputs_or_marker_are_damaged_runs_again(staged_run):
    run_dir, config = staged_run
    assert _status(config, run_dir, ["features"]) == ["skipped"]
    (run_dir / "features" / "station_table.parquet").unlink()
    assert _status(config, run_dir, ["features"]) == ["ran"]
    assert (run_dir / "features" / "station_table.parquet").is_file()
    (run_dir / "stages" / "features.json").write_text('{"fingerprint": ')
    assert _status(config, run_dir, ["features"]) == ["ran"]
    assert _status(config, run_dir, ["features"]) == ["skipped"]


def test_a_stage_runs_again_when_an_earlier_one_did(staged_run):
    run_dir, config = staged_run
    assert _status(config, run_dir, ["inputs"], force=True) == ["ran"]
    assert _status(config, run_dir, ["features"]) == ["ran"]  # built on the old inputs
    assert _status(config, run_dir, ["inputs", "features"]) == ["skipped", "skipped"]


def test_no_stage_builds_on_an_earlier_one_run_with_other_settings(staged_run, tmp_path):
    run_dir, config = staged_run
    changed = tmp_path / "changed.toml"
    changed.write_text(config.read_text() + '[features]\ngroups_off = ["wind"]\n')
    with pytest.raises(UsageError, match="stage features ran with other settings"):
        run_pipeline(load_config(changed), run_dir, stages=["train"])
    assert not (run_dir / "models").exists()


def test_a_damaged_station_table_is_named(staged_run):
    from cropsm.features.station_table import read_station_table

    run_dir, _ = staged_run
    path = run_dir / "features" / "station_table.parquet"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(InputError, match="station_table.parquet: cannot be read") as info:
        read_station_table(path)
    assert "--stages features --force" in str(info.value)


def test_a_copied_run_reports_its_own_paths(staged_run, tmp_path):
    """Stage markers record the run directory; a skipped stage's paths follow the copy."""
    from cropsm.pipeline import relocated

    run_dir, config = staged_run
    copy = Path(shutil.copytree(run_dir, tmp_path / "copy"))
    summary = run_pipeline(load_config(config), copy, stages=["inputs", "features"])
    assert [summary[s]["status"] for s in ("inputs", "features")] == ["skipped", "skipped"]
    assert summary["inputs"]["twin_dir"] == str(copy / "inputs" / "twin-tiny-seed0")
    assert relocated({"a": ["/r/run/x", "/r/runs/y", "/r/run"]}, "/r/run", "/c") == {
        "a": ["/c/x", "/r/runs/y", "/c"]
    }


def test_a_stage_status_is_not_overwritten_by_its_result(staged_run, monkeypatch):
    """A stage whose result has a ``status`` of its own (the product's created/resumed) is
    still reported as ran/skipped in the run summary and the report's run-time table."""
    import dataclasses

    from cropsm.stage_registry import STAGES

    run_dir, config = staged_run
    features = STAGES["features"]

    def with_status(ctx):
        return {**features.func(ctx), "status": "created"}

    # in this process: a function made here cannot travel to a stage's own process
    replaced = dataclasses.replace(features, func=with_status, own_process=False)
    monkeypatch.setitem(STAGES, "features", replaced)
    assert _status(config, run_dir, ["features"], force=True) == ["ran"]
    assert _status(config, run_dir, ["features"]) == ["skipped"]
    summary = run_pipeline(load_config(config), run_dir, stages=["features"])
    assert summary["features"]["status"] == "skipped"
