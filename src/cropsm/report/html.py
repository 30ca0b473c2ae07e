"""The run report: one self-contained HTML page (``RUN_DIR/report/index.html``).

Everything is read from the run directory: inputs summary (``twin.json`` or the inputs stage
record), Table 2 (``table2.csv``), metrics (``metrics.json``, with ``baselines`` when present),
every figure under ``figures/`` (embedded as base64 PNG, grouped by the paper's figure and
captioned), the analyses' numbers (``analysis/``), the attribution tables (``attribution/``),
the skill against the virtual China's truth (``truth_skill.json``, ``analysis/truth_*.csv``) and
the provenance (``config.resolved.toml``, ``provenance.json``, ``run_summary.json``). The
paper's numbers (:mod:`cropsm.paper`) stand beside ours.

The page opens on the key results (:mod:`cropsm.report.key_results`). It has no external
resources (CSS inline, no fonts, no network). A tiny inline script marks each ``<img>`` with
``data-loaded="yes"`` once decoded, writes the count into ``#render-summary`` and the page
position of the key-results box into its ``data-top``/``data-bottom`` (used by the browser
test). Every text from the run directory is escaped.
A section whose inputs are missing says so; one that cannot be read shows the error instead of
stopping the report. Sections that need what the run's input source does not provide
(:data:`SECTION_NEEDS`; ``inputs/source.json``, e.g. a national product from USCRN stations, which
have no grid) are left out, page and table of contents, and the page names them with the reason.
"""

from __future__ import annotations

import base64
import fnmatch
import html
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from cropsm import paper
from cropsm.analyze import MIN_YEARS_FOR_TREND
from cropsm.errors import CropsmError, InputError
from cropsm.provenance import read_json_object
from cropsm.report.key_results import KEY_RESULTS_STYLE, key_results_html, season_coverage
from cropsm.run_layout import RunLayout

REPORT_DIR = "report"
REPORT_FILE = "index.html"


# --------------------------------------------------------------------------------------------
# small HTML helpers
# --------------------------------------------------------------------------------------------


def esc(value) -> str:
    """HTML-escape any value's text (quotes included)."""
    return html.escape(str(value), quote=True)


def fmt(value) -> str:
    """A number for the report, one format everywhere: integers as is; floats in fixed notation
    with three significant digits but at least three decimals (``0.819``, ``0.0651``,
    ``-0.00150``, ``68.500``); scientific only outside 1e-4 to 1e5."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if value == 0:
            return "0"
        if 1e-4 <= abs(value) < 1e5:
            decimals = max(3, 2 - math.floor(math.log10(abs(value))))
            return f"{value:.{decimals}f}"
        return f"{value:.2e}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return fmt(int(number) if number.is_integer() and abs(number) < 1e15 else number)


def table(rows: Sequence[Sequence], header: Sequence[str], caption: str | None = None) -> str:
    """An escaped HTML table; numbers formatted with :func:`fmt`."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{esc(fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


HEADER_NAMES = {
    "group": "feature group",
    "label": "omitted",
    "r2_loss_train": "R² loss, training",
    "r2_loss_test": "R² loss, test",
    "rank": "rank",
    "quantity": "quantity",
    "ours": "this run",
    "paper": "paper",
    "units": "units",
    "layer": "layer",
    "mean_sm_m3_m-3": "mean SM (m3 m-3)",
    "sen_slope_m3_m-3_yr-1": "Sen's slope (m3 m-3 yr-1)",
    "pearson_r_with_layer1": "r with layer 1",
    "n_years": "years",
    "cells": "cells",
    "pearson_r": "r across cells",
    "product_mean": "product mean",
    "satellite_mean": "satellite mean",
    "mean_difference": "mean difference",
    "same_sign_share": "share of cells with the same sign",
    "sign_agreement": "share of cells with the same sign",
    "product_mean_m3_m-3": "product effect (m3 m-3)",
    "truth_mean_m3_m-3": "true effect (m3 m-3)",
    "pattern": "cropping pattern",
    "area": "area",
}
"""Table headers a reader understands, for the CSV column names the analyses write."""


def human_header(column: str) -> str:
    """The header of a CSV column: :data:`HEADER_NAMES`, else units moved into brackets
    (``x_m3_m-3_yr-1`` → ``x (m3 m-3 yr-1)``) and underscores made spaces."""
    if column in HEADER_NAMES:
        return HEADER_NAMES[column]
    for suffix in ("_m3_m-3_yr-1", "_m3_m-3", "_mm", "_days"):
        if column.endswith(suffix):
            units = suffix[1:].replace("_", " ")
            return f"{column[: -len(suffix)].replace('_', ' ')} ({units})"
    return column.replace("_", " ")


def frame_table(frame: pd.DataFrame, caption: str | None = None, max_rows: int = 200) -> str:
    """A DataFrame as an escaped table (at most ``max_rows`` rows, with a note if cut), with
    human headers (:func:`human_header`) and cropping patterns spelled out."""
    from cropsm.report.key_results import pattern_label

    frame = frame.copy()
    for column in ("pattern", "scenario"):
        if column in frame.columns:
            frame[column] = [pattern_label(str(v)) for v in frame[column]]
    rows = [
        [None if (isinstance(v, float) and math.isnan(v)) else _plain(v) for v in row]
        for row in frame.head(max_rows).itertuples(index=False)
    ]
    out = table(rows, [human_header(str(c)) for c in frame.columns], caption)
    if len(frame) > max_rows:
        out += missing(f"{len(frame) - max_rows} more rows in the CSV file")
    return out


def _plain(value):
    """numpy scalars to Python numbers for :func:`fmt`."""
    if hasattr(value, "item") and not isinstance(value, str):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return value
    return value


def missing(text: str) -> str:
    """A note where a section's inputs are missing."""
    return f'<p class="missing">{esc(text)}</p>'


def paragraph(text: str) -> str:
    return f"<p>{esc(text)}</p>"


