"""Stochastic daily weather of the virtual China, and FAO-56 reference evapotranspiration.

:func:`generate_weather_year` draws one calendar year of daily weather on a regular lat/lon grid
and returns the canonical climate dataset of ``docs/contracts.md`` (plus the wind components).
:func:`potential_et_mm` turns a canonical climate dataset into daily reference
evapotranspiration with the ``pyet`` package.

Design
------
The generator is a *latent Gaussian* (censored, "meta-Gaussian") weather generator in the spirit
of Bardossy & Plate (1992) and Kleiber et al. (2012): every day, one standard-normal field ``Z``
per cell drives precipitation occurrence and amount, cloud cover, humidity and radiation, so all
of them are physically consistent with one another. Climatologies are smooth functions of
latitude, longitude, elevation and day of year, and the large-scale random fields are anchored
in geographic space, so a small grid (the ``tiny`` preset) gets the same climate and the same
large-scale weather as the same cells of the whole-China grid; only the cell-scale noise
differs.

Random fields
    Daily anomaly fields are process convolutions (Higdon 1998): independent standard normals on
    a coarse lattice (spacing 0.75 ``L``) fixed in geographic space, filtered in time by an
    AR(1) process ``F[t] = rho F[t-1] + sqrt(1 - rho**2) e[t]`` and spread to the grid with a
    separable Gaussian kernel of width ``L`` whose weights are normalised so that every cell has
    unit variance. The fields have squared-exponential correlation ``exp(-d**2 / (4 L**2))`` in
    space (``d`` in degrees) and ``rho**lag`` in time. The lattice draws of year ``Y`` come from
    their own random stream ``(seed, year, field)``, and year ``Y`` is filtered over the
    innovations of years ``Y - 1`` and ``Y``, so that years can be generated in any order or in
    parallel, yet the series run on continuously over New Year (to within ``rho**365``).

Precipitation
    Annual climatology: kernel regression (Gaussian weights, width 2 degrees, in log space) of
    approximate 1981-2010 annual normals at about 190 anchor stations in and around China
    (``PRECIP_ANCHORS``), times a mild orographic factor from the elevation above its 1-degree
    smoothed surroundings. This gives China's gradient from the wet south-east (> 1,500 mm) to
    the arid north-west (< 100 mm in the Tarim). Seasonal cycle: a wrapped Gaussian monsoon peak
    (mid-June, 60 days wide in the south; mid-July, 35 days wide north of 38 N) on a uniform
    base (20 % of the total; up to 38 % in the arid north-west, out of the monsoon's reach),
    normalised to the annual total. The north (north of 32 N, fully north of 40 N) dries by
    0.4 % per year around 1997, and each year has a log-normal total anomaly field (standard
    deviation 0.15, width 5 degrees). Daily values: with ``m`` the climatological mean, the
    wet-day probability is ``p = 0.75 (1 - exp(-m / 4 mm))`` and the day is wet where
    ``U = Phi(-Z) < p``; the amount is Weibull, ``lambda (-ln(U / p))**(1 / 0.75)`` with
    ``lambda = m / (p Gamma(1 + 1 / 0.75))`` (Wilks 1999), so the expected daily amount equals
    ``m`` exactly. ``Z`` is 88 % (in variance) a large-scale field (``L`` = 2 degrees,
    ``rho`` = 0.5) and 12 % cell-scale noise.

Cloud and humidity
    Cloud cover ``c = 1 / (1 + 0.43 sqrt(U / p))``: at least 0.7 on wet days, clearing as the
    day gets drier than the wet threshold, so the dry north-west is mostly clear (c ~ 0.4) and
    the humid south cloudy (c ~ 0.7). Relative humidity rises from a clear-day value set by
    aridity, season and cold (:func:`relative_humidity_percent`) towards 98 % with ``c**2``, so
    rain days are humid; the dewpoint follows from the Magnus formula (below the air
    temperature by construction, at most 28 degC).

Temperature
    Annual mean from latitude (0.62 K per degree, 1.12 K north of 40 N) and elevation (lapse
    rate 6.5 K km-1, with a mass-elevation warming of 4 K km-1 above 1,000 m, at most 10 K, for
    the Tibetan plateau), plus 0.15 K per degree west of 110 E for the continental interior.
    The seasonal cycle is a cosine (coldest 15 January) whose half-amplitude grows from 7.5 K
    at 23 N by 0.55 K per degree northwards (more in the west, less at altitude). Warming trend
    0.03 K yr-1 around 1997; anomaly field ``L`` = 4 degrees, ``rho`` = 0.85, standard
    deviation (1 + 0.06 (lat - 20)) K, 35 % larger in winter; an annual anomaly field
    (0.5 K); wet days are 1.5 K cooler.

Radiation
    Extraterrestrial radiation by latitude and day (FAO-56 Eq. 21), clear-sky radiation
    ``Rso = (0.75 + 2e-5 z) Ra`` (Eq. 37), all-sky ``Rs = Rso (1 - 0.65 c)`` (the Angstrom
    relation, Eq. 35, with sunshine fraction ``1 - c``) and net solar ``(1 - 0.23) Rs`` (Eq. 38).

Wind
    Speed climatology 2 m s-1 in the south to 3.2 m s-1 north of 45 N, plus 0.8 m s-1 in the
    northern spring (peak mid-April) and 0.4 m s-1 per km of elevation (at most 1.5); daily
    log-normal anomalies (0.3, ``L`` = 3 degrees, ``rho`` = 0.6). Direction from the north-west
    in winter turning to the south-east in summer, with 50-degree anomalies. ``u``/``v`` are
    the components and ``wind_speed = hypot(u, v)`` exactly.

Speed
    A paper-size year (144 x 248 cells x 366 days, 13 million cell-days) takes 1.5-3 s on one
    core of a shared machine (most of it in random numbers, the normal CDF and the power of the
    Weibull amounts); the process peaks at about 0.7 GB, half of it the returned dataset.

References
----------
Allen, R. G., Pereira, L. S., Raes, D., Smith, M. (1998). Crop evapotranspiration. FAO
Irrigation and Drainage Paper 56 (FAO-56).
Bardossy, A., Plate, E. J. (1992). Space-time model for daily rainfall using atmospheric
circulation patterns. Water Resources Research 28, 1247-1259.
Higdon, D. (1998). A process-convolution approach to modelling temperatures in the North
Atlantic Ocean. Environmental and Ecological Statistics 5, 173-190.
Kleiber, W., Katz, R. W., Rajagopalan, B. (2012). Daily spatiotemporal precipitation simulation
using latent and transformed Gaussian processes. Water Resources Research 48, W01523.
Wilks, D. S. (1999). Interannual variability and extreme-value characteristics of several
stochastic daily precipitation models. Agricultural and Forest Meteorology 93, 153-169.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyet
import xarray as xr
from scipy.ndimage import gaussian_filter
from scipy.signal import lfilter
from scipy.special import ndtr

REFERENCE_YEAR = 1997
"""Year at which the trends are zero (the middle of the paper's 1981-2013)."""

ALBEDO = 0.23
"""Albedo of the FAO-56 grass reference surface (Allen et al. 1998, Eq. 38)."""

LAPSE_RATE_K_PER_M = 0.0065
"""Environmental temperature lapse rate (K m-1)."""

MAX_WET_PROBABILITY = 0.75
"""Wet-day probability approached in the wettest season, ``p = 0.75 (1 - exp(-m / 4 mm))``."""

WET_PROBABILITY_SCALE_MM = 4.0
"""Mean daily precipitation (mm) at which the wet-day probability reaches 63 % of its maximum."""

WEIBULL_SHAPE = 0.75
"""Shape of the Weibull wet-day amounts (< 1: skewed like a gamma with shape < 1)."""

WET_DAY_COOLING_K = 1.5
"""Wet days are this much cooler than dry days with the same anomaly (K)."""

TEMPERATURE_TREND_K_PER_YR = 0.03
"""Warming trend of daily mean temperature (K yr-1), zero in ``REFERENCE_YEAR``."""

NORTH_DRYING_PER_YR = 0.004
"""Relative decline of precipitation per year in the north (north of 40 N in full)."""

CLOUD_SLOPE = 0.43
"""Cloud cover ``1 / (1 + 0.43 sqrt(U / p))``: 0.7 at the wet/dry threshold ``U = p``."""

CLOUD_RADIATION_LOSS = 0.65
"""Fraction of clear-sky radiation lost under full cloud (Angstrom as = 0.25, bs = 0.5)."""

WET_RELATIVE_HUMIDITY_PERCENT = 98.0
"""Relative humidity under full cloud (the ceiling; dewpoint stays below air temperature)."""

MAX_DEWPOINT_C = 28.0
"""Highest daily dewpoint allowed (about the highest observed in China)."""

WIND_MEASUREMENT_HEIGHT_M = 10.0
"""Height of the generated wind (m), as ERA's ``u10``/``v10``."""

# Coarse lattice on which the random fields are drawn, fixed in geographic space (degrees) so
# that grids anywhere inside it share the same large-scale weather.
# The box holds China (18-54 N, 73-135 E) with the widest kernel's reach (4 x 6 degrees).
_LATTICE_LAT = (-10.0, 80.0)
_LATTICE_LON = (45.0, 165.0)
_KERNEL_CUTOFF = 4.0  # kernel truncated at this many widths

# Approximate 1981-2010 annual precipitation normals (mm) at anchor stations in and around China:
# (name, lat N, lon E, mm). Compiled from CMA/WMO climate normals; values rounded, meant as a
# realistic large-scale pattern, not as station truth.
PRECIP_ANCHORS: tuple[tuple[str, float, float, float], ...] = (
    # Northeast
    ("Harbin", 45.75, 126.77, 520),
    ("Changchun", 43.90, 125.20, 600),
    ("Shenyang", 41.80, 123.40, 690),
    ("Dalian", 38.90, 121.60, 620),
    ("Dandong", 40.05, 124.33, 970),
    ("Mudanjiang", 44.57, 129.60, 540),
    ("Jiamusi", 46.82, 130.28, 540),
    ("Qiqihar", 47.38, 123.92, 440),
    ("Heihe", 50.25, 127.45, 530),
    ("Mohe", 52.97, 122.52, 460),
    ("Yanji", 42.88, 129.47, 530),
    ("Jixi", 45.28, 130.95, 540),
    ("Fuyu", 45.18, 124.82, 450),
    ("Jinzhou", 41.13, 121.12, 570),
    # North (Inner Mongolia, Shanxi)
    ("Hailar", 49.22, 119.75, 350),
    ("Chifeng", 42.27, 118.93, 370),
    ("Tongliao", 43.60, 122.27, 380),
    ("Ulanhot", 46.08, 122.05, 420),
    ("Xilinhot", 43.95, 116.07, 280),
    ("Erenhot", 43.65, 111.97, 140),
    ("Hohhot", 40.82, 111.68, 420),
    ("Baotou", 40.67, 109.85, 310),
    ("Dongsheng", 39.83, 109.98, 390),
    ("Linhe", 40.75, 107.40, 150),
    ("Bayanhot", 38.83, 105.67, 210),
    ("Ejin", 41.95, 101.07, 35),
    ("Datong", 40.10, 113.33, 380),
    ("Taiyuan", 37.78, 112.55, 460),
    ("Changzhi", 36.20, 113.12, 560),
    ("Yuncheng", 35.05, 111.05, 530),
    ("Arxan", 47.17, 119.93, 450),
    ("Manzhouli", 49.57, 117.43, 300),
    # Huang-Huai-Hai
    ("Beijing", 39.93, 116.28, 570),
    ("Tianjin", 39.08, 117.07, 540),
    ("Shijiazhuang", 38.03, 114.42, 530),
    ("Zhangjiakou", 40.78, 114.88, 410),
    ("Chengde", 40.97, 117.93, 530),
    ("Cangzhou", 38.33, 116.83, 580),
    ("Jinan", 36.60, 117.05, 690),
    ("Qingdao", 36.07, 120.33, 700),
    ("Yantai", 37.53, 121.40, 650),
    ("Linyi", 35.05, 118.35, 840),
    ("Zhengzhou", 34.72, 113.65, 640),
    ("Anyang", 36.05, 114.40, 560),
    ("Nanyang", 33.03, 112.58, 800),
    ("Xinyang", 32.13, 114.05, 1100),
    ("Xuzhou", 34.28, 117.15, 840),
    ("Bengbu", 32.95, 117.37, 910),
    ("Fuyang", 32.93, 115.82, 900),
    # East
    ("Shanghai", 31.40, 121.45, 1170),
    ("Nanjing", 32.00, 118.80, 1100),
    ("Hangzhou", 30.23, 120.17, 1450),
    ("Hefei", 31.87, 117.23, 1000),
    ("Anqing", 30.53, 117.05, 1400),
    ("Tunxi", 29.72, 118.28, 1700),
    ("Nanchang", 28.60, 115.92, 1600),
    ("Ganzhou", 25.87, 115.00, 1460),
    ("Jingdezhen", 29.30, 117.20, 1800),
    ("Wenzhou", 28.03, 120.65, 1700),
    ("Quzhou", 28.97, 118.87, 1750),
    ("Fuzhou", 26.08, 119.28, 1400),
    ("Xiamen", 24.48, 118.07, 1350),
    ("Nanping", 26.65, 118.17, 1700),
    ("Yancheng", 33.38, 120.13, 1050),
    ("Taipei", 25.03, 121.52, 2400),
    ("Kaohsiung", 22.57, 120.30, 1880),
    ("Hualien", 23.98, 121.60, 2150),
    # Central
    ("Wuhan", 30.62, 114.13, 1270),
    ("Yichang", 30.70, 111.30, 1150),
    ("Xiangyang", 32.03, 112.17, 860),
    ("Enshi", 30.28, 109.47, 1450),
    ("Changsha", 28.20, 112.92, 1400),
    ("Yueyang", 29.38, 113.08, 1350),
    ("Huaihua", 27.57, 109.97, 1330),
    ("Chenzhou", 25.80, 113.03, 1460),
    ("Changde", 29.05, 111.68, 1350),
    ("Shaoyang", 27.23, 111.47, 1330),
    # South
    ("Guangzhou", 23.17, 113.33, 1800),
    ("Shenzhen", 22.55, 114.10, 1930),
    ("Shantou", 23.40, 116.68, 1630),
    ("Shaoguan", 24.80, 113.58, 1580),
    ("Meixian", 24.27, 116.10, 1480),
    ("Zhanjiang", 21.22, 110.40, 1760),
    ("Yangjiang", 21.87, 111.97, 2350),
    ("Nanning", 22.82, 108.35, 1300),
    ("Guilin", 25.32, 110.30, 1900),
    ("Liuzhou", 24.35, 109.40, 1450),
    ("Wuzhou", 23.48, 111.30, 1500),
    ("Beihai", 21.45, 109.13, 1670),
    ("Baise", 23.90, 106.60, 1080),
    ("Hechi", 24.70, 108.05, 1500),
    ("Haikou", 20.03, 110.35, 1680),
    ("Sanya", 18.23, 109.52, 1500),
    ("Dongfang", 19.10, 108.62, 1000),
    ("Qionghai", 19.23, 110.47, 2070),
    ("Qinzhou", 21.95, 108.62, 2100),
    ("Yulin GX", 22.63, 110.17, 1650),
    ("Hezhou", 24.42, 111.53, 1550),
    ("Lianzhou", 24.78, 112.38, 1650),
    ("Qingyuan", 23.70, 113.05, 2150),
    ("Zhaoqing", 23.05, 112.45, 1650),
    ("Heyuan", 23.73, 114.68, 1950),
    ("Shanwei", 22.78, 115.37, 2300),
    ("Hong Kong", 22.30, 114.17, 2400),
    # Northwest
    ("Xian", 34.30, 108.93, 570),
    ("Hanzhong", 33.07, 107.03, 850),
    ("Yanan", 36.60, 109.50, 520),
    ("Yulin", 38.27, 109.78, 410),
    ("Ankang", 32.72, 109.03, 810),
    ("Lanzhou", 36.05, 103.88, 320),
    ("Tianshui", 34.58, 105.75, 520),
    ("Pingliang", 35.55, 106.67, 500),
    ("Wuwei", 37.92, 102.67, 170),
    ("Zhangye", 38.93, 100.43, 130),
    ("Jiuquan", 39.77, 98.48, 90),
    ("Dunhuang", 40.15, 94.68, 40),
    ("Hezuo", 35.00, 102.90, 560),
    ("Yinchuan", 38.48, 106.22, 190),
    ("Guyuan", 36.00, 106.27, 450),
    ("Xining", 36.62, 101.77, 390),
    ("Golmud", 36.42, 94.90, 45),
    ("Delingha", 37.37, 97.37, 200),
    ("Maduo", 34.92, 98.22, 320),
    ("Yushu", 33.02, 97.02, 480),
    ("Tuotuohe", 34.22, 92.43, 290),
    ("Mangya", 38.25, 90.85, 50),
    ("Urumqi", 43.78, 87.62, 290),
    ("Yining", 43.95, 81.33, 300),
    ("Tacheng", 46.73, 83.00, 300),
    ("Altay", 47.73, 88.08, 200),
    ("Karamay", 45.60, 84.85, 110),
    ("Kashgar", 39.47, 75.98, 65),
    ("Hotan", 37.13, 79.93, 45),
    ("Aksu", 41.17, 80.23, 80),
    ("Korla", 41.75, 86.13, 60),
    ("Turpan", 42.93, 89.20, 16),
    ("Hami", 42.82, 93.52, 40),
    ("Qiemo", 38.15, 85.55, 25),
    ("Ruoqiang", 39.03, 88.17, 30),
    ("Bayanbulak", 43.03, 84.15, 280),
    # Southwest
    ("Chengdu", 30.67, 104.02, 870),
    ("Chongqing", 29.58, 106.47, 1100),
    ("Mianyang", 31.45, 104.73, 960),
    ("Yaan", 29.98, 103.00, 1730),
    ("Yibin", 28.80, 104.60, 1080),
    ("Dazhou", 31.20, 107.50, 1200),
    ("Garze", 31.62, 100.00, 650),
    ("Xichang", 27.90, 102.27, 1010),
    ("Guiyang", 26.58, 106.73, 1120),
    ("Zunyi", 27.70, 106.88, 1090),
    ("Kunming", 25.02, 102.68, 1000),
    ("Lijiang", 26.87, 100.22, 970),
    ("Dali", 25.70, 100.18, 1050),
    ("Tengchong", 25.02, 98.50, 1530),
    ("Jinghong", 22.00, 100.78, 1200),
    ("Mengzi", 23.38, 103.38, 850),
    ("Lhasa", 29.67, 91.13, 430),
    ("Shigatse", 29.25, 88.88, 430),
    ("Nyingchi", 29.67, 94.33, 680),
    ("Nagqu", 31.48, 92.07, 430),
    ("Qamdo", 31.15, 97.17, 480),
    ("Shiquanhe", 32.50, 80.08, 70),
    ("Dingri", 28.63, 87.08, 280),
    ("Shenzha", 30.95, 88.63, 300),
    ("Pagri", 27.73, 89.08, 420),
    ("Gaize", 32.15, 84.42, 180),
    # Around China (keeps the edges of the grid realistic)
    ("Ulaanbaatar", 47.92, 106.87, 250),
    ("Dalanzadgad", 43.58, 104.42, 130),
    ("Choibalsan", 48.07, 114.53, 250),
    ("Chita", 52.02, 113.33, 350),
    ("Blagoveshchensk", 50.27, 127.50, 580),
    ("Vladivostok", 43.12, 131.90, 800),
    ("Pyongyang", 39.03, 125.78, 940),
    ("Seoul", 37.57, 126.97, 1450),
    ("Hanoi", 21.03, 105.85, 1680),
    ("Luang Prabang", 19.88, 102.13, 1250),
    ("Myitkyina", 25.38, 97.40, 2100),
    ("Guwahati", 26.10, 91.58, 1700),
    ("Kathmandu", 27.70, 85.37, 1500),
    ("Leh", 34.15, 77.57, 100),
    ("Almaty", 43.23, 76.93, 650),
    ("Bishkek", 42.85, 74.53, 450),
    ("Kabul", 34.57, 69.20, 330),
    ("Srinagar", 34.08, 74.83, 720),
    ("Zaysan", 47.47, 84.92, 280),
    ("Hovd", 48.02, 91.65, 130),
)
_ANCHOR_BANDWIDTH_DEG = 2.0
_OROGRAPHIC_GAIN_PER_KM = 0.5
_OROGRAPHIC_RANGE = (0.75, 1.5)


@dataclass(frozen=True)
class _FieldSpec:
    """A daily anomaly field: kernel width (degrees), lag-1 autocorrelation, stream id."""

    width_deg: float
    lag1_correlation: float
    stream: int


_PRECIP_FIELD = _FieldSpec(2.0, 0.5, 1)
_TEMPERATURE_FIELD = _FieldSpec(4.0, 0.85, 2)
_WIND_SPEED_FIELD = _FieldSpec(3.0, 0.6, 3)
_WIND_DIRECTION_FIELD = _FieldSpec(3.0, 0.7, 4)
_PRECIP_CELL_NOISE_STREAM = 10
_ANNUAL_PRECIP_STREAM = 11
_ANNUAL_TEMPERATURE_STREAM = 12
_PRECIP_CELL_NOISE_VARIANCE = 0.12


# ---------------------------------------------------------------------------------------------
# radiation and humidity (FAO-56)


def extraterrestrial_radiation_mj(lat_deg, day_of_year):
    """Daily extraterrestrial radiation (MJ m-2 d-1), FAO-56 Eq. 21.

    .. math::
        R_a = \\frac{24 \\cdot 60}{\\pi} G_{sc} d_r [\\omega_s \\sin\\varphi \\sin\\delta
              + \\cos\\varphi \\cos\\delta \\sin\\omega_s]

    with :math:`G_{sc} = 0.0820` MJ m-2 min-1, inverse relative distance Earth-Sun
    :math:`d_r = 1 + 0.033 \\cos(2\\pi J / 365)` (Eq. 23), solar declination
    :math:`\\delta = 0.409 \\sin(2\\pi J / 365 - 1.39)` (Eq. 24) and sunset hour angle
    :math:`\\omega_s = \\arccos(-\\tan\\varphi \\tan\\delta)` (Eq. 25, clipped for polar day
    and night).

    Parameters
    ----------
    lat_deg : array_like or xarray.DataArray
        Latitude (degrees north).
    day_of_year : array_like or xarray.DataArray
        Day of the year ``J`` (1-366). NumPy arrays broadcast as usual; DataArrays by dimension
        name.

    Returns
    -------
    array_like or xarray.DataArray
        Extraterrestrial radiation (MJ m-2 d-1), broadcast of the two inputs.

    References
    ----------
    Allen, R. G., Pereira, L. S., Raes, D., Smith, M. (1998). Crop evapotranspiration. FAO
    Irrigation and Drainage Paper 56, Eqs. 21-25.
    """
    phi = np.deg2rad(lat_deg)
    angle = 2.0 * np.pi * day_of_year / 365.0
    inverse_distance = 1.0 + 0.033 * np.cos(angle)
    declination = 0.409 * np.sin(angle - 1.39)
    cos_omega = -np.tan(phi) * np.tan(declination)
    sunset_angle = np.arccos(np.minimum(np.maximum(cos_omega, -1.0), 1.0))
    minutes_per_day_over_pi = 24.0 * 60.0 / np.pi
    solar_constant_mj_per_min = 0.0820
    sun_high = sunset_angle * np.sin(phi) * np.sin(declination)
    sun_low = np.cos(phi) * np.cos(declination) * np.sin(sunset_angle)
    geometry = sun_high + sun_low
    return minutes_per_day_over_pi * solar_constant_mj_per_min * inverse_distance * geometry


def clear_sky_radiation_mj(extraterrestrial_mj, elevation_m):
    """Clear-sky solar radiation (MJ m-2 d-1), FAO-56 Eq. 37.

    .. math:: R_{so} = (0.75 + 2 \\times 10^{-5} z) R_a

    Parameters
    ----------
    extraterrestrial_mj : array_like or xarray.DataArray
        Extraterrestrial radiation :math:`R_a` (MJ m-2 d-1).
    elevation_m : array_like or xarray.DataArray
        Station elevation :math:`z` above sea level (m).

    Returns
    -------
    array_like or xarray.DataArray
        Clear-sky (incoming) solar radiation (MJ m-2 d-1).

    References
    ----------
    Allen et al. (1998), FAO-56, Eq. 37.
    """
    return (0.75 + 2.0e-5 * elevation_m) * extraterrestrial_mj


def saturation_vapour_pressure_kpa(temperature_c):
    """Saturation vapour pressure over water (kPa), FAO-56 Eq. 11 (Tetens / Magnus form).

    .. math:: e^\\circ(T) = 0.6108 \\exp\\left(\\frac{17.27 T}{T + 237.3}\\right)

    Evaluated at the dewpoint it gives the actual vapour pressure (FAO-56 Eq. 14).

    Parameters
    ----------
    temperature_c : array_like or xarray.DataArray
        Temperature (degC).

    Returns
    -------
    array_like or xarray.DataArray
        Saturation vapour pressure (kPa).

    References
    ----------
    Allen et al. (1998), FAO-56, Eqs. 11 and 14.
    """
    return 0.6108 * np.exp(17.27 * temperature_c / (temperature_c + 237.3))


def atmospheric_pressure_kpa(elevation_m):
    """Mean atmospheric pressure at an elevation (kPa), FAO-56 Eq. 7.

    .. math:: P = 101.3 \\left(\\frac{293 - 0.0065 z}{293}\\right)^{5.26}

    Parameters
    ----------
    elevation_m : array_like or xarray.DataArray
        Elevation above sea level :math:`z` (m).

    Returns
    -------
    array_like or xarray.DataArray
        Atmospheric pressure (kPa).

    References
    ----------
    Allen et al. (1998), FAO-56, Eq. 7.
    """
    return 101.3 * ((293.0 - 0.0065 * elevation_m) / 293.0) ** 5.26


def wind_speed_2m(wind_speed_m_s, height_m: float = WIND_MEASUREMENT_HEIGHT_M):
    """Wind speed at 2 m from a speed measured at another height, FAO-56 Eq. 47.

    .. math:: u_2 = u_z \\frac{4.87}{\\ln(67.8 z - 5.42)}

    Parameters
    ----------
    wind_speed_m_s : array_like or xarray.DataArray
        Wind speed :math:`u_z` at height ``height_m`` (m s-1).
    height_m : float
        Measurement height :math:`z` (m); 10 m for ERA's ``u10``/``v10``.

    Returns
    -------
    array_like or xarray.DataArray
        Wind speed at 2 m (m s-1); 0.748 times the 10-m speed.

    References
    ----------
    Allen et al. (1998), FAO-56, Eq. 47.
    """
    return wind_speed_m_s * (4.87 / math.log(67.8 * height_m - 5.42))


# ---------------------------------------------------------------------------------------------
# climatologies


def annual_precipitation_climatology_mm(lat_deg, lon_deg, elevation_m=None) -> np.ndarray:
    """Climatological annual precipitation (mm yr-1) on a regular grid.

    Nadaraya-Watson kernel regression of the log annual normals of the anchor stations
    (``PRECIP_ANCHORS``, i = 1..n) with Gaussian weights, times an orographic factor:

    .. math::
        P(x) = \\exp\\left(\\frac{\\sum_i w_i \\ln P_i}{\\sum_i w_i}\\right)
               \\, \\mathrm{clip}\\left(1 + 0.5 \\frac{z - \\bar z}{1000}, 0.75, 1.5\\right),
        \\qquad w_i = \\exp\\left(-\\frac{d_i^2}{2 h^2}\\right)

    with :math:`d_i` the distance in degrees (longitude scaled by :math:`\\cos\\varphi`),
    :math:`h = 2` degrees, :math:`z` the elevation and :math:`\\bar z` the elevation smoothed
    with a 1-degree Gaussian filter (windward highs wetter than basins).

    Parameters
    ----------
    lat_deg, lon_deg : numpy.ndarray
        1-D ascending cell-centre latitudes and longitudes (degrees) of a regular grid.
    elevation_m : numpy.ndarray, optional
        Elevation (m), shape ``(lat, lon)``; without it there is no orographic factor.

    Returns
    -------
    numpy.ndarray
        Annual precipitation (mm), shape ``(lat, lon)``, float64.

    References
    ----------
    Nadaraya, E. A. (1964). On estimating regression. Theory of Probability and its
    Applications 9, 141-142. Station normals: China Meteorological Administration, 1981-2010
    climate normals (approximate values).
    """
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    anchors = np.array([a[1:] for a in PRECIP_ANCHORS], dtype=np.float64)
    a_lat, a_lon, a_mm = anchors[:, 0], anchors[:, 1], anchors[:, 2]
    dlat = lat[:, None, None] - a_lat[None, None, :]
    dlon = (lon[None, :, None] - a_lon[None, None, :]) * np.cos(np.deg2rad(lat))[:, None, None]
    log_w = -(dlat**2 + dlon**2) / (2.0 * _ANCHOR_BANDWIDTH_DEG**2)
    log_w -= log_w.max(axis=-1, keepdims=True)  # no underflow far from every anchor
    w = np.exp(log_w)
    annual = np.exp((w * np.log(a_mm)).sum(axis=-1) / w.sum(axis=-1))
    if elevation_m is not None:
        z = _clean_elevation(elevation_m)
        step = _grid_step_deg(lat, lon)
        z_smooth = gaussian_filter(z, sigma=1.0 / step, mode="nearest")
        factor = np.clip(
            1.0 + _OROGRAPHIC_GAIN_PER_KM * (z - z_smooth) / 1000.0, *_OROGRAPHIC_RANGE
        )
        annual = annual * factor
    return annual


def precipitation_seasonal_weights(lat_deg, lon_deg, day_of_year) -> np.ndarray:
    """Share of the annual precipitation that falls on each day of the year.

    A wrapped Gaussian monsoon peak on a uniform base, normalised over the days given
    (:math:`N` of them):

    .. math::
        w(J, \\varphi, \\lambda) = \\frac{b}{N} + (1 - b) \\frac{g(J)}{\\sum_J g(J)}, \\qquad
        g(J) = \\exp\\left(-\\frac{\\Delta(J, J_p)^2}{2 \\sigma^2}\\right)

    where :math:`\\Delta` is the circular day difference and, with
    :math:`f = \\mathrm{clip}((\\varphi - 24) / 14, 0, 1)` (0 in the south, 1 north of 38 N),
    the peak day :math:`J_p = 170 + 30 f` (mid-June to mid-July), the width
    :math:`\\sigma = 60 - 25 f` days and the base
    :math:`b = 0.20 - 0.02 f + 0.2\\, \\mathrm{clip}((105 - \\lambda) / 15, 0, 1)
    \\, \\mathrm{clip}((\\varphi - 34) / 4, 0, 1)` (the arid north-west, out of the monsoon's
    reach, has a flatter cycle). In expectation about 80 % of the total falls in
    April-September in South China and about 70 % in June-August in the north, as in the
    East Asian summer monsoon.

    Parameters
    ----------
    lat_deg, lon_deg : numpy.ndarray
        1-D latitudes and longitudes (degrees) of a grid.
    day_of_year : numpy.ndarray
        The days of the year (1-366), 1-D; the weights are normalised over these days.

    Returns
    -------
    numpy.ndarray
        float32 weights of shape ``(day, lat, lon)``, summing to 1 over the days.

    References
    ----------
    Ding, Y., Chan, J. C. L. (2005). The East Asian summer monsoon: an overview. Meteorology
    and Atmospheric Physics 89, 117-142 (timing and northward progression of the rain belt).
    """
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    doy = np.asarray(day_of_year, dtype=np.float64)
    north = np.clip((lat - 24.0) / 14.0, 0.0, 1.0)
    peak_doy = 170.0 + 30.0 * north
    width_days = 60.0 - 25.0 * north
    delta = (doy[:, None] - peak_doy[None, :] + 182.5) % 365.0 - 182.5
    peak = np.exp(-0.5 * (delta / width_days) ** 2)
    peak /= peak.sum(axis=0, keepdims=True)  # (day, lat)
    arid_west = (
        np.clip((105.0 - lon) / 15.0, 0.0, 1.0)[None, :]
        * np.clip((lat - 34.0) / 4.0, 0.0, 1.0)[:, None]
    )
    base = (0.20 - 0.02 * north)[:, None] + 0.2 * arid_west  # (lat, lon)
    weights = peak.astype(np.float32)[:, :, None] * (1.0 - base).astype(np.float32)[None]
    weights += (base / len(doy)).astype(np.float32)[None]
    return weights


def north_drying_factor(lat_deg, year: int):
    """Multiplier of precipitation for the drying trend in the north.

    .. math::
        f = \\mathrm{clip}(1 - 0.004\\, n(\\varphi)\\, (Y - 1997), 0.7, 1.3), \\qquad
        n = \\mathrm{clip}((\\varphi - 32) / 8, 0, 1)

    About -13 % over 1981-2013 in the north, nothing in the south (the paper finds soil moisture
    declining in northern cropland over 1981-2013).

    Parameters
    ----------
    lat_deg : array_like
        Latitude (degrees north).
    year : int
        Calendar year :math:`Y`.

    Returns
    -------
    numpy.ndarray
        Factor, same shape as ``lat_deg``.

    References
    ----------
    Liu et al. (2021), section 3 (the paper; :data:`cropsm.paper.CITATION`); Jia, B., et al.
    (2018). Soil moisture decline due to afforestation across the Loess Plateau, China.
    J. Hydrology 546, 113-122.
    """
    north = np.clip((np.asarray(lat_deg, dtype=np.float64) - 32.0) / 8.0, 0.0, 1.0)
    return np.clip(1.0 - NORTH_DRYING_PER_YR * north * (year - REFERENCE_YEAR), 0.7, 1.3)


def annual_mean_temperature_c(lat_deg, lon_deg, elevation_m):
    """Climatological annual mean 2-m air temperature (degC) around 1997.

    .. math::
        \\bar T = 24.8 - 0.62 (\\varphi - 20) - 0.5 \\max(\\varphi - 40, 0) - \\Gamma z
                  + \\min(0.004 \\max(z - 1000, 0), 10) + 0.15 \\max(110 - \\lambda, 0)

    with the lapse rate :math:`\\Gamma = 0.0065` K m-1, a mass-elevation (plateau heating) term
    and a continental-interior term; fitted by eye to station normals (Guangzhou 22 degC,
    Beijing 12, Harbin 4.5, Lhasa 8, Urumqi 7, Kashgar 12).

    Parameters
    ----------
    lat_deg, lon_deg, elevation_m : array_like
        Latitude, longitude (degrees) and elevation (m), broadcastable.

    Returns
    -------
    numpy.ndarray
        Annual mean temperature (degC).

    References
    ----------
    Barry, R. G. (2008). Mountain Weather and Climate, 3rd ed., Cambridge University Press
    (lapse rate, mass-elevation effect); Domros, M., Peng, G. (1988). The Climate of China,
    Springer (station normals).
    """
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    z = np.asarray(elevation_m, dtype=np.float64)
    return (
        24.8
        - 0.62 * (lat - 20.0)
        - 0.5 * np.maximum(lat - 40.0, 0.0)
        - LAPSE_RATE_K_PER_M * z
        + np.minimum(0.004 * np.maximum(z - 1000.0, 0.0), 10.0)
        + 0.15 * np.maximum(110.0 - lon, 0.0)
    )


def seasonal_temperature_amplitude_k(lat_deg, lon_deg, elevation_m):
    """Half the annual range (July minus January) of daily mean temperature (K).

    .. math::
        A = \\max(7.5 + 0.55 \\max(\\varphi - 23, 0) + 0.05 \\max(110 - \\lambda, 0)
            - 1.5 z / 1000, 3)

    continental: the amplitude grows northwards (Guangzhou 7.5 K, Beijing 15, Harbin 20) and
    inland, and shrinks at altitude (Kunming 6 K).

    Parameters
    ----------
    lat_deg, lon_deg, elevation_m : array_like
        Latitude, longitude (degrees) and elevation (m), broadcastable.

    Returns
    -------
    numpy.ndarray
        Half-amplitude (K); the daily climatology is :math:`\\bar T - A \\cos(2\\pi (J - 15)/365)`.

    References
    ----------
    Domros, M., Peng, G. (1988). The Climate of China, Springer (station normals).
    """
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    z = np.asarray(elevation_m, dtype=np.float64)
    amplitude = (
        7.5
        + 0.55 * np.maximum(lat - 23.0, 0.0)
        + 0.05 * np.maximum(110.0 - lon, 0.0)
        - 1.5 * z / 1000.0
    )
    return np.maximum(amplitude, 3.0)


def relative_humidity_percent(annual_precipitation_mm, seasonal_index, air_temperature_c, cloud):
    """Daily mean relative humidity (%) from aridity, season, temperature and cloud.

    .. math::
        R = \\mathrm{clip}\\left(35 + 40 (1 - e^{-P/900}) + 8 \\tanh(s - 1)
            + 0.6 \\max(-T, 0), 15, 90\\right), \\qquad
        RH = R + (98 - R)\\, c^2

    :math:`R` is the humidity of a clear day: higher where the climate is wetter (annual
    precipitation :math:`P`, mm), in the rainy season (:math:`s`, the day's share of the annual
    precipitation times the number of days, 1 on average) and in cold air (:math:`T`, degC,
    near saturation over snow); cloud :math:`c` (0-1) moistens the air towards 98 % under
    full overcast, so rain days (c >= 0.7) are humid. Annual means come out near 80 % in South
    China, 65-70 % on the North China Plain and 50 % in the Tarim basin (station normals: about
    77, 60-65 and 50 %).

    Parameters
    ----------
    annual_precipitation_mm : numpy.ndarray
        Climatological annual precipitation (mm), shape ``(lat, lon)``.
    seasonal_index : numpy.ndarray
        Day's precipitation weight times days in the year, shape ``(time, lat, lon)``.
    air_temperature_c : numpy.ndarray
        Daily mean air temperature (degC), shape ``(time, lat, lon)``.
    cloud : numpy.ndarray
        Cloud cover (0-1), shape ``(time, lat, lon)``.

    Returns
    -------
    numpy.ndarray
        Relative humidity (%), float32, shape ``(time, lat, lon)``.

    References
    ----------
    Domros, M., Peng, G. (1988). The Climate of China, Springer (relative humidity normals).
    """
    humid = 35.0 + 40.0 * (1.0 - np.exp(-np.asarray(annual_precipitation_mm) / 900.0))
    rh = np.subtract(seasonal_index, np.float32(1.0), dtype=np.float32)
    np.tanh(rh, out=rh)
    rh *= np.float32(8.0)
    rh += humid.astype(np.float32)[None]
    rh += np.float32(0.6) * np.maximum(-air_temperature_c, np.float32(0.0))
    np.clip(rh, np.float32(15.0), np.float32(90.0), out=rh)
    rh += (np.float32(WET_RELATIVE_HUMIDITY_PERCENT) - rh) * np.square(cloud)
    return rh


def dewpoint_from_relative_humidity_c(air_temperature_c, relative_humidity):
    """Dewpoint (degC) from air temperature and relative humidity, inverse of FAO-56 Eq. 11.

    .. math::
        T_d = \\frac{237.3\\, \\gamma}{17.27 - \\gamma}, \\qquad
        \\gamma = \\ln\\frac{RH}{100} + \\frac{17.27 T}{T + 237.3}

    (Magnus form; :math:`T_d \\le T` whenever :math:`RH \\le 100`).

    Parameters
    ----------
    air_temperature_c : numpy.ndarray
        Air temperature (degC).
    relative_humidity : numpy.ndarray
        Relative humidity (%, 0-100]; overwritten (used as work space).

    Returns
    -------
    numpy.ndarray
        Dewpoint temperature (degC), in the buffer of ``relative_humidity``.

    References
    ----------
    Lawrence, M. G. (2005). The relationship between relative humidity and the dewpoint
    temperature in moist air. Bulletin of the American Meteorological Society 86, 225-233.
    """
    gamma = relative_humidity
    gamma *= np.float32(0.01)
    np.log(gamma, out=gamma)
    gamma += np.float32(17.27) * air_temperature_c / (air_temperature_c + np.float32(237.3))
    dewpoint = np.float32(237.3) * gamma
    dewpoint /= np.float32(17.27) - gamma
    return dewpoint


# ---------------------------------------------------------------------------------------------
# random fields


def _rng(seed: int, year: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(year), int(stream)])


