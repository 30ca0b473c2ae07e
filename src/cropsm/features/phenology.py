"""A climate-adjusted nominal crop calendar: the catalog's calendar moved to each place's climate.

The nominal calendar (:func:`cropsm.features.calendar.calendar_table`) has one national sowing day
and fixed stage lengths. Crops are not grown that way across a country: spring crops are sown
when it has warmed up, so earlier in the south; winter crops when it has cooled down, so later in
the south; and every stage is shorter where it is warm (thermal time, McMaster & Wilhelm 1997).
The scenario effect of a cropping pattern (its median annual soil moisture minus the
reference's) follows mostly from *when* its crops draw water, so a model that places every
season on the same days everywhere gets the spatial pattern of the effects wrong.

This module moves the nominal calendar to a place with the place's **long-term** temperature
cycle only, with the crop-model practice of a thermal-time (growing-degree-day) calendar:

1. The place's annual cycle of daily mean air temperature is the first harmonic of its record
   (:func:`temperature_harmonics`, least squares):
   ``T(d) = T_mean + A cos(2 pi (d - d_warm) / 365)``.
2. The nominal dates are typical practice in the catalog's nominal climate
   (``cropsm.catalog.nominal_climate()``, the North China Plain). There, each stage ``k`` of a
   season takes the thermal time ``G_k = sum over its nominal days of GDD(T_nom(d))`` with
   ``GDD = min(max(T - T_base, 0), T_upper - T_base)`` and the season's base and upper
   temperatures (catalog).
3. At the place, a ``warming`` season is sown on the first day of the nominal day +- 30 d when
   ``T(d) >= T_nom(sow_doy)`` (a ``cooling`` one when ``T(d) <= T_nom(sow_doy)``; the last window
   day when that never happens), an ``after_previous`` one ``gap_days`` after the previous
   season's harvest; it goes through the stages when its accumulated ``GDD(T(d))`` reaches
   ``G_1, G_1 + G_2, ...``; it is harvested when it has ``sum G_k``, after 1.5 x its nominal
   length, or (crops that are not frost hardy) on the first day with ``T(d) < 4 degC``.
4. Kc and rooting depth follow the thermal time as FAO-56 prescribes them in days (Allen et al.
   1998, Eq. 66, p. 164): ``Kc_ini`` to ``Kc_mid`` linearly through development, ``Kc_mid`` to
   ``Kc_end`` through the late stage; roots from 10 cm at sowing to ``Zr_max`` at the end of
   development. Where two seasons overlap, the most recently sown is in the field.

What this calendar does **not** know (and the virtual China's truth does, see
``docs/virtual_china.md``): each year's weather (sowing by the trailing 7-day mean, rain onset,
a given year's warmth), per-place crop traits (Kc_mid, rooting depth, cultivar thermal time),
the FAO-56 Eq. 62 climate adjustment of Kc_mid, and frost in a particular year. It is the same
function of the same long-term climate for a station and for a grid cell, so a product computed
block by block gets the same calendar as the whole record.

References
----------
Allen, R. G., Pereira, L. S., Raes, D., Smith, M. (1998). Crop evapotranspiration. FAO Irrigation
and Drainage Paper 56, chapter 6.
McMaster, G. S., Wilhelm, W. W. (1997). Growing degree-days: one equation, two interpretations.
Agric. For. Meteorol. 87, 291-300.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import numpy as np
import pandas as pd

from cropsm import catalog
from cropsm.features.calendar import calendar_table

HARMONIC_FEATURES: tuple[str, ...] = ("clim_t_mean_c", "clim_t_amplitude_c", "clim_t_warmest_doy")
"""The long-term temperature cycle of a place (:func:`temperature_harmonics`)."""

HARMONIC_ATTRS: dict[str, dict[str, str]] = {
    "clim_t_mean_c": {"units": "degC", "long_name": "long-term mean daily air temperature"},
    "clim_t_amplitude_c": {
        "units": "degC",
        "long_name": "amplitude of the annual cycle of daily mean air temperature",
    },
    "clim_t_warmest_doy": {"units": "1", "long_name": "day of year of the warmest climatology"},
}

SOWING_WINDOW_DAYS = 30
"""A ``warming``/``cooling`` season is sown within its nominal sowing day +- this many days."""

MAX_SEASON_FACTOR = 1.5
"""A season ends at the latest after this many times its nominal length."""

FROST_KILL_C = 4.0
"""Climatological daily mean temperature below which a crop that is not frost hardy dies, degC."""

SOWING_ROOT_DEPTH_CM = 10.0
"""Rooting depth at sowing, cm (FAO-56 p. 164, Zr_min)."""

_OMEGA = 2.0 * np.pi / 365.0
_YEAR = 365


def _design(day_of_year) -> np.ndarray:
    """``(n_days, 3)`` regressors ``1, cos(w d), sin(w d)`` of the first harmonic."""
    doy = np.asarray(day_of_year, dtype=np.float64)
    return np.stack([np.ones_like(doy), np.cos(_OMEGA * doy), np.sin(_OMEGA * doy)], axis=1)


def harmonic_sums(dates, air_temperature_c) -> dict[str, np.ndarray]:
    """Normal-equation sums of the first-harmonic fit of :func:`temperature_harmonics`.

    Sums over the days with a value, so that pieces of a record can be added up
    (:func:`harmonics_from_sums`) and give the fit of the whole record.

    Parameters
    ----------
    dates
        ``(n_days,)`` days.
    air_temperature_c
        ``(n_days, n)`` daily mean air temperature, degC (NaN where missing).

    Returns
    -------
    dict
        ``xtx`` ``(3, 3, n)`` and ``xty`` ``(3, n)``.
    """
    temperature = np.asarray(air_temperature_c, dtype=np.float64)
    if temperature.ndim == 1:
        temperature = temperature[:, None]
    x = _design(pd.DatetimeIndex(dates).dayofyear.to_numpy())  # (day, 3)
    valid = np.isfinite(temperature)
    values = np.where(valid, temperature, 0.0)
    weights = valid.astype(np.float64)
    # element-wise products summed over days (no BLAS): the same numbers whatever the threads
    # or the memory layout, so a station and a grid cell with the same series agree exactly
    xtx = np.empty((3, 3, temperature.shape[1]))
    for i in range(3):
        for j in range(i, 3):
            xtx[i, j] = xtx[j, i] = np.sum((x[:, i] * x[:, j])[:, None] * weights, axis=0)
    xty = np.stack([np.sum(x[:, [i]] * values, axis=0) for i in range(3)])
    return {"xtx": xtx, "xty": xty}


def harmonics_from_sums(sums: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The long-term temperature cycle (:data:`HARMONIC_FEATURES`) from :func:`harmonic_sums`.

    Solves ``(X'X) b = X'y`` per place for ``b = (T_mean, a, c)`` of
    ``T(d) = T_mean + a cos(w d) + c sin(w d)``, ``w = 2 pi / 365``; then
    ``A = sqrt(a^2 + c^2)`` and ``d_warm = atan2(c, a) / w`` (mod 365). Places with fewer than
    three days with a value get NaN.
    """
    xtx = np.moveaxis(np.asarray(sums["xtx"], dtype=np.float64), -1, 0)  # (n, 3, 3)
    xty = np.moveaxis(np.asarray(sums["xty"], dtype=np.float64), -1, 0)  # (n, 3)
    ok = xtx[:, 0, 0] >= 3
    safe = np.where(ok[:, None, None], xtx, np.eye(3))
    coef = np.linalg.solve(safe, np.where(ok[:, None], xty, 0.0)[..., None])[..., 0]
    mean, a, c = coef.T
    amplitude = np.hypot(a, c)
    warmest = np.mod(np.arctan2(c, a) / _OMEGA, _YEAR)
    nan = np.where(ok, 1.0, np.nan)
    return {
        "clim_t_mean_c": mean * nan,
        "clim_t_amplitude_c": amplitude * nan,
        "clim_t_warmest_doy": warmest * nan,
    }


