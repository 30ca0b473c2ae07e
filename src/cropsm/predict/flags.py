"""Quality flags of the product (paper section 4c, "Limitations and uncertainties").

"For a specific region, any dates within the observation time range will be assigned a time flag
of 1 (otherwise 0), and the cropping pattern flag will be assigned to 1 if agrometeorological
stations in this region do have the cropping pattern(s) of interest (otherwise 0)."

* **time flag** ``(time, cell)``: 1 when the day lies inside ``[first, last]`` observation date
  of the stations of the cell's region (any layer), else 0. A region without stations has 0.
* **pattern flag** ``(scenario, cell)``: for a pattern, 1 when a station of the cell's region
  has that pattern; for the reference, 1 when every pattern with a positive weight in the cell
  is flagged 1 (all the patterns the reference mixes were observed in the region), else 0.
* **season flag** ``(month, cell)``, beyond the paper: 1 when a station of the cell's region
  observes in that calendar month (:func:`region_observed_months`). The time flag spans whole
  years; stations do not read frozen soil, so in the other months the networks extrapolate and
  the intervals, calibrated on readings, hold less of the truth (``truth_skill.json``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cropsm import catalog
from cropsm.predict.config import REFERENCE

FLAG_VALUES = np.array([0, 1], dtype=np.int8)
TIME_FLAG_MEANINGS = "outside_region_observation_period inside_region_observation_period"
PATTERN_FLAG_MEANINGS = "pattern_not_observed_in_region pattern_observed_in_region"
SEASON_FLAG_MEANINGS = "month_not_observed_in_region month_observed_in_region"


def _station_region_codes(meta: pd.DataFrame) -> pd.Series:
    codes = {r.id: r.code for r in catalog.regions()}
    region = meta["region"]
    return region.map(lambda r: codes.get(str(r), int(r) if str(r).isdigit() else 0)).astype(int)


def region_observation_periods(meta: pd.DataFrame, obs: pd.DataFrame) -> np.ndarray:
    """First and last observation day of the stations of each region.

    Parameters
    ----------
    meta
        Canonical station metadata (index ``station_id``, column ``region``).
    obs
        Canonical observations (``station_id``, ``date``).

    Returns
    -------
    numpy.ndarray
        ``(n_regions + 1, 2)`` ``datetime64[D]``, row = region code (row 0: outside China),
        ``[first, last]``; ``NaT`` for a region without observations.
    """
    out = np.full((len(catalog.regions()) + 1, 2), np.datetime64("NaT"), dtype="datetime64[D]")
    if len(obs) == 0:
        return out
    region = _station_region_codes(meta)
    dates = pd.to_datetime(obs["date"]).to_numpy().astype("datetime64[D]")
    codes = region.reindex(obs["station_id"].astype(str)).to_numpy()
    for code in np.unique(codes[codes > 0]):
        days = dates[codes == code]
        out[int(code)] = [days.min(), days.max()]
    return out


def region_observed_months(meta: pd.DataFrame, obs: pd.DataFrame) -> np.ndarray:
    """Calendar months in which the stations of each region observe.

    The paper's time flag (:func:`time_flag`) spans a region's whole observation period, winters
    included; stations that never read frozen soil leave those months to the networks'
    extrapolation. This is the observation *season*: ``out[r, m - 1]`` is True when a station of
    region code ``r`` has an observation (any layer) in calendar month ``m``, any year.

    Returns
    -------
    numpy.ndarray
        ``(n_regions + 1, 12)`` bool, row = region code (row 0: outside China, all False).
    """
    out = np.zeros((len(catalog.regions()) + 1, 12), dtype=bool)
    if len(obs) == 0:
        return out
    region = _station_region_codes(meta)
    months = pd.to_datetime(obs["date"]).dt.month.to_numpy()
    codes = region.reindex(obs["station_id"].astype(str)).to_numpy(dtype=np.float64)
    known = codes > 0  # NaN: a station without metadata
    out[codes[known].astype(np.intp), months[known] - 1] = True
    return out


def observed_patterns(meta: pd.DataFrame, obs: pd.DataFrame) -> np.ndarray:
    """``(n_regions + 1, 6)`` bool: region code r has an observed station with pattern i
    (``pattern_ids()`` order); only stations with observations count."""
    ids = catalog.pattern_ids()
    out = np.zeros((len(catalog.regions()) + 1, len(ids)), dtype=bool)
    observed = meta.loc[meta.index.isin(pd.unique(obs["station_id"].astype(str)))]
    region = _station_region_codes(observed)
    for code, pattern in zip(region.to_numpy(), observed["pattern"].astype(str), strict=True):
        if pattern in ids and code > 0:
            out[int(code), ids.index(pattern)] = True
    return out


def time_flag(dates, region_code: np.ndarray, periods: np.ndarray) -> np.ndarray:
    """Time flag ``(time, cell)`` int8: ``first[r] <= day <= last[r]`` for the cell's region r.

    Parameters
    ----------
    dates
        Days of the block.
    region_code
        ``(cell,)`` region code of each cell (0 outside China).
    periods
        From :func:`region_observation_periods`.
    """
    days = pd.DatetimeIndex(dates).to_numpy().astype("datetime64[D]")[:, None]
    first = periods[np.asarray(region_code, dtype=np.intp), 0][None, :]
    last = periods[np.asarray(region_code, dtype=np.intp), 1][None, :]
    return ((days >= first) & (days <= last)).astype(np.int8)  # NaT compares False


def pattern_flag(
    region_code: np.ndarray,
    observed: np.ndarray,
    weights: np.ndarray,
    scenarios: Sequence[str],
) -> np.ndarray:
    """Pattern flag ``(scenario, cell)`` int8.

    Parameters
    ----------
    region_code
        ``(cell,)`` region codes.
    observed
        From :func:`observed_patterns`.
    weights
        ``(6, cell)`` crop-area weights of the patterns (:func:`cropsm.weights.pattern_weights`).
    scenarios
        Scenario names (pattern ids and/or ``reference``).
    """
    ids = catalog.pattern_ids()
    by_pattern = observed[np.asarray(region_code, dtype=np.intp)].T  # (6, cell)
    used = np.asarray(weights) > 0
    reference = used.any(axis=0) & np.all(by_pattern | ~used, axis=0)
    rows = [reference if s == REFERENCE else by_pattern[ids.index(s)] for s in scenarios]
    return np.asarray(rows, dtype=np.int8).reshape(len(scenarios), -1)
