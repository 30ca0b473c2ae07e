"""Static file (soil on source depths, cropland, crop areas, regions): round trips and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from cropsm import catalog
from cropsm.errors import InputError
from cropsm.io.static import STATIC_VARIABLES, read_static

DEPTH_BOUNDS = np.array([[0, 5], [5, 15], [15, 30], [30, 60], [60, 100]], dtype=float)
DEPTH_MID = DEPTH_BOUNDS.mean(axis=1)  # 2.5, 10, 22.5, 45, 80 (SoilGrids)
FINE_LAT = np.array([31.375, 31.125, 30.875, 30.625])  # 0.25 deg, descending
FINE_LON = np.array([110.625, 110.875, 111.125, 111.375])
CROPS = catalog.crops()


def static_dataset(lat: np.ndarray = FINE_LAT, lon: np.ndarray = FINE_LON) -> xr.Dataset:
    """A static file in the layout the virtual China writes (soil on source depths)."""
    n_lat, n_lon = len(lat), len(lon)
    depth = DEPTH_MID[:, None, None] * np.ones((1, n_lat, n_lon))
    clay = 20.0 + 0.1 * depth
    sand = 40.0 - 0.1 * depth
    region = np.zeros((n_lat, n_lon), dtype=np.int8)
    region[:, 2:] = 3
    region[0, 2] = 4
    elevation = np.arange(n_lat * n_lon, dtype=np.float32).reshape(n_lat, n_lon) * 10.0
    ds = xr.Dataset(
        {
            "ph": (("depth", "lat", "lon"), 6.0 + 0.01 * depth, {"units": "1"}),
            "sand": (("depth", "lat", "lon"), sand, {"units": "%"}),
            "silt": (("depth", "lat", "lon"), 100.0 - sand - clay, {"units": "%"}),
            "clay": (("depth", "lat", "lon"), clay, {"units": "%"}),
            "bulk_density": (("depth", "lat", "lon"), 1.2 + 0.004 * depth, {"units": "g cm-3"}),
            "elevation": (("lat", "lon"), elevation, {"units": "m"}),
            "cropland_fraction": (("lat", "lon"), np.full((n_lat, n_lon), 0.4), {"units": "1"}),
            "harvested_area": (
                ("crop", "lat", "lon"),
                np.arange(len(CROPS), dtype=float)[:, None, None] * np.ones((1, n_lat, n_lon)),
                {"units": "ha"},
            ),
            "region": (
                ("lat", "lon"),
                region,
                {
                    "flag_values": np.arange(1, 9, dtype=np.int8),
                    "flag_meanings": " ".join(catalog.region_ids()),
                },
            ),
            "depth_bounds": (("depth", "nv"), DEPTH_BOUNDS, {"units": "cm"}),
        },
        coords={
            "lat": ("lat", lat, {"units": "degrees_north"}),
            "lon": ("lon", lon, {"units": "degrees_east"}),
            "depth": ("depth", DEPTH_MID, {"units": "cm", "bounds": "depth_bounds"}),
            "crop": ("crop", np.array(CROPS, dtype=object)),
        },
    )
    return ds


def write(ds: xr.Dataset, path: Path) -> Path:
    ds.to_netcdf(path)
    return path


def raises(path: Path, **kwargs) -> InputError:
    with pytest.raises(InputError) as info:
        read_static(path, **kwargs)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)
    return info.value


def test_round_trip_with_soil_interpolated_from_source_depths(tmp_path: Path) -> None:
    ds = read_static(write(static_dataset(), tmp_path / "static.nc"))
    assert list(ds.data_vars) == list(STATIC_VARIABLES)
    for name, (units, _) in STATIC_VARIABLES.items():
        assert ds[name].attrs["units"] == units
    assert ds["clay"].dims == ("layer", "lat", "lon")
    assert ds["harvested_area"].dims == ("crop", "lat", "lon")
    assert list(ds["layer"].values) == [1, 2, 3, 4, 5]
    assert tuple(ds["crop"].values) == CROPS
    assert list(ds["lat"].values) == sorted(FINE_LAT)
    # Linear in depth at the layer mid-depths 5, 15, 25, 35, 45 cm (all inside 2.5-80 cm).
    clay = ds["clay"].isel(lat=0, lon=0).values
    assert clay == pytest.approx(20.0 + 0.1 * np.array([5, 15, 25, 35, 45]), abs=1e-5)
    total = ds["sand"] + ds["silt"] + ds["clay"]
    assert np.allclose(total, 100.0, atol=1e-4)
    # Orientation: the file's first (northernmost) row is the last one here.
    assert float(ds["elevation"].sel(lat=31.375, lon=110.625)) == 0.0
    assert float(ds["elevation"].sel(lat=30.625, lon=110.625)) == 120.0
    # Region codes go through flag_meanings: code 3 is HHH, 4 is E in the catalog too.
    assert ds["region"].dtype == np.int16
    assert int(ds["region"].sel(lat=31.375, lon=111.125)) == 4
    assert ds["region"].attrs["flag_meanings"].split() == list(catalog.region_ids())


def test_constant_extrapolation_beyond_source_depths(tmp_path: Path) -> None:
    ds = static_dataset().isel(depth=[1, 2, 3]).drop_vars("depth_bounds")  # 10, 22.5, 45 cm
    ds["depth"].attrs = {"units": "m"}
    ds = ds.assign_coords(depth=("depth", ds["depth"].values / 100.0, {"units": "m"}))
    out = read_static(write(ds, tmp_path / "static.nc"))
    clay = out["clay"].isel(lat=0, lon=0).values
    assert clay == pytest.approx([21.0, 21.5, 22.5, 23.5, 24.5], abs=1e-5)


def test_layers_given_directly_and_units_converted(tmp_path: Path) -> None:
    ds = static_dataset().isel(depth=[0, 1, 2, 3, 4]).drop_vars("depth_bounds")
    ds = ds.rename(depth="layer").drop_vars("layer")
    for name in ("sand", "silt", "clay"):
        ds[name] = ds[name] / 100.0
        ds[name].attrs = {"units": "1"}
    ds["bulk_density"] = ds["bulk_density"] * 1000.0
    ds["bulk_density"].attrs = {"units": "kg m**-3"}
    ds["cropland_fraction"] = ds["cropland_fraction"] * 100.0
    ds["cropland_fraction"].attrs = {"units": "%"}
    out = read_static(write(ds, tmp_path / "static.nc"))
    assert out["clay"].isel(lat=0, lon=0).values == pytest.approx(20.0 + 0.1 * DEPTH_MID, 1e-5)
    assert float(out["bulk_density"][0, 0, 0]) == pytest.approx(1.21, abs=1e-5)
    assert float(out["cropland_fraction"][0, 0]) == pytest.approx(0.4)


def test_fine_grid_block_averaged_to_target(tmp_path: Path) -> None:
    path = write(static_dataset(), tmp_path / "static.nc")
    target_lat = np.array([30.75, 31.25])
    target_lon = np.array([110.75, 111.25])
    out = read_static(path, target_lat, target_lon)
    assert list(out["lat"].values) == list(target_lat)
    elevation = np.arange(16.0).reshape(4, 4)[::-1] * 10.0  # ascending rows
    expected = elevation.reshape(2, 2, 2, 2).mean(axis=(1, 3))
    assert out["elevation"].values == pytest.approx(expected)
    # Harvested area sums the four fine cells: crop k has k ha per fine cell.
    assert out["harvested_area"].sel(crop="wheat").values == pytest.approx(np.full((2, 2), 4.0))
    # Region: the mode; the north-east block holds three HHH cells and one E cell.
    assert out["region"].values.tolist() == [[0, 3], [0, 3]]
    assert float(out["cropland_fraction"].mean()) == pytest.approx(0.4)
    # The same grid is taken as is; a target inside the file's extent is cut out.
    same = read_static(path, np.sort(FINE_LAT)[1:3], FINE_LON[:2])
    assert same["elevation"].shape == (2, 2)


def test_grid_coarser_or_not_aligned_with_target(tmp_path: Path) -> None:
    path = write(static_dataset(), tmp_path / "static.nc")
    error = raises(path, target_lat=np.array([30.75, 30.875, 31.0]), target_lon=FINE_LON)
    assert "coarser than the target step 0.125" in str(error)
    error = raises(path, target_lat=np.array([30.875, 31.375]), target_lon=FINE_LON)
    assert error.where == "coordinate 'lat'" and "not aligned" in str(error)
    error = raises(path, target_lat=np.array([30.75, 31.25]), target_lon=np.array([110.8, 111.4]))
    assert "not a whole multiple" in str(error)


def test_missing_variables_and_crops(tmp_path: Path) -> None:
    error = raises(write(static_dataset().drop_vars(["ph", "region"]), tmp_path / "a.nc"))
    assert error.where == "variable(s) 'ph', 'region'" and "expected elevation, ph" in str(error)
    ds = static_dataset().isel(crop=[0, 1, 2, 3])
    error = raises(write(ds, tmp_path / "b.nc"))
    assert error.where == "variable 'harvested_area'"
    assert "no crop(s) potato, cotton" in str(error)


def test_texture_that_does_not_sum_to_100(tmp_path: Path) -> None:
    ds = static_dataset()
    ds["silt"][2, 1, 3] = ds["silt"][2, 1, 3] + 10.0
    error = raises(write(ds, tmp_path / "static.nc"))
    assert "sum to 110 % at depth=22.5, lat=31.125, lon=111.375" in str(
        error
    ) and "expected 100 +/- 2 %" in str(error)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("ph", 65.0, "3 to 11"),
        ("bulk_density", 1350.0, "0.8 to 2 g cm-3"),
        ("cropland_fraction", 40.0, "0 to 1"),
    ],
)
def test_values_out_of_range(tmp_path: Path, name: str, value: float, expected: str) -> None:
    ds = static_dataset()
    if ds[name].ndim == 3:
        ds[name][1, 2, 0] = value
    else:
        ds[name][2, 0] = value
    error = raises(write(ds, tmp_path / "static.nc"))
    assert error.where == f"variable '{name}'"
    assert f"value {value:g}" in str(error) and expected in str(error)


def test_unknown_region_code(tmp_path: Path) -> None:
    ds = static_dataset()
    ds["region"][0, 0] = 12
    error = raises(write(ds, tmp_path / "static.nc"))
    assert error.where == "variable 'region'" and "code 12" in str(error)
