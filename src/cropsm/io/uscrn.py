"""NOAA U.S. Climate Reference Network (USCRN) daily01 files into canonical stations and climate.

Layout as NOAA publishes it: ``ROOT/YYYY/CRND0103-YYYY-<STATION>.txt``, one file per station and
year, one row per local-standard-time day, 28 whitespace-separated columns
(:data:`USCRN_COLUMNS`; NOAA's ``headers.txt`` / ``README.txt`` of the daily01 product).
Missing values are ``-9999.0`` (and ``-99.000`` for soil moisture).

Soil moisture of the five 10-cm layers (:func:`layer_soil_moisture`)
----------------------------------------------------------------------
USCRN measures volumetric water content (m3 m-3) at 5, 10, 20, 50 and 100 cm. A layer's value
is its depth-mean water content; for a profile that is linear between two sensors the depth mean
of a layer equals the value at its mid-depth, so (:data:`LAYER_SENSOR_MAPPING`)::

    layer 1 (0-10 cm)  = (theta_5 + theta_10) / 2
    layer 2 (10-20 cm) = theta at 15 cm, linear between the 10 and 20 cm sensors
    layer 3 (20-30 cm) = theta at 25 cm, linear between the 20 and 50 cm sensors
    layer 4 (30-40 cm) = theta at 35 cm, linear between the 20 and 50 cm sensors
    layer 5 (40-50 cm) = theta at 45 cm, linear between the 20 and 50 cm sensors

with ``theta(z) = theta_a + (theta_b - theta_a) (z - z_a) / (z_b - z_a)``. A layer is observed
only when every sensor it uses is valid (not missing, within 0-0.7 m3 m-3, not frozen); the 100 cm
sensor is not used.

Frozen soil (``frozen``): dielectric sensors read liquid water only, so frozen soil looks dry.
``soil_temperature`` (default) drops a sensor's reading when the soil temperature at that sensor
is <= 0 degC; where that soil temperature is missing, when the day's mean air temperature is
<= 0 degC; where both are missing, the reading is dropped. ``air_temperature`` uses the daily
mean air temperature alone; ``none`` keeps every reading.

The site's weather is the station-level climate (:mod:`cropsm.io.station_climate`).

Station metadata (:func:`uscrn_station_meta`)
---------------------------------------------
``station_id`` is the station name of the file name (``AK_Denali_27_N``); ``wbanno`` the WBAN
number; ``lat``/``lon`` from the file (their last value); ``elevation`` from an elevation grid
(e.g. ETOPO20, bilinear) when one is given, else NaN; ``region`` is ``"US"`` (the eight
Chinese agricultural regions do not apply) and ``pattern`` is missing (no crop information in
the product): switch the ``pattern`` group off.

Errors
------
A malformed file raises :class:`cropsm.errors.InputError` naming the file and line: an empty
file, a row with other than 28 columns, a byte that is not ASCII text, an unparsable date, a
value that is not a finite number (``NaN``, ``inf``), a flag other than C/R/U, a date outside the
file's year, a date twice, a WBAN number that changes within a file or differs from the one of
the station's other files (the file name carries the station name), a latitude outside -90 to
90 or a longitude outside -180 to 180, or a station position that moves by more than
:data:`POSITION_TOLERANCE_DEG` between rows or years (the real stations never move). Values
outside their physical range (:data:`PHYSICAL_RANGE`; e.g. solar radiation above
50 MJ m-2 d-1, which the real product holds a few times) are set missing and counted in the read
report instead, since they are the publisher's occasional glitches; but when (almost) all of a
column's values in a file are out of range (:data:`UNITS_BAD_FRACTION`), the column is in other
units (soil moisture in percent, temperature in kelvin) and that is an error.
"""

from __future__ import annotations

import fnmatch
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field

from cropsm import LAYER_MID_CM, N_LAYERS
from cropsm.errors import InputError
from cropsm.io.record_selection import RecordSelection

USCRN_COLUMNS: tuple[str, ...] = (
    "WBANNO",
    "LST_DATE",
    "CRX_VN",
    "LONGITUDE",
    "LATITUDE",
    "T_DAILY_MAX",
    "T_DAILY_MIN",
    "T_DAILY_MEAN",
    "T_DAILY_AVG",
    "P_DAILY_CALC",
    "SOLARAD_DAILY",
    "SUR_TEMP_DAILY_TYPE",
    "SUR_TEMP_DAILY_MAX",
    "SUR_TEMP_DAILY_MIN",
    "SUR_TEMP_DAILY_AVG",
    "RH_DAILY_MAX",
    "RH_DAILY_MIN",
    "RH_DAILY_AVG",
    "SOIL_MOISTURE_5_DAILY",
    "SOIL_MOISTURE_10_DAILY",
    "SOIL_MOISTURE_20_DAILY",
    "SOIL_MOISTURE_50_DAILY",
    "SOIL_MOISTURE_100_DAILY",
    "SOIL_TEMP_5_DAILY",
    "SOIL_TEMP_10_DAILY",
    "SOIL_TEMP_20_DAILY",
    "SOIL_TEMP_50_DAILY",
    "SOIL_TEMP_100_DAILY",
)
"""The 28 columns of a daily01 file, in order (NOAA's names)."""

