"""Stages in a process of their own (``[run] isolate_stages``): results, errors and deaths."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from rich.console import Console

from cropsm.config import parse_config
from cropsm.errors import InputError
from cropsm.stage_process import StageProcessError, run_stage_in_own_process
from cropsm.stage_registry import RunContext, Stage


def _context(tmp_path: Path, seed: int = 7) -> RunContext:
    config = parse_config(
        {"run": {"seed": seed}, "inputs": {"twin": {"preset": "tiny"}}}, tmp_path / "run.toml"
    )
    return RunContext(
        config=config,
        run_dir=tmp_path,
        console=Console(stderr=True, quiet=True),
        results={"features": {"rows": 12}},
    )


# Stage functions live at module level: the child process imports them by name.
def reports_its_process(ctx: RunContext) -> dict:
    (ctx.run_dir / "written_by_child.txt").write_text(str(os.getpid()), encoding="utf-8")
    return {"pid": os.getpid(), "seed": ctx.config.run.seed, "earlier": ctx.results}


def fails_on_bad_input(ctx: RunContext) -> dict:
    raise InputError(ctx.run_dir / "stations.csv", "row 3", "lat 95.0 is outside -90...90")


def has_a_bug(ctx: RunContext) -> dict:
    raise RuntimeError("an unexpected state")


def is_killed(ctx: RunContext) -> dict:
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


def _stage(func) -> Stage:
    return Stage(func.__name__, "a test stage", func, (), (), own_process=True)


def test_stage_runs_in_a_child_and_returns_its_result(tmp_path):
    result = run_stage_in_own_process(_stage(reports_its_process), _context(tmp_path, seed=7))
    assert result["pid"] != os.getpid()
    assert result["seed"] == 7
    assert result["earlier"] == {"features": {"rows": 12}}
    assert (tmp_path / "written_by_child.txt").read_text(encoding="utf-8") == str(result["pid"])


def test_an_expected_error_keeps_its_type_and_one_line_message(tmp_path):
    with pytest.raises(InputError) as caught:
        run_stage_in_own_process(_stage(fails_on_bad_input), _context(tmp_path))
    assert str(caught.value) == (
        f"{tmp_path / 'stations.csv'}: row 3: lat 95.0 is outside -90...90"
    )


def test_a_bug_comes_back_with_its_traceback(tmp_path):
    with pytest.raises(StageProcessError) as caught:
        run_stage_in_own_process(_stage(has_a_bug), _context(tmp_path))
    text = str(caught.value)
    assert text.startswith("stage has_a_bug failed in its own process")
    assert "RuntimeError: an unexpected state" in text and "Traceback" in text


def test_a_killed_child_is_reported_with_the_signal(tmp_path):
    with pytest.raises(StageProcessError) as caught:
        run_stage_in_own_process(_stage(is_killed), _context(tmp_path))
    text = str(caught.value)
    assert "stage is_killed: its process ended without a result (killed by signal 9)" in text
    assert "lack of memory" in text and "isolate_stages = false" in text
