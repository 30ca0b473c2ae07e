"""Generate the virtual China: a complete input set in the real formats, plus the known truth.

The generator streams year by year so memory stays bounded whatever the period: for each year
it draws the weather on the whole grid, writes it as ERA-style netCDF, runs the five-layer water
balance for every cropland cell under the six patterns, for natural land (the satellite's other
land cover) and for every station's own soil, and writes the truth, the satellite file and the
station observations of that year. Everything is built in ``OUT_DIR.partial`` and renamed to
``OUT_DIR`` at the end, so an interrupted run leaves no half-written input set behind.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

import cropsm
from cropsm import LAYER_MID_CM, N_LAYERS, catalog
from cropsm.provenance import write_json
from cropsm.twin import calendars, soilwater, stations, weather
from cropsm.twin.effects import effect_spatial_sd, median_annual_effect
from cropsm.twin.era import write_era_daily
from cropsm.twin.geography import build_geography
from cropsm.twin.landscape import build_static
from cropsm.twin.presets import Preset, get_preset
from cropsm.twin.satellite import satellite_surface, write_cci
from cropsm.twin.truth_store import TruthWriter
from cropsm.weights import pattern_weights

CROPLAND_THRESHOLD = 0.1
GENERATOR_VERSION = 2
"""Bumped whenever the generator's output for a given (preset, seed) changes."""

# Natural land cover (the satellite pixel's non-cropland part): a grass/shrub canopy whose crop
# coefficient follows the 30-day mean temperature between 0.3 (dormant) and 0.85 (growing).
_NATURAL_KC = (0.3, 0.85)
_NATURAL_ROOT_CM = 45.0
_DENSE_VEGETATION_REGIONS = ("S", "SW", "C", "E")


def layer_soils(static: xr.Dataset) -> dict[str, np.ndarray]:
    """Soil of the five layers (layer, lat, lon): linear in depth between the source depths."""
    out = {}
    for name in ("sand", "silt", "clay", "ph", "bulk_density"):
        da = static[name].interp(depth=list(LAYER_MID_CM))
        out[name] = np.asarray(da.values, dtype=np.float64)
    return out


def _natural_kc(air_temperature_c: np.ndarray) -> np.ndarray:
    """Natural-vegetation Kc from the trailing 30-day mean temperature (degC), (n_days, n)."""
    csum = np.cumsum(air_temperature_c, axis=0, dtype=np.float64)
    window = 30
    mean = np.empty_like(csum)
    mean[:window] = csum[:window] / np.arange(1, window + 1)[:, None]
    mean[window:] = (csum[window:] - csum[:-window]) / window
    lo, hi = _NATURAL_KC
    return (lo + (hi - lo) * np.clip((mean - 3.0) / 12.0, 0.0, 1.0)).astype(np.float32)


class _BackgroundWriter:
    """Runs file writes on one background thread so compression overlaps the water balance.

    At most ``max_pending`` writes wait at a time (bounded memory); the first error is raised
    in the main thread at the next submit or at :meth:`drain`.
    """

    def __init__(self, max_pending: int = 2):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-writer")
        self._pending: list[Future] = []
        self._max_pending = max_pending

    def submit(self, func, *args, **kwargs) -> None:
        self._pending.append(self._pool.submit(func, *args, **kwargs))
        while len(self._pending) > self._max_pending:
            self._pending.pop(0).result()

    def drain(self) -> None:
        while self._pending:
            self._pending.pop(0).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _Columns:
    """Index bookkeeping for the water-balance columns of one run.

    Columns are: every cropland cell under each pattern (pattern-major), then every land cell
    with natural vegetation, then every station. ``cell`` maps a column to its land-cell index.
    """

    def __init__(self, n_crop: int, crop_land_index, n_land: int, station_land_index):
        n_pat = len(catalog.pattern_ids())
        self.n_crop, self.n_land, self.n_station = n_crop, n_land, len(station_land_index)
        self.crop = slice(0, n_pat * n_crop)
        self.natural = slice(self.crop.stop, self.crop.stop + n_land)
        self.station = slice(self.natural.stop, self.natural.stop + self.n_station)
        self.cell = np.concatenate(
            [np.tile(crop_land_index, n_pat), np.arange(n_land), station_land_index]
        ).astype(np.intp)
        self.n = len(self.cell)


