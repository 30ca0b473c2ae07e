"""True crop calendars of the virtual China: sown by the weather, grown by thermal time.

The catalog's crop seasons (``cropsm.catalog.seasons()``, read by
:func:`cropsm.twin.soilwater.crop_calendar`) are *nominal* calendars: one national sowing day, fixed
FAO-56 stage lengths, one Kc curve and one maximum rooting depth per crop. They are what a model may
be told. The truth of the virtual China grows the crops differently in every cell and year, as
real crops grow (Liu et al. 2021, section 2b(6): "actual cropping patterns could vary from field to
field and from year to year"):

* **Sowing by the weather.** Spring crops are sown on the first day of their sowing window when the
  trailing 7-day mean air temperature has risen above the crop's threshold (maize and soybean also
  need 5 mm of rain in the trailing 10 days: sowing into moist soil); autumn crops (winter wheat,
  rapeseed) when it has fallen below the threshold; summer crops of a double-cropping pattern
  (summer maize, transplanted cotton) a few days after the winter crop's harvest. A crop is sown
  on the last day of its window whatever the weather, ending a crop still in the field. The window
  is the nominal sowing day +- ``sowing_window_days``. Warmer places and years thus sow spring
  crops earlier and winter crops later.
* **Stages by thermal time.** Growing degree days ``GDD = sum_d min(max(T_d - T_base, 0),
  T_upper - T_base)`` from the daily mean air temperature (McMaster & Wilhelm 1997, method 1)
  drive the FAO-56 stages: the stage boundaries are thermal-time requirements, so a season lasts
  fewer days where and when it is warm. A crop is harvested when it has its total thermal time,
  after 1.5 x its nominal length at most, or, for crops that are not frost hardy (maize, soybean,
  cotton), when the trailing 7-day mean temperature falls below 4 degC (killing frost).
* **Per-cell traits.** Kc_mid (x 1 +- 8 %), the maximum rooting depth (x 1 +- 20 %) and the
  thermal-time requirement (the cultivar, x 1 +- 8 %) vary smoothly in space: seeded random fields
  of 300-1500 km wavelength (:func:`smooth_random_field`), one per season and trait.
* **Kc_mid follows the climate** (FAO-56 Eq. 62, :func:`kc_mid_offsets`): the tabulated Kc_mid
  holds for a sub-humid climate (RHmin 45 %, u2 2 m s-1); each year and cell, the mean wind and
  minimum humidity of the crop's nominal mid-season raise it where it is dry and windy and lower
  it where it is humid and calm.

The thermal-time requirements and sowing thresholds are *calibrated* so that a cell with the
reference climate (:data:`REFERENCE_CLIMATE`, a North China Plain annual cycle) sows on the nominal
day and passes through the nominal stage lengths: the calendars approximate the nominal ones on
average over such cells but never equal them anywhere (:func:`season_thermal_plan`).

All functions are pure and vectorised over cells (columns); :func:`pattern_calendar_year` loops
over the days of one year and carries its state (the crop in the field, its thermal time, the
trailing weather) into the next year, so winter crops cross the new year.

References
----------
Allen, R. G., Pereira, L. S., Raes, D., Smith, M. (1998). Crop evapotranspiration. FAO Irrigation
and Drainage Paper 56, chapter 6 (Kc curve, Eq. 66, Fig. 25), Table 11-12 (stage lengths), p. 163
(rooting depth).
McMaster, G. S., Wilhelm, W. W. (1997). Growing degree-days: one equation, two interpretations.
Agric. For. Meteorol. 87, 291-300.
The paper (``cropsm.paper.CITATION``), section 2b(6).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy.special import ndtr

from cropsm import catalog
from cropsm.twin.soilwater import SOWING_ROOT_DEPTH_CM

__all__ = [
    "REFERENCE_CLIMATE",
    "SEASON_RULES",
    "CalendarState",
    "CalendarYear",
    "ReferenceClimate",
    "SeasonRule",
    "SeasonTraits",
    "ThermalPlan",
    "cell_traits",
    "expected_degree_days",
    "growing_degree_days",
    "initial_calendar_state",
    "nominal_traits",
    "kc_mid_climate_adjustment",
    "kc_mid_offsets",
    "minimum_relative_humidity_pct",
    "nominal_mid_season",
    "pattern_calendar_year",
    "reference_temperature_c",
    "season_thermal_plan",
    "smooth_random_field",
    "take_traits",
    "thermal_kc_and_root",
    "trailing_mean",
    "wind_speed_2m",
]

SOWING_MEAN_DAYS = 7
"""Length of the trailing mean of air temperature that triggers sowing, d."""

SOWING_RAIN_DAYS = 10
"""Length of the trailing precipitation sum of the rain-onset criterion, d."""

FROST_KILL_C = 4.0
"""Trailing 7-day mean air temperature below which a crop that is not frost hardy dies, degC."""

MAX_SEASON_FACTOR = 1.5
"""A season ends after at most this many times its nominal length (days)."""

KC_MID_SPREAD = 0.08
ROOT_DEPTH_SPREAD = 0.20
THERMAL_SPREAD = 0.08
"""Relative standard deviations of the per-cell traits (Kc_mid, Zr_max, thermal requirement)."""


@dataclass(frozen=True)
class ReferenceClimate:
    """An annual cycle of daily mean air temperature with day-to-day noise.

    ``T(doy) = mean_c + amplitude_c cos(2 pi (doy - warmest_doy) / 365)`` plus Gaussian noise of
    standard deviation ``daily_sd_c``.
    """

    mean_c: float
    amplitude_c: float
    warmest_doy: float
    daily_sd_c: float


REFERENCE_CLIMATE = ReferenceClimate(
    mean_c=13.0, amplitude_c=14.0, warmest_doy=200.0, daily_sd_c=3.0
)
"""The climate in which the truth's calendars equal the nominal ones on average: the North China
Plain (annual mean 13 degC, January about -1 degC, late July about 27 degC), where the nominal
dates of the catalog are typical practice."""


@dataclass(frozen=True)
class SeasonRule:
    """How the truth sows and grows one catalog season.

    Attributes
    ----------
    sowing : {"warming", "cooling", "after_previous"}
        ``warming``: first window day whose trailing 7-day mean temperature is at or above the
        threshold; ``cooling``: at or below it; ``after_previous``: ``gap_days`` after the field
        became free (the previous crop's harvest).
    base_temperature_c, upper_temperature_c : float
        Base and upper cut-off temperatures of the degree days, degC.
    sowing_window_days : int
        The window is the nominal sowing day +- this many days.
    sowing_rain_mm : float
        Precipitation needed in the trailing 10 days to sow (rain onset), mm; 0 for none.
    gap_days : int
        ``after_previous``: days between the previous harvest and sowing.
    frost_hardy : bool
        False: the crop dies when the trailing 7-day mean falls below :data:`FROST_KILL_C`.
    crop_height_m : float
        Mid-season crop height ``h`` of the FAO-56 Kc_mid climate adjustment (Table 12), m.
    """

    sowing: Literal["warming", "cooling", "after_previous"]
    base_temperature_c: float
    upper_temperature_c: float
    sowing_window_days: int = 30
    sowing_rain_mm: float = 0.0
    gap_days: int = 0
    frost_hardy: bool = True
    crop_height_m: float = 1.0


SEASON_RULES: dict[str, SeasonRule] = {
    # base temperatures: wheat 0 degC, rapeseed 5 degC, maize/soybean 10 degC, cotton 12 degC
    # (McMaster & Wilhelm 1997; typical crop-model values); upper cut-offs 30-32 degC
    # crop heights of FAO-56 Table 12: wheat 1 m, maize 2 m, soybean 0.75 m, rapeseed 0.6 m,
    # cotton 1.35 m
    "winter_wheat": SeasonRule("cooling", 0.0, 30.0, 30),
    "spring_wheat": SeasonRule("warming", 0.0, 30.0, 30),
    "summer_maize": SeasonRule(
        "after_previous", 10.0, 30.0, 30, gap_days=5, frost_hardy=False, crop_height_m=2.0
    ),
    "spring_maize": SeasonRule(
        "warming", 10.0, 30.0, 30, sowing_rain_mm=5.0, frost_hardy=False, crop_height_m=2.0
    ),
    "soybean": SeasonRule(
        "warming", 10.0, 30.0, 30, sowing_rain_mm=5.0, frost_hardy=False, crop_height_m=0.75
    ),
    "rapeseed": SeasonRule("cooling", 5.0, 30.0, 30, crop_height_m=0.6),
    "summer_cotton": SeasonRule(
        "after_previous", 12.0, 32.0, 30, gap_days=2, frost_hardy=False, crop_height_m=1.35
    ),
}
"""The truth's phenology rule of every catalog season (keys of ``cropsm.catalog.seasons()``)."""


def reference_temperature_c(day_of_year, climate: ReferenceClimate = REFERENCE_CLIMATE):
    """Mean daily air temperature of the reference climate, degC.

    ``T(doy) = T_mean + A cos(2 pi (doy - doy_warmest) / 365)``.
    """
    doy = np.asarray(day_of_year, dtype=float)
    phase = 2.0 * np.pi * (doy - climate.warmest_doy) / 365.0
    return climate.mean_c + climate.amplitude_c * np.cos(phase)


def growing_degree_days(air_temperature_c, base_c: float, upper_c: float) -> np.ndarray:
    """Daily growing degree days from the daily mean temperature, degC d.

    ``GDD = min(max(T - T_base, 0), T_upper - T_base)`` (McMaster & Wilhelm 1997, method 1 with
    an upper cut-off).
    """
    t = np.asarray(air_temperature_c, dtype=float)
    return np.clip(t - base_c, 0.0, upper_c - base_c)


def expected_degree_days(mean_c, sd_c: float, base_c: float, upper_c: float) -> np.ndarray:
    """Expected daily GDD when the daily mean temperature is Gaussian ``N(mu, sigma^2)``.

    With ``E[max(T - c, 0)] = sigma phi(z) + (mu - c) Phi(z)``, ``z = (mu - c) / sigma``
    (the partial expectation of a normal variable):

    ``E[GDD] = E[max(T - T_base, 0)] - E[max(T - T_upper, 0)]``.

    The convexity matters in winter: a day-to-day spread of 3 degC around a mean of 0 degC gives
    1.2 degC d per day above a 0 degC base, not 0.
    """
    mu = np.asarray(mean_c, dtype=float)

    def partial(c: float) -> np.ndarray:
        if sd_c <= 0:
            return np.maximum(mu - c, 0.0)
        z = (mu - c) / sd_c
        return sd_c * np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi) + (mu - c) * ndtr(z)

    return partial(base_c) - partial(upper_c)