TEXT_COLUMNS: tuple[str, ...] = ("WBANNO", "LST_DATE", "SUR_TEMP_DAILY_TYPE")
NUMERIC_COLUMNS: tuple[str, ...] = tuple(c for c in USCRN_COLUMNS if c not in TEXT_COLUMNS)

MISSING_VALUES: tuple[float, ...] = (-9999.0, -99.0)
"""Missing-value markers (``-9999.0`` everywhere, ``-99.000`` for soil moisture)."""


def missing_markers(column: str) -> tuple[float, ...]:
    """The missing-value markers of a column: ``-99.000`` only for soil moisture, where it is
    NOAA's marker; elsewhere it is a value (a station at longitude -99.00 exists)."""
    return MISSING_VALUES if column.startswith("SOIL_MOISTURE_") else (-9999.0,)


SENSOR_DEPTHS_CM: tuple[int, ...] = (5, 10, 20, 50, 100)
"""Depths of the soil moisture and soil temperature sensors, cm."""

LAYER_SENSOR_MAPPING: dict[int, tuple[str, tuple[int, ...], float]] = {
    1: ("mean", (5, 10), LAYER_MID_CM[0]),
    2: ("interpolate", (10, 20), LAYER_MID_CM[1]),
    3: ("interpolate", (20, 50), LAYER_MID_CM[2]),
    4: ("interpolate", (20, 50), LAYER_MID_CM[3]),
    5: ("interpolate", (20, 50), LAYER_MID_CM[4]),
}
"""Layer -> (how, sensor depths in cm, layer mid-depth in cm); see the module docstring."""

PHYSICAL_RANGE: dict[str, tuple[float, float]] = {
    **{c: (-80.0, 60.0) for c in NUMERIC_COLUMNS if c.startswith("T_DAILY")},
    **{c: (-80.0, 100.0) for c in NUMERIC_COLUMNS if c.startswith("SUR_TEMP_DAILY_")},
    "P_DAILY_CALC": (0.0, 1000.0),
    "SOLARAD_DAILY": (0.0, 50.0),
    **{c: (0.0, 100.0) for c in USCRN_COLUMNS if c.startswith("RH_")},
    **{f"SOIL_MOISTURE_{d}_DAILY": (0.0, 0.7) for d in SENSOR_DEPTHS_CM},
    **{f"SOIL_TEMP_{d}_DAILY": (-60.0, 70.0) for d in SENSOR_DEPTHS_CM},
}
"""Physical range of each measured column (units of the product); values outside become NaN."""

COLUMN_UNITS: dict[str, str] = {
    **{c: "degC" for c in PHYSICAL_RANGE if "TEMP" in c or c.startswith("T_DAILY")},
    "P_DAILY_CALC": "mm",
    "SOLARAD_DAILY": "MJ m-2 d-1",
    **{c: "% (relative humidity)" for c in PHYSICAL_RANGE if c.startswith("RH_")},
    **{c: "m3 m-3 (volumetric fraction, not percent)" for c in PHYSICAL_RANGE if "MOIST" in c},
}
"""Unit of each column of :data:`PHYSICAL_RANGE` (named in a units error)."""

UNITS_BAD_FRACTION = 0.9
"""A column whose out-of-range share of the non-missing values in a file reaches this (and at
least :data:`UNITS_MIN_BAD` values) is taken to be in other units: an error, not glitches."""

UNITS_MIN_BAD = 3
"""Least number of out-of-range values of a column in a file for a units error."""

SUR_TEMP_TYPES: tuple[str, ...] = ("C", "R", "U")
"""Flags of ``SUR_TEMP_DAILY_TYPE``: corrected, raw, unknown (NOAA's daily01 README)."""

POSITION_TOLERANCE_DEG = 0.01
"""Largest change of a station's latitude or longitude between rows and years, degrees (the
files give two decimals; none of the 178 real stations moves at all)."""

FILE_PATTERN = re.compile(r"^CRND0103-(\d{4})-(.+)\.txt$")
"""File name of a daily01 file: ``CRND0103-<year>-<station>.txt``."""

REGION_ID = "US"
"""Region id of every USCRN station (the Chinese agricultural regions do not apply)."""

FrozenRule = Literal["soil_temperature", "air_temperature", "none"]


