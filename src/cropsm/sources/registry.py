"""The registry of input sources: plug-ins that turn a run's ``[inputs.<name>]`` into inputs.

An input source is a class registered with :func:`input_source` under the name of its config
section. It declares what it provides (:data:`PROVIDABLE`) and how it produces the ``inputs``
stage, the station table of the ``features`` stage, the paths of gridded inputs (sources with a
grid) and the rows ``cropsm evaluate`` scores. The stages ask the registry
(:func:`source_of`), never test the source's name. The contract is in ``docs/contracts.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from cropsm.config import RunConfig
from cropsm.errors import ConfigError, UsageError
from cropsm.io.check import load_inputs
from cropsm.run_layout import RunLayout

PROVIDABLE: tuple[str, ...] = ("grid", "soil", "patterns", "satellite", "truth")
"""What a source can provide: ``grid`` (gridded climate and static fields, so a national
product can be made), ``soil`` (soil properties per station), ``patterns`` (the stations'
cropping patterns), ``satellite`` (a satellite soil-moisture product), ``truth`` (the true soil
moisture everywhere: the virtual China)."""


@dataclass(frozen=True)
class EvaluationRequest:
    """Which other stations or years ``cropsm evaluate`` scores.

    ``path``: station metadata (``csv``) or the network's folder (``uscrn``, ``ismn``);
    ``observations``: their observations (``csv``); ``stations``, ``first_year``,
    ``last_year``: which stations and years of a network folder.
    """

    format: str
    path: Path
    observations: Path | None = None
    stations: tuple[str, ...] = ()
    first_year: int | None = None
    last_year: int | None = None

    def __post_init__(self) -> None:
        first, last = self.first_year, self.last_year
        if first is not None and last is not None and first > last:
            raise UsageError(f"--first-year {first} is after --last-year {last}")

    def applied_to(self, section):
        """A station-network input section (``root``, ``stations``, ``first_year``,
        ``last_year``) with the run's reading options, moved to the requested folder, stations
        and years."""
        return section.model_copy(
            update={
                "root": Path(self.path),
                "stations": list(self.stations),
                "first_year": self.first_year,
                "last_year": self.last_year,
            }
        )


class InputSource:
    """Base of an input-source plug-in (see ``docs/contracts.md``, "Input sources").

    Subclasses set :attr:`name` (the ``[inputs.<name>]`` section) and
    :attr:`evaluation_format` (the ``cropsm evaluate --format`` of its stations), and implement
    :meth:`provides`, :meth:`prepare` and :meth:`station_table`; sources with a grid also
    :meth:`grid_paths`.
    """

    name: ClassVar[str] = ""
    evaluation_format: ClassVar[str] = ""
    prepares_in_own_process: ClassVar[bool] = False
    """True when :meth:`prepare` builds large arrays (the twin generates a whole climate
    record and its truth): the inputs and features stages then run in processes of their own
    under ``[run] isolate_stages`` (:mod:`cropsm.stage_process`). Readers of files leave it
    False: a spawned process costs ~3 s, which a run that only checks files does not repay."""

    def provides(self, section: Any) -> frozenset[str]:
        """What this source provides with this section (a subset of :data:`PROVIDABLE`)."""
        raise NotImplementedError

    def prepare(self, section: Any, ctx) -> dict:
        """The ``inputs`` stage: make or check the inputs; return counts for the run summary."""
        raise NotImplementedError

    def station_table(self, section: Any, ctx) -> tuple[pd.DataFrame, dict]:
        """The ``features`` stage: the station table and its report."""
        raise NotImplementedError

    def observations_origin(self, section: Any, layout: RunLayout) -> Path | str:
        """The file or folder the observations come from (named in errors)."""
        raise NotImplementedError

    def grid_paths(self, section: Any, layout: RunLayout) -> dict:
        """Paths of the gridded inputs: ``stations``, ``observations``, ``climate`` (globs),
        ``static``, ``satellite`` (globs) and ``truth`` (or None)."""
        raise ConfigError(f"the {self.name} input has no grid")

    def evaluation_table(
        self, section: Any, ctx, request: EvaluationRequest
    ) -> tuple[pd.DataFrame, dict]:
        """The station table of other stations or years, built as for training."""
        raise NotImplementedError


SOURCES: dict[str, InputSource] = {}
"""Registered input sources by section name."""


def input_source(name: str):
    """Register an input-source class under its config section name (class decorator)."""

    def register(cls: type[InputSource]) -> type[InputSource]:
        cls.name = name
        SOURCES[name] = cls()
        return cls

    return register


def source_of(config: RunConfig) -> tuple[InputSource, Any]:
    """The run's input-source plug-in and its config section."""
    name = config.inputs.source
    if name not in SOURCES:
        raise ConfigError(f"[inputs.{name}]: no input source of that name is registered")
    return SOURCES[name], config.inputs.section


def provided(config: RunConfig) -> frozenset[str]:
    """What the run's input source provides."""
    source, section = source_of(config)
    return source.provides(section)


def lacking(config: RunConfig, needs: Iterable[str]) -> str | None:
    """Why a stage that needs ``needs`` cannot run on this input, or None when it can.

    E.g. ``"the uscrn input has no grid"``.
    """
    have = provided(config)
    missing = [n for n in needs if n not in have]
    if not missing:
        return None
    return f"the {config.inputs.source} input has no {' and no '.join(missing)}"


def grid_input_paths(config: RunConfig, layout: RunLayout) -> dict:
    """Paths of the run's gridded inputs (:meth:`InputSource.grid_paths`)."""
    source, section = source_of(config)
    return source.grid_paths(section, layout)


def load_grid_inputs(config: RunConfig, layout: RunLayout, with_satellite: bool = False) -> dict:
    """The run's gridded inputs in canonical form, read through the user-file readers.

    The value-range scan is skipped: the ``inputs`` stage validated the user's files, and the
    virtual China's files are written by the generator (its tests read them with validation on).
    """
    paths = dict(grid_input_paths(config, layout))
    if not with_satellite:
        paths["satellite"] = []
    return load_inputs(paths, validate=False, groups_off=config.features.groups_off)


def check_evaluation_format(config: RunConfig, request: EvaluationRequest) -> InputSource:
    """The run's source, when ``request.format`` is the format of its stations.

    Raises
    ------
    UsageError
        One line naming the run's source and the format to use.
    """
    source, _ = source_of(config)
    if request.format != source.evaluation_format:
        raise UsageError(
            f"--format {request.format}: the run's networks were trained on the "
            f"{source.name} input; score other stations with --format {source.evaluation_format}"
        )
    return source


__all__ = [
    "PROVIDABLE",
    "SOURCES",
    "EvaluationRequest",
    "InputSource",
    "check_evaluation_format",
    "grid_input_paths",
    "input_source",
    "lacking",
    "load_grid_inputs",
    "provided",
    "source_of",
]