@dataclass(frozen=True)
class ThermalPlan:
    """A season's calibrated truth parameters.

    Attributes
    ----------
    season : cropsm.catalog.CropSeason
        The nominal season (sowing day, stage days, Kc, rooting depth).
    rule : SeasonRule
        Its sowing and growth rule.
    sowing_threshold_c : float
        Trailing 7-day mean temperature that triggers sowing (``warming``/``cooling``), degC.
    stage_gdd : tuple of float
        Thermal time of the initial, development, mid and late stages, degC d.
    first_sowing_doy, last_sowing_doy : int
        The sowing window (day of year, within 1-365).
    max_days : float
        Longest season, d.
    """

    season: catalog.CropSeason
    rule: SeasonRule
    sowing_threshold_c: float
    stage_gdd: tuple[float, float, float, float]
    first_sowing_doy: int
    last_sowing_doy: int
    max_days: float

    @property
    def total_gdd(self) -> float:
        return float(sum(self.stage_gdd))


def season_thermal_plan(
    season: catalog.CropSeason,
    rule: SeasonRule | None = None,
    climate: ReferenceClimate = REFERENCE_CLIMATE,
) -> ThermalPlan:
    """Calibrate a season's truth to its nominal calendar under the reference climate.

    * Stage thermal time: ``G_k = sum over the nominal days of stage k of E[GDD(T_ref(d))]``
      (:func:`expected_degree_days`, days counted from the nominal sowing day, across the new
      year), so the reference climate passes through the nominal stage lengths on average.
    * Sowing threshold: the mean of ``T_ref`` over the 7 days ending on the nominal sowing day,
      the value a trailing 7-day mean reaches on that day in the reference climate.

    Parameters
    ----------
    season
        A catalog season.
    rule
        Its rule; default ``SEASON_RULES[season.name]``.
    climate
        The reference climate.
    """
    rule = rule or SEASON_RULES[season.name]
    sow = int(season.sow_doy)
    days = np.arange(sum(season.stage_days))
    doy = (sow - 1 + days) % 365 + 1
    daily = expected_degree_days(
        reference_temperature_c(doy, climate),
        climate.daily_sd_c,
        rule.base_temperature_c,
        rule.upper_temperature_c,
    )
    bounds = np.cumsum((0, *season.stage_days))
    stage_gdd = tuple(float(daily[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:], strict=True))
    before = (sow - 1 - np.arange(SOWING_MEAN_DAYS)) % 365 + 1
    threshold = float(reference_temperature_c(before, climate).mean())
    window = rule.sowing_window_days
    return ThermalPlan(
        season=season,
        rule=rule,
        sowing_threshold_c=threshold,
        stage_gdd=stage_gdd,  # type: ignore[arg-type]
        first_sowing_doy=int(np.clip(sow - window, 1, 365)),
        last_sowing_doy=int(np.clip(sow + window, 1, 365)),
        max_days=MAX_SEASON_FACTOR * float(sum(season.stage_days)),
    )