class UscrnInput(RecordSelection):
    """The ``[inputs.uscrn]`` section of a run configuration: USCRN daily01 files as inputs.

    Paths are resolved against the config file's folder.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path = Field(description="Folder holding YYYY/CRND0103-YYYY-<STATION>.txt.")
    stations: list[str] = Field(
        default_factory=list,
        description="Station names (or shell patterns such as 'NE_*') to read; empty: all.",
    )
    first_year: int | None = Field(None, description="First year to read (default: all).")
    last_year: int | None = Field(None, description="Last year to read (default: all).")
    days_of_month: list[int] = Field(
        default_factory=list,
        description="Keep observations of these days of the month only ([8, 18, 28] as in the "
        "paper); empty: every day. Climate always uses every day.",
    )
    frozen: FrozenRule = Field(
        "soil_temperature",
        description="Frozen-soil filter: soil_temperature, air_temperature or none.",
    )
    elevation_grid: Path | None = Field(
        None,
        description="Elevation grid for the station elevation: an ETOPO20-style folder, GeoTIFF, "
        "ESRI ASCII grid or netCDF (none: elevation unknown, switch the group off).",
    )
    net_solar_fraction: float = Field(
        0.77,
        gt=0.0,
        le=1.0,
        description="Net / incoming solar radiation, 1 - albedo (FAO-56 grass 0.23).",
    )
    min_precip_valid_fraction: float = Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="Least share of valid days in a precipitation accumulation window.",
    )

    def resolve_paths(self, base: Path) -> UscrnInput:
        """Copy with ``root`` and ``elevation_grid`` made absolute against ``base``."""

        def absolute(p: Path | None) -> Path | None:
            return None if p is None else (p if p.is_absolute() else (base / p).resolve())

        return self.model_copy(
            update={"root": absolute(self.root), "elevation_grid": absolute(self.elevation_grid)}
        )


@dataclass(frozen=True)
class UscrnFile:
    """One daily01 file: its path, year and station name (from the file name)."""

    path: Path
    year: int
    station: str


@dataclass(frozen=True, eq=False)
class UscrnDaily:
    """The parsed daily rows of a set of daily01 files.

    Attributes
    ----------
    frame
        One row per station and day: ``station_id`` (str), ``date`` (datetime64[ns]) and the
        columns of :data:`USCRN_COLUMNS` except ``LST_DATE`` (missing and out-of-range values as
        NaN), sorted by station and date.
    files
        The files read.
    out_of_range
        Values set missing for lying outside :data:`PHYSICAL_RANGE`, per column.
    """

    frame: pd.DataFrame
    files: tuple[UscrnFile, ...]
    out_of_range: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Finding files


def find_uscrn_files(
    root: str | Path,
    stations: list[str] | tuple[str, ...] = (),
    first_year: int | None = None,
    last_year: int | None = None,
) -> list[UscrnFile]:
    """The daily01 files under ``root`` for the chosen stations and years.

    Parameters
    ----------
    root
        Folder with one sub-folder per year holding ``CRND0103-YYYY-<STATION>.txt``.
    stations
        Station names or shell patterns (``"NE_*"``); empty: every station.
    first_year, last_year
        Inclusive year range; None: unbounded.

    Returns
    -------
    list of UscrnFile
        Sorted by station, then year.

    Raises
    ------
    InputError
        When ``root`` is missing, holds no daily01 files, a requested station matches no file,
        or no file is left in the year range.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, None, "USCRN folder not found; expected ROOT/YYYY/CRND0103-*.txt")
    found: list[UscrnFile] = []
    for year_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
        for path in sorted(year_dir.glob("CRND0103-*.txt")):
            match = FILE_PATTERN.match(path.name)
            if match is None:
                continue
            year = int(match.group(1))
            if year != int(year_dir.name):
                raise InputError(
                    path,
                    None,
                    f"file of year {year} in folder {year_dir.name}; expected them equal",
                )
            found.append(UscrnFile(path, year, match.group(2)))
    if not found:
        raise InputError(
            root,
            None,
            "holds no USCRN daily01 files; expected ROOT/YYYY/CRND0103-YYYY-<STATION>.txt",
        )
    names = sorted({f.station for f in found})
    if stations:
        chosen: set[str] = set()
        for wanted in stations:
            hits = fnmatch.filter(names, wanted)
            if not hits:
                close = [n for n in names if wanted.lower()[:4] in n.lower()][:5] or names[:5]
                raise InputError(
                    root,
                    f"station {wanted!r}",
                    f"no daily01 file of this station; stations are named as in the file names, "
                    f"e.g. {', '.join(close)}",
                )
            chosen.update(hits)
        found = [f for f in found if f.station in chosen]
    lo = -np.inf if first_year is None else first_year
    hi = np.inf if last_year is None else last_year
    found = [f for f in found if lo <= f.year <= hi]
    if not found:
        raise InputError(
            root,
            None,
            f"no daily01 files of the chosen stations in the years {first_year}-{last_year}",
        )
    return sorted(found, key=lambda f: (f.station, f.year))


# --------------------------------------------------------------------------------------------
# Parsing


