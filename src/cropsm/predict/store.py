"""The product store: a zarr (v3) folder written block by block, resumable.

Layout (``product.zarr``; CF-1.8 attributes on every variable)::

    sm            (scenario, layer, time, lat, lon) int16  soil moisture, m3 m-3 = value x 1e-4,
                  _FillValue -32768 (not cropland, or an input missing), zstd; chunks
                  (1, 1, time_chunk_days, space_chunk_cells, space_chunk_cells)
    time_flag     (time, lat, lon)      int8  1 inside the observation period of the region
    season_flag   (month, lat, lon)     int8  1 when the region's stations observe that month
    pattern_flag  (scenario, lat, lon)  int8  1 when the region's stations have the pattern(s)
    weights       (pattern, lat, lon)   float32  crop-area weights of Eq. 1 (cropland cells)
    cropland_mask (lat, lon)            int8  1 where the product is computed (fraction >= 0.1)
    cropland_fraction (lat, lon)        float32
    region        (lat, lon)            int16 region codes 1-8 (0 outside China)
    coordinates   scenario (six pattern ids, then "reference"), pattern, layer (1-5) with depth
                  and depth_bounds (cm), time (daily) with time_bounds (the day), lat, lon

A compute block is one time chunk over one tile of the grid (whole stored chunks; by default
the tile is the whole grid). The store is built under ``product.zarr.partial``
(:func:`partial_path`), which also holds the resume record ``block_done (time_block, tile)``.
A worker writes the block's chunks of ``sm`` and ``time_flag`` straight into it and then sets
``block_done``; chunks of different blocks never overlap, so workers need no locks. An
interrupted run leaves ``block_done = 0`` for every block it did not finish; running again
recomputes exactly those blocks, and because each block is computed deterministically the
finished store is identical, chunk for chunk, to an uninterrupted run. Only when every block is
written does :func:`finish_store` drop ``block_done`` and rename the store to its final name, so
a store under the final name is always complete (and an unfinished one cannot be opened by
:func:`open_product`). Every chunk is written, also one holding only fill values, so a block
counts as written only when its record says so *and* all its chunk files are there
(:func:`missing_chunks`): a chunk file lost later, in an unfinished or a finished store, is
found, refused by :func:`open_product` and recomputed by the next ``cropsm predict``
(:func:`reopen_damaged`). The store's ``cropsm_fingerprint`` attribute (models, inputs, period,
layout) decides whether an existing store may be resumed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
import zarr
from zarr.codecs import ZstdCodec

from cropsm import LAYER_BOTTOM_CM, LAYER_MID_CM, LAYER_TOP_CM, N_LAYERS, catalog, paper
from cropsm.errors import InputError, OutputError, UsageError
from cropsm.io import zarr_damage
from cropsm.io.atomic import atomic_output
from cropsm.predict.flags import FLAG_VALUES, TIME_FLAG_MEANINGS
from cropsm.provenance import read_json_object

SM_SCALE = 1.0e-4
"""Soil moisture packing: value in m3 m-3 = stored int16 x SM_SCALE."""
SM_FILL = np.int16(-32768)
"""Stored value of a missing soil moisture (non-cropland cell, missing input)."""
SM_VALID_MAX = 32767
FLAG_FILL = np.int8(-1)
"""Stored value of a flag outside cropland."""
ZSTD_LEVEL = 1
"""zstd level of the chunks (level 1: half the CPU time of 3, within 2 % of its size here)."""
SM_STANDARD_NAME = "volume_fraction_of_condensed_water_in_soil"
FINGERPRINT_ATTR = "cropsm_fingerprint"
PRODUCT_FORMAT = "cropsm-product/2"
"""Format of the stores this cropsm writes: every chunk of the per-block variables is stored,
also one that holds only fill values (no cropland there), so a missing chunk file is damage."""
READABLE_FORMATS = ("cropsm-product/1", PRODUCT_FORMAT)
"""Formats :func:`cropsm.predict.export.export_netcdf` and the analyses read; ``/1`` stores
skipped all-fill chunks, so missing chunks cannot be told from damage there."""
BLOCK_VARIABLES = ("sm", "sm_sd", "time_flag", "member_sum", "member_days")
"""Variables written block by block (:func:`write_block`), whose chunks every block must hold."""
RESUME_RECORD = "block_done"
"""The unfinished store's record of written blocks (not part of the finished product)."""
PARTIAL_SUFFIX = ".partial"


def encode_sm(values: np.ndarray) -> np.ndarray:
    """Pack soil moisture (m3 m-3) into int16: ``round(value x 1e4)``, NaN -> -32768.

    Computed in float32; rounding is half-to-even (:func:`numpy.rint`); values beyond
    +/-3.2767 m3 m-3 are clipped (not reachable for soil moisture). Decoding is
    ``stored x 1e-4`` (CF ``scale_factor``), so the packing error is at most 0.5e-4 m3 m-3.
    """
    scaled = np.multiply(values, np.float32(1.0 / SM_SCALE), dtype=np.float32)
    np.rint(scaled, out=scaled)
    np.clip(scaled, -SM_VALID_MAX, SM_VALID_MAX, out=scaled)
    scaled[np.isnan(scaled)] = SM_FILL
    return scaled.astype(np.int16)


