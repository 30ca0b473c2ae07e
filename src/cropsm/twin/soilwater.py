"""Process-based daily soil water balance of five 10-cm layers (0-50 cm): the virtual China's truth.

The model is a daily "bucket cascade" in the spirit of FAO-56 (Allen et al. 1998) and of the
layered tipping-bucket schemes of crop models (e.g. AquaCrop, Raes et al. 2009), driven by
precipitation, air temperature and reference evapotranspiration, for many independent soil
columns at once (numpy, vectorised over columns; one Python step per day).

One day, in this order:

1. **Snow** - precipitation falls as snow below ``snow_all_below_c`` and as rain above
   ``rain_all_above_c`` with a linear ramp in between; the pack melts with a degree-day factor and
   sublimates at a fraction of the reference evapotranspiration.
2. **Frozen soil** - a slow soil-temperature proxy (exponential smoothing of air temperature with a
   ~10-day time constant, slowed down under an insulating snow pack) sets an unfrozen fraction that
   limits infiltration and scales drainage, capillary redistribution, evaporation and uptake.
3. **Infiltration and runoff** - rain plus melt infiltrates up to a daily capacity (empty pore
   space of the top layer plus its saturated conductivity over an effective storm duration);
   the rest is infiltration-excess runoff. Infiltrated water fills the layers top-down up to
   saturation; water that the saturated profile cannot hold leaves through the bottom (at most the
   bottom layer's conductivity) or, beyond that, is saturation-excess runoff.
4. **Gravity drainage** - water above field capacity drains layer by layer, top-down, at the
   Campbell (1974) / Saxton & Rawls (2006, Eq. 17) unsaturated conductivity, never below field
   capacity within a step and never above saturation of the receiving layer; the bottom layer's
   drainage leaves the 50-cm profile.
5. **Capillary redistribution** - a slow diffusion of relative saturation between neighbouring
   layers (wetting of a dried top layer from below, and downward spreading of a wetting front
   below field capacity).
6. **Evapotranspiration** - reference ET x Kc split FAO-56 style (Eqs. 71-77) into transpiration
   (basal coefficient ``Kc x f_c`` with the canopy cover fraction ``f_c`` growing with Kc; root-
   weighted uptake from the layers inside the root zone, reduced by a water-stress factor between
   wilting point and the readily-available-water threshold, FAO-56 Eq. 84) and bare-soil
   evaporation (``Ke = Kr min(Kc_max - Kcb, (1 - f_c) Kc_max)``, drawn mostly from the top layer
   and a little from the second while the surface is moist, reduced as they dry, FAO-56 Eq. 74).
   Right after rain a sparsely covered soil thus evaporates up to ``Kc_max ET0``; as it dries the
   ET falls towards the basal (transpiration) part, so the average over a wetting cycle is the
   FAO-56 single Kc behaviour.

No layer ever goes below its residual water content or above saturation: every flux is limited by
the water available in its source and the space available in its sink, so the balance
``P - runoff - ET - drainage - storage change = 0`` closes to rounding error.

Units: water amounts in mm (= kg m-2) per layer, fluxes in mm d-1, volumetric contents in m3 m-3,
temperatures in degC.

References
----------
Allen, R. G., Pereira, L. S., Raes, D., Smith, M. (1998). Crop evapotranspiration: guidelines for
computing crop water requirements. FAO Irrigation and Drainage Paper 56, Rome.
Campbell, G. S. (1974). A simple method for determining unsaturated conductivity from moisture
retention data. Soil Science 117, 311-314.
Raes, D., Steduto, P., Hsiao, T. C., Fereres, E. (2009). AquaCrop - the FAO crop model to simulate
yield response to water: II. Main algorithms and software description. Agron. J. 101, 438-447.
Saxton, K. E., Rawls, W. J. (2006). Soil water characteristic estimates by texture and organic
matter for hydrologic solutions. Soil Sci. Soc. Am. J. 70, 1569-1578.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cropsm import LAYER_BOTTOM_CM, LAYER_TOP_CM, N_LAYERS, catalog
from cropsm.features.water_balance import saxton_rawls_retention

__all__ = [
    "DEFAULT_PARAMETERS",
    "SOWING_ROOT_DEPTH_CM",
    "SoilHydraulics",
    "WaterBalanceParameters",
    "WaterBalanceResult",
    "WaterBalanceState",
    "crop_calendar",
    "initial_state",
    "layer_thickness_mm",
    "root_uptake_fractions",
    "run_water_balance",
    "saxton_rawls",
    "season_curve",
]

MINERAL_PARTICLE_DENSITY_G_CM3 = 2.65
"""Particle density of mineral soil used by Saxton & Rawls (2006, Eqs. 6-8), g cm-3."""

RESIDUAL_FRACTION_OF_WILTING_POINT = 0.5
"""Residual (air-dry) water content as a fraction of the wilting point (FAO-56, p. 144: the
surface layer can dry by evaporation to about half the wilting point)."""

SOWING_ROOT_DEPTH_CM = 10.0
"""Effective rooting depth at sowing, cm (FAO-56 Zr,min, 0.10-0.15 m)."""

_MIN_GAP_M3_M3 = 0.03
"""Smallest gaps kept between wilting point, field capacity and saturation, m3 m-3."""


def layer_thickness_mm() -> np.ndarray:
    """Thickness of the five soil layers in mm (100 mm each for 0-50 cm)."""
    return 10.0 * (np.asarray(LAYER_BOTTOM_CM, float) - np.asarray(LAYER_TOP_CM, float))


# --------------------------------------------------------------------------------------------
# Soil hydraulic properties
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoilHydraulics:
    """Hydraulic properties of soil columns, every array of shape ``(n_columns, 5)``.

    Attributes
    ----------
    residual : numpy.ndarray
        Residual (air-dry) volumetric water content theta_r, m3 m-3.
    wilting_point : numpy.ndarray
        Volumetric water content at 1500 kPa, m3 m-3.
    field_capacity : numpy.ndarray
        Volumetric water content at 33 kPa, m3 m-3.
    saturation : numpy.ndarray
        Saturated volumetric water content theta_s (about the porosity), m3 m-3.
    ksat_mm_day : numpy.ndarray
        Saturated hydraulic conductivity, mm d-1.

    Notes
    -----
    Valid properties satisfy ``0 < residual < wilting_point < field_capacity < saturation < 1``
    and ``ksat_mm_day > 0``; :func:`run_water_balance` checks this.
    """

    residual: np.ndarray
    wilting_point: np.ndarray
    field_capacity: np.ndarray
    saturation: np.ndarray
    ksat_mm_day: np.ndarray

    @property
    def n_columns(self) -> int:
        """Number of soil columns."""
        return int(np.shape(self.saturation)[0])

    def campbell_b(self) -> np.ndarray:
        """Campbell (1974) retention exponent B from the 33 and 1500 kPa points, shape (n, 5).

        ``B = [ln(1500) - ln(33)] / [ln(theta_33) - ln(theta_1500)]`` (Saxton & Rawls 2006, Eq. 15).
        """
        return np.log(1500.0 / 33.0) / np.log(
            np.asarray(self.field_capacity, float) / np.asarray(self.wilting_point, float)
        )


def saxton_rawls(
    sand_pct,
    clay_pct,
    organic_matter_pct=1.5,
    bulk_density_g_cm3=None,
) -> SoilHydraulics:
    """Soil hydraulic properties from texture by the Saxton & Rawls (2006) pedotransfer functions.

    With ``S`` and ``C`` the sand and clay mass fractions (0-1) and ``OM`` organic matter in %w:

    * Eq. 1, wilting point: ``t = -0.024 S + 0.487 C + 0.006 OM + 0.005 S OM - 0.013 C OM
      + 0.068 S C + 0.031``; ``theta_1500 = t + (0.14 t - 0.02)``
    * Eq. 2, field capacity: ``t = -0.251 S + 0.195 C + 0.011 OM + 0.006 S OM - 0.027 C OM
      + 0.452 S C + 0.299``; ``theta_33 = t + (1.283 t^2 - 0.374 t - 0.015)``
    * Eq. 3, saturation minus field capacity: ``t = 0.278 S + 0.034 C + 0.022 OM - 0.018 S OM
      - 0.027 C OM - 0.584 S C + 0.078``; ``theta_(S-33) = t + (0.636 t - 0.107)``
    * Eq. 5, saturation: ``theta_S = theta_33 + theta_(S-33) - 0.097 S + 0.043``
    * Eq. 6, normal (matric) density: ``rho_N = (1 - theta_S) 2.65``
    * Eqs. 7-10, density adjustment when a bulk density ``rho`` is given: ``DF = rho / rho_N``
      (limited to the paper's range 0.9-1.3), ``theta_S,DF = 1 - rho_N DF / 2.65``,
      ``theta_33,DF = theta_33 - 0.2 (theta_S - theta_S,DF)``; the wilting point is unchanged
    * Eqs. 15-16, moisture-conductivity: ``B = ln(1500/33) / (ln theta_33 - ln theta_1500)``,
      ``lambda = 1/B``, ``K_s = 1930 (theta_S - theta_33)^(3 - lambda)`` mm h-1

    The residual water content, not part of Saxton & Rawls, is taken as
    ``theta_r = 0.5 theta_1500`` (the air-dry limit of FAO-56 for evaporation).

    Parameters
    ----------
    sand_pct, clay_pct : array_like
        Sand and clay content, % by mass, broadcastable to ``(n_columns, 5)``; each in 0-100 and
        ``sand + clay <= 100``.
    organic_matter_pct : array_like, optional
        Organic matter, % by mass (default 1.5 %, a typical cropland topsoil). Values above 8 %
        (the equations' fitted range) are clipped to 8 %.
    bulk_density_g_cm3 : array_like, optional
        Bulk density, g cm-3; when given, the density adjustment (Eqs. 7-10) is applied.

    Returns
    -------
    SoilHydraulics
        Arrays of shape ``broadcast(sand, clay, om, rho)``, float64, with ``ksat_mm_day`` in
        mm d-1 (= 24 x mm h-1).

    Raises
    ------
    ValueError
        If a texture value is not finite, outside 0-100 %, or sand + clay exceeds 100 %.

    Notes
    -----
    To keep the properties physically ordered for extreme inputs (very dense clays), the results
    are bounded so that ``wp >= 0.01``, ``fc - wp >= 0.03`` and ``sat - fc >= 0.03`` m3 m-3
    (field capacity is lowered first, then the wilting point), before Ks is computed.

    References
    ----------
    Saxton, K. E., Rawls, W. J. (2006). Soil water characteristic estimates by texture and organic
    matter for hydrologic solutions. Soil Sci. Soc. Am. J. 70, 1569-1578.
    """
    sand_pct, clay_pct, om_pct = np.broadcast_arrays(
        np.asarray(sand_pct, float),
        np.asarray(clay_pct, float),
        np.asarray(organic_matter_pct, float),
    )
    for name, values in (("sand_pct", sand_pct), ("clay_pct", clay_pct)):
        if not np.all(np.isfinite(values)) or np.any(values < 0.0) or np.any(values > 100.0):
            raise ValueError(f"saxton_rawls: {name} must be finite and within 0-100 %")
    if np.any(sand_pct + clay_pct > 100.0 + 1e-6):
        raise ValueError("saxton_rawls: sand_pct + clay_pct must not exceed 100 %")
    if not np.all(np.isfinite(om_pct)) or np.any(om_pct < 0.0):
        raise ValueError("saxton_rawls: organic_matter_pct must be finite and >= 0 %")

    s = sand_pct / 100.0
    c = clay_pct / 100.0
    om = np.minimum(om_pct, 8.0)

    # Eqs. 1-2: wilting point (1500 kPa) and field capacity (33 kPa)
    theta_1500, theta_33 = saxton_rawls_retention(s, c, om)
    # Eq. 3: saturation - field capacity
    ts33 = 0.278 * s + 0.034 * c + 0.022 * om - 0.018 * s * om - 0.027 * c * om
    ts33 = ts33 - 0.584 * s * c + 0.078
    theta_s33 = ts33 + (0.636 * ts33 - 0.107)
    # Eq. 5: saturation
    theta_s = theta_33 + theta_s33 - 0.097 * s + 0.043

    if bulk_density_g_cm3 is not None:
        rho = np.asarray(bulk_density_g_cm3, float)
        if not np.all(np.isfinite(rho)) or np.any(rho <= 0.0):
            raise ValueError("saxton_rawls: bulk_density_g_cm3 must be finite and > 0")
        # Eq. 6: normal density; Eqs. 7-10: density adjustment
        rho_normal = (1.0 - theta_s) * MINERAL_PARTICLE_DENSITY_G_CM3
        density_factor = np.clip(rho / rho_normal, 0.9, 1.3)
        theta_s_df = 1.0 - rho_normal * density_factor / MINERAL_PARTICLE_DENSITY_G_CM3
        theta_33 = theta_33 - 0.2 * (theta_s - theta_s_df)
        theta_s = theta_s_df
        theta_1500, theta_33, theta_s = np.broadcast_arrays(theta_1500, theta_33, theta_s)

    # physical ordering safeguards (see Notes)
    theta_s = np.clip(theta_s, 0.25, 0.70)
    theta_33 = np.minimum(theta_33, theta_s - _MIN_GAP_M3_M3)
    theta_33 = np.maximum(theta_33, 0.01 + _MIN_GAP_M3_M3)
    theta_1500 = np.clip(theta_1500, 0.01, theta_33 - _MIN_GAP_M3_M3)

    # Eqs. 15-16: Campbell B, pore-size index lambda and saturated conductivity
    b = np.log(1500.0 / 33.0) / (np.log(theta_33) - np.log(theta_1500))
    pore_size_index = 1.0 / b
    ksat_mm_h = 1930.0 * (theta_s - theta_33) ** (3.0 - pore_size_index)

    return SoilHydraulics(
        residual=np.asarray(RESIDUAL_FRACTION_OF_WILTING_POINT * theta_1500),
        wilting_point=np.array(theta_1500),
        field_capacity=np.array(theta_33),
        saturation=np.array(theta_s),
        ksat_mm_day=np.asarray(24.0 * ksat_mm_h),
    )


# --------------------------------------------------------------------------------------------
# Crop calendar
# --------------------------------------------------------------------------------------------


def season_curve(
    season: catalog.CropSeason, day_of_year: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FAO-56 single crop coefficient curve and rooting depth of one crop season.

    With ``t`` the days since sowing, ``t = (doy - sow_doy) mod 365`` (so a season may cross the new
    year), and stage lengths ``L_ini, L_dev, L_mid, L_late`` (Allen et al. 1998, Fig. 25, Eq. 66):

    * ``Kc = Kc_ini`` for ``t < L_ini``;
    * ``Kc = Kc_ini + (t - L_ini) / L_dev (Kc_mid - Kc_ini)`` during development;
    * ``Kc = Kc_mid`` during mid-season;
    * ``Kc = Kc_mid + (t - L_ini - L_dev - L_mid) / L_late (Kc_end - Kc_mid)`` during late season.

    The rooting depth grows linearly from ``Zr_min`` = 10 cm at sowing to ``Zr_max`` at the end of
    the development stage and stays there (FAO-56, p. 164):
    ``Zr = Zr_min + (Zr_max - Zr_min) min(t / (L_ini + L_dev), 1)``.

    Parameters
    ----------
    season : cropsm.catalog.CropSeason
        Sowing day, stage lengths (days), Kc (ini, mid, end) and maximum rooting depth (cm).
    day_of_year : array_like of int
        Day of year, 1-366.

    Returns
    -------
    kc : numpy.ndarray
        Crop coefficient (-) where in season, undefined (NaN) elsewhere.
    root_depth_cm : numpy.ndarray
        Rooting depth, cm, where in season, NaN elsewhere.
    in_season : numpy.ndarray of bool
        True from the sowing day to the day before harvest.

    References
    ----------
    Allen, R. G., Pereira, L. S., Raes, D., Smith, M. (1998). Crop evapotranspiration. FAO
    Irrigation and Drainage Paper 56, chapters 6 and 8.
    """
    doy = np.asarray(day_of_year)
    t = np.mod(doy.astype(float) - season.sow_doy, 365.0)
    l_ini, l_dev, l_mid, l_late = (float(d) for d in season.stage_days)
    kc_ini, kc_mid, kc_end = season.kc
    end_dev = l_ini + l_dev
    end_mid = end_dev + l_mid
    end_late = end_mid + l_late
    kc = np.select(
        [t < l_ini, t < end_dev, t < end_mid, t < end_late],
        [
            np.full_like(t, kc_ini),
            kc_ini + (t - l_ini) / l_dev * (kc_mid - kc_ini),
            np.full_like(t, kc_mid),
            kc_mid + (t - end_mid) / l_late * (kc_end - kc_mid),
        ],
        default=np.nan,
    )
    zr_max = season.root_depth_max_cm
    root = SOWING_ROOT_DEPTH_CM + (zr_max - SOWING_ROOT_DEPTH_CM) * np.minimum(t / end_dev, 1.0)
    in_season = t < end_late
    return kc, np.where(in_season, root, np.nan), in_season


def crop_calendar(pattern_id: str, day_of_year) -> tuple[np.ndarray, np.ndarray]:
    """Daily crop coefficient and rooting depth of a cropping pattern (FAO-56 single Kc).

    Each season of the pattern (``cropsm.catalog.patterns()``) contributes its FAO-56 curve
    (:func:`season_curve`); days outside every season are fallow with the constant
    ``cropsm.catalog.fallow()`` crop coefficient and rooting depth. Where two seasons overlap
    (e.g. rapeseed sown on 1 Oct before the cotton's nominal harvest), the crop sown most recently
    occupies the field: a new sowing ends the previous crop.

    Parameters
    ----------
    pattern_id : str
        One of ``cropsm.catalog.pattern_ids()`` (``ww_fl ww_mz sw_ct rs_ct fl_mz fl_sb``).
    day_of_year : array_like of int
        Day of year, 1-366, any shape.

    Returns
    -------
    kc : numpy.ndarray
        Crop coefficient (-), same shape as ``day_of_year``, float64.
    root_depth_cm : numpy.ndarray
        Effective rooting depth, cm, same shape, float64.

    Raises
    ------
    KeyError
        If the pattern is unknown.
    ValueError
        If a day of year is outside 1-366.

    References
    ----------
    Allen, R. G., Pereira, L. S., Raes, D., Smith, M. (1998). Crop evapotranspiration. FAO
    Irrigation and Drainage Paper 56, Eq. 66 and Fig. 25.
    """
    from cropsm.features.calendar import calendar_features  # the one nominal calendar

    values = calendar_features(pattern_id, day_of_year)
    return values["cal_kc"], values["cal_root_cm"]


def root_uptake_fractions(root_depth_cm) -> np.ndarray:
    """Share of root water uptake drawn from each of the five layers, shape ``(5, ...)``.

    Root length density decreases linearly from the surface to the rooting depth ``Zr``
    (the classic 40-30-20-10 % pattern of a four-quarter root zone), so the fraction of uptake
    from above depth ``z`` is ``F(z) = 1 - (1 - min(z, Zr) / Zr)^2`` and layer ``k`` gets
    ``F(z_bottom,k) - F(z_top,k)``. Roots deeper than 50 cm draw the remainder from below the
    modelled profile, so the fractions sum to ``1 - (1 - 50/Zr)^2`` when ``Zr > 50 cm``.

    Parameters
    ----------
    root_depth_cm : array_like
        Effective rooting depth, cm (> 0).

    Returns
    -------
    numpy.ndarray
        Fractions (-), leading axis the layer.

    References
    ----------
    Allen, R. G., et al. (1998). FAO-56, p. 163 (40-30-20-10 extraction pattern); Feddes, R. A.,
    Kowalik, P. J., Zaradny, H. (1978). Simulation of field water use and crop yield. Pudoc.
    """
    zr = np.maximum(np.asarray(root_depth_cm, float), 1e-6)
    bottoms = np.asarray(LAYER_BOTTOM_CM, float).reshape((N_LAYERS,) + (1,) * zr.ndim)
    below = (1.0 - np.minimum(bottoms / zr, 1.0)) ** 2  # share of uptake below each bottom
    above = np.concatenate([np.ones((1,) + zr.shape), below[:-1]], axis=0)
    return above - below


# --------------------------------------------------------------------------------------------
# Water balance
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaterBalanceParameters:
    """Process constants of :func:`run_water_balance` (defaults from the cited literature).

    Attributes
    ----------
    snow_all_below_c, rain_all_above_c : float
        Air temperatures (degC) below which all precipitation is snow and above which all is rain;
        linear ramp in between (e.g. Wigmosta et al. 1994 use -0.5 / +0.5 to +1.5 degC).
    melt_threshold_c : float
        Degree-day melt base temperature, degC.
    degree_day_factor_mm_c_day : float
        Melt per degree-day above the base, mm degC-1 d-1 (typical 2-5; Hock 2003).
    sublimation_fraction_of_pet : float
        Snow-pack sublimation as a fraction of reference ET (-).
    snow_full_cover_mm : float
        Snow water equivalent (mm) above which the ground is fully covered; cover fraction is
        ``min(SWE / snow_full_cover_mm, 1)`` and shades soil evaporation and transpiration.
    soil_temperature_time_constant_days : float
        Time constant of the soil-temperature proxy, d.
    snow_insulation_mm : float
        SWE (mm) at which a snow pack halves the air-soil coupling rate.
    fully_frozen_below_c : float
        Proxy soil temperature (degC) below which the soil is fully frozen; the unfrozen fraction
        ramps linearly from 0 here to 1 at 0 degC.
    frozen_infiltration_fraction : float
        Infiltration capacity of fully frozen soil relative to unfrozen soil (-).
    storm_duration_hours : float
        Effective duration of a day's rain over which the top layer's Ksat admits water, h.
    capillary_rate_per_day : float
        Maximum rate constant of the capillary redistribution, d-1 (must be <= 0.5 for bounds).
    depletion_fraction_p : float
        FAO-56 soil water depletion fraction p for no stress (Table 22, 0.5-0.55 for most crops).
    readily_evaporable_fraction : float
        Readily evaporable water as a fraction of the total evaporable water (REW / TEW, FAO-56
        Table 19: about 0.4).
    kc_bare, kc_full_cover : float
        Kc of bare soil (FAO-56 Kc_min) and of a full canopy, used for the cover fraction.
    cover_exponent : float
        Exponent ``1 + 0.5 h`` of FAO-56 Eq. 76 (h = 1 m crop height).
    kc_max : float
        Upper limit of Kc following rain (FAO-56 Eq. 72, about 1.2).
    second_layer_evaporation_share : float
        Share of the soil evaporation demand addressed to the 10-20 cm layer (-).
    """

    snow_all_below_c: float = -1.0
    rain_all_above_c: float = 1.0
    melt_threshold_c: float = 0.0
    degree_day_factor_mm_c_day: float = 3.0
    sublimation_fraction_of_pet: float = 0.3
    snow_full_cover_mm: float = 10.0
    soil_temperature_time_constant_days: float = 10.0
    snow_insulation_mm: float = 20.0
    fully_frozen_below_c: float = -2.0
    frozen_infiltration_fraction: float = 0.1
    storm_duration_hours: float = 6.0
    capillary_rate_per_day: float = 0.1
    depletion_fraction_p: float = 0.5
    readily_evaporable_fraction: float = 0.4
    kc_bare: float = 0.15
    kc_full_cover: float = 1.2
    cover_exponent: float = 1.5
    kc_max: float = 1.2
    second_layer_evaporation_share: float = 0.15


DEFAULT_PARAMETERS = WaterBalanceParameters()


@dataclass
class WaterBalanceState:
    """Everything needed to continue a run.

    Attributes
    ----------
    soil_water_mm : numpy.ndarray
        Water in each layer, mm, shape ``(n_columns, 5)``.
    snow_mm : numpy.ndarray
        Snow water equivalent, mm, shape ``(n_columns,)``.
    soil_temperature_c : numpy.ndarray
        Slow soil-temperature proxy, degC, shape ``(n_columns,)``.
    """

    soil_water_mm: np.ndarray
    snow_mm: np.ndarray
    soil_temperature_c: np.ndarray

    def copy(self) -> WaterBalanceState:
        """An independent copy (float64)."""
        return WaterBalanceState(
            soil_water_mm=np.array(self.soil_water_mm, dtype=float),
            snow_mm=np.array(self.snow_mm, dtype=float),
            soil_temperature_c=np.array(self.soil_temperature_c, dtype=float),
        )

    def total_water_mm(self) -> np.ndarray:
        """Soil water plus snow, mm, shape ``(n_columns,)``."""
        return np.sum(self.soil_water_mm, axis=1) + self.snow_mm


def initial_state(
    hydraulics: SoilHydraulics,
    wetness: float = 0.5,
    soil_temperature_c: float | np.ndarray = 5.0,
) -> WaterBalanceState:
    """A starting state: uniform relative wetness, no snow.

    ``theta = theta_wp + wetness (theta_fc - theta_wp)``, bounded to ``[theta_r, theta_s]``;
    soil water in mm is ``theta x layer thickness (100 mm)``.

    Parameters
    ----------
    hydraulics : SoilHydraulics
        Soil of each column.
    wetness : float, optional
        Relative wetness between wilting point (0) and field capacity (1); values above 1 wet the
        soil towards saturation, below 0 towards residual. Default 0.5.
    soil_temperature_c : float or array_like, optional
        Initial soil-temperature proxy, degC (default 5; spin up a year for a realistic start).

    Returns
    -------
    WaterBalanceState
    """
    wp = np.asarray(hydraulics.wilting_point, float)
    theta = wp + wetness * (np.asarray(hydraulics.field_capacity, float) - wp)
    theta = np.clip(theta, hydraulics.residual, hydraulics.saturation)
    n = theta.shape[0]
    return WaterBalanceState(
        soil_water_mm=theta * layer_thickness_mm(),
        snow_mm=np.zeros(n),
        soil_temperature_c=np.broadcast_to(np.asarray(soil_temperature_c, float), (n,)).copy(),
    )


@dataclass
class WaterBalanceResult:
    """Output of :func:`run_water_balance`.

    Attributes
    ----------
    sm : numpy.ndarray
        Volumetric soil moisture, m3 m-3, float32, shape ``(n_days, 5, n_columns)``.
    frozen : numpy.ndarray
        True where the soil-temperature proxy is below 0 degC (top layer frozen), bool,
        shape ``(n_days, n_columns)``.
    state : WaterBalanceState
        State at the end of the last day.
    fluxes_mm : dict of str to numpy.ndarray
        Totals over the call per column, mm, float64: ``precipitation``, ``runoff``,
        ``evapotranspiration`` (soil evaporation + transpiration + snow sublimation),
        ``drainage`` (out of the 50-cm bottom), ``storage_change`` (soil + snow), and the parts
        ``transpiration``, ``soil_evaporation``, ``sublimation``, ``snowfall``, ``snowmelt``.
    """

    sm: np.ndarray
    frozen: np.ndarray
    state: WaterBalanceState
    fluxes_mm: dict[str, np.ndarray] = field(default_factory=dict)


def _check_hydraulics(hydraulics: SoilHydraulics) -> None:
    shapes = {
        np.shape(a)
        for a in (
            hydraulics.residual,
            hydraulics.wilting_point,
            hydraulics.field_capacity,
            hydraulics.saturation,
            hydraulics.ksat_mm_day,
        )
    }
    if len(shapes) != 1 or len(next(iter(shapes))) != 2 or next(iter(shapes))[1] != N_LAYERS:
        raise ValueError(f"SoilHydraulics arrays must all have shape (n_columns, 5), got {shapes}")
    ordered = (
        (hydraulics.residual > 0.0)
        & (hydraulics.residual < hydraulics.wilting_point)
        & (hydraulics.wilting_point < hydraulics.field_capacity)
        & (hydraulics.field_capacity < hydraulics.saturation)
        & (hydraulics.saturation < 1.0)
        & (hydraulics.ksat_mm_day > 0.0)
    )
    if not np.all(ordered):
        raise ValueError(
            "SoilHydraulics must satisfy 0 < residual < wilting_point < field_capacity < "
            "saturation < 1 and ksat_mm_day > 0 in every column and layer"
        )


def run_water_balance(
    precip_mm,
    air_temperature_c,
    pet_mm,
    kc,
    root_depth_cm,
    hydraulics: SoilHydraulics,
    state: WaterBalanceState,
    parameters: WaterBalanceParameters = DEFAULT_PARAMETERS,
    weather_columns=None,
) -> WaterBalanceResult:
    r"""Run the daily five-layer soil water balance for many columns.

    Per column and day (``dt = 1 d``; ``W_k`` water of layer k in mm, ``W_s``, ``W_fc``,
    ``W_wp``, ``W_r`` its saturation, field capacity, wilting point and residual in mm):

    **Snow.** Snow fraction ``f_s = clip((T_rain - T) / (T_rain - T_snow), 0, 1)``; snowfall
    ``P f_s``, rain ``P (1 - f_s)``; melt ``M = min(SWE, DDF max(T - T_m, 0))``; sublimation
    ``min(SWE, c_sub ET0)``; snow cover ``f_sc = min(SWE / SWE_full, 1)``.

    **Soil temperature proxy.** ``T_soil += (T - T_soil) / (tau (1 + SWE / SWE_ins))``; unfrozen
    fraction ``u = clip(1 - T_soil / T_ff, 0, 1)`` with ``T_ff < 0`` the fully-frozen temperature;
    the top layer is reported frozen when ``T_soil < 0``.

    **Infiltration.** Capacity ``I_c = [W_s,1 - W_1 + K_s,1 t_storm] (f_fr + (1 - f_fr) u)``;
    infiltration ``I = min(R + M, I_c)``, infiltration-excess runoff ``R + M - I``. ``I`` fills
    the layers top-down up to ``W_s``; what is left after the bottom layer drains out up to
    ``u K_s,5`` (drainage), the rest is saturation-excess runoff.

    **Gravity drainage** (top-down, Campbell 1974; Saxton & Rawls 2006 Eq. 17):
    ``q_k = u min(max(W_k - W_fc,k, 0), K_s,k (W_k / W_s,k)^(3 + 2 B_k) dt)``, limited by the
    space ``W_s,k+1 - W_k+1`` below; ``q_5`` leaves the profile.

    **Capillary redistribution** between layers k and k+1 in relative saturation
    ``S = (W - W_r) / (W_s - W_r)``:
    ``q = u kappa S_bar^2 (S_k - S_k+1) min(W_s - W_r)_k,k+1`` (downward positive), with
    ``S_bar`` the pair mean; ``kappa <= 0.5`` keeps every layer within bounds.

    **Evapotranspiration** (FAO-56 Eqs. 71-77 and 84). Cover fraction
    ``f_c = clip((Kc - Kc_min) / (Kc_full - Kc_min), 0, 1)^(1 + 0.5 h)``; basal coefficient
    ``Kcb = Kc f_c``; potential transpiration ``Tp = Kcb ET0 u (1 - f_sc)``. Soil evaporation
    ``E = Kr Ke_max ET0 u (1 - f_sc)`` with ``Ke_max = min(Kc_max - Kcb, (1 - f_c) Kc_max)``,
    addressed 85 % to the 0-10 cm layer with
    ``Kr_1 = clip((W_1 - W_r,1) / ((1 - REW/TEW)(W_fc,1 - W_r,1)), 0, 1)`` (FAO-56 Eq. 74 with
    ``TEW = W_fc - W_r``; down to the air-dry ``W_r``) and 15 % to the 10-20 cm layer with
    ``Kr_2 = Kr_1 clip((W_2 - W_wp,2) / ((1 - REW/TEW)(W_fc,2 - W_wp,2)), 0, 1)`` (only while the
    surface is moist; never below ``W_wp``). Uptake from layer k is ``Tp r_k Ks_k`` with the root
    fractions ``r_k`` of :func:`root_uptake_fractions` and the stress factor
    ``Ks_k = clip((W_k - W_wp,k) / ((1 - p)(W_fc,k - W_wp,k)), 0, 1)``; never below ``W_wp``.

    Parameters
    ----------
    precip_mm : array_like, shape (n_days, n_columns)
        Daily precipitation, mm d-1 (>= 0).
    air_temperature_c : array_like, broadcastable to (n_days, n_columns)
        Daily mean air temperature, degC.
    pet_mm : array_like, broadcastable to (n_days, n_columns)
        Daily reference (grass) evapotranspiration ET0, mm d-1 (>= 0).
    kc : array_like, broadcastable to (n_days, n_columns)
        FAO-56 single crop coefficient (-), e.g. from :func:`crop_calendar` as ``(n_days, 1)``.
    root_depth_cm : array_like, broadcastable to (n_days, n_columns)
        Effective rooting depth, cm (> 0).
    hydraulics : SoilHydraulics
        Soil of each column, arrays ``(n_columns, 5)``.
    state : WaterBalanceState
        State at the start of the first day (not modified).
    parameters : WaterBalanceParameters, optional
        Process constants.
    weather_columns : array_like of int, shape (n_columns,), optional
        Column ``j`` takes its precipitation, air temperature and ET0 from column
        ``weather_columns[j]`` of those three arrays (then ``(n_days, n_weather)``), one day at a
        time: many columns share a cell's weather (a cell under each cropping pattern) without a
        copy of the year's forcing per column. ``kc`` and ``root_depth_cm`` stay per column.

    Returns
    -------
    WaterBalanceResult
        Daily soil moisture (float32), frozen flags, the final state and flux totals (float64).

    Notes
    -----
    Float32 forcing is fine; the state and the flux totals are float64. Runs are exactly
    restartable: two consecutive calls with the state carried over give the same result as one
    call over both periods.

    References
    ----------
    Allen, R. G., Pereira, L. S., Raes, D., Smith, M. (1998). Crop evapotranspiration. FAO
    Irrigation and Drainage Paper 56, Rome.
    Campbell, G. S. (1974). Soil Science 117, 311-314.
    Hock, R. (2003). Temperature index melt modelling in mountain areas. J. Hydrol. 282, 104-115.
    Saxton, K. E., Rawls, W. J. (2006). Soil Sci. Soc. Am. J. 70, 1569-1578.
    """
    _check_hydraulics(hydraulics)
    prm = parameters
    if not 0.0 <= prm.capillary_rate_per_day <= 0.5:
        raise ValueError("capillary_rate_per_day must be within 0-0.5 d-1")
    precip = np.asarray(precip_mm)
    if precip.ndim != 2:
        raise ValueError(f"precip_mm must have shape (n_days, n_columns), got {precip.shape}")
    n_days, n_weather = precip.shape
    n = hydraulics.n_columns
    if weather_columns is None:
        if n_weather != n:
            raise ValueError(f"precip_mm has {n_weather} columns, hydraulics has {n}")
    else:
        weather_columns = np.asarray(weather_columns, dtype=np.intp)
        if weather_columns.shape != (n,):
            raise ValueError(f"weather_columns must have shape {(n,)}, got {weather_columns.shape}")
        if n and (weather_columns.min() < 0 or weather_columns.max() >= n_weather):
            raise ValueError(f"weather_columns must index the {n_weather} columns of precip_mm")
    weather_pick = slice(None) if weather_columns is None else weather_columns
    forcing = {}
    for name, values, width in (
        ("precip_mm", precip, n_weather),
        ("air_temperature_c", air_temperature_c, n_weather),
        ("pet_mm", pet_mm, n_weather),
        ("kc", kc, n),
        ("root_depth_cm", root_depth_cm, n),
    ):
        arr = np.asarray(values)
        try:
            arr = np.broadcast_to(arr, (n_days, width))
        except ValueError as err:
            raise ValueError(
                f"{name} with shape {np.shape(values)} does not broadcast to {(n_days, width)}"
            ) from err
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains non-finite values")
        forcing[name] = arr
    if np.any(forcing["precip_mm"] < 0) or np.any(forcing["pet_mm"] < 0):
        raise ValueError("precip_mm and pet_mm must be >= 0")
    if np.any(forcing["root_depth_cm"] <= 0) or np.any(forcing["kc"] < 0):
        raise ValueError("root_depth_cm must be > 0 and kc >= 0")

    thick = layer_thickness_mm()[:, None]  # (5, 1) mm
    inv_thick = 1.0 / thick

    def layers(a: np.ndarray) -> np.ndarray:  # (n, 5) volumetric -> (5, n) contiguous
        return np.ascontiguousarray(np.asarray(a, float).T)

    w_r = layers(hydraulics.residual) * thick
    w_wp = layers(hydraulics.wilting_point) * thick
    w_fc = layers(hydraulics.field_capacity) * thick
    w_sat = layers(hydraulics.saturation) * thick
    ksat = layers(hydraulics.ksat_mm_day)
    drain_exponent = 3.0 + 2.0 * layers(hydraulics.campbell_b())
    inv_w_sat = 1.0 / w_sat
    # stress threshold (readily available water) and evaporation (readily evaporable water)
    w_raw = w_fc - prm.depletion_fraction_p * (w_fc - w_wp)
    inv_stress_range = 1.0 / (w_raw - w_wp)
    inv_rew_range = 1.0 / ((1.0 - prm.readily_evaporable_fraction) * (w_fc - w_r))
    inv_rew_second = 1.0 / ((1.0 - prm.readily_evaporable_fraction) * (w_fc[1] - w_wp[1]))
    # capillary redistribution
    capacity = w_sat - w_r
    inv_capacity = 1.0 / capacity
    pair_capacity = np.minimum(capacity[:-1], capacity[1:])
    storm_intake = ksat[0] * (prm.storm_duration_hours / 24.0)
    bottom_ksat = ksat[-1]

    st = state.copy()
    if st.soil_water_mm.shape != (n, N_LAYERS):
        raise ValueError(f"state.soil_water_mm must have shape {(n, N_LAYERS)}")
    if st.snow_mm.shape != (n,) or st.soil_temperature_c.shape != (n,):
        raise ValueError(f"state.snow_mm and state.soil_temperature_c must have shape {(n,)}")
    w = np.ascontiguousarray(st.soil_water_mm.T)
    # tolerate float32 round-off of a stored state (1e-3 mm), then hold it exactly in bounds
    if np.any(w < w_r - 1e-3) or np.any(w > w_sat + 1e-3) or np.any(st.snow_mm < 0):
        raise ValueError("state.soil_water_mm lies outside [residual, saturation] or snow < 0")
    w = np.clip(w, w_r, w_sat)
    snow = st.snow_mm
    t_soil = st.soil_temperature_c
    storage_start = np.sum(w, axis=0) + snow

    names = (
        "precipitation",
        "runoff",
        "drainage",
        "transpiration",
        "soil_evaporation",
        "sublimation",
        "snowfall",
        "snowmelt",
    )
    tot = {k: np.zeros(n) for k in names}

    sm = np.empty((n_days, N_LAYERS, n), dtype=np.float32)
    frozen = np.empty((n_days, n), dtype=bool)

    ramp = 1.0 / (prm.rain_all_above_c - prm.snow_all_below_c)
    coupling = 1.0 / prm.soil_temperature_time_constant_days
    inv_insulation = 1.0 / prm.snow_insulation_mm
    inv_full_cover = 1.0 / prm.snow_full_cover_mm
    inv_frozen_span = -1.0 / prm.fully_frozen_below_c
    cover_span = 1.0 / (prm.kc_full_cover - prm.kc_bare)
    evap_shares = (1.0 - prm.second_layer_evaporation_share, prm.second_layer_evaporation_share)
    kappa = prm.capillary_rate_per_day
    f_fr = prm.frozen_infiltration_fraction

    for d in range(n_days):
        p = forcing["precip_mm"][d, weather_pick].astype(float)
        t_air = forcing["air_temperature_c"][d, weather_pick].astype(float)
        et0 = forcing["pet_mm"][d, weather_pick].astype(float)
        kc_d = forcing["kc"][d].astype(float)
        zr_d = forcing["root_depth_cm"][d].astype(float)

        # 1. snow: rain/snow ramp, degree-day melt, sublimation
        snow_fraction = np.clip((prm.rain_all_above_c - t_air) * ramp, 0.0, 1.0)
        snowfall = p * snow_fraction
        rain = p - snowfall
        snow += snowfall
        melt = np.minimum(
            snow, prm.degree_day_factor_mm_c_day * np.maximum(t_air - prm.melt_threshold_c, 0.0)
        )
        snow -= melt
        sublimation = np.minimum(snow, prm.sublimation_fraction_of_pet * et0)
        snow -= sublimation
        open_ground = 1.0 - np.minimum(snow * inv_full_cover, 1.0)

        # 2. soil-temperature proxy and unfrozen fraction
        t_soil += coupling / (1.0 + snow * inv_insulation) * (t_air - t_soil)
        unfrozen = np.clip(1.0 + t_soil * inv_frozen_span, 0.0, 1.0)
        np.less(t_soil, 0.0, out=frozen[d])

        # 3. infiltration, top-down filling, saturation excess
        water_in = rain + melt
        intake = (w_sat[0] - w[0] + storm_intake) * (f_fr + (1.0 - f_fr) * unfrozen)
        incoming = np.minimum(water_in, intake)
        runoff = water_in - incoming
        for k in range(N_LAYERS):
            if not incoming.any():
                break
            add = np.minimum(incoming, w_sat[k] - w[k])
            w[k] += add
            incoming -= add
        leak = np.minimum(incoming, bottom_ksat * unfrozen)
        runoff += incoming - leak
        drainage = leak

        # 4. gravity drainage, top-down; K(theta) only where a layer is above field capacity
        for k in range(N_LAYERS):
            wet = np.flatnonzero(w[k] > w_fc[k])
            if wet.size == 0:
                continue
            w_k = w[k, wet]
            conductivity = ksat[k, wet] * np.power(w_k * inv_w_sat[k, wet], drain_exponent[k, wet])
            q = np.minimum(w_k - w_fc[k, wet], conductivity) * unfrozen[wet]
            if k < N_LAYERS - 1:
                np.minimum(q, w_sat[k + 1, wet] - w[k + 1, wet], out=q)
                w[k + 1, wet] += q
            else:
                drainage[wet] += q
            w[k, wet] = w_k - q

        # 5. capillary redistribution (diffusion of relative saturation)
        if kappa > 0.0:
            rel = (w - w_r) * inv_capacity
            mean_rel = 0.5 * (rel[:-1] + rel[1:])
            q = (kappa * unfrozen) * (mean_rel * mean_rel) * (rel[:-1] - rel[1:]) * pair_capacity
            w[:-1] -= q
            w[1:] += q

        # 6. evapotranspiration
        cover = np.clip((kc_d - prm.kc_bare) * cover_span, 0.0, 1.0)
        cover = cover * np.sqrt(cover) if prm.cover_exponent == 1.5 else cover**prm.cover_exponent
        kcb = kc_d * cover
        active = et0 * unfrozen * open_ground
        ke_max = np.maximum(np.minimum(prm.kc_max - kcb, (1.0 - cover) * prm.kc_max), 0.0)
        evaporation_demand = ke_max * active
        available_top = w[0] - w_r[0]
        kr_top = np.clip(available_top * inv_rew_range[0], 0.0, 1.0)
        e_top = np.minimum(evaporation_demand * (kr_top * evap_shares[0]), available_top)
        available_second = np.maximum(w[1] - w_wp[1], 0.0)
        kr_second = np.clip(available_second * inv_rew_second, 0.0, 1.0) * kr_top
        e_second = np.minimum(evaporation_demand * (kr_second * evap_shares[1]), available_second)
        w[0] -= e_top
        w[1] -= e_second
        soil_evaporation = e_top + e_second
        above_wp = w - w_wp
        uptake = above_wp * inv_stress_range
        np.clip(uptake, 0.0, 1.0, out=uptake)  # water-stress factor Ks per layer
        if n and zr_d[0] == zr_d.min() == zr_d.max():  # one rooting depth for all columns (usual)
            uptake *= root_uptake_fractions(zr_d[:1])
        else:
            uptake *= root_uptake_fractions(zr_d)
        uptake *= kcb * active
        np.maximum(above_wp, 0.0, out=above_wp)
        np.minimum(uptake, above_wp, out=uptake)
        w -= uptake

        np.multiply(w, inv_thick, out=sm[d], casting="same_kind")

        tot["precipitation"] += p
        tot["runoff"] += runoff
        tot["drainage"] += drainage
        tot["transpiration"] += uptake.sum(axis=0)
        tot["soil_evaporation"] += soil_evaporation
        tot["sublimation"] += sublimation
        tot["snowfall"] += snowfall
        tot["snowmelt"] += melt

    final = WaterBalanceState(
        soil_water_mm=np.ascontiguousarray(w.T), snow_mm=snow, soil_temperature_c=t_soil
    )
    fluxes = {
        "precipitation": tot["precipitation"],
        "runoff": tot["runoff"],
        "evapotranspiration": tot["transpiration"] + tot["soil_evaporation"] + tot["sublimation"],
        "drainage": tot["drainage"],
        "storage_change": np.sum(w, axis=0) + snow - storage_start,
        "transpiration": tot["transpiration"],
        "soil_evaporation": tot["soil_evaporation"],
        "sublimation": tot["sublimation"],
        "snowfall": tot["snowfall"],
        "snowmelt": tot["snowmelt"],
    }
    return WaterBalanceResult(sm=sm, frozen=frozen, state=final, fluxes_mm=fluxes)
