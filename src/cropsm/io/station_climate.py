"""Station-level climate: a site's own daily weather in place of a climate grid.

Some networks measure the weather beside the soil (USCRN). Their station-level climate is an
``xarray.Dataset`` with dims ``(time, station)`` holding the canonical climate variables of
``docs/contracts.md`` (same names, units and meaning as the gridded climate), so the climate
features are the same functions as for a grid (:mod:`cropsm.features.climate`):

============================  ==============  =============================================
variable                      units           from USCRN daily01
============================  ==============  =============================================
``precipitation``             ``mm d-1``      ``P_DAILY_CALC``
``air_temperature``           ``degC``        ``T_DAILY_AVG`` (else ``T_DAILY_MEAN``)
``dewpoint_temperature``      ``degC``        from ``T`` and ``RH_DAILY_AVG``
                                              (:func:`dewpoint_from_relative_humidity`)
``net_solar_radiation``       ``MJ m-2 d-1``  ``(1 - albedo) * SOLARAD_DAILY``
                                              (:func:`net_solar_from_incoming`)
``incoming_solar_radiation``  ``MJ m-2 d-1``  ``SOLARAD_DAILY``
``relative_humidity``         ``%``           ``RH_DAILY_AVG``
============================  ==============  =============================================

USCRN measures *incoming* (global) solar radiation, not the net solar radiation of ERA5's
``ssr``. The ``ssr`` feature is taken as ``0.77 x incoming`` (FAO-56 eq. 38 with the grass
reference albedo 0.23). The networks standardise their inputs, so a constant factor changes
nothing in a fit on USCRN alone; it matters only for putting USCRN and ERA5 numbers side by side.

Missing days: a station's weather has gaps (``-9999``). The day's own features are NaN there
(the row is dropped by the station table). The precipitation accumulations
(:func:`accumulated_precipitation_with_gaps` over months,
:func:`recent_precipitation_with_gaps` over days) tolerate a few missing days in the window: the
sum of the valid days is scaled to the window length when at least ``min_valid_fraction``
(default 90 %) of the window's days are valid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from cropsm.features.climate import (
    DIRECT_FEATURES,
    FEATURE_ATTRS,
    MAGNUS_A,
    MAGNUS_B_DEGC,
    VPD_SOURCES,
    recent_window_start_index,
    vapour_pressure_deficit_kpa,
    window_start_index,
)
from cropsm.features.groups import PRECIPITATION_ACCUMULATION_MONTHS, PRECIPITATION_RECENT_DAYS
from cropsm.io.uscrn import daily_air_temperature

FAO56_GRASS_ALBEDO = 0.23
"""Albedo of the FAO-56 grass reference surface (Allen et al. 1998, eq. 38)."""

STATION_CLIMATE_ATTRS: dict[str, dict[str, str]] = {
    "precipitation": {"units": "mm d-1", "long_name": "daily total precipitation"},
    "air_temperature": {"units": "degC", "long_name": "daily mean air temperature"},
    "dewpoint_temperature": {
        "units": "degC",
        "long_name": "daily dewpoint from mean air temperature and relative humidity",
    },
    "net_solar_radiation": {
        "units": "MJ m-2 d-1",
        "long_name": "daily net solar radiation, (1 - albedo) x incoming",
    },
    "incoming_solar_radiation": {
        "units": "MJ m-2 d-1",
        "long_name": "daily incoming (global) solar radiation",
    },
    "relative_humidity": {"units": "%", "long_name": "daily mean relative humidity"},
}
"""Units and long names of the station-level climate variables."""


def dewpoint_from_relative_humidity(air_temperature_c, relative_humidity_pct):
    """Dewpoint from air temperature and relative humidity (inverse Magnus form).

    .. math::

        \\gamma = \\ln\\frac{RH}{100} + \\frac{a\\,T}{b + T},\\qquad
        T_d = \\frac{b\\,\\gamma}{a - \\gamma}

    with the Magnus constants of :mod:`cropsm.features.climate` (a = 17.27, b = 237.3 degC;
    Tetens/FAO-56; Lawrence 2005, eq. 8), so that ``e_s(T_d) = RH/100 * e_s(T)`` exactly and the
    VPD feature equals ``e_s(T) (1 - RH/100)``. RH of 0 (or less) gives NaN.

    Parameters
    ----------
    air_temperature_c
        Air temperature T, degC.
    relative_humidity_pct
        Relative humidity, % (0-100).

    Returns
    -------
    Dewpoint, degC, same shape as the inputs.

    Examples
    --------
    >>> round(float(dewpoint_from_relative_humidity(25.0, 100.0)), 6)
    25.0
    """
    t = np.asarray(air_temperature_c, dtype=np.float64)
    rh = np.asarray(relative_humidity_pct, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.log(np.where(rh > 0, rh, np.nan) / 100.0) + MAGNUS_A * t / (MAGNUS_B_DEGC + t)
        return MAGNUS_B_DEGC * gamma / (MAGNUS_A - gamma)


def net_solar_from_incoming(incoming_mj, albedo: float = FAO56_GRASS_ALBEDO):
    """Net shortwave radiation from incoming solar radiation (FAO-56 eq. 38).

    .. math:: R_{ns} = (1 - \\alpha)\\,R_s

    Allen, Pereira, Raes & Smith (1998), FAO Irrigation and Drainage Paper 56, eq. 38, with
    alpha = 0.23 for the grass reference surface.

    Parameters
    ----------
    incoming_mj
        Incoming (global) solar radiation R_s, MJ m-2 d-1.
    albedo
        Surface albedo alpha, 0-1.
    """
    if not 0.0 <= albedo < 1.0:
        raise ValueError(f"albedo must lie in 0...1, got {albedo}")
    return (1.0 - albedo) * np.asarray(incoming_mj, dtype=np.float64)


def accumulated_precipitation_with_gaps(
    precip_mm: np.ndarray, dates, months: int, min_valid_fraction: float = 0.9
) -> np.ndarray:
    """Precipitation over the previous N calendar months, tolerating a few missing days.

    The window of day t holds the days d with ``t - DateOffset(months=N) <= d <= t - 1 day``
    (as :func:`cropsm.features.climate.accumulated_precipitation_mm`). With n the window's days
    and V the valid (non-NaN) ones,

    .. math:: P_N(t) = \\frac{n}{|V|} \\sum_{d \\in V} P(d)
              \\quad\\text{if } |V| \\ge f\\,n,\\ \\text{else NaN}

    i.e. missing days take the mean of the window's valid days. With f = 1 this is exactly
    ``accumulated_precipitation_mm``.

    Parameters
    ----------
    precip_mm
        Daily precipitation, mm d-1, shape ``(n_days, ...)`` (time first).
    dates
        The consecutive daily dates of the time axis.
    months
        N >= 1.
    min_valid_fraction
        f, the least share of valid days in the window (0 < f <= 1).

    Returns
    -------
    numpy.ndarray
        mm, float64, same shape; NaN where the window starts before the first date or has too
        few valid days.
    """
    if months < 1:
        raise ValueError(f"months must be >= 1, got {months}")
    start = window_start_index(dates, months)
    return _window_sums_with_gaps(precip_mm, start, min_valid_fraction)


def recent_precipitation_with_gaps(
    precip_mm: np.ndarray,
    dates,
    days: int,
    min_valid_fraction: float = 0.9,
) -> np.ndarray:
    """Precipitation over the previous N days (``precip_{N}d``), tolerating a few missing days.

    The window of day t holds the days ``t - N ... t - 1`` (as
    :func:`cropsm.features.climate.recent_precipitation_mm`); missing days take the mean of the
    window's valid days, as in :func:`accumulated_precipitation_with_gaps` (same formula, same
    ``min_valid_fraction``).

    Parameters
    ----------
    precip_mm, dates, min_valid_fraction
        As :func:`accumulated_precipitation_with_gaps`.
    days
        N >= 1.
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    start = recent_window_start_index(dates, days)
    return _window_sums_with_gaps(precip_mm, start, min_valid_fraction)


