"""A corpus of malformed inputs: every one a clean one-line error naming the file and the field.

A clean input set is written once (station metadata and observations as CSV, two ERA5 daily
netCDF files, a static file, ESA CCI daily files; a USCRN daily01 tree; an ISMN download).
Each case writes one malformed file of its own (or a malformed config) and runs
``cropsm run CONFIG --out RUN --stages inputs`` through the command line, asserting: exit
status 2, exactly one ``error:`` line on stderr that names the file and the row, column or
variable, no traceback, and nothing half written in the run directory. ISMN files have no
command of their own and go through their reader, the error formatted as the command line does.
Valid but unusual inputs (a byte-order mark, unsorted rows and days, a missing wind variable
with the wind group switched off) must give the same result as the clean files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from cropsm import N_LAYERS, catalog
from cropsm.cli import app, error_line
from cropsm.errors import CropsmError, InputError
from cropsm.io.climate import read_climate
from cropsm.io.stations import read_stations

runner = CliRunner()

ERA_LAT = np.array([40.0, 39.5, 39.0])  # descending, as ERA5
ERA_LON = np.array([110.0, 110.5, 111.0])
ERA_UNITS = {"tp": "m", "t2m": "K", "d2m": "K", "ssr": "J m**-2", "u10": "m s**-1",
             "v10": "m s**-1", "tcc": "(0 - 1)"}  # fmt: skip
REGION, PATTERN = catalog.region_ids()[2], catalog.pattern_ids()[0]
META_HEADER = "station_id,lat,lon,elevation,region,pattern,first_year,last_year"
META_ROWS = [
    f"S1,39.6,110.4,800,{REGION},{PATTERN},2012,2012",
    f"S2,39.1,110.9,850,{REGION},{PATTERN},2012,2012",
    f"S3,39.9,110.1,900,{REGION},{PATTERN},2012,2012",
]
OBS_HEADER = "station_id,date,layer,sm"
OBS_ROWS = [
    f"{s},2012-{m:02d}-10,{k},{0.15 + 0.01 * i + 0.02 * k:.3f}"
    for i, s in enumerate(["S1", "S2", "S3"])
    for m in (1, 2, 3)
    for k in (1, 2)
]


# --------------------------------------------------------------------------------------------
# writers of well-formed files


def era5(start: str, periods: int, variables=tuple(ERA_UNITS), **changes) -> xr.Dataset:
    """ERA5 daily means in the CDS layout (valid_time, descending latitude)."""
    times = pd.date_range(start, periods=periods, freq="D")
    shape = (periods, ERA_LAT.size, ERA_LON.size)
    day = np.arange(periods, dtype=float)[:, None, None] * np.ones(shape)
    values = {
        "tp": 0.002 + 0.0001 * (day % 5), "t2m": 270.0 + 0.1 * day, "d2m": 265.0 + 0.1 * day,
        "ssr": 1.2e7 + 1e4 * day, "u10": 3.0 + 0 * day, "v10": 4.0 + 0 * day,
        "tcc": 0.5 + 0 * day,
    }  # fmt: skip
    ds = xr.Dataset(
        {v: (("valid_time", "latitude", "longitude"), values[v], {"units": ERA_UNITS[v]})
         for v in variables},
        coords={"valid_time": times, "latitude": ERA_LAT, "longitude": ERA_LON},
    )  # fmt: skip
    for name, value in changes.items():
        ds[name] = ds[name].copy(data=np.broadcast_to(value, ds[name].shape).copy())
    return ds


def static_dataset() -> xr.Dataset:
    """Static fields on the climate grid, soil given on the five layers."""
    shape = (ERA_LAT.size, ERA_LON.size)
    layered = (N_LAYERS, *shape)
    crops = list(catalog.crops())
    return xr.Dataset(
        {
            "elevation": (("lat", "lon"), np.full(shape, 800.0), {"units": "m"}),
            "ph": (("layer", "lat", "lon"), np.full(layered, 6.5), {"units": "1"}),
            "sand": (("layer", "lat", "lon"), np.full(layered, 40.0), {"units": "%"}),
            "silt": (("layer", "lat", "lon"), np.full(layered, 35.0), {"units": "%"}),
            "clay": (("layer", "lat", "lon"), np.full(layered, 25.0), {"units": "%"}),
            "bulk_density": (("layer", "lat", "lon"), np.full(layered, 1.3), {"units": "g cm-3"}),
            "cropland_fraction": (("lat", "lon"), np.full(shape, 0.5), {"units": "1"}),
            "harvested_area": (("crop", "lat", "lon"), np.full((len(crops), *shape), 100.0),
                               {"units": "ha"}),
            "region": (("lat", "lon"), np.full(shape, 3, dtype=np.int16)),
        },
        coords={"lat": ERA_LAT, "lon": ERA_LON, "layer": np.arange(1, N_LAYERS + 1),
                "crop": crops},
    )  # fmt: skip


def cci(day: str, sm: float = 0.25, with_sm: bool = True, days: int = 1) -> xr.Dataset:
    times = pd.date_range(day, periods=days, freq="D")
    shape = (days, ERA_LAT.size, ERA_LON.size)
    variables = {"flag": (("time", "lat", "lon"), np.zeros(shape, dtype=np.int8))}
    if with_sm:
        variables["sm"] = (("time", "lat", "lon"), np.full(shape, sm, dtype=np.float32),
                           {"units": "m3 m-3"})  # fmt: skip
    return xr.Dataset(variables, coords={"time": times, "lat": ERA_LAT, "lon": ERA_LON})


def daily01_line(wban: str, date: pd.Timestamp, sm: float = 0.2) -> str:
    """One USCRN daily01 row (28 fixed-width columns)."""
    t, p, solar, rh = 15.0, 1.0, 20.0, 60.0
    return (
        f"{wban:>5} {date:%Y%m%d} {2.422:6.3f} {-96.85:7.2f} {40.70:7.2f} "
        f"{t + 5:7.1f} {t - 5:7.1f} {t:7.1f} {t:7.1f} {p:7.1f} {solar:8.2f} C "
        f"{t + 8:7.1f} {t - 6:7.1f} {t + 1:7.1f} {rh + 20:7.1f} {rh - 20:7.1f} {rh:7.1f} "
        + " ".join([f"{sm:7.3f}"] * 5) + " " + " ".join([f"{10.0:7.1f}"] * 5)
    )  # fmt: skip


def uscrn_rows(wban: str = "94996", year: int = 2015, days: int = 40) -> list[str]:
    return [daily01_line(wban, d) for d in pd.date_range(f"{year}-01-01", periods=days)]


def write_uscrn(root: Path, rows: list[str], name: str = "NE_Test_1", year: int = 2015) -> Path:
    (root / str(year)).mkdir(parents=True, exist_ok=True)
    path = root / str(year) / f"CRND0103-{year}-{name}.txt"
    path.write_text("\n".join(rows) + "\n", encoding="ascii")
    return path


def write_text(path: Path, header: str, rows: list[str], **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n", **kwargs)
    return path


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> dict:
    """The clean input set: paths by input."""
    root = tmp_path_factory.mktemp("clean")
    era_a, era_b = root / "era5_2012a.nc", root / "era5_2012b.nc"
    era5("2012-01-01", 60).to_netcdf(era_a)
    era5("2012-03-01", 31).to_netcdf(era_b)
    static_dataset().to_netcdf(root / "static.nc")
    (root / "cci").mkdir()
    for day in ("2012-01-01", "2012-01-02"):
        cci(day).to_netcdf(root / "cci" / f"ESACCI-SOILMOISTURE-{day}.nc")
    uscrn = root / "uscrn"
    write_uscrn(uscrn, uscrn_rows())
    return {
        "stations": write_text(root / "stations.csv", META_HEADER, META_ROWS),
        "observations": write_text(root / "observations.csv", OBS_HEADER, OBS_ROWS),
        "climate": [era_a, era_b],
        "static": root / "static.nc",
        "satellite": [root / "cci" / "*.nc"],
        "uscrn": uscrn,
    }


def files_config(paths: dict, groups_off: tuple[str, ...] = ()) -> str:
    def quoted(p) -> str:
        return json.dumps(str(p))

    text = '[run]\nname = "corpus"\n[inputs.files]\n'
    text += f"stations = {quoted(paths['stations'])}\n"
    text += f"observations = {quoted(paths['observations'])}\n"
    text += f"climate = [{', '.join(quoted(p) for p in paths['climate'])}]\n"
    if paths.get("static"):
        text += f"static = {quoted(paths['static'])}\n"
    if paths.get("satellite"):
        text += f"satellite = [{', '.join(quoted(p) for p in paths['satellite'])}]\n"
    if groups_off:
        text += f"[features]\ngroups_off = {json.dumps(list(groups_off))}\n"
    return text


def run_inputs_stage(config_text: str, tmp: Path):
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "run.toml"
    config.write_text(config_text, encoding="utf-8")
    out = tmp / "run"
    result = runner.invoke(app, ["run", str(config), "--out", str(out), "--stages", "inputs"])
    return result, out


# --------------------------------------------------------------------------------------------
# the corpus


@dataclass(frozen=True)
class Case:
    """A malformed input: ``make(tmp, clean)`` writes it and returns the config text."""

    id: str
    make: Callable[[Path, dict], str]
    expect: tuple[str, ...]
    """Fragments of the error line: the file's name first, then the row, column or variable."""
    notes: dict = field(default_factory=dict)