# --------------------------------------------------------------------------------------------
# Per-cell traits
# --------------------------------------------------------------------------------------------

_KM_PER_DEG_LAT = 110.57
_KM_PER_DEG_LON_35N = 111.32 * np.cos(np.deg2rad(35.0))


def smooth_random_field(
    lat_deg,
    lon_deg,
    seed: int,
    stream: int,
    n_waves: int = 16,
    wavelength_km: tuple[float, float] = (300.0, 1500.0),
) -> np.ndarray:
    """A seeded, spatially smooth random field of zero mean and unit variance at given points.

    A sum of ``K`` plane waves (random Fourier features) in a local metric plane
    (``x = 111.32 cos(35 deg) lon``, ``y = 110.57 lat``, km):

    ``f(x, y) = sqrt(2 / K) sum_k cos(2 pi (x cos a_k + y sin a_k) / lambda_k + phi_k)``

    with directions ``a_k`` and phases ``phi_k`` uniform and wavelengths ``lambda_k``
    log-uniform in ``wavelength_km``. The field depends only on the position, the seed and the
    stream, not on the grid, so a cell has the same value in every preset.

    Parameters
    ----------
    lat_deg, lon_deg : array_like
        Positions, degrees.
    seed, stream : int
        The twin's seed and an integer naming the field.
    """
    rng = np.random.default_rng([seed, 23, stream])
    angle = rng.uniform(0.0, 2.0 * np.pi, n_waves)
    wavelength = np.exp(rng.uniform(*np.log(wavelength_km), n_waves))
    phase = rng.uniform(0.0, 2.0 * np.pi, n_waves)
    x = np.asarray(lon_deg, dtype=float)[..., None] * _KM_PER_DEG_LON_35N
    y = np.asarray(lat_deg, dtype=float)[..., None] * _KM_PER_DEG_LAT
    arg = 2.0 * np.pi * (x * np.cos(angle) + y * np.sin(angle)) / wavelength + phase
    return np.sqrt(2.0 / n_waves) * np.cos(arg).sum(axis=-1)


