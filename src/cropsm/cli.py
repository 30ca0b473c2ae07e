"""The ``cropsm`` command line: a thin layer over importable functions."""

from __future__ import annotations

import functools
import signal
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from cropsm import __version__
from cropsm.stage_registry import PIPELINE_ORDER

app = typer.Typer(
    name="cropsm",
    help=(
        "Daily five-layer (0-50 cm) cropland soil moisture from sparse station observations "
        "with neural networks, under six cropping patterns."
    ),
    epilog=(
        "Example: cropsm twin /tmp/vc --preset tiny; cropsm run examples/tiny.toml --out "
        "runs/tiny (then open runs/tiny/report/index.html). COMMAND --help shows each "
        "command's options and an example."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=not sys.stderr.isatty())
"""Progress and errors. In a log or CI (not a terminal) lines are never hard-wrapped."""
stdout = Console(soft_wrap=not sys.stdout.isatty())

STAGE_NAMES = PIPELINE_ORDER
"""The stages of ``cropsm run`` in order."""


def _hide_uninformative_type_tags() -> None:
    """``--help`` shows a value's type where it tells something (a path, a number, the
    choices) but not ``<bool>`` beside a flag or ``<str>`` beside free text."""
    from typer.core import TyperArgument, TyperOption

    for cls in (TyperOption, TyperArgument):
        original = getattr(cls, "display_type_rich", None)
        if original is None:  # another typer: leave its help as it is
            continue

        def display_type_rich(self, ctx, _original=original):
            label = _original(self, ctx)
            return None if label in ("<bool>", "<str>") else label

        cls.display_type_rich = display_type_rich


_hide_uninformative_type_tags()


def error_line(err: BaseException) -> str:
    """The one line ``error: ...`` of an expected failure (newlines folded, never wrapped)."""
    from cropsm.errors import OutputError

    if isinstance(err, OSError) and not isinstance(err, OutputError):
        where = err.filename
        if err.errno is not None and err.strerror and where is not None:
            from cropsm.errors import output_hint

            if isinstance(err, FileNotFoundError):
                message = f"{where}: {err.strerror}"
            else:
                message = f"{where}: {err.strerror}; {output_hint(err.errno)}"
        else:
            message = str(err)
    else:
        message = str(err)
    return "error: " + " ".join(message.split())


def report_error(err: BaseException) -> None:
    """Write :func:`error_line` to stderr as plain text: no markup, no wrapping, no colour."""
    sys.stderr.write(error_line(err) + "\n")
    sys.stderr.flush()


def _friendly_errors(func):
    """Report expected failures as one line on stderr and exit with status 2 (no traceback).

    Expected failures are the project's own errors (:class:`cropsm.errors.CropsmError`: bad
    input, config, usage, unwritable output) and the operating system's (``OSError``: a missing
    file, no permission, a full disk), which name their path. Anything else is a bug and keeps
    its traceback.
    """

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from cropsm.errors import CropsmError

        try:
            return func(*args, **kwargs)
        except (CropsmError, OSError) as err:
            report_error(err)
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            sys.stderr.write(
                "interrupted; what was finished is kept: run the same command again to go on\n"
            )
            raise typer.Exit(code=130) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        stdout.print(f"cropsm {__version__}")
        raise typer.Exit()


def exit_on_terminate() -> None:
    """Turn SIGTERM (``kill``, a batch scheduler's cancel) into ``SystemExit(143)``, so that
    the command ends as after Ctrl-C: a stage's own process is terminated, dask clusters are
    closed and atomic writers drop what they had not finished, instead of the process vanishing
    and leaving its children behind."""

    def terminate(signum, frame) -> None:  # noqa: ARG001 - the signal handler's signature
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """cropsm command line."""
    exit_on_terminate()


def print_twin_summary(summary: dict, root: Path) -> None:
    table = Table(title=f"virtual China ({summary['preset']}, seed {summary['seed']})")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    g = summary["grid"]
    table.add_row("grid", f"{g['n_lat']} x {g['n_lon']} cells at {g['resolution_deg']} deg")
    table.add_row("cells in China", str(summary["china_cells"]))
    table.add_row("cropland cells (fraction >= 0.1)", str(summary["cropland_cells"]))
    table.add_row("stations", f"{summary['stations']} ({summary['gravimetric_stations']} gravim.)")
    table.add_row("observations (station-date-layer)", str(summary["observations"]))
    table.add_row("truth period", " to ".join(summary["period"]["truth"]))
    stdout.print(table)
    precip = Table(title="annual precipitation by region (mm, mean over the region's cells)")
    for r in summary["annual_precipitation_mm"]:
        precip.add_column(r, justify="right")
    precip.add_row(*[f"{v:.0f}" for v in summary["annual_precipitation_mm"].values()])
    stdout.print(precip)
    sm = Table(title="mean true reference soil moisture by layer (m3 m-3, cropland cells)")
    for k in summary["mean_reference_sm_by_layer"]:
        sm.add_column(k, justify="right")
    sm.add_row(*[f"{v:.3f}" for v in summary["mean_reference_sm_by_layer"].values()])
    stdout.print(sm)
    stdout.print(f"files written under {root}:")
    for f in summary["files"]:
        stdout.print(f"  {f}")
    stdout.print(f"generated in {summary['seconds']} s")


@app.command("twin", epilog="Example: cropsm twin /tmp/vc --preset tiny --seed 0")
@_friendly_errors
def twin_command(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write the input set and truth to.")],
    preset: Annotated[
        Literal["tiny", "demo", "paper"],
        typer.Option(help="Size: tiny (tests), demo (0.5 deg, 10 yr) or paper (0.25 deg)."),
    ] = "tiny",
    seed: Annotated[int, typer.Option(min=0, help="Seed of every random draw (0 or more).")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing non-empty folder.")] = False,
) -> None:
    """Generate the virtual China: a complete input set in the real formats, plus the truth."""
    from cropsm.io.atomic import check_writable
    from cropsm.progress import progress_callback
    from cropsm.twin.generate import generate_twin

    check_writable(out_dir, "output folder", beside=True)  # built beside, then renamed
    with progress_callback(console) as report:
        summary = generate_twin(out_dir, preset, seed, overwrite=overwrite, progress=report)
    print_twin_summary(summary, out_dir)


@app.command(
    "run",
    epilog="Example: cropsm run examples/tiny.toml --out runs/tiny --stages analyze,report",
)
@_friendly_errors
def run_command(
    config: Annotated[Path, typer.Argument(help="Run configuration (TOML).")],
    out: Annotated[Path, typer.Option("--out", help="Run directory.")],
    stages: Annotated[
        str | None,
        typer.Option(
            metavar="STAGE,...",
            help="Comma-separated stages to run, from: "
            + ", ".join(STAGE_NAMES)
            + " (default: all, in that order).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Re-run stages even when current.")] = False,
) -> None:
    """Run the pipeline described by CONFIG into the run directory (stages skip when current)."""
    from cropsm.config import load_config
    from cropsm.pipeline import run_pipeline
    from cropsm.run_layout import RunLayout

    cfg = load_config(config)
    wanted = None if stages is None else [s.strip() for s in stages.split(",") if s.strip()]
    summary = run_pipeline(cfg, out, stages=wanted, force=force, console=console)
    table = Table(title=f"run {cfg.run.name}: {out}")
    table.add_column("stage")
    table.add_column("status")
    table.add_column("details")
    for name, rec in summary.items():
        details = ", ".join(  # nested tables stay in run_summary.json
            f"{k}={v}"
            for k, v in rec.items()
            if k not in ("status", "report") and not isinstance(v, dict)
        )
        table.add_row(name, rec["status"], details)
    stdout.print(table)
    # this run directory's page (a marker copied with the run holds the old path)
    report = RunLayout(out).report_html if (summary.get("report") or {}).get("report") else None
    if report:  # the very last line, whole, whatever the terminal width
        stdout.file.flush()
        print(f"report: {report}", flush=True)


@app.command("train", epilog="Example: cropsm train examples/tiny.toml --out runs/tiny")
@_friendly_errors
def train_command(
    config: Annotated[Path, typer.Argument(help="Run configuration (TOML).")],
    out: Annotated[Path, typer.Option("--out", help="Run directory.")],
    force: Annotated[bool, typer.Option(help="Re-train even when current.")] = False,
) -> None:
    """Train the five chained layer networks with the grid search (inputs and features first)."""
    run_command(config, out, stages="inputs,features,train", force=force)


@app.command(
    "evaluate",
    epilog="Example: cropsm evaluate runs/tiny --stations other/stations.csv "
    "--observations other/observations.csv --json runs/tiny/other_stations.json",
)
@_friendly_errors
def evaluate_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory with trained models.")],
    stations: Annotated[
        Path,
        typer.Option(
            help="Station metadata (csv), the USCRN daily01 folder (uscrn) or the ISMN "
            "download folder (ismn)."
        ),
    ],
    json_out: Annotated[Path, typer.Option("--json", help="Where to write the metrics.")],
    observations: Annotated[
        Path | None, typer.Option(help="Their observations (long table; csv format only).")
    ] = None,
    station_format: Annotated[
        Literal["csv", "uscrn", "ismn"],
        typer.Option(
            "--format",
            help="Station format: csv (CSV or Parquet; runs on a grid), uscrn or ismn (runs "
            "on those networks).",
        ),
    ] = "csv",
    station_names: Annotated[
        list[str] | None,
        typer.Option("--station", help="uscrn/ismn: station name or pattern (repeatable)."),
    ] = None,
    first_year: Annotated[int | None, typer.Option(help="uscrn/ismn: first year to score.")] = None,
    last_year: Annotated[int | None, typer.Option(help="uscrn/ismn: last year to score.")] = None,
) -> None:
    """Apply a run's networks (and baselines) to other stations or years; per-layer metrics."""
    from cropsm.io.atomic import check_writable
    from cropsm.provenance import write_json
    from cropsm.sources import EvaluationRequest
    from cropsm.stages import evaluate_run
    from cropsm.train.artifacts import json_safe

    check_writable(json_out, "--json", beside=True)
    request = EvaluationRequest(
        format=station_format,
        path=stations,
        observations=observations,
        stations=tuple(station_names or ()),
        first_year=first_year,
        last_year=last_year,
    )
    result = evaluate_run(run_dir, request)
    write_json(json_out, json_safe(result))  # strict JSON: a metric without rows is null
    table = Table(title=f"networks of {run_dir} on {result['stations']} stations")
    layers = sorted(k for k in result if k.startswith("layer"))
    with_coverage = any("interval90_coverage" in result[k] for k in layers)
    columns = ["layer", "R2", "RMSE", "ubRMSE", "bias", "n"]
    if with_coverage:
        columns += ["90% interval: raw", "calibrated", "soil moisture"]
        table.caption = (
            "90 % interval coverage of the readings: the members' spread alone, calibrated "
            "(a reading's interval), and the soil moisture's (the product's sm_sd, without "
            "the readings' own error)"
        )
    for col in columns:
        table.add_column(col, justify="right")
    for key in layers:
        m = result[key]["test"]
        cells = [
            key[5:],
            f"{m['r2']:.3f}",
            f"{m['rmse']:.4f}",
            f"{m['ubrmse']:.4f}",
            f"{m['bias']:+.4f}",
            str(m["n"]),
        ]
        if with_coverage:
            c = result[key].get("interval90_coverage", {})
            cells += [
                f"{c.get('raw', float('nan')):.3f}",
                f"{c.get('calibrated', float('nan')):.3f}",
                f"{c.get('value', float('nan')):.3f}",
            ]
        table.add_row(*cells)
    stdout.print(table)
    if "baselines" in result:
        base = Table(title="baselines on the same rows: R2 (ubRMSE) per layer")
        base.add_column("baseline")
        for key in layers:
            base.add_column(key, justify="right")
        for name, by_layer in result["baselines"].items():
            cells = []
            for key in layers:
                m = by_layer.get(key, {}).get("test", {})
                r2, ub = m.get("r2"), m.get("ubrmse")
                cells.append("-" if r2 is None else f"{r2:.3f} ({ub:.4f})")
            base.add_row(name, *cells)
        stdout.print(base)
    stdout.print(f"metrics written to {json_out}")


# Commands of later stages live beside their stage; each module defines ``register(app)``.
COMMAND_MODULES: tuple[str, ...] = (
    "cropsm.predict.commands",
    "cropsm.attribute.commands",
    "cropsm.analyze.commands",
    "cropsm.report.commands",
)


def _register_stage_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app, _friendly_errors, stdout)


_register_stage_commands()


def entry() -> None:  # pragma: no cover - console script shim
    sys.exit(app())