def _window_sums_with_gaps(
    precip_mm: np.ndarray, start: np.ndarray, min_valid_fraction: float
) -> np.ndarray:
    """Sums over the windows ``[start[t], t)`` with missing days filled by the window's mean
    (NaN below ``min_valid_fraction`` valid days or where ``start[t] < 0``)."""
    if not 0.0 < min_valid_fraction <= 1.0:
        raise ValueError(f"min_valid_fraction must lie in (0, 1], got {min_valid_fraction}")
    values = np.asarray(precip_mm, dtype=np.float64)
    if values.shape[0] != start.size:
        raise ValueError("dates and the first (time) axis of precip_mm differ in length")
    n = values.shape[0]
    valid = np.isfinite(values)
    cumsum = np.zeros((n + 1,) + values.shape[1:])
    np.cumsum(np.where(valid, values, 0.0), axis=0, out=cumsum[1:])
    count = np.zeros((n + 1,) + values.shape[1:], dtype=np.int64)
    np.cumsum(valid, axis=0, out=count[1:])
    end = np.arange(n)
    ok_start = start >= 0
    first = np.where(ok_start, start, 0)
    total = cumsum[end] - cumsum[first]
    n_valid = count[end] - count[first]
    length = (end - first).astype(np.float64).reshape((n,) + (1,) * (values.ndim - 1))
    enough = n_valid >= min_valid_fraction * length
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(enough & (n_valid > 0), total * length / n_valid, np.nan)
    out[~ok_start] = np.nan
    return out


