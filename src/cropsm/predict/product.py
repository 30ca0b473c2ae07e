"""The national product: every cropland cell, every day, six patterns and the reference.

Paper section 2c(2): the chained layer networks are applied to every cropland cell (cropland
fraction >= 0.1) and day under each of the six cropping patterns; the reference product is the
crop-area-weighted sum of the pattern products (Eq. 2, weights of Eq. 1 from
:func:`cropsm.weights.pattern_weights`)::

    SM_ref(k, t, c) = sum_i weight_i(c) SM_i(k, t, c)     over patterns with weight_i(c) > 0

Work is split into blocks (one time chunk x one tile of the grid, see
:mod:`cropsm.predict.store`). A block task reads its climate (with a look-back halo for the
accumulated precipitation), computes the features of its cropland cells, runs the folded float32
networks over batches of cell-days (one BLAS thread), packs the result and writes its chunks
straight into the zarr store. :func:`compute_block` is that task; :func:`predict_product` plans
the blocks, creates or resumes the store and runs the missing blocks in this process or on a
dask cluster.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cropsm import __version__, catalog, paper
from cropsm.errors import CropsmError, UsageError
from cropsm.features.calendar import CALENDAR_FEATURES
from cropsm.features.climate import FEATURE_ATTRS, cyclic_day_of_year
from cropsm.features.location import LOCATION_FEATURES
from cropsm.features.station_table import SOIL_SOURCES
from cropsm.features.water_balance import (
    BARE_BUCKET_FEATURES,
    CLIMATE_DESCRIPTORS,
    WATER_BALANCE_FEATURES,
)
from cropsm.predict import store as product_store
from cropsm.predict.config import REFERENCE, PredictConfig
from cropsm.predict.crop_inputs import (
    BUCKET_VARIABLES,
    BucketStates,
    block_pattern_inputs,
    bucket_prepass,
    cell_soil,
)
from cropsm.predict.flags import (
    FLAG_VALUES,
    PATTERN_FLAG_MEANINGS,
    SEASON_FLAG_MEANINGS,
    observed_patterns,
    pattern_flag,
    region_observation_periods,
    region_observed_months,
    time_flag,
)
from cropsm.predict.grid_features import (
    STATIC_FEATURES,
    block_climate_features,
    block_day_of_year,
    climate_sources,
    cropland_cells,
    first_complete_day,
    lookback_start,
    read_tile_climate,
    static_cell_features,
)
from cropsm.predict.network import (
    FoldedNet,
    Workspace,
    batch_terms,
    chain_uses_pattern,
    executed_flops_per_cell_day,
    fold_chain,
    forward_chain,
    share_batch_terms,
)
from cropsm.train.chain import LayerModel
from cropsm.weights import pattern_weights

ProgressCallback = Callable[[str, int, int], None]

PAPER_REFERENCE = paper.CITATION + " (method of sections 2a-2c)"


@dataclass(frozen=True)
class ProductJob:
    """Everything a block task needs; built once by the driver (on a cluster: one recomputable
    task result that each worker fetches once, see :func:`run_blocks`).

    Attributes
    ----------
    store
        Path of the zarr store.
    layout
        Axes, chunks and blocks.
    climate
        Canonical climate (lazy; each worker reads its blocks from the files).
    climate_index_of_first_day
        Index on the climate time axis of the product's first day.
    nets
        Folded layer networks.
    n_patterns
        Patterns evaluated (6, or 1 when no network takes the pattern).
    climate_variables, climate_features, needs_halo
        Canonical variables read, climate features built, whether the look-back halo is read.
    cell_ilat, cell_ilon
        Grid indices of every cropland cell.
    cell_static
        Static inputs per cell (only those the networks use).
    cell_weights
        ``(6, cell)`` crop-area weights.
    cell_region
        Region code per cell.
    region_periods
        Observation period per region code (time flag).
    batch_cell_days
        Cell-days per network batch.
    pattern_input_names
        Inputs that depend on the pattern and the day (crop-aware set: nominal calendar,
        ``wb_top``, ``wb_sub``), for any layer.
    bucket_start_water
        ``(n_time_blocks, 3, 7, n_cells)`` state of the pattern buckets on each time
        block's first day
        (:func:`cropsm.predict.crop_inputs.bucket_prepass`), or None.
    bare_bucket_names
        The pattern-free bucket inputs (``wb_top_bare``, ``wb_sub_bare``) the networks take.
    descriptor_names
        The long-term climate inputs (``clim_precip_mm_yr``, ``clim_aridity``) the networks
        take; with the buckets, filled in by :func:`with_bucket_states`.
    cell_soil
        Per-cell ``elevation`` and ``sand``/``clay`` ``(5, cell)`` for the buckets and
        calendars, or None.
    cell_harmonics
        Per-cell long-term temperature cycle for the climate-adjusted calendars
        (:mod:`cropsm.features.phenology`), filled in by :func:`with_bucket_states`, or None.
    member_nets
        Folded networks of deep-ensemble members 1...K-1 (:attr:`nets` is member 0); empty for
        one network per layer.
    residual_sd
        Calibrated residual SD per layer (m3 m-3) added in quadrature to the ensemble spread in
        ``sm_sd`` (:func:`cropsm.train.ensemble.calibrated_sd`); empty: 0.
    """

    store: str
    layout: product_store.ProductLayout
    climate: xr.Dataset
    climate_index_of_first_day: int
    nets: tuple[FoldedNet, ...]
    n_patterns: int
    climate_variables: tuple[str, ...]
    climate_features: tuple[str, ...]
    needs_halo: bool
    cell_ilat: np.ndarray
    cell_ilon: np.ndarray
    cell_static: Mapping[str, np.ndarray]
    cell_weights: np.ndarray
    cell_region: np.ndarray
    region_periods: np.ndarray
    batch_cell_days: int
    pattern_input_names: tuple[str, ...] = ()
    bare_bucket_names: tuple[str, ...] = ()
    descriptor_names: tuple[str, ...] = ()
    bucket_start_water: np.ndarray | None = None
    cell_soil: Mapping[str, np.ndarray] | None = None
    cell_harmonics: Mapping[str, np.ndarray] | None = None
    member_nets: tuple[tuple[FoldedNet, ...], ...] = ()
    residual_sd: tuple[float, ...] = ()


DAY_FEATURES = ("doy", "doy_sin", "doy_cos")
"""Inputs that are one value per day (day of year, raw or on the unit circle)."""


def block_day_features(dates) -> dict[str, np.ndarray]:
    """Day-of-year inputs of a block's days (``doy``, ``doy_sin``, ``doy_cos``), float32."""
    doy = block_day_of_year(dates)
    doy_sin, doy_cos = cyclic_day_of_year(doy)
    return {
        "doy": doy,
        "doy_sin": doy_sin.astype(np.float32),
        "doy_cos": doy_cos.astype(np.float32),
    }


