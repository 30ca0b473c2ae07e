"""A CCI-like satellite surface soil moisture product of the virtual China.

What a microwave retrieval of a 0.25-degree pixel sees (Dorigo et al. 2017; paper section 3d):

* the whole cell, a mixture of cropland (the crop-area-weighted reference truth) and other land
  (a natural-vegetation water balance), weighted by the cropland fraction;
* a shallower sensing depth than the 0-10 cm layer: the top-layer signal with its fast
  fluctuations amplified, ``surface = mix + 0.6 (mix - mean_7d(mix))``;
* retrieval noise N(0, 0.03 m3 m-3) and gaps: no retrieval over frozen soil or snow (flag 1),
  under dense summer vegetation in the humid south (flag 2), and on days without an overpass
  (about half the days, 85 % before 1992 when fewer sensors flew).

Written in the ESA CCI SM layout: ``sm`` (m3 m-3, ``_FillValue`` -9999) and ``flag`` on dims
(time, lat, lon) with latitude descending.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from cropsm.io.atomic import atomic_output

RETRIEVAL_NOISE_SD = 0.03


def _running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing running mean along axis 0 (shorter windows at the start)."""
    csum = np.cumsum(values, axis=0, dtype=np.float64)
    out = np.empty_like(values, dtype=np.float64)
    out[:window] = csum[:window] / np.arange(1, window + 1)[:, None]
    out[window:] = (csum[window:] - csum[:-window]) / window
    return out


def satellite_surface(
    mixed_top_sm: np.ndarray,
    frozen_or_snow: np.ndarray,
    dense_vegetation: np.ndarray,
    dates: pd.DatetimeIndex,
    rng: np.random.Generator,
    porosity: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Satellite-like surface soil moisture and CCI flags at the given cells.

    Parameters
    ----------
    mixed_top_sm
        (n_days, n_cells) cell-mixture top-layer soil moisture, m3 m-3.
    frozen_or_snow, dense_vegetation
        (n_days, n_cells) booleans.
    porosity
        (n_cells,) upper bound of the retrieval, m3 m-3.

    Returns
    -------
    sm, flag
        float32 (NaN where no retrieval) and int8 (0 valid, 1 frozen/snow, 2 dense vegetation).
    """
    surface = mixed_top_sm + 0.6 * (mixed_top_sm - _running_mean(mixed_top_sm, 7))
    surface = surface + rng.normal(0.0, RETRIEVAL_NOISE_SD, surface.shape)
    surface = np.clip(surface, 0.01, porosity[None, :])
    flag = np.zeros(surface.shape, dtype=np.int8)
    flag[dense_vegetation] = 2
    flag[frozen_or_snow] = 1
    overpass_prob = np.where(dates.year < 1992, 0.15, 0.5)[:, None]
    no_overpass = rng.random(surface.shape) > overpass_prob
    sm = np.where((flag == 0) & ~no_overpass, surface, np.nan).astype(np.float32)
    return sm, flag


def write_cci(
    sm: np.ndarray, flag: np.ndarray, dates: pd.DatetimeIndex, lat, lon, path: Path
) -> None:
    """Write one multi-day file in the ESA CCI SM layout (latitude descending), atomically."""
    ds = xr.Dataset(
        {
            "sm": (
                ("time", "lat", "lon"),
                sm[:, ::-1, :],
                {
                    "long_name": "Volumetric Soil Moisture",
                    "units": "m3 m-3",
                    "valid_range": np.array([0.0, 1.0], dtype=np.float32),
                },
            ),
            "flag": (
                ("time", "lat", "lon"),
                flag[:, ::-1, :],
                {
                    "long_name": "Flag",
                    "flag_values": np.array([0, 1, 2], dtype=np.int8),
                    "flag_meanings": "no_data_inconsistency_detected "
                    "snow_coverage_or_temperature_below_zero dense_vegetation",
                },
            ),
        },
        coords={
            "time": ("time", dates.values),
            "lat": ("lat", np.asarray(lat)[::-1], {"units": "degrees_north"}),
            "lon": ("lon", np.asarray(lon), {"units": "degrees_east"}),
        },
        attrs={
            "title": "cropsm virtual China: ESA CCI-like surface soil moisture",
            "Conventions": "CF-1.8",
            "product": "COMBINED (synthetic)",
            "source": "cropsm.twin: cell mixture of cropland and natural land water balances",
        },
    )
    encoding = {
        "sm": {"zlib": True, "complevel": 1, "_FillValue": np.float32(-9999.0)},
        "flag": {"zlib": True, "complevel": 1},
    }
    with atomic_output(path) as tmp:
        ds.to_netcdf(tmp, encoding=encoding, engine="netcdf4")