def read_uscrn_daily(files: list[UscrnFile] | tuple[UscrnFile, ...]) -> UscrnDaily:
    """Parse daily01 files into one table (vectorised: one ``pandas.read_csv`` for all files).

    The files' bytes are joined and parsed at once with the C parser; only when that parse
    fails or finds a short row is each file checked line by line to name the first bad line.

    Parameters
    ----------
    files
        From :func:`find_uscrn_files`.

    Returns
    -------
    UscrnDaily

    Raises
    ------
    InputError
        Naming the file (and line) of an empty file, a row with other than 28 columns, a byte
        that is not ASCII, an unparsable date or number (``NaN`` and ``inf`` included), an
        unknown flag, a WBAN number that changes within a file or between a station's files, a
        date outside the file's year, a date listed twice for a station, a position outside the
        globe or one that moves, or a column in other units (see the module docstring).
    """
    files = tuple(files)
    if not files:
        raise InputError(None, None, "no USCRN daily01 files given")
    chunks: list[bytes] = []
    rows_per_file: list[int] = []
    line_numbers: list[np.ndarray] = []
    for f in files:
        try:
            data = f.path.read_bytes()
        except OSError as exc:
            raise InputError(f.path, None, f"cannot be read ({exc.strerror})") from None
        lines = data.splitlines()
        kept = [line for line in lines if line.strip()]
        if not kept:
            raise InputError(
                f.path,
                None,
                f"empty ({len(data)} bytes, no rows); expected one row per day of {f.year} "
                "(a damaged download: re-download that file, or remove it)",
            )
        rows_per_file.append(len(kept))
        if len(kept) == len(lines):
            line_numbers.append(np.arange(1, len(lines) + 1))
        else:  # blank lines: number the rows as in the file
            line_numbers.append(np.flatnonzero([bool(line.strip()) for line in lines]) + 1)
        chunks.append(b"\n".join(kept) + b"\n")
    try:
        frame = _read_csv(b"".join(chunks))
    except (ValueError, pd.errors.ParserError):
        _diagnose(files)
        raise  # pragma: no cover - _diagnose raises for every parse failure
    if len(frame) != sum(rows_per_file):  # pragma: no cover - rows are lines, one each
        _diagnose(files)
    file_index = np.repeat(np.arange(len(files)), rows_per_file)
    line_number = np.concatenate(line_numbers)
    numeric = frame[list(NUMERIC_COLUMNS)].to_numpy()
    if not np.isfinite(numeric).all() or frame[list(TEXT_COLUMNS)].isna().any().any():
        _diagnose(files)
    if not (
        all(str(w).isascii() and str(w).isdigit() for w in pd.unique(frame["WBANNO"]))
        and set(pd.unique(frame["SUR_TEMP_DAILY_TYPE"])) <= set(SUR_TEMP_TYPES)
    ):
        _diagnose(files)
    dates = pd.to_datetime(frame["LST_DATE"], format="%Y%m%d", errors="coerce")
    if dates.isna().any():
        _diagnose(files)
    _check_consistency(frame, dates, file_index, line_number, files)

    out_of_range: dict[str, int] = {}
    stations = np.array([f.station for f in files], dtype=object)[file_index]
    columns: dict[str, Any] = {
        "station_id": stations,
        "date": dates.to_numpy().astype("datetime64[ns]"),
    }
    for column in USCRN_COLUMNS:
        if column == "LST_DATE":
            continue
        if column in TEXT_COLUMNS:
            columns[column] = frame[column].to_numpy()
            continue
        values = frame[column].to_numpy()
        values = np.where(np.isin(values, missing_markers(column)), np.nan, values)
        if column in PHYSICAL_RANGE:
            lo, hi = PHYSICAL_RANGE[column]
            bad = (values < lo) | (values > hi)
            if bad.any():
                _check_units(column, values, bad, file_index, line_number, files)
                out_of_range[column] = int(bad.sum())
                values = np.where(bad, np.nan, values)
        columns[column] = values
    station_rank = pd.factorize(np.array([f.station for f in files]), sort=True)[0][file_index]
    order = np.lexsort((columns["date"].view(np.int64), station_rank))
    frame = pd.DataFrame({name: values[order] for name, values in columns.items()})
    return UscrnDaily(frame=frame, files=files, out_of_range=out_of_range)


def _check_consistency(
    frame: pd.DataFrame,
    dates: pd.Series,
    file_index: np.ndarray,
    line_number: np.ndarray,
    files: tuple[UscrnFile, ...],
) -> None:
    """Dates within each file's year, one WBAN number per file and per station, no date twice
    per station, positions on the globe and one position per station."""

    def where(row: int) -> tuple[Path, str]:
        return files[int(file_index[row])].path, f"line {int(line_number[row])}"

    file_years = np.array([f.year for f in files])[file_index]
    wrong_year = dates.dt.year.to_numpy() != file_years
    if wrong_year.any():
        row = int(np.argmax(wrong_year))
        path, line = where(row)
        raise InputError(
            path,
            f"{line}, column LST_DATE",
            f"date {frame['LST_DATE'].iloc[row]} is not in the file's year {file_years[row]}",
        )
    first_row = np.concatenate([[0], np.cumsum(np.bincount(file_index, minlength=len(files)))])
    wban = frame["WBANNO"].to_numpy()
    first_wban = wban[first_row[file_index]]
    changed = wban != first_wban
    if changed.any():
        row = int(np.argmax(changed))
        path, line = where(row)
        raise InputError(
            path,
            f"{line}, column WBANNO",
            f"station number {wban[row]} differs from {first_wban[row]} on the file's first line; "
            "expected one station per file",
        )
    _check_station_numbers(wban[first_row[:-1]], line_number[first_row[:-1]], files)
    keys = pd.DataFrame(
        {"station": np.array([f.station for f in files], dtype=object)[file_index], "date": dates}
    )
    dup = keys.duplicated().to_numpy()
    if dup.any():
        row = int(np.argmax(dup))
        path, line = where(row)
        raise InputError(
            path,
            f"{line}, column LST_DATE",
            f"date {frame['LST_DATE'].iloc[row]} appears twice for station "
            f"{keys['station'].iloc[row]!r}; expected one row per day",
        )
    _check_positions(frame, file_index, line_number, files)