@dataclass(frozen=True)
class SeasonTraits:
    """Per-cell multipliers of one season's nominal traits, arrays ``(n,)``.

    ``kc_mid = Kc_mid,nominal x kc_mid_factor``, ``Zr_max = Zr_max,nominal x root_factor``,
    stage thermal times ``G_k x thermal_factor``.
    """

    kc_mid_factor: np.ndarray
    root_factor: np.ndarray
    thermal_factor: np.ndarray

    def take(self, index) -> SeasonTraits:
        """The traits of the cells ``index``."""
        return SeasonTraits(
            self.kc_mid_factor[index], self.root_factor[index], self.thermal_factor[index]
        )


def cell_traits(lat_deg, lon_deg, seed: int) -> dict[str, SeasonTraits]:
    """Per-cell traits of every season, from smooth seeded fields (:func:`smooth_random_field`).

    ``factor = clip(1 + s f, 1 - 2 s, 1 + 2 s)`` with ``f`` a unit-variance field and ``s`` the
    spread: 8 % for Kc_mid, 20 % for the maximum rooting depth, 8 % for the thermal-time
    requirement. Independent fields per season and trait.

    Returns
    -------
    dict
        Season name -> :class:`SeasonTraits` of shape ``(n,)`` each.
    """
    out = {}
    for k, name in enumerate(SEASON_RULES):

        def factor(trait: int, spread: float, k: int = k) -> np.ndarray:
            f = smooth_random_field(lat_deg, lon_deg, seed, 100 * (k + 1) + trait)
            return np.clip(1.0 + spread * f, 1.0 - 2.0 * spread, 1.0 + 2.0 * spread)

        out[name] = SeasonTraits(
            kc_mid_factor=factor(0, KC_MID_SPREAD),
            root_factor=factor(1, ROOT_DEPTH_SPREAD),
            thermal_factor=factor(2, THERMAL_SPREAD),
        )
    return out


def nominal_traits(lat_deg, lon_deg=None, seed: int | None = None) -> dict[str, SeasonTraits]:
    """Every season's traits at their nominal value (factor 1) at ``len(lat_deg)`` cells.

    The same call as :func:`cell_traits`, so it can stand in for it
    (``generate_twin(..., traits=nominal_traits)``, ``benchmarks/trait_ceiling.py``).
    """
    one = np.ones(np.asarray(lat_deg).size)
    return {name: SeasonTraits(one, one, one) for name in SEASON_RULES}


def take_traits(traits: dict[str, SeasonTraits], index) -> dict[str, SeasonTraits]:
    """The traits of the cells ``index`` (e.g. the land cell of each water-balance column)."""
    return {name: t.take(index) for name, t in traits.items()}


# --------------------------------------------------------------------------------------------
# FAO-56 climate adjustment of Kc_mid
# --------------------------------------------------------------------------------------------

DIURNAL_RANGE_C = 10.0
"""Diurnal temperature range assumed to estimate the daily maximum from the daily mean, degC."""


def wind_speed_2m(wind_speed_10m) -> np.ndarray:
    """Wind speed at 2 m from 10 m, FAO-56 Eq. 47: ``u2 = u10 4.87 / ln(67.8 x 10 - 5.42)``."""
    return np.asarray(wind_speed_10m, dtype=float) * 4.87 / np.log(67.8 * 10.0 - 5.42)


def saturation_vapour_pressure_kpa(temperature_c) -> np.ndarray:
    """FAO-56 Eq. 11: ``e0(T) = 0.6108 exp(17.27 T / (T + 237.3))`` kPa."""
    t = np.asarray(temperature_c, dtype=float)
    return 0.6108 * np.exp(17.27 * t / (t + 237.3))


def minimum_relative_humidity_pct(air_temperature_c, dewpoint_c) -> np.ndarray:
    """Daily minimum relative humidity, FAO-56 Eq. 63: ``RHmin = 100 e0(T_dew) / e0(T_max)``.

    The daily maximum is estimated as ``T_max = T + DIURNAL_RANGE_C / 2`` from the daily mean
    (the weather holds daily means only). Capped at 100 %.
    """
    t_max = np.asarray(air_temperature_c, dtype=float) + 0.5 * DIURNAL_RANGE_C
    ratio = saturation_vapour_pressure_kpa(dewpoint_c) / saturation_vapour_pressure_kpa(t_max)
    return np.minimum(100.0 * ratio, 100.0)


