"""Commands ``cropsm predict`` and ``cropsm export-netcdf`` (registered by ``cropsm.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cropsm import catalog


def register(app: typer.Typer, friendly_errors, stdout: Console) -> None:
    """Add the product commands to ``app``; ``friendly_errors`` wraps each command function."""

    @app.command(
        "predict",
        epilog="Example: cropsm predict runs/tiny --workers 2 --scenarios reference,ww_fl",
    )
    @friendly_errors
    def predict_command(
        run_dir: Annotated[Path, typer.Argument(help="A run directory with trained networks.")],
        out: Annotated[
            Path | None,
            typer.Option(
                "--out",
                help="Product store to write (default RUN_DIR/product.zarr; with --models "
                "RUN_DIR/products/<name>.zarr).",
            ),
        ] = None,
        models: Annotated[
            Path | None,
            typer.Option(
                "--models",
                help="Another model set (a folder with layer1/ ... layer5/), e.g. networks "
                "trained with feature groups switched off (control experiments).",
            ),
        ] = None,
        scheduler: Annotated[
            str | None,
            typer.Option("--scheduler", help="Address of an existing dask scheduler."),
        ] = None,
        workers: Annotated[
            int | None,
            typer.Option(
                "--workers",
                min=0,
                help="Local worker processes (default: one per core; 0: "
                "no cluster, run in this process).",
            ),
        ] = None,
        scenarios: Annotated[
            str | None,
            typer.Option(
                "--scenarios",
                metavar="SCENARIO,...",
                help="Comma-separated scenarios to store, from: "
                + ", ".join([*catalog.pattern_ids(), "reference"])
                + " (default: the run's setting, all seven).",
            ),
        ] = None,
    ) -> None:
        """Predict the daily five-layer soil moisture of every cropland cell (zarr product).

        Six cropping patterns and their crop-area-weighted reference, with the time and
        pattern quality flags. An interrupted run resumes: only missing blocks are computed.
        """
        from pydantic import ValidationError

        from cropsm.errors import UsageError
        from cropsm.predict.config import PredictConfig, parse_scenarios
        from cropsm.predict.stage import predict_run, run_predict_config
        from cropsm.run_layout import load_run_config

        run_config = load_run_config(run_dir)
        base = run_predict_config(run_config)
        updates: dict = {}
        if scheduler is not None:
            updates["scheduler"] = scheduler
        if workers is not None:
            updates["workers"] = workers
        try:
            if scenarios is not None:
                updates["scenarios"] = parse_scenarios(scenarios)
            config = PredictConfig(**{**base.model_dump(), **updates})
        except ValidationError as err:
            problems = "; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())
            raise UsageError(f"predict options: {problems}") from None
        left_out = [s for s in base.scenarios if s not in config.scenarios]
        if out is None and models is None and left_out:
            raise UsageError(
                f"--scenarios {','.join(config.scenarios)} leaves out {', '.join(left_out)} of "
                f"the run's product; that would replace {run_dir / 'product.zarr'} (which the "
                "analysis reads) with a part of it: give --out OTHER.zarr for a partial product"
            )
        summary = predict_run(
            run_dir,
            out=out,
            models_dir=models,
            config=config,
            console=Console(stderr=True),
            run_config=run_config,
        )
        table = Table(title=f"product {summary['path']}")
        table.add_column("quantity")
        table.add_column("value", justify="right")
        table.add_row("status", summary["status"])
        table.add_row("period", " to ".join(summary["period"]))
        table.add_row("cropland cells", str(summary["cells"]))
        table.add_row("scenarios", ", ".join(summary["scenarios"]))
        table.add_row(
            "blocks computed / skipped",
            f"{summary['blocks_computed']} / {summary['blocks_skipped']}",
        )
        if "cell_days_per_s" in summary:
            table.add_row("cell-days per second", f"{summary['cell_days_per_s']:,.0f}")
        for k in range(1, 6):
            key = f"layer{k}_r2_truth"
            if summary.get(key) is not None:
                table.add_row(f"layer {k} R2 of the reference vs truth", f"{summary[key]:.3f}")
        table.add_row("seconds", f"{summary['seconds']:.1f}")
        stdout.print(table)

    @app.command(
        "export-netcdf",
        epilog="Example: cropsm export-netcdf runs/tiny/product.zarr runs/tiny/product.nc",
    )
    @friendly_errors
    def export_netcdf_command(
        product: Annotated[Path, typer.Argument(help="A product store (product.zarr).")],
        out: Annotated[Path, typer.Argument(help="The CF netCDF-4 file to write.")],
    ) -> None:
        """Write a CF netCDF copy of a product store (same variables, packing, attributes)."""
        from cropsm.io.atomic import check_writable
        from cropsm.predict.export import export_netcdf

        check_writable(out, "output file", beside=True)
        path = export_netcdf(product, out)
        stdout.print(f"netCDF written to {path}")