def predict_cells(
    nets: Sequence[FoldedNet],
    n_patterns: int,
    scenarios: Sequence[str],
    climate_features: Mapping[str, np.ndarray],
    static_features: Mapping[str, np.ndarray],
    day_of_year: np.ndarray,
    weights: np.ndarray,
    batch_cell_days: int,
    timings: dict | None = None,
    pattern_by_cell_day: Mapping[str, np.ndarray] | None = None,
    *,
    member_nets: Sequence[Sequence[FoldedNet]] = (),
    residual_sd: Sequence[float] = (),
    extras: dict | None = None,
    day_slot: np.ndarray | None = None,
    n_slots: int = 0,
) -> np.ndarray:
    """Packed soil moisture of the scenarios for the cells and days of one block.

    Rows are cell-days in (day, cell) order. Per batch the shared inputs of each layer are
    gathered, :func:`cropsm.predict.network.forward_chain` gives ``(layer, pattern, row)``, a
    pattern scenario takes its pattern (all patterns alike when the networks ignore the
    pattern) and the reference is Eq. 2, ``sum_i w_i SM_i`` over the patterns with ``w_i > 0``
    (NaN, i.e. fill, when the cell has no weights).

    Parameters
    ----------
    climate_features
        ``(n_days, n_cells)`` float32 per climate input.
    static_features
        ``(n_cells,)`` per static input.
    day_of_year
        ``(n_days,)`` day of year, or a mapping ``{name: (n_days,)}`` of the day inputs
        (:func:`block_day_features`).
    weights
        ``(6, n_cells)``.
    timings
        Optional dict; ``network_s`` (wall seconds of the forward passes), ``network_cpu_s``
        (their thread CPU seconds) and ``assemble_s`` (gathering inputs, reference, packing) are
        added to it.
    pattern_by_cell_day
        Pattern inputs of the crop-aware set, ``(6, n_days, n_cells)`` per name (calendar inputs,
        ``wb_top``, ``wb_sub``; :func:`block_pattern_inputs`).
    member_nets
        Deep-ensemble members 1...K-1 (``nets`` is member 0). Every member runs on the same
        gathered inputs; each scenario (the reference per member, Eq. 2) is averaged over the
        members, ``SM = (1/K) sum_m SM_m``, and its spread ``s`` (SD over members, ddof 1) gives
        the standard error ``sqrt(s^2 + r_k^2)``.
    residual_sd
        ``r_k`` per layer (m3 m-3, :func:`cropsm.train.ensemble.calibrated_sd`); empty: 0.
    extras
        When given, receives ``sm_sd`` ``(scenario, layer, n_days, n_cells)`` int16 and, with
        members and ``day_slot``, ``member_sum`` ``(member, scenario, layer, n_slots, n_cells)``
        float32 (each member's SM summed over the days of each month slot) and ``member_days``
        ``(scenario, layer, n_slots, n_cells)`` int16 (valid days summed).
    day_slot, n_slots
        Month slot of every day of the block (0...n_slots-1).

    Returns
    -------
    numpy.ndarray
        ``(scenario, layer, n_days, n_cells)`` int16 (:func:`cropsm.predict.store.encode_sm`):
        the ensemble mean (member 0 itself when K = 1).
    """
    ids = catalog.pattern_ids()
    if isinstance(day_of_year, Mapping):
        day_inputs = {k: np.asarray(v, dtype=np.float32) for k, v in day_of_year.items()}
    else:
        day_inputs = {"doy": np.asarray(day_of_year, dtype=np.float32)}
    n_days = len(next(iter(day_inputs.values())))
    n_cells = weights.shape[1]
    by_cell_day = {
        k: np.asarray(v, np.float32).reshape(v.shape[0], -1)
        for k, v in (pattern_by_cell_day or {}).items()
    }
    n_rows = n_days * n_cells
    out = np.empty((len(scenarios), len(nets), n_rows), dtype=np.int16)
    all_nets = [nets, *member_nets]
    n_members = len(all_nets)
    spreads = np.empty_like(out) if extras is not None else None
    residual = np.zeros((len(nets), 1), dtype=np.float32)
    residual[: len(residual_sd), 0] = np.asarray(residual_sd, dtype=np.float32)[: len(nets)]
    sums = None
    if extras is not None and n_members > 1 and day_slot is not None:
        # float32: a slot sums at most 31 daily values per batch part (relative error ~1e-6)
        sums = np.zeros((n_members, len(scenarios), len(nets), n_slots, n_cells), np.float32)
        days_valid = np.zeros((len(scenarios), len(nets), n_slots, n_cells), dtype=np.int32)
    member_ws = [Workspace() for _ in member_nets]
    shared = share_batch_terms(all_nets)
    flat = {name: np.asarray(v).reshape(-1) for name, v in climate_features.items()}
    static32 = {name: np.asarray(v, dtype=np.float32) for name, v in static_features.items()}
    weights32 = np.asarray(weights, dtype=np.float32)
    ws = Workspace()
    t_net = t_asm = cpu_net = 0.0
    for start in range(0, n_rows, batch_cell_days):
        t0 = time.perf_counter()
        stop = min(start + batch_cell_days, n_rows)
        rows = np.arange(start, stop)
        day, cell = np.divmod(rows, n_cells)
        inputs = []
        pattern_inputs = []
        for k, net in enumerate(nets):
            x = ws.ones_last_row(("x", k), (len(net.shared_names) + 1, stop - start))
            for f, name in enumerate(net.shared_names):
                if name in flat:
                    x[f] = flat[name][start:stop]
                elif name in day_inputs:
                    np.take(day_inputs[name], day, out=x[f])
                else:
                    np.take(static32[name], cell, out=x[f])
            inputs.append(x)
            pattern_inputs.append(
                _gather_pattern_inputs(net, by_cell_day, start, stop, n_patterns, ws, k)
            )
        t1 = time.perf_counter()
        c1 = time.thread_time()
        # the members read the same inputs: the weight-free terms are computed once
        terms = batch_terms(nets, inputs, n_patterns, pattern_inputs, ws) if shared else None
        sm = forward_chain(nets, inputs, n_patterns, ws, pattern_inputs, terms)  # (L, P, row)
        member_sm = [
            forward_chain(m_nets, inputs, n_patterns, m_ws, pattern_inputs, terms)
            for m_nets, m_ws in zip(member_nets, member_ws, strict=True)
        ]
        cpu_net += time.thread_time() - c1
        t2 = time.perf_counter()
        w = None
        values = np.empty((n_members, len(scenarios), len(nets), stop - start), np.float32)
        for m, sm_m in enumerate([sm, *member_sm]):
            for s, name in enumerate(scenarios):
                if name == REFERENCE:
                    if w is None:
                        w = np.take(weights32, cell, axis=1)  # (6, row)
                    if n_patterns == 1:
                        total = w.sum(axis=0)
                        ref = np.where(total > 0, sm_m[:, 0] * total, np.nan)
                    else:
                        parts = np.where(w[None] > 0, sm_m * w[None], 0.0)
                        ref = parts.sum(axis=1)
                        ref[:, ~(w > 0).any(axis=0)] = np.nan
                    values[m, s] = ref
                else:
                    p = 0 if n_patterns == 1 else ids.index(name)
                    values[m, s] = sm_m[:, p]
        if n_members == 1:
            mean = values[0]
            spread = np.zeros_like(mean)
        else:
            mean = values.mean(axis=0)
            spread = values.std(axis=0, ddof=1)
        out[:, :, start:stop] = product_store.encode_sm(mean)
        if spreads is not None:
            spreads[:, :, start:stop] = product_store.encode_sm(
                np.sqrt(spread * spread + residual * residual)
            )
        if sums is not None:
            _add_by_slot(sums, days_valid, values, mean, day_slot[day], start, n_cells)
        t3 = time.perf_counter()
        t_net += t2 - t1
        t_asm += (t1 - t0) + (t3 - t2)
    if timings is not None:
        timings["network_s"] = timings.get("network_s", 0.0) + t_net
        timings["network_cpu_s"] = timings.get("network_cpu_s", 0.0) + cpu_net
        timings["assemble_s"] = timings.get("assemble_s", 0.0) + t_asm
    if extras is not None:
        extras["sm_sd"] = spreads.reshape(len(scenarios), len(nets), n_days, n_cells)
        if sums is not None:
            extras["member_sum"] = sums.astype(np.float32)
            extras["member_days"] = days_valid.astype(np.int16)
    return out.reshape(len(scenarios), len(nets), n_days, n_cells)


