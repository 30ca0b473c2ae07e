"""The virtual China's true crop calendars: weather-driven sowing, thermal-time stages, traits."""

from __future__ import annotations

import numpy as np
import pytest

from cropsm import catalog
from cropsm.twin import calendars as cal
from cropsm.twin.effects import effect_spatial_sd, median_annual_effect
from cropsm.twin.soilwater import crop_calendar

DOY = np.arange(1, 366)
WET = 3.0  # mm every day: the rain-onset criterion always holds


def neutral_traits(n: int) -> dict[str, cal.SeasonTraits]:
    return cal.nominal_traits(np.zeros(n))


def run_years(pattern, temperature_years, traits=None, climate=cal.REFERENCE_CLIMATE):
    """Run consecutive years; each of ``temperature_years`` is (365, n). Returns the outputs."""
    n = temperature_years[0].shape[1]
    traits = traits or neutral_traits(n)
    state, out = None, []
    for temperature in temperature_years:
        year = cal.pattern_calendar_year(
            pattern, DOY, temperature, np.full_like(temperature, WET), traits, state, climate
        )
        state = year.state
        out.append(year)
    return out


def smooth_climate(offsets_c):
    """The reference annual cycle shifted by each column's offset, no day-to-day noise."""
    return cal.reference_temperature_c(DOY)[:, None] + np.asarray(offsets_c, float)[None, :]


def noisy_climate(offsets_c, rng, sd=3.0, rho=0.7):
    """Reference cycle + offsets + AR(1) day-to-day anomalies of standard deviation ``sd``."""
    n = len(offsets_c)
    e = np.empty((365, n))
    e[0] = rng.normal(0.0, sd, n)
    for d in range(1, 365):
        e[d] = rho * e[d - 1] + rng.normal(0.0, sd * np.sqrt(1 - rho**2), n)
    return smooth_climate(offsets_c) + e


# a northern cell (40 N) is about 4 degC colder than a southern one (32 N) in the North China
# Plain's annual mean (about 0.9-1 degC per degree of latitude there)
NORTH_SOUTH = np.array([-3.5, 3.5])


def test_sowing_later_in_the_north_for_spring_crops_and_earlier_for_winter_crops():
    years = run_years("fl_mz", [smooth_climate(NORTH_SOUTH)] * 2)
    north, south = years[1].sowing_doy["spring_maize"]
    assert north - south >= 10  # spring maize: sown when it is warm enough, later up north
    years = run_years("ww_fl", [smooth_climate(NORTH_SOUTH)] * 2)
    north, south = years[1].sowing_doy["winter_wheat"]
    assert south - north >= 10  # winter wheat: sown when it has cooled, earlier up north


def test_sowing_follows_the_year_warm_spring_early_warm_autumn_late():
    cold, warm = smooth_climate([-2.0]), smooth_climate([2.0])
    # the same cell, a cold year then a warm one, after a normal year
    normal = smooth_climate([0.0])
    maize = run_years("fl_mz", [normal, cold, warm])
    assert maize[1].sowing_doy["spring_maize"][0] - maize[2].sowing_doy["spring_maize"][0] >= 7
    wheat = run_years("ww_fl", [normal, cold, warm])
    assert wheat[2].sowing_doy["winter_wheat"][0] - wheat[1].sowing_doy["winter_wheat"][0] >= 7


def test_rain_onset_delays_maize_sowing():
    temperature = smooth_climate([0.0, 0.0])
    dry_spring = np.full_like(temperature, WET)
    dry_spring[90:140, 1] = 0.0  # the second column gets no rain until 20 May
    traits = neutral_traits(2)
    year = cal.pattern_calendar_year("fl_mz", DOY, temperature, dry_spring, traits)
    wet_day, dry_day = year.sowing_doy["spring_maize"]
    assert dry_day > wet_day
    assert dry_day >= 141  # the first day with 5 mm in the trailing 10 days