def _check_station_numbers(
    file_wban: np.ndarray, first_line: np.ndarray, files: tuple[UscrnFile, ...]
) -> None:
    """One WBAN number per station name: a file whose number differs from the one of most of
    the station's other files (the earliest on a tie) is another station's file."""
    by_station: dict[str, list[int]] = {}
    for k, f in enumerate(files):
        by_station.setdefault(f.station, []).append(k)
    for station, members in by_station.items():
        numbers = [str(file_wban[k]) for k in members]
        if len(set(numbers)) == 1:
            continue
        expected = max(dict.fromkeys(numbers), key=numbers.count)  # ties: the earliest file
        reference = members[numbers.index(expected)]
        wrong = next(k for k, n in zip(members, numbers, strict=True) if n != expected)
        raise InputError(
            files[wrong].path,
            f"line {int(first_line[wrong])}, column WBANNO",
            f"station number {file_wban[wrong]}, but station {station!r} (the file name's) has "
            f"number {expected} in {files[reference].path}; expected the file of station "
            f"{station!r} (another station's file under this name? re-download that file)",
        )


def _check_positions(
    frame: pd.DataFrame,
    file_index: np.ndarray,
    line_number: np.ndarray,
    files: tuple[UscrnFile, ...],
) -> None:
    """Latitude within -90..90 and longitude within -180..180 (missing markers aside), and
    one position per station within :data:`POSITION_TOLERANCE_DEG` across rows and years."""
    lon = frame["LONGITUDE"].to_numpy(np.float64)
    lat = frame["LATITUDE"].to_numpy(np.float64)
    lon = np.where(np.isin(lon, missing_markers("LONGITUDE")), np.nan, lon)
    lat = np.where(np.isin(lat, missing_markers("LATITUDE")), np.nan, lat)

    def where(row: int) -> tuple[Path, str]:
        return files[int(file_index[row])].path, f"line {int(line_number[row])}"

    for name, values, limit, unit in (
        ("LATITUDE", lat, 90.0, "degrees north"),
        ("LONGITUDE", lon, 180.0, "degrees east"),
    ):
        outside = np.abs(values) > limit
        if outside.any():
            row = int(np.argmax(outside))
            path, line = where(row)
            swapped = abs(lon[row]) <= 90.0 and abs(lat[row]) <= 180.0
            raise InputError(
                path,
                f"{line}, column {name}",
                f"{name.lower()} {values[row]:g} is outside -{limit:g} to {limit:g}; expected "
                f"{unit}" + (" (are LONGITUDE and LATITUDE swapped?)" if swapped else ""),
            )
    stations = np.array([f.station for f in files], dtype=object)[file_index]
    known = ~(np.isnan(lon) | np.isnan(lat))
    if not known.any():
        return
    table = pd.DataFrame(
        {"station": stations[known], "lon": lon[known], "lat": lat[known]},
        index=np.flatnonzero(known),
    )
    counts = (
        table.reset_index()
        .groupby(["station", "lon", "lat"], sort=False)["index"]
        .agg(["size", "min"])
        .reset_index()
        .sort_values(["station", "size", "min"], ascending=[True, False, True], kind="stable")
        .drop_duplicates("station")
        .set_index("station")
    )
    ref_lon = counts["lon"].reindex(table["station"]).to_numpy()
    ref_lat = counts["lat"].reindex(table["station"]).to_numpy()
    ref_row = counts["min"].reindex(table["station"]).to_numpy()
    d_lon = np.abs((table["lon"].to_numpy() - ref_lon + 180.0) % 360.0 - 180.0)
    d_lat = np.abs(table["lat"].to_numpy() - ref_lat)
    moved = np.maximum(d_lon, d_lat) > POSITION_TOLERANCE_DEG + 1e-6
    if moved.any():
        k = int(np.argmax(moved))
        row = int(table.index[k])
        path, line = where(row)
        ref_path, ref_line = where(int(ref_row[k]))
        same = "this file" if ref_path == path else str(ref_path)
        raise InputError(
            path,
            f"{line}, columns LONGITUDE, LATITUDE",
            f"station {stations[row]!r} at lat {lat[row]:g}, lon {lon[row]:g} here, but at lat "
            f"{ref_lat[k]:g}, lon {ref_lon[k]:g} (its usual position) in {same}, {ref_line}; "
            f"expected one position per station (within {POSITION_TOLERANCE_DEG:g} degree): "
            "a damaged value, a flipped sign or swapped columns? re-download that file",
        )


def _units_hint(column: str) -> str:
    """The likely wrong unit of a column, for a units error (`` (percent?)``)."""
    if "MOIST" in column:
        return " (percent?)"
    if "TEMP" in column or column.startswith("T_DAILY"):
        return " (kelvin or degF?)"
    if column == "SOLARAD_DAILY":
        return " (W m-2 or kJ m-2?)"
    return ""


