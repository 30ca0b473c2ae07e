"""Station metadata and soil-moisture observations (CSV or Parquet) into canonical tables.

Row numbers in errors are the rows of the file as a person sees them: in a CSV the header is
row 1 and the first data row is row 2 (blank lines count); in a Parquet file the first record is
row 1.

Gravimetric observations (``sm_type = gravimetric``, g g-1) are converted to volumetric water
content with the station's bulk density of the layer: ``theta_v = w * rho_b / rho_w``, with
``rho_w = 1 g cm-3``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cropsm import N_LAYERS, catalog
from cropsm.errors import InputError
from cropsm.io import grid_step

META_COLUMNS = (
    "station_id",
    "lat",
    "lon",
    "elevation",
    "region",
    "pattern",
    "first_year",
    "last_year",
)
"""Required columns of the station metadata file."""

OBS_COLUMNS = ("station_id", "date", "layer", "sm")
"""Required columns of the observations file."""

BD_COLUMNS = tuple(f"bd_layer{layer}" for layer in range(1, N_LAYERS + 1))
"""Optional bulk-density columns (g cm-3), one per layer, needed by gravimetric stations."""

SM_TYPES = ("volumetric", "gravimetric")
VOLUMETRIC_RANGE = (0.0, 0.7)
"""Physical range of volumetric water content, m3 m-3."""
GRAVIMETRIC_RANGE = (0.0, 0.6)
"""Physical range of gravimetric water content, g g-1."""
BULK_DENSITY_RANGE = (0.8, 2.0)
"""Plausible range of soil bulk density, g cm-3."""
ELEVATION_RANGE = (-500.0, 9000.0)
YEAR_RANGE = (1900, 2100)
WATER_DENSITY_G_CM3 = 1.0


@dataclass(frozen=True, eq=False)
class StationData:
    """Station metadata and observations in the canonical form of ``docs/contracts.md``.

    Attributes
    ----------
    meta
        Indexed by ``station_id`` (str); columns ``lat``, ``lon`` (degrees, lon in -180..180),
        ``elevation`` (m), ``region`` (region id), ``pattern`` (pattern id), ``first_year``,
        ``last_year`` (int).
    obs
        Columns ``station_id`` (str), ``date`` (datetime64[ns], midnight), ``layer`` (int 1-5),
        ``sm`` (volumetric, m3 m-3); sorted by station, date, layer; no duplicates, no NaN.
    n_dropped_missing
        Observation rows dropped because ``sm`` was empty or NaN (missing observations).
    meta_path, obs_path
        The files read.
    n_outside_record
        Observations (kept) dated outside their station's ``first_year`` to ``last_year``.
    """

    meta: pd.DataFrame
    obs: pd.DataFrame
    n_dropped_missing: int = 0
    meta_path: Path | None = None
    obs_path: Path | None = None
    n_outside_record: int = 0


@dataclass(frozen=True)
class _Table:
    """A file's raw cells (blank rows dropped) with each row's number as a person counts it."""

    path: Path
    frame: pd.DataFrame
    rows: np.ndarray

    def where(self, i: int, column: str) -> str:
        return f"row {self.rows[i]}, column '{column}'"

    def check_range(
        self,
        values: np.ndarray,
        lo: float,
        hi: float,
        column: str,
        units: str = "",
        *,
        rows: np.ndarray | None = None,
        kind: str = "",
    ) -> None:
        """Raise on the first finite value outside ``[lo, hi]``, naming its row and column.

        ``rows`` selects the rows to check (a boolean mask over the table); ``kind`` is written
        after the column name, e.g. ``"(volumetric station)"``.
        """
        values = np.asarray(values, dtype=float)
        selected = np.ones(values.shape, dtype=bool) if rows is None else rows
        bad = selected & ((values < lo) | (values > hi))
        if not bad.any():
            return
        i = int(np.argmax(bad))
        unit_text = f" {units}" if units else ""
        raise InputError(
            self.path,
            self.where(i, column) + (f" {kind}" if kind else ""),
            f"value {values[i]:g} is outside the physical range {lo:g} to {hi:g}{unit_text}",
        )


def _read_table(path: Path, required: tuple[str, ...], what: str) -> _Table:
    """Read a CSV or Parquet file as raw cells and check its columns."""
    if not path.exists():
        raise InputError(path, None, f"{what} file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            frame = pd.read_csv(path, dtype=str, skip_blank_lines=False, encoding="utf-8-sig")
            first_row = 2
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
            first_row = 1
        else:
            raise InputError(
                path, None, f"unknown file type {suffix!r}; expected a .csv or .parquet file"
            )
    except InputError:
        raise
    except pd.errors.EmptyDataError:
        raise InputError(
            path, None, f"file is empty; expected a header row with {', '.join(required)}"
        ) from None
    except UnicodeDecodeError as exc:
        raw = path.read_bytes()
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            path,
            f"line {line}",
            f"byte 0x{raw[exc.start]:02x} is not UTF-8; expected a UTF-8 (or ASCII) text file",
        ) from None
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", first_line)
        if fields:
            expected, line, saw = fields.groups()
            raise InputError(
                path,
                f"line {line}",
                f"{saw} fields; expected {expected} like the header (a stray comma?)",
            ) from None
        raise InputError(path, None, f"cannot be read as {suffix[1:]}: {first_line}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise InputError(
            path,
            "header",
            f"missing column(s) {', '.join(repr(c) for c in missing)}; found "
            f"{', '.join(repr(c) for c in frame.columns)}; expected columns {', '.join(required)}",
        )
    duplicated = [c for c in frame.columns[frame.columns.duplicated()]]
    if duplicated:
        raise InputError(path, "header", f"column {duplicated[0]!r} appears twice")
    rows = np.arange(first_row, first_row + len(frame))
    blank = frame.isna().all(axis=1).to_numpy()
    frame = frame.loc[~blank].reset_index(drop=True)
    if frame.empty:
        raise InputError(
            path, None, f"no data rows below the header; expected at least one {what} row"
        )
    return _Table(path, frame, rows[~blank])


def _strings(table: _Table, column: str, *, allow_empty: bool = False) -> pd.Series:
    """A column as stripped strings; empty cells are an error unless allowed (then '')."""
    raw = table.frame[column]
    text = raw.where(raw.notna(), "").astype(str).str.strip()
    if not allow_empty:
        empty = (text == "").to_numpy()
        if empty.any():
            i = int(np.argmax(empty))
            raise InputError(table.path, table.where(i, column), "empty; expected a value")
    return text


def _numbers(
    table: _Table, column: str, *, allow_missing: bool = False, integer: bool = False
) -> np.ndarray:
    """A column as floats; text that is not a number is an error naming the row."""
    raw = table.frame[column]
    text = raw.where(raw.notna(), "").astype(str).str.strip()
    source = raw if pd.api.types.is_numeric_dtype(raw) else text
    numbers = pd.to_numeric(source, errors="coerce").to_numpy(dtype=float)
    is_missing = text.str.lower().isin(["", "nan", "na", "n/a", "null", "none"]).to_numpy()
    unparsable = np.isnan(numbers) & ~is_missing
    if unparsable.any():
        i = int(np.argmax(unparsable))
        raise InputError(
            table.path,
            table.where(i, column),
            f"{text.iloc[i]!r} is not a number; expected {'an integer' if integer else 'a number'}",
        )
    if not allow_missing and is_missing.any():
        i = int(np.argmax(is_missing))
        raise InputError(table.path, table.where(i, column), "empty; expected a number")
    if integer:
        fractional = np.isfinite(numbers) & (numbers != np.round(numbers))
        if fractional.any():
            i = int(np.argmax(fractional))
            raise InputError(
                table.path,
                table.where(i, column),
                f"{text.iloc[i]!r} is not an integer; expected a whole number",
            )
    return numbers


def _ids(table: _Table, column: str, allowed: tuple[str, ...], kind: str) -> np.ndarray:
    """A column of catalog ids (region or pattern); unknown ids list the allowed ones.

    For regions the integer codes 1-8 are accepted too and turned into ids.
    """
    text = _strings(table, column)
    if kind == "region":
        codes = {str(r.code): r.id for r in catalog.regions()}
        text = text.map(lambda v: codes.get(v, v))
    bad = ~text.isin(allowed).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            table.path,
            table.where(i, column),
            f"{text.iloc[i]!r} is not a {kind} id; expected one of {', '.join(allowed)}",
        )
    return text.to_numpy(dtype=object)


def _read_meta(path: Path) -> tuple[pd.DataFrame, _Table]:
    """Validated station metadata; also returns the raw table for row numbers."""
    table = _read_table(path, META_COLUMNS, "station metadata")
    station_id = _strings(table, "station_id")
    repeated = station_id.duplicated().to_numpy()
    if repeated.any():
        j = int(np.argmax(repeated))
        i = int(np.argmax((station_id == station_id.iloc[j]).to_numpy()))
        raise InputError(
            path,
            f"rows {table.rows[i]} and {table.rows[j]}, column 'station_id'",
            f"station {station_id.iloc[j]!r} appears twice; expected one row per station",
        )
    lat = _numbers(table, "lat")
    lon = _numbers(table, "lon")
    table.check_range(lat, -90.0, 90.0, "lat", "degrees_north")
    table.check_range(lon, -180.0, 360.0, "lon", "degrees_east")
    lon = np.where(lon > 180.0, lon - 360.0, lon)
    elevation = _numbers(table, "elevation")
    table.check_range(elevation, *ELEVATION_RANGE, "elevation", "m")
    region = _ids(table, "region", catalog.region_ids(), "region")
    pattern = _ids(table, "pattern", catalog.pattern_ids(), "pattern")
    years = {}
    for column in ("first_year", "last_year"):
        years[column] = _numbers(table, column, integer=True)
        table.check_range(years[column], *YEAR_RANGE, column)
    reversed_years = years["first_year"] > years["last_year"]
    if reversed_years.any():
        i = int(np.argmax(reversed_years))
        raise InputError(
            path,
            table.where(i, "last_year"),
            f"last_year {years['last_year'][i]:.0f} is before first_year "
            f"{years['first_year'][i]:.0f}; expected first_year <= last_year",
        )
    meta = pd.DataFrame(
        {
            "lat": lat,
            "lon": lon,
            "elevation": elevation,
            "region": region,
            "pattern": pattern,
            "first_year": years["first_year"].astype(np.int64),
            "last_year": years["last_year"].astype(np.int64),
        },
        index=pd.Index(station_id.to_numpy(dtype=object), name="station_id"),
    )
    return meta, table


def _sm_types(table: _Table) -> np.ndarray:
    """The optional ``sm_type`` column ('volumetric' where absent or empty)."""
    if "sm_type" not in table.frame.columns:
        return np.full(len(table.frame), "volumetric", dtype=object)
    text = _strings(table, "sm_type", allow_empty=True).str.lower()
    text = text.where(text != "", "volumetric")
    bad = ~text.isin(SM_TYPES).to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            table.path,
            table.where(i, "sm_type"),
            f"{text.iloc[i]!r} is not a soil-moisture type; expected one of {', '.join(SM_TYPES)}",
        )
    return text.to_numpy(dtype=object)


def _bulk_densities(table: _Table) -> np.ndarray:
    """Bulk density (g cm-3) per station and layer, shape (station, 5); NaN where absent."""
    out = np.full((len(table.frame), N_LAYERS), np.nan)
    for k, column in enumerate(BD_COLUMNS):
        if column in table.frame.columns:
            out[:, k] = _numbers(table, column, allow_missing=True)
            table.check_range(out[:, k], *BULK_DENSITY_RANGE, column, "g cm-3")
    return out


def _parse_dates(table: _Table) -> np.ndarray:
    """The ``date`` column as datetime64[ns] at midnight; bad text names the row."""
    raw = table.frame["date"]
    if pd.api.types.is_datetime64_any_dtype(raw):
        dates = pd.to_datetime(raw)
        text = raw.astype(str)
    else:
        text = raw.where(raw.notna(), "").astype(str).str.strip()
        dates = pd.to_datetime(text, format="ISO8601", errors="coerce")
        retry = dates.isna() & (text != "")
        if retry.any():
            dates[retry] = pd.to_datetime(text[retry], format="%Y/%m/%d", errors="coerce")
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert(None)
    bad = dates.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        shown = text.iloc[i]
        problem = (
            "empty; expected a date YYYY-MM-DD"
            if shown in ("", "NaT", "nan")
            else f"cannot parse {shown!r} as a date; expected YYYY-MM-DD"
        )
        raise InputError(table.path, table.where(i, "date"), problem)
    return dates.dt.floor("D").to_numpy(dtype="datetime64[ns]")


def _check_duplicates(table: _Table, keys: pd.DataFrame) -> None:
    """Raise on the first repeated (station_id, date, layer), naming both rows."""
    repeated = keys.duplicated(keep="first").to_numpy()
    if not repeated.any():
        return
    j = int(np.argmax(repeated))
    same = (keys == keys.iloc[j]).all(axis=1).to_numpy()
    i = int(np.argmax(same))
    station, date, layer = keys.iloc[j]
    raise InputError(
        table.path,
        f"rows {table.rows[i]} and {table.rows[j]}",
        f"duplicate observation of station {station!r} on {pd.Timestamp(date):%Y-%m-%d}, layer "
        f"{layer}; expected one row per (station_id, date, layer)",
    )


def _outside_record(
    meta: pd.DataFrame, station_index: np.ndarray, dates, observed: np.ndarray
) -> int:
    """Observations (rows with a value) outside their station's ``first_year`` to ``last_year``
    (the record the metadata declares). Counted, not refused: the years describe the record
    the metadata was written for, and ``cropsm evaluate`` scores stations on other years."""
    years = pd.DatetimeIndex(dates).year.to_numpy()
    first = meta["first_year"].to_numpy()[station_index]
    last = meta["last_year"].to_numpy()[station_index]
    return int((observed & ((years < first) | (years > last))).sum())


def _read_obs(
    path: Path, meta: pd.DataFrame, meta_table: _Table, sm_type: np.ndarray, bd: np.ndarray
) -> tuple[pd.DataFrame, int, int]:
    """Validated observations, gravimetric ones converted; also the count of missing rows and
    of observations outside their station's first_year-last_year."""
    table = _read_table(path, OBS_COLUMNS, "observations")
    station_id = _strings(table, "station_id").to_numpy(dtype=object)
    dates = _parse_dates(table)
    layer = _numbers(table, "layer", integer=True)
    bad_layer = (layer < 1) | (layer > N_LAYERS)
    if bad_layer.any():
        i = int(np.argmax(bad_layer))
        raise InputError(
            path,
            table.where(i, "layer"),
            f"{layer[i]:g} is not a layer; expected an integer 1 to {N_LAYERS} "
            "(0-10, 10-20, 20-30, 30-40, 40-50 cm)",
        )
    layer = layer.astype(np.int64)
    sm = _numbers(table, "sm", allow_missing=True)

    station_index = meta.index.get_indexer(station_id)
    unknown = station_index < 0
    if unknown.any():
        i = int(np.argmax(unknown))
        names = pd.unique(station_id[unknown])
        listed = ", ".join(repr(s) for s in names[:5]) + (" ..." if len(names) > 5 else "")
        raise InputError(
            path,
            table.where(i, "station_id"),
            f"station {station_id[i]!r} is not in the station metadata {meta_table.path.name} "
            f"({len(names)} unknown station(s): {listed}); expected a station_id listed there",
        )

    _check_duplicates(
        table, pd.DataFrame({"station_id": station_id, "date": dates, "layer": layer})
    )
    outside_record = _outside_record(meta, station_index, dates, np.isfinite(sm))

    gravimetric = sm_type[station_index] == "gravimetric"
    for is_grav, (lo, hi), units, kind in (
        (False, VOLUMETRIC_RANGE, "m3 m-3", "volumetric"),
        (True, GRAVIMETRIC_RANGE, "g g-1", "gravimetric"),
    ):
        table.check_range(
            sm, lo, hi, "sm", units, rows=gravimetric == is_grav, kind=f"({kind} station)"
        )

    if gravimetric.any():
        sm = sm.copy()
        rho_b = bd[station_index, layer - 1]
        lacking = gravimetric & np.isfinite(sm) & ~np.isfinite(rho_b)
        if lacking.any():
            i = int(np.argmax(lacking))
            m = station_index[i]
            column = f"bd_layer{layer[i]}"
            if column not in meta_table.frame.columns:
                where, how = "header", f"the file has no column {column!r}"
            else:
                where, how = meta_table.where(m, column), "its bulk density is empty"
            raise InputError(
                meta_table.path,
                where,
                f"station {station_id[i]!r} is gravimetric and has observations in layer "
                f"{layer[i]} ({path.name} row {table.rows[i]}) but {how}; expected bulk "
                f"density in g cm-3 ({BULK_DENSITY_RANGE[0]:g} to {BULK_DENSITY_RANGE[1]:g}) "
                "to convert g g-1 to m3 m-3",
            )
        converted = sm * rho_b / WATER_DENSITY_G_CM3
        too_wet = gravimetric & (converted > VOLUMETRIC_RANGE[1])
        if too_wet.any():
            i = int(np.argmax(too_wet))
            raise InputError(
                path,
                table.where(i, "sm"),
                f"gravimetric {sm[i]:g} g g-1 x bulk density {rho_b[i]:g} g cm-3 = "
                f"{converted[i]:.3g} m3 m-3, above the physical {VOLUMETRIC_RANGE[1]:g} m3 m-3; "
                "expected a wetness the soil can hold",
            )
        sm = np.where(gravimetric, converted, sm)

    keep = np.isfinite(sm)
    if not keep.any():
        raise InputError(
            path,
            "column 'sm'",
            f"empty in every one of the {len(sm)} rows; expected at least one observation",
        )
    obs = pd.DataFrame(
        {
            "station_id": station_id[keep],
            "date": dates[keep],
            "layer": layer[keep],
            "sm": sm[keep].astype(np.float64),
        }
    )
    obs = obs.sort_values(["station_id", "date", "layer"], kind="stable").reset_index(drop=True)
    return obs, int((~keep).sum()), outside_record