def temperature_harmonics(dates, air_temperature_c) -> dict[str, np.ndarray]:
    """Long-term annual cycle of daily mean air temperature per place (least squares).

    ``T(d) = T_mean + A cos(2 pi (d - d_warm) / 365)`` fitted to every day with a value.

    Parameters
    ----------
    dates
        ``(n_days,)`` days; whole years give an unbiased cycle.
    air_temperature_c
        ``(n_days, n)`` or ``(n_days,)`` daily mean air temperature, degC.

    Returns
    -------
    dict
        :data:`HARMONIC_FEATURES` as ``(n,)`` arrays (degC, degC, day of year).
    """
    return harmonics_from_sums(harmonic_sums(dates, air_temperature_c))


def cycle_temperature_c(mean_c, amplitude_c, warmest_doy, day_of_year) -> np.ndarray:
    """``T(d) = T_mean + A cos(2 pi (d - d_warm) / 365)``; broadcasts its arguments."""
    doy = np.asarray(day_of_year, dtype=np.float64)
    return mean_c + amplitude_c * np.cos(_OMEGA * (doy - warmest_doy))


def growing_degree_days(air_temperature_c, base_c: float, upper_c: float) -> np.ndarray:
    """``GDD = min(max(T - T_base, 0), T_upper - T_base)``, degC d (McMaster & Wilhelm 1997)."""
    return np.clip(np.asarray(air_temperature_c, dtype=np.float64) - base_c, 0.0, upper_c - base_c)