def preformatted(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"


def _read_json(path: Path) -> dict | None:
    """The JSON file at ``path`` (None when absent); a damaged one is an error naming it."""
    return read_json_object(path, "expected JSON")


def _read_csv(path: Path) -> pd.DataFrame | None:
    """The CSV table at ``path`` (None when absent); a damaged one is an error naming it."""
    if not path.exists():
        return None
    try:
        return pd.read_csv(path)
    except (UnicodeDecodeError, ValueError, pd.errors.ParserError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(path, None, f"cannot be read ({first}); expected a CSV table") from None


# --------------------------------------------------------------------------------------------
# figures
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FigureGroup:
    """Figures of one section: glob patterns on the file stem, with a caption for each match."""

    patterns: tuple[str, ...]
    caption: Callable[[str], str]


def _layer_of(stem: str) -> str:
    match = re.search(r"layer(\d+)", stem)
    if not match:
        return ""
    k = int(match.group(1))
    return f" (layer {k}, {10 * (k - 1)}-{10 * k} cm)"


FIGURE_CAPTIONS: dict[str, Callable[[str], str]] = {
    "scatter_all_layers": lambda s: (
        "Fig. 4: predicted against observed SM, training and testing, every layer on the same "
        "axes. Look for the spread around the 1:1 line and whether high and low values are "
        "pulled towards the mean."
    ),
    "scatter_layer*": lambda s: (
        f"Fig. 4: predicted against observed SM in training and testing{_layer_of(s)}."
    ),
    "fig2*": lambda s: "Fig. 2: trend of the annual mean SM at each station (Sen's slope).",
    "fig3*": lambda s: (
        "Fig. 3: annual mean SM across stations for each layer, with each layer's trend when "
        f"there are at least {MIN_YEARS_FOR_TREND} years. Look at whether the layers move "
        "together (the paper: r = 0.85 between top and bottom) and at the sign of the trends."
    ),
    "figS3*": lambda s: "Fig. S3: station trends by cropping pattern.",
    "fig5_r2_loss_all_layers": lambda s: (
        "Fig. 5: R² loss of each reduced model (one feature group left out), every layer, "
        "groups in one fixed order. The tallest bars are the inputs the networks rely on; the "
        "paper finds precipitation and soil first (0.15), then elevation (0.09)."
    ),
    "fig5*": lambda s: f"Fig. 5: R² loss of each reduced model against the full one{_layer_of(s)}.",
    "fig6*": lambda s: (
        "Fig. 6: median annual SM of the reduced national products minus the reference."
    ),
    "fig7ab_product_all_layers": lambda s: (
        "Fig. 7a,b: median annual SM of the reference product (top) and its trend (bottom, "
        "only with enough years), every layer on one colour scale per row; grey dots: "
        "cropland fraction > 0.5. Look for the north-south gradient and how it fades with depth."
    ),
    "fig7ab_product_layer*": lambda s: (
        "Fig. 7a,b: median annual SM of the reference product "
        f"and its trend{_layer_of(s)}; grey dots: cropland fraction > 0.5."
    ),
    "fig7_product_national_annual": lambda s: (
        "Reference product: cropland-mean annual SM per "
        "layer (the product's counterpart of Fig. 3)."
    ),
    "fig7cf*": lambda s: (
        "Fig. 7: the reference product (0-10 cm) and the satellite product on "
        "matched days: magnitude, trend and their differences."
    ),
    "fig8*": lambda s: (
        "Fig. 8: climatological monthly SM by region, reference product and satellite, matched "
        "days. Look for whether the seasonal cycles have the same shape and timing; regions with "
        "too few cells are not drawn."
    ),
    "fig9*": lambda s: (
        "Fig. 9: median annual SM of each cropping pattern minus the reference (0-10 cm), one "
        "colour scale; the north-east is masked for the double-cropping patterns. Red: the "
        "pattern dries the soil; the paper finds winter wheat + fallow wetter in most of China. "
        "With a deep ensemble, grey cells are those where the effect is not larger than twice "
        "its calibrated spread over the members (not significant; see the uncertainty section)."
    ),
    "fig10_scenario_monthly_bands": lambda s: (
        "Fig. 10 with the ensemble's uncertainty: climatological monthly SM difference (pattern "
        "minus reference) over all of China (0-10 cm), the deep-ensemble mean with a band of "
        "+/- 2 calibrated spreads (the members' spread times the layer's calibration inflation "
        "and the small-sample factor of the members, as in Fig. 9); hollow points are months "
        "whose difference is not larger than twice that spread."
    ),
    "fig10*": lambda s: (
        "Fig. 10: climatological monthly SM difference (pattern minus reference) by region and "
        "for all of China (0-10 cm). Look for the months where a pattern differs most: fallow "
        "seasons; regions with too few cells are not drawn."
    ),
    "truth_scenario_agreement": lambda s: (
        "Virtual China: the product's Fig. 9 differences against the true ones, cell by cell "
        "(0-10 cm). Points on the 1:1 line are right; a cloud steeper than it means exaggerated "
        "effects, points in the off-diagonal quadrants the wrong sign."
    ),
    "truth_product_error": lambda s: (
        "Virtual China: RMSE and bias of the reference product "
        "against the true reference, by region and layer (all days)."
    ),
    "product_error_map": lambda s: (
        "Virtual China: error of the reference product against the true reference, cell by "
        "cell (every day). Look for where the error is largest: far from stations?"
    ),
    "product_models_no_*_error_map": lambda s: (
        "Virtual China: the same error map for the control product without "
        f"{s.removeprefix('product_models_no_').removesuffix('_error_map')} (Fig. 6's networks)."
    ),
}


def caption_for(stem: str) -> str:
    """The caption of a figure file stem (first matching pattern), or the stem itself."""
    for pattern, caption in FIGURE_CAPTIONS.items():
        if fnmatch.fnmatchcase(stem, pattern):
            return caption(stem)
    return stem.replace("_", " ")


def _natural_key(path: Path):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.stem)]


