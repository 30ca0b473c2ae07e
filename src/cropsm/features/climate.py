"""Climate features of the networks (paper Table 1 and section 2b(2)), as pure array functions.

Every function works on arrays whose first axis is time (numpy ``(n_days, ...)``) or on
``xarray`` objects with a ``time`` dimension, so the station table (time x station cell) and the
gridded prediction stage (time x lat x lon, chunk by chunk) share the same code.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from cropsm.features.groups import PRECIPITATION_ACCUMULATION_MONTHS, PRECIPITATION_RECENT_DAYS

# Magnus form of the saturation vapour pressure over water with the Tetens (1930) / Murray (1967)
# constants used by FAO-56 (Allen et al. 1998, eq. 11). Lawrence (2005) reviews the Magnus form
# and recommends the Alduchov & Eskridge (1996) constants (0.61094 kPa, 17.625, 243.04 degC),
# which differ from these by < 0.3 % over -20...40 degC.
MAGNUS_E0_KPA = 0.6108
"""Saturation vapour pressure at 0 degC, kPa (Tetens/FAO-56 Magnus constant)."""
MAGNUS_A = 17.27
"""Dimensionless Magnus coefficient (Tetens/FAO-56)."""
MAGNUS_B_DEGC = 237.3
"""Magnus temperature offset, degC (Tetens/FAO-56)."""

FEATURE_ATTRS: dict[str, dict[str, str]] = {
    "precip": {"units": "mm d-1", "long_name": "daily precipitation"},
    **{
        f"precip_{n}m": {
            "units": "mm",
            "long_name": (
                f"precipitation accumulated over the previous {n} calendar month(s), "
                "ending the day before"
            ),
        }
        for n in PRECIPITATION_ACCUMULATION_MONTHS
    },
    **{
        f"precip_{n}d": {
            "units": "mm",
            "long_name": f"precipitation of the previous {n} days, ending the day before",
        }
        for n in PRECIPITATION_RECENT_DAYS
    },
    "ssr": {"units": "MJ m-2 d-1", "long_name": "surface net solar radiation"},
    "tair": {"units": "degC", "long_name": "2-m air temperature"},
    "vpd": {"units": "kPa", "long_name": "vapour pressure deficit (Magnus form)"},
    "wind": {"units": "m s-1", "long_name": "10-m wind speed"},
    "cloud": {"units": "1", "long_name": "total cloud cover"},
}
"""Units and long names of the climate features, keyed by station-table column."""

DIRECT_FEATURES: dict[str, str] = {
    "precip": "precipitation",
    "ssr": "net_solar_radiation",
    "tair": "air_temperature",
    "wind": "wind_speed",
    "cloud": "cloud_cover",
}
"""Climate features that are a canonical climate variable as is (feature -> canonical name)."""

VPD_SOURCES: tuple[str, str] = ("air_temperature", "dewpoint_temperature")
"""Canonical climate variables the VPD is computed from."""


def saturation_vapour_pressure_kpa(temperature_c):
    """Saturation vapour pressure over water, Magnus form (paper section 2b(2)).

    .. math:: e_s(T) = 0.6108 \\exp\\left(\\frac{17.27\\,T}{T + 237.3}\\right)\\ \\mathrm{kPa}

    with T in degC; Tetens (1930) / Murray (1967) constants as in FAO-56 (Allen et al. 1998,
    eq. 11); see Lawrence (2005) for the Magnus form.

    Parameters
    ----------
    temperature_c
        Temperature, degC (numpy array, xarray object or scalar).

    Returns
    -------
    Saturation vapour pressure, kPa, same shape and type.
    """
    return MAGNUS_E0_KPA * np.exp(MAGNUS_A * temperature_c / (temperature_c + MAGNUS_B_DEGC))


def vapour_pressure_deficit_kpa(air_temperature_c, dewpoint_c):
    """Vapour pressure deficit from air and dewpoint temperature (paper section 2b(2)).

    .. math:: \\mathrm{VPD} = \\max\\left(e_s(T) - e_s(T_d),\\ 0\\right)

    where the actual vapour pressure is the saturation vapour pressure at the dewpoint,
    e_a = e_s(T_d), and e_s is the Magnus form of :func:`saturation_vapour_pressure_kpa`
    (Tetens/FAO-56 constants 0.6108 kPa, 17.27, 237.3 degC; Lawrence 2005). Negative values
    (dewpoint above air temperature, e.g. from daily averaging) are clipped to 0. NaN stays NaN.

    Parameters
    ----------
    air_temperature_c
        Air temperature T, degC.
    dewpoint_c
        Dewpoint temperature T_d, degC.

    Returns
    -------
    VPD, kPa (same shape and type as the inputs).

    Examples
    --------
    >>> round(float(vapour_pressure_deficit_kpa(25.0, 15.0)), 3)
    1.462
    """
    vpd = saturation_vapour_pressure_kpa(air_temperature_c) - saturation_vapour_pressure_kpa(
        dewpoint_c
    )
    if isinstance(vpd, xr.DataArray | xr.Dataset):
        return vpd.clip(min=0)
    return np.clip(vpd, 0, None)  # NaN passes through np.clip


def day_of_year(dates) -> np.ndarray:
    """Day of year, 1 January = 1 ... 31 December = 365 or 366 (leap years); paper Table 1.

    Parameters
    ----------
    dates
        Dates (anything ``pandas.DatetimeIndex`` accepts: datetime64 array, Series, xarray
        coordinate).

    Returns
    -------
    ``numpy.ndarray`` of int16, same length.
    """
    return pd.DatetimeIndex(np.asarray(dates)).dayofyear.to_numpy().astype(np.int16)


def cyclic_day_of_year(day_of_year_values) -> tuple[np.ndarray, np.ndarray]:
    """Day of year on the unit circle: ``(sin(2 pi d / 365.25), cos(2 pi d / 365.25))``.

    31 December and 1 January are neighbours, unlike with the raw day of year (crop-aware
    feature set; the paper uses the day of year itself).
    """
    angle = 2.0 * np.pi * np.asarray(day_of_year_values, dtype=np.float64) / 365.25
    return np.sin(angle), np.cos(angle)


def window_start_index(dates, months: int) -> np.ndarray:
    """Index of the first day of the N-calendar-month window before each day.

    For day t the window starts at ``t - DateOffset(months=N)`` (pandas clips to the month end,
    e.g. 1 month before 2001-03-31 is 2001-02-28, 1 month before 2000-03-30 is 2000-02-29).
    Returns ``(start - dates[0])`` in days; negative where the window starts before the first
    date.

    Raises
    ------
    ValueError
        If ``dates`` are not consecutive days.
    """
    index = _daily_index(dates)
    start = index - pd.DateOffset(months=int(months))
    return ((start - index[0]) // pd.Timedelta(days=1)).to_numpy().astype(np.int64)


def recent_window_start_index(dates, days: int) -> np.ndarray:
    """Index of the first day of the N-day window before each day: ``i - N`` (negative where the
    window starts before the first date).

    Raises
    ------
    ValueError
        If ``dates`` are not consecutive days.
    """
    index = _daily_index(dates)
    return np.arange(index.size, dtype=np.int64) - int(days)


def accumulated_precipitation_mm(precip_mm, dates=None, months: int = 1):
    """Precipitation accumulated over the previous N calendar months, ending the day before.

    Paper section 2a / 2b(2): "accumulated precipitation within six previous periods (i.e.,
    previous 1, 2, 3, 4, 5, and 12 months)". For day t (daily index i)

    .. math::

        P_N(t) = \\sum_{d = t - N\\,\\mathrm{months}}^{t - 1\\,\\mathrm{day}} P(d)
               = S_i - S_{k(t)},\\qquad S_j = \\sum_{d < j} P_d

    i.e. the window holds the days d with ``t - DateOffset(months=N) <= d <= t - 1 day``: it
    ends the day before t (the day's own precipitation is the separate ``precip`` feature) and is
    exactly N calendar months long. On the 1st of a month the 1-month window is the whole
    previous month (P_1(2001-03-01) = sum over 2001-02-01 ... 2001-02-28). Month ends clip as in
    pandas: 1 month before 2001-03-31 is 2001-02-28, so P_1(2001-03-31) sums 2001-02-28 ...
    2001-03-30 (31 days); before 2000-03-31 it is 2000-02-29 (leap year).

    Computed with a cumulative sum over the time axis (O(n) whatever N). Values are NaN where
    the window starts before the first date, and where any day in the window is NaN.

    Parameters
    ----------
    precip_mm
        Daily precipitation, mm d-1: numpy array with time as the first axis, shape
        ``(n_days, ...)``, or ``xarray.DataArray`` with a ``time`` dimension (a dask-backed array is
        rechunked to a single chunk along time; chunk it in space to bound memory).
    dates
        The consecutive daily dates of the time axis; optional for a DataArray (its ``time``
        coordinate is used).
    months
        N, the look-back in calendar months (>= 1).

    Returns
    -------
    Accumulated precipitation, mm, same shape and type as ``precip_mm`` (float32 for float32
    input, else float64).
    """
    if months < 1:
        raise ValueError(f"months must be >= 1, got {months}")
    return _window_sums(precip_mm, dates, f"precip_{months}m", window_start_index, months)


def recent_precipitation_mm(precip_mm, dates=None, days: int = 3):
    """Precipitation of the previous N days, ending the day before (crop-aware feature set).

    For day t with daily index i

    .. math:: P_{Nd}(t) = \\sum_{j = i - N}^{i - 1} P_j = S_i - S_{i - N}

    (the day's own precipitation is the separate ``precip`` feature). The paper's shortest
    window is a calendar month (:func:`accumulated_precipitation_mm`, section 2a); the upper
    10-20 cm answer to the rain of the last days, which a monthly sum blurs. NaN where the window
    starts before the first date or holds a NaN day.

    Parameters
    ----------
    precip_mm, dates
        As :func:`accumulated_precipitation_mm`.
    days
        N >= 1.

    Returns
    -------
    Precipitation, mm, same shape and type as ``precip_mm`` (float32 for float32 input).
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    return _window_sums(precip_mm, dates, f"precip_{days}d", recent_window_start_index, days)


def _window_sums(precip_mm, dates, name: str, window_start, length: int):
    """Window sums of precipitation over the time axis, ``window_start(dates, length)`` to the
    day before (numpy time-first or a DataArray with ``time``)."""
    if isinstance(precip_mm, xr.DataArray):
        if dates is None:
            dates = precip_mm["time"].values
        start = window_start(dates, length)
        if precip_mm.chunks is not None:  # dask: the look-back needs the whole time axis
            precip_mm = precip_mm.chunk({"time": -1})
        if precip_mm.sizes["time"] != start.size:
            raise ValueError("dates and the time axis of precip_mm differ in length")
        out = xr.apply_ufunc(
            _accumulate_last_axis,
            precip_mm,
            kwargs={"start": start},
            input_core_dims=[["time"]],
            output_core_dims=[["time"]],
            dask="parallelized",
            output_dtypes=[_out_dtype(precip_mm.dtype)],
            keep_attrs=False,
        ).transpose(*precip_mm.dims)
        out.attrs = dict(FEATURE_ATTRS.get(name, {"units": "mm"}))
        return out
    if dates is None:
        raise ValueError("dates are required for a numpy precipitation array")
    values = np.asarray(precip_mm)
    start = window_start(dates, length)
    if values.shape[0] != start.size:
        raise ValueError("dates and the first (time) axis of precip_mm differ in length")
    return np.moveaxis(_accumulate_last_axis(np.moveaxis(values, 0, -1), start), -1, 0)


def climate_features(
    climate: xr.Dataset,
    accumulation_months: Sequence[int] = PRECIPITATION_ACCUMULATION_MONTHS,
    recent_days: Sequence[int] = PRECIPITATION_RECENT_DAYS,
) -> xr.Dataset:
    """The climate features of paper Table 1 from the canonical climate dataset.

    ========================  =========================================  ============
    feature                   formula                                    units
    ========================  =========================================  ============
    ``precip``                precipitation                              mm d-1
    ``precip_{N}m``           :func:`accumulated_precipitation_mm`       mm
    ``precip_{N}d``           :func:`recent_precipitation_mm`            mm
    ``ssr``                   net_solar_radiation                        MJ m-2 d-1
    ``tair``                  air_temperature                            degC
    ``vpd``                   :func:`vapour_pressure_deficit_kpa`        kPa
    ``wind``                  wind_speed                                 m s-1
    ``cloud``                 cloud_cover                                1
    ========================  =========================================  ============

    A feature whose canonical source variable is absent is left out (the caller decides whether
    that is an error, see ``cropsm.features.groups.require_groups``).

    Parameters
    ----------
    climate
        Canonical climate (``docs/contracts.md``): daily, consecutive ``time``; any other dims
        (``(lat, lon)`` or ``(cell,)``).
    accumulation_months
        Look-backs N of the accumulated precipitation (default 1, 2, 3, 4, 5, 12).
    recent_days
        Look-backs N of the recent precipitation in days (default 3, 7; crop-aware set only).

    Returns
    -------
    ``xarray.Dataset`` with the same dims and coordinates, every variable with ``units`` and
    ``long_name``.
    """
    out: dict[str, xr.DataArray] = {}
    for feature, source in DIRECT_FEATURES.items():
        if source in climate:
            out[feature] = climate[source]
        if feature == "precip" and source in climate:
            for n in accumulation_months:
                out[f"precip_{n}m"] = accumulated_precipitation_mm(
                    climate[source], climate["time"].values, n
                )
            for n in recent_days:
                out[f"precip_{n}d"] = recent_precipitation_mm(
                    climate[source], climate["time"].values, n
                )
        if feature == "tair" and all(v in climate for v in VPD_SOURCES):
            out["vpd"] = vapour_pressure_deficit_kpa(
                climate[VPD_SOURCES[0]], climate[VPD_SOURCES[1]]
            )
    features = xr.Dataset(out, coords=climate.coords)
    for name in features.data_vars:
        attrs = FEATURE_ATTRS.get(name)
        if attrs is None:  # an accumulation period outside the paper's set
            attrs = {"units": "mm", "long_name": f"precipitation over the previous {name}"}
        features[name].attrs = dict(attrs)
    return features


def _daily_index(dates) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(np.asarray(dates))
    if index.size == 0:
        raise ValueError("dates are empty")
    if index.size > 1:
        steps = np.diff(index.asi8)
        if not np.all(steps == pd.Timedelta(days=1).value):
            bad = int(np.flatnonzero(steps != pd.Timedelta(days=1).value)[0])
            raise ValueError(
                "dates must be consecutive days; found "
                f"{index[bad].date()} followed by {index[bad + 1].date()}"
            )
    return index


def _out_dtype(dtype) -> np.dtype:
    return np.dtype(np.float32) if np.dtype(dtype) == np.float32 else np.dtype(np.float64)


def _accumulate_last_axis(values: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Window sums over the last axis: out[..., i] = sum(values[..., start[i]:i]), NaN-aware."""
    values = np.asarray(values)
    n = values.shape[-1]
    nan = np.isnan(values)
    cumsum = np.zeros(values.shape[:-1] + (n + 1,), dtype=np.float64)
    np.cumsum(np.where(nan, 0.0, values), axis=-1, out=cumsum[..., 1:])
    nan_count = np.zeros(values.shape[:-1] + (n + 1,), dtype=np.int64)
    np.cumsum(nan, axis=-1, out=nan_count[..., 1:])
    end = np.arange(n)
    valid = start >= 0
    first = np.where(valid, start, 0)
    out = cumsum[..., end] - cumsum[..., first]
    window_has_nan = (nan_count[..., end] - nan_count[..., first]) > 0
    out[..., ~valid] = np.nan
    out[window_has_nan] = np.nan
    return out.astype(_out_dtype(values.dtype), copy=False)