def _add_by_slot(
    sums: np.ndarray,
    days_valid: np.ndarray,
    values: np.ndarray,
    mean: np.ndarray,
    slot_of_row: np.ndarray,
    start: int,
    n_cells: int,
) -> None:
    """Add a batch of member values (rows in (day, cell) order from row ``start``) to the
    per-month-slot sums of each cell, ignoring NaN.

    The batch is cut where a day (or a month slot) ends: within a piece the rows are the
    consecutive cells ``c0 ... c1 - 1`` of one day, so each piece is one slice addition
    ``sums[..., slot, c0:c1] += values[..., a:b]``.

    Parameters
    ----------
    sums
        ``(member, scenario, layer, slot, cell)`` float32, added to in place.
    days_valid
        ``(scenario, layer, slot, cell)``, days with a finite ensemble mean, added to in place.
    values
        ``(member, scenario, layer, row)``.
    mean
        ``(scenario, layer, row)`` ensemble mean (NaN: the cell-day is not counted).
    slot_of_row
        Month slot of every row.
    """
    n_rows = slot_of_row.size
    first_cell = start % n_cells
    day_ends = range(n_cells - first_cell, n_rows, n_cells)
    slot_ends = np.flatnonzero(np.diff(slot_of_row)) + 1
    edges = sorted({0, n_rows, *day_ends, *slot_ends.tolist()})
    valid = np.isfinite(mean)
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        slot = int(slot_of_row[a])
        c0 = (start + a) % n_cells
        c1 = c0 + (b - a)
        target, piece = sums[..., slot, c0:c1], values[..., a:b]
        np.add(target, piece, out=target, where=~np.isnan(piece))  # NaN adds nothing
        days_valid[..., slot, c0:c1] += valid[..., a:b]


def _gather_pattern_inputs(
    net: FoldedNet,
    by_cell_day: Mapping[str, np.ndarray],
    start: int,
    stop: int,
    n_patterns: int,
    ws: Workspace,
    k: int,
) -> np.ndarray | None:
    """``(P, n_inputs, rows)`` pattern inputs of one layer for rows ``start:stop``."""
    names = net.pattern_input_names
    if not names:
        return None
    out = ws.get(("pattern_inputs", k), (n_patterns, len(names), stop - start))
    for j, name in enumerate(names):
        if name not in by_cell_day:
            raise ValueError(f"layer {net.layer}: no values for the input {name!r}")
        out[:, j] = by_cell_day[name][:n_patterns, start:stop]
    return out


def compute_block(job: ProductJob, block_id: int) -> dict:
    """Compute one block and write it into the store (the task run by each worker).

    Returns, for the block, ``cell_days``, ``flops`` (executed by the networks) and per part
    (``read``, ``features``, ``network``, ``assemble``, ``write``) the wall seconds ``<part>_s``
    and the process CPU seconds ``<part>_cpu_s`` (``network_cpu_s`` is the thread CPU time of
    the forward passes alone); ``cpu_s`` is the CPU time of the whole block.
    """
    from threadpoolctl import threadpool_limits

    from cropsm.io import limit_netcdf_chunk_cache

    limit_netcdf_chunk_cache()  # before this process opens a climate file (see its docstring)
    cpu0 = time.process_time()
    with threadpool_limits(limits=1):
        timings = _compute_block(job, block_id)
    timings["cpu_s"] = time.process_time() - cpu0
    return timings


class _PartClock:
    """Wall and process-CPU seconds per named part of a block."""

    def __init__(self, timings: dict):
        self.timings = timings
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self, part: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.timings[f"{part}_s"] = self.timings.get(f"{part}_s", 0.0) + wall - self.wall
        key = f"{part}_cpu_s"
        self.timings[key] = self.timings.get(key, 0.0) + cpu - self.cpu
        self.wall, self.cpu = wall, cpu