def test_stage_lengths_shorten_with_warmer_temperature():
    # every season of every pattern, the same sowing rule in a cold and a warm column
    for pattern in ("fl_mz", "fl_sb", "ww_fl", "rs_ct"):
        years = run_years(pattern, [smooth_climate([-2.0, 2.0])] * 3)
        for season, lengths in years[2].season_days.items():
            cold, warm = lengths
            assert warm < cold, (pattern, season, lengths)
    # thermal time alone: constant temperatures, one season sown the same day
    plan = cal.season_thermal_plan(catalog.seasons()["spring_maize"])
    for t_cold, t_warm in ((15.0, 20.0), (20.0, 25.0)):
        days = [plan.total_gdd / cal.growing_degree_days(t, 10.0, 30.0) for t in (t_cold, t_warm)]
        assert days[1] < days[0]


def test_reference_climate_without_noise_reproduces_the_nominal_calendar():
    climate = cal.ReferenceClimate(13.0, 14.0, 200.0, daily_sd_c=0.0)
    for pattern in catalog.patterns():
        if len(pattern.seasons) > 1:
            continue  # double cropping: the second crop waits for the first (tested below)
        years = run_years(pattern.id, [smooth_climate([0.0])] * 3, climate=climate)
        season = pattern.seasons[0]
        assert years[2].sowing_doy[season.name][0] == pytest.approx(season.sow_doy, abs=1)
        length = [y.season_days[season.name][0] for y in years[1:]]
        length = np.nanmax(length)
        assert length == pytest.approx(sum(season.stage_days), abs=2)


def test_cell_mean_close_to_nominal_but_no_cell_equals_it():
    rng = np.random.default_rng(3)
    offsets = np.linspace(-3.0, 3.0, 120)  # cells symmetric around the reference climate
    for pattern in catalog.patterns():
        years = run_years(pattern.id, [noisy_climate(offsets, rng) for _ in range(5)])
        nominal_kc, _ = crop_calendar(pattern.id, DOY)
        for season in pattern.seasons:
            sowing = np.stack([y.sowing_doy[season.name] for y in years[1:]])
            lengths = np.stack([y.season_days[season.name] for y in years[1:]])
            # pinned: mean sowing within 15 days, mean season length within 12 % of nominal
            assert abs(np.nanmean(sowing) - season.sow_doy) <= 15, (pattern.id, season.name)
            nominal_length = sum(season.stage_days)
            assert abs(np.nanmean(lengths) / nominal_length - 1) <= 0.12, (pattern.id, season.name)
            assert np.nanstd(sowing) >= 5  # and they do vary between cells and years
        # no column follows the nominal curve (even with nominal traits, as here): each is off
        # by > 0.05 on some days, the typical column on more than 15 % of the days
        off = np.abs(years[-1].kc - nominal_kc[:, None]) > 0.05
        assert off.any(axis=0).all(), pattern.id
        assert np.median(off.mean(axis=0)) > 0.15, pattern.id


def test_winter_wheat_is_carried_across_the_new_year():
    years = run_years("ww_fl", [smooth_climate([0.0])] * 2)
    fallow_kc = catalog.fallow()["kc"]
    january = years[1].kc[:31, 0]
    assert np.all(january != fallow_kc)  # sown in year 1, still in the field in January
    assert years[1].sowing_doy["winter_wheat"][0] > 250  # and sown again in the autumn
    # without the carried state the field starts fallow
    fresh = cal.pattern_calendar_year(
        "ww_fl", DOY, smooth_climate([0.0]), np.full((365, 1), WET), neutral_traits(1)
    )
    assert np.all(fresh.kc[:31, 0] == pytest.approx(fallow_kc))


def test_killing_frost_ends_a_late_summer_crop():
    cold = smooth_climate([-8.0])  # maize cannot mature before the autumn frost
    years = run_years("fl_mz", [cold] * 2)
    harvest = years[1].sowing_doy["spring_maize"][0] + years[1].season_days["spring_maize"][0]
    t7 = cal.trailing_mean(cold, 7)[:, 0]
    assert t7[int(harvest) - 1] < cal.FROST_KILL_C + 0.5


