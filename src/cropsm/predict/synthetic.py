"""Paper-size synthetic inputs for benchmarking the product (no virtual China needed).

The paper's grid (all China at 0.25 deg, 144 x 248 cells) with a cropland mask of a chosen
number of cells, a lazy daily climate generated chunk by chunk (deterministic: each chunk is
seeded by its position, so any worker regenerates identical values), static fields, a few
stations for the flags, and layer networks with the architectures of the paper's Table 2
(random weights, plausible input scaling). Only the *cost* of the product is realistic here,
not its values.
"""

from __future__ import annotations

import zlib

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from cropsm import N_LAYERS, catalog
from cropsm.features.groups import layer_feature_names
from cropsm.io.stations import StationData
from cropsm.train.artifacts import PAPER_TABLE2
from cropsm.train.chain import LayerModel
from cropsm.train.numpy_net import Scaler

PAPER_LAT = np.arange(18.125, 53.875 + 1e-9, 0.25)
PAPER_LON = np.arange(73.125, 134.875 + 1e-9, 0.25)

_FEATURE_SCALE = {
    "precip": (3.0, 8.0),
    "precip_1m": (90.0, 80.0),
    "precip_2m": (180.0, 150.0),
    "precip_3m": (270.0, 210.0),
    "precip_4m": (360.0, 260.0),
    "precip_5m": (450.0, 300.0),
    "precip_12m": (900.0, 450.0),
    "precip_3d": (9.0, 16.0),
    "precip_7d": (21.0, 28.0),
    "ssr": (14.0, 6.0),
    "tair": (12.0, 11.0),
    "vpd": (0.8, 0.6),
    "wind": (2.5, 1.2),
    "cloud": (0.55, 0.3),
    "elevation": (600.0, 700.0),
    "doy": (183.0, 105.0),
    "sm_pred_upper": (0.25, 0.08),
    "ph": (6.8, 1.0),
    "sand": (35.0, 15.0),
    "silt": (40.0, 12.0),
    "clay": (25.0, 10.0),
    "bd": (1.35, 0.12),
    "doy_sin": (0.0, 0.7),
    "doy_cos": (0.0, 0.7),
    "cal_kc": (0.7, 0.4),
    "cal_root_cm": (50.0, 30.0),
    "cal_crop_on": (0.7, 0.45),
    "wb_top": (0.6, 0.25),
    "wb_sub": (0.6, 0.25),
    "wb_top_bare": (0.6, 0.25),
    "wb_sub_bare": (0.6, 0.25),
    "clim_precip_mm_yr": (800.0, 400.0),
    "clim_aridity": (1.0, 0.5),
}


def _scale_of(name: str) -> tuple[float, float]:
    if name.startswith("pattern_"):
        return (1.0 / 6.0, 0.37)
    base = name.rsplit("_l", 1)[0] if name[-3:-1] == "_l" else name
    return _FEATURE_SCALE.get(base, (0.0, 1.0))


def table2_models(
    seed: int = 0,
    architectures: dict | None = None,
    feature_set: str = "paper",
    output: str = "linear",
) -> list[LayerModel]:
    """Five chained layer networks with the paper's Table 2 shapes and random weights.

    Parameters
    ----------
    seed
        Seed of the weights.
    architectures
        ``{layer: (hidden_layers, units)}``; default the paper's Table 2
        (3x32, 2x16, 3x16, 3x16, 2x16).
    feature_set
        Inputs of :func:`cropsm.features.groups.layer_feature_names` (``paper`` or ``crop``).
    output
        ``linear`` or ``bounded`` (:class:`cropsm.train.chain.LayerModel`).
    """
    rng = np.random.default_rng(seed)
    if architectures is None:
        table = PAPER_TABLE2.set_index("layer")
        architectures = {
            k: (int(table.loc[k, "hidden_layers"]), int(table.loc[k, "units"]))
            for k in range(1, N_LAYERS + 1)
        }
    models = []
    for k in range(1, N_LAYERS + 1):
        names = layer_feature_names(k, feature_set=feature_set)
        hidden, units = architectures[k]
        sizes = [len(names)] + [units] * hidden + [1]
        weights = [
            (rng.standard_normal((a, b)) / np.sqrt(a), 0.1 * rng.standard_normal(b))
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ]
        scale = np.array([_scale_of(n) for n in names])
        models.append(
            LayerModel(
                layer=k,
                feature_names=tuple(names),
                scaler=Scaler(mean=scale[:, 0], std=scale[:, 1]),
                target_mean=0.25,
                target_std=0.08,
                weights=weights,
                hyperparameters={"hidden_layers": hidden, "units": units},
                output=output,
            )
        )
    return models


