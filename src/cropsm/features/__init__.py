"""Features of the networks (paper Table 1): feature groups, climate features, station table.

* :mod:`cropsm.features.groups` - the registry of feature groups and network input names.
* :mod:`cropsm.features.climate` - VPD, accumulated precipitation, day of year and the climate
  feature dataset, as pure functions over arrays with a time axis.
* :mod:`cropsm.features.station_table` - observations joined with their nearest-cell covariates,
  written to ``RUN_DIR/features/station_table.parquet``.
"""

from cropsm.features.climate import (
    FEATURE_ATTRS,
    accumulated_precipitation_mm,
    climate_features,
    day_of_year,
    recent_precipitation_mm,
    saturation_vapour_pressure_kpa,
    vapour_pressure_deficit_kpa,
)
from cropsm.features.groups import (
    ALWAYS,
    FEATURE_GROUPS,
    PATTERN_ONE_HOT,
    UPPER,
    layer_feature_names,
    missing_groups,
    pattern_one_hot,
    require_groups,
    required_columns,
    validate_groups,
)
from cropsm.features.station_table import (
    STATION_TABLE_RELPATH,
    TABLE_UNITS,
    build_station_table,
    read_station_table,
    station_table_path,
    write_station_table,
)

__all__ = [
    "ALWAYS",
    "FEATURE_ATTRS",
    "FEATURE_GROUPS",
    "PATTERN_ONE_HOT",
    "STATION_TABLE_RELPATH",
    "TABLE_UNITS",
    "UPPER",
    "accumulated_precipitation_mm",
    "build_station_table",
    "climate_features",
    "day_of_year",
    "layer_feature_names",
    "missing_groups",
    "pattern_one_hot",
    "read_station_table",
    "recent_precipitation_mm",
    "require_groups",
    "required_columns",
    "saturation_vapour_pressure_kpa",
    "station_table_path",
    "validate_groups",
    "vapour_pressure_deficit_kpa",
    "write_station_table",
]
