"""Settings of the national product (``[predict]`` section of a run config).

Every key has a default, so a run config without a ``[predict]`` section predicts the whole
climate period after the 12-month look-back, for the six patterns and the reference, on a local
dask cluster sized to the machine.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cropsm.catalog import pattern_ids

REFERENCE = "reference"
"""Name of the crop-area-weighted reference scenario (paper section 2c(2), Eq. 2)."""


def all_scenarios() -> tuple[str, ...]:
    """The six pattern scenarios in catalog order, then the reference."""
    return (*pattern_ids(), REFERENCE)


class PredictConfig(BaseModel):
    """How the product is computed and stored.

    Attributes
    ----------
    workers
        Worker processes of the local dask cluster (one thread each). ``None``: one per CPU core
        available to this process; ``0``: no cluster, blocks run one after another in this
        process (same numbers).
    scheduler
        Address of an existing dask scheduler (``tcp://host:8786``); its workers must see the
        run directory and the input files under the same paths. Overrides ``workers``.
    scenarios
        Scenarios to store: pattern ids and/or ``reference``. The reference needs every pattern
        internally; only the listed ones are written.
    start, end
        First and last day of the product (inclusive). Default: from the first day with a
        complete 12-month precipitation look-back to the last climate day.
    time_chunk_days
        Days per stored chunk (and per compute block).
    space_chunk_cells
        Grid cells per stored chunk along lat and lon.
    max_block_cell_days
        Upper bound on cropland cell-days in one compute block; bounds worker memory. When the
        whole grid exceeds it for one time chunk the grid is split into tiles of whole stored
        chunks. Measured with ``benchmarks/bench_predict.py --max-block-cell-days N`` (8,000
        cells, 1981-1982, the crop-aware anchored networks of the paper preset, K = 5, two
        workers): a year of the whole grid per block (4 M) peaks at 2.06 GB per worker and
        4.3 GB all processes; 1.5 M (tiles) at 1.25 GB and 2.5 GB, for 2 % more wall time.
    batch_cell_days
        Cell-days per network batch (float32 matrix products sized to stay in cache).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    workers: int | None = Field(
        None, ge=0, description="Local worker processes (None: one per core; 0: in-process)."
    )
    scheduler: str | None = Field(None, description="Address of an existing dask scheduler.")
    scenarios: tuple[str, ...] = Field(
        default_factory=all_scenarios, description="Pattern ids and/or 'reference' to store."
    )
    start: dt.date | None = Field(None, description="First day (default: after the look-back).")
    end: dt.date | None = Field(None, description="Last day (default: last climate day).")
    time_chunk_days: int = Field(366, ge=1, le=4000, description="Days per stored chunk.")
    space_chunk_cells: int = Field(48, ge=1, le=4096, description="Cells per chunk along lat/lon.")
    max_block_cell_days: int = Field(
        1_500_000, ge=1000, description="Most cropland cell-days in one compute block."
    )
    batch_cell_days: int = Field(
        1536,
        ge=16,
        le=1_000_000,
        description="Cell-days per float32 network batch. The forward passes of the paper "
        "preset's networks (K = 5) ran 24,000-26,000 cell-days per CPU second with 1536, "
        "21,000-23,000 with 1024 and about 22,000 with 4096 on the 2-core AMD EPYC machine "
        "(best of 6, one or two processes at once; an earlier machine: 31,000 with 1024 "
        "against 24,000 with 8192).",
    )

    @field_validator("scenarios")
    @classmethod
    def _known_scenarios(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        allowed = all_scenarios()
        if not names:
            raise ValueError(f"give at least one scenario of {', '.join(allowed)}")
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; allowed: {', '.join(allowed)}")
        return tuple(n for n in allowed if n in names)  # catalog order, no repeats

    @model_validator(mode="after")
    def _ordered_period(self) -> PredictConfig:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


def parse_scenarios(text: str | None) -> tuple[str, ...] | None:
    """Scenarios from a comma-separated command-line value (``"reference"``, ``"ww_fl,fl_mz"``,
    ``"all"``); ``None`` stays ``None``."""
    if text is None:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    if names == ["all"]:
        return all_scenarios()
    return PredictConfig(scenarios=tuple(names)).scenarios
