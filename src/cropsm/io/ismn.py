"""International Soil Moisture Network (ISMN) downloads into canonical five-layer stations.

An ISMN download in the "Header + values" format holds ``ROOT/<NETWORK>/<STATION>/*.stm``, one
file per sensor and variable, named
``<CSE>_<NETWORK>_<STATION>_<variable>_<depth_from>_<depth_to>_<sensor>_<start>_<end>.stm``
(depths in m). The first line of a file is its header::

    CSE  NETWORK  STATION  LATITUDE  LONGITUDE  ELEVATION  DEPTH_FROM  DEPTH_TO  SENSOR

and every other line one measurement ``YYYY/MM/DD HH:MM VALUE ISMN_FLAG PROVIDER_FLAG``
(soil moisture in m3 m-3; ISMN quality flags: ``G`` good, ``C0x`` outside the plausible range,
``D0x`` dubious - D01-D05 among them mark frozen soil from soil or air temperature -, ``M``
missing). Dorigo et al. (2021), Hydrol. Earth Syst. Sci. 25, 5749-5804, describe the network
and its flags. Lines may come in any time order (they are sorted); a line repeating an earlier
one (same time, value and flag) is dropped and counted (``duplicate_lines_dropped`` in the
report), while two lines with the same time and different values are an error naming both. A
header with DEPTH_FROM deeper than DEPTH_TO is an error naming line 1.

Files are read with the ``ismn`` package (``ismn.filehandlers.DataFile``, TU Wien) when it is
installed (``engine="ismn"``), else with the reader of this module for the same format
(``engine="builtin"``); ``engine="auto"`` picks the first available. Both give the same numbers
(checked by the tests). The package's ``ISMN_Interface`` is not used because it writes metadata
files into the data folder.

From sensors to the five 10-cm layers (:func:`layer_weights`)
--------------------------------------------------------------
1. Daily means of each sensor's values whose ISMN flag is good (``G``; ``good_flags``) and that
   lie within 0-0.7 m3 m-3; a day needs at least ``min_values_per_day`` such values. Good values
   outside the range are dropped and counted in the report (``values_out_of_range_dropped``);
   when 90 % or more of a file's good values are outside it, the file is in another unit
   (percent, say) and that is an error naming the file and the values' range.
2. Each sensor covers a depth interval [a, b]. A sensor at one depth (a = b = z) counts for the
   layers whose top <= z <= bottom (weight 1; a sensor exactly on a boundary, e.g. 10 cm, counts
   for both layers). A sensor over an interval counts for layer [t, u] with weight equal to the
   overlapping share of the layer, ``w = (min(b, u) - max(a, t)) / (u - t)``, when that share is
   at least ``min_overlap_fraction`` (default 0.5).
3. A layer's daily value is the weighted mean of the sensors that count for it and have a value
   that day, ``theta_k = sum_i w_ik theta_i / sum_i w_ik``.

Stations: ``station_id`` is ``<NETWORK>.<STATION>``; ``lat``, ``lon``, ``elevation`` from the
headers; ``region`` is the network name; ``pattern`` is missing (ISMN has no cropping pattern):
switch the ``pattern`` group off. ISMN has no station-level humidity or radiation, so its
stations take their climate from a grid (``[inputs.ismn] climate``, the nearest cell).

Soil from the station's static variables (:func:`read_static_variables`, :func:`soil_by_layer`)
----------------------------------------------------------------------------------------------
Each station folder ships ``<NETWORK>_<NETWORK>_<STATION>_static_variables.csv``: semicolon
separated, header ``quantity_name;unit;depth_from[m];depth_to[m];value;description;
quantity_source_name;...``, one row per quantity and depth interval. Soil rows (HWSD v1.1 at
0-0.30 and 0.30-1.00 m): ``clay fraction``, ``sand fraction``, ``silt fraction`` (``% weight``),
``organic carbon`` (``% weight``) and ``saturation`` (``m^3*m^-3``); other rows without depths:
``land cover classification`` (ESA CCI, one row per epoch) and ``climate classification``
(Koeppen-Geiger). Rows with depth ``-99.90`` (an in-situ value of unknown depth) are not used.

A model layer [t, u] takes the depth-overlap-weighted mean of the intervals [a, b] given for a
quantity, ``v_k = sum_i o_ik v_i / sum_i o_ik`` with ``o_ik = max(0, min(b_i, u) - max(a_i, t))``;
with the HWSD depths, layers 0-10, 10-20 and 20-30 cm take the 0-30 cm value and layers 30-40
and 40-50 cm the 30-100 cm value. Bulk density follows from saturation (total porosity) with the
mineral particle density used throughout the package, ``rho_b = 2.65 (1 - theta_s)`` g cm-3
(the inverse of the porosity ``phi = 1 - rho_b / 2.65`` that bounds the networks' output). ISMN
publishes no soil pH: the ``ph`` column is :data:`UNKNOWN_SOIL_PH` at every station, a
constant that carries no information (the networks standardise it to zero).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import ConfigDict, Field

from cropsm import LAYER_BOTTOM_CM, LAYER_TOP_CM, N_LAYERS
from cropsm.errors import InputError
from cropsm.io.record_selection import RecordSelection

Engine = Literal["auto", "ismn", "builtin"]

VOLUMETRIC_RANGE = (0.0, 0.7)
"""Plausible volumetric water content, m3 m-3; values outside are dropped (and counted)."""

UNIT_ERROR_SHARE = 0.9
"""A file whose good-flag values lie outside :data:`VOLUMETRIC_RANGE` this often or more is in
another unit (percent, say): an error, not a silent drop of the whole sensor."""

GOOD_FLAGS: tuple[str, ...] = ("G",)
"""ISMN quality flags kept by default."""

HEADER_FIELDS = (
    "cse",
    "network",
    "station",
    "latitude",
    "longitude",
    "elevation",
    "depth_from",
    "depth_to",
    "sensor",
)
"""Fields of the header line of a ``.stm`` file, in order."""


@dataclass(frozen=True)
class SensorSeries:
    """One ``.stm`` file: its sensor metadata and measurements.

    Attributes
    ----------
    path
        The file.
    network, station, sensor, variable
        From the header and file name.
    lat, lon, elevation
        Degrees, degrees, m.
    depth_from_cm, depth_to_cm
        The sensor's depth interval, cm (equal for a sensor at one depth).
    data
        ``time`` (datetime64[ns], ascending, unique), ``value`` (float), ``flag`` (str).
    duplicates_dropped
        Lines that repeated an earlier line (same time, value and flag) and were dropped.
    """

    path: Path
    network: str
    station: str
    sensor: str
    variable: str
    lat: float
    lon: float
    elevation: float
    depth_from_cm: float
    depth_to_cm: float
    data: pd.DataFrame
    duplicates_dropped: int = 0


# --------------------------------------------------------------------------------------------
# Finding and reading files


def find_ismn_files(
    root: str | Path,
    variable: str = "sm",
    networks: list[str] | tuple[str, ...] = (),
    stations: list[str] | tuple[str, ...] = (),
) -> list[Path]:
    """The ``.stm`` files of one variable under an ISMN download folder.

    Parameters
    ----------
    root
        The download folder (``ROOT/<NETWORK>/<STATION>/*.stm``).
    variable
        Variable token of the file names (``sm`` for soil moisture).
    networks, stations
        Keep only these networks / stations (empty: all).

    Raises
    ------
    InputError
        When ``root`` is missing or holds no matching files.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(
            root, None, "ISMN folder not found; expected ROOT/<NETWORK>/<STATION>/*.stm"
        )
    out = []
    for path in sorted(root.rglob("*.stm")):
        parts = path.name.split("_")
        if len(parts) < 9 or parts[3] != variable:
            continue
        rel = path.relative_to(root).parts
        if networks and (len(rel) < 3 or rel[0] not in networks):
            continue
        if stations and (len(rel) < 3 or rel[1] not in stations):
            continue
        out.append(path)
    if not out:
        raise InputError(
            root,
            None,
            f"holds no ISMN '{variable}' files (*_{variable}_<from>_<to>_<sensor>_*.stm) for the "
            "chosen networks and stations",
        )
    return out


def _header(path: Path, line: str) -> dict[str, Any]:
    parts = line.split()
    if len(parts) < len(HEADER_FIELDS):
        raise InputError(
            path,
            "line 1",
            f"{len(parts)} header fields; expected {len(HEADER_FIELDS)}: "
            + " ".join(f.upper() for f in HEADER_FIELDS)
            + " (ISMN 'Header + values' format)",
        )
    header: dict[str, Any] = dict(zip(HEADER_FIELDS[:3], parts[:3], strict=True))
    for name, text in zip(HEADER_FIELDS[3:8], parts[3:8], strict=True):
        try:
            header[name] = float(text)
        except ValueError:
            raise InputError(
                path, f"line 1, header field {name.upper()}", f"{text!r} is not a number"
            ) from None
    if header["depth_from"] > header["depth_to"]:
        raise InputError(
            path,
            "line 1, header fields DEPTH_FROM and DEPTH_TO",
            f"depth_from {header['depth_from']:g} m is deeper than depth_to "
            f"{header['depth_to']:g} m; expected DEPTH_FROM <= DEPTH_TO (m below the surface, "
            "the top of the sensor first; equal for a sensor at one depth)",
        )
    header["sensor"] = " ".join(parts[8:])
    return header


def _read_builtin(path: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    """Parse one ``.stm`` file (header line + ``date time value flag provider_flag`` lines).

    The data keep the file's order and carry each measurement's ``line`` number (1: header).
    """
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise InputError(path, None, f"cannot be read ({exc.strerror})") from None
    lines = text.splitlines()
    if not lines:
        raise InputError(path, None, "empty; expected a header line and measurements")
    header = _header(path, lines[0])
    body = [(i + 2, line) for i, line in enumerate(lines[1:]) if line.strip()]
    if not body:
        return header, pd.DataFrame(
            {"time": pd.to_datetime([]), "value": [], "flag": [], "line": []}
        ).astype({"value": np.float64, "flag": object, "line": np.int64})
    counts = np.array([len(line.split()) for _, line in body])
    bad = np.flatnonzero((counts < 4) | (counts > 5))
    if bad.size:
        number, line = body[int(bad[0])]
        raise InputError(
            path,
            f"line {number}",
            f"{counts[bad[0]]} fields; expected 'YYYY/MM/DD HH:MM VALUE FLAG PROVIDER_FLAG'",
        )
    frame = pd.read_csv(
        io.StringIO("\n".join(line for _, line in body)),
        sep=r"\s+",
        header=None,
        names=["date", "clock", "value", "flag", "provider_flag"],
        dtype=str,
        keep_default_na=False,
    )
    time = pd.to_datetime(
        frame["date"] + " " + frame["clock"], format="%Y/%m/%d %H:%M", errors="coerce"
    )
    if time.isna().any():
        i = int(np.flatnonzero(time.isna().to_numpy())[0])
        raise InputError(
            path,
            f"line {body[i][0]}",
            f"{frame['date'].iloc[i]} {frame['clock'].iloc[i]!s} is not a time 'YYYY/MM/DD HH:MM'",
        )
    value = pd.to_numeric(frame["value"], errors="coerce")
    if value.isna().any():
        i = int(np.flatnonzero(value.isna().to_numpy())[0])
        raise InputError(
            path, f"line {body[i][0]}, column VALUE", f"{frame['value'].iloc[i]!r} is not a number"
        )
    data = pd.DataFrame(
        {
            "time": time.to_numpy(),
            "value": value.to_numpy(np.float64),
            "flag": frame["flag"],
            "line": np.array([number for number, _ in body], dtype=np.int64),
        }
    )
    return header, data


def _read_with_ismn(path: Path, root: Path) -> tuple[dict[str, Any], pd.DataFrame]:
    from ismn.filehandlers import DataFile

    try:
        handle = DataFile(root, path.relative_to(root))
        data = handle.read_data()
    except Exception as exc:  # noqa: BLE001 - any failure to read is the user's file
        text = " ".join(str(exc).split())[-200:]
        raise InputError(
            path, None, f"cannot be read by the ismn package ({type(exc).__name__}: {text})"
        ) from None
    meta = handle.metadata
    depth = meta["instrument"].depth
    header = {
        "cse": meta["network"].val,
        "network": meta["network"].val,
        "station": meta["station"].val,
        "latitude": float(meta["latitude"].val),
        "longitude": float(meta["longitude"].val),
        "elevation": float(meta["elevation"].val),
        "depth_from": float(depth.start),
        "depth_to": float(depth.end),
        "sensor": str(meta["instrument"].val),
    }
    variable = meta["variable"].val
    frame = pd.DataFrame(
        {
            "time": pd.DatetimeIndex(data.index).to_numpy().astype("datetime64[ns]"),
            "value": data[variable].to_numpy(np.float64),
            "flag": data[f"{variable}_flag"].astype(str).to_numpy(),
        }
    )
    return header, frame


def _ismn_available() -> bool:
    try:
        import ismn.filehandlers  # noqa: F401
    except ImportError:
        return False
    return True


def _measurement(row: pd.Series) -> str:
    return f"{row['time']:%Y/%m/%d %H:%M} {row['value']:g} {row['flag']}"


def _in_time_order(path: Path, data: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The measurements sorted by time, repeated identical lines dropped.

    Returns
    -------
    (data, duplicates)
        ``time``, ``value``, ``flag`` in time order (the file's order among equal times), and
        the number of repeated lines dropped (same time, value and ISMN flag as an earlier one).

    Raises
    ------
    InputError
        Two lines with the same time but a different value or flag, naming both lines (when
        ``data`` has no ``line`` column, the file is read again by the built-in reader to
        find them).
    """
    data = data.sort_values("time", kind="stable", ignore_index=True)
    repeated = data["time"].duplicated(keep="first").to_numpy()
    if not repeated.any():
        return data[["time", "value", "flag"]], 0
    time = data["time"].to_numpy()
    starts = np.r_[True, time[1:] != time[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(data)), 0))  # of each time
    value = data["value"].to_numpy(np.float64)
    flag = data["flag"].astype(str).to_numpy()
    same = ((value == value[first]) | (np.isnan(value) & np.isnan(value[first]))) & (
        flag == flag[first]
    )
    conflict = repeated & ~same
    if conflict.any():
        if "line" not in data:  # another engine: find the lines with the built-in reader
            _in_time_order(path, _read_builtin(path)[1])
        i = int(np.flatnonzero(conflict)[0])
        j = int(first[i])
        where = (
            f"lines {data['line'].iloc[j]} and {data['line'].iloc[i]}" if "line" in data else None
        )
        raise InputError(
            path,
            where,
            f"two measurements at the same time, '{_measurement(data.iloc[j])}' and "
            f"'{_measurement(data.iloc[i])}'; expected one value per time (a repeated identical "
            "line is dropped)",
        )
    data = data.loc[~repeated].reset_index(drop=True)
    return data[["time", "value", "flag"]], int(repeated.sum())


def read_ismn_file(path: str | Path, root: str | Path, engine: Engine = "auto") -> SensorSeries:
    """Read one ISMN ``.stm`` file.

    Parameters
    ----------
    path
        The file, inside ``root``.
    root
        The download folder (the ``ismn`` package reads paths relative to it).
    engine
        ``ismn``, ``builtin`` or ``auto`` (``ismn`` when installed).

    Returns
    -------
    SensorSeries
        The measurements in time order (a file written newest first is read the same as one
        written oldest first); a repeated identical line is dropped and counted in
        ``duplicates_dropped``.

    Raises
    ------
    InputError
        A malformed header or line (naming it), a depth interval with DEPTH_FROM deeper than
        DEPTH_TO, two lines with the same time and different values (naming both), or
        ``engine="ismn"`` without the package.
    """
    path, root = Path(path), Path(root)
    if engine == "auto":
        engine = "ismn" if _ismn_available() else "builtin"
    if engine == "ismn":
        if not _ismn_available():
            raise InputError(path, None, "engine 'ismn' needs the ismn package (pip install ismn)")
        _read_builtin_header_only(path)  # precise errors for a malformed header
        header, data = _read_with_ismn(path, root)
    elif engine == "builtin":
        header, data = _read_builtin(path)
    else:
        raise ValueError(f"unknown engine {engine!r}; expected auto, ismn or builtin")
    data, duplicates = _in_time_order(path, data)
    name_parts = path.name.split("_")
    return SensorSeries(
        path=path,
        network=str(header["network"]),
        station=str(header["station"]),
        sensor=str(header["sensor"]),
        variable=name_parts[3] if len(name_parts) > 3 else "sm",
        lat=float(header["latitude"]),
        lon=float(header["longitude"]),
        elevation=float(header["elevation"]),
        depth_from_cm=100.0 * float(header["depth_from"]),
        depth_to_cm=100.0 * float(header["depth_to"]),
        data=data,
        duplicates_dropped=duplicates,
    )


def _read_builtin_header_only(path: Path) -> None:
    with path.open("r", encoding="ascii", errors="replace") as handle:
        first = handle.readline()
    if not first.strip():
        raise InputError(path, "line 1", "empty; expected the ISMN header line")
    _header(path, first)


# --------------------------------------------------------------------------------------------
# Sensors to layers


def layer_weights(
    depth_from_cm: float, depth_to_cm: float, min_overlap_fraction: float = 0.5
) -> np.ndarray:
    """Weight of one sensor in each of the five layers (module docstring, step 2).

    Parameters
    ----------
    depth_from_cm, depth_to_cm
        The sensor's depth interval, cm (equal for a sensor at one depth).
    min_overlap_fraction
        Least share of a layer an interval sensor must cover to count for it.

    Returns
    -------
    numpy.ndarray
        Shape (5,), weights >= 0 (0: the sensor does not count for that layer).

    Examples
    --------
    >>> layer_weights(5, 5).tolist()
    [1.0, 0.0, 0.0, 0.0, 0.0]
    >>> layer_weights(10, 10).tolist()
    [1.0, 1.0, 0.0, 0.0, 0.0]
    >>> layer_weights(0, 19).round(2).tolist()
    [1.0, 0.9, 0.0, 0.0, 0.0]
    """
    a, b = float(depth_from_cm), float(depth_to_cm)
    if b < a:
        raise ValueError(f"depth_to {b} cm is above depth_from {a} cm")
    top = np.asarray(LAYER_TOP_CM, dtype=np.float64)
    bottom = np.asarray(LAYER_BOTTOM_CM, dtype=np.float64)
    if a == b:
        return ((top <= a) & (a <= bottom)).astype(np.float64)
    share = np.clip(np.minimum(b, bottom) - np.maximum(a, top), 0.0, None) / (bottom - top)
    return np.where(share >= min_overlap_fraction - 1e-12, share, 0.0)


def daily_sensor_means(
    data: pd.DataFrame,
    good_flags: tuple[str, ...] = GOOD_FLAGS,
    min_values_per_day: int = 1,
) -> pd.Series:
    """Daily means of one sensor's good values (module docstring, step 1).

    Returns
    -------
    pandas.Series
        Indexed by day (datetime64[ns] at midnight), m3 m-3.
    """
    value = data["value"].to_numpy(np.float64)
    keep = data["flag"].astype(str).isin(good_flags).to_numpy()
    keep &= (value >= VOLUMETRIC_RANGE[0]) & (value <= VOLUMETRIC_RANGE[1])
    kept = pd.Series(value[keep], index=pd.DatetimeIndex(data["time"].to_numpy()[keep]).normalize())
    kept = kept.sort_index(kind="stable")  # pandas cannot group a descending index
    grouped = kept.groupby(level=0)
    means = grouped.mean()
    return means.loc[grouped.size() >= min_values_per_day]


def values_out_of_range(series: SensorSeries, good_flags: tuple[str, ...] = GOOD_FLAGS) -> int:
    """The number of a sensor's good-flag values outside :data:`VOLUMETRIC_RANGE`.

    :func:`daily_sensor_means` drops them; :func:`read_ismn` counts them in its report.

    Raises
    ------
    InputError
        When :data:`UNIT_ERROR_SHARE` or more of the good-flag values are outside the range:
        the file's values are in another unit (naming the file, the values' range and m3 m-3).
    """
    data = series.data
    good = data["flag"].astype(str).isin(good_flags).to_numpy()
    value = data["value"].to_numpy(np.float64)[good]
    value = value[np.isfinite(value)]
    lo, hi = VOLUMETRIC_RANGE
    outside = int(((value < lo) | (value > hi)).sum())
    if outside and outside >= UNIT_ERROR_SHARE * value.size:
        raise InputError(
            series.path,
            "column VALUE",
            f"{outside} of the {value.size} values flagged {'/'.join(good_flags)} lie outside "
            f"{lo:g}-{hi:g} (they range from {value.min():g} to {value.max():g}); expected soil "
            "moisture in m3 m-3 (a sensor in percent: divide its values by 100)",
        )
    return outside


@dataclass(frozen=True, eq=False)
class IsmnStations:
    """ISMN stations in the canonical form (``docs/contracts.md``) plus the read report."""

    meta: pd.DataFrame
    obs: pd.DataFrame
    report: dict[str, Any]
    path: Path | None = None


def read_ismn(
    root: str | Path,
    *,
    networks: list[str] | tuple[str, ...] = (),
    stations: list[str] | tuple[str, ...] = (),
    first_year: int | None = None,
    last_year: int | None = None,
    engine: Engine = "auto",
    good_flags: tuple[str, ...] = GOOD_FLAGS,
    min_values_per_day: int = 1,
    min_overlap_fraction: float = 0.5,
    days_of_month: list[int] | tuple[int, ...] = (),
) -> IsmnStations:
    """Read an ISMN download into canonical stations with five-layer daily observations.

    Parameters
    ----------
    root
        The download folder.
    networks, stations
        Which networks / stations (folder names; empty: all).
    first_year, last_year
        Keep days in this inclusive year range.
    engine
        ``auto``, ``ismn`` or ``builtin`` (:func:`read_ismn_file`).
    good_flags
        ISMN flags whose values are used.
    min_values_per_day
        Least number of good values for a daily mean.
    min_overlap_fraction
        Least share of a layer an interval sensor must cover (:func:`layer_weights`).
    days_of_month
        Keep observations of these days of the month only (the paper: 8, 18, 28).

    Returns
    -------
    IsmnStations
        ``meta`` (``station_id`` ``<NETWORK>.<STATION>``, ``lat``, ``lon``, ``elevation``,
        ``region`` = network, ``pattern`` None, ``first_year``, ``last_year``), ``obs``
        (``station_id, date, layer, sm``), ``report`` (files, sensors per layer, observations,
        and over the sensors used: ``duplicate_lines_dropped``, repeated identical lines, and
        ``values_out_of_range_dropped``, good-flag values outside 0-0.7 m3 m-3).

    Raises
    ------
    InputError
        Malformed files (:func:`read_ismn_file`), a file whose values are in another unit
        (:func:`values_out_of_range`), or a station whose sensors report different coordinates.
    """
    root = Path(root)
    files = find_ismn_files(root, "sm", networks, stations)
    sums: dict[str, pd.DataFrame] = {}
    weights_sum: dict[str, pd.DataFrame] = {}
    station_info: dict[str, dict[str, Any]] = {}
    sensors_by_layer = np.zeros(N_LAYERS, dtype=np.int64)
    unused = 0
    out_of_range = 0
    duplicates = 0
    for path in files:
        series = read_ismn_file(path, root, engine)
        sid = f"{series.network}.{series.station}"
        info = station_info.setdefault(
            sid,
            {"lat": series.lat, "lon": series.lon, "elevation": series.elevation, "path": path,
             "network": series.network},
        )  # fmt: skip
        if abs(info["lat"] - series.lat) > 1e-3 or abs(info["lon"] - series.lon) > 1e-3:
            raise InputError(
                path,
                "line 1",
                f"station {sid!r} at lat {series.lat:g}, lon {series.lon:g} here but at lat "
                f"{info['lat']:g}, lon {info['lon']:g} in {info['path'].name}; expected one "
                "position per station",
            )
        w = layer_weights(series.depth_from_cm, series.depth_to_cm, min_overlap_fraction)
        if not w.any():
            unused += 1
            continue
        sensors_by_layer += w > 0
        duplicates += series.duplicates_dropped
        out_of_range += values_out_of_range(series, good_flags)
        daily = daily_sensor_means(series.data, good_flags, min_values_per_day)
        if daily.empty:
            continue
        contribution = pd.DataFrame(
            np.outer(daily.to_numpy(), w), index=daily.index, columns=range(1, N_LAYERS + 1)
        )
        present = pd.DataFrame(
            np.outer(np.ones(daily.size), w), index=daily.index, columns=range(1, N_LAYERS + 1)
        )
        if sid in sums:
            sums[sid] = sums[sid].add(contribution, fill_value=0.0)
            weights_sum[sid] = weights_sum[sid].add(present, fill_value=0.0)
        else:
            sums[sid], weights_sum[sid] = contribution, present
    parts = []
    for sid in sums:
        with np.errstate(invalid="ignore", divide="ignore"):
            layer_values = sums[sid] / weights_sum[sid].where(weights_sum[sid] > 0)
        long = (
            layer_values.rename_axis("date")
            .reset_index()
            .melt(id_vars="date", var_name="layer", value_name="sm")
        )
        long.insert(0, "station_id", sid)
        parts.append(long.dropna(subset=["sm"]))
    columns = ["station_id", "date", "layer", "sm"]
    obs = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    obs = obs[columns]
    if first_year is not None:
        obs = obs.loc[pd.to_datetime(obs["date"]).dt.year >= first_year]
    if last_year is not None:
        obs = obs.loc[pd.to_datetime(obs["date"]).dt.year <= last_year]
    if days_of_month:
        obs = obs.loc[pd.to_datetime(obs["date"]).dt.day.isin(list(days_of_month))]
    obs = obs.astype({"layer": np.int64, "sm": np.float64})
    obs["date"] = pd.to_datetime(obs["date"]).astype("datetime64[ns]")
    obs = obs.sort_values(["station_id", "date", "layer"], kind="stable").reset_index(drop=True)
    years = obs.groupby("station_id")["date"].agg(["min", "max"])
    ids = sorted(station_info)
    meta = pd.DataFrame(
        {
            "lat": [station_info[s]["lat"] for s in ids],
            "lon": [station_info[s]["lon"] for s in ids],
            "elevation": [station_info[s]["elevation"] for s in ids],
            "region": [station_info[s]["network"] for s in ids],
            "pattern": None,
        },
        index=pd.Index(ids, name="station_id"),
    )
    meta["first_year"] = years["min"].dt.year.reindex(meta.index).astype("Int64")
    meta["last_year"] = years["max"].dt.year.reindex(meta.index).astype("Int64")
    report = {
        "files": len(files),
        "sensors_unused_below_50cm": unused,
        "sensors_by_layer": {f"sm_l{k + 1}": int(n) for k, n in enumerate(sensors_by_layer)},
        "duplicate_lines_dropped": duplicates,
        "values_out_of_range_dropped": out_of_range,
        "stations": len(ids),
        "observations": int(len(obs)),
        "observations_by_layer": {
            f"sm_l{k}": int((obs["layer"] == k).sum()) for k in range(1, N_LAYERS + 1)
        },
    }
    return IsmnStations(meta=meta, obs=obs, report=report, path=root)


# --------------------------------------------------------------------------------------------
# Static variables: the station's soil, land cover and climate class

STATIC_VARIABLES_SUFFIX = "_static_variables.csv"
"""End of the static-variables file name in each station folder."""

STATIC_COLUMNS = ("quantity_name", "unit", "depth_from[m]", "depth_to[m]", "value")
"""Leading columns of a static-variables file, in order."""

SOIL_QUANTITIES: dict[str, tuple[str, str]] = {
    "clay fraction": ("clay", "% weight"),
    "sand fraction": ("sand", "% weight"),
    "silt fraction": ("silt", "% weight"),
    "organic carbon": ("organic_carbon", "% weight"),
    "saturation": ("saturation", "m^3*m^-3"),
}
"""ISMN quantity name -> (our name, the unit the file must declare)."""

SOIL_RANGES: dict[str, tuple[float, float]] = {
    "clay": (0.0, 100.0),
    "sand": (0.0, 100.0),
    "silt": (0.0, 100.0),
    "organic_carbon": (0.0, 100.0),
    "saturation": (0.05, 0.95),
}
"""Plausible ranges of the soil quantities (%, %, %, %, m3 m-3)."""

PARTICLE_DENSITY_G_CM3 = 2.65
"""Mineral particle density, g cm-3 (as in ``cropsm.train.bounds``)."""

UNKNOWN_SOIL_PH = 7.0
"""The ``ph`` of every ISMN station: ISMN publishes no pH (a constant, no information)."""


@dataclass(frozen=True)
class StaticVariables:
    """One station's ``*_static_variables.csv``.

    Attributes
    ----------
    path
        The file.
    soil
        ``quantity`` (``clay``, ``sand``, ``silt``, ``organic_carbon``, ``saturation``),
        ``depth_from_cm``, ``depth_to_cm``, ``value`` (``%`` or ``m3 m-3``).
    land_cover
        The latest land-cover class description (ESA CCI), or None.
    climate_class
        The Koeppen-Geiger class (e.g. ``Cfa``), or None.
    """

    path: Path
    soil: pd.DataFrame
    land_cover: str | None
    climate_class: str | None


def find_static_variables(station_dir: str | Path) -> Path | None:
    """The static-variables file of a station folder, or None when it has none."""
    found = sorted(Path(station_dir).glob(f"*{STATIC_VARIABLES_SUFFIX}"))
    return found[0] if found else None


def _static_number(path: Path, line: int, column: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(path, f"line {line}", f"{column} {text!r} is not a number") from None


def read_static_variables(path: str | Path) -> StaticVariables:
    """Read an ISMN ``*_static_variables.csv`` (format: module docstring).

    Raises
    ------
    InputError
        One line naming the file and the line: a header that is not the ISMN one, a soil row
        with a missing or non-numeric depth or value, a unit other than the expected one, a value
        out of range, or no soil row at all.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    rows = list(csv.reader(io.StringIO(text), delimiter=";", quoting=csv.QUOTE_NONE))
    header = [c.strip() for c in rows[0]] if rows else []
    if tuple(header[: len(STATIC_COLUMNS)]) != STATIC_COLUMNS:
        raise InputError(
            path, "line 1", f"header {';'.join(header[:5])!r}; expected {';'.join(STATIC_COLUMNS)}"
        )
    soil = []
    land_cover: list[tuple[str, str]] = []
    climate_class = None
    for i, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        cells = [c.strip() for c in row] + [""] * 6
        name, unit, d0, d1, value, description = cells[:6]
        source = cells[6] if len(cells) > 6 else ""
        if name == "land cover classification":
            land_cover.append((source, description or value))
        elif name == "climate classification":
            climate_class = value or None
        elif name in SOIL_QUANTITIES:
            ours, expected_unit = SOIL_QUANTITIES[name]
            top = _static_number(path, i, "depth_from[m]", d0)
            bottom = _static_number(path, i, "depth_to[m]", d1)
            if top < 0 or bottom < 0:
                continue  # -99.90: unknown depth
            if unit != expected_unit:
                raise InputError(path, f"line {i}", f"{name} in {unit!r}; expected {expected_unit}")
            v = _static_number(path, i, "value", value)
            lo, hi = SOIL_RANGES[ours]
            if not lo <= v <= hi or bottom <= top:
                raise InputError(
                    path,
                    f"line {i}",
                    f"{name} {v:g} over {top:g}-{bottom:g} m; expected {lo:g}-{hi:g} over a "
                    "depth interval with depth_to > depth_from",
                )
            soil.append((ours, top * 100.0, bottom * 100.0, v))
    if not soil:
        raise InputError(
            path, None, f"no soil row; expected {', '.join(SOIL_QUANTITIES)} with depths in m"
        )
    frame = pd.DataFrame(soil, columns=["quantity", "depth_from_cm", "depth_to_cm", "value"])
    latest = sorted(land_cover)[-1][1] if land_cover else None
    return StaticVariables(path, frame, latest, climate_class)


def depth_overlap_mean(intervals: pd.DataFrame, top_cm: float, bottom_cm: float) -> float:
    """The overlap-weighted mean of ``value`` over a layer [top, bottom] (NaN if none overlaps).

    ``v = sum_i o_i v_i / sum_i o_i``, ``o_i = max(0, min(b_i, bottom) - max(a_i, top))``.
    """
    a = intervals["depth_from_cm"].to_numpy(np.float64)
    b = intervals["depth_to_cm"].to_numpy(np.float64)
    overlap = np.clip(np.minimum(b, bottom_cm) - np.maximum(a, top_cm), 0.0, None)
    if overlap.sum() <= 0:
        return float("nan")
    return float((overlap * intervals["value"].to_numpy(np.float64)).sum() / overlap.sum())


def soil_by_layer(static: StaticVariables) -> dict[str, np.ndarray]:
    """The station's soil on the model's five layers (module docstring).

    Returns
    -------
    dict
        ``sand``, ``silt``, ``clay`` (%), ``bd`` (g cm-3, from saturation), ``ph``
        (:data:`UNKNOWN_SOIL_PH`) and ``organic_carbon`` (%), each of length 5.

    Raises
    ------
    InputError
        When a quantity the soil group needs does not reach a layer (naming the file).
    """
    out: dict[str, np.ndarray] = {}
    for ours in ("sand", "silt", "clay", "saturation", "organic_carbon"):
        rows = static.soil.loc[static.soil["quantity"] == ours]
        out[ours] = np.array(
            [
                depth_overlap_mean(rows, t, u)
                for t, u in zip(LAYER_TOP_CM, LAYER_BOTTOM_CM, strict=True)
            ]
        )
    for ours in ("sand", "silt", "clay", "saturation"):
        if np.isnan(out[ours]).any():
            k = int(np.flatnonzero(np.isnan(out[ours]))[0])
            name = next(n for n, (o, _) in SOIL_QUANTITIES.items() if o == ours)
            raise InputError(
                static.path,
                name,
                f"does not cover layer {k + 1} ({LAYER_TOP_CM[k]}-{LAYER_BOTTOM_CM[k]} cm); "
                "expected depth intervals over 0-0.5 m",
            )
    out["bd"] = PARTICLE_DENSITY_G_CM3 * (1.0 - out.pop("saturation"))
    out["ph"] = np.full(N_LAYERS, UNKNOWN_SOIL_PH)
    return out


def station_soil_columns(
    root: str | Path, station_ids: list[str] | pd.Index
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Soil columns ``<name>_l<k>`` (ph, sand, silt, clay, bd) of ISMN stations.

    Parameters
    ----------
    root
        The download folder; station ``NET.STATION`` lives in ``ROOT/NET/STATION/``.
    station_ids
        ``<NETWORK>.<STATION>`` ids.

    Returns
    -------
    (frame, report)
        ``frame`` indexed by station id with 25 soil columns plus ``land_cover`` and
        ``climate_class``; ``report`` lists the files read.

    Raises
    ------
    InputError
        A station folder without a static-variables file (naming the folder and the expected
        file, and how to run without soil), or a malformed file (:func:`read_static_variables`).
    """
    root = Path(root)
    rows = {}
    files = []
    for sid in station_ids:
        network, station = str(sid).split(".", 1)
        folder = root / network / station
        path = find_static_variables(folder)
        if path is None:
            raise InputError(
                folder,
                None,
                f"no {network}_{network}_{station}{STATIC_VARIABLES_SUFFIX}; expected the ISMN "
                "static variables (soil) beside the .stm files, or switch the soil group off "
                '([features] groups_off = ["soil"])',
            )
        static = read_static_variables(path)
        layers = soil_by_layer(static)
        row: dict[str, Any] = {
            f"{name}_l{k + 1}": float(layers[name][k])
            for k in range(N_LAYERS)
            for name in ("ph", "sand", "silt", "clay", "bd")
        }
        row["land_cover"] = static.land_cover
        row["climate_class"] = static.climate_class
        rows[str(sid)] = row
        files.append(str(path))
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "station_id"
    report = {
        "static_variables_files": len(files),
        "soil_ph": f"not in the ISMN static variables: {UNKNOWN_SOIL_PH} at every station "
        "(no information for the networks)",
    }
    return frame, report


# --------------------------------------------------------------------------------------------
# The [inputs.ismn] section of a run configuration


class IsmnInput(RecordSelection):
    """The ``[inputs.ismn]`` section: an ISMN "Header + values" download and a climate grid.

    ISMN stations carry no weather of their own: each takes the climate of its nearest cell of
    the ERA-style ``climate`` files. Soil comes from the stations' static variables.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    root: Path = Field(description="The download folder: ROOT/<NETWORK>/<STATION>/*.stm.")
    climate: list[str] = Field(
        description="ERA-style netCDF files or glob patterns covering the stations and period."
    )
    networks: list[str] = Field(default_factory=list, description="Networks to read; empty: all.")
    stations: list[str] = Field(
        default_factory=list, description="Station folder names to read; empty: all."
    )
    first_year: int | None = Field(None, description="First year to read (default: all).")
    last_year: int | None = Field(None, description="Last year to read (default: all).")
    days_of_month: list[int] = Field(
        default_factory=list,
        description="Keep observations of these days of the month only ([8, 18, 28] as in the "
        "paper); empty: every day.",
    )
    engine: Engine = Field(
        "auto", description="Reader: auto (the ismn package when installed), ismn or builtin."
    )

    def resolve_paths(self, base: Path) -> IsmnInput:
        """Copy with ``root`` and the climate paths made absolute against ``base``."""
        root = self.root if self.root.is_absolute() else (base / self.root).resolve()
        climate = [s if Path(s).is_absolute() else str((base / s).resolve()) for s in self.climate]
        return self.model_copy(update={"root": root, "climate": climate})


__all__ = [
    "GOOD_FLAGS",
    "UNKNOWN_SOIL_PH",
    "IsmnInput",
    "IsmnStations",
    "SensorSeries",
    "StaticVariables",
    "daily_sensor_means",
    "depth_overlap_mean",
    "find_ismn_files",
    "find_static_variables",
    "layer_weights",
    "read_ismn",
    "read_ismn_file",
    "read_static_variables",
    "soil_by_layer",
    "station_soil_columns",
    "values_out_of_range",
]
