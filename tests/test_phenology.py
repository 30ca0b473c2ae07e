"""The climate-adjusted calendar: the nominal calendar in the nominal climate, moved elsewhere."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cropsm import catalog
from cropsm.features.calendar import calendar_table
from cropsm.features.phenology import (
    HARMONIC_FEATURES,
    climate_calendar_table,
    cycle_temperature_c,
    harmonic_sums,
    harmonics_from_sums,
    temperature_harmonics,
)


def _cycle(mean_c, amplitude_c=14.0, warmest_doy=200.0):
    return {
        "clim_t_mean_c": np.atleast_1d(np.asarray(mean_c, dtype=float)),
        "clim_t_amplitude_c": np.full(np.size(mean_c), amplitude_c),
        "clim_t_warmest_doy": np.full(np.size(mean_c), warmest_doy),
    }


def _sowing_and_length(table_crop_on: np.ndarray) -> tuple[int, int]:
    """First day of year the crop is on after a fallow day, and days on (single-season rows)."""
    on = table_crop_on[:365] > 0
    starts = np.flatnonzero(on & ~np.roll(on, 1))
    return int(starts[0]) + 1, int(on.sum())


def test_harmonics_recover_a_known_cycle_and_add_up_by_pieces():
    dates = pd.date_range("2001-01-01", "2004-12-31")
    rng = np.random.default_rng(0)
    truth = cycle_temperature_c(
        np.array([5.0, 20.0]), np.array([18.0, 8.0]), np.array([195.0, 210.0]),
        dates.dayofyear.to_numpy()[:, None],
    )  # fmt: skip
    temperature = truth + rng.normal(0, 3, truth.shape)
    temperature[100:130, 0] = np.nan
    fit = temperature_harmonics(dates, temperature)
    np.testing.assert_allclose(fit["clim_t_mean_c"], [5.0, 20.0], atol=0.2)
    np.testing.assert_allclose(fit["clim_t_amplitude_c"], [18.0, 8.0], atol=0.3)
    np.testing.assert_allclose(fit["clim_t_warmest_doy"], [195.0, 210.0], atol=2.0)
    halves = [harmonic_sums(dates[s], temperature[s]) for s in (slice(0, 700), slice(700, None))]
    summed = harmonics_from_sums({k: halves[0][k] + halves[1][k] for k in halves[0]})
    for name in HARMONIC_FEATURES:
        np.testing.assert_allclose(summed[name], fit[name], rtol=1e-10)


def test_nominal_climate_reproduces_the_nominal_calendar():
    nominal = catalog.nominal_climate()
    here = _cycle(nominal["mean_c"], nominal["amplitude_c"], nominal["warmest_doy"])
    for pid in catalog.pattern_ids():
        moved = climate_calendar_table(pid, here)[0]
        nominal_table = calendar_table(pid)
        if pid in ("fl_mz", "fl_sb", "sw_ct", "ww_fl"):  # one season: same sowing and length
            sow, length = _sowing_and_length(moved[:, 2])
            sow_nom, length_nom = _sowing_and_length(nominal_table[:, 2])
            assert abs(sow - sow_nom) <= 2 and abs(length - length_nom) <= 3, pid
        # crop on the same days but for a few (double cropping), Kc close on average; thermal
        # time is not linear in days within a stage, so the curves are not identical
        assert np.abs(moved[:, 2] - nominal_table[:, 2]).sum() <= 6, pid
        assert 0 < np.abs(moved[:, 0] - nominal_table[:, 0]).mean() < 0.035, pid


def test_warmer_places_sow_spring_crops_earlier_winter_wheat_later_and_grow_faster():
    places = _cycle([9.0, 13.0, 17.0])
    maize = climate_calendar_table("fl_mz", places)
    sow_maize, len_maize = zip(*(_sowing_and_length(maize[i, :, 2]) for i in range(3)), strict=True)
    assert sow_maize[0] > sow_maize[1] > sow_maize[2]
    assert len_maize[0] > len_maize[1] > len_maize[2]
    wheat = climate_calendar_table("ww_fl", places)[:, :, 2]
    # winter wheat is sown in autumn: the first autumn day with the crop on
    sow_wheat = [200 + int(np.argmax(wheat[i, 200:] > 0)) + 1 for i in range(3)]
    assert sow_wheat[0] < sow_wheat[1] < sow_wheat[2]
    assert np.isfinite(maize).all() and (maize[..., 2] >= 0).all()


def test_summer_maize_follows_the_wheat_harvest_and_unknown_climate_keeps_nominal():
    table = climate_calendar_table("ww_mz", _cycle([15.0, np.nan]))
    on = table[0, :365, 2] > 0
    kc = table[0, :365, 0]
    # one fallow gap of the maize gap days (5) between the wheat harvest and maize sowing
    harvest = int(np.flatnonzero(np.diff(on.astype(int)) == -1)[0]) + 1  # first day off
    assert not on[harvest : harvest + 5].any() and on[harvest + 5]
    assert kc[harvest + 5] == pytest.approx(catalog.seasons()["summer_maize"].kc[0], abs=0.05)
    np.testing.assert_array_equal(table[1], calendar_table("ww_mz").astype(np.float32))
