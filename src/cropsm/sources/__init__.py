"""Input sources as registered plug-ins: ``twin``, ``files``, ``uscrn``, ``ismn``.

Importing this package registers every source (:mod:`cropsm.sources.registry`); the stages use
:func:`source_of`, :func:`provided`, :func:`lacking`, :func:`grid_input_paths` and
:func:`load_grid_inputs`. A new source is a module here with a class decorated by
:func:`input_source` and a field of the same name in ``cropsm.config.InputsSection``
(``docs/contracts.md``, "Input sources").
"""

from __future__ import annotations

from cropsm.sources import files, ismn, twin, uscrn
from cropsm.sources.registry import (
    PROVIDABLE,
    SOURCES,
    EvaluationRequest,
    InputSource,
    check_evaluation_format,
    grid_input_paths,
    input_source,
    lacking,
    load_grid_inputs,
    provided,
    source_of,
)

PLUGIN_MODULES = (files, ismn, twin, uscrn)
"""The modules whose import registered the built-in sources."""

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