def _check_units(
    column: str,
    values: np.ndarray,
    bad: np.ndarray,
    file_index: np.ndarray,
    line_number: np.ndarray,
    files: tuple[UscrnFile, ...],
) -> None:
    """Raise when (almost) all non-missing values of ``column`` in a file lie outside its
    physical range: the column is in other units (single glitches are only counted)."""
    n = len(files)
    valid = np.bincount(file_index, weights=~np.isnan(values), minlength=n)
    n_bad = np.bincount(file_index, weights=bad, minlength=n)
    wrong = (n_bad >= UNITS_MIN_BAD) & (n_bad >= UNITS_BAD_FRACTION * valid)
    if not wrong.any():
        return
    k = int(np.argmax(wrong))
    in_file = file_index == k
    bad_values = values[in_file & bad]
    first = int(np.argmax(in_file & bad))
    lo, hi = PHYSICAL_RANGE[column]
    raise InputError(
        files[k].path,
        f"column {column}",
        f"{int(n_bad[k])} of {int(valid[k])} values lie outside {lo:g} to {hi:g} (they range "
        f"{bad_values.min():g} to {bad_values.max():g}, e.g. {values[first]:g} on line "
        f"{int(line_number[first])}); expected {COLUMN_UNITS[column]}: the column is in other "
        f"units{_units_hint(column)}; convert it back or re-download that file",
    )


def _expected(column: str) -> str:
    """What a column of a daily01 row holds (for error messages)."""
    if column == "WBANNO":
        return "the station's WBAN number (digits)"
    if column == "LST_DATE":
        return "a date YYYYMMDD"
    if column == "SUR_TEMP_DAILY_TYPE":
        return f"the flag {', '.join(SUR_TEMP_TYPES[:-1])} or {SUR_TEMP_TYPES[-1]}"
    return "a number"


def _read_csv(data: bytes) -> pd.DataFrame:
    """The fast path's parse of daily01 bytes (also used to find a file the parser rejects)."""
    return pd.read_csv(
        io.BytesIO(data),
        sep=r"\s+",
        header=None,
        names=list(USCRN_COLUMNS),
        dtype={**{c: str for c in TEXT_COLUMNS}, **{c: np.float64 for c in NUMERIC_COLUMNS}},
        engine="c",
        na_filter=False,
    )


def _diagnose(files: tuple[UscrnFile, ...]) -> None:
    """Find and raise the first malformed line of the files (slow path, only on failure).

    Lines are numbered as in the file (blank lines count), as the fast path numbers them.
    """
    for f in files:
        data = f.path.read_bytes()
        for number, raw in enumerate(data.splitlines(), start=1):
            tokens = raw.split()
            if not tokens:
                continue
            if len(tokens) != len(USCRN_COLUMNS):
                raise InputError(
                    f.path,
                    f"line {number}",
                    f"{len(tokens)} columns; expected {len(USCRN_COLUMNS)} (USCRN daily01: "
                    "WBANNO LST_DATE CRX_VN LONGITUDE LATITUDE ... SOIL_TEMP_100_DAILY)",
                )
            for name, token in zip(USCRN_COLUMNS, tokens, strict=True):
                value = token.decode("ascii", errors="backslashreplace")
                where = f"line {number}, column {name}"
                if not token.isascii():
                    byte = next(b for b in token if b > 0x7F)
                    raise InputError(
                        f.path,
                        where,
                        f"byte 0x{byte:02x} is not ASCII text; expected {_expected(name)} "
                        "(a damaged file: re-download that file)",
                    )
                if name == "WBANNO" and not value.isdigit():
                    raise InputError(f.path, where, f"{value!r}; expected {_expected(name)}")
                elif name == "LST_DATE":
                    if not (len(value) == 8 and value.isdigit()) or pd.isna(
                        pd.to_datetime(value, format="%Y%m%d", errors="coerce")
                    ):
                        raise InputError(f.path, where, f"{value!r} is not a date YYYYMMDD")
                elif name == "SUR_TEMP_DAILY_TYPE" and value not in SUR_TEMP_TYPES:
                    raise InputError(
                        f.path, where, f"{value!r} is not a flag; expected {_expected(name)}"
                    )
                elif name in NUMERIC_COLUMNS:
                    try:
                        number_value = float(value)
                    except ValueError:
                        number_value = float("nan")
                    if not np.isfinite(number_value):
                        raise InputError(f.path, where, f"{value!r} is not a number")
    for f in files:  # pragma: no cover - every failure of the joint parse is found above
        try:
            _read_csv(f.path.read_bytes())
        except (ValueError, pd.errors.ParserError) as exc:
            problem = " ".join(str(exc).split())
            raise InputError(
                f.path, None, f"cannot be parsed as a USCRN daily01 file ({problem})"
            ) from None
    raise InputError(  # pragma: no cover
        files[0].path.parent.parent, None, "cannot be parsed as USCRN daily01 files"
    )


# --------------------------------------------------------------------------------------------
# Soil moisture of the five layers


