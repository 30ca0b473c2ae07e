"""The command line as a user meets it: --help with choices and examples, compact logs, and
the report path as the last line of ``cropsm run``."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console
from typer.testing import CliRunner

from cropsm import catalog
from cropsm.cli import STAGE_NAMES, app
from cropsm.pipeline import PIPELINE_ORDER
from cropsm.progress import progress_callback

runner = CliRunner()


def help_text(*args: str) -> str:
    """A command's --help as one line of words (no box drawing, no wrapping)."""
    result = runner.invoke(app, [*args, "--help"], terminal_width=120)
    assert result.exit_code == 0, result.output
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())


COMMANDS = (
    "twin", "run", "train", "evaluate", "predict", "export-netcdf", "attribute", "analyze",
    "report",
)  # fmt: skip


def test_top_level_help_has_an_example():
    text = help_text()
    assert "Example: cropsm twin /tmp/vc --preset tiny; cropsm run examples/tiny.toml" in text
    assert "<bool>" not in text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_an_example_and_no_bare_type_tags(command):
    text = help_text(command)
    assert f"Example: cropsm {command} " in text
    assert "<bool>" not in text and "<str>" not in text


def test_help_lists_the_choices():
    run = help_text("run")
    assert STAGE_NAMES == PIPELINE_ORDER
    assert "from: " + ", ".join(PIPELINE_ORDER) in run
    twin = help_text("twin")
    assert "tiny|demo|paper" in twin
    predict = help_text("predict")
    assert ", ".join([*catalog.pattern_ids(), "reference"]) in predict
    bad = runner.invoke(app, ["twin", "/tmp/x", "--preset", "huge"])
    assert bad.exit_code == 2 and "huge" in bad.output


def test_progress_in_a_log_is_one_line_per_step():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=40, soft_wrap=True)
    with progress_callback(console) as report:
        for done in range(51):
            report("control experiments [without soil]", done, 50)
        report("predict blocks", 0, 2)
        report("predict blocks", 2, 2)
        report("predict blocks", 2, 2)  # a repeated final report prints nothing more
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("  control experiments [without soil]: 50 in ")  # no markup
    assert lines[0].endswith(" s") and lines[1].startswith("  predict blocks: 2 in ")


def test_run_ends_with_the_report_path(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text('[run]\nname = "a run whose name is long enough to be cut in a table"\n'
                      '[inputs.twin]\npreset = "tiny"\n')  # fmt: skip
    run_dir = tmp_path / "a-long-folder-name-for-the-run-directory" / "run"
    result = runner.invoke(
        app, ["run", str(config), "--out", str(run_dir), "--stages", "report"], terminal_width=60
    )
    assert result.exit_code == 0, result.output
    last = result.output.rstrip("\n").splitlines()[-1]
    assert last == f"report: {run_dir / 'report' / 'index.html'}"
    # a copied run (its report stage current there) names its own page, not the original's
    import shutil

    moved = shutil.copytree(run_dir, tmp_path / "moved")
    result = runner.invoke(app, ["run", str(config), "--out", str(moved), "--stages", "report"])
    assert result.exit_code == 0, result.output
    assert "report: up to date, skipped" in result.stderr
    page = moved / "report" / "index.html"
    assert result.output.rstrip("\n").splitlines()[-1] == f"report: {page}"