def meta_case(id, rows_or_text, *expect, name="stations.csv", header=META_HEADER):
    def make(tmp: Path, clean: dict) -> str:
        path = tmp / name
        if isinstance(rows_or_text, str):
            path.write_text(rows_or_text)
        else:
            write_text(path, header, rows_or_text)
        return files_config({**clean, "stations": path})

    return Case(id, make, (name, *expect))


def obs_case(id, rows, *expect, name="observations.csv", header=OBS_HEADER, parquet=False):
    def make(tmp: Path, clean: dict) -> str:
        path = tmp / name
        if parquet:
            frame = pd.DataFrame([r.split(",") for r in rows], columns=header.split(","))
            frame["layer"] = pd.to_numeric(frame["layer"])
            frame.to_parquet(path)
        else:
            write_text(path, header, rows)
        return files_config({**clean, "observations": path})

    return Case(id, make, (name, *expect))


def climate_case(id, build, *expect, name="era5_2012b.nc", groups_off=()):
    """``build(clean_b_dataset_path) -> Dataset or bytes`` replaces the second climate file."""

    def make(tmp: Path, clean: dict) -> str:
        path = tmp / name
        made = build()
        if isinstance(made, bytes):
            path.write_bytes(made)
        else:
            made.to_netcdf(path)
        return files_config({**clean, "climate": [clean["climate"][0], path]}, groups_off)

    return Case(id, make, (name, *expect))


