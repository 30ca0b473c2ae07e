"""Tests of the virtual China's soil water balance (cropsm.twin.soilwater)."""

from __future__ import annotations

import numpy as np
import pytest

from cropsm import catalog
from cropsm.twin.soilwater import (
    SoilHydraulics,
    crop_calendar,
    initial_state,
    root_uptake_fractions,
    run_water_balance,
    saxton_rawls,
    season_curve,
)

N_LAYERS = 5
FLUX_KEYS = ("precipitation", "runoff", "evapotranspiration", "drainage", "storage_change")


# --------------------------------------------------------------------------------------------
# helpers: small synthetic soils and climates
# --------------------------------------------------------------------------------------------


def _soils(
    n_columns: int, seed: int = 0, sand_range=(5.0, 85.0), clay_range=(3.0, 55.0)
) -> SoilHydraulics:
    """Textures from sand to clay, clay and density rising with depth."""
    rng = np.random.default_rng(seed)
    sand = rng.uniform(*sand_range, (n_columns, 1)) + np.zeros(N_LAYERS)
    clay = rng.uniform(*clay_range, (n_columns, 1)) + np.linspace(0.0, 6.0, N_LAYERS)
    clay = np.minimum(clay, 97.0 - sand)
    rho = rng.uniform(1.2, 1.55, (n_columns, 1)) + np.linspace(0.0, 0.12, N_LAYERS)
    return saxton_rawls(sand, clay, 1.5, rho)


def _uniform_soil(n_columns: int, sand: float, clay: float) -> SoilHydraulics:
    return saxton_rawls(np.full((n_columns, N_LAYERS), sand), np.full((n_columns, N_LAYERS), clay))


def _climate(
    n_columns: int,
    n_years: int,
    seed: int = 0,
    annual_precip_mm: float = 550.0,
    mean_temp_c: float = 11.0,
    temp_amplitude_c: float = 15.0,
    wet_day_probability: float = 0.25,
    spring_dry: bool = False,
):
    """Monsoon-like daily forcing: warm wet summers, cold dry winters; returns float32 arrays."""
    rng = np.random.default_rng(seed)
    n_days = 365 * n_years
    doy = np.arange(n_days) % 365 + 1
    summer = np.cos(2.0 * np.pi * (doy - 200) / 365.0)  # +1 mid-July, -1 mid-January
    temp = (mean_temp_c + temp_amplitude_c * summer)[:, None] + rng.normal(
        0, 3, (n_days, n_columns)
    )
    pet = np.clip(2.6 + 2.2 * summer + 0.6 * np.sin(2.0 * np.pi * (doy - 105) / 365.0), 0.3, None)
    weight = 0.15 + np.clip(summer, 0.0, None) ** 2
    if spring_dry:  # almost no rain 1 Mar - 31 May, a wet autumn refills the profile
        weight = np.where((doy >= 60) & (doy <= 151), 0.005, weight)
        weight = np.where((doy >= 230) & (doy <= 300), weight + 0.6, weight)
    weight = weight / weight.mean() * annual_precip_mm / 365.0
    wet = rng.random((n_days, n_columns)) < wet_day_probability
    precip = np.where(wet, rng.exponential(1.0, (n_days, n_columns)) / wet_day_probability, 0.0)
    precip = precip * weight[:, None]
    pet_all = np.broadcast_to(pet[:, None], (n_days, n_columns))
    return (
        precip.astype(np.float32),
        temp.astype(np.float32),
        np.ascontiguousarray(pet_all, dtype=np.float32),
        doy,
    )


def _run(pattern: str, soils: SoilHydraulics, climate, state=None):
    precip, temp, pet, doy = climate
    kc, root = crop_calendar(pattern, doy)
    state = initial_state(soils, 0.7) if state is None else state
    return run_water_balance(precip, temp, pet, kc[:, None], root[:, None], soils, state)


def _closure_mm(fluxes: dict[str, np.ndarray]) -> np.ndarray:
    return (
        fluxes["precipitation"]
        - fluxes["runoff"]
        - fluxes["evapotranspiration"]
        - fluxes["drainage"]
        - fluxes["storage_change"]
    )


# --------------------------------------------------------------------------------------------
# Saxton & Rawls (2006)
# --------------------------------------------------------------------------------------------

