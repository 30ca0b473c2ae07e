"""Run configuration: one TOML file, validated by pydantic models that reject unknown keys.

A run config has the sections ``[run]``, ``[inputs]`` (exactly one input source:
``[inputs.twin]`` for the virtual China, ``[inputs.files]`` for the user's own files,
``[inputs.uscrn]`` or ``[inputs.ismn]`` for real station networks; each is a plug-in of
:mod:`cropsm.sources`), ``[features]`` and the sections the later stages add. Relative
paths are resolved against the config file's folder. Values are not coerced: a string where a
number is expected (``max_epochs = "40"``) is an error.

Errors name the file and the key, e.g.::

    examples/tiny.toml: inputs.twin.presett: unknown key (allowed: preset, seed)
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cropsm.attribute.config import AttributeConfig
from cropsm.errors import ConfigError
from cropsm.io.ismn import IsmnInput
from cropsm.io.uscrn import UscrnInput
from cropsm.predict.config import PredictConfig
from cropsm.train.config import TrainConfig


class StrictModel(BaseModel):
    """Base of every config section: unknown keys are an error; values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RunSection(StrictModel):
    name: str = Field("run", description="A label for the run, used in the report.")
    seed: int = Field(
        0, ge=0, description="Seed of every random choice of the run after the inputs."
    )
    isolate_stages: bool = Field(
        True,
        description=(
            "Run the stages that keep memory for the life of their process (train; the twin's "
            "inputs) in a child process of their own, so it goes back to the system before the "
            "next stage."
        ),
    )


class TwinInput(StrictModel):
    preset: Literal["tiny", "demo", "paper"] = Field(
        "tiny", description="Size of the virtual China (see `cropsm twin --help`)."
    )
    seed: int = Field(0, ge=0, description="Seed of the virtual China generator.")

    def resolve_paths(self, base: Path) -> TwinInput:
        """The twin section has no paths (it is written into the run directory)."""
        return self


class FileInputs(StrictModel):
    stations: Path = Field(description="Station metadata (CSV or Parquet).")
    observations: Path = Field(description="Station observations, long table (CSV or Parquet).")
    climate: list[str] = Field(description="ERA-style netCDF files or glob patterns.")
    static: Path | None = Field(None, description="Static fields netCDF (soil, cropland, ...).")
    satellite: list[str] = Field(
        default_factory=list, description="ESA CCI soil moisture netCDF files or globs."
    )

    @field_validator("stations", "observations", "static", "climate", "satellite", mode="before")
    @classmethod
    def _no_empty_path(cls, value):
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, str) and not item.strip() for item in items):
            raise ValueError("an empty path; expected a file (or a glob pattern of files)")
        return value

    def resolve_paths(self, base: Path) -> FileInputs:
        """Copy with every relative path made absolute against ``base``."""

        def absolute(p: Path | None) -> Path | None:
            return None if p is None else (p if p.is_absolute() else (base / p).resolve())

        def absolute_globs(items: list[str]) -> list[str]:
            return [s if Path(s).is_absolute() else str((base / s).resolve()) for s in items]

        return self.model_copy(
            update={
                "stations": absolute(self.stations),
                "observations": absolute(self.observations),
                "static": absolute(self.static),
                "climate": absolute_globs(self.climate),
                "satellite": absolute_globs(self.satellite),
            }
        )


class InputsSection(StrictModel):
    """Exactly one input source; each field is the section of one plug-in of
    :mod:`cropsm.sources` (same name)."""

    twin: TwinInput | None = None
    files: FileInputs | None = None
    uscrn: UscrnInput | None = None
    ismn: IsmnInput | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> InputsSection:
        if len(self.given()) != 1:
            names = [f"[inputs.{n}]" for n in type(self).model_fields]
            raise ValueError(f"give exactly one of {', '.join(names)}")
        return self

    def given(self) -> list[str]:
        """Names of the input sections present."""
        return [n for n in type(self).model_fields if getattr(self, n) is not None]

    @property
    def source(self) -> str:
        """The name of the run's input source (``twin``, ``files``, ``uscrn``, ``ismn``)."""
        return self.given()[0]

    @property
    def section(self):
        """The config section of the run's input source."""
        return getattr(self, self.source)


class FeaturesSection(StrictModel):
    set: Literal["paper", "crop"] = Field(
        "crop",
        description=(
            "Feature set: 'paper' = Table 1 of the paper exactly; 'crop' = the crop-aware set "
            "(nominal crop calendar of the pattern, a pattern-aware bucket, long-term climate, "
            "day of year as sin/cos)."
        ),
    )
    groups_off: tuple[str, ...] = Field(
        (), description="Feature groups switched off (e.g. for data that lacks wind)."
    )

    @field_validator("groups_off")
    @classmethod
    def _known_groups(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        from cropsm.features.groups import validate_groups

        return tuple(validate_groups(names))


class RunConfig(StrictModel):
    run: RunSection = Field(default_factory=RunSection)
    inputs: InputsSection
    features: FeaturesSection = Field(default_factory=FeaturesSection)
    train: TrainConfig = Field(default_factory=TrainConfig)
    predict: PredictConfig = Field(default_factory=PredictConfig)
    attribute: AttributeConfig = Field(default_factory=AttributeConfig)

    def resolve_paths(self, base: Path) -> RunConfig:
        """Copy with every relative input path made absolute against ``base``."""
        name = self.inputs.source
        section = self.inputs.section.resolve_paths(base)
        return self.model_copy(update={"inputs": self.inputs.model_copy(update={name: section})})


def _format_validation_error(path: Path, err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"{path}: {loc}: unknown key{_allowed_hint(e['loc'])}")
        elif e["type"] == "missing":
            lines.append(f"{path}: {loc}: required key is missing")
        else:
            got = e.get("input")
            got_text = "" if isinstance(got, dict) else f" (got {got!r})"
            message = e["msg"].removeprefix("Value error, ")
            lines.append(f"{path}: {loc}: {message}{got_text}")
    return "; ".join(lines)


def _allowed_hint(loc: tuple) -> str:
    model: Any = RunConfig
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None:
            return ""
        ann = field.annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if model is None:
            return ""
    return f" (allowed: {', '.join(model.model_fields)})"


def strict_validate(model: type[BaseModel], data: Mapping) -> Any:
    """Validate a TOML mapping strictly: no type coercion (``max_epochs = "40"`` and
    ``seed = "0"`` are errors), as JSON, so that strings still become paths and arrays tuples.
    """
    return model.model_validate_json(json.dumps(dict(data), default=str), strict=True)


def parse_config(data: dict, path: Path) -> RunConfig:
    """Validate a config mapping strictly; errors name ``path`` and the offending key."""
    try:
        config = strict_validate(RunConfig, data)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(path, err)) from None
    return config.resolve_paths(path.parent.resolve())


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run config TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line}: byte 0x{err.object[err.start]:02x} is not UTF-8; "
            "expected a UTF-8 text file (TOML)"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return parse_config(data, path)


def config_to_dict(config: RunConfig) -> dict:
    """A TOML-serialisable mapping of the resolved config (None values dropped)."""
    return _drop_none(config.model_dump(mode="json"))


def _drop_none(obj):
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj
