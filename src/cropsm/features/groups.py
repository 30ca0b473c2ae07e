"""The feature groups of the networks: the one place they are named (paper Table 1, section 2c(1)).

The paper's networks take the inputs of Table 1. For the control experiments (section 2c(1)) the
inputs are switched off by *group*: the seven precipitation features together, the five soil
features together, and each of the other features alone. This module is the registry of those
groups and of how a group maps onto

* the columns of the station table (``cropsm.features.station_table``), and
* the input columns of the network for one soil layer (:func:`layer_feature_names`).

Soil features are named layer-generically in the registry (``ph``, ``sand``, ``silt``, ``clay``,
``bd``) and resolved to the columns of one layer, ``ph_l{k}`` ..., by :func:`soil_column`. The
cropping pattern is one categorical column ``pattern`` in the station table and six one-hot inputs
``pattern_<id>`` (:data:`PATTERN_ONE_HOT`) for the network. Day of year (``doy``) is always an
input; the network of layer k >= 2 also takes ``sm_pred_upper``, the chained prediction of layer
k - 1 (section 2a).

Switching groups off is configured as ``groups_off = ["wind"]`` in the ``[features]`` section of
the run configuration.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

import numpy as np
import pandas as pd

from cropsm import N_LAYERS
from cropsm.catalog import pattern_ids
from cropsm.errors import InputError
from cropsm.features.calendar import CALENDAR_FEATURES
from cropsm.features.location import LOCATION_FEATURES
from cropsm.features.water_balance import (
    BARE_BUCKET_FEATURES,
    CLIMATE_DESCRIPTORS,
    WATER_BALANCE_FEATURES,
)

PRECIPITATION_ACCUMULATION_MONTHS: tuple[int, ...] = (1, 2, 3, 4, 5, 12)
"""Look-back periods of the accumulated-precipitation features, in calendar months (section 2a)."""

PRECIPITATION_RECENT_DAYS: tuple[int, ...] = (3, 7)
"""Look-backs of the recent-precipitation features ``precip_{N}d`` of the crop-aware set, days.

Not in the paper (its shortest window is a month): a storm of the last days is what the monthly
sums blur. Measured on the demo twin (station split, K = 3, mean of train seeds 0 and 1), test
R2 of the ensemble for layers 1-5 0.78 0.72 0.68 0.67 0.62 -> 0.83 0.74 0.71 0.66 0.61 and
against the truth at station-free cells (reference pattern) 0.79 0.84 0.81 0.84 0.78 -> 0.85
0.88 0.85 0.85 0.76. Given to the 0-20 cm layers only, the deeper layers scored the same
within the seeds' spread (0.66 against 0.66 in layers 3-5), so every layer takes them. On real
USCRN stations (README, "Real stations") new years were unchanged and new sites rose by
0.02-0.06 on the mean of three held-out draws.
"""

RECENT_PRECIPITATION: tuple[str, ...] = tuple(f"precip_{n}d" for n in PRECIPITATION_RECENT_DAYS)
"""Names of the recent-precipitation features."""

SOIL_PROPERTIES: tuple[str, ...] = ("ph", "sand", "silt", "clay", "bd")
"""Layer-generic names of the soil features (section 2b(4)); the columns are ``<name>_l<k>``."""

FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "precipitation": ("precip",) + tuple(f"precip_{n}m" for n in PRECIPITATION_ACCUMULATION_MONTHS),
    "soil": SOIL_PROPERTIES,
    "elevation": ("elevation",),
    "temperature": ("tair",),
    "vpd": ("vpd",),
    "pattern": ("pattern",),
    "ssr": ("ssr",),
    "wind": ("wind",),
    "cloud": ("cloud",),
}
"""Feature group -> station-table feature names of the paper's set (soil names layer-generic).