def _block_pattern_inputs(
    job: ProductJob,
    raw: Mapping[str, np.ndarray],
    dates: pd.DatetimeIndex,
    cells: np.ndarray,
    t_sl: slice,
) -> tuple[dict, dict]:
    """The block's crop-aware pattern inputs (climate-adjusted calendars, pattern buckets)
    and its pattern-free bare buckets (:func:`block_pattern_inputs`)."""
    if not job.pattern_input_names and not job.bare_bucket_names:
        return {}, {}
    n_days = len(dates)
    soil = {}
    for name, values in (job.cell_soil or {}).items():
        soil[name] = np.asarray(values)[..., cells]
    start_water = None
    if job.bucket_start_water is not None:
        i_time = t_sl.start // job.layout.time_chunk_days
        start_water = job.bucket_start_water[i_time][..., cells]
    block_climate = {v: raw[v][-n_days:] for v in BUCKET_VARIABLES if v in raw}
    names = (*job.pattern_input_names, *job.bare_bucket_names)
    harmonics = None
    if job.cell_harmonics is not None:
        harmonics = {k: np.asarray(v)[cells] for k, v in job.cell_harmonics.items()}
    return block_pattern_inputs(block_climate, dates, soil, start_water, names, harmonics)


def _compute_block(job: ProductJob, block_id: int) -> dict:
    layout = job.layout
    t_sl, y_sl, x_sl = layout.block(block_id)
    dates = layout.dates[t_sl]
    cells = block_cells(job, block_id)
    timings = {"block": int(block_id), "cells": int(cells.size), "days": int(len(dates))}
    extras: dict = {}
    for part in ("read", "features", "network", "assemble", "write"):
        timings[f"{part}_s"] = timings[f"{part}_cpu_s"] = 0.0
    clock = _PartClock(timings)
    if cells.size:
        first = job.climate_index_of_first_day + t_sl.start
        last = job.climate_index_of_first_day + t_sl.stop
        halo = 0
        if job.needs_halo:
            halo = int((dates[0] - lookback_start(dates[0])) / pd.Timedelta(days=1))
        slices = {v: slice(first, last) for v in job.climate_variables}
        if "precipitation" in slices:
            slices["precipitation"] = slice(first - halo, last)
        raw = read_tile_climate(
            job.climate,
            job.climate_variables,
            slices,
            y_sl,
            x_sl,
            job.cell_ilat[cells],
            job.cell_ilon[cells],
        )
        clock.lap("read")
        features = block_climate_features(raw, dates, halo, job.climate_features)
        by_cell_day, bare = _block_pattern_inputs(job, raw, dates, cells, t_sl)
        features.update(bare)
        del raw
        static = {name: v[cells] for name, v in job.cell_static.items()}
        clock.lap("features")
        inner: dict = {}
        packed = predict_cells(
            job.nets,
            job.n_patterns,
            layout.scenarios,
            features,
            static,
            block_day_features(dates),
            job.cell_weights[:, cells],
            job.batch_cell_days,
            inner,
            by_cell_day,
            member_nets=job.member_nets,
            residual_sd=job.residual_sd,
            extras=(
                extras
                if product_store.has_standard_error(1 + len(job.member_nets), job.residual_sd)
                else None
            ),
            day_slot=product_store.month_slot_of_days(dates),
            n_slots=product_store.month_slots(layout),
        )
        del features, by_cell_day
        flags = time_flag(dates, job.cell_region[cells], job.region_periods)
        clock.lap("assemble")
        # split the predict_cells time into the forward passes and the rest
        timings["network_s"] = inner["network_s"]
        timings["network_cpu_s"] = inner["network_cpu_s"]
        timings["assemble_s"] -= inner["network_s"]
        timings["assemble_cpu_s"] -= inner["network_cpu_s"]
    else:
        packed = np.empty((len(layout.scenarios), len(job.nets), len(dates), 0), dtype=np.int16)
        flags = np.empty((len(dates), 0), dtype=np.int8)
        extras = {"sm_sd": packed}
        if job.member_nets:
            n_members, n_slots = 1 + len(job.member_nets), product_store.month_slots(layout)
            shape = (len(layout.scenarios), len(job.nets), n_slots, 0)
            extras["member_sum"] = np.zeros((n_members, *shape), np.float32)
            extras["member_days"] = np.zeros(shape, np.int16)
    product_store.write_block(
        Path(job.store), layout, block_id, packed, flags,
        job.cell_ilat[cells], job.cell_ilon[cells], extras=extras,
    )  # fmt: skip
    clock.lap("write")
    cell_days = int(cells.size * len(dates))
    timings.update(
        cell_days=cell_days,
        flops=cell_days
        * executed_flops_per_cell_day(job.nets, job.n_patterns)
        * (1 + len(job.member_nets)),
    )
    return timings


# --------------------------------------------------------------------------------------------
# planning


def product_period(
    climate_dates: pd.DatetimeIndex, start=None, end=None, needs_halo: bool = True
) -> pd.DatetimeIndex:
    """Days of the product: ``[start, end]``, by default from the first day with a complete
    12-month look-back to the last climate day.

    Raises
    ------
    ValueError
        When the period is empty, leaves the climate, or starts before the look-back is
        complete (with accumulated precipitation among the inputs).
    """
    climate_dates = pd.DatetimeIndex(climate_dates)
    earliest = first_complete_day(climate_dates[0])
    first = pd.Timestamp(start) if start is not None else earliest
    last = pd.Timestamp(end) if end is not None else climate_dates[-1]
    if needs_halo and first < earliest:
        raise UsageError(
            f"predict start {first.date()} is too early: the 12-month precipitation look-back "
            f"needs climate from {lookback_start(first).date()}, but the climate starts "
            f"{climate_dates[0].date()}; start on {earliest.date()} or later"
        )
    if first < climate_dates[0] or last > climate_dates[-1]:
        raise UsageError(
            f"predict period {first.date()} to {last.date()} leaves the climate period "
            f"{climate_dates[0].date()} to {climate_dates[-1].date()}"
        )
    if last < first:
        raise UsageError(
            f"the product period is empty ({first.date()} to {last.date()}); the climate "
            f"({climate_dates[0].date()} to {climate_dates[-1].date()}) must cover 12 months "
            "of look-back before the first day"
        )
    return pd.date_range(first, last, freq="D")