def station_climate_from_uscrn(
    daily: pd.DataFrame, net_solar_fraction: float = 1.0 - FAO56_GRASS_ALBEDO
) -> xr.Dataset:
    """The station-level climate of USCRN daily rows (see the module docstring).

    Parameters
    ----------
    daily
        ``cropsm.io.uscrn.UscrnDaily.frame``: ``station_id``, ``date`` and NOAA's columns.
    net_solar_fraction
        ``1 - albedo``: net / incoming solar radiation (default 0.77).

    Returns
    -------
    xarray.Dataset
        Dims ``(time, station)``, ``time`` consecutive days from the first to the last date of
        any station (NaN where a station has no row), every variable float64 with ``units`` and
        ``long_name``.
    """

    tair = daily_air_temperature(daily)
    rh = daily["RH_DAILY_AVG"].to_numpy(np.float64)
    incoming = daily["SOLARAD_DAILY"].to_numpy(np.float64)
    frame = pd.DataFrame(
        {
            "station_id": daily["station_id"].to_numpy(),
            "date": daily["date"].to_numpy(),
            "precipitation": daily["P_DAILY_CALC"].to_numpy(np.float64),
            "air_temperature": tair,
            "dewpoint_temperature": dewpoint_from_relative_humidity(tair, rh),
            "net_solar_radiation": net_solar_from_incoming(incoming, 1.0 - net_solar_fraction),
            "incoming_solar_radiation": incoming,
            "relative_humidity": rh,
        }
    )
    return station_climate_from_frame(frame)


def station_climate_from_frame(frame: pd.DataFrame) -> xr.Dataset:
    """A long table ``station_id, date, <canonical climate variables>`` as ``(time, station)``.

    The time axis runs over every day from the first to the last date (gaps become NaN).

    Raises
    ------
    ValueError
        When a (station_id, date) pair appears twice.
    """
    if frame.duplicated(["station_id", "date"]).any():
        first = frame.loc[frame.duplicated(["station_id", "date"])].iloc[0]
        raise ValueError(f"station {first['station_id']!r} has two rows for {first['date']}")
    dates = pd.to_datetime(frame["date"]).dt.normalize()
    time = pd.date_range(dates.min(), dates.max(), freq="D")
    stations = pd.Index(sorted(frame["station_id"].astype(str).unique()), name="station")
    it = time.get_indexer(dates)
    js = stations.get_indexer(frame["station_id"].astype(str))
    data_vars = {}
    for name in frame.columns:
        if name in ("station_id", "date"):
            continue
        grid = np.full((time.size, stations.size), np.nan)
        grid[it, js] = frame[name].to_numpy(np.float64)
        attrs = STATION_CLIMATE_ATTRS.get(name, {"units": "1", "long_name": name})
        data_vars[name] = (("time", "station"), grid, dict(attrs))
    return xr.Dataset(
        data_vars, coords={"time": time.values.astype("datetime64[ns]"), "station": stations}
    )


def station_climate_features(
    climate: xr.Dataset,
    accumulation_months: Sequence[int] = PRECIPITATION_ACCUMULATION_MONTHS,
    min_valid_fraction: float = 0.9,
    recent_days: Sequence[int] = PRECIPITATION_RECENT_DAYS,
) -> xr.Dataset:
    """The climate features of paper Table 1 from a station-level climate.

    Same features, units and formulas as :func:`cropsm.features.climate.climate_features`
    (``precip``, ``precip_{N}m``, ``precip_{N}d``, ``ssr``, ``tair``, ``vpd``, ``wind``,
    ``cloud``, each when its source variable exists), except that the precipitation
    accumulations tolerate missing days (:func:`accumulated_precipitation_with_gaps`,
    :func:`recent_precipitation_with_gaps`).

    Parameters
    ----------
    climate
        Station-level climate, dims ``(time, station)``, consecutive daily ``time``.
    accumulation_months
        Look-backs N of the accumulated precipitation.
    min_valid_fraction
        Least share of valid days in an accumulation window.
    recent_days
        Look-backs N of the recent precipitation, days.

    Returns
    -------
    xarray.Dataset
        Dims ``(time, station)``.
    """

    climate = climate.transpose("time", ...)
    dates = climate["time"].values
    out: dict[str, xr.DataArray] = {}
    for feature, source in DIRECT_FEATURES.items():
        if source not in climate:
            continue
        out[feature] = climate[source]
        if feature == "precip":
            for n in accumulation_months:
                values = accumulated_precipitation_with_gaps(
                    climate[source].values, dates, n, min_valid_fraction
                )
                out[f"precip_{n}m"] = xr.DataArray(values, dims=climate[source].dims)
            for n in recent_days:
                values = recent_precipitation_with_gaps(
                    climate[source].values, dates, n, min_valid_fraction
                )
                out[f"precip_{n}d"] = xr.DataArray(values, dims=climate[source].dims)
        if feature == "tair" and all(v in climate for v in VPD_SOURCES):
            out["vpd"] = vapour_pressure_deficit_kpa(
                climate[VPD_SOURCES[0]], climate[VPD_SOURCES[1]]
            )
    features = xr.Dataset(out, coords=climate.coords)
    for name in features.data_vars:
        attrs = FEATURE_ATTRS.get(name) or {"units": "mm", "long_name": f"precipitation {name}"}
        features[name].attrs = dict(attrs)
    return features


__all__ = [
    "FAO56_GRASS_ALBEDO",
    "STATION_CLIMATE_ATTRS",
    "accumulated_precipitation_with_gaps",
    "dewpoint_from_relative_humidity",
    "net_solar_from_incoming",
    "recent_precipitation_with_gaps",
    "station_climate_features",
    "station_climate_from_frame",
    "station_climate_from_uscrn",
]
