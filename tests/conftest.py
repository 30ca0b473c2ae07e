"""Shared fixtures: a tiny virtual China generated once per test worker."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_twin(tmp_path_factory):
    """Path of a tiny virtual China (seed 0) and its summary."""
    from cropsm.twin.generate import generate_twin

    root = tmp_path_factory.mktemp("twin") / "tiny"
    summary = generate_twin(root, "tiny", seed=0)
    return root, summary


TINY_RUN_CONFIG = """
[run]
name = "tiny test run"
seed = 0

[inputs.twin]
preset = "tiny"
seed = 0

[train]
max_epochs = 12
patience = 4
members = 2

[train.grid]
batch_sizes = [128]
learning_rates = [5e-3]
hidden_layers = [1, 2]
units = [16]
"""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_twin):
    """A run directory with the tiny virtual China's inputs, features and trained networks."""
    import shutil

    from cropsm.config import load_config
    from cropsm.pipeline import run_pipeline

    root, _ = tiny_twin
    base = tmp_path_factory.mktemp("run")
    config_path = base / "tiny.toml"
    config_path.write_text(TINY_RUN_CONFIG)
    run_dir = base / "run"
    shutil.copytree(root, run_dir / "inputs" / "twin-tiny-seed0")
    run_pipeline(load_config(config_path), run_dir, stages=["inputs", "features", "train"])
    return run_dir, config_path


@pytest.fixture(scope="session")
def link_tiny_run(tiny_run):
    """``f(dest)``: a private run directory at ``dest`` sharing the session run's inputs,
    networks and station table (links) and its resolved config (a copy)."""
    import shutil

    source, _ = tiny_run

    def link(dest):
        dest.mkdir(parents=True)
        for name in ("inputs", "models", "features"):
            (dest / name).symlink_to(source / name, target_is_directory=True)
        shutil.copy(source / "config.resolved.toml", dest)
        return dest

    return link


@pytest.fixture(scope="session")
def predict_app():
    """A Typer app with the ``predict`` and ``export-netcdf`` commands, as the CLI registers
    them (rich output 120 columns wide)."""
    import typer
    from rich.console import Console

    from cropsm.predict.commands import register

    app = typer.Typer()
    register(app, lambda f: f, Console(width=120))
    return app