def _nominal_temperature_c(day_of_year) -> np.ndarray:
    """``T_nom(d)``: the catalog's nominal climate (:func:`cropsm.catalog.nominal_climate`)."""
    nominal = catalog.nominal_climate()
    return cycle_temperature_c(
        nominal["mean_c"], nominal["amplitude_c"], nominal["warmest_doy"], day_of_year
    )


@cache
def nominal_stage_gdd(season: catalog.CropSeason) -> np.ndarray:
    """Thermal time of each of the four stages in the nominal climate, degC d (read-only).

    ``G_k = sum over the nominal days of stage k of GDD(T_nom(d))``, days counted from the
    nominal sowing day (across the new year).
    """
    days = np.arange(sum(season.stage_days))
    doy = (season.sow_doy - 1 + days) % _YEAR + 1
    daily = growing_degree_days(
        _nominal_temperature_c(doy), season.base_temperature_c, season.upper_temperature_c
    )
    bounds = np.cumsum((0, *season.stage_days))
    stage = np.array([daily[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    stage.setflags(write=False)
    return stage


def _sowing_doy(season: catalog.CropSeason, cycle: np.ndarray) -> np.ndarray:
    """``(n,)`` sowing day of year (1-365) of a warming/cooling/fixed season."""
    n = cycle.shape[1]
    if season.sowing not in ("warming", "cooling"):
        return np.full(n, season.sow_doy, dtype=np.int64)
    offsets = np.arange(-SOWING_WINDOW_DAYS, SOWING_WINDOW_DAYS + 1)
    window = (season.sow_doy - 1 + offsets) % _YEAR  # 0-based
    threshold = float(_nominal_temperature_c(season.sow_doy))
    temps = cycle[window]  # (window, n)
    ready = temps >= threshold if season.sowing == "warming" else temps <= threshold
    first = np.where(ready.any(axis=0), ready.argmax(axis=0), len(offsets) - 1)
    return (window[first] + 1).astype(np.int64)


def _season_on_place(
    season: catalog.CropSeason, cycle: np.ndarray, sow_doy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Thermal time after each day since sowing ``(L, n)`` and the season length ``(n,)`` days."""
    n = cycle.shape[1]
    longest = int(np.ceil(MAX_SEASON_FACTOR * sum(season.stage_days)))
    t = np.arange(longest)
    day_index = (sow_doy[None, :] - 1 + t[:, None]) % _YEAR  # (L, n)
    temps = cycle[day_index, np.arange(n)[None, :]]
    thermal = np.cumsum(
        growing_degree_days(temps, season.base_temperature_c, season.upper_temperature_c), axis=0
    )
    done = thermal >= nominal_stage_gdd(season).sum()
    if not season.frost_hardy:
        done |= (temps < FROST_KILL_C) & (t[:, None] > 0)
    length = np.where(done.any(axis=0), done.argmax(axis=0) + 1, longest)
    return thermal, length


def _kc_and_root(season: catalog.CropSeason, thermal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FAO-56 Kc curve and rooting depth as functions of thermal time (module docstring, 4.)."""
    b1, b2, b3, b4 = np.cumsum(nominal_stage_gdd(season))
    kc_ini, kc_mid, kc_end = season.kc
    develop = np.clip((thermal - b1) / max(b2 - b1, 1e-9), 0.0, 1.0)
    late = np.clip((thermal - b3) / max(b4 - b3, 1e-9), 0.0, 1.0)
    kc = np.where(
        thermal < b2, kc_ini + develop * (kc_mid - kc_ini), kc_mid + late * (kc_end - kc_mid)
    )
    rooting = np.clip(thermal / max(b2, 1e-9), 0.0, 1.0)
    root = SOWING_ROOT_DEPTH_CM + (season.root_depth_max_cm - SOWING_ROOT_DEPTH_CM) * rooting
    return kc, root


def climate_calendar_table(pattern_id: str, harmonics: Mapping[str, np.ndarray]) -> np.ndarray:
    """Climate-adjusted calendar of a pattern at places, ``(n, 366, 3)`` float32.

    Row ``[i, d - 1]`` holds ``(Kc, Zr_cm, crop_on)`` of place ``i`` on day of year ``d``
    (module docstring; day 366 repeats day 365). Places with an unknown climate (NaN
    harmonics) keep the nominal calendar (:func:`cropsm.features.calendar.calendar_table`).

    Parameters
    ----------
    pattern_id
        One of ``cropsm.catalog.pattern_ids()``.
    harmonics
        :data:`HARMONIC_FEATURES` ``(n,)`` of the places (:func:`temperature_harmonics`).
    """
    by_id = {p.id: p for p in catalog.patterns()}
    if pattern_id not in by_id:
        raise KeyError(f"unknown pattern {pattern_id!r}; expected one of {tuple(by_id)}")
    mean, amplitude, warmest = (
        np.atleast_1d(np.asarray(harmonics[k], dtype=np.float64)) for k in HARMONIC_FEATURES
    )
    n = mean.shape[0]
    known = np.isfinite(mean) & np.isfinite(amplitude) & np.isfinite(warmest)
    doy = np.arange(1, _YEAR + 1)
    cycle = cycle_temperature_c(
        np.where(known, mean, 0.0)[None, :],
        np.where(known, amplitude, 0.0)[None, :],
        np.where(known, warmest, 0.0)[None, :],
        doy[:, None],
    )  # (365, n)
    fallow = catalog.fallow()
    kc = np.full((_YEAR, n), float(fallow["kc"]))
    root = np.full((_YEAR, n), float(fallow["root_depth_cm"]))
    crop_on = np.zeros((_YEAR, n))
    latest = np.full((_YEAR, n), np.inf)  # days since the sowing of the season in the field
    previous_harvest = None
    columns = np.arange(n)[None, :]
    for season in by_id[pattern_id].seasons:
        if season.sowing == "after_previous" and previous_harvest is not None:
            sow = (previous_harvest - 1 + season.gap_days) % _YEAR + 1
        else:
            sow = _sowing_doy(season, cycle)
        thermal, length = _season_on_place(season, cycle, sow)
        since = (doy[:, None] - sow[None, :]) % _YEAR  # (365, n)
        inside = since < length[None, :]
        at = np.minimum(since, thermal.shape[0] - 1)
        kc_s, root_s = _kc_and_root(season, thermal[at, columns])
        take = inside & (since < latest)
        kc = np.where(take, kc_s, kc)
        root = np.where(take, root_s, root)
        crop_on = np.where(take, 1.0, crop_on)
        latest = np.where(take, since, latest)
        previous_harvest = (sow - 1 + length) % _YEAR + 1
    table = np.stack([kc, root, crop_on], axis=-1).transpose(1, 0, 2)  # (n, 365, 3)
    table = np.concatenate([table, table[:, -1:]], axis=1)  # day 366 = day 365
    if not known.all():
        table[~known] = calendar_table(pattern_id)[None, :, :]
    return table.astype(np.float32)


def climate_calendar_tables(harmonics: Mapping[str, np.ndarray]) -> np.ndarray:
    """:func:`climate_calendar_table` of every catalog pattern, ``(6, n, 366, 3)`` float32."""
    return np.stack([climate_calendar_table(p, harmonics) for p in catalog.pattern_ids()])


def calendar_on_days(tables: np.ndarray, dates, column: int) -> np.ndarray:
    """One column (0 Kc, 1 rooting depth cm, 2 crop on) of calendar tables on ``dates``.

    Parameters
    ----------
    tables
        ``(..., n, 366, 3)`` from :func:`climate_calendar_table` or
        :func:`climate_calendar_tables`.
    dates
        ``(n_days,)`` days.

    Returns
    -------
    numpy.ndarray
        ``(n_days, ..., n)``.
    """
    doy = pd.DatetimeIndex(dates).dayofyear.to_numpy()
    values = np.asarray(tables)[..., doy - 1, column]  # (..., n, day)
    return np.moveaxis(values, -1, 0)


__all__ = [
    "HARMONIC_ATTRS",
    "HARMONIC_FEATURES",
    "calendar_on_days",
    "climate_calendar_table",
    "climate_calendar_tables",
    "cycle_temperature_c",
    "harmonic_sums",
    "harmonics_from_sums",
    "nominal_stage_gdd",
    "temperature_harmonics",
]
