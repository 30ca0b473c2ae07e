"""Static fields of the virtual China: soils, cropland fraction and harvested crop areas.

The fields are synthetic but follow China's broad contrasts (Shangguan et al. 2013 for soils,
Ramankutty et al. 2008 for cropland, MIRCA2000 / Portmann et al. 2010 for crop areas):

* soils: alkaline silty loess in the north-west and the Huang-Huai-Hai plain, clay-rich mollisols
  in the north-east, acidic clay-rich red soils in the south, purple soils in the Sichuan basin.
  Regional means are blended across region borders with a Gaussian kernel and perturbed by
  spatially coherent random fields; clay and bulk density increase with depth. Soils are written
  on SoilGrids-like source depths (0-5, 5-15, 15-30, 30-60, 60-100 cm), which the reader
  interpolates to the five 10-cm layers, exactly as for a user's soil database.
* cropland fraction: a suitability score built from the great agricultural plains (Gaussian
  hotspots), penalised by elevation and slope, plus a coherent random field, mapped through a
  logistic curve whose offset is calibrated so that about 52 % of China's cells reach the paper's
  0.1 threshold (about 8,000 cells at 0.25 degree).
* harvested areas (ha) of the six crops: cell area x cropland fraction x cropping intensity x
  regional crop shares consistent with the paper's Table 3, with coherent random perturbations.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import ndimage

from cropsm import catalog

SOURCE_DEPTH_BOUNDS_CM = ((0.0, 5.0), (5.0, 15.0), (15.0, 30.0), (30.0, 60.0), (60.0, 100.0))
SOURCE_DEPTH_MID_CM = tuple((a + b) / 2 for a, b in SOURCE_DEPTH_BOUNDS_CM)

# Regional topsoil means: sand %, clay %, pH, bulk density g cm-3 (silt = 100 - sand - clay).
_REGION_SOIL = {
    "NE": (24.0, 30.0, 6.4, 1.22),
    "N": (42.0, 18.0, 7.9, 1.40),
    "HHH": (30.0, 20.0, 7.9, 1.42),
    "E": (26.0, 32.0, 6.0, 1.33),
    "C": (20.0, 38.0, 5.6, 1.30),
    "S": (30.0, 42.0, 5.0, 1.30),
    "NW": (36.0, 14.0, 8.3, 1.38),
    "SW": (28.0, 32.0, 6.2, 1.34),
}
# Depth trends per source depth (added to topsoil): clay %, bulk density g cm-3, pH.
_DEPTH_CLAY = np.array([0.0, 1.0, 3.0, 5.0, 6.0])
_DEPTH_BD = np.array([0.0, 0.04, 0.08, 0.12, 0.15])
_DEPTH_PH = np.array([0.0, 0.05, 0.12, 0.2, 0.25])

# Agricultural plains: (lon, lat, radius deg, strength).
_PLAINS = (
    (125.5, 46.0, 3.0, 3.0),  # Songnen plain
    (132.0, 46.8, 1.6, 2.5),  # Sanjiang plain
    (122.8, 42.3, 2.0, 2.5),  # Liao river plain
    (116.0, 36.0, 3.3, 3.5),  # Huang-Huai-Hai plain
    (118.0, 33.3, 1.8, 2.5),  # Huai river plain
    (105.0, 30.3, 2.0, 3.0),  # Sichuan basin
    (112.8, 30.2, 1.8, 2.5),  # Jianghan / Dongting plains
    (116.3, 29.5, 1.6, 2.0),  # Poyang plain
    (120.0, 31.8, 1.4, 2.5),  # Yangtze delta
    (108.5, 34.4, 1.3, 2.5),  # Guanzhong plain
    (108.0, 40.7, 1.3, 2.0),  # Hetao plain
    (107.5, 36.5, 2.8, 1.3),  # Loess plateau
    (104.5, 25.8, 2.5, 1.2),  # Yunnan-Guizhou plateau farmland
    (110.0, 23.2, 3.0, 1.4),  # Guangxi / Guangdong
    (100.5, 38.8, 1.2, 1.2),  # Hexi corridor
    (87.0, 44.2, 1.2, 1.6),  # northern Xinjiang oases
    (81.0, 41.0, 1.6, 1.2),  # southern Xinjiang oases
)
_CROPLAND_SHARE_ABOVE_THRESHOLD = 0.52

# Crop shares of harvested area per region, over (maize, wheat, soybean, rapeseed, potato,
# cotton) (catalog order), and cropping intensity (harvested / physical area).
_REGION_CROP_SHARES = {
    "NE": ((0.56, 0.03, 0.34, 0.00, 0.07, 0.00), 1.0),
    "N": ((0.52, 0.10, 0.15, 0.02, 0.18, 0.03), 1.0),
    "HHH": ((0.42, 0.45, 0.05, 0.01, 0.02, 0.05), 1.6),
    "E": ((0.22, 0.40, 0.08, 0.18, 0.02, 0.10), 1.5),
    "C": ((0.25, 0.20, 0.05, 0.35, 0.05, 0.10), 1.6),
    "S": ((0.35, 0.02, 0.05, 0.20, 0.35, 0.03), 1.8),
    "NW": ((0.20, 0.45, 0.02, 0.05, 0.20, 0.08), 1.05),
    "SW": ((0.35, 0.20, 0.05, 0.25, 0.15, 0.00), 1.4),
}


def coherent_noise(shape: tuple[int, int], sigma_cells: float, rng: np.random.Generator):
    """Spatially coherent Gaussian noise with unit standard deviation.

    White noise smoothed by a Gaussian kernel of ``sigma_cells`` grid cells, rescaled to unit
    variance: a cheap stationary random field whose correlation length is about the kernel width.
    """
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_cells, mode="reflect")
    return field / max(float(field.std()), 1e-12)


def _blend_by_region(region: np.ndarray, values: dict[str, float], sigma_cells: float):
    """Region-wise values smoothed across region borders (normalised Gaussian convolution)."""
    field = np.zeros(region.shape)
    for r in catalog.regions():
        field[region == r.code] = values[r.id]
    inside = (region > 0).astype(float)
    num = ndimage.gaussian_filter(field * inside, sigma_cells, mode="nearest")
    den = ndimage.gaussian_filter(inside, sigma_cells, mode="nearest")
    blended = np.where(den > 1e-6, num / np.maximum(den, 1e-6), np.nan)
    # Outside China (far from any region) fall back to the national mean.
    fallback = float(np.mean(list(values.values())))
    return np.where(np.isfinite(blended), blended, fallback)


def _cell_area_ha(lat: np.ndarray, resolution_deg: float) -> np.ndarray:
    """Area of a lat/lon cell (ha): (res * 111.32 km)^2 * cos(lat) * 100 ha km-2."""
    return (resolution_deg * 111.32) ** 2 * np.cos(np.deg2rad(lat)) * 100.0


def soils(geo: xr.Dataset, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Sand, silt, clay (%), pH and bulk density (g cm-3) on the source depths.

    Returns arrays of shape (depth, lat, lon), depth = ``SOURCE_DEPTH_MID_CM``.
    """
    res = float(geo.lat[1] - geo.lat[0])
    sigma = 1.5 / res
    region = geo["region"].values
    elev_km = geo["elevation"].values / 1000.0
    base = {
        name: _blend_by_region(region, {k: v[i] for k, v in _REGION_SOIL.items()}, sigma)
        for i, name in enumerate(("sand", "clay", "ph", "bd"))
    }
    shape = region.shape
    sand_top = (
        base["sand"]
        + 6.0 * coherent_noise(shape, 0.8 / res, rng)
        + 4.0 * np.clip(elev_km - 1.0, 0, 3)
    )
    clay_top = base["clay"] + 5.0 * coherent_noise(shape, 0.8 / res, rng)
    ph_top = base["ph"] + 0.35 * coherent_noise(shape, 1.0 / res, rng)
    bd_top = base["bd"] + 0.05 * coherent_noise(shape, 1.0 / res, rng)
    depth_noise = coherent_noise(shape, 1.0 / res, rng)

    n_depth = len(SOURCE_DEPTH_MID_CM)
    sand = np.empty((n_depth, *shape))
    clay = np.empty_like(sand)
    ph = np.empty_like(sand)
    bd = np.empty_like(sand)
    for d in range(n_depth):
        clay[d] = clay_top + _DEPTH_CLAY[d] * (1.0 + 0.3 * depth_noise)
        sand[d] = sand_top - 0.6 * _DEPTH_CLAY[d]
        # Alkaline soils grow more alkaline with depth (carbonates), acidic ones barely change.
        ph[d] = ph_top + _DEPTH_PH[d] * np.clip(ph_top - 6.0, 0.0, 3.0)
        bd[d] = bd_top + _DEPTH_BD[d]
    clay = np.clip(clay, 5.0, 60.0)
    sand = np.clip(sand, 5.0, 85.0)
    over = np.maximum(sand + clay - 95.0, 0.0)
    sand -= over
    silt = 100.0 - sand - clay
    return {
        "sand": sand.astype(np.float32),
        "silt": silt.astype(np.float32),
        "clay": clay.astype(np.float32),
        "ph": np.clip(ph, 4.0, 9.0).astype(np.float32),
        "bulk_density": np.clip(bd, 1.0, 1.75).astype(np.float32),
    }


