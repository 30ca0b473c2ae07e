"""Nominal crop-calendar inputs of a cropping pattern (the crop-aware feature set).

The paper gives the networks the cropping pattern as one categorical input (Table 1). Each
station keeps one pattern for its whole record and patterns follow regions (Table 3), so a
constant pattern input is confounded with place. The crop-aware feature set instead describes
*what the pattern does on that day*, from the pattern's nominal definition in the package catalog
(``cropsm/catalog/patterns.toml``, FAO-56 single crop-coefficient curves, Allen et al. 1998):

* ``cal_kc`` - the nominal crop coefficient Kc of the crop in the field, or the fallow Kc;
* ``cal_root_cm`` - the nominal effective rooting depth, cm;
* ``cal_crop_on`` - 1 while a crop occupies the field, 0 on fallow days.

These vary within a year at every station, so a network can learn the pattern's effect from
seasonal contrasts inside each station's record (wheat drawing water down in spring, a fallow
summer storing it), not only from differences between stations. The table here is *nominal*:
one national sowing day and fixed stage lengths; the crop-aware feature set moves it to each place's
long-term climate by thermal time (:mod:`cropsm.features.phenology`) and falls back to it
where air temperature is missing. The virtual China's truth grows crops on calendars that vary
with place and year (see ``docs/virtual_china.md``); the networks are never told those.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from cropsm import catalog

CALENDAR_FEATURES: tuple[str, ...] = ("cal_kc", "cal_root_cm", "cal_crop_on")
"""Names of the calendar inputs, in network order."""

CALENDAR_ATTRS: dict[str, dict[str, str]] = {
    "cal_kc": {"units": "1", "long_name": "nominal FAO-56 crop coefficient of the pattern"},
    "cal_root_cm": {"units": "cm", "long_name": "nominal effective rooting depth of the pattern"},
    "cal_crop_on": {"units": "1", "long_name": "1 while a crop of the pattern is in the field"},
}


@cache
def calendar_table(pattern_id: str) -> np.ndarray:
    """Nominal calendar inputs of one pattern for every day of year, shape ``(366, 3)``.

    Row ``d - 1`` holds ``(Kc, Zr, crop_on)`` of day of year ``d``: the FAO-56 single crop
    coefficient curve of the season in the field (Allen et al. 1998, Eq. 66 and Fig. 25; the
    most recently sown season wins where two overlap) and its rooting depth
    ``Zr = Zr_min + (Zr_max - Zr_min) min(t / (L_ini + L_dev), 1)``; fallow days take the
    catalog's fallow Kc and rooting depth and ``crop_on = 0``.

    Parameters
    ----------
    pattern_id
        One of ``cropsm.catalog.pattern_ids()``.
    """
    from cropsm.twin.soilwater import season_curve  # the catalog's nominal FAO-56 curve

    by_id = {p.id: p for p in catalog.patterns()}
    if pattern_id not in by_id:
        raise KeyError(f"unknown pattern {pattern_id!r}; expected one of {tuple(by_id)}")
    doy = np.arange(1, 367)
    fallow = catalog.fallow()
    kc = np.full(doy.shape, float(fallow["kc"]))
    root = np.full(doy.shape, float(fallow["root_depth_cm"]))
    crop_on = np.zeros(doy.shape)
    latest_sowing = np.full(doy.shape, np.inf)
    for season in by_id[pattern_id].seasons:
        kc_s, root_s, inside = season_curve(season, doy)
        since_sowing = np.mod(doy - season.sow_doy, 365)
        take = inside & (since_sowing < latest_sowing)
        kc = np.where(take, kc_s, kc)
        root = np.where(take, root_s, root)
        crop_on = np.where(take, 1.0, crop_on)
        latest_sowing = np.where(take, since_sowing, latest_sowing)
    table = np.stack([kc, root, crop_on], axis=1)
    table.setflags(write=False)
    return table


def calendar_features(pattern_id: str, day_of_year) -> dict[str, np.ndarray]:
    """Nominal calendar inputs (:data:`CALENDAR_FEATURES`) of a pattern on days of year.

    Parameters
    ----------
    pattern_id
        Cropping pattern.
    day_of_year
        Day of year 1...366, any shape.

    Returns
    -------
    dict of float64 arrays shaped like ``day_of_year``.
    """
    doy = np.asarray(day_of_year).astype(np.int64)
    if doy.size and (doy.min() < 1 or doy.max() > 366):
        raise ValueError("day_of_year must be within 1-366")
    table = calendar_table(pattern_id)
    return {name: table[doy - 1, j] for j, name in enumerate(CALENDAR_FEATURES)}


def calendar_features_by_pattern(pattern_ids, day_of_year) -> dict[str, np.ndarray]:
    """Calendar inputs for rows that each have their own pattern (station-table rows).

    Parameters
    ----------
    pattern_ids
        Pattern id per row.
    day_of_year
        Day of year per row.
    """
    patterns = np.asarray(pattern_ids, dtype=object)
    doy = np.asarray(day_of_year).astype(np.int64)
    out = {name: np.full(doy.shape, np.nan) for name in CALENDAR_FEATURES}
    for pid in catalog.pattern_ids():
        rows = patterns == pid
        if rows.any():
            values = calendar_features(pid, doy[rows])
            for name in CALENDAR_FEATURES:
                out[name][rows] = values[name]
    return out