def kc_mid_climate_adjustment(wind_speed_2m_m_s, rh_min_pct, crop_height_m: float):
    """FAO-56 Eq. 62: the change of the tabulated Kc_mid for a climate other than sub-humid.

    ``dKc = [0.04 (u2 - 2) - 0.004 (RHmin - 45)] (h / 3)^0.3`` with ``u2`` (m s-1) and
    ``RHmin`` (%) the mid-season means, limited to the equation's ranges 1-6 m s-1 and 20-80 %
    (Allen et al. 1998, p. 121). Tabulated Kc values hold for ``u2 = 2`` and ``RHmin = 45``;
    arid, windy places get a higher Kc_mid, humid, calm ones a lower one.
    """
    u2 = np.clip(np.asarray(wind_speed_2m_m_s, dtype=float), 1.0, 6.0)
    rh = np.clip(np.asarray(rh_min_pct, dtype=float), 20.0, 80.0)
    return (0.04 * (u2 - 2.0) - 0.004 * (rh - 45.0)) * (crop_height_m / 3.0) ** 0.3


def nominal_mid_season(season: catalog.CropSeason, day_of_year) -> np.ndarray:
    """True on the days of year inside the season's nominal mid-season stage (FAO-56 dates).

    ``L_ini + L_dev <= (doy - sow_doy) mod 365 < L_ini + L_dev + L_mid``.
    """
    t = np.mod(np.asarray(day_of_year, dtype=int) - season.sow_doy, 365)
    start = season.stage_days[0] + season.stage_days[1]
    return (t >= start) & (t < start + season.stage_days[2])


def kc_mid_offsets(
    pattern_id: str, day_of_year, air_temperature_c, dewpoint_c, wind_speed_10m
) -> dict[str, np.ndarray]:
    """Eq. 62 adjustment of each season of a pattern in each column, from one year's weather.

    Means over the season's nominal mid-season days of that year (:func:`nominal_mid_season`)
    of ``u2`` (:func:`wind_speed_2m`) and ``RHmin`` (:func:`minimum_relative_humidity_pct`),
    then :func:`kc_mid_climate_adjustment`. Arrays ``(n_days, n)``; returns season -> ``(n,)``.
    """
    u2 = wind_speed_2m(wind_speed_10m)
    rh = minimum_relative_humidity_pct(air_temperature_c, dewpoint_c)
    out = {}
    for season in _pattern(pattern_id).seasons:
        mid = nominal_mid_season(season, day_of_year)
        if not mid.any():
            out[season.name] = np.zeros(u2.shape[1])
            continue
        out[season.name] = kc_mid_climate_adjustment(
            u2[mid].mean(axis=0), rh[mid].mean(axis=0), SEASON_RULES[season.name].crop_height_m
        )
    return out


# --------------------------------------------------------------------------------------------
# Kc and rooting depth from thermal time
# --------------------------------------------------------------------------------------------


def thermal_kc_and_root(
    thermal_time, plan: ThermalPlan, traits: SeasonTraits
) -> tuple[np.ndarray, np.ndarray]:
    """FAO-56 Kc curve and rooting depth as functions of thermal time since sowing.

    With ``g`` the degree days since sowing and the cell's stage requirements
    ``G_k = G_k,plan x thermal_factor`` (cumulative ``B_1 = G_ini``, ``B_2 = B_1 + G_dev``,
    ``B_3 = B_2 + G_mid``, ``B_4 = B_3 + G_late``), as FAO-56 Eq. 66 / Fig. 25 with thermal time in
    place of days:

    * ``Kc = Kc_ini`` for ``g < B_1``;
    * ``Kc = Kc_ini + (g - B_1) / G_dev (Kc_mid - Kc_ini)`` for ``B_1 <= g < B_2``;
    * ``Kc = Kc_mid`` for ``B_2 <= g < B_3``;
    * ``Kc = Kc_mid + min((g - B_3) / G_late, 1) (Kc_end - Kc_mid)`` beyond,

    with the cell's ``Kc_mid = Kc_mid,nominal x kc_mid_factor``; rooting depth
    ``Zr = Zr_min + (Zr_max - Zr_min) min(g / B_2, 1)`` with ``Zr_max = Zr_max,nominal x
    root_factor`` (FAO-56, p. 164; ``Zr_min`` = 10 cm).

    Returns
    -------
    kc, root_depth_cm : numpy.ndarray
        Same shape as ``thermal_time``.
    """
    g = np.asarray(thermal_time, dtype=float)
    kc_ini, kc_mid_nominal, kc_end = plan.season.kc
    kc_mid = kc_mid_nominal * traits.kc_mid_factor
    g_ini, g_dev, g_mid, g_late = (s * traits.thermal_factor for s in plan.stage_gdd)
    b1 = g_ini
    b2 = b1 + g_dev
    b3 = b2 + g_mid
    develop = np.clip((g - b1) / g_dev, 0.0, 1.0)
    late = np.clip((g - b3) / g_late, 0.0, 1.0)
    kc = np.where(
        g < b2,
        kc_ini + develop * (kc_mid - kc_ini),
        np.where(g < b3, kc_mid, kc_mid + late * (kc_end - kc_mid)),
    )
    zr_max = plan.season.root_depth_max_cm * traits.root_factor
    root = SOWING_ROOT_DEPTH_CM + (zr_max - SOWING_ROOT_DEPTH_CM) * np.clip(g / b2, 0.0, 1.0)
    return kc, root