def static_case(id, change, *expect, name="static.nc"):
    def make(tmp: Path, clean: dict) -> str:
        path = tmp / name
        change(static_dataset()).to_netcdf(path)
        return files_config({**clean, "static": path})

    return Case(id, make, (name, *expect))


def satellite_case(id, build, *expect, name="ESACCI-SOILMOISTURE-bad.nc"):
    def make(tmp: Path, clean: dict) -> str:
        (tmp / "cci").mkdir()
        cci("2012-01-01").to_netcdf(tmp / "cci" / "ESACCI-SOILMOISTURE-2012-01-01.nc")
        build().to_netcdf(tmp / "cci" / name)
        return files_config({**clean, "satellite": [tmp / "cci" / "*.nc"]})

    return Case(id, make, (name, *expect))


def uscrn_case(id, mutate, *expect):
    def make(tmp: Path, clean: dict) -> str:
        rows = uscrn_rows()
        mutate(rows)
        write_uscrn(tmp / "uscrn", rows)
        return f"[inputs.uscrn]\nroot = {json.dumps(str(tmp / 'uscrn'))}\n"

    return Case(id, make, ("CRND0103-2015-NE_Test_1.txt", *expect))


def config_case(id, text_of, *expect):
    def make(tmp: Path, clean: dict) -> str:
        return text_of(clean)

    return Case(id, make, ("run.toml", *expect))


def _set_row(rows: list[str], i: int, column: str, value: str, header: str) -> list[str]:
    rows = list(rows)
    cells = rows[i].split(",")
    cells[header.split(",").index(column)] = value
    rows[i] = ",".join(cells)
    return rows


def meta_set(i, column, value):
    return _set_row(META_ROWS, i, column, value, META_HEADER)


def obs_set(i, column, value):
    return _set_row(OBS_ROWS, i, column, value, OBS_HEADER)


def without_var(ds: xr.Dataset, name: str) -> xr.Dataset:
    return ds.drop_vars(name)


def _uscrn_set(rows: list[str], i: int, old: str, new: str) -> None:
    rows[i] = rows[i].replace(old, new, 1)


