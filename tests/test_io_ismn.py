"""ISMN 'Header + values' downloads: both engines, flags, daily means, depth-overlap layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cropsm.errors import InputError
from cropsm.io.ismn import find_ismn_files, layer_weights, read_ismn, read_ismn_file

HEADER = (
    "{net:<10} {net:<15} {station:<17} {lat:9.5f} {lon:11.5f} {elev:7.2f} {d0:7.2f} {d1:7.2f} "
    "{sensor}"
)


def write_stm(
    root: Path,
    net: str,
    station: str,
    d0: float,
    d1: float,
    sensor: str,
    rows: list[tuple[str, float, str]],
    *,
    lat: float = 41.19603,
    lon: float = -5.35997,
    variable: str = "sm",
) -> Path:
    """One sensor file in the ISMN layout: ROOT/NET/STATION/NET_NET_STATION_sm_d0_d1_..."""
    folder = root / net / station
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{net}_{net}_{station}_{variable}_{d0:.6f}_{d1:.6f}_{sensor}_20190501_20190510.stm"
    lines = [HEADER.format(net=net, station=station, lat=lat, lon=lon, elev=852.0, d0=d0, d1=d1,
                           sensor=sensor)]  # fmt: skip
    lines += [f"{when} {value:8.4f} {flag} M" for when, value, flag in rows]
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def hourly(day: str, values: list[float], flags: list[str] | None = None):
    flags = flags or ["G"] * len(values)
    return [(f"{day} {h:02d}:00", v, f) for h, (v, f) in enumerate(zip(values, flags, strict=True))]


@pytest.fixture
def download(tmp_path: Path) -> Path:
    root = tmp_path / "ismn"
    # Station A: point sensors at 5 and 10 cm, an interval probe 0-30 cm, one at 1 m (unused)
    write_stm(root, "NETA", "StA", 0.05, 0.05, "ThetaProbe",
              hourly("2019/05/01", [0.20, 0.22, 0.90], ["G", "G", "C01"])
              + hourly("2019/05/02", [0.30, 0.50], ["G", "D02"]))  # fmt: skip
    write_stm(root, "NETA", "StA", 0.10, 0.10, "ThetaProbe",
              hourly("2019/05/01", [0.25, 0.25]))  # fmt: skip
    write_stm(root, "NETA", "StA", 0.0, 0.30, "Cosmic-ray-Probe",
              hourly("2019/05/01", [0.40]) + hourly("2019/05/02", [0.10]))  # fmt: skip
    write_stm(root, "NETA", "StA", 1.0, 1.0, "Deep", hourly("2019/05/01", [0.33]))
    # a soil temperature file must be ignored
    write_stm(root, "NETA", "StA", 0.05, 0.05, "T", hourly("2019/05/01", [12.0]), variable="ts")
    # Station B in another network, 45 cm sensor
    write_stm(root, "NETB", "StB", 0.45, 0.45, "5TM", hourly("2019/05/03", [0.15, 0.17]),
              lat=10.0, lon=20.0)  # fmt: skip
    return root


def test_layer_weights() -> None:
    assert layer_weights(5, 5).tolist() == [1, 0, 0, 0, 0]
    assert layer_weights(10, 10).tolist() == [1, 1, 0, 0, 0]  # boundary: both layers
    assert layer_weights(0, 30).tolist() == [1, 1, 1, 0, 0]
    np.testing.assert_allclose(layer_weights(0, 19), [1.0, 0.9, 0, 0, 0])
    np.testing.assert_allclose(layer_weights(0, 14), [1.0, 0, 0, 0, 0])  # 40 % of layer 2 < 50 %
    assert not layer_weights(100, 100).any()


def expected_observations() -> pd.DataFrame:
    # 2019-05-01: layer 1 = (0.21*1 + 0.25*1 + 0.40*1) / 3; layer 2 = (0.25 + 0.40) / 2;
    # layer 3 = 0.40. 2019-05-02: layer 1 = (0.30 + 0.10) / 2, layers 2-3 = 0.10
    rows = [
        ("NETA.StA", "2019-05-01", 1, (0.21 + 0.25 + 0.40) / 3),
        ("NETA.StA", "2019-05-01", 2, (0.25 + 0.40) / 2),
        ("NETA.StA", "2019-05-01", 3, 0.40),
        ("NETA.StA", "2019-05-02", 1, (0.30 + 0.10) / 2),
        ("NETA.StA", "2019-05-02", 2, 0.10),
        ("NETA.StA", "2019-05-02", 3, 0.10),
        ("NETB.StB", "2019-05-03", 5, 0.16),
    ]
    frame = pd.DataFrame(rows, columns=["station_id", "date", "layer", "sm"])
    frame["date"] = pd.to_datetime(frame["date"])
    return frame


@pytest.mark.parametrize("engine", ["builtin", "ismn"])
def test_read_download(download: Path, engine: str) -> None:
    if engine == "ismn":
        pytest.importorskip("ismn")
    data = read_ismn(download, engine=engine)
    pd.testing.assert_frame_equal(data.obs, expected_observations(), check_exact=False, atol=1e-9)
    assert list(data.meta.index) == ["NETA.StA", "NETB.StB"]
    assert data.meta.loc["NETB.StB", ["lat", "lon", "elevation"]].tolist() == [10.0, 20.0, 852.0]
    assert data.meta.loc["NETA.StA", "region"] == "NETA"
    assert data.meta["pattern"].isna().all()
    assert data.report["files"] == 5  # the ts file is not a soil moisture file
    assert data.report["sensors_unused_below_50cm"] == 1


def test_engines_agree_and_options(download: Path) -> None:
    pytest.importorskip("ismn")
    path = find_ismn_files(download, networks=["NETA"])[0]
    a = read_ismn_file(path, download, "builtin")
    b = read_ismn_file(path, download, "ismn")
    pd.testing.assert_frame_equal(a.data, b.data)
    assert (a.depth_from_cm, a.depth_to_cm, a.station, a.network) == (
        b.depth_from_cm, b.depth_to_cm, b.station, b.network
    )  # fmt: skip
    only_b = read_ismn(download, networks=["NETB"], engine="builtin")
    assert only_b.obs["station_id"].unique().tolist() == ["NETB.StB"]
    strict = read_ismn(download, engine="builtin", min_values_per_day=2)
    a_obs = strict.obs.loc[strict.obs["station_id"] == "NETA.StA"].set_index(["date", "layer"])
    assert list(a_obs.index) == [(pd.Timestamp("2019-05-01"), 1), (pd.Timestamp("2019-05-01"), 2)]
    assert a_obs["sm"].tolist() == pytest.approx([(0.21 + 0.25) / 2, 0.25])
    dubious_too = read_ismn(download, engine="builtin", good_flags=("G", "D02"))
    day2 = dubious_too.obs.loc[
        (dubious_too.obs["layer"] == 1) & (dubious_too.obs["date"] == "2019-05-02"), "sm"
    ].item()
    assert day2 == pytest.approx((0.40 + 0.10) / 2)  # sensor mean (0.30+0.50)/2 with the probe


def test_malformed_files(tmp_path: Path) -> None:
    root = tmp_path / "ismn"
    path = write_stm(root, "N", "S", 0.05, 0.05, "P", hourly("2019/05/01", [0.2, 0.3]))
    text = path.read_text().splitlines()
    path.write_text("\n".join([text[0], text[1], "2019/05/01 01:00 0.3x00 G M"]) + "\n")
    with pytest.raises(InputError, match=r"line 3, column VALUE: '0.3x00' is not a number"):
        read_ismn(root, engine="builtin")
    path.write_text("\n".join([text[0], "2019/13/01 01:00 0.3 G M"]) + "\n")
    with pytest.raises(InputError, match=r"line 2: 2019/13/01 01:00 is not a time"):
        read_ismn(root, engine="builtin")
    path.write_text("\n".join([text[0], "2019/05/01 01:00 0.3"]) + "\n")
    with pytest.raises(InputError, match=r"line 2: 3 fields"):
        read_ismn(root, engine="builtin")
    path.write_text("N N S 41.0 abc 852 0.05 0.05 P\n2019/05/01 01:00 0.3 G M\n")
    with pytest.raises(InputError, match=r"line 1, header field LONGITUDE: 'abc' is not a number"):
        read_ismn(root, engine="builtin")
    with pytest.raises(InputError, match="holds no ISMN 'sm' files"):
        find_ismn_files(tmp_path / "ismn", networks=["OTHER"])


# --------------------------------------------------------------------------------------------
# Static variables (soil, land cover, climate class) in the layout ISMN ships them

STATIC_HEADER = (
    "quantity_name;unit;depth_from[m];depth_to[m];value;description;quantity_source_name;"
    "quantity_source_description;quantity_source_provider;quantity_source_version;"
    "quantity_source_resolution;quantity_source_timerange;quantity_source_url;"
)
HWSD = 'HWSD;Harmonized World Soil Database v1.1  by IIASA;IIASA;v1.1;30";;http://x/;'


def static_rows(top: dict[str, float], sub: dict[str, float]) -> list[str]:
    """Soil rows at 0-0.30 and 0.30-1.00 m (HWSD), an in-situ row, land cover, climate."""
    units = {"saturation": "m^3*m^-3"}
    rows = []
    for (d0, d1), values in (((0.0, 0.3), top), ((0.3, 1.0), sub)):
        for name, value in values.items():
            rows.append(
                f"{name};{units.get(name, '% weight')};{d0:.2f};{d1:.2f};{value:.2f};;{HWSD}"
            )
    rows += [
        "organic carbon;% weight;-99.90;-99.90;0.59;;insitu;in situ;;;;;;",
        "land cover classification;;;;130;Grassland;CCI_landcover_2000;ESA CCI Land Cover;ESA;"
        "2000-v1.6.1;300m;1998-2002;http://www.esa-landcover-cci.org/;",
        "land cover classification;;;;10;Cropland, rainfed;CCI_landcover_2010;ESA CCI Land Cover;"
        "ESA;2010-v1.6.1;300m;2008-2012;http://www.esa-landcover-cci.org/;",
        "climate classification;;;;Cfa;Temperate - Without dry season - Hot Summer;"
        "koeppen_geiger_2007;Koeppen-Geiger Climate Classification;;Peel2007;0.1°;;http://x/;",
    ]
    return rows


TOP = {"saturation": 0.46, "clay fraction": 23.0, "organic carbon": 1.27, "sand fraction": 36.0,
       "silt fraction": 41.0}  # fmt: skip
SUB = {"saturation": 0.44, "clay fraction": 29.0, "organic carbon": 0.57, "sand fraction": 29.0,
       "silt fraction": 42.0}  # fmt: skip


def write_static(root: Path, net: str, station: str, rows: list[str] | None = None) -> Path:
    folder = root / net / station
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{net}_{net}_{station}_static_variables.csv"
    body = rows if rows is not None else static_rows(TOP, SUB)
    path.write_text("\n".join([STATIC_HEADER, *body]) + "\n", encoding="utf-8")
    return path


def test_static_variables_give_soil_on_the_five_layers(tmp_path: Path) -> None:
    from cropsm.io.ismn import UNKNOWN_SOIL_PH, read_static_variables, soil_by_layer

    static = read_static_variables(write_static(tmp_path, "NETA", "StA"))
    assert static.land_cover == "Cropland, rainfed"  # the latest epoch (2010)
    assert static.climate_class == "Cfa"
    assert len(static.soil) == 10  # the in-situ row of unknown depth is not used
    soil = soil_by_layer(static)
    # layers 0-10, 10-20, 20-30 cm lie in 0-30 cm; 30-40, 40-50 cm in 30-100 cm
    np.testing.assert_allclose(soil["sand"], [36, 36, 36, 29, 29])
    np.testing.assert_allclose(soil["silt"], [41, 41, 41, 42, 42])
    np.testing.assert_allclose(soil["clay"], [23, 23, 23, 29, 29])
    np.testing.assert_allclose(soil["organic_carbon"], [1.27, 1.27, 1.27, 0.57, 0.57])
    # bulk density from saturation (porosity): 2.65 (1 - theta_s)
    np.testing.assert_allclose(soil["bd"], [1.431, 1.431, 1.431, 1.484, 1.484], atol=1e-9)
    np.testing.assert_allclose(soil["ph"], UNKNOWN_SOIL_PH)


def test_depth_overlap_weights_intervals_that_straddle_a_layer() -> None:
    from cropsm.io.ismn import depth_overlap_mean

    rows = pd.DataFrame(
        {"depth_from_cm": [0.0, 15.0], "depth_to_cm": [15.0, 100.0], "value": [10.0, 40.0]}
    )
    assert depth_overlap_mean(rows, 0, 10) == 10.0
    assert depth_overlap_mean(rows, 10, 20) == pytest.approx((5 * 10 + 5 * 40) / 10)
    assert depth_overlap_mean(rows, 40, 50) == 40.0
    assert np.isnan(depth_overlap_mean(rows.iloc[:1], 20, 30))


def test_malformed_or_missing_static_variables(tmp_path: Path) -> None:
    from cropsm.io.ismn import read_static_variables, station_soil_columns

    path = write_static(tmp_path, "N", "S", [])
    path.write_text("name,unit,from,to,value\nclay,%,0,0.3,20\n")
    with pytest.raises(InputError, match=r"S_static_variables.csv: line 1: header 'name,unit,"):
        read_static_variables(path)
    rows = static_rows(TOP, SUB)
    write_static(tmp_path, "N", "S", [rows[0].replace(";0.46;", ";0.4x6;")])
    with pytest.raises(InputError, match=r"line 2: value '0.4x6' is not a number"):
        read_static_variables(path)
    write_static(tmp_path, "N", "S", [rows[1].replace("% weight", "g/kg")])
    with pytest.raises(InputError, match=r"line 2: clay fraction in 'g/kg'; expected % weight"):
        read_static_variables(path)
    write_static(tmp_path, "N", "S", [rows[3].replace(";36.00;", ";136.00;")])
    with pytest.raises(InputError, match=r"line 2: sand fraction 136 over 0-0.3 m; expected 0-100"):
        read_static_variables(path)
    write_static(tmp_path, "N", "S", rows[-2:])
    with pytest.raises(InputError, match=r"no soil row; expected clay fraction, sand fraction"):
        read_static_variables(path)
    write_static(tmp_path, "N", "S", rows[:5])  # 0-30 cm only: layers 4 and 5 have no value
    with pytest.raises(InputError, match=r"sand fraction: does not cover layer 4 \(30-40 cm\)"):
        station_soil_columns(tmp_path, ["N.S"])
    (tmp_path / "N" / "T").mkdir()
    with pytest.raises(InputError) as info:
        station_soil_columns(tmp_path, ["N.T"])
    assert str(info.value) == (
        f"{tmp_path / 'N' / 'T'}: no N_N_T_static_variables.csv; expected the ISMN static "
        "variables (soil) beside the .stm files, or switch the soil group off ([features] "
        'groups_off = ["soil"])'
    )