# --------------------------------------------------------------------------------------------
# A pattern's calendar, day by day, one year at a time
# --------------------------------------------------------------------------------------------


def trailing_mean(values: np.ndarray, window: int, tail: np.ndarray | None = None) -> np.ndarray:
    """Trailing mean over ``window`` days (day ``d`` and the ``window - 1`` before), axis 0.

    ``tail`` holds the ``window - 1`` days before the first (previous year's last days); without
    it the first days average over the days available.
    """
    values = np.asarray(values, dtype=float)
    if tail is not None and len(tail):
        full = np.concatenate([np.asarray(tail, dtype=float), values], axis=0)
        lead = len(tail)
    else:
        full, lead = values, 0
    csum = np.empty((len(full) + 1,) + full.shape[1:])
    csum[0] = 0.0
    np.cumsum(full, axis=0, out=csum[1:])
    end = np.arange(lead + 1, lead + len(values) + 1)  # sums over rows [start, end) of full
    start = np.maximum(end - window, 0)
    out = csum[end[0] : end[-1] + 1].copy() if len(end) else np.zeros((0,) + full.shape[1:])
    later = np.flatnonzero(start > 0)
    if later.size:  # start = end - window there: one contiguous block of csum
        k = later[0]
        out[k:] -= csum[start[k] : start[-1] + 1]
    out /= (end - start).reshape((-1,) + (1,) * (full.ndim - 1))
    return out


@dataclass
class CalendarState:
    """What one pattern's calendar carries from one day (and year) to the next, arrays ``(n,)``.

    Attributes
    ----------
    active : numpy.ndarray of int
        Index of the season in the field (the pattern's season order), -1 when fallow.
    thermal_time : numpy.ndarray
        Degree days since the sowing of the crop in the field, degC d.
    days_in_field : numpy.ndarray
        Days since that sowing.
    days_free : numpy.ndarray
        Days since the field became free (the last harvest).
    sown : numpy.ndarray of bool, shape (n_seasons, n)
        Whether the season was sown in its current sowing window.
    temperature_tail, precipitation_tail : numpy.ndarray
        The last days of air temperature (degC) and precipitation (mm), for the trailing sums.
    """

    active: np.ndarray
    thermal_time: np.ndarray
    days_in_field: np.ndarray
    days_free: np.ndarray
    sown: np.ndarray
    temperature_tail: np.ndarray
    precipitation_tail: np.ndarray

    def copy(self) -> CalendarState:
        return replace(
            self,
            active=self.active.copy(),
            thermal_time=self.thermal_time.copy(),
            days_in_field=self.days_in_field.copy(),
            days_free=self.days_free.copy(),
            sown=self.sown.copy(),
            temperature_tail=self.temperature_tail.copy(),
            precipitation_tail=self.precipitation_tail.copy(),
        )


def initial_calendar_state(pattern_id: str, n: int) -> CalendarState:
    """A fallow field with no weather history (``n`` columns)."""
    n_seasons = len(_pattern(pattern_id).seasons)
    return CalendarState(
        active=np.full(n, -1, dtype=np.int8),
        thermal_time=np.zeros(n),
        days_in_field=np.zeros(n),
        days_free=np.full(n, 365.0),
        sown=np.zeros((n_seasons, n), dtype=bool),
        temperature_tail=np.zeros((0, n)),
        precipitation_tail=np.zeros((0, n)),
    )


def _pattern(pattern_id: str) -> catalog.Pattern:
    by_id = {p.id: p for p in catalog.patterns()}
    if pattern_id not in by_id:
        raise KeyError(f"unknown pattern {pattern_id!r}; expected one of {tuple(by_id)}")
    return by_id[pattern_id]


@dataclass(frozen=True)
class CalendarYear:
    """One year of a pattern's true calendar.

    Attributes
    ----------
    kc, root_depth_cm : numpy.ndarray, shape (n_days, n)
        Daily crop coefficient (-) and rooting depth (cm), fallow values between seasons.
    sowing_doy : dict
        Season name -> ``(n,)`` day of year the season was sown this year (NaN: not sown).
    season_days : dict
        Season name -> ``(n,)`` length in days of the season that ended this year (NaN: none).
    state : CalendarState
        The state at the end of the year, to pass to the next year.
    """

    kc: np.ndarray
    root_depth_cm: np.ndarray
    sowing_doy: dict
    season_days: dict
    state: CalendarState