def _static_variables(
    static: xr.Dataset,
    cropland: np.ndarray,
    weights_grid: np.ndarray,
    pattern_flags: np.ndarray,
    scenarios: Sequence[str],
    season_flags: np.ndarray,
) -> dict:
    region = np.asarray(static["region"].transpose("lat", "lon").values, dtype=np.int16)
    fraction = np.asarray(
        static["cropland_fraction"].transpose("lat", "lon").values, dtype=np.float32
    )
    region_meanings = " ".join(["outside"] + [r.id for r in catalog.regions()])
    return {
        "pattern_flag": (
            ("scenario", "lat", "lon"),
            pattern_flags,
            {
                "long_name": "cropping-pattern quality flag: the stations of the cell's region "
                "have the scenario's pattern(s) (paper section 4c)",
                "flag_values": FLAG_VALUES,
                "flag_meanings": PATTERN_FLAG_MEANINGS,
            },
        ),
        "season_flag": (
            ("month", "lat", "lon"),
            season_flags,
            {
                "long_name": "season quality flag: the stations of the cell's region observe in "
                "this calendar month (beyond the paper; the calibration of sm_sd rests on their "
                "readings, so outside their season the networks extrapolate)",
                "flag_values": FLAG_VALUES,
                "flag_meanings": SEASON_FLAG_MEANINGS,
            },
        ),
        "weights": (
            ("pattern", "lat", "lon"),
            weights_grid.astype(np.float32),
            {
                "long_name": "crop-area weight of the cropping pattern in the reference (Eq. 1)",
                "units": "1",
            },
        ),
        "cropland_mask": (
            ("lat", "lon"),
            cropland.astype(np.int8),
            {
                "long_name": "cropland cell with a product (cropland fraction >= 0.1)",
                "flag_values": FLAG_VALUES,
                "flag_meanings": "not_cropland cropland",
            },
        ),
        "cropland_fraction": (
            ("lat", "lon"),
            fraction,
            {"long_name": "cropland fraction of the cell", "units": "1"},
        ),
        "region": (
            ("lat", "lon"),
            region,
            {
                "long_name": "agricultural region",
                "flag_values": np.arange(len(catalog.regions()) + 1, dtype=np.int16),
                "flag_meanings": region_meanings,
            },
        ),
    }


def unknown_inputs_message(unknown: Sequence[str], where: str = "") -> str:
    """The error for network inputs this cropsm cannot compute on the grid."""
    prefix = f"{where}: " if where else ""
    return (
        f"{prefix}the networks take input(s) {', '.join(unknown)} that this cropsm cannot "
        "compute on the grid (networks trained by another version? retrain them: cropsm run "
        "CONFIG --stages features,train)"
    )


def computed_climate_names(shared_names: Sequence[str]) -> list[str]:
    """The network inputs among ``shared_names`` that are daily climate features (not static,
    day-of-year, climate-descriptor or bare-bucket inputs), which the grid computes by
    name (:data:`cropsm.features.climate.FEATURE_ATTRS`)."""
    return [
        n
        for n in shared_names
        if n not in STATIC_FEATURES
        and n not in DAY_FEATURES
        and n not in CLIMATE_DESCRIPTORS
        and n not in BARE_BUCKET_FEATURES
    ]


def check_grid_inputs(models: Sequence[LayerModel], models_dir: str | Path) -> None:
    """Refuse networks (one chain, e.g. ensemble member 0) that take an input this cropsm
    cannot compute on the grid, naming the first such layer's ``model.json``.

    Raises
    ------
    cropsm.errors.UsageError
    """
    for model, net in zip(models, fold_chain(models), strict=True):
        names = computed_climate_names(net.shared_names)
        unknown = [n for n in names if n not in _CLIMATE_FEATURE_NAMES]
        if unknown:
            where = Path(models_dir) / f"layer{model.layer}" / "model.json"
            raise UsageError(unknown_inputs_message(unknown, str(where)))


def ensemble_members(
    models: Sequence[LayerModel] | Sequence[Sequence[LayerModel]],
) -> list[list[LayerModel]]:
    """``models`` as a list of members (each a list of layer models): one network per layer
    is one member."""
    models = list(models)
    if models and isinstance(models[0], LayerModel):
        return [models]
    return [list(m) for m in models]


def _models_digest(models: Sequence[LayerModel]) -> str:
    parts: list = []
    for m in sorted(models, key=lambda m: m.layer):
        parts += [m.layer, list(m.feature_names), m.target_mean, m.target_std, m.output]
        parts += [m.scaler.mean, m.scaler.std]
        for w, b in m.weights:
            parts += [np.asarray(w), np.asarray(b)]
    return product_store.digest(*parts)