def cropland_mask(n_cells: int, seed: int = 0) -> np.ndarray:
    """``(144, 248)`` bool mask with exactly ``n_cells`` cropland cells in smooth patches."""
    rng = np.random.default_rng(seed)
    n_lat, n_lon = PAPER_LAT.size, PAPER_LON.size
    if not 0 < n_cells <= n_lat * n_lon:
        raise ValueError(f"n_cells must be 1...{n_lat * n_lon}")
    y, x = np.meshgrid(np.arange(n_lat), np.arange(n_lon), indexing="ij")
    field = np.zeros((n_lat, n_lon))
    for _ in range(40):
        cy, cx = rng.uniform(0, n_lat), rng.uniform(0, n_lon)
        r = rng.uniform(6, 25)
        field += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r * r))
    field += 1e-9 * rng.standard_normal(field.shape)
    threshold = np.sort(field.ravel())[-n_cells]
    return field >= threshold


def _climate_chunk(block_info=None, *, variable: str, seed: int, start_ordinal: int):
    info = block_info[None]
    (t0, t1), (y0, y1), (x0, x1) = info["array-location"]
    rng = np.random.default_rng([seed, t0, y0, x0, zlib.crc32(variable.encode())])
    shape = (t1 - t0, y1 - y0, x1 - x0)
    doy = ((start_ordinal + np.arange(t0, t1)) % 365.25)[:, None, None]
    season = np.cos(2 * np.pi * (doy - 200) / 365.25)
    lat = PAPER_LAT[y0:y1][None, :, None]
    noise = rng.standard_normal(shape, dtype=np.float32)
    if variable == "precipitation":
        wet = rng.random(shape, dtype=np.float32) < 0.35
        values = np.where(wet, np.exp(1.0 + 0.8 * noise) * (1.0 + 0.5 * season), 0.0)
    elif variable == "air_temperature":
        values = 28.0 - 0.6 * (lat - 18.0) + 12.0 * season + 3.0 * noise
    elif variable == "dewpoint_temperature":
        values = 20.0 - 0.6 * (lat - 18.0) + 12.0 * season + 3.0 * noise - 4.0
    elif variable == "net_solar_radiation":
        values = np.clip(14.0 + 6.0 * season + 3.0 * noise, 0.0, None)
    elif variable == "wind_speed":
        values = np.abs(2.5 + 1.2 * noise)
    else:  # cloud_cover
        values = np.clip(0.55 + 0.25 * noise, 0.0, 1.0)
    return np.asarray(values, dtype=np.float32)