class FigureShelf:
    """The run's figures; sections take them by pattern, leftovers go to 'Other figures'."""

    def __init__(self, figure_dir: Path):
        self.paths = (
            sorted(figure_dir.glob("*.png"), key=_natural_key) if figure_dir.is_dir() else []
        )
        self.used: set[Path] = set()

    def take(self, patterns: Iterable[str]) -> list[Path]:
        out = []
        for pattern in patterns:
            for path in self.paths:
                if path not in self.used and fnmatch.fnmatchcase(path.stem, pattern):
                    out.append(path)
                    self.used.add(path)
        return out

    def leftovers(self) -> list[Path]:
        return [p for p in self.paths if p not in self.used]


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def figure_html(path: Path) -> str:
    """A ``<figure>`` with the PNG embedded as base64 and an escaped caption; a file that is no
    whole PNG (no signature or no ``IEND`` chunk at its end) is named instead of embedded."""
    raw = path.read_bytes()
    caption = caption_for(path.stem)
    if not (raw.startswith(PNG_SIGNATURE) and raw[-12:-4] == b"\x00\x00\x00\x00IEND"):
        problem = (
            f"figures/{path.name} is not a whole PNG image ({len(raw)} bytes); re-run the "
            "stage that makes it"
        )
        return f'<p class="error">{esc(caption)}: {esc(problem)}</p>'
    data = base64.b64encode(raw).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}" '
        f'data-file="{esc(path.name)}"><figcaption>{esc(caption)} '
        f'<span class="file">({esc("figures/" + path.name)})</span></figcaption></figure>'
    )


def figures_html(paths: list[Path], what: str) -> str:
    if not paths:
        return missing(f"No {what} figure in figures/ (the stage that draws it has not run).")
    return "".join(figure_html(p) for p in paths)


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------


@dataclass
class Section:
    anchor: str
    title: str
    body: str


def _twin_summary(run_dir: Path) -> dict | None:
    for path in sorted(RunLayout(run_dir).inputs_dir.glob("twin-*/twin.json")):
        return _read_json(path)
    return None


def _stage_result(run_dir: Path, name: str) -> dict | None:
    record = _read_json(RunLayout(run_dir).stage_marker(name))
    return None if record is None else record.get("result", {})


def section_inputs(run_dir: Path, shelf: FigureShelf) -> str:
    twin = _twin_summary(run_dir)
    if twin is not None:
        grid = twin.get("grid", {})
        period = twin.get("period", {})
        rows = [
            ("input set", f"virtual China, preset {twin.get('preset')}, seed {twin.get('seed')}"),
            (
                "grid",
                f"{grid.get('n_lat')} x {grid.get('n_lon')} cells at "
                f"{grid.get('resolution_deg')} deg, lat {grid.get('lat')}, lon "
                f"{grid.get('lon')}",
            ),
            ("climate period", " to ".join(period.get("climate", []))),
            ("truth period", " to ".join(period.get("truth", []))),
            ("cells in China", twin.get("china_cells")),
            ("cropland cells (fraction >= 0.1)", twin.get("cropland_cells")),
            ("stations", twin.get("stations")),
            ("observations (station-date-layer)", twin.get("observations")),
            ("stations by region", _inline(twin.get("stations_by_region"))),
            ("stations by pattern", _inline(twin.get("stations_by_pattern"))),
            (
                "mean true reference SM by layer (m3 m-3)",
                _inline(twin.get("mean_reference_sm_by_layer")),
            ),
        ]
        return table(rows, ["quantity", "value"]) + paragraph(
            f"The paper: {paper.N_STATIONS} stations, {paper.PERIOD_YEARS[0]}-"
            f"{paper.PERIOD_YEARS[1]}, {paper.GRID_RESOLUTION_DEG} deg grid."
        )
    result = _stage_result(run_dir, "inputs")
    if result:
        record = _read_json(RunLayout(run_dir).input_source) or {}
        source = record.get("source", "files")
        provides = ", ".join(record.get("provides", [])) or "stations only"
        rows = [(k, _inline(v) if isinstance(v, Mapping) else v) for k, v in result.items()]
        what = (
            "The user's own input files (checked by the inputs stage):"
            if source == "files"
            else f"The {source} input (read by the inputs stage; it provides: {provides}):"
        )
        return paragraph(what) + table(rows, ["quantity", "value"])
    return missing("No inputs summary: neither inputs/twin-*/twin.json nor stages/inputs.json.")


def _inline(mapping) -> str:
    if not isinstance(mapping, Mapping):
        return "" if mapping is None else str(mapping)
    return ", ".join(f"{k}: {fmt(v)}" for k, v in mapping.items())


def section_headline(run_dir: Path, shelf: FigureShelf) -> str:
    """Our numbers beside the paper's: Table 2 R2, Fig. 5 losses, mean trend, top-bottom r."""
    rows = []
    t2 = _read_csv(RunLayout(run_dir).table2)
    paper_t2 = {r.layer: r for r in paper.TABLE2}
    if t2 is not None:
        for r in t2.to_dict("records"):
            k = int(r["layer"])
            ref = paper_t2.get(k)
            rows.append(
                (f"Table 2: R² train, layer {k}", r.get("r2_train"), ref.r2_train if ref else None)
            )
            rows.append(
                (f"Table 2: R² test, layer {k}", r.get("r2_test"), ref.r2_test if ref else None)
            )
    else:
        rows.append(("Table 2 R²", "not available (train stage)", "0.64-0.70"))
    losses = _read_csv(run_dir / "attribution" / "station_r2_loss.csv")
    if losses is not None and "group" in losses:
        top = losses[losses["layer"] == 1] if "layer" in losses else losses
        for r in top.to_dict("records"):
            group = str(r["group"])
            rows.append(
                (
                    f"Fig. 5: R² loss without {group} (layer 1, training)",
                    r.get("r2_loss_train"),
                    paper.FIG5_NOTES.get(group, "–"),
                )
            )
    else:
        rows.append(("Fig. 5: R² losses", "not available (attribute stage)", "0.15 (P, soil)"))
    obs = _read_json(run_dir / "analysis" / "observations_summary.json")
    rows.append(
        (
            "mean trend of annual SM across stations, all layers (m3 m-3 yr-1)",
            None if obs is None else obs.get("mean_trend_all_layers_m3_m-3_yr-1"),
            paper.MEAN_TREND_M3_M3_PER_YEAR,
        )
    )
    rows.append(
        (
            "correlation of top and bottom layer annual series (stations)",
            None if obs is None else obs.get("top_bottom_r"),
            paper.TOP_BOTTOM_R,
        )
    )
    national = _read_csv(run_dir / "analysis" / "product_national_summary.csv")
    if national is not None and len(national):
        slopes = national["sen_slope_m3_m-3_yr-1"].dropna()
        years = int(national["n_years"].max()) if "n_years" in national else None
        rows.append(
            (
                "mean trend of the product's cropland-mean annual SM, all layers (m3 m-3 yr-1)",
                float(slopes.mean())
                if len(slopes)
                else f"none: {years} years, fewer than the {MIN_YEARS_FOR_TREND} a trend needs",
                paper.MEAN_TREND_M3_M3_PER_YEAR,
            )
        )
        rows.append(
            (
                "correlation of top and bottom layer annual series (product)",
                national["pearson_r_with_layer1"].iloc[-1],
                paper.TOP_BOTTOM_R,
            )
        )
    note = paragraph(
        "'–' where this run has no such number. The paper's trend and correlation are "
        "station statistics; the product rows are this run's national counterparts."
    )
    return table(rows, ["quantity", "this run", "paper"]) + note


