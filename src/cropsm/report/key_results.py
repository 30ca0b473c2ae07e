"""The report's first screen: the run's key results and the warnings a reader must see.

Everything is read from the run directory, as the rest of the report: ``table2.csv`` and
``metrics.json`` (networks and baselines), ``truth_skill.json`` (virtual China: the networks at
station-free cells and the national product against the truth),
``analysis/analyze_summary.json`` (period, scenario effects, regions too small to average),
``analysis/truth_scenario_agreement.csv`` (scenario effects against the true ones) and
``analysis/observations_summary.json``. Three parts:

* **Skill per layer**: R² on the test rows (the selected network and, with a deep ensemble, the
  ensemble mean the product holds) beside the paper's Table 2, the best baseline on the same
  rows, and on the virtual China R² against the truth (networks at cells without a
  station; the national product over every cropland cell and day).
* **Scenario verdicts** (0-10 cm, all of China): each pattern's effect on the median annual SM
  (pattern minus reference), with the true effect, the share of cells where the signs agree and
  a verdict (:func:`scenario_verdict`).
* **Warnings**, generated from the run (:func:`warnings_for_run`): period too short for
  trends, a baseline beating the networks, skill at stations overstating skill elsewhere,
  scenario effects exaggerated, of the wrong sign or within the networks' error, regions too
  small to average.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cropsm import LAYER_BOTTOM_CM, LAYER_TOP_CM, catalog, paper
from cropsm.analyze import MIN_REGION_CELLS, MIN_YEARS_FOR_TREND
from cropsm.run_layout import RunLayout

EXAGGERATION_FACTOR = 2.0
"""A product effect more than this many times the true one (same sign) is 'exaggerated'."""
UNDERSTATEMENT_FACTOR = 0.5
"""A product effect less than this fraction of the true one (same sign) is 'understated'."""
STATION_TRUTH_GAP = 0.15
"""R² at test rows minus R² against the truth above which skill at stations overstates skill
away from them."""
TOP_LAYER = 1

BASELINE_NAMES = {
    "climatology": "station climatology",
    "linear": "linear regression",
    "gradient_boosting": "gradient boosting",
}
"""How the report names the baselines of ``metrics.json``."""


def pattern_label(pattern_id: str) -> str:
    """``"winter wheat + fallow (ww_fl)"``: a pattern spelled out with its code (catalog)."""
    names = {p.id: p.name for p in catalog.patterns()}
    return f"{names[pattern_id]} ({pattern_id})" if pattern_id in names else pattern_id


def depth_label(layer: int) -> str:
    return f"{LAYER_TOP_CM[layer - 1]}-{LAYER_BOTTOM_CM[layer - 1]} cm"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
    except (OSError, ValueError):
        return None


def _read_csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.exists() else None


def _finite(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------------------------
# the numbers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSkill:
    """R² of one layer: test rows, the paper, the best baseline, against the truth."""

    layer: int
    r2_test: float | None
    paper_r2_test: float | None
    best_baseline: str | None
    best_baseline_r2_test: float | None
    truth_r2_networks: float | None
    truth_r2_product: float | None
    ensemble_r2_test: float | None = None

    @property
    def product_r2_test(self) -> float | None:
        """R² on the test rows of what the product holds: the deep ensemble's mean when there
        is one, else the selected network."""
        return self.ensemble_r2_test if self.ensemble_r2_test is not None else self.r2_test


def layer_skill(run_dir: Path) -> list[LayerSkill]:
    """Skill per layer from ``metrics.json`` (or ``table2.csv``), ``models/ensemble.json`` (the
    deep ensemble's mean on the test rows) and ``truth_skill.json``."""
    layout = RunLayout(run_dir)
    metrics = _read_json(layout.metrics) or {}
    ensemble = (_read_json(layout.models_dir / "ensemble.json") or {}).get("layers")
    ensemble = ensemble if isinstance(ensemble, Mapping) else {}
    table2 = _read_csv(layout.table2)
    truth = _read_json(layout.truth_skill) or {}
    paper_rows = {r.layer: r for r in paper.TABLE2}
    layers = sorted(int(k[5:]) for k in metrics if k.startswith("layer") and k[5:].isdigit())
    if not layers and table2 is not None:
        layers = sorted(int(k) for k in table2["layer"])
    out = []
    for k in layers:
        key = f"layer{k}"
        r2 = _finite(metrics.get(key, {}).get("test", {}).get("r2"))
        if r2 is None and table2 is not None and "r2_test" in table2:
            row = table2[table2["layer"] == k]
            r2 = _finite(row["r2_test"].iloc[0]) if len(row) else None
        best, best_r2 = None, None
        for name, by_layer in (metrics.get("baselines") or {}).items():
            value = _finite(by_layer.get(key, {}).get("test", {}).get("r2"))
            if value is not None and (best_r2 is None or value > best_r2):
                best, best_r2 = name, value
        product = truth.get("product", {}) if isinstance(truth.get("product"), Mapping) else {}
        out.append(
            LayerSkill(
                layer=k,
                r2_test=r2,
                paper_r2_test=paper_rows[k].r2_test if k in paper_rows else None,
                best_baseline=best,
                best_baseline_r2_test=best_r2,
                truth_r2_networks=_finite(truth.get(key, {}).get("reference", {}).get("r2")),
                truth_r2_product=_finite(product.get(key, {}).get("reference", {}).get("r2")),
                ensemble_r2_test=_ensemble_r2(ensemble.get(key)),
            )
        )
    return out


def _ensemble_r2(layer: Mapping | None) -> float | None:
    """Test R² of a layer's ensemble mean (``models/ensemble.json``), None for one network."""
    if not isinstance(layer, Mapping) or int(layer.get("members", 1)) < 2:
        return None
    return _finite((layer.get("ensemble_mean_test") or {}).get("r2"))


@dataclass(frozen=True)
class ScenarioEffect:
    """A pattern's effect on the top layer's median annual SM, all of China (m3 m-3)."""

    pattern: str
    effect: float | None
    true_effect: float | None
    sign_agreement: float | None
    verdict: str
    significant_share: float | None = None  # share of cropland significant (deep ensemble)


def scenario_verdict(
    effect: float | None, true_effect: float | None, error_scale: float | None
) -> str:
    """A one-phrase verdict on a scenario effect.

    Against the truth (when known): ``opposite sign to the truth`` when the signs of the
    all-China means differ; ``exaggerated N x`` when :math:`|e| > 2 |t|`; ``understated`` when
    :math:`|e| < 0.5 |t|`; else ``agrees with the truth``. Without a truth: ``not checked (no
    truth)``. In both cases the effect is flagged ``within the networks' error`` when
    :math:`|e|` is below ``error_scale`` (the layer's test RMSE), for runs without an ensemble
    spread to test it (with one, :func:`scenario_effects` gives the share of cropland where the
    effect is significant instead).
    """
    if effect is None:
        return "no effect computed"
    if true_effect is None:
        verdict = "not checked (no truth)"
    elif effect * true_effect < 0:
        verdict = "opposite sign to the truth"
    elif true_effect != 0 and abs(effect) > EXAGGERATION_FACTOR * abs(true_effect):
        verdict = f"exaggerated {abs(effect / true_effect):.1f}x vs the truth"
    elif abs(effect) < UNDERSTATEMENT_FACTOR * abs(true_effect):
        verdict = "understated vs the truth"
    else:
        verdict = "agrees with the truth"
    if error_scale is not None and abs(effect) < error_scale:
        verdict += "; within the networks' error"
    return verdict


def scenario_effects(run_dir: Path) -> list[ScenarioEffect]:
    """Top-layer effect of every pattern, with the truth when the run has one."""
    summary = _read_json(run_dir / "analysis" / "analyze_summary.json") or {}
    effects = (summary.get("ran", {}).get("scenarios") or {}).get(
        "mean_layer1_difference_m3_m-3", {}
    )
    agreement = _read_csv(run_dir / "analysis" / "truth_scenario_agreement.csv")
    truth_rows = {}
    if agreement is not None and {"pattern", "layer"} <= set(agreement.columns):
        rows = agreement[agreement["layer"] == TOP_LAYER]
        if "pattern_flag" in rows.columns:  # the all-cells row (analysis/ writes 1, 0, all)
            rows = rows[rows["pattern_flag"].astype(str) == "all"]
        for row in rows.to_dict("records"):
            truth_rows[str(row["pattern"])] = row
    metrics = _read_json(RunLayout(run_dir).metrics) or {}
    rmse = _finite(metrics.get(f"layer{TOP_LAYER}", {}).get("test", {}).get("rmse"))
    significance = (summary.get("ran", {}).get("scenarios") or {}).get("significance") or {}
    # the calibrated spread decides, as in Fig. 9
    shares = significance.get("share_significant_calibrated_layer1") or {}
    out = []
    for pattern, value in effects.items():
        row = truth_rows.get(pattern, {})
        effect = _finite(row.get("product_mean_m3_m-3", value)) if row else _finite(value)
        truth = _finite(row.get("true_mean_m3_m-3")) if row else None
        share = _finite(shares.get(pattern)) if shares else None
        if shares:  # the ensemble's spread decides, not the networks' test RMSE
            verdict = scenario_verdict(effect, truth, None)
            if share is not None:
                verdict += f"; significant in {100 * share:.0f} % of cropland"
        else:
            verdict = scenario_verdict(effect, truth, rmse)
        out.append(
            ScenarioEffect(
                pattern=pattern,
                effect=effect,
                true_effect=truth,
                sign_agreement=_finite(row.get("sign_agreement")) if row else None,
                verdict=verdict,
                significant_share=share,
            )
        )
    return out


def season_coverage(coverage: dict) -> tuple[float, float, float] | None:
    """``(inside, outside, share of cell-days outside)``: a layer's product coverage in the
    months the stations of the cell's region observe and in the others (``truth_skill.json``,
    ``interval90_coverage``, ``observed_season`` and ``outside_season``); None without the
    split."""
    inside = coverage.get("observed_season") or {}
    outside = coverage.get("outside_season") or {}
    value_in, value_out = _finite(inside.get("calibrated")), _finite(outside.get("calibrated"))
    pairs_in, pairs_out = inside.get("pairs") or 0, outside.get("pairs") or 0
    if value_in is None or value_out is None or not pairs_out:
        return None
    return value_in, value_out, pairs_out / (pairs_in + pairs_out)


def _season_split(coverage: dict) -> str:
    """`` (88 % in the months the region's stations observe, 79 % in the other 14 % of
    cell-days)``; empty without the split (:func:`season_coverage`)."""
    split = season_coverage(coverage)
    if split is None:
        return ""
    value_in, value_out, share = split
    return (
        f" ({100 * value_in:.0f} % in the months the region's stations observe, "
        f"{100 * value_out:.0f} % in the other {100 * share:.0f} % of cell-days)"
    )


def uncertainty_warnings(run_dir: Path) -> list[str]:
    """Warnings on the deep ensemble's intervals and significance (empty when all is well or
    the run has no ensemble): reference-product coverage of the truth outside 85-95 % in a
    layer (``truth_skill.json``), or under 85 % in the months no station of the cell's region
    observes where the whole is on target, significant effects whose sign disagrees with the
    truth in more than 5 % of the cells with the calibrated spread, pooled
    (``analysis/analyze_summary.json``)."""
    out = []
    product = (_read_json(run_dir / "truth_skill.json") or {}).get("product", {})
    off, off_season = [], []
    for k in range(1, 6):
        coverage = product.get(f"layer{k}", {}).get("interval90_coverage") or {}
        value = _finite(coverage.get("calibrated"))
        if value is not None and not 0.85 <= value <= 0.95:
            # one decimal: 0.847 is not "85 %" in a sentence about missing 85 %
            off.append(f"layer {k}: {100 * value:.1f} %{_season_split(coverage)}")
            continue
        split = season_coverage(coverage)
        if value is not None and split is not None and split[1] < 0.85:
            off_season.append(f"layer {k}: {100 * split[1]:.1f} %")
    if off:
        out.append(
            "The calibrated 90 % intervals of the reference product miss their target (85-95 % "
            "of the truth inside): " + ", ".join(off) + "."
        )
    if off_season:
        out.append(
            "In the months no station of a cell's region observes (season_flag 0), where the "
            "networks extrapolate, the calibrated 90 % intervals of the reference product hold "
            "less than 85 % of the truth: " + ", ".join(off_season) + "."
        )
    summary = _read_json(run_dir / "analysis" / "analyze_summary.json") or {}
    calibration = (summary.get("ran", {}).get("truth") or {}).get("effect_calibration") or {}
    # the significance the maps show: |mean| > 2 x the calibrated spread
    sign = _finite(calibration.get("pooled_significant_sign_agreement_calibrated"))
    if sign is not None and sign < 0.95:
        out.append(
            f"Significant scenario effects have the true sign in {100 * sign:.0f} % of the "
            f"{calibration.get('pooled_significant_cells_calibrated')} significant cells (every "
            "pattern and layer, calibrated spread; target 95 %): the ensemble spread, even "
            "calibrated, understates the effects' error."
        )
    return out


def _years_of_run(run_dir: Path) -> tuple[int | None, str | None]:
    """Number of years of the product (else of the stations) and their label."""
    national = _read_csv(run_dir / "analysis" / "product_national_summary.csv")
    summary = _read_json(run_dir / "analysis" / "analyze_summary.json") or {}
    label = (summary.get("ran", {}).get("product") or {}).get("years")
    if national is not None and "n_years" in national and len(national):
        return int(national["n_years"].max()), label
    obs = _read_json(run_dir / "analysis" / "observations_summary.json")
    if obs is not None and obs.get("top_bottom_years") is not None:
        return int(obs["top_bottom_years"]), label
    return None, label


def warnings_for_run(
    run_dir: Path,
    skill: list[LayerSkill] | None = None,
    effects: list[ScenarioEffect] | None = None,
) -> list[str]:
    """The honest warnings of a run, each one sentence, most important first."""
    skill = layer_skill(run_dir) if skill is None else skill
    effects = scenario_effects(run_dir) if effects is None else effects
    out = []
    n_years, label = _years_of_run(run_dir)
    if n_years is not None and n_years < MIN_YEARS_FOR_TREND:
        out.append(
            f"Period too short for trends: {n_years} year{'s' if n_years != 1 else ''}"
            + (f" ({label})" if label else "")
            + f", fewer than the {MIN_YEARS_FOR_TREND} a trend needs; no trend is shown as a "
            f"result (stations, product, satellite), and the paper's "
            f"{_number(paper.MEAN_TREND_M3_M3_PER_YEAR)} m3 m-3 yr-1 has no counterpart here."
        )
    beaten = [s for s in skill if _beats(s.best_baseline_r2_test, s.product_r2_test)]
    if beaten:
        names = sorted({BASELINE_NAMES.get(s.best_baseline, s.best_baseline) for s in beaten})
        detail = ", ".join(
            f"layer {s.layer}: {_number(s.best_baseline_r2_test)} vs {_number(s.product_r2_test)}"
            for s in beaten
        )
        out.append(
            f"A baseline beats the networks on the test rows: {' and '.join(names)} (R² {detail})."
        )
    gaps = [
        s
        for s in skill
        if s.r2_test is not None
        and s.truth_r2_networks is not None
        and s.r2_test - s.truth_r2_networks > STATION_TRUTH_GAP
    ]
    if gaps:
        detail = ", ".join(
            f"layer {s.layer}: {_number(s.r2_test)} at test rows, "
            f"{_number(s.truth_r2_networks)} vs truth"
            for s in gaps
        )
        out.append(
            "Skill at the stations overstates skill away from them (" + detail + "): the "
            "test rows come from the training stations."
        )
    wrong = [e for e in effects if e.verdict.startswith("opposite sign")]
    exaggerated = [e for e in effects if e.verdict.startswith("exaggerated")]
    if wrong or exaggerated:
        parts = []
        if exaggerated:
            parts.append("exaggerated: " + ", ".join(e.pattern for e in exaggerated))
        if wrong:
            parts.append("opposite sign: " + ", ".join(e.pattern for e in wrong))
        out.append(
            "Scenario effects (0-10 cm, all of China) disagree with the truth: "
            + "; ".join(parts)
            + "."
        )
    maps_warning = scenario_maps_warning(run_dir)
    if maps_warning:
        out.append(maps_warning)
    rare = [e for e in effects if e.significant_share is not None and e.significant_share < 0.5]
    if rare:
        out.append(
            "Scenario effects significant (ensemble mean larger than twice its calibrated "
            "spread) in less "
            "than half of the cropland (0-10 cm): "
            + ", ".join(f"{e.pattern} {100 * e.significant_share:.0f} %" for e in rare)
            + "; Fig. 9 greys the other cells."
        )
    out += uncertainty_warnings(run_dir)
    weak = [e for e in effects if "within the networks' error" in e.verdict]
    if weak:
        out.append(
            "Scenario effects not significant: no ensemble spread is stored, and the effects of "
            + ", ".join(e.pattern for e in weak)
            + " are smaller than the top layer's test RMSE."
        )
    summary = _read_json(run_dir / "analysis" / "analyze_summary.json") or {}
    small = summary.get("small_regions") or {}
    if small:
        listed = ", ".join(f"{r} ({n} cell{'s' if n != 1 else ''})" for r, n in small.items())
        out.append(
            f"Regions with fewer than {summary.get('min_region_cells', MIN_REGION_CELLS)} "
            f"cropland cells are not averaged or plotted as regions: {listed}; their cells "
            "still count in all of China."
        )
    return out


def scenario_maps_warning(run_dir: Path) -> str | None:
    """A warning when the effect maps miss the truth (virtual China), else None.

    Over the pattern-flag-1 maps of every pattern and layer
    (``analysis/truth_scenario_agreement.csv``): the warning names the medians of sign
    agreement, r and slope and how many maps meet the target (sign >= 0.9, r >= 0.7, slope
    0.7-1.3, :func:`cropsm.analyze.scenarios.meets_target`).
    """
    from cropsm.analyze.scenarios import meets_target

    agreement = _read_csv(run_dir / "analysis" / "truth_scenario_agreement.csv")
    if agreement is None or "pattern_flag" not in agreement.columns:
        return None
    rows = agreement[(agreement["pattern_flag"].astype(str) == "1") & (agreement["cells"] > 0)]
    if rows.empty:
        return None
    met = sum(
        meets_target(r["sign_agreement"], r["pearson_r"], r["slope"])
        for r in rows.to_dict("records")
    )
    if met == len(rows):
        return None
    return (
        f"Scenario effect maps do not reproduce the truth: {met} of {len(rows)} maps (every "
        "pattern and layer, cells whose region has stations with the pattern) meet sign "
        "agreement >= 0.9, r >= 0.7 and slope 0.7-1.3; medians: sign "
        f"{_number(rows['sign_agreement'].median())}, r {_number(rows['pearson_r'].median())}, "
        f"slope {_number(rows['slope'].median())}. Read the pattern maps as indicative only."
    )


def _beats(baseline: float | None, network: float | None) -> bool:
    return baseline is not None and network is not None and baseline > network


# --------------------------------------------------------------------------------------------
# the HTML
# --------------------------------------------------------------------------------------------


def _number(value: float | None) -> str:
    """A number in the report's one format (:func:`cropsm.report.html.fmt`)."""
    from cropsm.report.html import fmt

    return fmt(value)


def _r2(value: float | None) -> str:
    return "–" if value is None else _number(value)


def _signed(value: float | None) -> str:
    return "–" if value is None else ("+" if value > 0 else "") + _number(value)


def key_results_html(run_dir: str | Path, esc) -> str:
    """The key-results box (``<section id="key-results">``); ``esc`` escapes text."""
    run_dir = Path(run_dir)
    skill = layer_skill(run_dir)
    effects = scenario_effects(run_dir)
    warnings = warnings_for_run(run_dir, skill, effects)
    parts = []
    if skill:
        has_truth = any(s.truth_r2_networks is not None for s in skill)
        has_product = any(s.truth_r2_product is not None for s in skill)
        has_ensemble = any(s.ensemble_r2_test is not None for s in skill)
        header = ["layer", "R² test"] + (["ensemble mean"] if has_ensemble else [])
        header += ["paper", "best baseline"]
        if has_truth:
            header.append("vs truth, no-station cells")
        if has_product:
            header.append("product vs truth")
        rows = []
        for s in skill:
            baseline = (
                "–"
                if s.best_baseline is None
                else f"{_r2(s.best_baseline_r2_test)} "
                f"{BASELINE_NAMES.get(s.best_baseline, s.best_baseline)}"
            )
            cls = ' class="bad"' if _beats(s.best_baseline_r2_test, s.product_r2_test) else ""
            cells = [
                f"<td>{s.layer} ({esc(depth_label(s.layer))})</td>",
                f"<td>{_r2(s.r2_test)}</td>",
            ]
            if has_ensemble:
                cells.append(f"<td>{_r2(s.ensemble_r2_test)}</td>")
            cells += [f"<td>{_r2(s.paper_r2_test)}</td>", f"<td{cls}>{esc(baseline)}</td>"]
            if has_truth:
                cells.append(f"<td>{_r2(s.truth_r2_networks)}</td>")
            if has_product:
                cells.append(f"<td>{_r2(s.truth_r2_product)}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        head = "".join(f"<th>{esc(h)}</th>" for h in header)
        parts.append(
            '<div class="kr-part"><h3>Skill per layer (R²)</h3>'
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    else:
        parts.append('<div class="kr-part"><h3>Skill</h3><p>No trained networks yet.</p></div>')
    if effects:
        has_truth = any(e.true_effect is not None for e in effects)
        header = ["pattern", "effect"] + (["truth", "same sign"] if has_truth else [])
        header.append("verdict")
        rows = []
        for e in effects:
            bad = e.verdict.startswith(("opposite", "exaggerated"))
            cells = [f"<td>{esc(pattern_label(e.pattern))}</td>", f"<td>{_signed(e.effect)}</td>"]
            if has_truth:
                share = "–" if e.sign_agreement is None else f"{100 * e.sign_agreement:.0f} %"
                cells += [f"<td>{_signed(e.true_effect)}</td>", f"<td>{share}</td>"]
            cells.append(f"<td{' class=bad' if bad else ''}>{esc(e.verdict)}</td>")
            rows.append("<tr>" + "".join(cells) + "</tr>")
        head = "".join(f"<th>{esc(h)}</th>" for h in header)
        parts.append(
            '<div class="kr-part"><h3>Cropping patterns: effect on 0-10 cm SM, all of China '
            "(pattern minus reference, m3 m-3)</h3>"
            f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    if warnings:
        items = "".join(f"<li>{esc(w)}</li>" for w in warnings)
        parts.append(f'<div class="kr-warnings"><h3>Warnings</h3><ul>{items}</ul></div>')
    else:
        parts.append('<div class="kr-warnings"><h3>Warnings</h3><p>None from this run.</p></div>')
    return (
        '<section id="key-results"><h2>Key results</h2>'
        f'<div class="kr-grid">{"".join(parts)}</div></section>'
    )


KEY_RESULTS_STYLE = """
#key-results{border:2px solid #345;border-radius:6px;padding:.2em 1em .6em;margin:.6em 0 1em;
background:#f7fafc}
#key-results h2{margin:.3em 0;border:none}
#key-results h3{font-size:.95em;margin:.4em 0 .2em}
#key-results table{font-size:.82em;margin:.2em 0}
#key-results td,#key-results th{padding:.12em .45em}
.kr-grid{display:grid;grid-template-columns:1fr 1fr;gap:.2em 1.2em}
.kr-warnings{grid-column:1 / -1}
.kr-warnings ul{margin:.2em 0;padding-left:1.2em;font-size:.86em;color:#7a1f1f}
td.bad{color:#a01818;font-weight:bold}
#key-results td.verdict{text-align:left}
"""
