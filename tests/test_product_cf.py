"""The product as a user reads it: CF checker clean, names select, float32, no machine paths.

The session's tiny virtual China networks (``tiny_run``) make a product through
``cropsm predict`` in a private run directory; ``cropsm export-netcdf`` copies it. The CF checker
(``cfchecker``) runs offline with the few entries of the CF standard-name, area-type and region
tables the product uses (``tests/data/cf/``); it needs the UDUNITS-2 C library (Debian
``libudunits2-0``) and is skipped, saying so, where that or the package is missing.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w
import xarray as xr
from typer.testing import CliRunner

from cropsm import catalog
from cropsm.predict.export import read_product

CF_TABLES = Path(__file__).parent / "data" / "cf"


@pytest.fixture(scope="module")
def exported(link_tiny_run, predict_app, tmp_path_factory) -> dict:
    """``product.zarr`` made by ``cropsm predict`` for two months, and its netCDF export."""
    run_dir = link_tiny_run(tmp_path_factory.mktemp("cf") / "run")
    config = tomllib.loads((run_dir / "config.resolved.toml").read_text())
    config.setdefault("predict", {}).update(start=dt.date(2012, 5, 1), end=dt.date(2012, 6, 30))
    (run_dir / "config.resolved.toml").write_text(tomli_w.dumps(config))
    runner = CliRunner()
    result = runner.invoke(predict_app, ["predict", str(run_dir), "--workers", "0"])
    assert result.exit_code == 0, result.output
    nc = run_dir / "product.nc"
    result = runner.invoke(predict_app, ["export-netcdf", str(run_dir / "product.zarr"), str(nc)])
    assert result.exit_code == 0, result.output
    return {"run_dir": run_dir, "zarr": run_dir / "product.zarr", "nc": nc}


def _cf_checker():
    try:
        from cfchecker.cfchecks import CFChecker
    except ImportError as err:
        pytest.skip(f"the CF checker cannot run here: {err} (pip install cfchecker)")
    except FileNotFoundError as err:  # cfunits without the UDUNITS-2 C library
        pytest.skip(f"the CF checker cannot run here: {err} (apt-get install libudunits2-0)")
    return CFChecker


def test_netcdf_passes_the_cf_checker_without_errors_or_warnings(exported):
    checker_class = _cf_checker()
    checker = checker_class(
        cfStandardNamesXML=str(CF_TABLES / "cf-standard-name-table.xml"),
        cfAreaTypesXML=str(CF_TABLES / "area-type-table.xml"),
        cfRegionNamesXML=str(CF_TABLES / "standardized-region-list.xml"),
        silent=True,
    )
    checker.checker(str(exported["nc"]))
    counts = checker.get_total_counts()
    problems = [m for m in checker.all_messages if m.startswith(("FATAL", "ERROR", "WARN"))]
    assert counts["FATAL"] == 0 and counts["ERROR"] == 0 and counts["WARN"] == 0, problems
    assert any("CF-1.8" in m for m in checker.all_messages)


@pytest.mark.parametrize("form", ["zarr", "nc"])
def test_names_select_with_plain_xarray(exported, form):
    path = exported[form]
    ds = xr.open_zarr(path) if form == "zarr" else xr.open_dataset(path)
    assert list(ds["scenario"].values) == [*catalog.pattern_ids(), "reference"]
    assert list(ds["pattern"].values) == list(catalog.pattern_ids())
    reference = ds["sm"].sel(scenario="reference")
    assert reference.dims == ("layer", "time", "lat", "lon")
    wheat = ds["weights"].sel(pattern="ww_mz")
    assert wheat.dims == ("lat", "lon")
    # sm is a daily mean (cell_methods time: mean) over the day in time_bounds
    assert ds["sm"].attrs["cell_methods"] == "time: mean"
    assert ds["time"].attrs["bounds"] == "time_bounds"
    bounds = ds["time_bounds"].values
    np.testing.assert_array_equal(bounds[:, 0], ds["time"].values)
    np.testing.assert_array_equal(bounds[:, 1] - bounds[:, 0], np.timedelta64(1, "D"))
    assert len(ds["time"]) == 61


@pytest.mark.parametrize("form", ["zarr", "nc"])
def test_read_product_gives_float32_and_name_plus_nearest_selection(exported, form):
    ds = read_product(exported[form])
    assert ds["sm"].dtype == np.float32
    assert "block_done" not in ds.variables
    cell = ds["sm"].sel(scenario="reference", lat=35, lon=116, method="nearest")
    assert cell.dims == ("layer", "time")
    assert float(cell["lat"]) == pytest.approx(35.25) and float(cell["lon"]) == pytest.approx(
        116.25
    )
    values = cell.values
    assert np.isfinite(values).all() and ((values > 0.0) & (values < 0.6)).all()
    # the same numbers as plain xarray's exact selection (zarr decodes to float64 there)
    plain = xr.open_zarr(exported["zarr"])["sm"].sel(scenario="reference", lat=35.25, lon=116.25)
    np.testing.assert_allclose(values, plain.values, rtol=0, atol=1e-7)
    pair = ds["sm"].sel(scenario=["ww_fl", "reference"], lat=35, lon=116, method="nearest")
    assert list(pair["scenario"].values) == ["ww_fl", "reference"]
    with pytest.raises(KeyError):
        ds["sm"].sel(scenario="referenc", lat=35, lon=116, method="nearest")


@pytest.mark.parametrize("form", ["zarr", "nc"])
def test_global_attributes_hold_no_machine_paths_or_internal_records(exported, form):
    ds = xr.open_zarr(exported[form]) if form == "zarr" else xr.open_dataset(exported[form])
    text = " ".join(str(v) for v in ds.attrs.values())
    assert str(exported["run_dir"]) not in text
    assert not re.search(r"(^|[\s'\"(])/[A-Za-z]", text), text
    assert "block_done" not in text
    from cropsm.paper import CITATION

    assert CITATION in ds.attrs["references"]