def section_networks(run_dir: Path, shelf: FigureShelf) -> str:
    parts = []
    t2 = _read_csv(RunLayout(run_dir).table2)
    if t2 is None:
        parts.append(missing("No table2.csv (the train stage has not run)."))
    else:
        paper_t2 = {r.layer: r for r in paper.TABLE2}
        rows = []
        for r in t2.to_dict("records"):
            k = int(r["layer"])
            ref = paper_t2.get(k)
            rows.append(
                [
                    k,
                    r.get("hidden_layers"),
                    r.get("units"),
                    r.get("batch_size"),
                    r.get("learning_rate"),
                    r.get("r2_train"),
                    r.get("r2_validation"),
                    r.get("r2_test"),
                    *(
                        (
                            ref.hidden_layers,
                            ref.units,
                            ref.batch_size,
                            ref.learning_rate,
                            ref.r2_train,
                            ref.r2_test,
                        )
                        if ref
                        else (None,) * 6
                    ),
                ]
            )
        header = [
            "layer",
            "hidden layers",
            "units",
            "batch",
            "learning rate",
            "R² train",
            "R² validation",
            "R² test",
            "paper: hidden layers",
            "paper: units",
            "paper: batch",
            "paper: learning rate",
            "paper: R² train",
            "paper: R² test",
        ]
        parts.append(table(rows, header, "Table 2: selected hyperparameters and R² per layer"))
    grid = _read_csv(RunLayout(run_dir).grid_search)
    if grid is not None:
        parts.append(paragraph(grid_search_sentence(grid)))
    metrics = _read_json(RunLayout(run_dir).metrics)
    if metrics is None:
        parts.append(missing("No metrics.json (the train stage has not run)."))
    else:
        split = str(metrics.get("split", "unknown"))
        parts.append(paragraph(f"Split: {split}."))
        if split == "random":
            parts.append(
                '<p class="warning">'
                + esc(
                    "The split is random (the paper's): test rows come from the same stations "
                    "(other days) as training rows, so a model can recognise stations, and a "
                    "per-station climatology can score high. Only the station and year splits "
                    "measure transfer to new places and new years."
                )
                + "</p>"
            )
        rows = []
        for key in sorted(k for k in metrics if k.startswith("layer")):
            for part, m in metrics[key].items():
                if isinstance(m, Mapping):
                    rows.append(
                        [
                            key[5:],
                            part,
                            m.get("r2"),
                            m.get("rmse"),
                            m.get("ubrmse"),
                            m.get("bias"),
                            m.get("r"),
                            m.get("n"),
                        ]
                    )
        parts.append(
            table(
                rows,
                [
                    "layer",
                    "set",
                    "R²",
                    "RMSE (m3 m-3)",
                    "ubRMSE (m3 m-3)",
                    "bias (m3 m-3)",
                    "r",
                    "n",
                ],
                "metrics.json: networks",
            )
        )
        baselines = metrics.get("baselines")
        if isinstance(baselines, Mapping) and baselines:
            parts.append(_baselines_table(metrics, baselines))
        else:
            parts.append(missing("No baselines in metrics.json."))
    parts.append("<h3>Fig. 4: predicted against observed</h3>")
    parts.append(
        figures_html(shelf.take(["scatter_all_layers", "scatter_layer*"]), "scatter (Fig. 4)")
    )
    return "".join(parts)


def _baselines_table(metrics: Mapping, baselines: Mapping) -> str:
    layers = sorted(k for k in metrics if k.startswith("layer"))
    names = list(baselines)
    rows = []
    for key in layers:
        row = [key[5:], metrics[key].get("test", {}).get("r2")]
        for name in names:
            row.append(baselines.get(name, {}).get(key, {}).get("test", {}).get("r2"))
        row.append(metrics[key].get("test", {}).get("rmse"))
        for name in names:
            row.append(baselines.get(name, {}).get(key, {}).get("test", {}).get("rmse"))
        rows.append(row)
    from cropsm.report.key_results import BASELINE_NAMES

    shown = [BASELINE_NAMES.get(n, n.replace("_", " ")) for n in names]
    header = [
        "layer",
        "network R² test",
        *[f"{n} R² test" for n in shown],
        "network RMSE test (m3 m-3)",
        *[f"{n} RMSE test (m3 m-3)" for n in shown],
    ]
    return table(rows, header, "Networks against the baselines (same rows, same split)")


def section_observations(run_dir: Path, shelf: FigureShelf) -> str:
    parts = []
    comparison = _read_csv(run_dir / "analysis" / "observations_paper_comparison.csv")
    if comparison is not None:
        parts.append(frame_table(comparison, "Station analyses beside the paper (section 3a)"))
    else:
        parts.append(missing("No station analyses (analysis/observations_*; analyze stage)."))
    parts.append(figures_html(shelf.take(["fig2*", "fig3*", "figS3*"]), "station (Figs. 2, 3)"))
    summary = _read_json(run_dir / "analysis" / "observations_summary.json") or {}
    for stem, reason in (summary.get("figures_absent") or {}).items():
        parts.append(missing(f"{caption_for(stem).split(':')[0]} is not drawn: {reason}."))
    return "".join(parts)