def synthetic_climate(
    start: str, end: str, seed: int = 0, time_chunk_days: int = 366
) -> xr.Dataset:
    """Lazy canonical climate on the paper grid, generated chunk by chunk (dask)."""
    dates = pd.date_range(start, end, freq="D")
    shape = (len(dates), PAPER_LAT.size, PAPER_LON.size)
    chunks = (time_chunk_days, PAPER_LAT.size, PAPER_LON.size)
    units = {
        "precipitation": "mm d-1",
        "air_temperature": "degC",
        "dewpoint_temperature": "degC",
        "net_solar_radiation": "MJ m-2 d-1",
        "wind_speed": "m s-1",
        "cloud_cover": "1",
    }
    data = {}
    for name, unit in units.items():
        array = da.map_blocks(
            _climate_chunk,
            chunks=da.core.normalize_chunks(chunks, shape),
            dtype=np.float32,
            variable=name,
            seed=seed,
            start_ordinal=int(dates[0].dayofyear),
            meta=np.empty((0, 0, 0), dtype=np.float32),
        )
        data[name] = (("time", "lat", "lon"), array, {"units": unit, "long_name": name})
    return xr.Dataset(
        data,
        coords={"time": dates.values, "lat": PAPER_LAT, "lon": PAPER_LON},
        attrs={"source_files": f"synthetic seed {seed}"},
    )


def synthetic_static(n_cells: int, seed: int = 0) -> xr.Dataset:
    """Canonical static fields on the paper grid with ``n_cells`` cropland cells."""
    rng = np.random.default_rng(seed + 1)
    shape = (PAPER_LAT.size, PAPER_LON.size)
    mask = cropland_mask(n_cells, seed)
    fraction = np.where(mask, rng.uniform(0.1, 0.9, shape), rng.uniform(0.0, 0.09, shape))
    lat2 = np.broadcast_to(PAPER_LAT[:, None], shape)
    lon2 = np.broadcast_to(PAPER_LON[None, :], shape)
    region = np.where(
        lat2 >= 40.0,
        np.where(lon2 >= 115.0, 1, 7),
        np.where(lat2 >= 32.0, np.where(lon2 >= 110.0, 3, 2), np.where(lon2 >= 110.0, 4, 8)),
    ).astype(np.int16)
    crops = catalog.crops()
    layers = np.arange(1, N_LAYERS + 1)

    def soil(mean, sd):
        return (("layer", "lat", "lon"), mean + sd * rng.standard_normal((N_LAYERS, *shape)))

    return xr.Dataset(
        {
            "elevation": (("lat", "lon"), rng.uniform(0, 3000, shape)),
            "ph": soil(6.8, 0.8),
            "sand": soil(35.0, 8.0),
            "silt": soil(40.0, 8.0),
            "clay": soil(25.0, 6.0),
            "bulk_density": soil(1.35, 0.08),
            "cropland_fraction": (("lat", "lon"), fraction),
            "harvested_area": (
                ("crop", "lat", "lon"),
                rng.uniform(0, 5000, (len(crops), *shape)),
            ),
            "region": (("lat", "lon"), region),
        },
        coords={"lat": PAPER_LAT, "lon": PAPER_LON, "layer": layers, "crop": list(crops)},
    )


def synthetic_stations(first_year: int, last_year: int, seed: int = 0):
    """Two stations per region with two of its patterns, observed in the growing season."""

    rng = np.random.default_rng(seed + 2)
    table3 = catalog.table3()
    metas, obs = [], []
    for region in catalog.regions():
        for j, pattern in enumerate(table3[region.id].patterns[:2]):
            sid = f"{region.id}_{j}"
            metas.append(
                {
                    "station_id": sid,
                    "lat": 30.0,
                    "lon": 110.0,
                    "elevation": 100.0,
                    "region": region.id,
                    "pattern": pattern,
                    "first_year": first_year,
                    "last_year": last_year,
                }
            )
            dates = pd.date_range(f"{first_year}-04-08", f"{last_year}-10-28", freq="10D")
            obs.append(
                pd.DataFrame(
                    {
                        "station_id": sid,
                        "date": dates,
                        "layer": 1,
                        "sm": rng.uniform(0.1, 0.4, len(dates)),
                    }
                )  # fmt: skip
            )
    meta = pd.DataFrame(metas).set_index("station_id")
    return StationData(meta=meta, obs=pd.concat(obs, ignore_index=True))