# rows of the per-column parameter table of a season (see _season_columns)
_BASE, _UPPER, _B1, _B2, _B3, _B4 = range(6)
_KC_INI, _KC_MID, _KC_END, _ZR_MAX, _MAX_DAYS, _TENDER = range(6, 12)
_FALLOW_COLUMNS = np.array(
    [0.0, 0.0, np.inf, np.inf, np.inf, np.inf, 0.0, 0.0, 0.0, 0.0, np.inf, 0.0]
)


def _season_columns(
    plan: ThermalPlan, traits: SeasonTraits, n: int, kc_mid_offset=0.0
) -> np.ndarray:
    """A season's parameters for each column, ``(12, n)``: base and upper temperature, the
    cumulative stage thermal times ``B_1..B_4`` (x thermal factor), Kc ini, Kc_mid (x factor,
    + ``kc_mid_offset``, the climate adjustment), Kc end, Zr_max (x factor), the longest season
    (d), and 1 when a killing frost (trailing 7-day mean below ``FROST_KILL_C``) ends it, else 0."""
    stages = np.cumsum(plan.stage_gdd)[:, None] * np.broadcast_to(traits.thermal_factor, (n,))
    kc_ini, kc_mid, kc_end = plan.season.kc
    rows = [
        np.full(n, plan.rule.base_temperature_c),
        np.full(n, plan.rule.upper_temperature_c),
        *stages,
        np.full(n, kc_ini),
        kc_mid * np.broadcast_to(traits.kc_mid_factor, (n,)) + kc_mid_offset,
        np.full(n, kc_end),
        plan.season.root_depth_max_cm * np.broadcast_to(traits.root_factor, (n,)),
        np.full(n, plan.max_days),
        np.full(n, 0.0 if plan.rule.frost_hardy else 1.0),
    ]
    return np.stack(rows).astype(float)


