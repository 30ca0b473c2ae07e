"""Raster readers: ESRI ASCII grids (MIRCA2000), ETOPO-style text grids, GeoTIFF, point lookup."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from cropsm.errors import InputError
from cropsm.io.rasters import (
    read_elevation_grid,
    read_esri_ascii,
    read_etopo20,
    read_geotiff,
    read_text_grid,
    values_at_points,
)

ASC = """ncols 4
nrows 3
xllcorner 100.0
yllcorner 30.0
cellsize 0.5
NODATA_value -9999
1 2 3 4
5 -9999 7 8
9 10 11 12
"""


def test_esri_ascii_orientation_and_nodata(tmp_path: Path) -> None:
    path = tmp_path / "crop.asc"
    path.write_text(ASC)
    grid = read_esri_ascii(path, name="harvested_area", units="ha")
    assert grid.dims == ("lat", "lon")
    np.testing.assert_allclose(grid["lon"], [100.25, 100.75, 101.25, 101.75])
    np.testing.assert_allclose(grid["lat"], [30.25, 30.75, 31.25])  # ascending
    # first file row is the northernmost
    np.testing.assert_array_equal(grid.sel(lat=31.25).values, [1, 2, 3, 4])
    assert np.isnan(grid.sel(lat=30.75, lon=100.75).item())
    assert grid.attrs["units"] == "ha"
    gz = tmp_path / "crop.asc.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write(ASC.replace("xllcorner 100.0", "xllcenter 100.25").replace(
            "yllcorner 30.0", "yllcenter 30.25"))  # fmt: skip
    np.testing.assert_array_equal(read_esri_ascii(gz).values, grid.values)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (ASC.replace("ncols 4\n", ""), r"header: missing 'ncols'"),
        (ASC.replace("5 -9999 7 8", "5 -9999 7"), r"line 8: 3 values; expected ncols = 4"),
        (ASC.replace("10 11", "1O 11"), r"line 9: '1O' is not a number"),
        (ASC.replace("cellsize 0.5", "cellsize abc"), r"line 5: header cellsize value 'abc'"),
        (ASC.replace("yllcorner 30.0", "yllcorner 30.0\nyllcenter 30.25"), "exactly one of yll"),
    ],
)
def test_esri_ascii_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.asc"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        read_esri_ascii(path)
    assert str(path) in str(info.value)


def write_etopo(folder: Path, lats: np.ndarray, lons: np.ndarray, data: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "etopo20lats.gz", "wt") as handle:
        handle.write("\n".join(f"{v:.18e}" for v in lats) + "\n")
    with gzip.open(folder / "etopo20lons.gz", "wt") as handle:
        handle.write("\n".join(f"{v:.18e}" for v in lons) + "\n")
    with gzip.open(folder / "etopo20data.gz", "wt") as handle:
        for row in data:
            handle.write(" ".join(f"{v:.18e}" for v in row) + "\n")
    return folder


def global_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 30-degree global grid laid out as ETOPO20: longitudes 15...375 (first one repeated)."""
    lats = np.arange(-75.0, 90.0, 30.0)
    lons = np.arange(15.0, 376.0, 30.0)
    wrapped = np.where(lons > 180, lons - 360, lons)
    data = np.add.outer(lats, wrapped)  # value = lat + lon (wrapped)
    return lats, lons, data


def test_etopo_layout_wraps_longitude(tmp_path: Path) -> None:
    lats, lons, data = global_grid()
    grid = read_etopo20(write_etopo(tmp_path / "etopo20", lats, lons, data))
    assert grid.sizes == {"lat": 6, "lon": 12}  # the repeated 375 column is dropped
    assert grid["lon"].values[0] == -165.0 and grid["lon"].values[-1] == 165.0
    assert grid.sel(lat=45.0, lon=-105.0).item() == pytest.approx(45.0 - 105.0)
    assert grid.attrs["units"] == "m"
    same = read_elevation_grid(tmp_path / "etopo20")
    np.testing.assert_array_equal(same.values, grid.values)