CASES = [
    # station metadata
    meta_case("meta-missing-column", [r.rsplit(",", 3)[0] for r in META_ROWS], "header",
              "'pattern'", header=META_HEADER.rsplit(",", 3)[0]),
    meta_case("meta-unknown-region", meta_set(1, "region", "XX"), "row 3, column 'region'",
              "'XX'"),
    meta_case("meta-lat-out-of-range", meta_set(0, "lat", "95"), "row 2, column 'lat'", "95"),
    meta_case("meta-duplicate-station", [*META_ROWS, META_ROWS[0]], "column 'station_id'",
              "'S1' appears twice"),
    meta_case("meta-years-reversed", meta_set(2, "first_year", "2013"),
              "row 4, column 'last_year'", "before first_year"),
    meta_case("meta-header-only", [], "no data rows"),
    meta_case("meta-empty-file", "", "file is empty"),
    meta_case("meta-elevation-not-a-number", meta_set(0, "elevation", "high"),
              "row 2, column 'elevation'", "'high' is not a number"),
    meta_case("meta-fractional-year", meta_set(1, "first_year", "2011.5"),
              "row 3, column 'first_year'", "not an integer"),
    meta_case("meta-bracketed-file-name", meta_set(0, "pattern", "xx_yy"),
              "row 2, column 'pattern'", name="stations [v2].csv"),
    meta_case("meta-unknown-file-type", "station_id\nS1\n", "unknown file type",
              name="stations.xlsx"),
    # observations
    obs_case("obs-header-only", [], "no data rows"),
    obs_case("obs-all-sm-empty", [",".join(r.split(",")[:3] + [""]) for r in OBS_ROWS],
             "column 'sm'", "every one of the 18 rows"),
    obs_case("obs-impossible-date", obs_set(4, "date", "2012-02-30"), "row 6, column 'date'",
             "'2012-02-30'"),
    obs_case("obs-layer-six", obs_set(0, "layer", "6"), "row 2, column 'layer'", "6"),
    obs_case("obs-sm-out-of-range", obs_set(2, "sm", "0.95"), "row 4, column 'sm'", "0.95"),
    obs_case("obs-duplicate-row", [*OBS_ROWS, OBS_ROWS[3]], "rows 5 and 20",
             "duplicate observation"),
    obs_case("obs-unknown-station", obs_set(1, "station_id", "S9"),
             "row 3, column 'station_id'", "'S9'"),
    obs_case("obs-bracketed-file-name", obs_set(0, "date", "10/13/2012"),
             "row 2, column 'date'", name="observations [v2].csv"),
    obs_case("obs-stray-field", [*OBS_ROWS[:2], OBS_ROWS[2] + ",x", *OBS_ROWS[3:]],
             "line 4", "5 fields; expected 4 like the header"),
    obs_case("obs-missing-sm-column", [r.rsplit(",", 1)[0] for r in OBS_ROWS], "header",
             "'sm'", header="station_id,date,layer"),
    obs_case("obs-parquet-bad-layer", obs_set(3, "layer", "0"), "row 4, column 'layer'",
             name="observations.parquet", parquet=True),
    # ERA5 climate
    climate_case("era5-file-lacks-tp", lambda: without_var(era5("2012-03-01", 31), "tp"),
                 "variable 'tp'", "not in this file"),
    climate_case("era5-t2m-all-nan", lambda: era5("2012-03-01", 31, t2m=np.nan),
                 "variable 't2m'", "every value (279) is missing"),
    climate_case("era5-file-lacks-tcc", lambda: without_var(era5("2012-03-01", 31), "tcc"),
                 "variable 'tcc'", "not in this file"),
    climate_case("era5-gap-day", lambda: era5("2012-03-01", 31).isel(valid_time=np.r_[0:9, 10:31]),
                 "coordinate 'time'", "2012-03-10"),
    climate_case("era5-overlap", lambda: era5("2012-02-20", 41), "coordinate 'time'",
                 "overlaps era5_2012a.nc"),
    climate_case("era5-celsius-declared-kelvin", lambda: era5("2012-03-01", 31, t2m=12.0),
                 "variable 't2m'", "K"),
    climate_case("era5-unknown-units",
                 lambda: era5("2012-03-01", 31).assign(tp=lambda d: d.tp.assign_attrs(
                     units="furlongs")), "variable 'tp'", "furlongs"),
    climate_case("era5-out-of-range", lambda: era5("2012-03-01", 31, ssr=9e9),
                 "variable 'ssr'", "outside the physical range"),
    climate_case("era5-not-netcdf", lambda: b"this is not a netCDF file\n", "cannot"),
    climate_case("era5-no-time-dimension",
                 lambda: era5("2012-03-01", 31).rename(valid_time="step"), "dimension 'time'"),
    climate_case("era5-repeated-time",
                 lambda: era5("2012-03-01", 31).isel(valid_time=[0, 0, *range(1, 31)]),
                 "coordinate 'time'", "2012-03-01 twice"),
    climate_case("era5-ssr-watts-labelled-joules", lambda: era5("2012-03-01", 31, ssr=180.0),
                 "variable 'ssr'", "W m-2 labelled J m-2"),
    climate_case("era5-dewpoint-above-air", lambda: era5("2012-03-01", 31, d2m=280.0),
                 "variable 'd2m'", "exceeds the air temperature", "279 of 279 cell-days"),
    climate_case("era5-shifted-grid",
                 lambda: era5("2012-03-01", 31).assign_coords(longitude=ERA_LON + 0.25),
                 "grid (3 lat 39 to 40 x 3 lon 110.25 to 111.25)",
                 "era5_2012a.nc (3 lat 39 to 40 x 3 lon 110 to 111)"),
    climate_case("era5-wind-off-cloud-missing",
                 lambda: era5("2012-03-01", 31, variables=("tp", "t2m", "d2m", "ssr")),
                 "variable 'tcc'", groups_off=("wind",)),
    # static
    static_case("static-no-cropland", lambda d: d.drop_vars("cropland_fraction"),
                "variable(s) 'cropland_fraction'", "missing"),
    static_case("static-texture-sum", lambda d: d.assign(sand=d.sand + 20.0), "sand"),
    static_case("static-region-code", lambda d: d.assign(region=d.region + 20), "region", "23"),
    static_case("static-ph-out-of-range", lambda d: d.assign(ph=d.ph * 0 + 14.0),
                "variable 'ph'", "14"),
    static_case("static-other-grid", lambda d: d.assign_coords(lon=d.lon + 0.2), "grid"),
    static_case("static-elevation-all-nan", lambda d: d.assign(elevation=d.elevation * np.nan),
                "variable 'elevation'", "every value is missing"),
    # ESA CCI satellite
    satellite_case("cci-no-sm", lambda: cci("2012-01-02", with_sm=False), "variable 'sm'"),
    satellite_case("cci-day-twice", lambda: cci("2012-01-01"), "2012-01-01"),
    satellite_case("cci-out-of-range", lambda: cci("2012-01-02", sm=1.7), "variable 'sm'",
                   "1.7"),
    # USCRN daily01
    uscrn_case("uscrn-extra-column", lambda r: r.__setitem__(2, r[2] + " 1.0"),
               "line 3: 29 columns; expected 28"),
    uscrn_case("uscrn-bad-date", lambda r: _uscrn_set(r, 2, "20150103", "20151303"),
               "line 3, column LST_DATE", "'20151303'"),
    uscrn_case("uscrn-not-a-number", lambda r: _uscrn_set(r, 4, "  0.200 ", "  0.2x0 "),
               "line 5, column SOIL_MOISTURE_5_DAILY", "'0.2x0'"),
    uscrn_case("uscrn-other-station", lambda r: _uscrn_set(r, 6, "94996", "94997"),
               "line 7, column WBANNO"),
    # run configuration
    config_case("config-unknown-key", lambda c: files_config(c) + "bogus = 1\n", "bogus"),
    config_case("config-unknown-group", lambda c: files_config(c, ("windy",)),
                "features.groups_off: unknown feature group 'windy'"),
    config_case("config-empty-path",
                lambda c: files_config({**c, "static": None}) + 'static = ""\n',
                "inputs.files.static: an empty path"),
    config_case("config-not-toml", lambda c: "[run\nname = 1\n", "not valid TOML"),
    config_case("config-wrong-type", lambda c: files_config(c).replace(
        'name = "corpus"', "name = 3\nseed = \"x\""), "seed"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_input_is_one_clean_error_line(case: Case, clean: dict, tmp_path: Path):
    result, out = run_inputs_stage(case.make(tmp_path, clean), tmp_path)
    assert result.exit_code == 2, (result.exit_code, result.output)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.rstrip("\n").splitlines()[-1] == errors[0]  # nothing wrapped after it
    line = errors[0]
    for fragment in case.expect:
        assert fragment in line, (fragment, line)
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    # nothing half written: a run that finished no stage leaves its new folder empty
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) if out.exists() else []
    assert written == [], written


def test_corpus_size_and_cli_coverage():
    kinds = {c.id.split("-")[0] for c in CASES}
    assert len(CASES) + len(ISMN_CASES) >= 40
    assert {"meta", "obs", "era5", "static", "cci", "uscrn", "config"} <= kinds
    assert len(CASES) >= 12  # through the cropsm command line


# ISMN has no command of its own: its reader, the error formatted by the command line's
# :func:`cropsm.cli.error_line`.

ISMN_HEADER = "NETA       NETA            StA                41.19603    -5.35997  852.00    0.05    0.05 ThetaProbe"  # noqa: E501


def ismn_file(root: Path, lines: list[str]) -> Path:
    folder = root / "NETA" / "StA"
    folder.mkdir(parents=True)
    path = folder / "NETA_NETA_StA_sm_0.050000_0.050000_ThetaProbe_20190501_20190510.stm"
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


ISMN_CASES = [
    ("ismn-value", [ISMN_HEADER, "2019/05/01 00:00   0.2000 G M", "2019/05/01 01:00 0.3x00 G M"],
     ("line 3, column VALUE", "'0.3x00'")),
    ("ismn-time", [ISMN_HEADER, "2019/13/01 01:00 0.3 G M"], ("line 2", "2019/13/01 01:00")),
    ("ismn-fields", [ISMN_HEADER, "2019/05/01 01:00 0.3"], ("line 2", "3 fields")),
    ("ismn-header", ["N N S 41.0 abc 852 0.05 0.05 P", "2019/05/01 01:00 0.3 G M"],
     ("line 1, header field LONGITUDE", "'abc'")),
]  # fmt: skip


@pytest.mark.parametrize(("name", "lines", "expect"), ISMN_CASES, ids=[c[0] for c in ISMN_CASES])
def test_malformed_ismn_file_is_one_clean_error_line(name, lines, expect, tmp_path):
    from cropsm.io.ismn import read_ismn

    path = ismn_file(tmp_path / "ismn", lines)
    with pytest.raises(InputError) as info:
        read_ismn(tmp_path / "ismn", engine="builtin")
    line = error_line(info.value)
    assert line.startswith(f"error: {path}") and "\n" not in line
    for fragment in expect:
        assert fragment in line, (fragment, line)


# --------------------------------------------------------------------------------------------
# valid but unusual inputs: accepted, same result as the clean files


def stage_result(config_text: str, tmp: Path) -> dict:
    result, out = run_inputs_stage(config_text, tmp)
    assert result.exit_code == 0, result.output
    return json.loads((out / "stages" / "inputs.json").read_text())["result"]


def test_clean_inputs_pass(clean, tmp_path):
    assert stage_result(files_config(clean), tmp_path) == {
        "stations": 3, "observations": 18, "climate_days": 91, "grid": "3 x 3", "static": True,
        "satellite": True,
    }  # fmt: skip


def test_bom_crlf_and_unsorted_rows_give_the_same_result(clean, tmp_path):
    meta = tmp_path / "stations.csv"
    meta.write_bytes(("\ufeff" + "\r\n".join([META_HEADER, *META_ROWS[::-1]]) + "\r\n").encode())
    obs = write_text(tmp_path / "observations.csv", OBS_HEADER, OBS_ROWS[::-1],
                     encoding="utf-8-sig")  # fmt: skip
    unusual = {**clean, "stations": meta, "observations": obs}
    assert stage_result(files_config(unusual), tmp_path) == stage_result(
        files_config(clean), tmp_path / "c"
    )
    a = read_stations(clean["stations"], clean["observations"])
    b = read_stations(meta, obs)
    pd.testing.assert_frame_equal(a.meta.sort_index(), b.meta.sort_index())
    pd.testing.assert_frame_equal(a.obs, b.obs)


def test_unsorted_days_and_files_give_the_same_climate(clean, tmp_path):
    shuffled = tmp_path / "era5_2012b.nc"
    order = np.random.default_rng(0).permutation(31)
    era5("2012-03-01", 31).isel(valid_time=order).to_netcdf(shuffled)
    a = read_climate(clean["climate"]).load()
    b = read_climate([shuffled, clean["climate"][0]]).load()
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())