@dataclass(frozen=True)
class ProductLayout:
    """Axes, chunks and compute blocks of a product.

    Attributes
    ----------
    dates
        The product's consecutive days.
    lat, lon
        Ascending cell centres of the grid, degrees.
    scenarios
        Stored scenarios, pattern ids then ``reference``.
    time_chunk_days, space_chunk_cells
        Chunk shape of ``sm`` along time and along lat/lon.
    tiles
        Spatial compute tiles, ``((lat_start, lat_stop), (lon_start, lon_stop))`` index
        ranges made of whole chunks.
    """

    dates: pd.DatetimeIndex
    lat: np.ndarray
    lon: np.ndarray
    scenarios: tuple[str, ...]
    time_chunk_days: int
    space_chunk_cells: int
    tiles: tuple[tuple[tuple[int, int], tuple[int, int]], ...]

    @property
    def n_time_blocks(self) -> int:
        return -(-len(self.dates) // self.time_chunk_days)

    @property
    def n_blocks(self) -> int:
        return self.n_time_blocks * len(self.tiles)

    def block(self, block_id: int) -> tuple[slice, slice, slice]:
        """``(time, lat, lon)`` index slices of block ``block_id`` (time-major numbering)."""
        i_time, i_tile = divmod(int(block_id), len(self.tiles))
        t0 = i_time * self.time_chunk_days
        t1 = min(t0 + self.time_chunk_days, len(self.dates))
        (y0, y1), (x0, x1) = self.tiles[i_tile]
        return slice(t0, t1), slice(y0, y1), slice(x0, x1)

    def block_position(self, block_id: int) -> tuple[int, int]:
        """``(time_block, tile)`` of a block."""
        return divmod(int(block_id), len(self.tiles))

    def chunks(self) -> tuple[int, int]:
        """``(time, space)`` chunk sizes clipped to the axes."""
        space = min(self.space_chunk_cells, max(len(self.lat), len(self.lon)))
        return min(self.time_chunk_days, len(self.dates)), space


def plan_tiles(
    cropland: np.ndarray, space_chunk_cells: int, time_chunk_days: int, max_block_cell_days: int
) -> tuple[tuple[tuple[int, int], tuple[int, int]], ...]:
    """Spatial compute tiles: the whole grid when its cropland cell-days per time chunk fit
    ``max_block_cell_days``, else rectangles of ``ky x kx`` stored chunks: of the shapes whose
    fullest tile fits, the one with the fewest tiles holding cropland (ties: the smallest
    fullest tile, so the work is balanced); one chunk per tile when none fits. Tiles without
    cropland stay in the plan (their blocks only write the fill values) but do not count:
    on the paper's grid (144 x 248 cells, chunks of 48) square tiles gave 18 blocks per year,
    most of them nearly empty; rectangles give a few full ones.
    """
    n_lat, n_lon = cropland.shape
    chunk = space_chunk_cells
    if int(cropland.sum()) * time_chunk_days <= max_block_cell_days:
        return (((0, n_lat), (0, n_lon)),)
    n_chunks_lat, n_chunks_lon = -(-n_lat // chunk), -(-n_lon // chunk)

    def tiles_of(k_lat: int, k_lon: int):
        return tuple(
            ((y, min(y + k_lat * chunk, n_lat)), (x, min(x + k_lon * chunk, n_lon)))
            for y in range(0, n_lat, k_lat * chunk)
            for x in range(0, n_lon, k_lon * chunk)
        )

    def cells_in(tile) -> int:
        (y0, y1), (x0, x1) = tile
        return int(cropland[y0:y1, x0:x1].sum())

    best = None
    for k_lat in range(1, n_chunks_lat + 1):
        for k_lon in range(1, n_chunks_lon + 1):
            tiles = tiles_of(k_lat, k_lon)
            counts = [cells_in(t) for t in tiles]
            if max(counts) * time_chunk_days > max_block_cell_days:
                continue
            key = (sum(c > 0 for c in counts), max(counts), len(tiles))
            if best is None or key < best[0]:
                best = (key, tiles)
    return tiles_of(1, 1) if best is None else best[1]


def time_bounds(dates: pd.DatetimeIndex) -> np.ndarray:
    """``(n_days, 2)`` start and end (next midnight) of each day: the interval that ``sm``'s
    ``cell_methods: time: mean`` averages over (CF section 7.1)."""
    start = pd.DatetimeIndex(dates).values
    return np.stack([start, start + np.timedelta64(1, "D")], axis=1)


def _attrs_sm() -> dict:
    return {
        "long_name": "volumetric soil moisture of the soil layer (neural-network product)",
        "standard_name": SM_STANDARD_NAME,
        "units": "m3 m-3",
        "cell_methods": "time: mean",
        "ancillary_variables": "time_flag pattern_flag",
        # packed units (CF 8.1): 0 ... 1 m3 m-3; each value also lies below its cell's porosity
        "valid_min": np.int16(0),
        "valid_max": np.int16(round(1.0 / SM_SCALE)),
        "comment": (
            "Daily mean volumetric soil moisture of one 10-cm layer predicted by the chained "
            f"layer networks ({paper.CITATION_SHORT}, section 2c(2)); scenario = cropping pattern, "
            "'reference' = crop-area-weighted sum over the region's patterns (Eq. 2). "
            "Networks with a bounded or anchored output keep every value between 0 and the "
            "porosity 1 - bulk_density / 2.65 of the cell's layer."
        ),
    }


def _attrs_sm_sd(
    residual_sd: Sequence[float], n_members: int, observation_error_sd: Sequence[float] = ()
) -> dict:
    observation = np.zeros(N_LAYERS)
    observation[: len(observation_error_sd)] = np.asarray(observation_error_sd)[:N_LAYERS]
    return {
        "long_name": "standard error of the volumetric soil moisture of the soil layer "
        "(deep-ensemble spread with the calibrated residual)",
        "standard_name": f"{SM_STANDARD_NAME} standard_error",
        "units": "m3 m-3",
        "cell_methods": "time: mean",
        "valid_min": np.int16(0),
        "valid_max": np.int16(round(1.0 / SM_SCALE)),
        "ensemble_members": np.int32(n_members),
        "residual_sd_by_layer": np.asarray(residual_sd, dtype=np.float64),
        "observation_error_sd_by_layer": observation,
        "comment": (
            "sqrt(s^2 + r_k^2): s the standard deviation of sm over the deep-ensemble members "
            "(0 for one member), r_k the residual standard deviation of layer k "
            "(residual_sd_by_layer, m3 m-3) fitted on the validation stations so that "
            "sm +/- 1.645 sqrt(sm_sd^2 + e_k^2) covers 90 % of their readings, e_k the "
            "readings' own error (observation_error_sd_by_layer, m3 m-3, the nugget of the "
            "residuals' temporal variogram unless the run gave it). sm +/- 1.645 sm_sd is the "
            "central 90 % interval of the soil moisture; to compare with a station's reading, "
            "widen it to sqrt(sm_sd^2 + e_k^2)."
        ),
    }


def has_standard_error(n_members: int, residual_sd: Sequence[float]) -> bool:
    """Whether a product stores ``sm_sd``: with ensemble members or a calibrated residual SD
    (a single network without calibration, e.g. a control experiment's, has no uncertainty to
    store, and skipping the variable keeps its cost as before)."""
    return n_members > 1 or bool(np.any(np.asarray(residual_sd, dtype=np.float64) > 0))


def month_slots(layout: ProductLayout) -> int:
    """Month slots a time block can touch: ``time_chunk_days // 28 + 2``."""
    return int(layout.time_chunk_days) // 28 + 2


def month_slot_of_days(dates: pd.DatetimeIndex) -> np.ndarray:
    """Slot of each day of a block: months since the block's first month (0, 1, ...)."""
    dates = pd.DatetimeIndex(dates)
    if len(dates) == 0:
        return np.zeros(0, dtype=np.int64)
    key = dates.year.to_numpy() * 12 + dates.month.to_numpy() - 1
    return (key - key[0]).astype(np.int64)


def slot_months(layout: ProductLayout) -> np.ndarray:
    """``(time_block, slot)`` month index ``year * 12 + month - 1`` of every slot, -1 unused."""
    out = np.full((layout.n_time_blocks, month_slots(layout)), -1, dtype=np.int32)
    for i in range(layout.n_time_blocks):
        dates = layout.dates[i * layout.time_chunk_days : (i + 1) * layout.time_chunk_days]
        key = dates.year.to_numpy() * 12 + dates.month.to_numpy() - 1
        used = np.unique(key)
        out[i, used - key[0]] = used
    return out


def _fill_encoding(dtype, fill, chunks) -> dict:
    return {
        "dtype": dtype,
        "_FillValue": fill,
        "fill_value": fill,
        "chunks": chunks,
        "compressors": [ZstdCodec(level=ZSTD_LEVEL)],
    }


def product_template(
    layout: ProductLayout,
    static_vars: dict[str, tuple[tuple[str, ...], np.ndarray, dict]],
    attrs: dict,
    n_members: int = 1,
    residual_sd: Sequence[float] = (),
    observation_error_sd: Sequence[float] = (),
) -> tuple[xr.Dataset, dict]:
    """The store's dataset (``sm``, ``sm_sd``, ``time_flag``, ``block_done`` lazy; with
    ensemble members also ``member_sum``, ``member_days``) and its encoding."""
    n_s, n_t = len(layout.scenarios), len(layout.dates)
    n_y, n_x = len(layout.lat), len(layout.lon)
    tc, sc = layout.chunks()
    cy, cx = min(sc, n_y), min(sc, n_x)
    sm = da.zeros((n_s, N_LAYERS, n_t, n_y, n_x), chunks=(1, 1, tc, cy, cx), dtype=np.float32)
    tflag = da.zeros((n_t, n_y, n_x), chunks=(tc, cy, cx), dtype=np.int8)
    done = da.zeros((layout.n_time_blocks, len(layout.tiles)), chunks=(1, 1), dtype=np.int8)
    pattern_names = {p.id: p.name for p in catalog.patterns()}
    scenario_names = "; ".join(
        f"{s}: {pattern_names.get(s, 'crop-area-weighted reference (Eq. 2)')}"
        for s in layout.scenarios
    )
    sm_attrs = _attrs_sm()
    flags = "time_flag pattern_flag" + (" season_flag" if "season_flag" in static_vars else "")
    sm_attrs["ancillary_variables"] = f"sm_sd {flags}"
    residual = np.zeros(N_LAYERS)
    residual[: len(residual_sd)] = np.asarray(residual_sd, dtype=np.float64)[:N_LAYERS]
    data_vars = {
        "sm": (("scenario", "layer", "time", "lat", "lon"), sm, sm_attrs),
        "time_flag": (
            ("time", "lat", "lon"),
            tflag,
            {
                "long_name": "time quality flag: day inside the observation period of the "
                "stations of the cell's region (paper section 4c)",
                "flag_values": FLAG_VALUES,
                "flag_meanings": TIME_FLAG_MEANINGS,
            },
        ),
        "block_done": (
            ("time_block", "tile"),
            done,
            {
                "long_name": "resume record: 1 once the compute block's chunks are written",
                "flag_values": FLAG_VALUES,
                "flag_meanings": "not_written written",
            },
        ),
    }
    with_sd = has_standard_error(n_members, residual)
    if with_sd:
        data_vars["sm_sd"] = (
            ("scenario", "layer", "time", "lat", "lon"),
            sm.copy(),
            _attrs_sm_sd(residual, n_members, observation_error_sd),
        )
    else:
        sm_attrs["ancillary_variables"] = flags
    for name, (dims, values, var_attrs) in static_vars.items():
        data_vars[name] = (dims, values, var_attrs)
    n_slots = month_slots(layout)
    if n_members > 1:
        member_dims = ("member", "scenario", "layer", "time_block", "month_slot", "lat", "lon")
        data_vars["member_sum"] = (
            member_dims,
            da.zeros(
                (n_members, n_s, N_LAYERS, layout.n_time_blocks, n_slots, n_y, n_x),
                chunks=(n_members, 1, 1, 1, n_slots, cy, cx),
                dtype=np.float32,
            ),
            {
                "long_name": "sum of each ensemble member's daily soil moisture over the days of "
                "a month slot of a time block (per-member annual and monthly means)",
                "units": "m3 m-3",
            },
        )
        data_vars["member_days"] = (
            member_dims[1:],
            da.zeros(
                (n_s, N_LAYERS, layout.n_time_blocks, n_slots, n_y, n_x),
                chunks=(1, 1, 1, n_slots, cy, cx),
                dtype=np.int16,
            ),
            {"long_name": "valid days summed in member_sum", "units": "1"},
        )
        data_vars["slot_month"] = (
            ("time_block", "month_slot"),
            slot_months(layout),
            {"long_name": "month of the slot, year * 12 + month - 1 (-1: unused)", "units": "1"},
        )
    coords = {
        "scenario": (
            "scenario",
            np.array(layout.scenarios, dtype=object),
            {"long_name": "cropping-pattern scenario", "scenario_names": scenario_names},
        ),
        "pattern": (
            "pattern",
            np.array(catalog.pattern_ids(), dtype=object),
            {"long_name": "cropping pattern"},
        ),
        "layer": (
            "layer",
            np.arange(1, N_LAYERS + 1, dtype=np.int32),
            {"long_name": "soil layer (1 = 0-10 cm ... 5 = 40-50 cm)", "units": "1"},
        ),
        "depth": (
            "layer",
            np.asarray(LAYER_MID_CM, dtype=np.float64),
            {
                "standard_name": "depth",
                "long_name": "depth of the layer mid-point below the surface",
                "units": "cm",
                "positive": "down",
                "axis": "Z",
                "bounds": "depth_bounds",
            },
        ),
        "depth_bounds": (
            ("layer", "bounds"),
            np.stack([LAYER_TOP_CM, LAYER_BOTTOM_CM], axis=1).astype(np.float64),
            {"long_name": "top and bottom of the soil layer", "units": "cm"},
        ),
        "time": (
            "time",
            layout.dates.values,
            {"standard_name": "time", "long_name": "day", "axis": "T", "bounds": "time_bounds"},
        ),
        "time_bounds": (
            ("time", "bounds"),
            time_bounds(layout.dates),
            {"long_name": "start and end of the day the daily mean is taken over"},
        ),
        "lat": (
            "lat",
            np.asarray(layout.lat, dtype=np.float64),
            {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"},
        ),
        "lon": (
            "lon",
            np.asarray(layout.lon, dtype=np.float64),
            {"standard_name": "longitude", "units": "degrees_east", "axis": "X"},
        ),
    }
    if any("month" in dims for dims, _, _ in static_vars.values()):
        coords["month"] = (
            "month",
            np.arange(1, 13, dtype=np.int32),
            {"long_name": "calendar month", "units": "1"},
        )
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    encoding = {
        "sm": {
            **_fill_encoding("int16", SM_FILL, (1, 1, tc, cy, cx)),
            "scale_factor": SM_SCALE,
        },
        "time_flag": _fill_encoding("int8", FLAG_FILL, (tc, cy, cx)),
        "block_done": {
            "dtype": "int8",
            "_FillValue": None,
            "fill_value": np.int8(0),
            "chunks": (1, 1),
        },
        "time": {"units": f"days since {layout.dates[0]:%Y-%m-%d}", "dtype": "int32"},
        "time_bounds": {"units": f"days since {layout.dates[0]:%Y-%m-%d}", "dtype": "int32"},
    }
    if with_sd:
        encoding["sm_sd"] = {
            **_fill_encoding("int16", SM_FILL, (1, 1, tc, cy, cx)),
            "scale_factor": SM_SCALE,
        }
    if n_members > 1:
        encoding["member_sum"] = {
            "chunks": (n_members, 1, 1, 1, n_slots, cy, cx),
            "compressors": [ZstdCodec(level=ZSTD_LEVEL)],
        }
        encoding["member_days"] = {
            "chunks": (1, 1, 1, n_slots, cy, cx),
            "compressors": [ZstdCodec(level=ZSTD_LEVEL)],
        }
    for name, (dims, values, _) in static_vars.items():
        chunks = tuple({"scenario": 1, "pattern": 1}.get(d, min(sc, ds.sizes[d])) for d in dims)
        if np.issubdtype(values.dtype, np.floating):
            encoding[name] = {"chunks": chunks, "compressors": [ZstdCodec(level=ZSTD_LEVEL)]}
        else:
            fill = FLAG_FILL if name in ("pattern_flag", "season_flag") else None
            encoding[name] = {
                "chunks": chunks,
                "compressors": [ZstdCodec(level=ZSTD_LEVEL)],
                "_FillValue": fill,
            }
            if fill is not None:
                encoding[name]["fill_value"] = fill
    return ds, encoding


def partial_path(path: str | Path) -> Path:
    """Where the store of ``path`` is built until it is complete: ``PATH.partial``."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


def create_store(path: Path, dataset: xr.Dataset, encoding: dict) -> None:
    """Write the store's metadata, coordinates and static variables (no ``sm`` chunks yet).

    Written with :func:`cropsm.io.atomic.atomic_output`, so a store at ``path`` always has its
    full skeleton; consolidated metadata is added for fast opening.
    """
    with atomic_output(path, folder=True) as tmp:
        zarr_damage.write_every_chunk_skeleton(dataset, tmp, encoding)
        _consolidate(tmp)


def _consolidate(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(str(path))


def finish_store(work: Path, path: Path, layout: ProductLayout) -> None:
    """Publish a store whose blocks are all written: drop its resume record and rename it from
    ``work`` (:func:`partial_path`) to ``path``, replacing an older product there.

    Raises
    ------
    ValueError
        When a block is not written (nothing is renamed).
    """
    work, path = Path(work), Path(path)
    done = completed_blocks(work, layout)
    if not done.all():
        raise ValueError(f"{work}: {int((~done).sum())} of {done.size} blocks are not written")
    if work == path and not (work / RESUME_RECORD).exists():
        return  # already finished
    try:
        shutil.rmtree(work / RESUME_RECORD)
        remove_write_debris(work)
        _consolidate(work)
        if work != path:  # (the same path: a store of an earlier cropsm, finished in place)
            if path.exists():
                shutil.rmtree(path)
            work.rename(path)
    except OSError as err:
        raise OutputError.from_os_error(path, err) from None


def remove_write_debris(store: Path) -> int:
    """Remove the temporary chunk files of writes that never finished; return how many.

    zarr writes a chunk to ``KEY.<uuid>.partial`` and renames it to ``KEY``; a worker killed
    between the two leaves the temporary file behind (the block itself is recomputed and
    written again). A finished store holds none of them.
    """
    debris = [f for f in Path(store).rglob(f"*{PARTIAL_SUFFIX}") if f.is_file()]
    for f in debris:
        f.unlink()
    return len(debris)


def read_fingerprint(path: Path) -> str | None:
    """The ``cropsm_fingerprint`` of an existing store, ``None`` when there is none."""
    try:
        meta = read_json_object(Path(path) / "zarr.json") or {}
    except InputError:
        return None  # damaged metadata: not a store this cropsm can trust
    attrs = meta.get("attributes", {})
    return attrs.get(FINGERPRINT_ATTR) if isinstance(attrs, dict) else None


def completed_blocks(path: Path, layout: ProductLayout) -> np.ndarray:
    """Boolean ``(n_blocks,)``: blocks whose resume record says they are written and whose
    chunk files are all there (:func:`missing_chunks`; a finished store has no record left,
    every block is then written unless a chunk is missing)."""
    record = read_resume_record(path)
    if record is not None:
        done = np.asarray(record, dtype=bool).reshape(-1)[: layout.n_blocks].copy()
    else:  # finished (an unreadable record is refused by :func:`check_complete`)
        done = np.ones(layout.n_blocks, dtype=bool)
        if (Path(path) / RESUME_RECORD).exists():
            done[:] = False
    for block in missing_chunks(path, layout.n_time_blocks, layout.tiles, np.flatnonzero(done)):
        done[block] = False
    return done


def read_resume_record(path: Path) -> np.ndarray | None:
    """The ``block_done`` record of an unfinished store; None when there is none or it cannot
    be read (a store whose record is damaged cannot say what it holds: it is rebuilt)."""
    record = Path(path) / RESUME_RECORD
    if not record.is_dir():
        return None
    try:
        return np.asarray(zarr.open_array(str(record), mode="r")[...])
    except Exception:  # noqa: BLE001 - missing metadata, a torn chunk: whatever zarr raises
        return None


def array_metadata(path: Path, name: str) -> dict | None:
    """The ``zarr.json`` of array ``name`` of a store; None when it is missing or unreadable."""
    try:
        return read_json_object(Path(path) / name / "zarr.json")
    except InputError:
        return None


def store_format(path: Path) -> str | None:
    """The ``product_format`` attribute of a store (None: none, or unreadable metadata)."""
    try:
        meta = read_json_object(Path(path) / "zarr.json") or {}
    except InputError:
        return None
    attrs = meta.get("attributes", {})
    return attrs.get("product_format") if isinstance(attrs, dict) else None


def missing_chunks(
    path: Path,
    n_time_blocks: int,
    tiles: Sequence[tuple[tuple[int, int], tuple[int, int]]],
    blocks: Sequence[int] | None = None,
) -> dict[int, list[str]]:
    """Chunk files of written blocks that are not in the store, by block.

    A block (time block ``i``, tile ``j``; numbered ``i * len(tiles) + j``) owns, of every
    variable in :data:`BLOCK_VARIABLES`, the chunks of time chunk (or ``time_block``) ``i``
    over the tile's lat/lon chunks and every chunk along the other axes. Only stores of
    :data:`PRODUCT_FORMAT` are checked (older ones skipped all-fill chunks): ``{}`` otherwise.

    Returns
    -------
    dict
        ``{block: ["sm/c/0/1/2/0/0", ...]}`` for the blocks (of ``blocks``; None: all) that
        miss a chunk file.
    """
    path = Path(path)
    if store_format(path) != PRODUCT_FORMAT:
        return {}
    blocks = range(n_time_blocks * len(tiles)) if blocks is None else blocks
    missing: dict[int, list[str]] = {}
    for name in BLOCK_VARIABLES:
        meta = array_metadata(path, name)
        if meta is None:
            continue
        dims = meta.get("dimension_names") or []
        shape = meta.get("shape") or []
        chunk_shape = ((meta.get("chunk_grid") or {}).get("configuration") or {}).get(
            "chunk_shape"
        ) or []
        if not (len(dims) == len(shape) == len(chunk_shape)):
            continue
        stored = zarr_damage.stored_files(path / name)
        encoding = meta.get("chunk_key_encoding") or {}
        for block in blocks:
            i_time, i_tile = divmod(int(block), len(tiles))
            (y0, y1), (x0, x1) = tiles[i_tile]
            ranges = []
            for dim, size, chunk in zip(dims, shape, chunk_shape, strict=True):
                if dim in ("time", "time_block"):
                    ranges.append([i_time])
                elif dim == "lat":
                    ranges.append(range(y0 // chunk, -(-y1 // chunk)))
                elif dim == "lon":
                    ranges.append(range(x0 // chunk, -(-x1 // chunk)))
                else:
                    ranges.append(range(-(-size // chunk)))
            for coords in itertools.product(*ranges):
                key = zarr_damage.chunk_key(encoding, coords)
                if key not in stored:
                    missing.setdefault(int(block), []).append(f"{name}/{key}")
    return missing


def reopen_damaged(path: Path, layout: ProductLayout) -> Path | None:
    """Turn a finished store with missing chunk files back into an unfinished one.

    The store is renamed to ``PATH.partial`` (:func:`partial_path`, replacing one there) and
    given a resume record in which exactly the damaged blocks are not written, so that the
    next :func:`cropsm.predict.product.predict_product` recomputes those blocks only.

    Returns
    -------
    pathlib.Path or None
        The unfinished store's path; None when nothing is missing (or the store is unfinished
        already).
    """
    path = Path(path)
    if (path / RESUME_RECORD).is_dir():
        return None  # unfinished: its record and :func:`completed_blocks` say what to compute
    damaged = missing_chunks(path, layout.n_time_blocks, layout.tiles)
    if not damaged:
        return None
    work = partial_path(path)
    try:
        if work.exists():
            shutil.rmtree(work)
        path.rename(work)
        group = zarr.open_group(str(work), mode="r+", use_consolidated=False)
        done = np.ones((layout.n_time_blocks, len(layout.tiles)), dtype=np.int8)
        for block in damaged:
            done[layout.block_position(block)] = 0
        record = group.create_array(
            RESUME_RECORD,
            shape=done.shape,
            chunks=(1, 1),
            dtype="int8",
            fill_value=np.int8(0),
            dimension_names=("time_block", "tile"),
        )
        record[...] = done
        _consolidate(work)
    except OSError as err:
        raise OutputError.from_os_error(path, err) from None
    return work


def write_block(
    path: Path,
    layout: ProductLayout,
    block_id: int,
    sm_packed: np.ndarray,
    time_flags: np.ndarray,
    cell_ilat: np.ndarray,
    cell_ilon: np.ndarray,
    extras: dict | None = None,
) -> None:
    """Write one block's ``sm`` and ``time_flag`` chunks, then its resume record.

    Parameters
    ----------
    sm_packed
        ``(scenario, layer, n_days, n_cells)`` int16 (see :func:`encode_sm`).
    time_flags
        ``(n_days, n_cells)`` int8.
    cell_ilat, cell_ilon
        Absolute grid indices of the block's cells.
    extras
        ``sm_sd`` (like ``sm_packed``) and, for an ensemble, ``member_sum`` / ``member_days``
        (:func:`cropsm.predict.product.predict_cells`).
    """
    try:
        _write_block(
            path, layout, block_id, sm_packed, time_flags, cell_ilat, cell_ilon, extras or {}
        )
    except OSError as err:  # a full disk, lost permissions: one line naming the store
        raise OutputError.from_os_error(path, err) from None


class _EveryChunk:
    """A store's arrays, written with every chunk stored, also an all-fill one
    (:data:`PRODUCT_FORMAT`)."""

    def __init__(self, group: zarr.Group) -> None:
        self.group = group

    def __contains__(self, name: str) -> bool:
        return name in self.group

    def __getitem__(self, name: str) -> zarr.Array:
        return self.group[name].with_config({"write_empty_chunks": True})


def _write_block(
    path, layout, block_id, sm_packed, time_flags, cell_ilat, cell_ilon, extras
) -> None:
    t_sl, y_sl, x_sl = layout.block(block_id)
    group = _EveryChunk(zarr.open_group(str(path), mode="r+", use_consolidated=False))
    ly = np.asarray(cell_ilat) - y_sl.start
    lx = np.asarray(cell_ilon) - x_sl.start
    shape = (t_sl.stop - t_sl.start, y_sl.stop - y_sl.start, x_sl.stop - x_sl.start)
    grid = np.empty(shape, dtype=np.int16)
    packed_vars = {"sm": sm_packed}
    if "sm_sd" in extras and "sm_sd" in group:
        packed_vars["sm_sd"] = extras["sm_sd"]
    for name, packed in packed_vars.items():
        target = group[name]
        for s in range(packed.shape[0]):
            for k in range(target.shape[1]):  # layers below the computed ones: fill
                grid.fill(SM_FILL)
                if k < packed.shape[1]:
                    grid[:, ly, lx] = packed[s, k]
                target[s, k, t_sl, y_sl, x_sl] = grid
    i_time = layout.block_position(block_id)[0]
    if "member_sum" in extras and "member_sum" in group:
        sums = extras["member_sum"]  # (member, scenario, layer, slot, cell)
        days = extras["member_days"]  # (scenario, layer, slot, cell)
        for s in range(sums.shape[1]):  # one scenario at a time bounds the memory
            plane = np.zeros((sums.shape[0], *sums.shape[2:4], *shape[1:]), dtype=np.float32)
            plane[..., ly, lx] = sums[:, s]
            group["member_sum"][:, s, :, i_time, :, y_sl, x_sl] = plane
            count = np.zeros((*days.shape[1:3], *shape[1:]), dtype=np.int16)
            count[..., ly, lx] = days[s]
            group["member_days"][s, :, i_time, :, y_sl, x_sl] = count
    flags = np.full(shape, FLAG_FILL, dtype=np.int8)
    flags[:, ly, lx] = time_flags
    group["time_flag"][t_sl, y_sl, x_sl] = flags
    i_time, i_tile = layout.block_position(block_id)
    group[RESUME_RECORD][i_time, i_tile] = np.int8(1)


def digest(*parts) -> str:
    """SHA-256 (hex, 16 characters) of arrays, strings and JSON-able values."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str(part.dtype).encode())
            h.update(str(part.shape).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        elif isinstance(part, bytes):
            h.update(part)
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def open_product(path: str | Path, allow_incomplete: bool = False, **kwargs) -> xr.Dataset:
    """Open a product store lazily with :func:`xarray.open_zarr` (decoded: ``sm`` in m3 m-3).

    Uses the consolidated metadata the store is created with, else reads the metadata of each
    array.

    Raises
    ------
    cropsm.errors.UsageError
        When the store is unfinished (``block_done`` has unwritten blocks, e.g. a
        ``product.zarr.partial`` left by an interrupted run), unless ``allow_incomplete``.
    """
    path = Path(path)
    if not allow_incomplete:
        check_complete(path)
    if "consolidated" in kwargs:
        return xr.open_zarr(path, **kwargs)
    meta = read_json_object(path / "zarr.json", DAMAGED_METADATA_HINT) or {}
    consolidated = "consolidated_metadata" in meta
    return xr.open_zarr(path, consolidated=consolidated, **kwargs)


DAMAGED_METADATA_HINT = (
    "the store's metadata is damaged; remove the store and run `cropsm predict` again"
)
REQUIRED_VARIABLES = ("sm", "time_flag")
"""Variables every product store holds."""


def missing_variables(path: str | Path) -> list[str]:
    """Metadata files of :data:`REQUIRED_VARIABLES` that are gone or unreadable in a product
    store (zarr then silently leaves the variable out); ``[]`` for stores that are not
    products (no :data:`READABLE_FORMATS` ``product_format``)."""
    path = Path(path)
    if store_format(path) not in READABLE_FORMATS:
        return []
    return [
        f"{name}/zarr.json" for name in REQUIRED_VARIABLES if array_metadata(path, name) is None
    ]


def check_complete(path: str | Path) -> None:
    """Raise :class:`cropsm.errors.UsageError` when the store at ``path`` is unfinished, or
    finished but missing chunk files (:func:`missing_chunks`), or misses a variable's
    metadata (:func:`missing_variables`)."""
    path = Path(path)
    read_json_object(path / "zarr.json", DAMAGED_METADATA_HINT)  # damaged: named, one line
    lost = missing_variables(path)
    if lost:
        raise UsageError(
            f"{path}: damaged product: {', '.join(lost)} missing or unreadable; run `cropsm "
            "predict` again to rebuild it"
        )
    record = path / RESUME_RECORD
    if record.exists() and read_resume_record(path) is None:
        raise UsageError(
            f"{path}: unfinished product whose resume record ({RESUME_RECORD}) cannot be read; "
            "run `cropsm predict` again to rebuild it"
        )
    if not record.is_dir():
        damaged = store_damage(path)
        if damaged:
            blocks, keys = damaged
            where = f", in {blocks} time chunk(s)" if blocks else ""
            raise UsageError(
                f"{path}: damaged product: {len(keys)} chunk file(s) missing (e.g. {keys[0]})"
                f"{where}; run `cropsm predict` again to recompute them"
            )
        return
    done = read_resume_record(path)
    if not done.all():
        final = path.name.removesuffix(PARTIAL_SUFFIX)
        raise UsageError(
            f"{path}: unfinished product ({int((done == 0).sum())} of {done.size} blocks not "
            f"computed); run `cropsm predict` again to finish {final}"
        )


def store_damage(path: str | Path) -> tuple[int, list[str]] | None:
    """``(time chunks, missing chunk keys)`` of a finished store whose chunk files are not
    all there; None when it is whole (or of a format that cannot tell, or not a product);
    ``(0, metadata files)`` when a variable's metadata is gone (:func:`missing_variables`).

    The layout is read from the store itself: time blocks are its ``sm`` time chunks and,
    for the check, the whole grid is one tile (the chunks are the same whatever the compute
    tiling, only grouped otherwise).
    """
    path = Path(path)
    lost = missing_variables(path)
    if lost:
        return 0, lost
    meta = array_metadata(path, "sm")
    if meta is None or store_format(path) != PRODUCT_FORMAT:
        return None
    dims = meta.get("dimension_names") or []
    shape = dict(zip(dims, meta.get("shape") or [], strict=False))
    chunk_shape = ((meta.get("chunk_grid") or {}).get("configuration") or {}).get("chunk_shape")
    chunks = dict(zip(dims, chunk_shape or [], strict=False))
    if not all(d in shape and d in chunks for d in ("time", "lat", "lon")):
        return None
    n_time_blocks = -(-int(shape["time"]) // int(chunks["time"]))
    tiles = (((0, int(shape["lat"])), (0, int(shape["lon"]))),)
    missing = missing_chunks(path, n_time_blocks, tiles)
    lost_static = missing_static_chunks(path)
    if not missing and not lost_static:
        return None
    return len(missing), sorted(k for keys in missing.values() for k in keys) + lost_static


def missing_static_chunks(path: Path) -> list[str]:
    """Chunk files missing from the arrays written when the store is created (coordinates,
    regions, weights, flags: every array but :data:`BLOCK_VARIABLES` and the resume record)
    of a :data:`PRODUCT_FORMAT` store; they cannot be recomputed block by block."""
    path = Path(path)
    if store_format(path) != PRODUCT_FORMAT:
        return []
    static = [
        name
        for name in zarr_damage.array_folders(path)
        if name not in BLOCK_VARIABLES and name != RESUME_RECORD
    ]
    return zarr_damage.absent_chunks(path, static)


def undecodable_chunks(path: str | Path) -> list[str]:
    """Chunk files of the per-block variables that are there but cannot be decoded (a torn
    copy, a flipped bit), as ``"sm/c/0/1/2/0/0"``
    (:func:`cropsm.io.zarr_damage.undecodable_chunks`; the failure path only)."""
    return zarr_damage.undecodable_chunks(path, BLOCK_VARIABLES)


def reading_product(path: str | Path):
    """A context in which a failure while reading the product store at ``path`` names its
    undecodable chunk files (:func:`cropsm.io.zarr_damage.naming_damaged_stores`)."""
    return zarr_damage.naming_damaged_stores(path)


def chunk_files(path: str | Path, variables: Sequence[str] = ("sm", "time_flag")) -> dict:
    """``{relative path: bytes}`` of every stored chunk of ``variables`` (for comparisons)."""
    root = Path(path)
    out = {}
    for name in variables:
        for f in sorted((root / name).rglob("*")):
            if f.is_file() and f.name != "zarr.json":
                out[str(f.relative_to(root))] = f.read_bytes()
    return out