def section_attribution(run_dir: Path, shelf: FigureShelf) -> str:
    parts = []
    losses = _read_csv(run_dir / "attribution" / "station_r2_loss.csv")
    if losses is None:
        parts.append(missing("No attribution/station_r2_loss.csv (attribute stage)."))
    else:
        top = losses[losses["layer"] == 1] if "layer" in losses else losses
        cols = [
            c
            for c in ("group", "label", "r2_loss_train", "r2_loss_test", "rank")
            if c in top.columns
        ]
        shown = top[cols].copy()
        shown["paper (layer 1)"] = [paper.FIG5_NOTES.get(str(g), "–") for g in top["group"]]
        parts.append(
            frame_table(shown, "R² loss of each reduced model, layer 1, with the paper's Fig. 5")
        )
        parts.append(paragraph("All layers: attribution/station_r2_loss.csv."))
    parts.append(figures_html(shelf.take(["fig5*"]), "station attribution (Fig. 5)"))
    national = _read_csv(run_dir / "attribution" / "national_differences_summary.csv")
    if national is not None:
        parts.append(frame_table(national, "National control experiments (Fig. 6): summary"))
    parts.append(figures_html(shelf.take(["fig6*"]), "national attribution (Fig. 6)"))
    return "".join(parts)


def section_product(run_dir: Path, shelf: FigureShelf) -> str:
    parts = []
    national = _read_csv(run_dir / "analysis" / "product_national_summary.csv")
    if national is None:
        parts.append(
            missing("No product analyses (analysis/product_*; predict and analyze stages).")
        )
    else:
        parts.append(
            frame_table(
                national,
                "Cropland-mean annual SM of the reference product: "
                "Sen's slope and correlation with layer 1",
            )
        )
    parts.append(figures_html(shelf.take(["fig7ab*", "fig7_product*"]), "product (Fig. 7a,b)"))
    return "".join(parts)


def section_satellite(run_dir: Path, shelf: FigureShelf) -> str:
    parts = []
    summary = _read_csv(run_dir / "analysis" / "satellite_comparison_summary.csv")
    if summary is None:
        reason = _skip_reason(run_dir, "satellite")
        parts.append(missing("No satellite comparison" + (f": {reason}" if reason else ".")))
    else:
        parts.append(
            frame_table(summary, "Reference product (0-10 cm) against the satellite, across cells")
        )
    parts.append(figures_html(shelf.take(["fig7cf*", "fig8*"]), "satellite (Figs. 7c-f, 8)"))
    return "".join(parts)


def _skip_reason(run_dir: Path, name: str) -> str | None:
    summary = _read_json(run_dir / "analysis" / "analyze_summary.json")
    return None if summary is None else summary.get("skipped", {}).get(name)


def section_scenarios(run_dir: Path, shelf: FigureShelf) -> str:
    parts = []
    monthly = _read_csv(run_dir / "analysis" / "scenario_monthly_differences.csv")
    if monthly is None:
        reason = _skip_reason(run_dir, "scenarios")
        parts.append(missing("No scenario analyses" + (f": {reason}" if reason else ".")))
    else:
        top = monthly[(monthly["layer"] == 1) & (monthly["region"] == "CHN")]
        annual = top.groupby("pattern", sort=False)["sm_difference_m3_m-3"].mean()
        rows = [(p, v) for p, v in annual.items()]
        parts.append(
            table(
                rows,
                ["pattern", "mean monthly difference, all of China (m3 m-3)"],
                "Pattern minus reference, 0-10 cm",
            )
        )
    shares = _read_csv(run_dir / "analysis" / "scenario_significant_share.csv")
    if shares is not None:
        parts.append(significance_html(shares))
    parts.append(figures_html(shelf.take(["fig9*", "fig10*"]), "scenario (Figs. 9, 10)"))
    return "".join(parts)


def significance_html(shares: pd.DataFrame) -> str:
    """The share of cropland where each pattern's effect is significant (deep ensemble),
    from ``analysis/scenario_significant_share.csv``."""
    top = shares[shares["layer"] == 1]
    mean_layers = shares.groupby("pattern", sort=False)["share_significant_calibrated"].mean()
    rows = [
        [
            r.pattern,
            r.share_significant,
            r.share_significant_calibrated,
            mean_layers.get(r.pattern),
        ]
        for r in top.itertuples()
    ]
    text = paragraph(
        "Which effects are real: an effect counts as significant in a cell when its "
        "ensemble-mean median annual value is larger than twice its spread over the members "
        "(analysis/scenario_significant_share.csv, analysis/scenario_effect_ensemble.nc). "
        "The calibrated column pools each cell's spread with its 8 neighbours' and widens it "
        "by the layer's calibration factor and by Student's t for the few members it is "
        "estimated from; Fig. 9 greys by it."
    )
    return text + table(
        rows,
        [
            "pattern",
            "share of cropland significant, 0-10 cm",
            "same, calibrated spread (Fig. 9)",
            "calibrated, mean over the five layers",
        ],
        "Share of cropland cells where each pattern's effect is significant",
    )


def _outside_season(coverage: dict) -> str | None:
    """``"0.790 (14 %)"``: coverage outside the stations' observation season and the share of
    the cell-days there (:func:`cropsm.report.key_results.season_coverage`); None without
    the split."""
    split = season_coverage(coverage)
    return None if split is None else f"{fmt(split[1])} ({100 * split[2]:.0f} %)"


