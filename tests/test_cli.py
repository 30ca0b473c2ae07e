"""The command line: help lists the commands; twin and run work; errors are one line."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from cropsm.cli import app

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("twin", "run"):
        assert command in result.output


def test_run_tiny_writes_provenance_and_reuses_twin(tmp_path, tiny_twin):
    root, _ = tiny_twin
    config = tmp_path / "tiny.toml"
    config.write_text('[run]\nname = "t"\nseed = 3\n[inputs.twin]\npreset = "tiny"\nseed = 0\n')
    run_dir = tmp_path / "run"
    # seed the run directory with the session's twin so the test does not regenerate it
    shutil.copytree(root, run_dir / "inputs" / "twin-tiny-seed0")
    result = runner.invoke(app, ["run", str(config), "--out", str(run_dir), "--stages", "inputs"])
    assert result.exit_code == 0, result.output
    prov = json.loads((run_dir / "provenance.json").read_text())
    assert prov["seeds"] == {"run": 3, "twin": 0}
    assert "git_commit" in prov and prov["versions"]["cropsm"]
    assert (run_dir / "config.resolved.toml").exists()
    marker = json.loads((run_dir / "stages" / "inputs.json").read_text())
    assert marker["result"]["stations"] == 30
    again = runner.invoke(app, ["run", str(config), "--out", str(run_dir), "--stages", "inputs"])
    assert again.exit_code == 0
    assert "up to date" in again.output


def test_bad_config_is_one_line_error(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[inputs.twin]\npreset = "tiny"\nbogus = 1\n')
    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "inputs.twin.bogus: unknown key" in result.output
    assert "Traceback" not in result.output


def test_user_files_bad_input_reported(tmp_path, tiny_twin):
    root, _ = tiny_twin
    obs = (root / "stations" / "observations.csv").read_text().splitlines()
    obs[5] = obs[5].replace(obs[5].split(",")[1], "2012-02-30")
    bad_obs = tmp_path / "obs.csv"
    bad_obs.write_text("\n".join(obs) + "\n")
    config = tmp_path / "files.toml"
    config.write_text(
        "[inputs.files]\n"
        f'stations = "{root / "stations" / "stations.csv"}"\n'
        f'observations = "{bad_obs}"\n'
        f'climate = ["{root / "climate" / "*.nc"}"]\n'
        f'static = "{root / "static" / "static.nc"}"\n'
    )
    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "obs.csv" in result.output
    assert "row 6" in result.output
    assert "2012-02-30" in result.output
