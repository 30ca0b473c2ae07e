"""The report page: built from full, minimal and broken run directories; rendered in Chromium."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from cropsm import paper as reference
from cropsm.report import key_results
from cropsm.report.html import render_report, report_summary, write_report

HOSTILE_NAME = 'tiny <script>alert("x")</script> & co'


def save_png(path: Path, colour: str = "tab:blue") -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2.0, 1.5), dpi=50)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot([0, 1, 2], [0, 1, 0], color=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def layer_metrics(r2: float) -> dict:
    m = {"r2": r2, "rmse": 0.05, "ubrmse": 0.049, "bias": 0.001, "r": 0.9, "n": 100}
    return {"train": m, "validation": m, "test": m}


@pytest.fixture
def full_run(tmp_path) -> Path:
    """A run directory with (small stand-ins for) every file the report reads."""
    run = tmp_path / "run"
    (run / "stages").mkdir(parents=True)
    (run / "config.resolved.toml").write_text(
        f'[run]\nname = "{HOSTILE_NAME.replace(chr(34), "")}"\n'
    )
    write_json(
        run / "provenance.json",
        {
            "cropsm_version": "0.1.0",
            "git_commit": "abc123",
            "seeds": {"run": 0, "twin": 0},
            "versions": {"numpy": "2.0"},
            "command": "cropsm run x.toml",
            "started_at": "2026-01-01",
            "host": {"cpus": 2},
        },
    )
    for name, seconds in (("inputs", 2.0), ("train", 10.0)):
        write_json(run / "stages" / f"{name}.json", {"fingerprint": "f", "seconds": seconds})
    write_json(run / "run_summary.json", {"inputs": {"status": "ran", "seconds": 2.0}})
    write_json(
        run / "inputs" / "twin-tiny-seed0" / "twin.json",
        {
            "preset": "tiny",
            "seed": 0,
            "grid": {"n_lat": 2, "n_lon": 2, "resolution_deg": 0.5},
            "period": {"climate": ["2011-01-01", "2013-12-31"]},
            "stations": 30,
            "stations_by_region": {"HHH": 21, "C": 9},
        },
    )
    (run / "table2.csv").write_text(
        "layer,hidden_layers,units,batch_size,learning_rate,r2_train,r2_validation,r2_test\n"
        + "".join(f"{k},2,32,128,0.005,0.8{k},0.7,0.7{k}\n" for k in range(1, 6))
    )
    metrics = {"split": "random", **{f"layer{k}": layer_metrics(0.7) for k in range(1, 6)}}
    metrics["baselines"] = {
        "climatology": {f"layer{k}": layer_metrics(0.6) for k in range(1, 6)},
        "linear": {f"layer{k}": layer_metrics(0.4) for k in range(1, 6)},
    }
    write_json(run / "metrics.json", metrics)
    write_json(
        run / "truth_skill.json",
        {
            "what": "pseudo-stations",
            "cells": 10,
            "dates": 5,
            "layer1": {
                "reference": {"r2": 0.71, "rmse": 0.06, "bias": 0.0, "n": 50},
                "all_patterns": {"r2": 0.63, "rmse": 0.07},
            },
        },
    )
    analysis = run / "analysis"
    analysis.mkdir()
    (analysis / "truth_product_error.csv").write_text(
        "scenario,layer,region,rmse_m3_m-3,bias_m3_m-3,n\n"
        "reference,1,HHH,0.015,0.001,100\nreference,2,HHH,0.012,0.0,100\n"
        "reference,1,NE,,,0\nreference,2,NE,,,0\n"
    )
    (analysis / "truth_scenario_agreement.csv").write_text(
        "pattern,layer,sign_agreement,pearson_r,product_mean_m3_m-3,true_mean_m3_m-3,cells\n"
        "ww_fl,1,0.93,0.88,-0.01,-0.012,150\n"
    )
    (analysis / "observations_summary.json").write_text(
        json.dumps({"mean_trend_all_layers_m3_m-3_yr-1": -0.0012, "top_bottom_r": 0.8})
    )
    (analysis / "product_national_summary.csv").write_text(
        "layer,mean_sm_m3_m-3,sen_slope_m3_m-3_yr-1,pearson_r_with_layer1,n_years\n"
        "1,0.2,-0.001,1.0,10\n5,0.25,-0.002,0.9,10\n"
    )
    (run / "attribution").mkdir()
    (run / "attribution" / "station_r2_loss.csv").write_text(
        "layer,group,label,r2_loss_train,r2_loss_test,rank\n1,precipitation,P,0.12,0.1,1\n"
        "1,soil,Soil,0.1,0.09,2\n2,soil,Soil,0.2,0.2,1\n"
    )
    for name in (
        "scatter_layer1",
        "scatter_layer2",
        "fig5_r2_loss_layer1",
        "fig7ab_product_layer1",
        "fig7cf_satellite_comparison",
        "fig9_scenario_differences",
        "truth_product_error",
        "zzz_custom_plot",
    ):
        save_png(run / "figures" / f"{name}.png")
    return run


def test_report_from_a_full_run(full_run):
    path = write_report(full_run)
    assert path == full_run / "report" / "index.html"
    page = path.read_text(encoding="utf-8")
    n_png = len(list((full_run / "figures").glob("*.png")))
    assert page.count("<img ") == n_png == report_summary(path)["figures"]
    assert page.count('src="data:image/png;base64,') == n_png
    # each figure once, in its section; leftovers under 'Other figures'
    assert page.index("scatter_layer2.png") < page.index('id="observations"')
    assert page.index("zzz_custom_plot.png") > page.index('id="other"')
    # the paper's numbers beside ours
    assert "0.650" in page and "0.640" in page  # Table 2 layer 1
    assert "-0.00150" in page  # the paper's mean trend, in the report's one number format
    assert f"{reference.TOP_BOTTOM_R:.3f}" in page
    assert reference.FIG5_NOTES["precipitation"] in page
    assert "random split" in page.lower() or "split is random" in page
    assert "climatology R² test" in page
    assert "truth_skill.json" in page and "0.930" in page  # sign agreement
    assert "abc123" in page and "seconds (last run of the stage)" in page
    # escaped, self-contained
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert" in page
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page


def add_key_result_inputs(run: Path) -> None:
    """A short run where a baseline beats the networks in layer 1, one scenario effect is
    exaggerated and one has the wrong sign, and one region is too small."""
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["layer2"] = layer_metrics(0.72)
    metrics["baselines"]["gradient_boosting"] = {
        "layer1": layer_metrics(0.81),
        **{f"layer{k}": layer_metrics(0.5) for k in range(2, 6)},
    }
    write_json(run / "metrics.json", metrics)
    (run / "analysis" / "product_national_summary.csv").write_text(
        "layer,mean_sm_m3_m-3,sen_slope_m3_m-3_yr-1,pearson_r_with_layer1,n_years\n"
        "1,0.2,,,2\n5,0.25,,,2\n"
    )
    (run / "analysis" / "truth_scenario_agreement.csv").write_text(
        "pattern,layer,sign_agreement,pearson_r,product_mean_m3_m-3,true_mean_m3_m-3,cells\n"
        "ww_fl,1,0.97,0.5,-0.055,-0.013,159\n"
        "rs_ct,1,0.48,0.02,-0.026,0.001,159\n"
        "fl_mz,1,0.66,0.6,-0.0093,-0.0099,159\n"
    )
    write_json(
        run / "analysis" / "analyze_summary.json",
        {
            "ran": {
                "product": {"years": "2012-2013"},
                "scenarios": {
                    "mean_layer1_difference_m3_m-3": {
                        "ww_fl": -0.055, "rs_ct": -0.026, "fl_mz": -0.0093,
                    }
                },
            },
            "skipped": {},
            "small_regions": {"N": 1},
            "min_region_cells": 10,
        },
    )  # fmt: skip


def test_key_results_come_first_with_skill_verdicts_and_warnings(full_run):
    from cropsm.report.key_results import scenario_effects, warnings_for_run

    add_key_result_inputs(full_run)
    page = render_report(full_run)
    key = page.index('id="key-results"')
    assert page.index("<h1>") < key < page.index("<nav>") < page.index('id="inputs"')
    box = page[key : page.index("</section>", key)]
    # skill per layer: ours, the paper's Table 2, the best baseline, the truth
    assert "1 (0-10 cm)" in box and "0.700" in box and "0.640" in box
    assert "0.810 gradient boosting" in box and 'class="bad"' in box
    assert "0.710" in box  # networks against the truth at cells without a station
    effects = {e.pattern: e for e in scenario_effects(full_run)}
    assert effects["ww_fl"].verdict.startswith("exaggerated 4.2x")
    assert effects["rs_ct"].verdict.startswith("opposite sign")
    assert effects["fl_mz"].verdict.startswith("agrees with the truth")
    assert "rapeseed + cotton/potato/fallow (rs_ct)" in box and "97 %" in box
    warnings = warnings_for_run(full_run)
    assert warnings[0].startswith("Period too short for trends: 2 years (2012-2013)")
    assert any("gradient boosting" in w and "layer 1: 0.810 vs 0.700" in w for w in warnings)
    assert not any("layer 2:" in w for w in warnings if "baseline" in w)  # 0.5 < 0.72
    assert any("exaggerated: ww_fl; opposite sign: rs_ct" in w for w in warnings)
    assert any("N (1 cell)" in w for w in warnings)
    for w in warnings:
        assert html.escape(w, quote=True) in box
    # the product's two-year trend is not shown as a result beside the paper's
    assert "none: 2 years, fewer than the 5 a trend needs" in page


def test_one_number_format():
    from cropsm.report.html import fmt

    assert [fmt(v) for v in (0.8193, 0.0651, -0.0015, 6.51e-3, 68.5, 12, 3e-6, 2.5e6)] == [
        "0.819", "0.0651", "-0.00150", "0.00651", "68.500", "12", "3.00e-06", "2.50e+06",
    ]  # fmt: skip


def test_scenario_verdicts():
    from cropsm.report.key_results import scenario_verdict

    assert scenario_verdict(-0.05, -0.01, None) == "exaggerated 5.0x vs the truth"
    assert scenario_verdict(-0.019, -0.01, None) == "agrees with the truth"
    assert scenario_verdict(0.004, -0.01, None) == "opposite sign to the truth"
    assert scenario_verdict(-0.004, -0.01, None) == "understated vs the truth"
    weak = scenario_verdict(-0.01, None, 0.05)
    assert weak == "not checked (no truth); within the networks' error"
    assert scenario_verdict(-0.1, None, 0.05) == "not checked (no truth)"


def test_report_from_an_empty_run_dir_says_what_is_missing(tmp_path):
    run = tmp_path / "bare"
    run.mkdir()
    page = write_report(run).read_text(encoding="utf-8")
    assert "<img " not in page
    for text in (
        "No table2.csv",
        "No metrics.json",
        "No inputs summary",
        "No provenance.json",
        "No truth to compare with",
        "No satellite comparison",
        "No scenario analyses",
    ):
        assert text in page, text
    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "nowhere")


def test_a_broken_input_costs_only_its_section(full_run):
    (full_run / "metrics.json").write_text("{not json", encoding="utf-8")
    (full_run / "analysis" / "analyze_summary.json").write_text(
        json.dumps({"ran": {}, "skipped": {"satellite": "the run has no satellite product"}})
    )
    page = render_report(full_run)
    assert "This section could not be built" in page
    assert "the run has no satellite product" in page
    assert page.count("<img ") == len(list((full_run / "figures").glob("*.png")))


def test_report_command(full_run):
    import typer
    from rich.console import Console
    from typer.testing import CliRunner

    from cropsm.report.commands import register

    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """test app"""

    register(app, lambda f: f, Console(width=200))
    result = CliRunner().invoke(app, ["report", str(full_run)])
    assert result.exit_code == 0, result.output
    assert (full_run / "report" / "index.html").exists()


# ------------------------------------------------------------------------------------------
# In a real browser
# ------------------------------------------------------------------------------------------


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


CHROMIUM = find_chromium()


FIRST_SCREEN_PX = 900
"""Height of the first screen the key results must fit in (a 1280 x 900 window)."""


def dump_dom(page: Path, profile: Path) -> str:
    """The page's DOM after its load event, from headless Chromium (no network, no sync)."""
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        f"--window-size=1280,{FIRST_SCREEN_PX}",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def render_counts(dom: str) -> tuple[int, int, list[str]]:
    summary = re.search(r'id="render-summary"[^>]*', dom)
    assert summary, "the render check script did not run"
    images = int(re.search(r'data-images="(\d+)"', summary.group(0)).group(1))
    rendered = int(re.search(r'data-rendered="(\d+)"', summary.group(0)).group(1))
    failed = re.findall(r'<img[^>]*data-file="([^"]+)"[^>]*data-loaded="no"', dom)
    failed += re.findall(r'<img[^>]*data-loaded="no"[^>]*data-file="([^"]+)"', dom)
    return images, rendered, failed


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")
def test_every_figure_renders_in_chromium(full_run, tmp_path):
    page = write_report(full_run)
    n_png = len(list((full_run / "figures").glob("*.png")))
    images, rendered, failed = render_counts(dump_dom(page, tmp_path / "profile"))
    assert failed == []
    assert images == rendered == n_png
    # the check can fail: a PNG whose chunks are garbage (signature and end intact, so the
    # report embeds it) does not render
    (full_run / "figures" / "fig9_scenario_differences.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + b"not a png at all" * 4 + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    )
    images, rendered, failed = render_counts(dump_dom(write_report(full_run), tmp_path / "p2"))
    assert images == n_png and rendered == n_png - 1
    assert failed == ["fig9_scenario_differences.png"]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium not installed (apt-get install chromium)")
def test_first_screen_holds_the_key_results(full_run, tmp_path):
    """In a 1280 x 900 window the key-results box starts under the title and ends on screen."""
    add_key_result_inputs(full_run)
    dom = dump_dom(write_report(full_run), tmp_path / "profile")
    box = re.search(r'<section id="key-results"[^>]*>', dom)
    assert box, "no key-results box"
    top = int(re.search(r'data-top="(\d+)"', box.group(0)).group(1))
    bottom = int(re.search(r'data-bottom="(\d+)"', box.group(0)).group(1))
    assert 0 < top < 150 and top < bottom <= FIRST_SCREEN_PX, (top, bottom)
    # it holds the three parts, with this run's numbers
    section = dom[box.start() : dom.index("</section>", box.start())]
    assert "Skill per layer" in section and "0.720" in section  # layer 2's R² test
    assert "winter wheat + fallow (ww_fl)" in section and "exaggerated" in section
    assert "Period too short for trends" in section


def test_grid_search_sentence_counts_pruned_configurations():
    import pandas as pd

    from cropsm.report.html import grid_search_sentence

    grid = pd.DataFrame({"layer": [1] * 6 + [2] * 6, "pruned_at_epoch": [0, 5, 5, 5, 15, 0] * 2})
    text = grid_search_sentence(grid)
    assert "6 configurations per layer" in text
    assert "3 after epoch 5, 1 after epoch 15, and 2 trained" in text
    exhaustive = grid_search_sentence(grid.assign(pruned_at_epoch=0))
    assert "every configuration trained" in exhaustive
    assert "every configuration trained" in grid_search_sentence(
        grid.drop(columns="pruned_at_epoch")
    )


def test_grid_search_sentence_names_a_selection_tolerance():
    import pandas as pd

    from cropsm.report.html import grid_search_sentence

    grid = pd.DataFrame(
        {
            "layer": [1] * 3 + [2] * 3,
            "validation_mse": [1.0, 1.01, 1.2] * 2,
            "selected": [True, False, False] * 2,
        }
    )
    assert "tolerance" not in grid_search_sentence(grid)
    grid["selected"] = [False, True, False, True, False, False]  # layer 1: 1.0 % above the best
    assert "at most 1.0 % above the best" in grid_search_sentence(grid)


def test_the_paper_is_cited_one_way(full_run):
    """README, report, product attributes and code cite the paper from cropsm.paper.CITATION."""
    from cropsm.predict.product import PAPER_REFERENCE

    root = Path(__file__).resolve().parents[1]
    readme = " ".join((root / "README.md").read_text(encoding="utf-8").split())
    assert reference.CITATION in readme
    assert html.escape(reference.CITATION, quote=True) in render_report(full_run)
    assert PAPER_REFERENCE.startswith(reference.CITATION)
    for path in [root / "README.md", *sorted((root / "src").rglob("*.py"))]:
        text = path.read_text(encoding="utf-8")
        assert "Liu, Y." not in text, path  # no second spelling of the reference


def test_scenario_maps_warning_counts_flag_one_maps_meeting_the_target(tmp_path):
    from cropsm.report.key_results import scenario_maps_warning

    (tmp_path / "analysis").mkdir()
    table = pd.DataFrame(
        {
            "pattern": ["ww_fl", "ww_fl", "ww_mz", "ww_mz"],
            "layer": [1, 2, 1, 1],
            "pattern_flag": ["1", "1", "1", "0"],
            "cells": [40, 40, 30, 50],
            "sign_agreement": [0.95, 0.6, 0.92, 0.1],
            "pearson_r": [0.8, 0.2, 0.75, -0.5],
            "slope": [1.1, 0.1, 0.9, -1.0],
        }
    )
    path = tmp_path / "analysis" / "truth_scenario_agreement.csv"
    table.to_csv(path, index=False)
    warning = scenario_maps_warning(tmp_path)
    assert warning.startswith("Scenario effect maps do not reproduce the truth: 2 of 3 maps")
    assert "sign 0.920, r 0.750, slope 0.900" in warning  # medians of the flag-1 maps only
    table.loc[1, ["sign_agreement", "pearson_r", "slope"]] = [0.91, 0.71, 1.29]
    table.to_csv(path, index=False)
    assert scenario_maps_warning(tmp_path) is None
    assert scenario_maps_warning(tmp_path / "elsewhere") is None


def test_report_states_significance_and_interval_coverage(full_run):
    write_json(
        full_run / "models" / "ensemble.json",
        {
            "members": 5,
            "layers": {
                f"layer{k}": {
                    "residual_sd_m3_m-3": 0.02,
                    "coverage_test_raw": 0.61,
                    "coverage_test_calibrated": 0.893,
                }
                for k in range(1, 6)
            },
        },
    )
    skill = json.loads((full_run / "truth_skill.json").read_text())
    skill["product"] = {
        "layer1": {
            "interval90_coverage": {
                "raw": 0.581,
                "calibrated": 0.917,
                "pairs": 10,
                "observed_season": {"calibrated": 0.932, "rmse": 0.02, "pairs": 8},
                "outside_season": {"calibrated": 0.857, "rmse": 0.05, "pairs": 2},
            }
        }
    }
    skill["station_days"] = {"layer2": {"test": {"coverage_truth": 0.963}}}
    write_json(full_run / "truth_skill.json", skill)
    (full_run / "analysis" / "scenario_monthly_differences.csv").write_text(
        "pattern,layer,region,month,sm_difference_m3_m-3\nww_fl,1,CHN,1,0.01\n"
    )
    (full_run / "analysis" / "scenario_significant_share.csv").write_text(
        "pattern,layer,share_significant,share_significant_calibrated\n"
        "ww_fl,1,0.437,0.212\nww_fl,2,0.1,0.05\n"
    )
    (full_run / "analysis" / "truth_effect_calibration.csv").write_text(
        "pattern,layer,cells,coverage90_raw,share_significant_raw,"
        "significant_sign_agreement_raw,coverage90_calibrated,share_significant_calibrated,"
        "significant_sign_agreement_calibrated\nww_fl,1,159,0.702,0.4,0.973,0.884,0.2,0.951\n"
    )
    page = write_report(full_run).read_text(encoding="utf-8")
    assert "Share of cropland cells where each pattern" in page
    assert "0.437" in page and "0.212" in page and "0.131" in page  # 0.131: mean of layers
    assert "90 % interval coverage" in page and "5 ensemble members" in page
    for number in ("0.581", "0.917", "0.610", "0.893", "0.702", "0.884", "0.951", "0.963"):
        assert number in page, number
    # inside / outside the months the stations observe, with the share of cell-days outside
    assert "0.932" in page and "0.857 (20 %)" in page and "other months" in page
    assert "test rows: truth, calibrated" in page and "station_days" in page


def test_key_results_use_the_ensemble_significance(full_run):
    add_key_result_inputs(full_run)
    summary = json.loads((full_run / "analysis" / "analyze_summary.json").read_text())
    summary["ran"]["scenarios"]["significance"] = {
        "members": 5,
        "share_significant_layer1": {"ww_fl": 0.9, "rs_ct": 0.3, "fl_mz": 0.8},
        # the calibrated spread's shares are the ones the maps and the verdicts use
        "share_significant_calibrated_layer1": {"ww_fl": 0.8, "rs_ct": 0.1, "fl_mz": 0.6},
    }
    summary["ran"]["truth"] = {
        "effect_calibration": {
            "pooled_significant_sign_agreement_raw": 0.8,
            "pooled_significant_cells_raw": 2000,
            "pooled_significant_sign_agreement_calibrated": 0.9,
            "pooled_significant_cells_calibrated": 958,
        }
    }
    write_json(full_run / "analysis" / "analyze_summary.json", summary)
    skill = json.loads((full_run / "truth_skill.json").read_text())
    skill["product"] = {
        "layer1": {
            "interval90_coverage": {
                "raw": 0.5,
                "calibrated": 0.9,  # on target as a whole, not in the unobserved months
                "observed_season": {"calibrated": 0.93, "pairs": 300},
                "outside_season": {"calibrated": 0.831, "pairs": 100},
            }
        },
        "layer2": {
            "interval90_coverage": {
                "raw": 0.6,
                "calibrated": 0.97,
                "observed_season": {"calibrated": 0.98, "pairs": 300},
                "outside_season": {"calibrated": 0.92, "pairs": 100},
            }
        },
    }
    write_json(full_run / "truth_skill.json", skill)
    effects = {e.pattern: e for e in key_results.scenario_effects(full_run)}
    assert effects["rs_ct"].verdict.endswith("significant in 10 % of cropland")
    assert "within the networks' error" not in effects["fl_mz"].verdict
    warnings = key_results.warnings_for_run(full_run)
    text = " ".join(warnings)
    assert "less than half of the cropland (0-10 cm): rs_ct 10 %" in text
    missed = [w for w in warnings if "miss their target" in w]
    assert len(missed) == 1 and "layer 2: 97.0 %" in missed[0] and "layer 1" not in missed[0]
    assert "(98 % in the months the region's stations observe, 92 % in the other 25 %" in text
    season = [w for w in warnings if "season_flag 0" in w]
    assert len(season) == 1 and season[0].endswith("less than 85 % of the truth: layer 1: 83.1 %.")
    assert "true sign in 90 % of the 958 significant cells" in text


def test_key_results_judge_the_baselines_against_the_ensemble_mean(full_run):
    """With a deep ensemble the product holds the members' mean: the box shows its test R²
    beside the selected network's, and a baseline 'beats the networks' only if it beats it."""
    from cropsm.report.key_results import layer_skill, warnings_for_run

    add_key_result_inputs(full_run)  # gradient boosting 0.810 beats layer 1's network (0.700)
    layers = {
        "layer1": {"members": 3, "ensemble_mean_test": {"r2": 0.8234}},
        "layer2": {"members": 3, "ensemble_mean_test": {"r2": 0.7412}},
    }
    write_json(full_run / "models" / "ensemble.json", {"members": 3, "layers": layers})
    skill = {s.layer: s for s in layer_skill(full_run)}
    assert skill[1].ensemble_r2_test == pytest.approx(0.8234)
    assert skill[1].product_r2_test == pytest.approx(0.8234) and skill[3].ensemble_r2_test is None
    assert not any("baseline beats" in w for w in warnings_for_run(full_run))
    page = render_report(full_run)
    box = page[page.index('id="key-results"') :]
    box = box[: box.index("</section>")]
    assert "ensemble mean" in box and "0.823" in box and 'class="bad"' not in box
    # one network only: the column is left out and the warning stands
    write_json(full_run / "models" / "ensemble.json", {"members": 1, "layers": {}})
    assert any("layer 1: 0.810 vs 0.700" in w for w in warnings_for_run(full_run))


def test_a_damaged_figure_or_json_is_named_not_embedded(full_run):
    (full_run / "figures" / "fig9_scenario_differences.png").write_bytes(b"not a png at all")
    (full_run / "run_summary.json").write_text('{"inputs": {"status": "ran", "sec')
    page = write_report(full_run).read_text(encoding="utf-8")
    assert "figures/fig9_scenario_differences.png is not a whole PNG image (16 bytes)" in page
    assert 'data-file="fig9_scenario_differences.png"' not in page
    assert "run_summary.json: cannot be read (Unterminated string" in page
    from typer.testing import CliRunner

    from cropsm.cli import app

    result = CliRunner().invoke(app, ["report", str(full_run)])
    assert result.exit_code == 0
    assert "warning: 2 part(s) of the report could not be built" in result.stderr
