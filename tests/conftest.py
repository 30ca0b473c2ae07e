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