def plan_product(
    out: Path,
    climate: xr.Dataset,
    static: xr.Dataset,
    stations,
    models: Sequence[LayerModel] | Sequence[Sequence[LayerModel]],
    config: PredictConfig,
    source: str = "",
    residual_sd: Mapping[int, float] | None = None,
    observation_error_sd: Mapping[int, float] | None = None,
) -> tuple[ProductJob, xr.Dataset, dict, str]:
    """Plan a product: the block job, the store template, its encoding and its fingerprint.

    Folds the networks, works out which inputs they take (their feature names: a reduced model
    set reads only what it uses), the period, the cropland cells (fraction >= 0.1), the
    crop-area weights of Eq. 1 (:func:`cropsm.weights.pattern_weights`), the flags' inputs
    (section 4c) and the blocks.

    Parameters
    ----------
    out
        The store path.
    climate, static, stations, models, config
        As for :func:`predict_product`.
    source
        Free text for the ``source`` attribute.
    Returns
    -------
    (job, template, encoding, fingerprint)

    Raises
    ------
    ValueError
        When the networks need an input the data lack, the grids differ or the period is
        impossible.
    """
    members = ensemble_members(models)
    models = members[0]
    nets = fold_chain(models)
    member_nets = tuple(fold_chain(m) for m in members[1:])
    residual = tuple(float((residual_sd or {}).get(m.layer, 0.0)) for m in models)
    observation = tuple(float((observation_error_sd or {}).get(m.layer, 0.0)) for m in models)
    uses_pattern = chain_uses_pattern(nets)
    shared = sorted({n for net in nets for n in net.shared_names})
    pattern_inputs = tuple(dict.fromkeys(n for net in nets for n in net.pattern_input_names))
    static_names = [n for n in shared if n in STATIC_FEATURES]
    descriptor_names = [n for n in shared if n in CLIMATE_DESCRIPTORS]
    bare_names = tuple(n for n in shared if n in BARE_BUCKET_FEATURES)
    climate_names = computed_climate_names(shared)
    variables, needs_halo = climate_sources(climate_names)
    needs_bucket = bool(bare_names) or any(
        n in (*WATER_BALANCE_FEATURES, *CALENDAR_FEATURES) for n in pattern_inputs
    )
    if needs_bucket or descriptor_names:
        variables = tuple(dict.fromkeys([*variables, *BUCKET_VARIABLES]))
    missing = [v for v in variables if v not in climate]
    if missing:
        raise UsageError(
            f"the networks need climate variable(s) {', '.join(missing)}, which the climate "
            "input lacks"
        )
    unknown = [n for n in climate_names if n not in _CLIMATE_FEATURE_NAMES]
    if unknown:
        raise UsageError(unknown_inputs_message(unknown))
    for name in static_names:
        if name in LOCATION_FEATURES:  # from the grid's own lat/lon
            continue
        source_var = "elevation" if name == "elevation" else SOIL_SOURCES[name.rsplit("_l", 1)[0]]
        if source_var not in static:
            raise UsageError(
                f"the networks take {name!r}, but the static input lacks {source_var!r}"
            )

    climate_dates = pd.DatetimeIndex(climate["time"].values)
    dates = product_period(climate_dates, config.start, config.end, needs_halo)
    if not (
        np.allclose(static["lat"].values, climate["lat"].values)
        and np.allclose(static["lon"].values, climate["lon"].values)
    ):
        raise UsageError("static and climate grids differ; read static onto the climate grid")
    fraction = static["cropland_fraction"].transpose("lat", "lon").values
    ilat, ilon = cropland_cells(fraction)
    cropland = np.zeros(fraction.shape, dtype=bool)
    cropland[ilat, ilon] = True
    areas = static["harvested_area"].sel(crop=list(catalog.crops())).transpose("crop", "lat", "lon")
    region_grid = static["region"].transpose("lat", "lon").values.astype(np.int64)
    weights_grid = pattern_weights(areas.values, region_grid)  # (6, lat, lon)
    weights_grid = np.where(cropland[None], weights_grid, np.nan)
    cell_weights = np.nan_to_num(weights_grid[:, ilat, ilon])
    cell_region = region_grid[ilat, ilon]
    periods = region_observation_periods(stations.meta, stations.obs)
    observed = observed_patterns(stations.meta, stations.obs)
    flags_cells = pattern_flag(cell_region, observed, cell_weights, config.scenarios)
    flags_grid = np.full((len(config.scenarios), *fraction.shape), -1, dtype=np.int8)
    flags_grid[:, ilat, ilon] = flags_cells
    observed_months = region_observed_months(stations.meta, stations.obs)
    season_grid = np.full((12, *fraction.shape), -1, dtype=np.int8)
    season_grid[:, ilat, ilon] = observed_months[cell_region].T
    cell_static = static_cell_features(static, ilat, ilon, static_names)
    soil = cell_soil(static, ilat, ilon) if (needs_bucket or descriptor_names) else None

    tiles = product_store.plan_tiles(
        cropland, config.space_chunk_cells, config.time_chunk_days, config.max_block_cell_days
    )
    layout = product_store.ProductLayout(
        dates=dates,
        lat=np.asarray(climate["lat"].values, dtype=np.float64),
        lon=np.asarray(climate["lon"].values, dtype=np.float64),
        scenarios=tuple(config.scenarios),
        time_chunk_days=min(config.time_chunk_days, len(dates)),
        space_chunk_cells=config.space_chunk_cells,
        tiles=tiles,
    )
    fingerprint = product_store.digest(
        product_store.PRODUCT_FORMAT,
        [_models_digest(m) for m in members],
        list(residual),
        list(observation),
        [str(dates[0]), str(dates[-1])],
        list(layout.scenarios),
        [layout.time_chunk_days, layout.space_chunk_cells, [list(map(list, t)) for t in tiles]],
        layout.lat,
        layout.lon,
        climate.attrs.get("source_files", ""),
        [str(climate_dates[0]), str(climate_dates[-1])],
        ilat,
        ilon,
        cell_weights,
        cell_region,
        *[cell_static[n] for n in static_names],
        periods.astype("int64"),
        observed,
        observed_months,
    )
    job = ProductJob(
        store=str(out),
        layout=layout,
        climate=climate,
        climate_index_of_first_day=int(climate_dates.get_loc(dates[0])),
        nets=nets,
        n_patterns=len(catalog.pattern_ids()) if uses_pattern else 1,
        climate_variables=variables,
        climate_features=tuple(climate_names),
        needs_halo=needs_halo,
        cell_ilat=ilat,
        cell_ilon=ilon,
        cell_static=cell_static,
        cell_weights=cell_weights,
        cell_region=cell_region,
        region_periods=periods,
        batch_cell_days=config.batch_cell_days,
        pattern_input_names=pattern_inputs,
        bare_bucket_names=bare_names,
        descriptor_names=tuple(descriptor_names),
        cell_soil=soil,
        member_nets=member_nets,
        residual_sd=residual,
    )
    attrs = {
        "Conventions": "CF-1.8",
        "title": "cropsm: daily five-layer (0-50 cm) cropland soil moisture under six cropping "
        "patterns and their crop-area-weighted reference",
        "source": f"cropsm {__version__} chained layer neural networks; {source}".strip("; "),
        "history": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} cropsm {__version__} predict",
        "references": PAPER_REFERENCE,
        "comment": (
            "sm is packed as int16 x 1e-4 m3 m-3; cells with cropland fraction < 0.1 are fill. "
            "time_flag and pattern_flag are the quality flags of the paper's section 4c; "
            "season_flag marks the months the stations of the cell's region observe."
            + (
                f" sm is the mean of {len(members)} deep-ensemble members; sm_sd its standard "
                "error (sm +/- 1.645 sm_sd: the calibrated central 90 % interval)."
                if product_store.has_standard_error(len(members), residual)
                else ""
            )
        ),
        "ensemble_members": len(members),
        "product_format": product_store.PRODUCT_FORMAT,
        "networks_use_pattern": int(uses_pattern),
        "period": f"{dates[0]:%Y-%m-%d} to {dates[-1]:%Y-%m-%d}",
        product_store.FINGERPRINT_ATTR: fingerprint,
    }
    template, encoding = product_store.product_template(
        layout,
        _static_variables(
            static, cropland, weights_grid, flags_grid, config.scenarios, season_grid
        ),
        attrs,
        n_members=len(members),
        residual_sd=residual,
        observation_error_sd=observation,
    )
    return job, template, encoding, fingerprint