def read_stations(meta_path: str | Path, obs_path: str | Path) -> StationData:
    """Read station metadata and soil-moisture observations into the canonical form.

    Parameters
    ----------
    meta_path
        CSV or Parquet with columns ``station_id, lat, lon, elevation, region, pattern,
        first_year, last_year`` and optionally ``sm_type`` (``volumetric`` default, or
        ``gravimetric``) and ``bd_layer1`` ... ``bd_layer5`` (bulk density, g cm-3).
        ``region`` holds region ids (integer codes 1-8 are accepted too).
    obs_path
        CSV or Parquet with columns ``station_id, date, layer, sm``: ``date`` as YYYY-MM-DD,
        ``layer`` 1-5, ``sm`` in m3 m-3 (volumetric stations) or g g-1 (gravimetric ones);
        empty or NaN ``sm`` marks a missing observation.

    Returns
    -------
    StationData
        Canonical ``meta`` and ``obs`` (see :class:`StationData`); rows with missing ``sm`` are
        dropped and counted in ``n_dropped_missing``.

    Raises
    ------
    InputError
        On a missing column, an unknown region or pattern id, a coordinate out of range, an
        unparsable date or number, a layer outside 1-5, a value outside the physical range
        (volumetric 0-0.7 m3 m-3, gravimetric 0-0.6 g g-1), a duplicate (station_id, date,
        layer), an observation of a station not in the metadata, or a gravimetric station
        without bulk density.
    """
    meta_path, obs_path = Path(meta_path), Path(obs_path)
    meta, meta_table = _read_meta(meta_path)
    sm_type = _sm_types(meta_table)
    bd = _bulk_densities(meta_table)
    obs, n_dropped, n_outside = _read_obs(obs_path, meta, meta_table, sm_type, bd)
    return StationData(
        meta=meta,
        obs=obs,
        n_dropped_missing=n_dropped,
        meta_path=meta_path,
        obs_path=obs_path,
        n_outside_record=n_outside,
    )