The order of the groups is the order of the network inputs (:func:`layer_feature_names`).
"""

CROP_FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "precipitation": FEATURE_GROUPS["precipitation"] + RECENT_PRECIPITATION,
    "soil": SOIL_PROPERTIES,
    "elevation": ("elevation",),
    "temperature": ("tair",),
    "vpd": ("vpd",),
    "pattern": CALENDAR_FEATURES,
    "water_balance": WATER_BALANCE_FEATURES + BARE_BUCKET_FEATURES,
    "climate_normals": CLIMATE_DESCRIPTORS,
    "location": LOCATION_FEATURES,
    "ssr": ("ssr",),
    "wind": ("wind",),
    "cloud": ("cloud",),
}
"""Feature groups of the crop-aware set (``[features] set = "crop"``).

The cropping pattern enters as its daily crop calendar (``cal_kc``, ``cal_root_cm``,
``cal_crop_on``), the catalog's nominal calendar moved to the place's long-term temperature
cycle (:mod:`cropsm.features.phenology`), instead of a constant one-hot code; a
pattern-aware two-store bucket with a degree-day snow pack (``wb_top``, ``wb_sub``,
:mod:`cropsm.features.water_balance`), its run under a fallow field (``wb_top_bare``,
``wb_sub_bare``) and the cell's long-term climate
(``clim_precip_mm_yr``, ``clim_aridity``) and its location (``loc_x``, ``loc_y``, ``loc_z``,
:mod:`cropsm.features.location`) are added; day of year enters
as sin/cos; the precipitation group adds the sums of the last 3 and 7 days (``precip_3d``,
``precip_7d``, :func:`cropsm.features.climate.recent_precipitation_mm`).
"""

FEATURE_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "paper": FEATURE_GROUPS,
    "crop": CROP_FEATURE_GROUPS,
}
"""Feature sets: ``paper`` is exactly Table 1 of the paper; ``crop`` is the crop-aware set."""

DEFAULT_FEATURE_SET = "crop"
"""Feature set of a run configuration that does not name one."""

ALL_GROUPS: tuple[str, ...] = tuple(dict.fromkeys([*FEATURE_GROUPS, *CROP_FEATURE_GROUPS]))
"""Every group name of every feature set."""

PATTERN_ONE_HOT: tuple[str, ...] = tuple(f"pattern_{p}" for p in pattern_ids())
"""Network input names of the one-hot encoded cropping pattern, in ``pattern_ids()`` order."""

ALWAYS: tuple[str, ...] = ("doy",)
"""Inputs that are always used and belong to no group (day of year, section 2a)."""

ALWAYS_BY_SET: dict[str, tuple[str, ...]] = {"paper": ALWAYS, "crop": ("doy_sin", "doy_cos")}
"""Always-used inputs per feature set (the crop set takes day of year as sin/cos)."""

PATTERN_INPUTS: tuple[str, ...] = PATTERN_ONE_HOT + CALENDAR_FEATURES + WATER_BALANCE_FEATURES
"""Network inputs whose value depends on the cropping pattern (evaluated per pattern on the
grid): the one-hot code, the nominal calendar and the pattern's bucket."""

UPPER = "sm_pred_upper"
"""Network input of layer k >= 2: the chained soil-moisture prediction of layer k - 1 (m3 m-3)."""

SWITCH_OFF_HINT = 'groups_off = ["{group}"] in the [features] section of the run configuration'


def soil_column(name: str, layer: int) -> str:
    """Station-table column of a layer-generic soil feature, e.g. ``("ph", 2) -> "ph_l2"``.

    Parameters
    ----------
    name
        One of :data:`SOIL_PROPERTIES`.
    layer
        Soil layer 1...5 (0-10 ... 40-50 cm).
    """
    if name not in SOIL_PROPERTIES:
        raise ValueError(f"unknown soil feature {name!r}; allowed: {', '.join(SOIL_PROPERTIES)}")
    _check_layer(layer)
    return f"{name}_l{layer}"