# Saxton & Rawls (2006), Table 3 (OM 2.5 %, normal density): sand %, clay %, WP, FC, SAT (% vol),
# Ks (mm h-1).
TABLE3 = {
    "sand": (88, 5, 5, 10, 46, 108.1),
    "sandy loam": (65, 10, 8, 18, 45, 50.3),
    "loam": (40, 20, 14, 28, 46, 15.5),
    "silt loam": (20, 15, 11, 31, 48, 16.1),
    "clay loam": (30, 35, 22, 36, 48, 4.3),
    "clay": (25, 50, 30, 42, 50, 1.1),
}


@pytest.mark.parametrize("texture", sorted(TABLE3))
def test_saxton_rawls_reproduces_table3(texture):
    sand, clay, wp, fc, sat, ks_mm_h = TABLE3[texture]
    soil = saxton_rawls(sand, clay, 2.5)
    assert soil.wilting_point == pytest.approx(wp / 100.0, abs=0.006)
    assert soil.field_capacity == pytest.approx(fc / 100.0, abs=0.006)
    assert soil.saturation == pytest.approx(sat / 100.0, abs=0.006)
    assert soil.ksat_mm_day / 24.0 == pytest.approx(ks_mm_h, rel=0.05)


def test_saxton_rawls_loam_known_values():
    # Loam of Table 3 (sand 40 %, clay 20 %, OM 2.5 %): WP 0.14, FC 0.28, SAT 0.46, Ks ~15 mm/h
    soil = saxton_rawls(np.full((3, 5), 40.0), np.full((3, 5), 20.0), 2.5)
    assert soil.field_capacity.shape == (3, 5)
    np.testing.assert_allclose(soil.wilting_point, 0.14, atol=0.01)
    np.testing.assert_allclose(soil.field_capacity, 0.28, atol=0.01)
    np.testing.assert_allclose(soil.saturation, 0.46, atol=0.01)
    np.testing.assert_allclose(soil.ksat_mm_day, 15.5 * 24.0, rtol=0.1)
    np.testing.assert_allclose(soil.residual, 0.5 * soil.wilting_point)


def test_saxton_rawls_ordering_over_textures_and_densities():
    sand, clay = np.meshgrid(np.linspace(0, 100, 41), np.linspace(0, 100, 41))
    keep = sand + clay <= 100
    sand, clay = sand[keep][:, None], clay[keep][:, None]
    rho = np.array([0.9, 1.1, 1.3, 1.5, 1.7])  # one bulk density per "layer"
    for om in (0.2, 1.5, 6.0):
        for density in (None, rho):
            soil = saxton_rawls(sand, clay, om, density)
            assert np.all(soil.residual > 0)
            assert np.all(soil.residual < soil.wilting_point)
            assert np.all(soil.wilting_point < soil.field_capacity)
            assert np.all(soil.field_capacity < soil.saturation)
            assert np.all(soil.saturation < 1)
            assert np.all(soil.ksat_mm_day > 0)


def test_saxton_rawls_density_adjustment_direction():
    # Eqs. 6-10: denser soil -> less porosity, lower FC, lower Ks; wilting point unchanged
    normal = saxton_rawls(40.0, 20.0, 1.5)
    rho_normal = (1.0 - normal.saturation) * 2.65
    loose = saxton_rawls(40.0, 20.0, 1.5, rho_normal * 0.95)
    dense = saxton_rawls(40.0, 20.0, 1.5, rho_normal * 1.15)
    same = saxton_rawls(40.0, 20.0, 1.5, rho_normal)
    assert same.saturation == pytest.approx(normal.saturation)
    assert same.field_capacity == pytest.approx(normal.field_capacity)
    assert dense.saturation < normal.saturation < loose.saturation
    assert dense.field_capacity < normal.field_capacity < loose.field_capacity
    assert dense.ksat_mm_day < normal.ksat_mm_day < loose.ksat_mm_day
    assert dense.wilting_point == pytest.approx(normal.wilting_point)
    assert dense.saturation == pytest.approx(1.0 - rho_normal * 1.15 / 2.65)


def test_saxton_rawls_rejects_bad_texture():
    with pytest.raises(ValueError):
        saxton_rawls(70.0, 40.0)
    with pytest.raises(ValueError):
        saxton_rawls(np.nan, 20.0)


# --------------------------------------------------------------------------------------------
# crop calendar (FAO-56 single Kc)
# --------------------------------------------------------------------------------------------