def test_groups_off_wind_accepts_climate_without_wind(clean, tmp_path):
    calm = []
    for path, (start, n) in zip(clean["climate"], [("2012-01-01", 60), ("2012-03-01", 31)],
                                strict=True):  # fmt: skip
        target = tmp_path / path.name
        era5(start, n, variables=("tp", "t2m", "d2m", "ssr", "tcc")).to_netcdf(target)
        calm.append(target)
    no_wind = {**clean, "climate": calm}
    result, _ = run_inputs_stage(files_config(no_wind), tmp_path / "strict")
    assert result.exit_code == 2 and "wind" in result.stderr  # wind is needed unless off
    assert stage_result(files_config(no_wind, ("wind",)), tmp_path) == stage_result(
        files_config(clean, ("wind",)), tmp_path / "c"
    )
    with_wind = read_climate(clean["climate"], optional=("wind_speed",)).load()
    without = read_climate(calm, optional=("wind_speed",)).load()
    assert "wind_speed" not in without
    xr.testing.assert_identical(with_wind.drop_vars("wind_speed").drop_attrs(),
                                without.drop_attrs())  # fmt: skip


def test_partial_climate_gaps_are_counted(clean, tmp_path):
    gappy = tmp_path / "era5_2012b.nc"
    ds = era5("2012-03-01", 31)
    ds["t2m"][2:4, 0, 0] = np.nan
    ds.to_netcdf(gappy)
    climate = read_climate([clean["climate"][0], gappy])
    assert climate.attrs["missing_values"] == "'t2m' in era5_2012b.nc: 2 of 279 values"
    result = stage_result(files_config({**clean, "climate": [clean["climate"][0], gappy]}),
                          tmp_path)  # fmt: skip
    assert result["climate_missing_values"] == "'t2m' in era5_2012b.nc: 2 of 279 values"