def generate_twin(
    out_dir: str | Path,
    preset: str | Preset = "tiny",
    seed: int = 0,
    overwrite: bool = False,
    progress: Callable[[str, int, int], None] | None = None,
    traits: Callable[..., dict] | None = None,
) -> dict:
    """Write the virtual China to ``out_dir`` and return its summary.

    Parameters
    ----------
    out_dir
        Target folder; must not exist (or be empty) unless ``overwrite``.
    preset
        ``"tiny"``, ``"demo"``, ``"paper"`` or a :class:`Preset`.
    seed
        Seed of every random draw; same (preset, seed) gives the same files.
    progress
        Optional callback ``progress(step, done, total)``.
    traits
        The per-cell crop traits, ``traits(lat_deg, lon_deg, seed) -> {season: SeasonTraits}``;
        default :func:`cropsm.twin.calendars.cell_traits`. ``benchmarks/trait_ceiling.py``
        replaces them to measure what not knowing them costs a model.
    """
    t_start = time.perf_counter()
    spec = preset if isinstance(preset, Preset) else get_preset(preset)
    if int(seed) < 0:
        raise ValueError(f"twin seed {seed}: expected an integer of 0 or more")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir}: exists and is not empty (use --overwrite)")
    tmp = out_dir.with_name(out_dir.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    report = progress or (lambda step, done, total: None)
    try:
        summary = _generate_into(tmp, spec, seed, report, traits or calendars.cell_traits)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    summary["seconds"] = round(time.perf_counter() - t_start, 1)
    if traits is not None:  # a benchmark's twin: say so in its summary
        summary["cell_traits"] = f"replaced by {getattr(traits, '__qualname__', repr(traits))}"
    write_json(tmp / "twin.json", summary)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return summary


def _generate_into(tmp: Path, spec: Preset, seed: int, report, traits: Callable) -> dict:
    """Write every file of the virtual China into ``tmp`` and return the summary."""
    rng = np.random.default_rng([seed, 7])

    # --- geography, static fields ------------------------------------------------------------
    report("geography and static fields", 0, 1)
    geo = build_geography(spec.grid)
    static = build_static(geo, seed)
    (tmp / "static").mkdir()
    static.to_netcdf(
        tmp / "static" / "static.nc",
        encoding={v: {"zlib": True, "complevel": 1} for v in static.data_vars},
    )
    lat, lon = geo["lat"].values, geo["lon"].values
    region = geo["region"].values
    land_y, land_x = np.nonzero(geo["land"].values)
    n_land = len(land_y)
    land_index = -np.ones(region.shape, dtype=np.intp)
    land_index[land_y, land_x] = np.arange(n_land)
    cropland = static["cropland_fraction"].values
    crop_y, crop_x = np.nonzero(cropland >= CROPLAND_THRESHOLD)
    crop_land_index = land_index[crop_y, crop_x]
    n_crop = len(crop_y)
    soil = layer_soils(static)
    weights_grid = pattern_weights(static["harvested_area"].values, region)
    crop_weights = weights_grid[:, crop_y, crop_x]  # (pattern, cell)
    report("geography and static fields", 1, 1)

    # --- stations --------------------------------------------------------------------------
    meta = stations.place_stations(
        cropland,
        region,
        geo["elevation"].values,
        lat,
        lon,
        spec.n_stations,
        spec.first_year,
        spec.last_year,
        rng,
    )
    n_station = len(meta)
    offsets = stations.station_soil_offsets(n_station, rng)
    st_y, st_x = meta["cell_y"].to_numpy(), meta["cell_x"].to_numpy()
    gaps = stations.gap_years(meta, rng)

    # --- soils and hydraulics of every column --------------------------------------------------
    cols = _Columns(n_crop, crop_land_index, n_land, land_index[st_y, st_x])
    sand = np.empty((cols.n, N_LAYERS))
    clay = np.empty((cols.n, N_LAYERS))
    bulk = np.empty((cols.n, N_LAYERS))
    grid_sand = soil["sand"][:, land_y, land_x].T  # (land, layer)
    grid_clay = soil["clay"][:, land_y, land_x].T
    grid_bd = soil["bulk_density"][:, land_y, land_x].T
    sand[:] = grid_sand[cols.cell]
    clay[:] = grid_clay[cols.cell]
    bulk[:] = grid_bd[cols.cell]
    sand[cols.station] = np.clip(sand[cols.station] + offsets["sand"], 5, 85)
    clay[cols.station] = np.clip(clay[cols.station] + offsets["clay"], 5, 60)
    bulk[cols.station] = np.clip(bulk[cols.station] + offsets["bulk_density"], 1.0, 1.75)
    organic = np.where(region[land_y, land_x] == catalog.region_code("NE"), 3.0, 1.5)
    hydraulics = soilwater.saxton_rawls(
        sand, clay, organic_matter_pct=organic[cols.cell][:, None], bulk_density_g_cm3=bulk
    )
    state = soilwater.initial_state(hydraulics, wetness=0.5)
    station_bd = bulk[cols.station]
    station_sat = hydraulics.saturation[cols.station]

    # --- crop calendars: the truth's own, per cell and year (cropsm.twin.calendars) -------------
    pattern_ids = catalog.pattern_ids()
    station_pattern = np.array([pattern_ids.index(p) for p in meta["pattern"]])
    station_land = land_index[st_y, st_x]
    land_traits = traits(lat[land_y], lon[land_x], seed)
    # calendar columns of each pattern: every cropland cell, then the stations with the pattern
    calendar_cells = [
        np.concatenate([crop_land_index, station_land[station_pattern == p]])
        for p in range(len(pattern_ids))
    ]
    calendar_traits = [calendars.take_traits(land_traits, cells) for cells in calendar_cells]
    calendar_states: list = [None] * len(pattern_ids)
    calendar_records: dict[str, dict[str, list]] = {}

    truth_dates = pd.date_range(f"{spec.first_year}-01-01", f"{spec.last_year}-12-31", freq="D")
    writer = TruthWriter(
        tmp / "truth.zarr",
        truth_dates,
        lat[crop_y],
        lon[crop_x],
        meta["station_id"].tolist(),
        crop_weights,
    )
    (tmp / "climate").mkdir()
    (tmp / "satellite").mkdir()
    region_codes = region[land_y, land_x]
    dense_cells = np.isin(region_codes, [catalog.region_code(r) for r in _DENSE_VEGETATION_REGIONS])
    crop_fraction_land = cropland[land_y, land_x]
    crop_land_mask = np.zeros(n_land, dtype=bool)
    crop_land_mask[crop_land_index] = True

    annual_precip = {r.id: [] for r in catalog.regions()}
    layer_sum = np.zeros(N_LAYERS)
    layer_count = 0
    pattern_annual, reference_annual = [], []  # (pattern, layer, cell) / (layer, cell) per year
    obs_frames = []
    years = list(range(spec.climate_first_year, spec.last_year + 1))
    spinup_passes = 2  # the spin-up year runs twice so the soil store starts near equilibrium
    truth_start = 0
    background = _BackgroundWriter()
    try:
        for k, year in enumerate(years):
            report("weather, water balance and truth", k, len(years))
            # let the previous year's arrays go before this year's are made; otherwise two
            # years are held at once (4.3 GB peak on the paper preset)
            # (views count: natural_top and crop_top would keep the year's sm and reference)
            climate = cells = forcing = kc = root = result = None
            sm = pattern_sm = reference = station_sm = grid_sm = grid_flag = mixed = None
            natural_top = crop_top = natural_at_crop = frozen_nat = dense = None
            sat_sm = sat_flag = scheduled = None
            climate = weather.generate_weather_year(geo["elevation"], geo["region"], year, seed)
            background.submit(write_era_daily, climate, tmp / "climate" / f"era5_daily_{year}.nc")
            dates = pd.DatetimeIndex(climate["time"].values)
            cells = climate.isel(
                lat=xr.DataArray(land_y, dims="cell"), lon=xr.DataArray(land_x, dims="cell")
            )
            precip = np.asarray(cells["precipitation"].values, dtype=np.float32)
            tair = np.asarray(cells["air_temperature"].values, dtype=np.float32)
            pet = np.asarray(
                weather.potential_et_mm(
                    cells,
                    geo["elevation"].isel(
                        lat=xr.DataArray(land_y, dims="cell"), lon=xr.DataArray(land_x, dims="cell")
                    ),
                )
                .transpose("time", "cell")
                .values,
                dtype=np.float32,
            )
            doy = dates.dayofyear.to_numpy()
            kc = np.empty((len(dates), cols.n), dtype=np.float32)
            root = np.empty_like(kc)
            dewpoint = np.asarray(cells["dewpoint_temperature"].values, dtype=np.float32)
            wind = np.asarray(cells["wind_speed"].values, dtype=np.float32)
            cells = None  # the land cells' other weather variables are not needed any more
            for p, pid in enumerate(pattern_ids):
                cells_p = calendar_cells[p]
                weather_p = (tair[:, cells_p], precip[:, cells_p])
                offsets_p = calendars.kc_mid_offsets(
                    pid, doy, tair[:, cells_p], dewpoint[:, cells_p], wind[:, cells_p]
                )
                if calendar_states[p] is None:  # cyclic spin-up: the first year once, to start
                    calendar_states[p] = calendars.pattern_calendar_year(
                        pid, doy, *weather_p, calendar_traits[p], kc_mid_offset=offsets_p
                    ).state
                year_p = calendars.pattern_calendar_year(
                    pid,
                    doy,
                    *weather_p,
                    calendar_traits[p],
                    calendar_states[p],
                    kc_mid_offset=offsets_p,
                )
                calendar_states[p] = year_p.state
                block = slice(p * n_crop, (p + 1) * n_crop)
                kc[:, block] = year_p.kc[:, :n_crop]
                root[:, block] = year_p.root_depth_cm[:, :n_crop]
                members = np.nonzero(station_pattern == p)[0] + cols.station.start
                kc[:, members] = year_p.kc[:, n_crop:]
                root[:, members] = year_p.root_depth_cm[:, n_crop:]
                if year >= spec.first_year:
                    records = calendar_records.setdefault(pid, {})
                    for season, values in year_p.sowing_doy.items():
                        records.setdefault(f"{season}/sowing_doy", []).append(values[:n_crop])
                    for season, values in year_p.season_days.items():
                        records.setdefault(f"{season}/season_days", []).append(values[:n_crop])
            kc[:, cols.natural] = _natural_kc(tair)
            root[:, cols.natural] = _NATURAL_ROOT_CM

            forcing = (precip, tair, pet, kc, root)  # weather per land cell, taken per column
            passes = spinup_passes if year < spec.first_year else 1
            for _ in range(passes):
                result = None  # the spin-up's first pass is not kept while the second runs
                result = soilwater.run_water_balance(
                    *forcing, hydraulics, state, weather_columns=cols.cell
                )
                state = result.state
            if year < spec.first_year:
                continue

            n_days = len(dates)
            sm = result.sm  # (day, layer, column)
            pattern_sm = sm[:, :, cols.crop].reshape(n_days, N_LAYERS, len(pattern_ids), n_crop)
            pattern_sm = pattern_sm.transpose(2, 1, 0, 3)  # (pattern, layer, day, cell)
            reference = np.einsum("pc,pltc->ltc", crop_weights, pattern_sm)
            station_sm = sm[:, :, cols.station]  # (day, layer, station)
            background.submit(
                writer.write, truth_start, pattern_sm, reference, station_sm.transpose(1, 0, 2)
            )
            truth_start += n_days

            # satellite: whole-cell mixture of cropland reference and natural land
            natural_top = sm[:, 0, cols.natural]
            mixed = natural_top.copy()
            crop_top = reference[0]  # (day, cell)
            frac = crop_fraction_land[crop_land_index]
            natural_at_crop = natural_top[:, crop_land_index]
            mixed[:, crop_land_index] = frac * crop_top + (1 - frac) * natural_at_crop
            frozen_nat = result.frozen[:, cols.natural] | (tair < 0.0)
            dense = dense_cells[None, :] & np.isin(dates.month, [6, 7, 8])[:, None]
            dense &= rng.random(dense.shape) < 0.6
            sat_sm, sat_flag = satellite_surface(
                mixed, frozen_nat, dense, dates, rng, hydraulics.saturation[cols.natural, 0]
            )
            grid_sm = np.full((n_days, len(lat), len(lon)), np.nan, dtype=np.float32)
            grid_flag = np.zeros((n_days, len(lat), len(lon)), dtype=np.int8)
            grid_sm[:, land_y, land_x] = sat_sm
            grid_flag[:, land_y, land_x] = sat_flag
            background.submit(
                write_cci,
                grid_sm,
                grid_flag,
                dates,
                lat,
                lon,
                tmp / "satellite" / f"ESACCI-SOILMOISTURE-L3S-SSMV-COMBINED-{year}-fv04.7.nc",
            )

            # stations
            scheduled = stations.observation_mask(dates, meta, gaps)
            obs_frames.append(
                stations.sample_observations(
                    station_sm,
                    result.frozen[:, cols.station],
                    dates,
                    meta,
                    offsets["sm"],
                    station_sat,
                    scheduled,
                    rng,
                )
            )

            # summary statistics
            annual = precip.sum(axis=0)
            for r in catalog.regions():
                in_region = region_codes == r.code
                if in_region.any():
                    annual_precip[r.id].append(float(annual[in_region].mean()))
            layer_sum += reference.sum(axis=(1, 2))
            layer_count += reference.shape[1] * reference.shape[2]
            pattern_annual.append(pattern_sm.mean(axis=2, dtype=np.float64).astype(np.float32))
            reference_annual.append(reference.mean(axis=1).astype(np.float32))
        background.drain()
    finally:
        background.close()
    report("weather, water balance and truth", len(years), len(years))

    writer.finish()
    report("stations", 0, 1)
    obs = pd.concat(obs_frames, ignore_index=True)
    meta_out = meta.drop(columns=["cell_y", "cell_x"]).copy()
    for layer in range(N_LAYERS):
        meta_out[f"bd_layer{layer + 1}"] = np.round(station_bd[:, layer], 3)
    gravimetric = meta_out.set_index("station_id")["sm_type"].eq("gravimetric")
    bd_lookup = meta_out.set_index("station_id")[[f"bd_layer{k}" for k in range(1, 6)]]
    is_grav = gravimetric.reindex(obs["station_id"]).to_numpy()
    bd_obs = bd_lookup.to_numpy()[
        bd_lookup.index.get_indexer(obs["station_id"]), obs["layer"].to_numpy() - 1
    ]
    obs["sm"] = np.where(is_grav, obs["sm"] / bd_obs, obs["sm"]).round(4)
    obs = obs.sort_values(["station_id", "date", "layer"], kind="stable")
    obs["date"] = pd.to_datetime(obs["date"]).dt.strftime("%Y-%m-%d")
    (tmp / "stations").mkdir()
    meta_out.to_csv(tmp / "stations" / "stations.csv", index=False)
    obs.to_csv(tmp / "stations" / "observations.csv", index=False)
    report("stations", 1, 1)

    summary = {
        "preset": spec.name,
        "seed": seed,
        "generator_version": GENERATOR_VERSION,
        "cropsm_version": cropsm.__version__,
        "grid": {
            "lat": [float(lat[0]), float(lat[-1])],
            "lon": [float(lon[0]), float(lon[-1])],
            "resolution_deg": spec.grid.resolution_deg,
            "n_lat": len(lat),
            "n_lon": len(lon),
        },
        "period": {
            "climate": [f"{spec.climate_first_year}-01-01", f"{spec.last_year}-12-31"],
            "truth": [f"{spec.first_year}-01-01", f"{spec.last_year}-12-31"],
        },
        "cells": int(len(lat) * len(lon)),
        "china_cells": int(n_land),
        "cropland_cells": int(n_crop),
        "stations": int(n_station),
        "gravimetric_stations": int(gravimetric.sum()),
        "observations": int(len(obs)),
        "station_dates": int(obs[["station_id", "date"]].drop_duplicates().shape[0]),
        "annual_precipitation_mm": {
            r: round(float(np.mean(v)), 1) for r, v in annual_precip.items() if v
        },
        "mean_reference_sm_by_layer": {
            f"layer{k + 1}": round(float(layer_sum[k] / max(layer_count, 1)), 4)
            for k in range(N_LAYERS)
        },
        "true_effect_spatial_sd_m3_m-3": _effect_summary(pattern_annual, reference_annual),
        "true_calendars": _calendar_summary(calendar_records),
        "stations_by_pattern": meta["pattern"].value_counts().sort_index().to_dict(),
        "stations_by_region": meta["region"].value_counts().sort_index().to_dict(),
        "files": sorted(
            str(p.relative_to(tmp))
            for p in tmp.rglob("*")
            if p.is_file() and ".zarr" not in str(p.relative_to(tmp))
        )
        + ["truth.zarr"],
    }
    return summary


def _effect_summary(pattern_annual: list, reference_annual: list) -> dict:
    """Spatial SD over cropland cells of the true median-annual effect (pattern - reference)."""
    if not pattern_annual:
        return {}
    effect = median_annual_effect(np.stack(pattern_annual, axis=2), np.stack(reference_annual, 1))
    sd = effect_spatial_sd(effect)
    return {
        pid: {f"layer{k + 1}": round(float(sd[p, k]), 5) for k in range(N_LAYERS)}
        for p, pid in enumerate(catalog.pattern_ids())
    }


def _calendar_summary(records: dict) -> dict:
    """Per pattern and season: nominal sowing day and length beside the truth's (cropland cells).

    ``sd_cells``: SD over cells of each cell's mean over the years; ``sd_years``: SD over the
    years of the cell mean; ``share_sown``: share of (cell, year) with a sowing.
    """
    seasons = catalog.seasons()
    out: dict = {}
    for pid, by_key in records.items():
        for key, values in by_key.items():
            season, what = key.split("/")
            v = np.stack(values)  # (year, cell)
            entry = out.setdefault(pid, {}).setdefault(season, {})
            nominal = seasons[season]
            entry[f"{what}_nominal"] = (
                nominal.sow_doy if what == "sowing_doy" else int(sum(nominal.stage_days))
            )
            if not np.isfinite(v).any():
                continue
            with np.errstate(all="ignore"):
                per_cell = np.nanmean(v, axis=0)
                per_year = np.nanmean(v, axis=1)
            entry[f"{what}_mean"] = round(float(np.nanmean(v)), 1)
            entry[f"{what}_sd_cells"] = round(float(np.nanstd(per_cell)), 1)
            entry[f"{what}_sd_years"] = round(float(np.nanstd(per_year)), 1)
            if what == "sowing_doy":
                entry["share_sown"] = round(float(np.isfinite(v).mean()), 3)
    return out


def read_twin_summary(out_dir: str | Path) -> dict | None:
    """The summary of a finished virtual China, or None when ``out_dir`` holds none."""
    import json

    path = Path(out_dir) / "twin.json"
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