def test_traits_are_deterministic_smooth_and_seeded():
    lat = np.array([35.0, 35.25, 45.0])
    lon = np.array([115.0, 115.25, 85.0])
    a = cal.cell_traits(lat, lon, seed=0)
    b = cal.cell_traits(lat, lon, seed=0)
    c = cal.cell_traits(lat, lon, seed=1)
    for name in cal.SEASON_RULES:
        np.testing.assert_array_equal(a[name].kc_mid_factor, b[name].kc_mid_factor)
        assert not np.allclose(a[name].root_factor, c[name].root_factor)
    # smooth: neighbours 0.25 deg apart are much closer than a typical pair
    grid_lat, grid_lon = np.meshgrid(np.arange(20, 50, 0.25), np.arange(80, 130, 0.25))
    f = cal.smooth_random_field(grid_lat, grid_lon, seed=0, stream=1)
    assert 0.6 < f.std() < 1.4
    step = np.abs(np.diff(f, axis=0)).mean()
    assert step < 0.15 * f.std()
    # the factors spread as documented
    lat_all, lon_all = grid_lat.ravel()[::7], grid_lon.ravel()[::7]
    traits = cal.cell_traits(lat_all, lon_all, seed=0)["winter_wheat"]
    assert 0.04 < traits.kc_mid_factor.std() < 0.12
    assert 0.10 < traits.root_factor.std() < 0.30
    assert traits.kc_mid_factor.min() >= 1 - 2 * cal.KC_MID_SPREAD


def test_kc_and_root_follow_thermal_time_and_traits():
    plan = cal.season_thermal_plan(catalog.seasons()["soybean"])
    traits = cal.SeasonTraits(np.array([1.0, 1.1]), np.array([1.0, 1.2]), np.array([1.0, 1.0]))
    b1, b2, b3, b4 = np.cumsum(plan.stage_gdd)
    kc, root = cal.thermal_kc_and_root(np.array([0.5 * (b2 + b3)] * 2), plan, traits)
    assert kc == pytest.approx([1.15, 1.15 * 1.1])
    assert root == pytest.approx([70.0, 84.0])
    kc0, root0 = cal.thermal_kc_and_root(np.zeros(2), plan, traits)
    assert kc0 == pytest.approx([0.4, 0.4])
    assert root0 == pytest.approx([10.0, 10.0])
    kc_end, _ = cal.thermal_kc_and_root(np.array([b4, b4]), plan, traits)
    assert kc_end == pytest.approx([0.5, 0.5])
    # the calendar's per-column table gives the same curve
    g = np.linspace(0, 1.1 * b4, 50)
    two = cal.SeasonTraits(*(np.full(50, v) for v in (1.1, 1.2, 0.9)))
    table = cal._season_columns(plan, two, 50)
    mine, reference = cal._kc_and_root(g, table), cal.thermal_kc_and_root(g, plan, two)
    np.testing.assert_allclose(mine[0], reference[0])
    np.testing.assert_allclose(mine[1], reference[1])


def test_expected_degree_days_matches_a_monte_carlo_estimate():
    rng = np.random.default_rng(0)
    draws = rng.normal(1.0, 3.0, 400_000)
    mc = cal.growing_degree_days(draws, 0.0, 30.0).mean()
    assert cal.expected_degree_days(1.0, 3.0, 0.0, 30.0) == pytest.approx(mc, rel=0.01)
    assert cal.expected_degree_days(20.0, 0.0, 10.0, 30.0) == pytest.approx(10.0)


def test_effect_spatial_sd_formula():
    pattern = np.zeros((1, 1, 3, 4))
    pattern[0, 0, :, :] = [[1, 2, 3, 4], [1, 2, 3, 4], [9, 9, 9, 9]]
    reference = np.zeros((1, 3, 4))
    effect = median_annual_effect(pattern, reference)
    np.testing.assert_allclose(effect[0, 0], [1, 2, 3, 4])
    assert effect_spatial_sd(effect)[0, 0] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))