def uncertainty_html(run_dir: Path) -> str:
    """Calibration of the deep ensemble's 90 % intervals: validation and test rows at the
    stations (models/ensemble.json), the reference product against the truth (truth_skill.json)
    and the effect maps against the true effects (analysis/truth_effect_calibration.csv)."""
    ensemble = _read_json(run_dir / "models" / "ensemble.json")
    skill = _read_json(run_dir / "truth_skill.json") or {}
    product = skill.get("product", {})
    effects = _read_csv(run_dir / "analysis" / "truth_effect_calibration.csv")
    if ensemble is None and not product and effects is None:
        return ""

    def median(frame: pd.DataFrame | None, column: str) -> float | None:
        values = None if frame is None else pd.to_numeric(frame[column], errors="coerce")
        return None if values is None or not values.notna().any() else float(values.median())

    days = skill.get("station_days", {})
    rows = []
    for k in range(1, 6):
        e = (ensemble or {}).get("layers", {}).get(f"layer{k}", {})
        cov = product.get(f"layer{k}", {}).get("interval90_coverage", {})
        eff = effects[effects["layer"] == k] if effects is not None else None
        at_stations = days.get(f"layer{k}", {}).get("test", {})
        rows.append(
            [
                k,
                e.get("residual_sd_m3_m-3"),
                e.get("observation_error_sd_m3_m-3"),
                e.get("coverage_test_raw"),
                e.get("coverage_test_calibrated"),
                at_stations.get("coverage_truth"),
                cov.get("raw"),
                cov.get("calibrated"),
                (cov.get("observed_season") or {}).get("calibrated"),
                _outside_season(cov),
                median(eff, "coverage90_raw"),
                median(eff, "coverage90_calibrated"),
                median(eff, "significant_sign_agreement_calibrated"),
            ]
        )
    members = (ensemble or {}).get("members", 1)
    text = paragraph(
        f"Uncertainty ({members} ensemble members per layer): share of the truth inside the "
        "central 90 % interval, from the members' spread alone (raw) and after adding the "
        "residual SD fitted on the validation rows (calibrated); a calibrated interval should "
        "cover 85-95 %. The residual SD is fitted on the stations' readings, which carry "
        "their own error: the intervals of the product leave out its white part (the "
        "readings' error, estimated from the residuals' temporal variogram), and the test "
        "rows' readings are scored against the interval widened by it again. A station's "
        "constant offset cannot be told from model error and stays in the intervals (wider); "
        "the nugget also takes model error faster than the readings for measurement error "
        "(narrower; every layer takes the smallest of the layers' nuggets, one instrument, "
        "unless the run gave the error), and with a random split the networks learn part of "
        "each station's offset (narrower): "
        "how much of the noise-free truth they hold is measured, not assumed (truth_skill.json, "
        "station_days). The calibration rests on readings, and stations do not read frozen "
        "soil: in the months no station of a cell's region observes, the networks extrapolate "
        "and the product's intervals are scored apart (truth_skill.json, interval90_coverage "
        "by_month, observed_season, outside_season). Effects: median over the patterns of the "
        "share of cells whose true median annual effect lies in the interval, and of the "
        "significant cells whose sign is right."
    )
    return text + table(
        rows,
        [
            "layer",
            "residual SD (m3 m-3)",
            "readings' error (m3 m-3)",
            "test rows, raw",
            "test rows, calibrated",
            "test rows: truth, calibrated",
            "reference product vs truth, raw",
            "reference product vs truth, calibrated",
            "same, months the region's stations observe",
            "same, other months (share of cell-days)",
            "effect maps, raw",
            "effect maps, calibrated",
            "significant cells (calibrated) with the true sign",
        ],
        "90 % interval coverage (models/ensemble.json, truth_skill.json, "
        "analysis/truth_effect_calibration.csv)",
    )


def grid_search_sentence(grid: pd.DataFrame) -> str:
    """One sentence on how the grid search went (``grid_search.csv``)."""
    per_layer = grid.groupby("layer").size()
    sizes = sorted(set(per_layer.tolist()))
    text = (
        f"Grid search (grid_search.csv): {'/'.join(map(str, sizes))} configurations per layer, "
        f"selected by validation MSE"
    )
    if {"selected", "validation_mse"} <= set(grid.columns):
        best = grid.groupby("layer")["validation_mse"].transform("min")
        chosen = grid["selected"].astype(bool)
        gaps = (grid.loc[chosen, "validation_mse"] / best[chosen] - 1.0).to_numpy()
        if gaps.size and gaps.max() > 0:
            text += (
                " within a tolerance (the smallest network whose validation MSE is at most "
                f"{100 * gaps.max():.1f} % above the best, [train] selection_tolerance)"
            )
    pruned = grid["pruned_at_epoch"] if "pruned_at_epoch" in grid else None
    if pruned is None or not (pruned > 0).any():
        return text + "; every configuration trained until early stopping or the epoch limit."
    steps = ", ".join(
        f"{count / len(per_layer):g} after epoch {epoch}"
        for epoch, count in pruned[pruned > 0].value_counts().sort_index().items()
    )
    finished = int((pruned == 0).sum() / len(per_layer))
    return (
        text + f"; successive halving stopped on average per layer {steps}, and {finished} "
        "trained until early stopping or the epoch limit."
    )


def section_truth(run_dir: Path, shelf: FigureShelf) -> str:
    parts = []
    skill = _read_json(RunLayout(run_dir).truth_skill)
    agreement = _read_csv(run_dir / "analysis" / "truth_scenario_agreement.csv")
    errors = _read_csv(run_dir / "analysis" / "truth_product_error.csv")
    if skill is None and agreement is None and errors is None:
        return missing(
            "No truth to compare with: only the virtual China has one "
            "(truth_skill.json, analysis/truth_*.csv)."
        )
    if skill is not None:
        parts.append(
            paragraph(
                f"Networks against the truth: {skill.get('what', '')} "
                f"({skill.get('cells')} cells, {skill.get('dates')} dates)."
            )
        )
        rows = []
        for key in sorted(k for k in skill if k.startswith("layer")):
            ref = skill[key].get("reference", {})
            pooled = skill[key].get("all_patterns", {})
            rows.append(
                [
                    key[5:],
                    ref.get("r2"),
                    ref.get("rmse"),
                    ref.get("bias"),
                    pooled.get("r2"),
                    pooled.get("rmse"),
                    ref.get("n"),
                ]
            )
        parts.append(
            table(
                rows,
                [
                    "layer",
                    "reference R²",
                    "reference RMSE (m3 m-3)",
                    "reference bias (m3 m-3)",
                    "all patterns R²",
                    "all patterns RMSE (m3 m-3)",
                    "n",
                ],
                "truth_skill.json: station-free cells",
            )
        )
    else:
        parts.append(missing("No truth_skill.json."))
    if errors is not None:
        ref = errors[errors["scenario"] == "reference"] if "scenario" in errors else errors
        wide = ref.pivot(index="region", columns="layer", values="rmse_m3_m-3")
        wide = wide.reindex([r for r in dict.fromkeys(ref["region"])])
        wide = wide.dropna(how="all")
        rows = [[region, *row] for region, row in zip(wide.index, wide.to_numpy(), strict=True)]
        parts.append(
            table(
                rows,
                ["region", *[f"RMSE layer {k} (m3 m-3)" for k in wide.columns]],
                "Reference product against the true reference, every day and "
                "cropland cell, by region",
            )
        )
    else:
        parts.append(missing("No analysis/truth_product_error.csv."))
    parts.append(uncertainty_html(run_dir))
    if agreement is not None:
        parts.append(scenario_agreement_html(agreement))
    else:
        parts.append(missing("No analysis/truth_scenario_agreement.csv."))
    parts.append(
        figures_html(
            shelf.take(["truth*", "product_error_map", "product_models_*_error_map"]), "truth"
        )
    )
    return "".join(parts)