def _lattice(bounds: tuple[float, float], step: float, lo: float, hi: float) -> np.ndarray:
    """Lattice nodes (multiples of ``step``) covering ``bounds`` and ``[lo, hi]``."""
    start = min(bounds[0], lo)
    stop = max(bounds[1], hi)
    return np.arange(math.floor(start / step), math.ceil(stop / step) + 1) * step


def _kernel_weights(fine: np.ndarray, nodes: np.ndarray, width: float) -> np.ndarray:
    """Gaussian kernel weights (fine, node), rows normalised to unit L2 norm."""
    d = fine[:, None] - nodes[None, :]
    w = np.exp(-0.5 * (d / width) ** 2)
    w[np.abs(d) > _KERNEL_CUTOFF * width] = 0.0
    return w / np.sqrt((w**2).sum(axis=1, keepdims=True))


def _days_in_year(year: int) -> int:
    return 366 if pd.Timestamp(year=year, month=1, day=1).is_leap_year else 365


def anomaly_field(
    lat_deg: np.ndarray,
    lon_deg: np.ndarray,
    year: int,
    seed: int,
    width_deg: float,
    lag1_correlation: float,
    stream: int,
) -> np.ndarray:
    """Daily standard-normal anomaly field for one year, coherent in space and time.

    Process convolution (Higdon 1998) of AR(1) series on a coarse lattice fixed in space:

    .. math::
        F_k[t] = \\rho F_k[t-1] + \\sqrt{1 - \\rho^2} e_k[t], \\qquad
        Z(x, t) = \\sum_k a_k(x) F_k[t], \\quad
        a_k(x) \\propto \\exp\\left(-\\frac{(x - X_k)^2}{2 L^2}\\right), \\ \\sum_k a_k^2 = 1

    with separable kernels in latitude and longitude (degrees), lattice spacing :math:`0.75 L`,
    and :math:`e_k` i.i.d. standard normal from the stream ``(seed, year, stream)``. The filter
    runs over the innovations of ``year - 1`` and ``year`` (the former from their own stream,
    started from stationarity), so each year is generated independently while the series are
    continuous across New Year. :math:`Z` is standard normal at every cell and day, with
    correlation :math:`\\approx \\exp(-d^2/(4 L^2))` at distance :math:`d` and
    :math:`\\rho^{\\mathrm{lag}}` in time.

    Parameters
    ----------
    lat_deg, lon_deg : numpy.ndarray
        1-D cell-centre coordinates (degrees).
    year, seed : int
        Calendar year and random seed (non-negative).
    width_deg : float
        Kernel width :math:`L` (degrees).
    lag1_correlation : float
        Day-to-day correlation :math:`\\rho` (0 <= rho <= 0.95).
    stream : int
        Identifier of the field, so that different fields are independent.

    Returns
    -------
    numpy.ndarray
        float32 array of shape ``(days in year, lat, lon)``.

    References
    ----------
    Higdon, D. (1998). A process-convolution approach to modelling temperatures in the North
    Atlantic Ocean. Environmental and Ecological Statistics 5, 173-190.
    """
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    step = 0.75 * width_deg
    margin = _KERNEL_CUTOFF * width_deg
    lat_nodes = _lattice(_LATTICE_LAT, step, lat.min() - margin, lat.max() + margin)
    lon_nodes = _lattice(_LATTICE_LON, step, lon.min() - margin, lon.max() + margin)
    w_lat = _kernel_weights(lat, lat_nodes, width_deg)
    w_lon = _kernel_weights(lon, lon_nodes, width_deg)
    used_lat = np.flatnonzero(w_lat.any(axis=0))
    used_lon = np.flatnonzero(w_lon.any(axis=0))
    shape = (len(lat_nodes), len(lon_nodes))
    previous = _rng(seed, year - 1, stream).standard_normal((_days_in_year(year - 1), *shape))
    current = _rng(seed, year, stream).standard_normal((_days_in_year(year), *shape))
    innovations = np.concatenate(
        [previous[:, used_lat][:, :, used_lon], current[:, used_lat][:, :, used_lon]]
    )
    rho = float(lag1_correlation)
    gain = math.sqrt(1.0 - rho**2)
    innovations[0] /= gain  # start from the stationary distribution
    series = lfilter([gain], [1.0, -rho], innovations, axis=0)[len(previous) :]
    series = series.astype(np.float32)
    w_lat32 = w_lat[:, used_lat].astype(np.float32)
    w_lon32 = w_lon[:, used_lon].astype(np.float32)
    n_days, n_lat_nodes, n_lon_nodes = series.shape
    # longitude first, then latitude, each a banded sum in a fixed order (_banded_product)
    by_node = np.ascontiguousarray(series.transpose(2, 0, 1)).reshape(n_lon_nodes, -1)
    by_lon = _banded_product(w_lon32, by_node).reshape(len(lon), n_days, n_lat_nodes)
    by_lon = np.ascontiguousarray(by_lon.transpose(2, 1, 0)).reshape(n_lat_nodes, -1)
    by_lat = _banded_product(w_lat32, by_lon).reshape(len(lat), n_days, len(lon))
    return np.ascontiguousarray(by_lat.transpose(1, 0, 2))