def cropland_fraction(geo: xr.Dataset, rng: np.random.Generator) -> np.ndarray:
    """Cropland area fraction (0-1) of every cell; 0 outside China.

    score = sum_k s_k exp(-d_k^2 / (2 r_k^2)) - 1.2 (elev_km - 1.5)_+ - 4 slope
            + 0.7 noise + regional offset
    fraction = 0.85 / (1 + exp(-(score - c))), with c chosen so that
    ``_CROPLAND_SHARE_ABOVE_THRESHOLD`` of China's cells have fraction >= 0.1.
    """
    lat = geo["lat"].values
    lon = geo["lon"].values
    res = float(lat[1] - lat[0])
    lon2d, lat2d = np.meshgrid(lon, lat)
    elev_km = geo["elevation"].values / 1000.0
    land = geo["land"].values
    score = np.zeros(lon2d.shape)
    for plon, plat, radius, strength in _PLAINS:
        d2 = (lon2d - plon) ** 2 + (lat2d - plat) ** 2
        score += strength * np.exp(-d2 / (2 * radius**2))
    gy, gx = np.gradient(elev_km * 1000.0, res * 111_000.0)
    slope = np.hypot(gx, gy)  # m m-1
    score -= 1.2 * np.clip(elev_km - 1.5, 0.0, None) + 40.0 * slope
    score += 0.7 * coherent_noise(lon2d.shape, 0.6 / res, rng)
    if not land.any():
        return np.zeros(lon2d.shape, dtype=np.float32)
    # Calibrate: the share of China's cells above the 0.1 threshold.
    land_scores = np.sort(score[land])
    q = land_scores[int((1.0 - _CROPLAND_SHARE_ABOVE_THRESHOLD) * (len(land_scores) - 1))]
    # fraction(q) = 0.1  ->  0.85 / (1 + exp(-(q - c))) = 0.1  ->  c = q + log(0.85/0.1 - 1)
    c = q + np.log(0.85 / 0.1 - 1.0)
    fraction = 0.85 / (1.0 + np.exp(-(score - c)))
    fraction = np.where(land, fraction, 0.0)
    return fraction.astype(np.float32)