def _kc_and_root(thermal_time: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`thermal_kc_and_root` on a per-column parameter table ``p`` (``_season_columns``)."""
    g = thermal_time
    with np.errstate(invalid="ignore", divide="ignore"):
        develop = np.clip((g - p[_B1]) / (p[_B2] - p[_B1]), 0.0, 1.0)
        late = np.clip((g - p[_B3]) / (p[_B4] - p[_B3]), 0.0, 1.0)
        rooting = np.clip(g / p[_B2], 0.0, 1.0)
    kc = np.where(
        g < p[_B2],
        p[_KC_INI] + develop * (p[_KC_MID] - p[_KC_INI]),
        p[_KC_MID] + late * (p[_KC_END] - p[_KC_MID]),
    )
    root = SOWING_ROOT_DEPTH_CM + (p[_ZR_MAX] - SOWING_ROOT_DEPTH_CM) * rooting
    return kc, root


def pattern_calendar_year(
    pattern_id: str,
    day_of_year,
    air_temperature_c,
    precip_mm,
    traits: dict[str, SeasonTraits],
    state: CalendarState | None = None,
    climate: ReferenceClimate = REFERENCE_CLIMATE,
    kc_mid_offset: dict[str, np.ndarray] | None = None,
) -> CalendarYear:
    """One year of a pattern's true daily Kc and rooting depth in every column.

    Each day, in this order (vectorised over columns):

    1. the crop in the field gains ``GDD_d`` (:func:`growing_degree_days` with its base and
       upper temperatures) and a day;
    2. it is harvested when ``g >= sum_k G_k x thermal_factor``, when it has been in the field
       :data:`MAX_SEASON_FACTOR` x its nominal length, or, if not frost hardy, when the trailing
       7-day mean temperature ``T7 < 4 degC``;
    3. a season whose window is open and that was not yet sown in this window is sown when the
       field is free (or its crop is in the late-season stage, and is then harvested: farmers
       harvest the summer crop at maturity when the winter crop is due; not for
       ``after_previous``) and its trigger holds (``warming``: ``T7 >= T_sow`` and, if required,
       ``P10 >= P_sow``; ``cooling``: ``T7 <= T_sow``; ``after_previous``: free for
       ``gap_days``),
       or on the last day of the window regardless (ending the crop in the field);
    4. Kc and the rooting depth follow from the crop's thermal time (:func:`thermal_kc_and_root`);
       a free field has the catalog's fallow Kc and rooting depth.

    Parameters
    ----------
    pattern_id
        One of ``cropsm.catalog.pattern_ids()``.
    day_of_year : array_like of int, shape (n_days,)
        Consecutive days of one year (1-366).
    air_temperature_c, precip_mm : array_like, shape (n_days, n)
        Daily mean air temperature (degC) and precipitation (mm) of each column.
    traits
        Season name -> :class:`SeasonTraits` of the columns (:func:`cell_traits`).
    state
        The previous year's final state; None for a fallow start.
    climate
        The reference climate of the calibration (:func:`season_thermal_plan`).
    kc_mid_offset
        Season name -> ``(n,)`` added to each column's Kc_mid this year, e.g. the FAO-56 climate
        adjustment :func:`kc_mid_offsets`; none by default.

    Returns
    -------
    CalendarYear
    """
    pattern = _pattern(pattern_id)
    doy = np.asarray(day_of_year, dtype=int)
    tair = np.asarray(air_temperature_c, dtype=float)
    precip = np.asarray(precip_mm, dtype=float)
    if tair.ndim != 2 or tair.shape != precip.shape or tair.shape[0] != doy.shape[0]:
        raise ValueError(
            "pattern_calendar_year: air_temperature_c and precip_mm must both be (n_days, n) "
            f"with n_days = len(day_of_year); got {tair.shape}, {precip.shape}, {doy.shape}"
        )
    n_days, n = tair.shape
    st = initial_calendar_state(pattern_id, n) if state is None else state.copy()
    plans = [season_thermal_plan(s, climate=climate) for s in pattern.seasons]
    fallow = catalog.fallow()
    fallow_kc, fallow_root = float(fallow["kc"]), float(fallow["root_depth_cm"])
    # every season's per-column parameters, rows (season, column)
    offsets = kc_mid_offset or {}
    per_season = np.stack(
        [
            _season_columns(p, traits[p.season.name], n, offsets.get(p.season.name, 0.0))
            for p in plans
        ],
        axis=1,
    )
    names = [p.season.name for p in plans]

    t7 = trailing_mean(tair, SOWING_MEAN_DAYS, st.temperature_tail)
    p10 = trailing_mean(precip, SOWING_RAIN_DAYS, st.precipitation_tail) * SOWING_RAIN_DAYS

    kc = np.empty((n_days, n), dtype=np.float32)
    root = np.empty((n_days, n), dtype=np.float32)
    sowing = {name: np.full(n, np.nan) for name in names}
    lengths = {name: np.full(n, np.nan) for name in names}
    active, g, days, free_days, sown = (
        st.active,
        st.thermal_time,
        st.days_in_field,
        st.days_free,
        st.sown,
    )
    # the parameters of the crop in the field, per column (fallow: never harvested, no GDD)
    current = _FALLOW_COLUMNS[:, None].repeat(n, axis=1)
    for s in range(len(plans)):
        np.copyto(current, per_season[:, s], where=active == s)
    for d in range(n_days):
        day = int(doy[d])
        growing = active >= 0
        # 1-2: grow and harvest the crop in the field
        gdd_d = np.clip(tair[d] - current[_BASE], 0.0, current[_UPPER] - current[_BASE])
        g += gdd_d * growing
        days += growing
        done = growing & (
            (g >= current[_B4])
            | (days >= current[_MAX_DAYS])
            | ((current[_TENDER] > 0) & (t7[d] < FROST_KILL_C))
        )
        if done.any():
            for s, name in enumerate(names):
                ended = done & (active == s)
                lengths[name][ended] = days[ended]
            active[done] = -1
            free_days[done] = 0.0
            current[:, done] = _FALLOW_COLUMNS[:, None]
            growing &= ~done
        free_days += ~growing
        # 3: sowing
        for s, plan in enumerate(plans):
            if day == plan.first_sowing_doy:
                sown[s] = False
            if not plan.first_sowing_doy <= day <= plan.last_sowing_doy:
                continue
            rule = plan.rule
            if rule.sowing == "warming":
                ready = t7[d] >= plan.sowing_threshold_c
                if rule.sowing_rain_mm > 0:
                    ready &= p10[d] >= rule.sowing_rain_mm
                available = ~growing | ((active != s) & (g >= current[_B3]))
            elif rule.sowing == "cooling":
                ready = t7[d] <= plan.sowing_threshold_c
                available = ~growing | ((active != s) & (g >= current[_B3]))
            else:  # after the previous crop's harvest, never cutting it short
                ready = free_days >= rule.gap_days
                available = ~growing
            sow = ~sown[s] & ((available & ready) | (day == plan.last_sowing_doy))
            if not sow.any():
                continue
            ending = sow & growing
            for other, name in enumerate(names):
                cut = ending & (active == other)
                lengths[name][cut] = days[cut]
            active[sow] = s
            free_days[sow] = 0.0
            g[sow] = 0.0
            days[sow] = 0.0
            sown[s, sow] = True
            sowing[plan.season.name][sow] = day
            np.copyto(current, per_season[:, s], where=sow)
            growing = active >= 0
        # 4: Kc and rooting depth (thermal_kc_and_root on the current parameters)
        kc_d, root_d = _kc_and_root(g, current)
        kc[d] = np.where(growing, kc_d, fallow_kc)
        root[d] = np.where(growing, root_d, fallow_root)

    keep_t = max(SOWING_MEAN_DAYS - 1, 0)
    keep_p = max(SOWING_RAIN_DAYS - 1, 0)
    # copies: a slice would keep the whole concatenated year alive in the state
    st.temperature_tail = np.concatenate([st.temperature_tail, tair], axis=0)[-keep_t:].copy()
    st.precipitation_tail = np.concatenate([st.precipitation_tail, precip], axis=0)[-keep_p:].copy()
    return CalendarYear(kc=kc, root_depth_cm=root, sowing_doy=sowing, season_days=lengths, state=st)