# Measured on the tiny preset, seed 0 (cropsm twin ... --preset tiny --seed 0): the mean over the
# 30 maps (6 patterns x 5 layers) of the true effect's spatial SD was 0.0061 m3 m-3 with one
# national calendar (generator version 1) and 0.0079 with the true calendars (version 2).
TINY_MEAN_EFFECT_SD_BEFORE = 0.0061


def test_tiny_twin_true_effects_have_more_spatial_structure(tiny_twin):
    _, summary = tiny_twin
    sd = summary["true_effect_spatial_sd_m3_m-3"]
    values = np.array([v for layers in sd.values() for v in layers.values()])
    assert values.size == 30
    assert values.mean() >= 1.2 * TINY_MEAN_EFFECT_SD_BEFORE
    assert values.min() > 0.0015
    calendars = summary["true_calendars"]
    wheat = calendars["ww_fl"]["winter_wheat"]
    assert wheat["sowing_doy_sd_cells"] > 2.0
    assert wheat["season_days_sd_cells"] > 5.0
    assert calendars["fl_mz"]["spring_maize"]["sowing_doy_sd_years"] > 1.0


def test_trailing_mean_uses_the_carried_tail():
    rng = np.random.default_rng(0)
    x, tail = rng.normal(size=(40, 3)), rng.normal(size=(6, 3))
    full = np.concatenate([tail, x])
    expected = np.array([full[i : i + 7].mean(axis=0) for i in range(40)])
    np.testing.assert_allclose(cal.trailing_mean(x, 7, tail), expected)
    first = np.array([x[max(i - 6, 0) : i + 1].mean(axis=0) for i in range(40)])
    np.testing.assert_allclose(cal.trailing_mean(x, 7), first)


def test_fao56_kc_mid_climate_adjustment():
    # Eq. 62 is zero in the sub-humid climate the tables hold for (u2 = 2 m/s, RHmin = 45 %)
    assert cal.kc_mid_climate_adjustment(2.0, 45.0, 2.0) == pytest.approx(0.0)
    # a dry, windy place: u2 = 3.3 m/s, RHmin = 25 %, h = 2 m -> about +0.12
    expected = (0.04 * 1.3 - 0.004 * -20) * (2 / 3) ** 0.3
    assert cal.kc_mid_climate_adjustment(3.3, 25.0, 2.0) == pytest.approx(expected)
    assert expected == pytest.approx(0.116, abs=0.002)
    # the equation's ranges: u2 1-6 m/s, RHmin 20-80 %
    assert cal.kc_mid_climate_adjustment(9.0, 5.0, 1.0) == cal.kc_mid_climate_adjustment(
        6.0, 20.0, 1.0
    )
    # RHmin from the dewpoint (FAO-56 Eqs. 11 and 63): dew point = T_max gives 100 %
    assert cal.minimum_relative_humidity_pct(15.0, 20.0) == pytest.approx(100.0)
    assert cal.wind_speed_2m(10.0) == pytest.approx(7.48, abs=0.01)
    # a dry, windy column gets a higher maize Kc_mid than a humid, calm one
    t = smooth_climate([0.0, 0.0])
    dewpoint = t - np.array([15.0, 3.0])
    wind = np.tile([4.0, 1.5], (365, 1))
    offsets = cal.kc_mid_offsets("fl_mz", DOY, t, dewpoint, wind)["spring_maize"]
    assert offsets[0] > 0.05 > 0 > offsets[1]
    years = [
        cal.pattern_calendar_year(
            "fl_mz",
            DOY,
            t,
            np.full_like(t, WET),
            neutral_traits(2),
            kc_mid_offset={"spring_maize": offsets},
        )
    ]
    peak = years[0].kc.max(axis=0)
    assert peak == pytest.approx(1.2 + offsets, abs=1e-5)
    mid = cal.nominal_mid_season(catalog.seasons()["spring_maize"], DOY)
    assert mid.sum() == 45 and DOY[mid][0] == 121 + 25 + 40
