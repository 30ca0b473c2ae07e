"""Crop-aware inputs on the grid: nominal calendars, the pattern buckets, long-term climate.

The crop-aware feature set (:data:`cropsm.features.groups.CROP_FEATURE_GROUPS`) needs, for every
cropland cell, what the station table computes for a station (same functions,
:mod:`cropsm.features.water_balance` and :mod:`cropsm.features.calendar`):

* the climate-adjusted calendar of each pattern (:mod:`cropsm.features.phenology`), from the
  cell's long-term temperature cycle, fitted over the whole climate record;
* the bucket of each of the six patterns, run from the first climate day (state ``C / 2``),
  so the product's blocks, which are computed independently, need its state on each block's
  first day. :func:`bucket_prepass` fits the temperature cycles in a first pass over the
  climate record and runs the buckets in a second, one piece at a time, and keeps the state at
  every block start (``(block, pattern, cell)``, a few MB) and the running sums of the
  long-term climate descriptors;
* per block, :func:`block_pattern_inputs` builds the block cells' calendars from their
  temperature cycles and continues the buckets over the block's days from the saved state.

Because every step is element-wise per cell in float64, a grid cell gets the same bucket values
as a station at its centre would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from cropsm import catalog
from cropsm.features.calendar import CALENDAR_FEATURES, calendar_table
from cropsm.features.climate import day_of_year
from cropsm.features.phenology import (
    HARMONIC_FEATURES,
    calendar_on_days,
    climate_calendar_tables,
    harmonic_sums,
    harmonics_from_sums,
)
from cropsm.features.water_balance import (
    BARE_BUCKET_FEATURES,
    CLIMATE_DESCRIPTORS,
    WATER_BALANCE_FEATURES,
    descriptors_from_sums,
    initial_water_mm_of,
    pattern_bucket_inputs,
)

BUCKET_VARIABLES: tuple[str, ...] = ("precipitation", "air_temperature", "net_solar_radiation")
"""Canonical climate variables the bucket and the climate descriptors are made from."""

PREPASS_PIECE_DAYS = 366
"""Most days of climate read at a time by :func:`bucket_prepass`."""

PREPASS_CELL_DAYS = 3_000_000
"""Cell-days per piece of :func:`bucket_prepass` at most (:func:`prepass_piece_days`)."""


@dataclass(frozen=True)
class BucketStates:
    """What the blocks need to continue the pattern buckets.

    Attributes
    ----------
    start_water_mm
        ``(n_starts, 3, 7, n_cells)``: bucket state at the start of each requested day (water
        of the two stores, snow pack;
        :func:`cropsm.features.water_balance.run_bucket`) of the six patterns and the fallow
        field.
    capacity_mm
        ``(n_cells,)`` bucket capacity.
    elevation_m
        ``(n_cells,)`` elevation for the reference ET, or None.
    descriptors
        ``clim_precip_mm_yr`` and ``clim_aridity`` per cell.
    harmonics
        The cells' long-term temperature cycle
        (:data:`cropsm.features.phenology.HARMONIC_FEATURES`), for their calendars.
    """

    start_water_mm: np.ndarray
    capacity_mm: np.ndarray
    elevation_m: np.ndarray | None
    descriptors: Mapping[str, np.ndarray]
    harmonics: Mapping[str, np.ndarray]


def pattern_kc(dates) -> np.ndarray:
    """``(n_days, 6)`` nominal crop coefficient of every pattern on ``dates``."""
    return _pattern_calendar_column(dates, 0)


def pattern_root_cm(dates) -> np.ndarray:
    """``(n_days, 6)`` nominal rooting depth (cm) of every pattern on ``dates``."""
    return _pattern_calendar_column(dates, 1)


def _pattern_calendar_column(dates, column: int) -> np.ndarray:
    doy = day_of_year(dates).astype(np.int64)
    return np.stack([calendar_table(p)[doy - 1, column] for p in catalog.pattern_ids()], axis=1)


def cell_soil(static: xr.Dataset, ilat: np.ndarray, ilon: np.ndarray) -> dict:
    """Elevation ``(cell,)`` and texture ``(5, cell)`` of cells, as the station table takes them."""
    out: dict = {}
    if "elevation" in static:
        out["elevation"] = np.asarray(
            static["elevation"].transpose("lat", "lon").values, dtype=np.float64
        )[ilat, ilon]
    for prop in ("sand", "clay"):
        if prop in static:
            grid = np.asarray(static[prop].transpose("layer", "lat", "lon").values, np.float64)
            out[prop] = grid[:, ilat, ilon]
    return out


def _run_patterns(
    climate_piece: Mapping[str, np.ndarray],
    dates: pd.DatetimeIndex,
    soil: Mapping[str, np.ndarray],
    start_water: np.ndarray | None,
    tables: np.ndarray,
    keep_relative: bool = True,
) -> dict:
    """Buckets of the six patterns and a fallow field over a piece, state ``(3, 7, cell)``:
    :func:`cropsm.features.water_balance.pattern_bucket_inputs`, the station table's function,
    with the patterns' climate-adjusted Kc and rooting depths (``tables``, ``(6, cell, 366, 3)``
    from :func:`cropsm.features.phenology.climate_calendar_tables`) on a pattern axis."""
    fallow = catalog.fallow()
    n_days, n_cells = len(dates), tables.shape[1]

    def with_fallow(column: int, value: float) -> np.ndarray:  # (day, pattern + fallow, cell)
        out = np.empty((n_days, tables.shape[0] + 1, n_cells), dtype=np.float64)
        out[:, :-1] = calendar_on_days(tables, dates, column)
        out[:, -1] = value
        return out

    result = pattern_bucket_inputs(
        climate_piece["precipitation"],
        climate_piece["air_temperature"],
        climate_piece["net_solar_radiation"],
        with_fallow(0, float(fallow["kc"])),
        with_fallow(1, float(fallow["root_depth_cm"])),
        elevation_m=soil.get("elevation"),
        sand_by_layer_pct=soil.get("sand"),
        clay_by_layer_pct=soil.get("clay"),
        initial_water_mm=start_water,
        keep_relative=keep_relative,
    )
    result["relative"] = {k: result.pop(k) for k in WATER_BALANCE_FEATURES if k in result}
    return result


def pattern_calendars(harmonics: Mapping[str, np.ndarray] | None, n_cells: int) -> np.ndarray:
    """``(6, cell, 366, 3)`` climate-adjusted calendars of every pattern at the cells
    (:func:`cropsm.features.phenology.climate_calendar_tables`); without harmonics (no air
    temperature) the nominal calendars."""
    if harmonics is None:
        harmonics = {name: np.full(n_cells, np.nan) for name in HARMONIC_FEATURES}
    return climate_calendar_tables(harmonics)


def prepass_piece_days(n_cells: int) -> int:
    """Days per piece of :func:`bucket_prepass`: a year, fewer for large grids so that one
    ``(day, 7, cell)`` float64 array stays near 160 MB."""
    return int(np.clip(PREPASS_CELL_DAYS // max(n_cells, 1), 31, PREPASS_PIECE_DAYS))


def bucket_prepass(
    read_piece: Callable[[slice, Sequence[str]], Mapping[str, np.ndarray]],
    climate_dates: pd.DatetimeIndex,
    soil: Mapping[str, np.ndarray],
    start_indices: Sequence[int],
    progress: Callable[[int, int], None] | None = None,
) -> BucketStates:
    """Run the six pattern buckets of every cell over the whole climate record.

    Two passes: the first fits each cell's long-term temperature cycle
    (:func:`cropsm.features.phenology.harmonic_sums`) for its climate-adjusted calendars; the
    second runs the buckets with them.

    Parameters
    ----------
    read_piece
        ``f(time_slice, variables) -> {variable: (time, cell) array}`` for variables of
        :data:`BUCKET_VARIABLES`.
    climate_dates
        Every climate day.
    soil
        Per-cell ``elevation`` and ``sand``/``clay`` ``(5, cell)`` (:func:`cell_soil`).
    start_indices
        Climate-day indices whose start-of-day bucket water is wanted (block starts).
    progress
        Optional ``f(done, total)`` per piece.

    Returns
    -------
    BucketStates
    """
    n_days = len(climate_dates)
    n_patterns = len(catalog.pattern_ids())
    starts = sorted({int(i) for i in start_indices})
    wanted = np.asarray([int(i) for i in start_indices])
    saved: dict[int, np.ndarray] = {}
    water = None
    capacity = None
    sums = None
    harmonic = None
    if soil:
        n_cells = _cell_count({}, soil, None)
    else:  # no soil inputs: one day of climate tells the cells
        n_cells = np.shape(read_piece(slice(0, 1), ("air_temperature",))["air_temperature"])[-1]
    piece_days = prepass_piece_days(n_cells)
    # cut pieces at the wanted starts, so a start is always the first day of a piece
    edges = sorted({0, n_days, *starts, *range(0, n_days, piece_days)})
    pieces = [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
    total = 2 * len(pieces)
    temperature = ("air_temperature",)
    for done, ((a, b), piece) in enumerate(
        zip(pieces, _read_ahead(read_piece, pieces, temperature), strict=True)
    ):
        part = harmonic_sums(climate_dates[a:b], piece["air_temperature"])
        harmonic = part if harmonic is None else {k: harmonic[k] + part[k] for k in part}
        if progress is not None:
            progress(done + 1, total)
    harmonics = harmonics_from_sums(harmonic)
    tables = pattern_calendars(harmonics, n_cells)
    for done, ((a, b), piece) in enumerate(
        zip(pieces, _read_ahead(read_piece, pieces, BUCKET_VARIABLES), strict=True)
    ):
        if water is not None and a in starts:
            saved[a] = np.array(water)
        result = _run_patterns(piece, climate_dates[a:b], soil, water, tables, keep_relative=False)
        if water is None and 0 in starts:
            initial = initial_water_mm_of(result["capacity_mm"])  # (store, cell)
            saved[0] = np.repeat(initial[:, None, :], n_patterns + 1, axis=1)
        water = result["water_mm"]
        capacity = result["capacity_mm"]
        et0 = result["et0_mm"]
        piece_sums = {
            "precip_sum": np.nansum(np.asarray(piece["precipitation"], np.float64), axis=0),
            "et0_sum": np.nansum(et0, axis=0),
            "days": np.sum(np.isfinite(piece["precipitation"]), axis=0).astype(np.float64),
        }
        sums = piece_sums if sums is None else {k: sums[k] + piece_sums[k] for k in sums}
        if progress is not None:
            progress(len(pieces) + done + 1, total)
    start_water = np.stack([saved[int(i)] for i in wanted]) if len(wanted) else np.empty(0)
    return BucketStates(
        start_water_mm=start_water,
        capacity_mm=capacity,
        elevation_m=soil.get("elevation"),
        descriptors=descriptors_from_sums(sums),
        harmonics=harmonics,
    )


AHEAD = 2
"""Climate pieces the pre-pass reads ahead of the one it works on."""


def _read_ahead(
    read_piece: Callable[[slice, Sequence[str]], Mapping[str, np.ndarray]],
    pieces: Sequence[tuple[int, int]],
    variables: Sequence[str],
) -> Iterator[Mapping[str, np.ndarray]]:
    """``read_piece`` of each ``(a, b)`` piece in order, the next :data:`AHEAD` pieces read in
    background threads while the caller works on the current one (reading and decoding the
    climate was three quarters of the pre-pass on the paper preset, 81 of 109 s; the bucket's
    numpy loops and the netCDF reads release the GIL, so they overlap on a second core: 68 s
    with two pieces ahead, 85 s with one; xarray's file lock keeps the reads themselves one at
    a time). At most ``AHEAD + 1`` pieces are held at a time; an error while reading is raised
    where that piece is consumed."""
    with ThreadPoolExecutor(max_workers=AHEAD, thread_name_prefix="cropsm-prepass-read") as pool:
        ahead = [pool.submit(read_piece, slice(*p), variables) for p in pieces[:AHEAD]]
        for i in range(len(pieces)):
            piece = ahead.pop(0).result()
            if i + AHEAD < len(pieces):
                ahead.append(pool.submit(read_piece, slice(*pieces[i + AHEAD]), variables))
            yield piece
            del piece


def block_pattern_inputs(
    block_climate: Mapping[str, np.ndarray],
    dates: pd.DatetimeIndex,
    soil: Mapping[str, np.ndarray],
    start_water_mm: np.ndarray | None,
    names: Sequence[str],
    harmonics: Mapping[str, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Pattern inputs of a block: calendars and buckets by day and cell.

    Parameters
    ----------
    block_climate
        :data:`BUCKET_VARIABLES` as ``(n_days, n_cells)`` arrays of the block's days (needed only
        when ``wb_top`` or ``wb_sub`` is among ``names``).
    dates
        The block's days.
    soil
        The block cells' ``elevation``, ``sand``, ``clay`` (:func:`cell_soil`).
    start_water_mm
        ``(3, 7, n_cells)`` bucket state at the block's first day (:class:`BucketStates`).
    names
        Inputs wanted (pattern inputs and the bare bucket).
    harmonics
        The block cells' long-term temperature cycle
        (:data:`cropsm.features.phenology.HARMONIC_FEATURES`, from :func:`bucket_prepass`);
        None: nominal calendars.

    Returns
    -------
    (by_cell_day, shared)
        ``{name: (6, n_days, n_cells) float32}`` for the calendar inputs, ``wb_top`` and
        ``wb_sub``, and ``{name: (n_days, n_cells) float32}`` for the pattern-free
        ``wb_top_bare`` and ``wb_sub_bare``.
    """
    n_cells = _cell_count(block_climate, soil, harmonics)
    tables = pattern_calendars(harmonics, n_cells)
    by_cell_day = {}
    for j, name in enumerate(CALENDAR_FEATURES):
        if name in names:
            values = calendar_on_days(tables, dates, j)  # (day, pattern, cell)
            by_cell_day[name] = np.ascontiguousarray(values.transpose(1, 0, 2), dtype=np.float32)
    shared: dict[str, np.ndarray] = {}
    if any(name in names for name in WATER_BALANCE_FEATURES + BARE_BUCKET_FEATURES):
        piece = {k: block_climate[k] for k in BUCKET_VARIABLES}
        result = _run_patterns(piece, dates, soil, start_water_mm, tables)
        n_patterns = len(catalog.pattern_ids())
        for name in WATER_BALANCE_FEATURES:
            if name in names:
                source = result["relative"][name][:, :n_patterns]  # (day, pattern, cell)
                relative = source.transpose(1, 0, 2)  # (pattern, day, cell)
                by_cell_day[name] = np.ascontiguousarray(relative, dtype=np.float32)
        for name in BARE_BUCKET_FEATURES:
            if name in names:
                bare = result["relative"][name.removesuffix("_bare")][:, n_patterns]
                shared[name] = np.ascontiguousarray(bare, dtype=np.float32)  # (day, cell)
    return by_cell_day, shared


def _cell_count(block_climate, soil, harmonics) -> int:
    for source in (harmonics or {}, block_climate, soil):
        for values in source.values():
            return int(np.shape(values)[-1])
    raise ValueError("block_pattern_inputs: no per-cell input to count the cells from")


__all__ = [
    "BUCKET_VARIABLES",
    "CLIMATE_DESCRIPTORS",
    "BucketStates",
    "block_pattern_inputs",
    "bucket_prepass",
    "cell_soil",
    "pattern_calendars",
    "pattern_kc",
]