def test_error_line_is_plain_and_unwrapped(tmp_path):
    long_name = tmp_path / ("observations [v2] " + "x" * 150 + ".csv")
    err = InputError(long_name, "row 7, column 'date'", "cannot parse '2012-02-30' as a date")
    line = error_line(err)
    assert line == f"error: {long_name}: row 7, column 'date': cannot parse '2012-02-30' as a date"
    assert isinstance(err, CropsmError)
    # bugs are not expected failures: they keep their traceback
    from cropsm.cli import _friendly_errors

    @_friendly_errors
    def buggy():
        raise KeyError("internal")

    with pytest.raises(KeyError):
        buggy()


def test_observations_outside_the_climate_period_name_the_file(clean, tmp_path):
    late = [r.replace("2012-", "2015-") for r in OBS_ROWS]
    obs = write_text(tmp_path / "observations.csv", OBS_HEADER, late)
    config = tmp_path / "run.toml"
    config.write_text(files_config({**clean, "observations": obs}))
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["run", str(config), "--out", str(out), "--stages", "inputs,features"]
    )
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {obs}: no observation is usable: 9 of 9 station-days lie outside the climate "
        "period 2012-01-01 to 2012-03-31; expected observations on days the climate and static "
        "inputs cover"
    ]
    assert not (out / "features").exists() or not any((out / "features").iterdir())