def scenario_agreement_html(agreement: pd.DataFrame) -> str:
    """Pattern effects against the truth, every pattern and layer, flag-1 cells beside flag-0.

    ``agreement`` is ``analysis/truth_scenario_agreement.csv``
    (:func:`cropsm.analyze.scenarios.agreement_with_truth`); a table without the
    ``pattern_flag`` column (older runs) is shown as it is, layer 1 only.
    """
    if "pattern_flag" not in agreement:
        top = agreement[agreement["layer"] == 1] if "layer" in agreement else agreement
        return frame_table(
            top,
            "Fig. 9 maps against their true counterparts (0-10 cm): "
            "share of cells with the same sign and correlation",
        )
    flags = agreement["pattern_flag"].astype(str)
    one = agreement[flags == "1"].set_index(["pattern", "layer"])
    zero = agreement[flags == "0"].set_index(["pattern", "layer"])
    keys = list(dict.fromkeys(zip(agreement["pattern"], agreement["layer"], strict=True)))

    def value(frame: pd.DataFrame, key, column: str):
        if key not in frame.index or frame.loc[key, "cells"] == 0:
            return None
        v = _plain(frame.loc[key, column])
        return None if isinstance(v, float) and math.isnan(v) else v

    rows = []
    met = scored = 0
    for key in keys:
        sign, r, slope = (value(one, key, c) for c in ("sign_agreement", "pearson_r", "slope"))
        if value(one, key, "cells") is not None:
            scored += 1
            met += int(
                None not in (sign, r, slope) and sign >= 0.9 and r >= 0.7 and 0.7 <= slope <= 1.3
            )
        rows.append(
            [
                key[0],
                key[1],
                value(one, key, "cells"),
                sign,
                r,
                slope,
                value(one, key, "rmse_m3_m-3"),
                value(one, key, "true_sd_m3_m-3"),
                value(zero, key, "cells"),
                value(zero, key, "sign_agreement"),
                value(zero, key, "pearson_r"),
                value(zero, key, "slope"),
            ]
        )
    header = [
        "pattern",
        "layer",
        "flag 1: cells",
        "sign",
        "r",
        "slope",
        "RMSE (m3 m-3)",
        "true SD (m3 m-3)",
        "flag 0: cells",
        "sign",
        "r",
        "slope",
    ]
    caption = (
        "Pattern minus reference, median annual SM, product against truth, by pattern flag "
        "(1: the cell's region has stations with the pattern). Sign: share of cells with "
        "|true| > 0.005 m3 m-3 where the signs agree; slope: OLS of product on truth; "
        f"{met} of {scored} flag-1 maps meet sign >= 0.9, r >= 0.7, slope 0.7-1.3"
    )
    return table(rows, header, caption)


def section_other_figures(run_dir: Path, shelf: FigureShelf) -> str:
    left = shelf.leftovers()
    if not left:
        return paragraph("None: every figure appears above.")
    shelf.used.update(left)
    return paragraph(
        "Figures in figures/ that no section above shows (e.g. drawn by your own code):"
    ) + figures_html(left, "other")


def section_provenance(run_dir: Path, shelf: FigureShelf) -> str:
    parts = []
    prov = _read_json(RunLayout(run_dir).provenance)
    if prov is None:
        parts.append(missing("No provenance.json."))
    else:
        rows = [
            ("cropsm version", prov.get("cropsm_version")),
            ("git commit", prov.get("git_commit")),
            ("seeds", _inline(prov.get("seeds"))),
            ("command", prov.get("command")),
            ("started at", prov.get("started_at")),
            ("host", _inline(prov.get("host"))),
        ]
        parts.append(table(rows, ["item", "value"], "provenance.json"))
        versions = prov.get("versions") or {}
        parts.append(table(list(versions.items()), ["package", "version"], "versions"))
    parts.append(_run_time_table(run_dir))
    config = RunLayout(run_dir).config
    if config.exists():
        text = config.read_text(encoding="utf-8")
        parts.append("<h3>config.resolved.toml</h3>" + preformatted(text))
    else:
        parts.append(missing("No config.resolved.toml."))
    return "".join(parts)


def _run_time_table(run_dir: Path) -> str:
    """Seconds of each stage's last run (``stages/<name>.json``, in the order they finished)
    and the status of the last ``cropsm run`` (``run_summary.json``)."""
    markers = sorted(RunLayout(run_dir).stages_dir.glob("*.json"), key=lambda p: p.stat().st_mtime)
    summary = _read_json(RunLayout(run_dir).run_summary) or {}
    if not markers and not summary:
        return missing("No stage records (stages/*.json) and no run_summary.json.")
    rows = []
    total = 0.0
    names = [m.stem for m in markers] + [n for n in summary if n not in {m.stem for m in markers}]
    for name in names:
        record = _read_json(RunLayout(run_dir).stage_marker(name)) or {}
        seconds = record.get("seconds")
        if seconds is None and isinstance(summary.get(name), Mapping):
            seconds = summary[name].get("seconds")
        total += float(seconds or 0.0)
        last = (
            summary.get(name, {}).get("status") if isinstance(summary.get(name), Mapping) else None
        )
        rows.append((name, seconds, last or "–"))
    rows.append(("total", round(total, 1), ""))
    return table(
        rows,
        ["stage", "seconds (last run of the stage)", "status in the last cropsm run"],
        "Run time (stages/*.json, run_summary.json)",
    )


SECTIONS: tuple[tuple[str, str, Callable[[Path, FigureShelf], str]], ...] = (
    ("inputs", "Inputs", section_inputs),
    ("paper", "This run beside the paper", section_headline),
    ("networks", "Networks: Table 2, metrics, Fig. 4", section_networks),
    ("observations", "Station observations: Figs. 2, 3, S3", section_observations),
    ("attribution", "Attribution: Figs. 5, 6", section_attribution),
    ("product", "National product: Fig. 7a,b", section_product),
    ("satellite", "Against the satellite: Figs. 7c-f, 8", section_satellite),
    ("scenarios", "Cropping patterns: Figs. 9, 10", section_scenarios),
    ("truth", "Virtual China: against the truth", section_truth),
    ("other", "Other figures", section_other_figures),
    ("provenance", "Provenance", section_provenance),
)
"""The report's sections in order: anchor, title, builder (run dir, figure shelf) → HTML."""