def harvested_area(geo: xr.Dataset, cropland: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Harvested area (ha) of each crop, shape (crop, lat, lon), crops in catalog order.

    area_c = cell_area * cropland_fraction * intensity_region * share_region,c * exp(0.25 z_c)
    with z_c a coherent random field per crop (local deviations from the regional mix).
    """
    lat = geo["lat"].values
    res = float(lat[1] - lat[0])
    region = geo["region"].values
    crops = catalog.crops()
    cell_ha = _cell_area_ha(lat, res)[:, None] * np.ones_like(cropland)
    out = np.zeros((len(crops), *cropland.shape), dtype=np.float32)
    sigma = 1.0 / res
    for i, _crop in enumerate(crops):
        shares = {k: v[0][i] for k, v in _REGION_CROP_SHARES.items()}
        intensity = {k: v[1] for k, v in _REGION_CROP_SHARES.items()}
        share_field = np.zeros(cropland.shape)
        intensity_field = np.zeros(cropland.shape)
        for r in catalog.regions():
            share_field[region == r.code] = shares[r.id]
            intensity_field[region == r.code] = intensity[r.id]
        share_field = ndimage.gaussian_filter(share_field, 0.5 * sigma, mode="nearest")
        perturb = np.exp(0.25 * coherent_noise(cropland.shape, sigma, rng))
        out[i] = cell_ha * cropland * intensity_field * share_field * perturb
    out[:, region == 0] = 0.0
    return out


def build_static(geo: xr.Dataset, seed: int) -> xr.Dataset:
    """The static input file of the virtual China, in the layout a user's file would have.

    Variables: ``elevation`` (m), ``ph``, ``sand``, ``silt``, ``clay`` (%), ``bulk_density``
    (g cm-3) on the ``depth`` source depths, ``cropland_fraction`` (1), ``harvested_area``
    (crop, ha) and ``region`` (codes with ``flag_values``/``flag_meanings``).
    """
    rng = np.random.default_rng([seed, 101])
    soil = soils(geo, rng)
    cropland = cropland_fraction(geo, rng)
    areas = harvested_area(geo, cropland, rng)
    dims3 = ("depth", "lat", "lon")
    attrs = {
        "ph": {"long_name": "soil pH in water", "units": "1"},
        "sand": {"long_name": "sand content", "units": "%"},
        "silt": {"long_name": "silt content", "units": "%"},
        "clay": {"long_name": "clay content", "units": "%"},
        "bulk_density": {"long_name": "soil bulk density", "units": "g cm-3"},
    }
    ds = xr.Dataset(
        {name: (dims3, soil[name], attrs[name]) for name in attrs},
        coords={
            "lat": geo["lat"],
            "lon": geo["lon"],
            "depth": (
                "depth",
                np.array(SOURCE_DEPTH_MID_CM),
                {
                    "units": "cm",
                    "long_name": "depth of layer mid-point",
                    "positive": "down",
                    "bounds": "depth_bounds",
                },
            ),
            "crop": ("crop", np.array(catalog.crops(), dtype=object)),
        },
    )
    ds["depth_bounds"] = (("depth", "nv"), np.array(SOURCE_DEPTH_BOUNDS_CM), {"units": "cm"})
    ds["elevation"] = geo["elevation"]
    ds["cropland_fraction"] = (
        ("lat", "lon"),
        cropland,
        {"long_name": "cropland area fraction", "units": "1"},
    )
    ds["harvested_area"] = (
        ("crop", "lat", "lon"),
        areas,
        {"long_name": "harvested area (MIRCA2000-like)", "units": "ha"},
    )
    ds["region"] = geo["region"]
    ds.attrs = {
        "title": "cropsm virtual China: static fields",
        "Conventions": "CF-1.8",
        "source": "cropsm.twin (synthetic soils, cropland and crop areas on real geography)",
    }
    return ds