def with_bucket_states(job: ProductJob, progress: ProgressCallback | None = None) -> ProductJob:
    """The job with the pattern buckets' state at every time block's start and the cells'
    long-term climate (:func:`cropsm.predict.crop_inputs.bucket_prepass`): one pass over the
    climate record, made only when blocks remain to be computed. A job whose networks take
    neither is returned as it is. Within one process the last pre-pass is reused by a product
    with the same climate files, cells, soil and blocks (:data:`_PREPASS_MEMO`)."""
    if job.cell_soil is None:
        return job
    climate, soil = job.climate, job.cell_soil
    climate_dates = pd.DatetimeIndex(climate["time"].values)
    layout = job.layout
    n_lat, n_lon = len(layout.lat), len(layout.lon)
    starts = [
        job.climate_index_of_first_day + i * layout.time_chunk_days
        for i in range(layout.n_time_blocks)
    ]
    key = _prepass_key(job, climate_dates, starts)
    if key is not None and key in _PREPASS_MEMO:
        if progress is not None:
            progress("calendars and pattern buckets (the same as this run's last product)", 1, 1)
        return _with_states(job, _PREPASS_MEMO[key])

    def read_piece(time_slice: slice, variables) -> dict:
        return read_tile_climate(
            climate,
            tuple(variables),
            {v: time_slice for v in variables},
            slice(0, n_lat),
            slice(0, n_lon),
            job.cell_ilat,
            job.cell_ilon,
        )

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress("calendars and pattern buckets over the climate record", done, total)

    states = bucket_prepass(read_piece, climate_dates, soil, starts, report)
    if key is not None:
        _PREPASS_MEMO.clear()  # the last one only: a run's products share it
        _PREPASS_MEMO[key] = states
    return _with_states(job, states)


_PREPASS_MEMO: dict[str, BucketStates] = {}
"""The last pre-pass of this process by :func:`_prepass_key`: the products of one run (the
national product and Fig. 6's reduced products, made in one process by ``cropsm run``) share
their climate, cells, soil and blocks, and with them the pre-pass (its result is a function of
these alone; 12 of the 30 s of each reduced product on the demo preset, 121 s on the paper
preset)."""


def _prepass_key(job: ProductJob, climate_dates: pd.DatetimeIndex, starts) -> str | None:
    """What the pre-pass of a job depends on, as a digest; None when the climate's files are
    unknown (``source_signature``, :func:`cropsm.io.climate.read_climate`)."""
    signature = job.climate.attrs.get("source_signature")
    if not signature:
        return None
    soil_names = sorted(job.cell_soil)
    return product_store.digest(
        "bucket-prepass/1",
        signature,
        sorted(str(v) for v in job.climate.data_vars),
        [str(climate_dates[0]), str(climate_dates[-1]), len(climate_dates)],
        job.layout.lat,
        job.layout.lon,
        job.cell_ilat,
        job.cell_ilon,
        soil_names,
        *[np.asarray(job.cell_soil[name]) for name in soil_names],
        [int(i) for i in starts],
    )


def _with_states(job: ProductJob, states: BucketStates) -> ProductJob:
    """The job with the pre-pass's block-start water, descriptors and temperature cycles."""
    cell_static = dict(job.cell_static)
    for name in job.descriptor_names:
        cell_static[name] = states.descriptors[name]
    return dataclasses.replace(
        job,
        bucket_start_water=states.start_water_mm,
        cell_static=cell_static,
        cell_harmonics=dict(states.harmonics),
    )


_CLIMATE_FEATURE_NAMES = tuple(FEATURE_ATTRS)
"""Climate inputs the grid can provide (the station table's climate columns)."""


def _beyond_repair(store: Path) -> bool:
    """A store of ours that block-by-block computing cannot mend: a variable's metadata lost,
    its resume record unreadable, or a chunk of an array written at creation missing."""
    record_lost = (store / product_store.RESUME_RECORD).exists() and (
        product_store.read_resume_record(store) is None
    )
    return (
        record_lost
        or bool(product_store.missing_variables(store))
        or bool(product_store.missing_static_chunks(store))
    )


def prepare_store(
    out: Path,
    template: xr.Dataset,
    encoding: dict,
    fingerprint: str,
    layout: product_store.ProductLayout | None = None,
) -> tuple[str, Path]:
    """Create the store under its working name, or keep one with the same fingerprint.

    The store is built under ``OUT.partial`` (:func:`cropsm.predict.store.partial_path`) and
    published under ``out`` by :func:`cropsm.predict.store.finish_store` once complete.

    Returns
    -------
    (status, path)
        ``status`` is ``"created"``, ``"resumed"`` (a finished ``out`` or an unfinished
        ``OUT.partial`` with this fingerprint), ``"repaired"`` (a finished ``out`` with this
        fingerprint that misses chunk files, given ``layout``: reopened as ``OUT.partial``
        with its damaged blocks to compute, :func:`cropsm.predict.store.reopen_damaged`) or
        ``"replaced"`` (``out`` holds a product with another fingerprint, or one beyond
        block-by-block repair: variable metadata, resume record or a static array's chunk
        lost; kept until the new one is finished); ``path`` is where
        the blocks go (``out`` when it is already finished). A folder that is not a cropsm
        product is never removed.
    """
    import shutil

    out = Path(out)
    status = "created"
    if out.exists():
        existing = product_store.read_fingerprint(out)
        if existing == fingerprint and not _beyond_repair(out):
            reopened = None if layout is None else product_store.reopen_damaged(out, layout)
            return ("resumed", out) if reopened is None else ("repaired", reopened)
        if existing is None:
            raise FileExistsError(
                f"{out} exists and is not a cropsm product; choose another --out or remove it"
            )
        status = "replaced"
    work = product_store.partial_path(out)
    if work.exists():
        existing = product_store.read_fingerprint(work)
        resumable = product_store.read_resume_record(work) is not None and not (
            _beyond_repair(work)
        )
        if existing == fingerprint and resumable:
            return ("resumed" if status == "created" else status), work
        if existing is None:
            raise FileExistsError(
                f"{work} exists and is not an unfinished cropsm product; remove it"
            )
        shutil.rmtree(work)  # another product's, or ours without its resume record: rebuilt
    product_store.create_store(work, template, encoding)
    return status, work