def _season_days(season) -> tuple[int, int, int]:
    """Day of year of sowing, mid-point of the mid-season stage, and harvest (1-365)."""
    l_ini, l_dev, l_mid, l_late = season.stage_days
    mid = (season.sow_doy + l_ini + l_dev + l_mid // 2 - 1) % 365 + 1
    harvest = (season.sow_doy + l_ini + l_dev + l_mid + l_late - 1) % 365 + 1
    return season.sow_doy, mid, harvest


@pytest.mark.parametrize("pattern", catalog.pattern_ids())
def test_crop_calendar_kc_mid_in_season_and_fallow_outside(pattern):
    doy = np.arange(1, 367)
    kc, root = crop_calendar(pattern, doy)
    assert kc.shape == root.shape == doy.shape
    fallow = catalog.fallow()
    seasons = next(p for p in catalog.patterns() if p.id == pattern).seasons
    in_any = np.zeros(doy.shape, bool)
    for season in seasons:
        sow, mid, _ = _season_days(season)
        assert kc[mid - 1] == pytest.approx(season.kc[1])
        assert root[mid - 1] == pytest.approx(season.root_depth_max_cm)
        assert kc[sow - 1] == pytest.approx(season.kc[0])
        assert root[sow - 1] == pytest.approx(10.0)
        in_any |= season_curve(season, doy)[2]
    assert np.all(kc[~in_any] == fallow["kc"])
    assert np.all(root[~in_any] == fallow["root_depth_cm"])
    assert np.any(~in_any), "every pattern has some fallow days"
    assert np.all((kc > 0) & (kc <= 1.25)) and np.all((root >= 10) & (root <= 100))


def test_crop_calendar_winter_wheat_crosses_new_year():
    wheat = catalog.seasons()["winter_wheat"]
    sow, mid, harvest = _season_days(wheat)
    assert harvest < sow  # the season crosses the year boundary
    doy = np.arange(1, 366)
    kc, root = crop_calendar("ww_fl", doy)
    in_season = season_curve(wheat, doy)[2]
    assert in_season[0] and in_season[sow - 1] and in_season[364]  # 1 Jan, sowing, 31 Dec
    assert not in_season[harvest - 1] and not in_season[200]  # harvested by early June
    # still in the (long, dormant) initial stage at new year: Kc_ini, roots still growing
    assert kc[0] == pytest.approx(wheat.kc[0])
    assert 10.0 < root[364] < root[0] < wheat.root_depth_max_cm
    # development stage in spring: Kc rising from Kc_ini to Kc_mid
    dev = slice((sow + wheat.stage_days[0] - 1) % 365, mid - 20)
    assert np.all(np.diff(kc[dev]) > 0)
    # summer: fallow for ww_fl, maize for ww_mz
    kc_mz, _ = crop_calendar("ww_mz", doy)
    assert kc[210] == catalog.fallow()["kc"]
    assert kc_mz[210] > 1.0


def test_crop_calendar_rejects_bad_input():
    with pytest.raises(KeyError):
        crop_calendar("rice", np.arange(1, 10))
    with pytest.raises(ValueError):
        crop_calendar("ww_fl", np.array([0, 367]))


def test_root_uptake_fractions():
    fractions = root_uptake_fractions(np.array([15.0, 50.0, 100.0]))
    assert fractions.shape == (5, 3)
    assert np.all(fractions >= 0)
    np.testing.assert_allclose(fractions[:, 1], [0.36, 0.28, 0.20, 0.12, 0.04])
    np.testing.assert_allclose(fractions.sum(axis=0), [1.0, 1.0, 0.75])
    assert np.all(fractions[2:, 0] == 0)


# --------------------------------------------------------------------------------------------
# water balance
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def varied_run():
    """Varied soils under a cold, snowy climate with heavy storms, three years, ww_mz."""
    n = 240
    soils = _soils(n, seed=3)
    precip, temp, pet, doy = _climate(n, 3, seed=4, annual_precip_mm=750.0, mean_temp_c=6.0)
    rng = np.random.default_rng(5)
    storms = rng.random(precip.shape) < 0.004  # a few 80-250 mm days
    precip = np.where(storms, rng.uniform(80, 250, precip.shape), precip).astype(np.float32)
    soils_wet_start = initial_state(soils, 1.0, soil_temperature_c=-3.0)
    result = _run("ww_mz", soils, (precip, temp, pet, doy), soils_wet_start)
    return soils, result


def test_sm_within_residual_and_saturation(varied_run):
    soils, result = varied_run
    assert result.sm.dtype == np.float32
    assert result.sm.shape == (3 * 365, 5, soils.n_columns)
    lower = soils.residual.T[None]
    upper = soils.saturation.T[None]
    assert np.all(result.sm >= lower - 1e-6)
    assert np.all(result.sm <= upper + 1e-6)
    # the bounds are reached: some layers saturate in storms, topsoil dries hard in droughts
    assert np.any(result.sm >= upper - 1e-4)
    assert np.any(result.sm[:, 0] <= soils.wilting_point[:, 0] - 0.02)


def test_water_balance_closes_with_snow_frozen_soil_and_storms(varied_run):
    soils, result = varied_run
    fluxes = result.fluxes_mm
    for key in FLUX_KEYS:
        assert fluxes[key].shape == (soils.n_columns,)
        assert fluxes[key].dtype == np.float64
    # the run exercised every process
    assert fluxes["snowfall"].mean() > 10 and fluxes["snowmelt"].mean() > 10
    assert result.frozen.any() and not result.frozen.all()
    assert fluxes["runoff"].max() > 50 and fluxes["drainage"].max() > 50
    assert np.all(fluxes["evapotranspiration"] > 0) and np.all(fluxes["runoff"] >= 0)
    n_years = result.sm.shape[0] / 365
    assert np.all(np.abs(_closure_mm(fluxes)) < 0.1 * n_years)


def test_frozen_soil_stops_drainage_and_blocks_infiltration():
    n = 50
    soils = _uniform_soil(n, 40.0, 20.0)
    n_days = 60
    temp = np.full((n_days, n), -12.0, np.float32)
    precip = np.zeros((n_days, n), np.float32)
    pet = np.full((n_days, n), 0.5, np.float32)
    state = initial_state(soils, 1.5, soil_temperature_c=-8.0)  # wet and frozen
    res = run_water_balance(precip, temp, pet, 0.2, 15.0, soils, state)
    assert res.frozen.all()
    assert np.all(res.fluxes_mm["drainage"] == 0)
    np.testing.assert_allclose(res.sm[-1], res.sm[0])  # frozen: nothing moves
    # warm rain on the frozen soil: mostly runoff (infiltration limited)
    rain = np.full((3, n), 40.0, np.float32)
    frozen_res = run_water_balance(rain, 1.5, 0.5, 0.2, 15.0, soils, res.state)
    thawed_state = initial_state(soils, 0.5, soil_temperature_c=5.0)
    thawed_res = run_water_balance(rain, 5.0, 0.5, 0.2, 15.0, soils, thawed_state)
    assert frozen_res.frozen.all() and not thawed_res.frozen.any()
    assert frozen_res.fluxes_mm["runoff"].mean() > 50
    assert thawed_res.fluxes_mm["runoff"].mean() < frozen_res.fluxes_mm["runoff"].mean()


def test_consecutive_years_equal_one_long_run():
    n = 120
    soils = _soils(n, seed=7)
    climate = _climate(n, 2, seed=8, annual_precip_mm=600.0, mean_temp_c=7.0)
    whole = _run("rs_ct", soils, climate)
    first = _run("rs_ct", soils, tuple(a[:365] for a in climate))
    second = _run("rs_ct", soils, tuple(a[365:] for a in climate), first.state)
    np.testing.assert_array_equal(np.concatenate([first.sm, second.sm]), whole.sm)
    np.testing.assert_array_equal(np.concatenate([first.frozen, second.frozen]), whole.frozen)
    np.testing.assert_array_equal(second.state.soil_water_mm, whole.state.soil_water_mm)
    np.testing.assert_array_equal(second.state.snow_mm, whole.state.snow_mm)
    np.testing.assert_array_equal(second.state.soil_temperature_c, whole.state.soil_temperature_c)
    for key in FLUX_KEYS:
        np.testing.assert_allclose(
            first.fluxes_mm[key] + second.fluxes_mm[key], whole.fluxes_mm[key], atol=1e-8
        )


def test_shared_weather_columns_equal_copied_forcing():
    """Columns that take their weather from shared cells (``weather_columns``) give exactly the
    run on a per-column copy of the forcing (how the twin runs each cell under six patterns)."""
    n_cells = 30
    precip, temp, pet, doy = _climate(n_cells, 1, seed=11)
    weather_columns = np.concatenate([np.arange(n_cells), np.arange(n_cells)[::-1], [4, 4, 7]])
    soils = _soils(len(weather_columns), seed=12)
    kc, root = crop_calendar("ww_mz", doy)
    kc_columns = np.repeat(kc[:, None], len(weather_columns), axis=1).astype(np.float32)
    kc_columns[:, n_cells:] *= 0.8  # a second "pattern" on the same cells
    root_columns = np.repeat(root[:, None], len(weather_columns), axis=1)
    state = initial_state(soils, 0.6)
    copied = run_water_balance(
        precip[:, weather_columns],
        temp[:, weather_columns],
        pet[:, weather_columns],
        kc_columns,
        root_columns,
        soils,
        state,
    )
    shared = run_water_balance(
        precip, temp, pet, kc_columns, root_columns, soils, state, weather_columns=weather_columns
    )
    np.testing.assert_array_equal(shared.sm, copied.sm)
    np.testing.assert_array_equal(shared.frozen, copied.frozen)
    assert not np.array_equal(shared.sm[:, :, 0], shared.sm[:, :, 2 * n_cells - 1])
    with pytest.raises(ValueError, match="weather_columns"):
        run_water_balance(
            precip, temp, pet, kc_columns, root_columns, soils, state, weather_columns=[0, 1]
        )
    with pytest.raises(ValueError, match="weather_columns"):
        run_water_balance(
            precip,
            temp,
            pet,
            kc_columns,
            root_columns,
            soils,
            state,
            weather_columns=weather_columns + n_cells,
        )


def test_run_does_not_modify_the_input_state():
    n = 20
    soils = _soils(n, seed=9)
    state = initial_state(soils, 0.4)
    before = state.soil_water_mm.copy()
    _run("fl_sb", soils, _climate(n, 1, seed=10), state)
    np.testing.assert_array_equal(state.soil_water_mm, before)


@pytest.mark.parametrize("winter_crop", ["ww_mz", "ww_fl"])
def test_winter_crop_dries_profile_in_spring_relative_to_winter_fallow(winter_crop):
    n = 150
    # typical cropland textures (extremely dense clays near wilting point throughout are excluded)
    soils = _soils(n, seed=11, sand_range=(10.0, 70.0), clay_range=(5.0, 35.0))
    climate = _climate(n, 3, seed=12, annual_precip_mm=600.0, spring_dry=True)
    doy = climate[3]
    april_may = (doy >= 91) & (doy <= 151) & (np.arange(doy.size) >= 365)
    profile = {}
    for pattern in (winter_crop, "fl_mz"):
        result = _run(pattern, soils, climate)
        profile[pattern] = result.sm[april_may].sum(axis=1).mean(axis=0) * 100.0  # mm in 0-50 cm
    drier = profile["fl_mz"] - profile[winter_crop]
    assert np.mean(drier) > 10.0  # mm
    assert np.mean(drier > 0) > 0.9


def test_wetter_in_humid_climate_and_clay_soil():
    n = 60
    clay = _uniform_soil(n, 25.0, 50.0)
    sand = _uniform_soil(n, 80.0, 5.0)
    dry = _climate(n, 2, seed=13, annual_precip_mm=350.0)
    humid = _climate(n, 2, seed=13, annual_precip_mm=1300.0, mean_temp_c=16.0)
    means = {}
    for soil_name, soil in (("clay", clay), ("sand", sand)):
        for climate_name, climate in (("dry", dry), ("humid", humid)):
            sm = _run("fl_mz", soil, climate).sm[365:]
            means[soil_name, climate_name] = sm.mean(axis=(0, 2))
    for soil_name in ("clay", "sand"):
        assert np.all(means[soil_name, "humid"] > means[soil_name, "dry"])
    for climate_name in ("dry", "humid"):
        assert np.all(means["clay", climate_name] > means["sand", climate_name])
    layer_means = np.concatenate(list(means.values()))
    assert 0.05 < layer_means.min() and layer_means.max() < 0.45


def test_run_water_balance_validates_inputs():
    n = 10
    soils = _soils(n)
    state = initial_state(soils)
    precip = np.zeros((5, n), np.float32)
    with pytest.raises(ValueError):
        run_water_balance(precip[:, :-1], 0.0, 1.0, 0.5, 20.0, soils, state)
    with pytest.raises(ValueError):
        run_water_balance(precip, np.zeros((5, n + 1)), 1.0, 0.5, 20.0, soils, state)
    with pytest.raises(ValueError):
        run_water_balance(precip - 1.0, 0.0, 1.0, 0.5, 20.0, soils, state)
    bad_precip = precip.copy()
    bad_precip[2, 3] = np.nan
    with pytest.raises(ValueError):
        run_water_balance(bad_precip, 0.0, 1.0, 0.5, 20.0, soils, state)
