"""A pattern-aware daily bucket and long-term climate descriptors (the crop-aware feature set).

The same functions compute these inputs for stations (whole record at the station's cell,
:mod:`cropsm.features.station_table`) and for grid cells (the national product, block by block
with the bucket state carried from block to block, :mod:`cropsm.predict`), so a cell's inputs are
what a station at its centre would get.

Bucket
------
Two stores per column, 0-20 cm (``W1``) and 20-50 cm (``W2``), with capacities
``C1 = 0.4 C`` and ``C2 = 0.6 C``, ``C = 500 mm x (theta_33 - theta_1500)`` (texture-derived
available water, Saxton & Rawls 2006, Eqs. 1-2, mean of the five layers, organic matter 2 %),
both started half full on the first day of the climate record. Each day::

    W1' = W1 + P;  excess = max(W1' - C1, 0);  W1' -= excess   # rain fills the top first
    W2' = min(W2 + excess, C2)                                 # then the subsoil; the rest drains
    f_c = min(max((Kc - Kc_min) / (Kc_max - Kc_min), 0), 0.99)^1.5   # canopy cover, Eq. 76
    Tp  = f_c Kc ET0                                           # transpiration (basal part)
    Ep  = min(Kc_max - f_c Kc, (1 - f_c) Kc_max) ET0           # soil evaporation, Eq. 71-72
    s1  = 1 - (1 - min(20, Zr) / Zr)^2                         # share of uptake from 0-20 cm
    Ks_i = min(1, W_i' / ((1 - p) C_i)),  p = 0.5              # FAO-56 Eq. 84 stress per store
    W1 = max(W1' - s1 Tp Ks_1 - Ep Ks_1, 0);  W2 = max(W2' - (1 - s1) Tp Ks_2, 0)

with ``Kc_min = 0.15`` and ``Kc_max = 1.2`` (FAO-56 Eqs. 71-77, the dual crop coefficient,
simplified: the pattern's single Kc split into a transpiration part ``f_c Kc`` taken by the
roots and an evaporation part taken from the top store only, which falls once half of the top
store is gone, ``Kr = Ks_1``, a linear stage 2). A bare or sparsely covered field thus
evaporates up to ``Kc_max ET0`` from a wet top and dries it, while a closed canopy shades the
soil and draws its water through the roots, from the subsoil too. Measured on the demo virtual
China (``benchmarks/scenario_ceiling.py``-style, climate calendar, median over the six
patterns): the top store's pattern-minus-reference effect went from r -0.64 to +0.72 with the
true 0-10 cm effect, the subsoil store's from 0.85 0.84 0.82 to 0.88 0.90 0.89 with the true
20-50 cm ones, with the single-coefficient bucket (``D = Kc ET0`` split by the roots alone)
this replaced.

where ``P`` is the *liquid* water reaching the soil: rain plus snowmelt from a degree-day
snow pack (all precipitation falls as snow below 0 degC; the pack melts at 2.5 mm per degC
above 0 degC and day, the lower end of the 2.5-6 mm degC-1 d-1 of snow in Hock 2003's review)::

    S' = S + P_snow;  M = min(S', 2.5 max(T, 0));  S = S' - M;  P = P_rain + M

with ``Kc`` and the rooting depth ``Zr`` the pattern's *nominal* FAO-56 values
(:mod:`cropsm.features.calendar`; the root-length density decreases linearly with depth, the
40-30-20-10 % rule) and ``ET0`` the Makkink reference evapotranspiration from air temperature
and incoming solar radiation (``pyet.makkink``; incoming = net / (1 - 0.23), FAO-56 albedo). A
fallow field (shallow roots) dries the top, a deep-rooted crop the subsoil too. The inputs are
the relative waters ``wb_top = W1 / C1`` and ``wb_sub = W2 / C2`` at the end of the day. The
bucket is deliberately cruder than the virtual China's five-layer physics (a threshold snow
pack without sublimation or insulation, no frozen-soil infiltration, capillary rise or
layer-by-layer drainage; nominal calendars).

Snow
----
The snow pack ``S`` (mm) is the same under every pattern; it is carried in the bucket's state
and returned as ``snow_water_mm`` for inspection, but it is *not* an input of the networks:
given to them as an input (and with it a soil-temperature proxy, air temperature smoothed with
a 5-day time constant), it helped the product on known stations but cost 0.015-0.13 of R2
against the truth at new places, because the stations of the north observe no winter and the
pack lies far outside the training rows there (README, "Snow and frozen ground"). In the
bucket alone it times the water that winter precipitation brings to the soil: without it the
product's largest errors were the snowmelt and thaw months in the north (paper preset, layer
1, regions 1-2, mean latitude 43-45 N: RMSE 0.08-0.10 m3 m-3 in March-April against 0.02-0.03
in summer).

Long-term climate
-----------------
``clim_precip_mm_yr`` (mean annual precipitation) and ``clim_aridity`` (``sum P / sum ET0``, the
UNEP aridity index with Makkink ET0) over the whole climate record of the cell.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyet
import xarray as xr

WATER_BALANCE_FEATURES: tuple[str, ...] = ("wb_top", "wb_sub")
"""Per-pattern daily bucket inputs (relative water of the 0-20 and 20-50 cm stores)."""

BARE_BUCKET_FEATURES: tuple[str, ...] = ("wb_top_bare", "wb_sub_bare")
"""The same stores under a fallow field (the catalog's fallow Kc and rooting depth): the
weather's part of the water state, the same under every pattern, so that the pattern inputs
carry what the crops change."""

CLIMATE_DESCRIPTORS: tuple[str, ...] = ("clim_precip_mm_yr", "clim_aridity")
"""Per-cell long-term climate inputs."""

FEATURE_ATTRS: dict[str, dict[str, str]] = {
    "wb_top": {
        "units": "1",
        "long_name": "relative water of the 0-20 cm store of the pattern's bucket",
    },
    "wb_sub": {
        "units": "1",
        "long_name": "relative water of the 20-50 cm store of the pattern's bucket",
    },
    "wb_top_bare": {"units": "1", "long_name": "wb_top of a fallow field"},
    "wb_sub_bare": {"units": "1", "long_name": "wb_sub of a fallow field"},
    "clim_precip_mm_yr": {"units": "mm yr-1", "long_name": "mean annual precipitation"},
    "clim_aridity": {"units": "1", "long_name": "aridity index P / ET0 (Makkink)"},
}

BUCKET_DEPTH_MM = 500.0
"""Depth of the bucket: the five 10-cm layers, mm."""

TOP_DEPTH_CM = 20.0
"""Depth of the bucket's top store, cm (the rest, to 50 cm, is the subsoil store)."""

TOP_SHARE = TOP_DEPTH_CM * 10.0 / BUCKET_DEPTH_MM
"""Share of the capacity in the top store."""

SNOW_BELOW_C = 0.0
"""Daily mean air temperature below which precipitation falls as snow, degC."""

DEGREE_DAY_FACTOR_MM_C_DAY = 2.5
"""Snowmelt per degree-day above 0 degC, mm degC-1 d-1 (Hock 2003: 2.5-6 for snow)."""

N_WATER_STORES = 2
"""Rows of the bucket state that are soil water (top, subsoil); the state adds the snow pack
(:func:`run_bucket`)."""

SNOW_DIAGNOSTIC = "snow_water_mm"
"""Name of the bucket's daily snow pack in :func:`run_bucket`'s output (not a network input)."""

DEPLETION_FRACTION = 0.5
"""FAO-56 depletion fraction p: no stress while ``W > (1 - p) C`` (Table 22, typical crops)."""

KC_BARE_SOIL = 0.15
"""FAO-56 ``Kc_min``: Kc of bare soil in the canopy-cover relation (Eq. 76)."""

KC_MAX = 1.2
"""FAO-56 ``Kc_max``: the upper bound of crop plus soil ET after rain (Eq. 72, sub-humid)."""

COVER_EXPONENT = 1.5
"""FAO-56 Eq. 76 exponent ``1 + 0.5 h`` for a crop height ``h`` of about 1 m."""

INITIAL_RELATIVE_WATER = 0.5
"""Relative water of the bucket on the first day of the climate record."""

DEFAULT_AVAILABLE_WATER = 0.15
"""Available water ``theta_33 - theta_1500`` (m3 m-3) used when the data has no soil texture."""

ORGANIC_MATTER_PCT = 2.0
"""Organic matter assumed by the pedotransfer (the soil inputs carry none), %."""

NET_TO_INCOMING_SOLAR = 1.0 / (1.0 - 0.23)
"""Incoming / net shortwave radiation with the FAO-56 grass albedo 0.23."""


def available_water_m3_m3(sand_pct, clay_pct, organic_matter_pct: float = ORGANIC_MATTER_PCT):
    """Available water ``theta_33 - theta_1500`` from texture (Saxton & Rawls 2006, Eqs. 1-2).

    With sand S and clay C as fractions and organic matter OM in %::

        t1500 = -0.024 S + 0.487 C + 0.006 OM + 0.005 S OM - 0.013 C OM + 0.068 S C + 0.031
        theta_1500 = t1500 + (0.14 t1500 - 0.02)
        t33 = -0.251 S + 0.195 C + 0.011 OM + 0.006 S OM - 0.027 C OM + 0.452 S C + 0.299
        theta_33 = t33 + (1.283 t33^2 - 0.374 t33 - 0.015)

    Parameters
    ----------
    sand_pct, clay_pct
        Sand and clay content, % (any broadcastable shapes).
    organic_matter_pct
        Organic matter, %.

    Returns
    -------
    numpy.ndarray
        Available water, m3 m-3, at least 0.02 (NaN where texture is NaN).
    """
    s = np.asarray(sand_pct, dtype=np.float64) / 100.0
    c = np.asarray(clay_pct, dtype=np.float64) / 100.0
    theta_1500, theta_33 = saxton_rawls_retention(s, c, float(organic_matter_pct))
    return np.maximum(theta_33 - theta_1500, 0.02)


def saxton_rawls_retention(sand_fraction, clay_fraction, organic_matter_pct):
    """Wilting point and field capacity before any density adjustment (Saxton & Rawls 2006,
    Eqs. 1-2), the formulas of :func:`available_water_m3_m3`; ``S``, ``C`` as fractions (0-1),
    ``OM`` in %. Shared by the model's bucket and the virtual China's hydraulics
    (:func:`cropsm.twin.soilwater.saxton_rawls`).

    Returns
    -------
    (theta_1500, theta_33)
        m3 m-3, shaped like the broadcast inputs.
    """
    s, c, om = sand_fraction, clay_fraction, organic_matter_pct
    t1500 = -0.024 * s + 0.487 * c + 0.006 * om + 0.005 * s * om - 0.013 * c * om
    t1500 = t1500 + 0.068 * s * c + 0.031
    theta_1500 = t1500 + (0.14 * t1500 - 0.02)
    t33 = -0.251 * s + 0.195 * c + 0.011 * om + 0.006 * s * om - 0.027 * c * om
    t33 = t33 + 0.452 * s * c + 0.299
    theta_33 = t33 + (1.283 * t33**2 - 0.374 * t33 - 0.015)
    return theta_1500, theta_33


def bucket_capacity_mm(sand_by_layer_pct=None, clay_by_layer_pct=None) -> np.ndarray | float:
    """Bucket capacity ``C = 500 mm x mean_k (theta_33 - theta_1500)_k`` over the five layers.

    Parameters
    ----------
    sand_by_layer_pct, clay_by_layer_pct
        ``(5, n)`` sand and clay per layer, %; ``None`` (no soil data) gives
        ``500 x DEFAULT_AVAILABLE_WATER``.
    """
    if sand_by_layer_pct is None or clay_by_layer_pct is None:
        return BUCKET_DEPTH_MM * DEFAULT_AVAILABLE_WATER
    awc = available_water_m3_m3(sand_by_layer_pct, clay_by_layer_pct)
    return BUCKET_DEPTH_MM * np.mean(awc, axis=0)


def reference_et_mm(air_temperature_c, net_solar_mj_m2_day, elevation_m=None) -> np.ndarray:
    """Makkink reference evapotranspiration, mm d-1 (``pyet.makkink``, k = 0.65).

    ``ET0 = 0.65 Delta / (Delta + gamma) Rs / lambda`` with ``Rs = ssr / (1 - 0.23)`` (incoming
    from net shortwave with the FAO-56 albedo), ``Delta`` the slope of the saturation vapour
    pressure curve at the air temperature and ``gamma`` the psychrometric constant at the
    elevation's pressure (sea level without elevation).

    Parameters
    ----------
    air_temperature_c
        ``(time, cell)`` daily mean air temperature, degC.
    net_solar_mj_m2_day
        ``(time, cell)`` surface net solar radiation, MJ m-2 d-1.
    elevation_m
        ``(cell,)`` elevation, m, or None.
    """
    tair = xr.DataArray(np.asarray(air_temperature_c, dtype=np.float64), dims=("time", "cell"))
    rs = xr.DataArray(
        np.asarray(net_solar_mj_m2_day, dtype=np.float64) * NET_TO_INCOMING_SOLAR,
        dims=("time", "cell"),
    )
    elevation = 0.0
    if elevation_m is not None:
        elevation = xr.DataArray(
            np.nan_to_num(np.asarray(elevation_m, dtype=np.float64), nan=0.0), dims=("cell",)
        )
    et0 = pyet.makkink(tair, rs, elevation=elevation)
    return np.asarray(et0.transpose("time", "cell").values, dtype=np.float64)


def canopy_cover(kc) -> np.ndarray:
    """Canopy cover fraction from the crop coefficient (FAO-56 Eq. 76, Allen et al. 1998).

    ``f_c = min(max((Kc - Kc_min) / (Kc_max - Kc_min), 0), 0.99)^(1 + 0.5 h)`` with
    :data:`KC_BARE_SOIL`, :data:`KC_MAX` and :data:`COVER_EXPONENT`.
    """
    relative = (np.asarray(kc, dtype=np.float64) - KC_BARE_SOIL) / (KC_MAX - KC_BARE_SOIL)
    return np.clip(relative, 0.0, 0.99) ** COVER_EXPONENT


def uptake_share_top(root_depth_cm) -> np.ndarray:
    """Share of root water uptake from 0-20 cm: ``1 - (1 - min(20, Zr) / Zr)^2``.

    Root-length density decreasing linearly from the surface to ``Zr`` (the 40-30-20-10 % rule
    of a four-quarter root zone); roots shallower than 20 cm take everything from the top.
    """
    zr = np.maximum(np.asarray(root_depth_cm, dtype=np.float64), 1.0)
    return 1.0 - (1.0 - np.minimum(TOP_DEPTH_CM, zr) / zr) ** 2


def run_bucket(
    precip_mm,
    et0_mm,
    kc,
    root_depth_cm,
    capacity_mm,
    initial_water_mm,
    *,
    air_temperature_c=None,
    keep_relative: bool = True,
) -> tuple[dict[str, np.ndarray] | None, np.ndarray]:
    """The two-store daily bucket of the module docstring over ``(time, ...)`` arrays.

    The day slices of the inputs and ``capacity_mm`` broadcast against each other to the shape
    of the state (e.g. ``(station,)``, or ``(pattern, cell)`` from ``precip (time, 1, cell)`` and
    ``kc (time, pattern, 1)``), so nothing is copied per pattern; the arithmetic per element is
    the same whatever the shapes. The snow pack is run on the weather's shape (``precip`` and
    ``air_temperature_c`` day slices broadcast), once.

    Parameters
    ----------
    precip_mm, et0_mm
        ``(time, ...)`` daily precipitation and reference ET, mm (NaN counts as 0).
    kc, root_depth_cm
        ``(time, ...)`` crop coefficient and rooting depth (cm), or one value for every day.
    capacity_mm
        Total capacity C of the two stores, mm (broadcastable to the state).
    initial_water_mm
        ``(2, ...)`` water of the top and subsoil stores at the start of the first day, mm, or
        ``(3, ...)`` with the snow pack (mm) as row 3 (a ``(2, ...)`` start has no snow).
    air_temperature_c
        ``(time, ...)`` daily mean air temperature, degC; None: every drop is rain (no snow
        pack). A NaN day counts as rain and melts nothing.
    keep_relative
        Return the daily relative waters (else only the final state, to save memory).

    Returns
    -------
    (daily, final_state)
        ``{"wb_top", "wb_sub": (time, *state), "snow_water_mm":
        (time, *weather)}`` at the end of each day (None without ``keep_relative``), and
        ``(3, *state)``: the two stores' water (mm) and the snow pack (mm)
        at the end of the last day (the state for the next period).
    """
    precip = np.asarray(precip_mm)
    et0 = np.asarray(et0_mm)
    n_days = precip.shape[0]
    tair = None if air_temperature_c is None else np.asarray(air_temperature_c)

    def daily(values):
        values = np.asarray(values, dtype=np.float64)
        return np.full(n_days, float(values)) if values.ndim == 0 else values

    kc, root = daily(kc), daily(root_depth_cm)
    cover_by_day = canopy_cover(kc)
    capacity = np.asarray(capacity_mm, dtype=np.float64)
    initial = np.asarray(initial_water_mm, dtype=np.float64)
    shape = np.broadcast_shapes(
        precip.shape[1:], et0.shape[1:], kc.shape[1:], root.shape[1:], capacity.shape,
        initial.shape[1:], () if tair is None else tair.shape[1:],
    )  # fmt: skip
    weather = np.broadcast_shapes(precip.shape[1:], () if tair is None else tair.shape[1:])
    cap_top = np.broadcast_to(TOP_SHARE * capacity, shape)
    cap_sub = np.broadcast_to((1.0 - TOP_SHARE) * capacity, shape)
    top = np.array(np.broadcast_to(initial[0], shape))
    sub = np.array(np.broadcast_to(initial[1], shape))
    if len(initial) > N_WATER_STORES:
        snow = _weather_state(initial[2], weather)
    else:
        snow = np.zeros(weather)
    threshold_top = (1.0 - DEPLETION_FRACTION) * cap_top
    threshold_sub = (1.0 - DEPLETION_FRACTION) * cap_sub
    relative = None
    if keep_relative:
        relative = {name: np.empty((n_days, *shape)) for name in WATER_BALANCE_FEATURES}
        relative[SNOW_DIAGNOSTIC] = np.empty((n_days, *weather))
    for t in range(n_days):
        rain = np.nan_to_num(precip[t].astype(np.float64), nan=0.0)
        if tair is not None:
            temperature = tair[t].astype(np.float64)
            snowing = temperature < SNOW_BELOW_C  # NaN: rain
            snow = snow + np.where(snowing, rain, 0.0)
            melt = np.minimum(
                snow, DEGREE_DAY_FACTOR_MM_C_DAY * np.nan_to_num(np.maximum(temperature, 0.0))
            )
            snow = snow - melt
            rain = np.where(snowing, 0.0, rain) + melt
        reference_et = np.nan_to_num(et0[t].astype(np.float64), nan=0.0)
        cover = cover_by_day[t]
        basal_kc = cover * kc[t]
        transpiration = basal_kc * reference_et
        evaporation = np.minimum(KC_MAX - basal_kc, (1.0 - cover) * KC_MAX) * reference_et
        share_top = uptake_share_top(root[t])
        top = top + rain
        excess = np.maximum(top - cap_top, 0.0)
        top = top - excess
        sub = np.minimum(sub + excess, cap_sub)
        stress_top = np.minimum(top / threshold_top, 1.0)
        stress_sub = np.minimum(sub / threshold_sub, 1.0)
        top = np.maximum(top - (share_top * transpiration + evaporation) * stress_top, 0.0)
        sub = np.maximum(sub - (1.0 - share_top) * transpiration * stress_sub, 0.0)
        if relative is not None:
            relative["wb_top"][t] = top / cap_top
            relative["wb_sub"][t] = sub / cap_sub
            relative[SNOW_DIAGNOSTIC][t] = snow
    final = [top, sub, np.broadcast_to(snow, shape)]
    return relative, np.stack(final)


def _weather_state(values, weather: tuple[int, ...]) -> np.ndarray:
    """A weather state row of the bucket state (e.g. ``(pattern, cell)``, the same along the
    pattern axis) on the weather's shape (e.g. ``(1, cell)``): the first entry along every axis
    that the weather does not have."""
    values = np.asarray(values, dtype=np.float64)
    values = values.reshape((1,) * (len(weather) - values.ndim) + values.shape)
    index = tuple(
        slice(0, 1) if w == 1 and v != 1 else slice(None)
        for w, v in zip(weather, values.shape, strict=True)
    )
    return np.array(np.broadcast_to(values[index], weather))


def initial_water_mm_of(capacity_mm) -> np.ndarray:
    """``(3, ...)`` start state of the bucket: both stores half full, no snow."""
    capacity = np.asarray(capacity_mm, dtype=np.float64)
    return np.stack(
        [
            INITIAL_RELATIVE_WATER * TOP_SHARE * capacity,
            INITIAL_RELATIVE_WATER * (1 - TOP_SHARE) * capacity,
            np.zeros_like(capacity),
        ]
    )


def climate_descriptors(precip_mm, et0_mm) -> dict[str, np.ndarray]:
    """Long-term climate of each column over a whole record.

    ``clim_precip_mm_yr = 365.25 mean_t P``; ``clim_aridity = sum_t P / sum_t ET0``.

    Parameters
    ----------
    precip_mm, et0_mm
        ``(time, column)`` daily precipitation and reference ET, mm (NaN days skipped).
    """
    precip = np.asarray(precip_mm, dtype=np.float64)
    et0 = np.asarray(et0_mm, dtype=np.float64)
    return descriptors_from_sums(
        {
            "precip_sum": np.nansum(precip, axis=0),
            "et0_sum": np.nansum(et0, axis=0),
            "days": np.sum(np.isfinite(precip), axis=0).astype(np.float64),
        }
    )


def descriptors_from_sums(sums: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """:func:`climate_descriptors` from running sums ``precip_sum``, ``et0_sum``, ``days``."""
    days = np.where(sums["days"] > 0, sums["days"], np.nan)
    et0 = np.where(sums["et0_sum"] > 0, sums["et0_sum"], np.nan)
    return {
        "clim_precip_mm_yr": 365.25 * sums["precip_sum"] / days,
        "clim_aridity": sums["precip_sum"] / et0,
    }


def porosity_m3_m3(bulk_density_g_cm3, particle_density_g_cm3: float = 2.65) -> np.ndarray:
    """Total porosity ``phi = 1 - rho_b / rho_s`` (m3 m-3), the upper bound of soil moisture.

    Parameters
    ----------
    bulk_density_g_cm3
        Dry bulk density, g cm-3.
    particle_density_g_cm3
        Particle density of mineral soil, g cm-3 (2.65, quartz).
    """
    return 1.0 - np.asarray(bulk_density_g_cm3, dtype=np.float64) / particle_density_g_cm3


REFERENCE_KC = 1.0
"""Crop coefficient of the bucket for a station without a cropping pattern (reference surface)."""

REFERENCE_ROOT_CM = 50.0
"""Rooting depth of the bucket for a station without a cropping pattern, cm."""


def pattern_bucket_inputs(
    precip_mm,
    air_temperature_c,
    net_solar_mj_m2_day,
    kc,
    root_depth_cm,
    *,
    elevation_m=None,
    sand_by_layer_pct=None,
    clay_by_layer_pct=None,
    initial_water_mm=None,
    keep_relative: bool = True,
) -> dict[str, np.ndarray]:
    """Bucket inputs of columns over a period (stations, or grid cells under several patterns).

    Composes :func:`reference_et_mm`, :func:`bucket_capacity_mm` and :func:`run_bucket` (see
    the module docstring for the formulas); the reference ET is computed once per column.

    Parameters
    ----------
    precip_mm, air_temperature_c, net_solar_mj_m2_day
        ``(time, column)`` daily climate.
    kc, root_depth_cm
        ``(time, column)`` nominal crop coefficient and rooting depth of each column's pattern,
        scalars for every column and day, or ``(time, pattern, 1)`` to run every pattern on
        every column: the state is then ``(pattern, column)``, the weather broadcast (nothing
        copied per pattern).
    elevation_m
        ``(column,)`` elevation or None.
    sand_by_layer_pct, clay_by_layer_pct
        ``(5, column)`` texture or None (default capacity).
    initial_water_mm
        ``(3, *state)`` bucket state at the start (:func:`run_bucket`; ``(2, *state)``: no
        snow), default :func:`initial_water_mm_of`.
    keep_relative
        Return the daily relative waters (else only the final state).

    Returns
    -------
    dict
        ``wb_top``, ``wb_sub`` ``(time, *state)`` and ``snow_water_mm`` ``(time, column)``
        (without ``keep_relative``: absent); ``water_mm`` ``(3, *state)``,
        the state at the end; ``et0_mm`` ``(time, column)``; ``capacity_mm`` ``(column,)``.
    """
    precip = np.asarray(precip_mm, dtype=np.float64)
    et0 = reference_et_mm(air_temperature_c, net_solar_mj_m2_day, elevation_m)
    capacity = np.broadcast_to(
        np.asarray(bucket_capacity_mm(sand_by_layer_pct, clay_by_layer_pct), dtype=np.float64),
        precip.shape[1:],
    )
    capacity = np.where(np.isfinite(capacity), capacity, BUCKET_DEPTH_MM * DEFAULT_AVAILABLE_WATER)
    if initial_water_mm is None:
        initial_water_mm = initial_water_mm_of(capacity)
    by_pattern = np.ndim(kc) == 3  # (time, pattern, 1): weather broadcast over the patterns
    tair = np.asarray(air_temperature_c, dtype=np.float64)
    relative, water = run_bucket(
        precip[:, None, :] if by_pattern else precip,
        et0[:, None, :] if by_pattern else et0,
        kc,
        root_depth_cm,
        capacity,
        initial_water_mm,
        air_temperature_c=tair[:, None, :] if by_pattern else tair,
        keep_relative=keep_relative,
    )
    if relative is not None and by_pattern:  # the snow pack (time, 1, column) -> (time, column)
        relative[SNOW_DIAGNOSTIC] = relative[SNOW_DIAGNOSTIC][:, 0]
    return {**(relative or {}), "water_mm": water, "et0_mm": et0, "capacity_mm": capacity}
