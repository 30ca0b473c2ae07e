"""Input sources as plug-ins, the run layout, and the import graph they keep acyclic."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from cropsm.config import parse_config
from cropsm.errors import ConfigError, UsageError
from cropsm.run_layout import RunLayout, load_run_config
from cropsm.sources import (
    PROVIDABLE,
    SOURCES,
    EvaluationRequest,
    check_evaluation_format,
    grid_input_paths,
    lacking,
    provided,
    source_of,
)

SRC = Path(__file__).resolve().parents[1] / "src" / "cropsm"

SECTIONS = {
    "twin": {"preset": "tiny"},
    "files": {"stations": "s.csv", "observations": "o.csv", "climate": ["c/*.nc"]},
    "uscrn": {"root": "uscrn"},
    "ismn": {"root": "ismn", "climate": ["era5/*.nc"]},
}


def config_of(name: str, **extra):
    return parse_config({"inputs": {name: {**SECTIONS[name], **extra}}}, Path("/x/run.toml"))


def test_every_config_section_is_a_registered_source_and_says_what_it_provides() -> None:
    from cropsm.config import InputsSection

    assert set(InputsSection.model_fields) == set(SOURCES)
    assert provided(config_of("twin")) == frozenset(PROVIDABLE)
    assert provided(config_of("files")) == {"patterns"}
    assert provided(config_of("files", static="st.nc", satellite=["sat/*.nc"])) == {
        "grid", "soil", "patterns", "satellite"
    }  # fmt: skip
    assert provided(config_of("uscrn")) == frozenset()
    assert provided(config_of("ismn")) == {"soil"}
    assert lacking(config_of("uscrn"), ("grid",)) == "the uscrn input has no grid"
    assert lacking(config_of("ismn"), ("grid", "patterns")) == (
        "the ismn input has no grid and no patterns"
    )
    assert lacking(config_of("twin"), ("grid", "truth")) is None


def test_paths_resolve_against_the_config_folder_and_one_source_only() -> None:
    ismn = config_of("ismn").inputs
    assert ismn.source == "ismn"
    assert ismn.section.root == Path("/x/ismn")
    assert ismn.section.climate == ["/x/era5/*.nc"]
    with pytest.raises(ConfigError, match=r"give exactly one of \[inputs.twin\], \[inputs.files\]"):
        parse_config({"inputs": {"twin": {}, "uscrn": {"root": "u"}}}, Path("a.toml"))
    with pytest.raises(ConfigError, match=r"inputs.ismn.climate: required key is missing"):
        parse_config({"inputs": {"ismn": {"root": "r"}}}, Path("a.toml"))


def test_grid_paths_come_from_the_source_and_the_layout(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    paths = grid_input_paths(config_of("twin"), layout)
    assert paths["static"] == tmp_path / "inputs" / "twin-tiny-seed0" / "static" / "static.nc"
    assert paths["truth"] == layout.twin_dir("tiny", 0) / "truth.zarr"
    with pytest.raises(ConfigError, match="^the uscrn input has no grid$"):
        grid_input_paths(config_of("uscrn"), layout)
    source = check_evaluation_format(config_of("ismn"), EvaluationRequest("ismn", tmp_path))
    assert source is source_of(config_of("ismn"))[0]
    with pytest.raises(UsageError, match="--format uscrn: .* trained on the twin input; score"):
        check_evaluation_format(config_of("twin"), EvaluationRequest("uscrn", tmp_path))


def test_run_layout_names_every_file_and_reads_the_resolved_config(tmp_path: Path) -> None:
    layout = RunLayout(tmp_path)
    assert layout.station_table == tmp_path / "features" / "station_table.parquet"
    assert layout.stage_marker("train") == tmp_path / "stages" / "train.json"
    assert layout.product == tmp_path / "product.zarr"
    assert layout.report_html == tmp_path / "report" / "index.html"
    assert layout.input_report("uscrn") == tmp_path / "inputs" / "uscrn_report.json"
    assert layout.provided() is None
    layout.inputs_dir.mkdir()
    layout.input_source.write_text(json.dumps({"source": "ismn", "provides": ["soil"]}))
    assert layout.provided() == {"soil"}
    with pytest.raises(FileNotFoundError, match="not a cropsm run directory"):
        load_run_config(tmp_path)
    layout.config.write_text('[inputs.uscrn]\nroot = "/data/uscrn"\n')
    assert load_run_config(tmp_path).inputs.source == "uscrn"


def test_the_report_leaves_out_sections_the_source_cannot_have(tmp_path: Path) -> None:
    from cropsm.report.html import SECTIONS, render_report, shown_sections

    assert [s[0] for s in shown_sections(tmp_path)[0]] == [s[0] for s in SECTIONS]  # unknown
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "source.json").write_text(
        json.dumps({"source": "ismn", "provides": ["soil"]})
    )
    shown, left_out = shown_sections(tmp_path)
    assert [s[0] for s in shown] == ["inputs", "paper", "networks", "attribution", "other",
                                     "provenance"]  # fmt: skip
    assert left_out["Virtual China: against the truth"] == "the ismn input has no truth"
    page = render_report(tmp_path)
    assert 'href="#truth"' not in page and 'href="#networks"' in page


def module_imports(path: Path) -> set[str]:
    """The cropsm modules a file imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cropsm"):
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("cropsm"))
    return names


def test_no_module_reaches_back_to_the_orchestrator_or_the_stages() -> None:
    """Only the command line (and the stage command that runs the pipeline) import the
    orchestrator; nothing imports the stages module but the orchestrator; the run layout and
    the stage registry import no stage."""
    importers: dict[str, list[str]] = {"cropsm.pipeline": [], "cropsm.stages": []}
    for path in SRC.rglob("*.py"):
        name = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        for target in importers:
            if target in module_imports(path):
                importers[target].append(name)
    assert sorted(importers["cropsm.pipeline"]) == ["cropsm.attribute.commands", "cropsm.cli"]
    assert sorted(importers["cropsm.stages"]) == ["cropsm.cli", "cropsm.pipeline"]
    upper = ("cropsm.stages", "cropsm.pipeline", "cropsm.sources", "cropsm.predict",
             "cropsm.analyze", "cropsm.attribute", "cropsm.report", "cropsm.skill")  # fmt: skip
    for low in ("run_layout.py", "stage_registry.py"):
        imported = module_imports(SRC / low)
        assert not any(m.startswith(upper) for m in imported), low
