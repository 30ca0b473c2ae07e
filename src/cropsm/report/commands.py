"""``cropsm report RUN_DIR``: (re)write the run's report page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def register(app: typer.Typer, friendly_errors, stdout: Console) -> None:
    """Add ``cropsm report RUN_DIR`` to ``app``."""

    @app.command("report", epilog="Example: cropsm report runs/tiny")
    @friendly_errors
    def report_command(
        run_dir: Annotated[Path, typer.Argument(help="A run directory.")],
    ) -> None:
        """Write RUN_DIR/report/index.html: one self-contained page with every figure and table.

        Always rebuilt from what the run directory holds now; sections whose inputs are missing
        say so. The run's provenance.json and run_summary.json are left as they are.
        """
        from cropsm.errors import UsageError
        from cropsm.report.html import report_summary, write_report
        from cropsm.run_layout import RunLayout

        if run_dir.is_dir() and not RunLayout(run_dir).config.is_file():
            raise UsageError(
                f"{run_dir}: not a cropsm run directory (no {RunLayout(run_dir).config.name}; "
                "expected the --out folder of `cropsm run`)"
            )
        path = write_report(run_dir)
        info = report_summary(path)
        stdout.print(f"{info['figures']} figures, {info['size_mb']} MB")
        broken = path.read_text(encoding="utf-8").count('<p class="error">')
        if broken:
            Console(stderr=True).print(
                f"warning: {broken} part(s) of the report could not be built from damaged run "
                "files; the page names them",
                highlight=False,
                markup=False,
            )
        stdout.print(f"report: {path}")
