"""Where a site is, as network inputs: the unit vector of its latitude and longitude.

A soil's water-holding behaviour varies smoothly in space (texture, parent material, land use
and climate regimes are regional), so a network fed only weather and a few site constants cannot
tell two sites with similar weather but different soils apart. Location is known for every
station and every grid cell (a national product has each cell's latitude and longitude), and it
identifies no station: a held-out station's location is as available as a new cell's. It enters
as the point on the unit sphere,

.. math:: x = \\cos\\varphi\\cos\\lambda,\\quad y = \\cos\\varphi\\sin\\lambda,\\quad
          z = \\sin\\varphi,

(latitude ``phi``, longitude ``lambda``) rather than as raw degrees, so that neighbouring places
have neighbouring inputs everywhere (no jump at the antimeridian, no crowding at the poles).
Measured on USCRN (issue 12, ``benchmarks/real_data_skill.py``).
"""

from __future__ import annotations

import numpy as np

LOCATION_FEATURES: tuple[str, ...] = ("loc_x", "loc_y", "loc_z")
"""Network inputs of the ``location`` group (crop-aware set): the site's unit vector."""

LOCATION_ATTRS: dict[str, dict[str, str]] = {
    "loc_x": {"units": "1", "long_name": "cos(latitude) cos(longitude)"},
    "loc_y": {"units": "1", "long_name": "cos(latitude) sin(longitude)"},
    "loc_z": {"units": "1", "long_name": "sin(latitude)"},
}


def location_unit_vector(lat_deg, lon_deg) -> dict[str, np.ndarray]:
    """The ``loc_x``, ``loc_y``, ``loc_z`` inputs of places at ``lat_deg``, ``lon_deg``.

    Parameters
    ----------
    lat_deg, lon_deg
        Latitude (degrees north, -90...90) and longitude (degrees east, any branch: -180...180
        and 0...360 give the same vector), broadcastable arrays.

    Returns
    -------
    dict
        ``x = cos(lat) cos(lon)``, ``y = cos(lat) sin(lon)``, ``z = sin(lat)`` (float64, unit
        length); NaN where a coordinate is NaN.

    Raises
    ------
    ValueError
        For a finite latitude outside -90...90 (degrees expected, not radians or a row index).
    """
    lat = np.asarray(lat_deg, dtype=np.float64)
    lon = np.asarray(lon_deg, dtype=np.float64)
    if np.any(np.abs(lat[np.isfinite(lat)]) > 90.0):
        raise ValueError("latitude outside -90...90 degrees")
    phi, lam = np.radians(lat), np.radians(lon)
    return {
        "loc_x": np.cos(phi) * np.cos(lam),
        "loc_y": np.cos(phi) * np.sin(lam),
        "loc_z": np.sin(phi) + 0.0 * lam,
    }