def test_text_grid_errors(tmp_path: Path) -> None:
    lats, lons, data = global_grid()
    folder = write_etopo(tmp_path / "bad", lats, lons, data[:, :-1])
    with pytest.raises(InputError, match="line 1: 12 values; expected one per longitude"):
        read_etopo20(folder)
    folder = write_etopo(tmp_path / "bad2", lats, lons, data[:-1])
    with pytest.raises(InputError, match="5 rows; expected one per latitude"):
        read_etopo20(folder)
    (tmp_path / "bad3").mkdir()
    with pytest.raises(InputError, match="etopo20data.gz: file not found"):
        read_etopo20(tmp_path / "bad3")
    lat_file = tmp_path / "lats.txt"
    lat_file.write_text("1\nx\n")
    with pytest.raises(InputError, match="value 2: 'x' is not a number"):
        read_text_grid(tmp_path / "none", lat_file, lat_file)


def test_values_at_points_nearest_bilinear_periodic(tmp_path: Path) -> None:
    lats, lons, data = global_grid()
    grid = read_etopo20(write_etopo(tmp_path / "etopo20", lats, lons, data))
    near = values_at_points(grid, np.array([44.0, -10.0]), np.array([-100.0, 200.0]))
    np.testing.assert_allclose(near, [45.0 - 105.0, -15.0 - 165.0])
    bil = values_at_points(grid, np.array([30.0]), np.array([-90.0]), method="bilinear")
    assert bil[0] == pytest.approx(30.0 - 90.0)  # value = lat + lon is linear inside a cell
    # across the date line the grid is periodic: halfway between 165 and -165 (= 195)
    wrap = values_at_points(grid, np.array([15.0]), np.array([180.0]), method="bilinear")
    assert wrap[0] == pytest.approx(15.0 + 0.5 * (165.0 - 165.0))
    regional = grid.sel(lat=slice(0, 60), lon=slice(0, 90))
    assert np.isnan(values_at_points(regional, np.array([10.0]), np.array([-120.0]))[0])


def test_geotiff_read_and_projected_crs_error(tmp_path: Path) -> None:
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import Affine

    values = np.arange(12, dtype=np.float32).reshape(3, 4)
    values[1, 1] = -1.0
    path = tmp_path / "soil.tif"
    profile = {
        "driver": "GTiff", "height": 3, "width": 4, "count": 1, "dtype": "float32",
        "crs": "EPSG:4326", "transform": Affine(0.5, 0.0, 100.0, 0.0, -0.5, 32.0), "nodata": -1.0,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(values, 1)
    grid = read_geotiff(path, name="clay", units="%")
    np.testing.assert_allclose(grid["lat"], [30.75, 31.25, 31.75])
    np.testing.assert_allclose(grid["lon"], [100.25, 100.75, 101.25, 101.75])
    np.testing.assert_array_equal(grid.sel(lat=31.75).values, [0, 1, 2, 3])
    assert np.isnan(grid.sel(lat=31.25, lon=100.75).item())
    assert grid.attrs["units"] == "%"
    with pytest.raises(InputError, match="band 2: not in the file"):
        read_geotiff(path, band=2)

    projected = tmp_path / "utm.tif"
    profile.update(crs="EPSG:32650", transform=Affine(1000.0, 0.0, 5e5, 0.0, -1000.0, 3.5e6))
    with rasterio.open(projected, "w", **profile) as dst:
        dst.write(values, 1)
    with pytest.raises(InputError, match="projected CRS.*expected a geographic"):
        read_geotiff(projected)
    not_tiff = tmp_path / "text.tif"
    not_tiff.write_text("hello")
    with pytest.raises(InputError, match="cannot be read as GeoTIFF"):
        read_geotiff(not_tiff)