def validate_groups(names: Iterable[str]) -> tuple[str, ...]:
    """Check feature group names and return them as a tuple (order kept, repeats removed).

    Raises
    ------
    ValueError
        For a name that is not a key of :data:`FEATURE_GROUPS`; the message lists the allowed
        names.
    """
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for name in names:
        if name not in ALL_GROUPS:
            hint = (
                " (day of year is always used and cannot be switched off)"
                if (name in ALWAYS)
                else ""
            )
            raise ValueError(
                f"unknown feature group {name!r}{hint}; allowed: {', '.join(ALL_GROUPS)}"
            )
        if name not in out:
            out.append(name)
    return tuple(out)


def validate_feature_set(feature_set: str) -> str:
    """Check a feature-set name (:data:`FEATURE_SETS`)."""
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; allowed: {', '.join(FEATURE_SETS)}")
    return feature_set


def feature_groups(feature_set: str = "paper") -> dict[str, tuple[str, ...]]:
    """Group -> feature names of a feature set (:data:`FEATURE_SETS`), in network order."""
    return FEATURE_SETS[validate_feature_set(feature_set)]


def always_inputs(feature_set: str = "paper") -> tuple[str, ...]:
    """Inputs of a feature set that belong to no group (day of year)."""
    return ALWAYS_BY_SET[validate_feature_set(feature_set)]


def active_groups(groups_off: Iterable[str] = (), feature_set: str = "paper") -> tuple[str, ...]:
    """The groups of a feature set that stay on, in the set's order."""
    off = set(validate_groups(groups_off))
    return tuple(g for g in feature_groups(feature_set) if g not in off)


def layer_feature_names(
    layer: int, groups_off: Iterable[str] = (), feature_set: str = "paper"
) -> list[str]:
    """The network input columns for one soil layer, in a fixed order.

    The order is: the groups in :data:`FEATURE_GROUPS` order (``precip``, ``precip_1m`` ...
    ``precip_5m``, ``precip_12m``; ``ph_l{k}``, ``sand_l{k}``, ``silt_l{k}``, ``clay_l{k}``,
    ``bd_l{k}``; ``elevation``; ``tair``; ``vpd``; the six ``pattern_<id>`` one-hot columns;
    ``ssr``; ``wind``; ``cloud``), each group only when it is on, then ``doy``, then
    ``sm_pred_upper`` for layer >= 2 (chained prediction of the layer above, paper section 2a).

    Parameters
    ----------
    layer
        Soil layer 1...5.
    groups_off
        Feature groups switched off (control experiments, paper section 2c(1)).
    feature_set
        ``paper`` (Table 1 exactly) or ``crop`` (:data:`CROP_FEATURE_GROUPS`: the pattern as its
        nominal calendar, the bucket, long-term climate, day of year as sin/cos, the sums of the
        last 3 and 7 days' precipitation).
    """
    _check_layer(layer)
    groups = feature_groups(feature_set)
    names: list[str] = []
    for group in active_groups(groups_off, feature_set):
        if group == "soil":
            names.extend(soil_column(n, layer) for n in SOIL_PROPERTIES)
        elif group == "pattern" and feature_set == "paper":
            names.extend(PATTERN_ONE_HOT)
        else:
            names.extend(groups[group])
    names.extend(always_inputs(feature_set))
    if layer >= 2:
        names.append(UPPER)
    return names


def group_columns(
    group: str, layers: Iterable[int] = range(1, N_LAYERS + 1), feature_set: str = "paper"
) -> list[str]:
    """Station-table columns of one group (soil resolved for ``layers``; the paper's pattern as
    ``pattern``)."""
    (group,) = validate_groups([group])
    if group == "soil":
        layers = list(layers)
        return [soil_column(n, k) for k in layers for n in SOIL_PROPERTIES]
    groups = feature_groups(feature_set)
    if group not in groups:
        raise ValueError(f"feature group {group!r} is not part of the {feature_set!r} feature set")
    return list(groups[group])