def check_stations_in_grid(
    meta: pd.DataFrame, lat: np.ndarray, lon: np.ndarray, path: str | Path | None
) -> None:
    """Raise if any station lies outside the extent of a grid of cell centres.

    Parameters
    ----------
    meta
        Canonical station metadata (``lat``, ``lon`` columns, indexed by ``station_id``).
    lat, lon
        Ascending cell-centre coordinates of the grid (degrees); the extent reaches half a cell
        beyond the outer centres.
    path
        The station file, named in the error.

    Raises
    ------
    InputError
        Naming the station(s) outside, with their coordinates, and the grid's extent.
    """
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    extent = []
    for name, values in (("lat", lat), ("lon", lon)):
        step = grid_step(values, path, name)
        half = 0.0 if np.isnan(step) else step / 2.0
        extent.append((float(values.min()) - half, float(values.max()) + half))
    (lat_lo, lat_hi), (lon_lo, lon_hi) = extent
    station_lat = meta["lat"].to_numpy(dtype=float)
    station_lon = meta["lon"].to_numpy(dtype=float)
    outside = (
        (station_lat < lat_lo)
        | (station_lat > lat_hi)
        | (station_lon < lon_lo)
        | (station_lon > lon_hi)
    )
    if not outside.any():
        return
    names = meta.index[outside]
    shown = ", ".join(
        f"{name!r} (lat {meta.at[name, 'lat']:g}, lon {meta.at[name, 'lon']:g})"
        for name in names[:5]
    )
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    raise InputError(
        path,
        f"station(s) {shown}{more}",
        f"outside the grid's extent lat {lat_lo:g} to {lat_hi:g}, lon {lon_lo:g} to {lon_hi:g}; "
        "expected every station inside the gridded inputs",
    )