def interpolate_at_depth(
    theta_upper: np.ndarray, theta_lower: np.ndarray, z_upper: float, z_lower: float, z: float
) -> np.ndarray:
    """Water content at depth z, linear between two sensors.

    .. math:: \\theta(z) = \\theta_a + (\\theta_b - \\theta_a)\\,\\frac{z - z_a}{z_b - z_a}

    Parameters
    ----------
    theta_upper, theta_lower
        Water content at the upper (z_a) and lower (z_b) sensor, m3 m-3.
    z_upper, z_lower, z
        Depths, cm (z_a < z_b).

    Returns
    -------
    numpy.ndarray
        m3 m-3; NaN where either sensor is NaN.
    """
    if not z_lower > z_upper:
        raise ValueError(f"need z_upper < z_lower, got {z_upper} and {z_lower}")
    w = (z - z_upper) / (z_lower - z_upper)
    return np.asarray(theta_upper) + (np.asarray(theta_lower) - np.asarray(theta_upper)) * w


def frozen_mask(
    soil_temperature_c: np.ndarray,
    air_temperature_c: np.ndarray,
    rule: FrozenRule = "soil_temperature",
    threshold_c: float = 0.0,
) -> np.ndarray:
    """Where a soil-moisture reading is treated as frozen (to be dropped).

    ``soil_temperature``: ``T_soil <= threshold``; where ``T_soil`` is NaN, ``T_air <=
    threshold``; where both are NaN, frozen (unknown is not trusted). ``air_temperature``:
    ``T_air <= threshold`` or NaN. ``none``: never.

    Parameters
    ----------
    soil_temperature_c, air_temperature_c
        Daily mean soil temperature at the sensor and daily mean air temperature, degC.
    rule
        Which temperature decides.
    threshold_c
        Freezing threshold, degC.
    """
    soil = np.asarray(soil_temperature_c, dtype=np.float64)
    air = np.broadcast_to(np.asarray(air_temperature_c, dtype=np.float64), soil.shape)
    if rule == "none":
        return np.zeros(soil.shape, dtype=bool)
    air_frozen = ~(air > threshold_c)  # NaN counts as frozen
    if rule == "air_temperature":
        return air_frozen
    if rule == "soil_temperature":
        return np.where(np.isnan(soil), air_frozen, soil <= threshold_c)
    raise ValueError(
        f"unknown frozen rule {rule!r}; expected soil_temperature, air_temperature, none"
    )


def daily_air_temperature(frame: pd.DataFrame) -> np.ndarray:
    """Daily mean air temperature, degC: ``T_DAILY_AVG`` (mean of the hourly values), else
    ``T_DAILY_MEAN`` ((max + min) / 2) where the former is missing."""
    avg = frame["T_DAILY_AVG"].to_numpy(np.float64)
    return np.where(np.isnan(avg), frame["T_DAILY_MEAN"].to_numpy(np.float64), avg)