def required_columns(
    groups_off: Iterable[str] = (),
    layers: Iterable[int] = range(1, N_LAYERS + 1),
    feature_set: str = "paper",
) -> list[str]:
    """Station-table feature columns the groups that are on need, plus ``doy``.

    Parameters
    ----------
    groups_off
        Feature groups switched off.
    layers
        Soil layers whose soil columns are needed (default all five).
    """
    layers = list(layers)
    cols: list[str] = []
    for group in active_groups(groups_off, feature_set):
        cols.extend(group_columns(group, layers, feature_set))
    cols.extend(always_inputs(feature_set))
    return cols


def missing_groups(
    table_columns: Iterable[str],
    groups_off: Iterable[str] = (),
    layers: Iterable[int] = range(1, N_LAYERS + 1),
    feature_set: str = "paper",
) -> dict[str, list[str]]:
    """Groups that are on but lack columns in the data: ``{group: [missing columns]}``.

    An empty dict means every group that is on is available. ``doy`` missing is reported under
    the key ``"doy"``.
    """
    present = set(table_columns)
    layers = list(layers)
    out: dict[str, list[str]] = {}
    for group in active_groups(groups_off, feature_set):
        lacking = [c for c in group_columns(group, layers, feature_set) if c not in present]
        if lacking:
            out[group] = lacking
    lacking_always = [c for c in always_inputs(feature_set) if c not in present]
    if lacking_always:
        out["doy"] = lacking_always
    return out


def require_groups(
    table_columns: Iterable[str],
    groups_off: Iterable[str] = (),
    layers: Iterable[int] = range(1, N_LAYERS + 1),
    path: str | None = None,
    feature_set: str = "paper",
) -> None:
    """Raise :class:`cropsm.errors.InputError` if a group that is on lacks columns in the data.

    A group the data lacks is an error unless it is switched off; the message names the group, the
    missing columns and how to switch the group off (``groups_off = ["wind"]`` in the
    ``[features]`` section).
    """
    lacking = missing_groups(table_columns, groups_off, layers, feature_set)
    if not lacking:
        return
    raise missing_group_error(lacking, path=path)


def missing_group_error(
    lacking: Mapping[str, Collection[str]], path: str | None = None, what: str = "column(s)"
) -> InputError:
    """The one-line error for groups the data lacks (see :func:`require_groups`)."""
    parts = []
    for group, cols in lacking.items():
        if group in ALL_GROUPS:
            parts.append(
                f"feature group {group!r} needs {what} {', '.join(cols)}, which the data lacks; "
                f"provide them or switch the group off with {SWITCH_OFF_HINT.format(group=group)}"
            )
        else:
            parts.append(f"{what} {', '.join(cols)} missing (always needed)")
    where = "feature group(s) " + ", ".join(repr(g) for g in lacking)
    return InputError(path, where, "; ".join(parts))


def pattern_one_hot(patterns: Iterable[str] | pd.Series) -> pd.DataFrame:
    """One-hot encode cropping-pattern ids into the columns :data:`PATTERN_ONE_HOT` (float32).

    Raises
    ------
    ValueError
        For an id that is not one of ``cropsm.catalog.pattern_ids()``.
    """
    values = pd.Series(patterns).astype(object)
    ids = pattern_ids()
    codes = pd.Categorical(values, categories=ids).codes
    bad = codes < 0
    if bad.any():
        unknown = sorted({str(v) for v in values[bad]})
        raise ValueError(f"unknown cropping pattern(s) {unknown}; allowed: {', '.join(ids)}")
    onehot = np.zeros((len(codes), len(ids)), dtype=np.float32)
    onehot[np.arange(len(codes)), codes] = 1.0
    index = patterns.index if isinstance(patterns, pd.Series) else None
    return pd.DataFrame(onehot, columns=list(PATTERN_ONE_HOT), index=index)


def _check_layer(layer: int) -> None:
    if not (isinstance(layer, int | np.integer) and 1 <= layer <= N_LAYERS):
        raise ValueError(f"layer must be an integer 1...{N_LAYERS}, got {layer!r}")
