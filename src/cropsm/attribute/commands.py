"""``cropsm attribute RUN_DIR``: the control experiments of a trained run (Figs. 5 and 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def run_attribute_stage(run_dir: Path, force: bool = False, console: Console | None = None):
    """Run the ``attribute`` stage on an existing run directory (skipped when current).

    Importing :mod:`cropsm.pipeline` registers every stage in pipeline order before it runs.
    """
    from cropsm.pipeline import run_pipeline  # importing it registers every stage
    from cropsm.run_layout import load_run_config

    config = load_run_config(run_dir)
    return run_pipeline(config, Path(run_dir), stages=["attribute"], force=force, console=console)


def r2_loss_rich_table(run_dir: Path, layer: int = 1) -> Table | None:
    """The ranked R2 losses of one layer from ``attribution/station_r2_loss.csv``."""
    import pandas as pd

    path = Path(run_dir) / "attribution" / "station_r2_loss.csv"
    if not path.is_file():
        return None
    rows = pd.read_csv(path)
    rows = rows[rows["layer"] == layer].sort_values("rank")
    table = Table(title=f"R2 loss per omitted feature group, layer {layer} ({path})")
    for col in ("rank", "group", "R2 loss train", "R2 loss test", "paper (Fig. 5)"):
        table.add_column(col, justify="right" if col != "group" else "left")
    for _, r in rows.iterrows():
        paper = "" if pd.isna(r.get("paper_note")) else str(r["paper_note"])
        table.add_row(
            str(int(r["rank"])),
            str(r["group"]),
            f"{r['r2_loss_train']:+.3f}",
            f"{r['r2_loss_test']:+.3f}",
            paper,
        )
    return table


def register(app: typer.Typer, friendly_errors, stdout: Console) -> None:
    """Add ``cropsm attribute RUN_DIR`` to ``app``."""

    @app.command("attribute", epilog="Example: cropsm attribute runs/tiny")
    @friendly_errors
    def attribute_command(
        run_dir: Annotated[Path, typer.Argument(help="A run directory with trained networks.")],
        force: Annotated[bool, typer.Option(help="Re-run even when current.")] = False,
    ) -> None:
        """Control experiments: R2 lost without each feature group; national maps (Figs. 5-6)."""
        summary = run_attribute_stage(run_dir, force=force, console=Console(stderr=True))
        record = summary.get("attribute", {})
        table = r2_loss_rich_table(run_dir, layer=1)
        if table is not None:
            stdout.print(table)
        if "national" in record:
            stdout.print(f"national maps: {record['national']}")
        stdout.print(
            f"attribution {record.get('status', 'ran')}: tables in {run_dir / 'attribution'}, "
            f"figures in {run_dir / 'figures'}"
        )