def layer_soil_moisture(
    frame: pd.DataFrame, frozen: FrozenRule = "soil_temperature"
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The five layers' soil moisture from the sensors (:data:`LAYER_SENSOR_MAPPING`).

    Parameters
    ----------
    frame
        ``UscrnDaily.frame``.
    frozen
        Frozen-soil rule (:func:`frozen_mask`).

    Returns
    -------
    (wide, report)
        ``wide``: ``station_id``, ``date``, ``sm_l1`` ... ``sm_l5`` (m3 m-3, NaN where not
        observed) for the rows with a sensor reading; ``report``: valid readings per sensor,
        readings dropped as frozen per sensor, layer values per layer.
    """
    air = daily_air_temperature(frame)
    theta: dict[int, np.ndarray] = {}
    report: dict[str, Any] = {"sensor_readings": {}, "dropped_frozen": {}}
    for depth in SENSOR_DEPTHS_CM:
        sm = frame[f"SOIL_MOISTURE_{depth}_DAILY"].to_numpy(np.float64)
        soil_t = frame[f"SOIL_TEMP_{depth}_DAILY"].to_numpy(np.float64)
        is_frozen = frozen_mask(soil_t, air, frozen) & np.isfinite(sm)
        report["sensor_readings"][f"{depth}cm"] = int(np.isfinite(sm).sum())
        report["dropped_frozen"][f"{depth}cm"] = int(is_frozen.sum())
        theta[depth] = np.where(is_frozen, np.nan, sm)
    columns: dict[str, Any] = {
        "station_id": frame["station_id"].to_numpy(),
        "date": frame["date"].to_numpy(),
    }
    for layer, (how, depths, mid) in LAYER_SENSOR_MAPPING.items():
        if how == "mean":
            values = np.mean([theta[d] for d in depths], axis=0)
        else:
            values = interpolate_at_depth(theta[depths[0]], theta[depths[1]], *depths, mid)
        columns[f"sm_l{layer}"] = values
    wide = pd.DataFrame(columns)
    sm_cols = [f"sm_l{k}" for k in range(1, N_LAYERS + 1)]
    wide = wide.loc[wide[sm_cols].notna().any(axis=1)].reset_index(drop=True)
    report["layer_values"] = {c: int(wide[c].notna().sum()) for c in sm_cols}
    return wide, report


# --------------------------------------------------------------------------------------------
# Stations


def uscrn_station_meta(
    frame: pd.DataFrame,
    elevation_grid: str | Path | None = None,
    elevation_method: Literal["nearest", "bilinear"] = "bilinear",
) -> pd.DataFrame:
    """Canonical station metadata of the stations in a daily table.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``station_id``: ``lat``, ``lon`` (the station's last reported position),
        ``elevation`` (m, from ``elevation_grid`` at the station, NaN without a grid),
        ``region`` (``"US"``), ``pattern`` (None: not applicable), ``first_year``,
        ``last_year``, ``wbanno``.
    """
    last = frame.groupby("station_id", sort=True).last()
    years = frame.groupby("station_id", sort=True)["date"].agg(["min", "max"])
    meta = pd.DataFrame(
        {
            "lat": last["LATITUDE"].to_numpy(np.float64),
            "lon": last["LONGITUDE"].to_numpy(np.float64),
            "elevation": np.nan,
            "region": REGION_ID,
            "pattern": None,
            "first_year": years["min"].dt.year.to_numpy(np.int64),
            "last_year": years["max"].dt.year.to_numpy(np.int64),
            "wbanno": last["WBANNO"].astype(str).to_numpy(),
        },
        index=pd.Index(last.index.astype(str), name="station_id"),
    )
    if elevation_grid is not None:
        from cropsm.io.rasters import read_elevation_grid, values_at_points

        grid = read_elevation_grid(elevation_grid)
        meta["elevation"] = values_at_points(
            grid, meta["lat"].to_numpy(), meta["lon"].to_numpy(), method=elevation_method
        )
    return meta


@dataclass(frozen=True, eq=False)
class UscrnStations:
    """USCRN stations in the canonical form (``docs/contracts.md``) plus the read report.

    Attributes
    ----------
    meta, obs
        Canonical station metadata and long observations (``station_id, date, layer, sm``).
    daily
        The parsed daily rows (weather for :mod:`cropsm.io.station_climate`).
    report
        Files, rows, values out of range, frozen readings dropped, observations per layer.
    path
        The USCRN folder (named in errors).
    """

    meta: pd.DataFrame
    obs: pd.DataFrame
    daily: UscrnDaily
    report: dict[str, Any]
    path: Path | None = None


def read_uscrn(
    root: str | Path,
    *,
    stations: list[str] | tuple[str, ...] = (),
    first_year: int | None = None,
    last_year: int | None = None,
    days_of_month: list[int] | tuple[int, ...] = (),
    frozen: FrozenRule = "soil_temperature",
    elevation_grid: str | Path | None = None,
) -> UscrnStations:
    """Read a USCRN daily01 tree into canonical stations (five-layer observations).

    Parameters
    ----------
    root
        Folder with ``YYYY/CRND0103-YYYY-<STATION>.txt``.
    stations, first_year, last_year
        Which files (:func:`find_uscrn_files`).
    days_of_month
        Keep observations of these days of the month only (the paper: 8, 18, 28); empty:
        every day.
    frozen
        Frozen-soil rule (:func:`frozen_mask`).
    elevation_grid
        Elevation grid for the station elevation (:func:`uscrn_station_meta`).

    Returns
    -------
    UscrnStations
    """
    files = find_uscrn_files(root, stations, first_year, last_year)
    daily = read_uscrn_daily(files)
    wide, layer_report = layer_soil_moisture(daily.frame, frozen)
    n_days_with_sm = int(len(wide))
    if days_of_month:
        keep = wide["date"].dt.day.isin(list(days_of_month)).to_numpy()
        wide = wide.loc[keep].reset_index(drop=True)
    obs = wide.melt(id_vars=["station_id", "date"], var_name="layer", value_name="sm")
    obs = obs.loc[obs["sm"].notna()].copy()
    obs["layer"] = obs["layer"].str.slice(4).astype(np.int64)
    obs = obs.sort_values(["station_id", "date", "layer"], kind="stable").reset_index(drop=True)
    meta = uscrn_station_meta(daily.frame, elevation_grid)
    report = {
        "files": len(files),
        "stations_read": int(meta.shape[0]),
        "days_read": int(len(daily.frame)),
        "values_out_of_range": daily.out_of_range,
        **layer_report,
        "days_with_a_layer": n_days_with_sm,
        "days_of_month": list(days_of_month),
        "observations": int(len(obs)),
        "observations_by_layer": {
            f"sm_l{k}": int((obs["layer"] == k).sum()) for k in range(1, N_LAYERS + 1)
        },
        "stations_with_observations": int(obs["station_id"].nunique()),
    }
    return UscrnStations(meta=meta, obs=obs, daily=daily, report=report, path=Path(root))


__all__ = [
    "LAYER_SENSOR_MAPPING",
    "SENSOR_DEPTHS_CM",
    "USCRN_COLUMNS",
    "UscrnDaily",
    "UscrnFile",
    "UscrnInput",
    "UscrnStations",
    "daily_air_temperature",
    "find_uscrn_files",
    "frozen_mask",
    "interpolate_at_depth",
    "layer_soil_moisture",
    "read_uscrn",
    "read_uscrn_daily",
    "uscrn_station_meta",
]
