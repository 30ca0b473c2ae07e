"""Stages in a process of their own (``[run] isolate_stages``): results, errors and deaths."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
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


def sleeps(ctx: RunContext) -> dict:
    (ctx.run_dir / "child.pid").write_text(str(os.getpid()), encoding="utf-8")
    time.sleep(120)
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


def _is_gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for its new parent to reap it counts)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _parent_running_a_sleeping_stage(tmp_path: Path, terminate_handler: bool):
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from rich.console import Console
        from cropsm.cli import exit_on_terminate
        from cropsm.config import parse_config
        from cropsm.stage_process import run_stage_in_own_process
        from cropsm.stage_registry import RunContext, Stage
        import test_stage_process as here

        if {terminate_handler!r}:
            exit_on_terminate()
        run = Path({str(tmp_path)!r})
        config = parse_config({{"inputs": {{"twin": {{"preset": "tiny"}}}}}}, run / "run.toml")
        ctx = RunContext(config=config, run_dir=run, console=Console(quiet=True), results={{}})
        run_stage_in_own_process(Stage("sleeps", "", here.sleeps, (), (), own_process=True), ctx)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    pid_file = tmp_path / "child.pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and parent.poll() is None, "the stage did not start"
        time.sleep(0.1)
    return parent, int(pid_file.read_text())


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _is_gone(pid):
            return True
        time.sleep(0.1)
    return _is_gone(pid)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_a_child_ends_itself_when_its_parent_is_killed(tmp_path):
    parent, child = _parent_running_a_sleeping_stage(tmp_path, terminate_handler=False)
    assert not _is_gone(child)
    parent.kill()  # SIGKILL: the parent cannot clean up; the child notices within a second
    parent.wait()
    assert _wait_gone(child, 10.0), "the stage's process outlived its killed parent"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc (Linux)")
def test_sigterm_ends_the_command_and_its_stage_process(tmp_path):
    parent, child = _parent_running_a_sleeping_stage(tmp_path, terminate_handler=True)
    parent.terminate()  # SIGTERM, e.g. a batch scheduler cancelling the job
    assert parent.wait(timeout=30) == 128 + signal.SIGTERM
    assert _is_gone(child) or _wait_gone(child, 0.5)  # terminated by the parent, not later
