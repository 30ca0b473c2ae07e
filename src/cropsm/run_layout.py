"""Where every file of a run directory lives, and the config the run was made with.

The bottom of the import graph for everything that reads or writes a run directory: stages,
the report, the analyses and the command line ask :class:`RunLayout` for a path instead of
spelling each other's file names, and :func:`load_run_config` for the resolved config instead
of importing the orchestrator. It imports nothing from the stages.

Layout of ``RUN_DIR``::

    config.resolved.toml, provenance.json, run_summary.json
    stages/<stage>.json                       fingerprint, seconds and result of a stage
    inputs/source.json                        the input source and what it provides
    inputs/twin-<preset>-seed<seed>/          the virtual China (twin source)
    inputs/<source>_report.json               what a station source read (uscrn, ismn)
    inputs/stations.csv                       station metadata of a station source
    features/station_table.parquet (+ _report.json)
    models/layer<k>/, metrics.json, grid_search.csv, table2.csv, splits.csv, baselines/
    truth_skill.json                          networks against the truth (virtual China)
    product.zarr                              the national product (predict)
    attribution/, analysis/, figures/, report/index.html
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cropsm.config import RunConfig, load_config

CONFIG_FILE = "config.resolved.toml"
PRODUCT_NAME = "product.zarr"


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run directory (nothing is created or read by the properties)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # run-level records
    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def provenance(self) -> Path:
        return self.root / "provenance.json"

    @property
    def run_summary(self) -> Path:
        return self.root / "run_summary.json"

    @property
    def stages_dir(self) -> Path:
        return self.root / "stages"

    def stage_marker(self, name: str) -> Path:
        """``stages/<name>.json``: the record a stage leaves when it finishes."""
        return self.stages_dir / f"{name}.json"

    # inputs
    @property
    def inputs_dir(self) -> Path:
        return self.root / "inputs"

    @property
    def input_source(self) -> Path:
        """``inputs/source.json``: ``{"source": name, "provides": [...]}``."""
        return self.inputs_dir / "source.json"

    def twin_dir(self, preset: str, seed: int) -> Path:
        return self.inputs_dir / f"twin-{preset}-seed{seed}"

    def input_report(self, source: str) -> Path:
        """``inputs/<source>_report.json``: what a station source read."""
        return self.inputs_dir / f"{source}_report.json"

    @property
    def input_stations(self) -> Path:
        """``inputs/stations.csv``: station metadata as a station source read it."""
        return self.inputs_dir / "stations.csv"

    # features and training
    @property
    def station_table(self) -> Path:
        return self.root / "features" / "station_table.parquet"

    @property
    def station_table_report(self) -> Path:
        return self.root / "features" / "station_table_report.json"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def table2(self) -> Path:
        return self.root / "table2.csv"

    @property
    def grid_search(self) -> Path:
        return self.root / "grid_search.csv"

    @property
    def splits(self) -> Path:
        return self.root / "splits.csv"

    @property
    def baselines_dir(self) -> Path:
        return self.root / "baselines"

    @property
    def baselines(self) -> Path:
        return self.baselines_dir / "baselines.json"

    @property
    def truth_skill(self) -> Path:
        return self.root / "truth_skill.json"

    # later stages
    @property
    def product(self) -> Path:
        return self.root / PRODUCT_NAME

    @property
    def attribution_dir(self) -> Path:
        return self.root / "attribution"

    @property
    def analysis_dir(self) -> Path:
        return self.root / "analysis"

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def report_html(self) -> Path:
        return self.report_dir / "index.html"

    def provided(self) -> frozenset[str] | None:
        """What the run's input source provides (``inputs/source.json``), None when unknown
        (a run directory made before the record existed, or by hand)."""
        if not self.input_source.is_file():
            return None
        record = json.loads(self.input_source.read_text(encoding="utf-8"))
        return frozenset(record.get("provides", ()))


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The resolved config a run directory was made with (``config.resolved.toml``).

    Raises
    ------
    FileNotFoundError
        When the directory holds no resolved config (not a cropsm run directory).
    """
    path = RunLayout(Path(run_dir)).config
    if not path.exists():
        raise FileNotFoundError(f"{path}: not a cropsm run directory (run `cropsm run` first)")
    return load_config(path)


__all__ = ["CONFIG_FILE", "PRODUCT_NAME", "RunLayout", "load_run_config"]