def _banded_product(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``weights @ values`` for banded kernel weights, summed node by node in a fixed order.

    .. math:: out_i = \\sum_{j=0}^{n-1} w_{ij} v_j \\quad \\text{(ascending } j\\text{)}

    ``weights`` is ``(n_out, n)``, each column non-zero on one run of rows (a truncated
    kernel), ``values`` ``(n, m)``. Unlike a BLAS product, whose summation order (and so the
    last bits of a float32 result) changes with the number of threads and the processor's
    kernels, the order here is fixed, so the virtual China is the same file for the same seed
    on any machine and under any thread limit (a BLAS product gave different weather with 1
    and 2 OpenBLAS threads on the tiny preset). On the paper preset's grid the four daily
    fields of a year take about 0.8 s against 0.15 s (of a twin stage of about 10 min).
    """
    out = np.zeros((weights.shape[0], values.shape[1]), dtype=np.result_type(weights, values))
    for j in range(weights.shape[1]):
        rows = np.flatnonzero(weights[:, j])
        if rows.size:
            lo, hi = rows[0], rows[-1] + 1
            out[lo:hi] += weights[lo:hi, j, None] * values[j]
    return out


def _annual_field(lat, lon, year, seed, width_deg, stream) -> np.ndarray:
    """One standard-normal field for the whole year (lat, lon), independent between years."""
    step = 0.75 * width_deg
    margin = _KERNEL_CUTOFF * width_deg
    lat_nodes = _lattice(_LATTICE_LAT, step, lat.min() - margin, lat.max() + margin)
    lon_nodes = _lattice(_LATTICE_LON, step, lon.min() - margin, lon.max() + margin)
    nodes = _rng(seed, year, stream).standard_normal((len(lat_nodes), len(lon_nodes)))
    w_lat = _kernel_weights(lat, lat_nodes, width_deg)
    w_lon = _kernel_weights(lon, lon_nodes, width_deg)
    return _banded_product(w_lon, _banded_product(w_lat, nodes).T).T


# ---------------------------------------------------------------------------------------------
# helpers


def _clean_elevation(elevation_m) -> np.ndarray:
    """Elevation as float64 with NaN (sea, missing) as 0 m and below sea level as 0 m."""
    z = np.asarray(elevation_m, dtype=np.float64)
    return np.maximum(np.nan_to_num(z, nan=0.0), 0.0)


def _grid_step_deg(lat: np.ndarray, lon: np.ndarray) -> float:
    steps = [np.abs(np.diff(c)).min() for c in (lat, lon) if len(c) > 1]
    return float(min(steps)) if steps else 1.0


def _check_grid(elevation: xr.DataArray, region: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    for name, da in (("elevation", elevation), ("region", region)):
        if tuple(da.dims) != ("lat", "lon"):
            raise ValueError(f"{name}: expected dims ('lat', 'lon'), got {tuple(da.dims)}")
    lat = np.asarray(elevation["lat"].values, dtype=np.float64)
    lon = np.asarray(elevation["lon"].values, dtype=np.float64)
    if region.shape != elevation.shape or not (
        np.allclose(region["lat"].values, lat) and np.allclose(region["lon"].values, lon)
    ):
        raise ValueError("region: expected the same lat/lon grid as elevation")
    for name, c in (("lat", lat), ("lon", lon)):
        if len(c) > 1 and not np.all(np.diff(c) > 0):
            raise ValueError(f"{name}: expected strictly ascending coordinates")
    return lat, lon


_ATTRS = {
    "precipitation": {
        "units": "mm d-1",
        "long_name": "daily total precipitation",
        "standard_name": "lwe_precipitation_rate",
    },
    "air_temperature": {
        "units": "degC",
        "long_name": "daily mean 2-m air temperature",
        "standard_name": "air_temperature",
    },
    "dewpoint_temperature": {
        "units": "degC",
        "long_name": "daily mean 2-m dewpoint temperature",
        "standard_name": "dew_point_temperature",
    },
    "net_solar_radiation": {
        "units": "MJ m-2 d-1",
        "long_name": "daily surface net solar (shortwave) radiation",
        "standard_name": "surface_net_downward_shortwave_flux",
    },
    "wind_speed": {
        "units": "m s-1",
        "long_name": "daily mean 10-m wind speed",
        "standard_name": "wind_speed",
    },
    "cloud_cover": {
        "units": "1",
        "long_name": "daily mean total cloud cover",
        "standard_name": "cloud_area_fraction",
    },
    "u_wind": {
        "units": "m s-1",
        "long_name": "daily mean 10-m eastward wind component",
        "standard_name": "eastward_wind",
    },
    "v_wind": {
        "units": "m s-1",
        "long_name": "daily mean 10-m northward wind component",
        "standard_name": "northward_wind",
    },
}
CLIMATE_VARIABLES = tuple(_ATTRS)
"""Variables of :func:`generate_weather_year`: the canonical six plus ``u_wind``/``v_wind``."""


# ---------------------------------------------------------------------------------------------
# the generator


def generate_weather_year(
    elevation: xr.DataArray, region: xr.DataArray, year: int, seed: int
) -> xr.Dataset:
    """Daily weather of one calendar year on the whole grid (see the module docstring).

    Deterministic for ``(seed, year)`` and independent of every other year, so years can be
    drawn in any order or in parallel; the large-scale anomalies are nevertheless continuous
    across New Year. The climatology depends only on latitude, longitude and elevation, so a
    sub-grid (e.g. the ``tiny`` preset) has the same climate and large-scale weather as the
    same cells of a bigger grid (the cell-scale precipitation noise differs).

    Parameters
    ----------
    elevation : xarray.DataArray
        Surface elevation (m), dims ``(lat, lon)`` with ascending coordinates (degrees). NaN and
        negative values are taken as 0 m.
    region : xarray.DataArray
        Region codes (1-8, 0 outside China) on the same grid. Only checked against the grid:
        weather is drawn everywhere, inside and outside China, from geographic climatologies.
    year : int
        Calendar year (daily time steps 1 January to 31 December).
    seed : int
        Non-negative random seed.

    Returns
    -------
    xarray.Dataset
        ``precipitation`` (mm d-1), ``air_temperature`` (degC), ``dewpoint_temperature``
        (degC), ``net_solar_radiation`` (MJ m-2 d-1), ``wind_speed`` (m s-1), ``cloud_cover``
        (1), ``u_wind`` and ``v_wind`` (m s-1): float32, dims ``(time, lat, lon)``, ``units``
        and ``long_name`` attributes; ``time`` daily at midnight.
    """
    lat, lon = _check_grid(elevation, region)
    if seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed}")
    dates = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D")
    doy = dates.dayofyear.to_numpy().astype(np.float64)
    n_days = len(dates)
    z = _clean_elevation(elevation.values)
    lat2d = lat[:, None]
    lon2d = lon[None, :]

    # --- precipitation climatology: mean daily amount m (time, lat, lon), mm d-1
    annual_mm = annual_precipitation_climatology_mm(lat, lon, z)
    annual_mm *= north_drying_factor(lat2d, year)
    climatological_annual_mm = annual_mm.copy()
    annual_sd = 0.15
    annual_mm *= np.exp(
        annual_sd * _annual_field(lat, lon, year, seed, 5.0, _ANNUAL_PRECIP_STREAM)
        - 0.5 * annual_sd**2
    )
    seasonal = precipitation_seasonal_weights(lat, lon, doy)  # (time, lat, lon), sums to 1
    mean_mm = seasonal * annual_mm.astype(np.float32)[None]

    # --- latent field and occurrence
    latent = anomaly_field(
        lat,
        lon,
        year,
        seed,
        _PRECIP_FIELD.width_deg,
        _PRECIP_FIELD.lag1_correlation,
        _PRECIP_FIELD.stream,
    )
    latent *= np.float32(math.sqrt(1.0 - _PRECIP_CELL_NOISE_VARIANCE))
    noise = _rng(seed, year, _PRECIP_CELL_NOISE_STREAM).standard_normal(
        latent.shape, dtype=np.float32
    )
    noise *= np.float32(math.sqrt(_PRECIP_CELL_NOISE_VARIANCE))
    latent += noise
    del noise
    np.negative(latent, out=latent)
    ratio = ndtr(latent, out=latent)  # U = Phi(-Z), uniform; small U = wet
    np.maximum(ratio, np.float32(1e-12), out=ratio)
    wet_probability = np.exp(mean_mm / np.float32(-WET_PROBABILITY_SCALE_MM))
    np.subtract(1.0, wet_probability, out=wet_probability)
    wet_probability *= np.float32(MAX_WET_PROBABILITY)
    np.maximum(wet_probability, np.float32(1e-6), out=wet_probability)
    ratio /= wet_probability  # U / p: < 1 on wet days
    wet = ratio < 1.0

    # --- amounts: Weibull, mean m / p on wet days
    scale = mean_mm / (wet_probability * np.float32(math.gamma(1.0 + 1.0 / WEIBULL_SHAPE)))
    del wet_probability
    precipitation = np.log(ratio)
    np.negative(precipitation, out=precipitation)
    np.maximum(precipitation, 0.0, out=precipitation)
    np.power(precipitation, np.float32(1.0 / WEIBULL_SHAPE), out=precipitation)
    precipitation *= scale
    del scale
    precipitation[~wet] = 0.0

    # --- cloud cover
    del mean_mm
    cloud = ratio
    np.sqrt(cloud, out=cloud)
    cloud *= np.float32(CLOUD_SLOPE)
    cloud += 1.0
    np.reciprocal(cloud, out=cloud)

    # --- temperature
    t_mean = annual_mean_temperature_c(lat2d, lon2d, z)
    t_mean += TEMPERATURE_TREND_K_PER_YR * (year - REFERENCE_YEAR)
    t_mean += 0.5 * _annual_field(lat, lon, year, seed, 6.0, _ANNUAL_TEMPERATURE_STREAM)
    amplitude = seasonal_temperature_amplitude_k(lat2d, lon2d, z)
    season = np.cos(2.0 * np.pi * (doy - 15.0) / 365.0)  # 1 in mid-January
    sd = (1.0 + 0.06 * (lat - 20.0))[None, :] * (1.0 + 0.35 * season)[:, None]  # (time, lat)
    air_temperature = anomaly_field(
        lat,
        lon,
        year,
        seed,
        _TEMPERATURE_FIELD.width_deg,
        _TEMPERATURE_FIELD.lag1_correlation,
        _TEMPERATURE_FIELD.stream,
    )
    air_temperature *= sd.astype(np.float32)[:, :, None]
    air_temperature += t_mean.astype(np.float32)[None]
    air_temperature -= season.astype(np.float32)[:, None, None] * amplitude.astype(np.float32)
    air_temperature[wet] -= np.float32(WET_DAY_COOLING_K)
    del wet
    dewpoint = dewpoint_from_relative_humidity_c(
        air_temperature,
        relative_humidity_percent(
            climatological_annual_mm, seasonal * np.float32(n_days), air_temperature, cloud
        ),
    )
    del seasonal
    np.minimum(dewpoint, np.float32(MAX_DEWPOINT_C), out=dewpoint)

    # --- radiation
    clear_sky = clear_sky_radiation_mj(
        extraterrestrial_radiation_mj(lat[None, :], doy[:, None]).astype(np.float32)[:, :, None],
        z.astype(np.float32)[None],
    )
    net_solar = np.maximum(clear_sky, 0.0)
    del clear_sky
    net_solar *= 1.0 - np.float32(CLOUD_RADIATION_LOSS) * cloud
    net_solar *= np.float32(1.0 - ALBEDO)

    # --- wind
    north = np.clip((lat - 25.0) / 20.0, 0.0, 1.0)[:, None]
    spring = np.exp(-0.5 * (((doy - 105.0 + 182.5) % 365.0 - 182.5) / 35.0) ** 2)
    speed_base = (2.0 + 1.2 * north + np.minimum(0.4 * z / 1000.0, 1.5)).astype(np.float32)
    speed_clim = speed_base[None] + (0.8 * spring).astype(np.float32)[:, None, None] * north[
        None
    ].astype(np.float32)
    speed_sd = 0.3
    wind_speed = anomaly_field(
        lat,
        lon,
        year,
        seed,
        _WIND_SPEED_FIELD.width_deg,
        _WIND_SPEED_FIELD.lag1_correlation,
        _WIND_SPEED_FIELD.stream,
    )
    wind_speed *= np.float32(speed_sd)
    wind_speed -= np.float32(0.5 * speed_sd**2)
    np.exp(wind_speed, out=wind_speed)
    wind_speed *= speed_clim
    del speed_clim
    summer = 0.5 * (1.0 - season)  # 0 mid-January, 1 mid-July
    direction_clim_deg = (315.0 - 180.0 * summer).astype(np.float32)  # NW -> SE
    direction = anomaly_field(
        lat,
        lon,
        year,
        seed,
        _WIND_DIRECTION_FIELD.width_deg,
        _WIND_DIRECTION_FIELD.lag1_correlation,
        _WIND_DIRECTION_FIELD.stream,
    )
    direction *= np.float32(np.deg2rad(50.0))
    direction += np.deg2rad(direction_clim_deg)[:, None, None]
    u_wind = np.sin(direction)
    u_wind *= wind_speed
    np.negative(u_wind, out=u_wind)  # meteorological convention: direction the wind comes from
    v_wind = np.cos(direction, out=direction)
    v_wind *= wind_speed
    np.negative(v_wind, out=v_wind)
    np.hypot(u_wind, v_wind, out=wind_speed)

    data = {
        "precipitation": precipitation,
        "air_temperature": air_temperature,
        "dewpoint_temperature": dewpoint,
        "net_solar_radiation": net_solar,
        "wind_speed": wind_speed,
        "cloud_cover": cloud,
        "u_wind": u_wind,
        "v_wind": v_wind,
    }
    coords = {
        "time": ("time", dates.values.astype("datetime64[ns]")),
        "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
        "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
    }
    ds = xr.Dataset(
        {
            name: (("time", "lat", "lon"), values.astype(np.float32, copy=False), _ATTRS[name])
            for name, values in data.items()
        },
        coords=coords,
        attrs={
            "title": "virtual China daily weather",
            "source": "cropsm.twin.weather.generate_weather_year (stochastic weather generator)",
            "cropsm_seed": int(seed),
            "cropsm_year": int(year),
        },
    )
    return ds


# ---------------------------------------------------------------------------------------------
# reference evapotranspiration


def _elevation_like(climate: xr.Dataset, elevation) -> xr.DataArray | float:
    """Elevation on the spatial dims of ``climate``."""
    if not isinstance(elevation, xr.DataArray):
        return float(elevation)
    space_dims = [d for d in climate["air_temperature"].dims if d != "time"]
    if set(elevation.dims) == set(space_dims):
        for dim in space_dims:
            if dim in climate.indexes and dim in elevation.indexes:
                if not climate.indexes[dim].equals(elevation.indexes[dim]):
                    raise ValueError(f"elevation: coordinate {dim!r} differs from the climate's")
            if elevation.sizes[dim] != climate.sizes[dim]:
                raise ValueError(f"elevation: size of {dim!r} differs from the climate's")
        return elevation.variable.transpose(*space_dims)
    if set(elevation.dims) == {"lat", "lon"} and {"lat", "lon"} <= set(climate.coords):
        picked = elevation.sel(
            lat=xr.DataArray(np.asarray(climate["lat"].values), dims=climate["lat"].dims),
            lon=xr.DataArray(np.asarray(climate["lon"].values), dims=climate["lon"].dims),
            method="nearest",
        )
        return picked.variable
    raise ValueError(
        f"elevation: expected dims {tuple(space_dims)} (those of the climate) or (lat, lon), "
        f"got {tuple(elevation.dims)}"
    )


def potential_et_mm(climate: xr.Dataset, elevation) -> xr.DataArray:
    """Daily FAO-56 Penman-Monteith grass reference evapotranspiration (mm d-1).

    Computed with ``pyet.pm_fao56`` (Allen et al. 1998, Eq. 6):

    .. math::
        ET_0 = \\frac{0.408 \\Delta (R_n - G) + \\gamma \\frac{900}{T + 273} u_2 (e_s - e_a)}
                    {\\Delta + \\gamma (1 + 0.34 u_2)}

    fed from the canonical variables: :math:`T` = ``air_temperature``; :math:`e_a` the
    saturation vapour pressure at ``dewpoint_temperature`` (Eq. 14); :math:`e_s` from
    ``air_temperature_max``/``air_temperature_min`` when present (Eq. 12), else from
    :math:`T`; :math:`u_2` the 10-m ``wind_speed`` reduced to 2 m (Eq. 47); incoming solar
    :math:`R_s` = ``net_solar_radiation`` / (1 - 0.23) (Eq. 38 inverted, ERA's ``ssr`` is net);
    clear-sky :math:`R_{so}` from latitude, day of year and elevation (Eqs. 21, 37) for the
    net longwave (Eq. 39); pressure from elevation (Eq. 7); :math:`G = 0` (daily).

    Penman-Monteith is chosen over Priestley-Taylor because the canonical climate carries
    humidity and wind, and the arid north-west is dominated by the aerodynamic term.

    Parameters
    ----------
    climate : xarray.Dataset
        Canonical climate (``air_temperature``, ``dewpoint_temperature``,
        ``net_solar_radiation``, ``wind_speed``) with a ``time`` dimension and a ``lat``
        coordinate (degrees north). Accepted layouts: ``(time, lat, lon)`` grids, or any set of
        cells such as ``(time, cell)`` where ``lat`` (and ``lon``) are coordinates on ``cell``
        (e.g. from ``climate.isel(lat=..., lon=...)`` with vectorised indexers or
        ``climate.stack(cell=("lat", "lon"))``), so the caller can pass the cropland cells only.
    elevation : xarray.DataArray or float
        Elevation (m): either on the same spatial dims as ``climate`` (same coordinates), or a
        ``(lat, lon)`` grid from which the nearest cell is taken for each climate cell (needs
        ``lat`` and ``lon`` coordinates in ``climate``), or one number.

    Returns
    -------
    xarray.DataArray
        ``potential_et`` (mm d-1, float32) with the dims and coordinates of
        ``climate.air_temperature``; never negative.

    References
    ----------
    Allen, R. G., Pereira, L. S., Raes, D., Smith, M. (1998). Crop evapotranspiration. FAO
    Irrigation and Drainage Paper 56. Vremec, M., Collenteur, R. A., Birk, S. (2024). Technical
    note: Improved handling of potential evapotranspiration in hydrological studies with PyEt.
    Hydrology and Earth System Sciences 28, 1421-1438.
    """
    missing = [
        v
        for v in ("air_temperature", "dewpoint_temperature", "net_solar_radiation", "wind_speed")
        if v not in climate
    ]
    if missing or "lat" not in climate.coords or "time" not in climate.dims:
        raise ValueError(
            "climate: expected variables air_temperature, dewpoint_temperature, "
            "net_solar_radiation, wind_speed, a time dimension and a lat coordinate; "
            f"missing {missing or ['time/lat']}"
        )
    tmean = climate["air_temperature"]
    dims = tmean.dims
    coords = tmean.coords
    plain = {
        name: xr.DataArray(climate[name].variable).transpose(*dims)
        for name in ("air_temperature", "dewpoint_temperature", "net_solar_radiation", "wind_speed")
    }
    z = _elevation_like(climate, elevation)
    z_da = xr.DataArray(z) if isinstance(z, xr.Variable) else z
    day_of_year = xr.DataArray(climate["time"].dt.dayofyear.values.astype(np.float32), dims="time")
    lat = xr.DataArray(climate["lat"].variable.astype(np.float32))
    extraterrestrial = extraterrestrial_radiation_mj(lat, day_of_year)
    clear_sky = clear_sky_radiation_mj(extraterrestrial, z_da)
    rs = plain["net_solar_radiation"] / (1.0 - ALBEDO)
    clear_sky = clear_sky.broadcast_like(rs).transpose(*dims)
    extra = {}
    if "air_temperature_max" in climate and "air_temperature_min" in climate:
        extra["tmax"] = xr.DataArray(climate["air_temperature_max"].variable).transpose(*dims)
        extra["tmin"] = xr.DataArray(climate["air_temperature_min"].variable).transpose(*dims)
    et0 = pyet.pm_fao56(
        plain["air_temperature"],
        wind=wind_speed_2m(plain["wind_speed"]),
        rs=rs,
        pressure=atmospheric_pressure_kpa(z_da),
        ea=saturation_vapour_pressure_kpa(plain["dewpoint_temperature"]),
        rso=clear_sky,
        **extra,
    )
    et0 = et0.transpose(*dims).astype(np.float32)
    return xr.DataArray(
        et0.values,
        dims=dims,
        coords=coords,
        name="potential_et",
        attrs={
            "units": "mm d-1",
            "long_name": "FAO-56 Penman-Monteith grass reference evapotranspiration",
        },
    )
