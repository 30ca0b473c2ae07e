"""``cropsm analyze RUN_DIR``: the analyses of a run (Figs. 2-3, 7-10), numbers and figures."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def run_analyze(run_dir: Path, console: Console | None = None) -> dict:
    """Run every analysis of an existing run directory; return the stage's headline numbers.

    Calls :func:`cropsm.analyze.stage.run_analyses` directly, so the run's ``provenance.json``
    and ``run_summary.json`` stay those of the run that made it.
    """
    from cropsm.analyze.stage import run_analyses
    from cropsm.io.zarr_damage import naming_damaged_stores
    from cropsm.run_layout import load_run_config
    from cropsm.stage_registry import RunContext

    config = load_run_config(run_dir)
    ctx = RunContext(config=config, run_dir=Path(run_dir), console=console or Console(stderr=True))
    with naming_damaged_stores(run_dir):  # a torn chunk of the product or the truth: named
        return run_analyses(ctx)


def register(app: typer.Typer, friendly_errors, stdout: Console) -> None:
    """Add ``cropsm analyze RUN_DIR`` to ``app``."""

    @app.command("analyze", epilog="Example: cropsm analyze runs/tiny")
    @friendly_errors
    def analyze_command(
        run_dir: Annotated[Path, typer.Argument(help="A run directory (after predict).")],
    ) -> None:
        """Trends, product maps, satellite comparison, cropping-pattern effects (Figs. 2-3, 7-10).

        Numbers go to RUN_DIR/analysis (CSV/netCDF) and figures to RUN_DIR/figures (PNG); on the
        virtual China also the checks against the truth.
        """
        from cropsm.analyze.stage import read_analysis_summary

        run_analyze(run_dir, console=Console(stderr=True))
        summary = read_analysis_summary(run_dir) or {"ran": {}, "skipped": {}}
        table = Table(title=f"analyses of {run_dir}")
        table.add_column("analysis")
        table.add_column("status")
        table.add_column("outputs / reason")
        for name, record in summary["ran"].items():
            files = record.get("files", []) if isinstance(record, dict) else []
            table.add_row(name, "ran", f"{len(files)} files")
        for name, reason in summary["skipped"].items():
            table.add_row(name, "skipped", str(reason))
        stdout.print(table)
        stdout.print(
            f"numbers in {Path(run_dir) / 'analysis'}, figures in {Path(run_dir) / 'figures'}"
        )