SECTION_NEEDS: dict[str, tuple[str, ...]] = {
    "observations": ("grid",),
    "product": ("grid",),
    "satellite": ("grid", "satellite"),
    "scenarios": ("grid", "patterns"),
    "truth": ("truth",),
}
"""What a section needs the input source to provide (``cropsm.sources.PROVIDABLE``); the
station analyses come from the analyze stage, which needs a grid."""


def shown_sections(run_dir: Path) -> tuple[list, dict[str, str]]:
    """The sections the run's inputs allow, and for each left out the reason.

    A run directory without ``inputs/source.json`` (made by hand or by an older version)
    shows every section.
    """
    layout = RunLayout(run_dir)
    have = layout.provided()
    if have is None:
        return list(SECTIONS), {}
    source = (_read_json(layout.input_source) or {}).get("source", "input")
    shown, left_out = [], {}
    for anchor, title, builder in SECTIONS:
        lacking = [n for n in SECTION_NEEDS.get(anchor, ()) if n not in have]
        if lacking:
            left_out[title] = f"the {source} input has no {' and no '.join(lacking)}"
        else:
            shown.append((anchor, title, builder))
    return shown, left_out


# --------------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------------

STYLE = """
body{font-family:sans-serif;margin:0 auto;max-width:1200px;padding:0 1.5em 3em;color:#222}
h1{border-bottom:2px solid #444;padding-bottom:.2em;margin:.5em 0 .2em;font-size:1.7em}
.intro{color:#555;font-size:.8em;margin:.3em 0}
h2{border-bottom:1px solid #bbb;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.88em}
caption{text-align:left;font-weight:bold;padding:.3em 0}
th,td{border:1px solid #ccc;padding:.25em .55em;text-align:right}
th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
figure{margin:1.2em 0;page-break-inside:avoid}
figure img{max-width:100%;width:auto;height:auto;border:1px solid #ddd}
figcaption{font-size:.9em;color:#333}
.file{color:#777}
.missing{color:#8a5a00;background:#fff6e0;padding:.4em .7em;border-left:4px solid #e0a800}
.warning{color:#7a1f1f;background:#fdeaea;padding:.4em .7em;border-left:4px solid #c0392b}
.error{color:#7a1f1f}
pre{background:#f7f7f7;padding:.8em;overflow-x:auto;font-size:.85em}
nav ol{columns:2}
#render-summary{color:#555}
"""

RENDER_CHECK_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.querySelectorAll("img");
  var rendered = 0;
  images.forEach(function (img) {
    var ok = img.complete && img.naturalWidth > 0 && img.naturalHeight > 0;
    img.setAttribute("data-loaded", ok ? "yes" : "no");
    if (ok) { rendered += 1; }
  });
  var summary = document.getElementById("render-summary");
  summary.setAttribute("data-images", String(images.length));
  summary.setAttribute("data-rendered", String(rendered));
  summary.textContent = rendered + " of " + images.length + " figures rendered";
  var key = document.getElementById("key-results");
  if (key) {
    var box = key.getBoundingClientRect();
    key.setAttribute("data-top", String(Math.round(box.top + window.scrollY)));
    key.setAttribute("data-bottom", String(Math.round(box.bottom + window.scrollY)));
  }
});
"""


def _run_name(run_dir: Path) -> str:
    path = RunLayout(run_dir).config
    if path.exists():
        try:
            return str(
                tomllib.loads(path.read_text(encoding="utf-8"))
                .get("run", {})
                .get("name", run_dir.name)
            )
        except tomllib.TOMLDecodeError:
            pass
    return run_dir.name


def render_report(run_dir: str | Path, generated_at: datetime | None = None) -> str:
    """The report page of a run directory as one HTML string."""
    from cropsm import __version__

    run_dir = Path(run_dir)
    shelf = FigureShelf(RunLayout(run_dir).figures_dir)
    built = []
    sections_shown, left_out = shown_sections(run_dir)
    for anchor, title, builder in sections_shown:
        try:
            body = builder(run_dir, shelf)
        except Exception as err:  # noqa: BLE001 - one broken input must not lose the report
            why = str(err) if isinstance(err, CropsmError) else repr(err)
            body = f'<p class="error">{esc(f"This section could not be built: {why}")}</p>'
        built.append(Section(anchor, title, body))
    when = (generated_at or datetime.now(UTC)).isoformat(timespec="seconds")
    toc = "".join(f'<li><a href="#{esc(s.anchor)}">{esc(s.title)}</a></li>' for s in built)
    sections = "".join(
        f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in built
    )
    name = _run_name(run_dir)
    try:
        key = key_results_html(run_dir, esc)
    except Exception as err:  # noqa: BLE001 - one broken input must not lose the report
        key = f'<p class="error">{esc(f"Key results could not be built: {err!r}")}</p>'
    intro = (
        f"Run directory {run_dir.resolve()}; report made {when} by cropsm {__version__}. "
        f"Reference: {paper.CITATION}."
    )
    if left_out:
        intro += (
            " Not in this report: "
            + "; ".join(f"{title} ({reason})" for title, reason in left_out.items())
            + "."
        )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(f'cropsm report: {name}')}</title>"
        f"<style>{STYLE}{KEY_RESULTS_STYLE}</style></head><body>"
        f"<h1>{esc(f'cropsm report: {name}')}</h1>"
        f"{key}"
        f'<p class="intro">{esc(intro)} '
        f'<span id="render-summary" data-images="" data-rendered="">figures not yet checked'
        "</span></p>"
        f"<nav><ol>{toc}</ol></nav>{sections}"
        f"<script>{RENDER_CHECK_SCRIPT}</script></body></html>\n"
    )


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN_DIR/report/index.html`` (atomically) and return its path."""
    from cropsm.provenance import atomic_write_text

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    path = run_dir / REPORT_DIR / REPORT_FILE
    atomic_write_text(path, render_report(run_dir))
    return path


def report_summary(path: Path) -> dict:
    """What the stage records: the page's path, size and number of embedded figures."""
    text = path.read_text(encoding="utf-8")
    return {
        "report": str(path),
        "figures": text.count("<img "),
        "size_mb": round(path.stat().st_size / 1e6, 2),
    }