def test_a_table_with_a_byte_that_is_not_utf8_names_its_line(clean, tmp_path):
    path = tmp_path / "observations.csv"
    rows = [*OBS_ROWS[:7], OBS_ROWS[7].replace("S2", "S\xe9"), *OBS_ROWS[8:]]
    path.write_bytes(("\n".join([OBS_HEADER, *rows]) + "\n").encode("latin-1"))
    result, out = run_inputs_stage(files_config({**clean, "observations": path}), tmp_path)
    assert result.exit_code == 2, result.output
    line = [x for x in result.stderr.splitlines() if x.startswith("error:")][0]
    assert "observations.csv: line 9: byte 0xe9 is not UTF-8" in line


def test_observations_outside_the_declared_record_are_counted(clean, tmp_path):
    """first_year-last_year describe the record the metadata was written for; observations of
    other years are kept (evaluate scores other years) but counted in the inputs' summary."""
    rows = [*OBS_ROWS[:1], OBS_ROWS[1].replace("2012-", "2011-"), *OBS_ROWS[2:]]
    obs = write_text(tmp_path / "observations.csv", OBS_HEADER, rows)
    result = stage_result(files_config({**clean, "observations": obs}), tmp_path)
    assert result["observations_outside_record"] == 1
    assert result["observations"] == len(OBS_ROWS)