def predict_product(
    out: str | Path,
    climate: xr.Dataset,
    static: xr.Dataset,
    stations,
    models: Sequence[LayerModel],
    config: PredictConfig | None = None,
    *,
    client=None,
    progress: ProgressCallback | None = None,
    source: str = "",
    residual_sd: Mapping[int, float] | None = None,
    observation_error_sd: Mapping[int, float] | None = None,
) -> dict:
    """Compute (or resume) the product store at ``out``.

    The store is built under ``OUT.partial`` and renamed to ``out`` (without its resume record)
    only when every block is written (:func:`prepare_store`,
    :func:`cropsm.predict.store.finish_store`); an interrupted run resumes from ``OUT.partial``.

    Parameters
    ----------
    out
        The zarr store to write (``.../product.zarr``).
    climate
        Canonical climate (lazy), covering the period plus the 12-month look-back.
    static
        Canonical static fields on the climate grid.
    stations
        Canonical station data (``meta``, ``obs``) for the quality flags.
    models
        Layer models 1...5 (reduced sets produce their own product the same way), or the
        deep-ensemble members, each a list of layer models (``sm`` is their mean).
    config
        Chunking, period, scenarios.
    client
        A ``distributed.Client``; ``None`` runs the blocks one after another in this process.
    progress
        ``report(step, done, total)``.
    source
        Free text for the ``source`` attribute (e.g. the models folder).
    residual_sd
        Calibrated residual SD per layer, m3 m-3, for ``sm_sd``
        (:func:`cropsm.train.load_residual_sd`); None: 0.
    observation_error_sd
        The readings' error per layer, m3 m-3, that ``sm_sd`` leaves out (an attribute of
        ``sm_sd``; :func:`cropsm.train.load_observation_error_sd`); None: 0.

    Returns
    -------
    dict
        ``path``, ``status`` (created/resumed/replaced), ``blocks``, ``blocks_computed``,
        ``blocks_skipped``, ``cell_days`` (computed now), ``cells``, ``days``, ``scenarios``,
        ``seconds`` and summed block timings.
    """
    config = config or PredictConfig()
    out = Path(out)
    t_start = time.perf_counter()
    job, template, encoding, fingerprint = plan_product(
        out, climate, static, stations, models, config, source, residual_sd, observation_error_sd
    )
    status, work = prepare_store(out, template, encoding, fingerprint, job.layout)
    job = dataclasses.replace(job, store=str(work))
    done = product_store.completed_blocks(work, job.layout)
    todo = [int(b) for b in np.flatnonzero(~done)]
    n_blocks = job.layout.n_blocks
    if todo:
        job = with_bucket_states(job, progress)
    results = run_blocks(job, todo, client, progress, already_done=int(done.sum()))
    product_store.finish_store(work, out, job.layout)
    totals: dict = {"cell_days": 0, "flops": 0}
    parts = ("read", "features", "network", "assemble", "write")
    for key in [f"{p}_s" for p in parts] + [f"{p}_cpu_s" for p in parts] + ["cpu_s"]:
        totals[key] = round(sum(r.get(key, 0.0) for r in results), 3)
    totals["cell_days"] = int(sum(r["cell_days"] for r in results))
    totals["flops"] = int(sum(r["flops"] for r in results))
    return {
        "path": str(out),
        "status": status,
        "fingerprint": fingerprint,
        "blocks": n_blocks,
        "blocks_computed": len(todo),
        "blocks_skipped": n_blocks - len(todo),
        "cells": int(job.cell_ilat.size),
        "days": int(len(job.layout.dates)),
        "period": [str(job.layout.dates[0].date()), str(job.layout.dates[-1].date())],
        "scenarios": list(job.layout.scenarios),
        "networks_use_pattern": job.n_patterns > 1,
        "ensemble_members": 1 + len(job.member_nets),
        "seconds": round(time.perf_counter() - t_start, 3),
        **totals,
    }


def run_blocks(
    job: ProductJob,
    block_ids: Sequence[int],
    client=None,
    progress: ProgressCallback | None = None,
    already_done: int = 0,
) -> list[dict]:
    """Run :func:`compute_block` for ``block_ids``: in this process, or as one dask task each.

    With a client the job is one recomputable task result
    (:func:`cropsm.predict.cluster.recomputable`, not scattered data), fetched by each worker
    once; block tasks are submitted in block order and results collected as they finish
    (:func:`cropsm.predict.cluster.gather_as_completed`). A block whose worker dies runs again
    on another worker (blocks are deterministic, so the store is the same); with no worker left
    the run stops with a one-line error after a bounded wait. A failing block cancels the
    others and re-raises its error (finished blocks keep their records, so a re-run resumes).
    """
    total = job.layout.n_blocks
    results: list[dict] = []
    if progress is not None:
        progress("predict blocks", already_done, total)
    if client is None:
        for b in block_ids:
            results.append(compute_block(job, b))
            if progress is not None:
                progress("predict blocks", already_done + len(results), total)
        return results
    from cropsm.predict.cluster import gather_as_completed, recomputable

    def finished(result: dict | _ExpectedFailure) -> None:
        if isinstance(result, _ExpectedFailure):
            raise result.error
        results.append(result)
        if progress is not None:
            progress("predict blocks", already_done + len(results), total)

    job_future = recomputable(client, job, "cropsm-job")
    futures = [
        client.submit(
            _block_task, job_future, b, pure=False, key=f"cropsm-block-{b}-{time.time_ns()}"
        )
        for b in block_ids
    ]
    try:
        gather_as_completed(client, futures, finished, what="product blocks")
    finally:
        client.cancel([job_future])
    return results


def block_cells(job: ProductJob, block_id: int) -> np.ndarray:
    """Indices (into the job's cells) of the cropland cells inside a block's tile."""
    _, y_sl, x_sl = job.layout.block(block_id)
    inside = (
        (job.cell_ilat >= y_sl.start)
        & (job.cell_ilat < y_sl.stop)
        & (job.cell_ilon >= x_sl.start)
        & (job.cell_ilon < x_sl.stop)
    )
    return np.flatnonzero(inside)


@dataclass(frozen=True)
class _ExpectedFailure:
    """A block's expected failure (a full disk, say), returned by a worker as a value."""

    error: CropsmError


def _block_task(job: ProductJob, block_id: int) -> dict | _ExpectedFailure:
    """:func:`compute_block` as a dask task: an expected failure
    (:class:`cropsm.errors.CropsmError`) comes back as a value that the driver raises as one
    line, instead of being logged by the worker as a crash with its traceback; any other error
    (a bug) is raised and logged as usual."""
    try:
        return compute_block(job, block_id)
    except CropsmError as err:
        return _ExpectedFailure(err)
