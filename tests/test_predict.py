"""The national product: equals the networks at a cell, Eq. 2, weights, flags, dask, resume, CF.

The session's tiny virtual China run (``tiny_run``: 159 cropland cells, 2012-2013, networks of
a 2-configuration grid) is linked into a private run directory, and the product is made once
through ``cropsm predict`` (in this process); the tests inspect it. A short period is computed
again on a two-worker ``LocalCluster`` and once interrupted, to compare stores chunk by chunk.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from cropsm import catalog
from cropsm.features.station_table import build_station_table
from cropsm.io.stations import StationData
from cropsm.predict import product as product_module
from cropsm.predict.config import PredictConfig, parse_scenarios
from cropsm.predict.flags import (
    observed_patterns,
    region_observation_periods,
    region_observed_months,
)
from cropsm.predict.grid_features import first_complete_day
from cropsm.predict.network import Workspace, fold_chain, forward_chain
from cropsm.predict.skill import product_truth_skill
from cropsm.predict.stage import load_product_inputs
from cropsm.predict.store import chunk_files, encode_sm, plan_tiles
from cropsm.train import (
    load_ensemble,
    load_models,
    load_observation_error_sd,
    load_residual_sd,
    predict_chain,
    predict_ensemble,
    save_models,
)
from cropsm.train.chain import LayerModel
from cropsm.twin.truth_store import open_truth
from cropsm.weights import pattern_weights

HALF_QUANTUM = 0.5e-4 + 2e-6  # int16 packing (1e-4) plus float32 forward passes
SHORT = {"start": "2012-05-01", "end": "2012-07-04", "time_chunk_days": 24}  # 3 blocks


@pytest.fixture(scope="module")
def run_dir(tiny_run, link_tiny_run, tmp_path_factory) -> Path:
    """A private run directory sharing the session run's inputs and networks (links)."""
    source, _ = tiny_run
    mine = link_tiny_run(tmp_path_factory.mktemp("predict") / "run")
    skill = json.loads((source / "truth_skill.json").read_text())
    (mine / "truth_skill.json").write_text(json.dumps({**skill, "earlier": {"kept": True}}))
    return mine


@pytest.fixture(scope="module")
def product(run_dir, predict_app) -> dict:
    """The full product made by ``cropsm predict RUN_DIR --workers 0``."""
    result = CliRunner().invoke(predict_app, ["predict", str(run_dir), "--workers", "0"])
    assert result.exit_code == 0, result.output
    ds = xr.open_dataset(run_dir / "product.zarr", engine="zarr", consolidated=True)
    return {"ds": ds, "output": result.output, "path": run_dir / "product.zarr"}


@pytest.fixture(scope="module")
def inputs(run_dir) -> dict:
    from cropsm.run_layout import load_run_config
    from cropsm.stage_registry import RunContext

    ctx = RunContext(config=load_run_config(run_dir), run_dir=run_dir)
    return load_product_inputs(ctx)


def pseudo_stations(ds: xr.Dataset, cells: list[tuple[int, int]], patterns) -> StationData:
    """One station per cell centre and pattern, 'observed' on every product day."""
    dates = pd.DatetimeIndex(ds["time"].values)
    metas, obs = [], []
    for i, (iy, ix) in enumerate(cells):
        for p in patterns:
            sid = f"c{i}_{p}"
            metas.append(
                {"station_id": sid, "lat": float(ds["lat"][iy]), "lon": float(ds["lon"][ix]),
                 "elevation": 0.0, "region": "N", "pattern": p, "first_year": 2012,
                 "last_year": 2013}
            )  # fmt: skip
            obs.append(pd.DataFrame({"station_id": sid, "date": dates, "layer": 1, "sm": 0.2}))
    return StationData(pd.DataFrame(metas).set_index("station_id"), pd.concat(obs))


def test_cell_product_equals_networks_on_station_features(product, inputs, run_dir):
    ds = product["ds"]
    mask = ds["cropland_mask"].values == 1
    cells = [tuple(c) for c in np.argwhere(mask)[[0, 57, 130]]]
    ids = catalog.pattern_ids()
    table, _ = build_station_table(
        pseudo_stations(ds, cells, ids), inputs["climate"], inputs["static"]
    )
    members = load_ensemble(run_dir / "models")
    assert len(members) == 2  # the tiny run's [train] members
    expected = predict_ensemble(members, table, load_residual_sd(run_dir / "models"))
    mean_columns = [f"sm_pred_l{k}" for k in range(1, 6)]
    sd_columns = [f"sm_sd_l{k}" for k in range(1, 6)]
    for i, (iy, ix) in enumerate(cells):
        for p in ids:
            rows = (table["station_id"] == f"c{i}_{p}").to_numpy()
            assert rows.sum() == ds.sizes["time"]
            got = ds["sm"].sel(scenario=p).isel(lat=iy, lon=ix).values.T  # (time, layer)
            want = expected.loc[rows, mean_columns].to_numpy()
            assert np.isfinite(got).all()
            # the ensemble mean of float32 members: one quantum plus float32 round-off
            np.testing.assert_allclose(got, want, rtol=0, atol=HALF_QUANTUM + 2e-6)
            got_sd = ds["sm_sd"].sel(scenario=p).isel(lat=iy, lon=ix).values.T
            want_sd = expected.loc[rows, sd_columns].to_numpy()
            np.testing.assert_allclose(got_sd, want_sd, rtol=0, atol=HALF_QUANTUM + 2e-6)
    # sm_sd leaves the readings' own error out and says how large it is, layer by layer
    observation = load_observation_error_sd(run_dir / "models")
    assert set(observation) == set(range(1, 6))
    np.testing.assert_array_equal(
        ds["sm_sd"].attrs["observation_error_sd_by_layer"], [observation[k] for k in range(1, 6)]
    )
    assert "observation_error_sd_by_layer" in ds["sm_sd"].attrs["comment"]


def test_reference_is_the_weighted_sum_of_the_patterns(product):
    ds = product["ds"]
    sm = ds["sm"].values  # (scenario, layer, time, lat, lon)
    weights = ds["weights"].values  # (pattern, lat, lon)
    patterns = sm[:6]
    w = np.nan_to_num(weights)[:, None, None]
    mixed = np.where(w > 0, patterns * w, 0.0).sum(axis=0)
    ref = sm[6]
    cropland = ds["cropland_mask"].values == 1
    assert np.isfinite(ref[..., cropland]).all()
    assert np.isnan(ref[..., ~cropland]).all()
    # both sides are packed to 1e-4: the difference is at most one quantum
    np.testing.assert_allclose(ref[..., cropland], mixed[..., cropland], rtol=0, atol=1.05e-4)


def test_weights_sum_to_one_where_crops_exist(product, inputs):
    ds = product["ds"]
    weights = ds["weights"].values
    cropland = ds["cropland_mask"].values == 1
    static = inputs["static"]
    areas = static["harvested_area"].sel(crop=list(catalog.crops())).values
    region = static["region"].values
    expected = pattern_weights(areas, region)
    has_crops = cropland & (region > 0)
    np.testing.assert_allclose(weights.sum(axis=0)[has_crops], 1.0, atol=1e-6)
    np.testing.assert_allclose(weights[:, has_crops], expected[:, has_crops], atol=1e-6)
    assert np.isnan(weights[:, ~cropland]).all()
    assert (ds["cropland_mask"].values == (static["cropland_fraction"].values >= 0.1)).all()


def test_flags_match_their_definitions(product, inputs):
    ds = product["ds"]
    meta, obs = inputs["stations"].meta, inputs["stations"].obs
    cropland = ds["cropland_mask"].values == 1
    region = ds["region"].values
    codes = {r.id: r.code for r in catalog.regions()}
    obs = obs.assign(region=obs["station_id"].map(meta["region"]).map(codes))
    days = pd.DatetimeIndex(ds["time"].values)
    tflag = ds["time_flag"].values
    for code in np.unique(region[cropland]):
        here = cropland & (region == code)
        dates = obs.loc[obs["region"] == code, "date"]
        want = (days >= dates.min()) & (days <= dates.max()) if len(dates) else days < days[0]
        np.testing.assert_array_equal(tflag[:, here], np.repeat(want[:, None], here.sum(), 1))
    assert np.isnan(tflag[:, ~cropland]).all()
    assert 0 < np.nansum(tflag) < tflag[:, cropland].size  # both values occur

    observed = meta.loc[meta.index.isin(obs["station_id"].unique())]
    pflag = ds["pattern_flag"].values
    weights = np.nan_to_num(ds["weights"].values)
    for iy, ix in np.argwhere(cropland):
        code = region[iy, ix]
        pairs = zip(observed["region"], observed["pattern"], strict=True)
        have = {p for r, p in pairs if codes[r] == code}
        for s, p in enumerate(catalog.pattern_ids()):
            assert pflag[s, iy, ix] == (p in have)
        used = [p for j, p in enumerate(catalog.pattern_ids()) if weights[j, iy, ix] > 0]
        assert pflag[6, iy, ix] == (bool(used) and all(p in have for p in used))
    assert np.isnan(pflag[:, ~cropland]).all()
    assert (
        ds["time_flag"].attrs["flag_meanings"].split() and "flag_values" in ds["pattern_flag"].attrs
    )
    # the season flag: the calendar months the stations of the cell's region observe
    months = region_observed_months(meta, inputs["stations"].obs)
    sflag = ds["season_flag"].values  # (month, lat, lon)
    np.testing.assert_array_equal(sflag[:, cropland], months[region[cropland]].T.astype(float))
    assert np.isnan(sflag[:, ~cropland]).all()
    assert 0 < np.nansum(sflag) < sflag[:, cropland].size


def test_region_observed_months_are_the_months_of_each_regions_readings(inputs):
    meta, obs = inputs["stations"].meta, inputs["stations"].obs
    months = region_observed_months(meta, obs)
    codes = {r.id: r.code for r in catalog.regions()}
    region_of_row = obs["station_id"].map(meta["region"]).map(codes).to_numpy()
    month_of_row = pd.to_datetime(obs["date"]).dt.month.to_numpy()
    want = np.zeros_like(months)
    want[region_of_row, month_of_row - 1] = True
    np.testing.assert_array_equal(months, want)
    assert not months[0].any()  # outside China
    assert months.any(axis=1).sum() >= 2 and not months.all()  # seasons, not whole years
    assert not region_observed_months(meta, obs.iloc[:0]).any()


def test_product_coverage_splits_by_month_and_observation_season(product, inputs):
    """The reference's interval coverage by calendar month and inside/outside the months the
    cell's region's stations observe, checked against a direct count over the whole product."""
    truth = open_truth(inputs["truth"])
    skill, *_ = product_truth_skill(product["path"], truth, 40)
    ds = product["ds"]
    iy = [int(np.abs(ds["lat"].values - v).argmin()) for v in truth["cell_lat"].values]
    ix = [int(np.abs(ds["lon"].values - v).argmin()) for v in truth["cell_lon"].values]
    days = pd.DatetimeIndex(ds["time"].values).intersection(pd.DatetimeIndex(truth["time"].values))
    ref = list(ds["scenario"].values).index("reference")
    sim = ds["sm"].isel(scenario=ref).sel(time=days).values[:, :, iy, ix]  # (layer, time, cell)
    sd = ds["sm_sd"].isel(scenario=ref).sel(time=days).values[:, :, iy, ix]
    obs = truth["reference_sm"].sel(time=days).transpose("layer", "time", "cell").values
    in_season = ds["season_flag"].values[:, iy, ix][days.month - 1] == 1  # (time, cell)
    for k in range(5):
        coverage = skill[f"layer{k + 1}"]["interval90_coverage"]
        error = np.abs(sim[k] - obs[k])
        ok = np.isfinite(error) & np.isfinite(sd[k])
        inside = error <= 1.6448536269514722 * sd[k]
        for name, where in (("observed_season", in_season), ("outside_season", ~in_season)):
            mask = ok & where
            assert coverage[name]["pairs"] == mask.sum() > 0
            assert coverage[name]["calibrated"] == pytest.approx(inside[mask].mean(), abs=1e-12)
            rmse = np.sqrt(np.mean(error[mask] ** 2))
            assert coverage[name]["rmse"] == pytest.approx(rmse, rel=1e-6)
        by_month = coverage["by_month"]
        assert set(by_month) == {str(m) for m in np.unique(days.month)}
        for month, entry in by_month.items():
            mask = ok & (days.month == int(month))[:, None]
            assert entry["pairs"] == mask.sum()
            assert entry["calibrated"] == pytest.approx(inside[mask].mean(), abs=1e-12)
        assert sum(e["pairs"] for e in by_month.values()) == coverage["pairs"]


def test_truth_skill_reads_windows_aligned_with_the_products_chunks(product, inputs, monkeypatch):
    """By default each scoring window is one of the product's time chunks (each compressed
    chunk decompressed once); the scores are those of any other windowing."""
    import zarr

    from cropsm.predict import skill as skill_module

    truth = open_truth(inputs["truth"])
    windows = []
    score_window = skill_module.window_error_sums

    def recording(path, truth_, scenarios, iy, ix, product_days, *rest):
        windows.append(product_days)
        return score_window(path, truth_, scenarios, iy, ix, product_days, *rest)

    monkeypatch.setattr(skill_module, "window_error_sums", recording)
    aligned, *_ = product_truth_skill(product["path"], truth)
    chunk = zarr.open_array(str(product["path"] / "sm"), mode="r").chunks[2]
    assert len(windows) >= 2  # the tiny product spans several chunks
    for window in windows:
        assert window.start // chunk == (window.stop - 1) // chunk  # inside one chunk
    for a, b in zip(windows[:-1], windows[1:], strict=True):
        assert a.stop == b.start and b.start % chunk == 0
    windows.clear()
    small, *_ = product_truth_skill(product["path"], truth, 17)
    assert len(windows) > 2
    for k in range(1, 6):
        a, b = aligned[f"layer{k}"], small[f"layer{k}"]
        assert a["reference"]["n"] == b["reference"]["n"] > 0
        for metric in ("r2", "rmse", "bias"):
            assert a["reference"][metric] == pytest.approx(b["reference"][metric], rel=1e-9)
        coverage_a, coverage_b = a["interval90_coverage"], b["interval90_coverage"]
        assert coverage_a["pairs"] == coverage_b["pairs"]
        assert coverage_a["calibrated"] == coverage_b["calibrated"]


def test_local_cluster_with_two_workers_equals_single_process(inputs, run_dir, tmp_path):
    from cropsm.predict.cluster import dask_client

    models = load_models(run_dir / "models")
    args = (inputs["climate"], inputs["static"], inputs["stations"], models)
    single = product_module.predict_product(
        tmp_path / "single.zarr", *args, PredictConfig(workers=0, **SHORT)
    )
    with dask_client(None, 2) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        multi = product_module.predict_product(
            tmp_path / "multi.zarr", *args, PredictConfig(**SHORT), client=client
        )
        # the truth skill scored window by window on the workers (4 windows of 20 days)
        truth = open_truth(inputs["truth"])
        on_workers = product_truth_skill(tmp_path / "multi.zarr", truth, 20, client=client)
    assert single["blocks_computed"] == multi["blocks_computed"] == 3
    a, b = chunk_files(tmp_path / "single.zarr"), chunk_files(tmp_path / "multi.zarr")
    assert a and a.keys() == b.keys()
    assert all(a[k] == b[k] for k in a)
    here = product_truth_skill(tmp_path / "multi.zarr", truth, 20)
    assert on_workers[0]["days"] == here[0]["days"] == 65
    for k in range(1, 6):
        a_layer, b_layer = on_workers[0][f"layer{k}"], here[0][f"layer{k}"]
        for x, y in [
            (a_layer["reference"], b_layer["reference"]),
            (a_layer["by_pattern"]["ww_mz"], b_layer["by_pattern"]["ww_mz"]),
        ]:
            assert x["n"] == y["n"] > 0
            assert x["r2"] == pytest.approx(y["r2"], rel=1e-12)
            assert x["rmse"] == pytest.approx(y["rmse"], rel=1e-12)
    np.testing.assert_array_equal(on_workers[1], here[1])


def test_resume_after_interruption_gives_identical_store(inputs, run_dir, tmp_path, monkeypatch):
    models = load_models(run_dir / "models")
    args = (inputs["climate"], inputs["static"], inputs["stations"], models)
    config = PredictConfig(workers=0, **SHORT)
    product_module.predict_product(tmp_path / "whole.zarr", *args, config)

    real = product_module.compute_block
    calls = []

    def dies_in_third_block(job, block_id):
        calls.append(block_id)
        if len(calls) == 3:  # half-written block: garbage in one chunk, no completion record
            import zarr

            zarr.open_group(job.store, mode="r+")["sm"][0, 0, 48:72, :8, :8] = np.int16(7)
            raise RuntimeError("killed")
        return real(job, block_id)

    monkeypatch.setattr(product_module, "compute_block", dies_in_third_block)
    with pytest.raises(RuntimeError, match="killed"):
        product_module.predict_product(tmp_path / "resumed.zarr", *args, config)
    monkeypatch.setattr(product_module, "compute_block", real)
    again = product_module.predict_product(tmp_path / "resumed.zarr", *args, config)
    assert again["status"] == "resumed"
    assert (again["blocks_computed"], again["blocks_skipped"]) == (1, 2)
    a, b = chunk_files(tmp_path / "whole.zarr"), chunk_files(tmp_path / "resumed.zarr")
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    done = product_module.predict_product(tmp_path / "resumed.zarr", *args, config)
    assert done["blocks_computed"] == 0


def test_zarr_and_netcdf_open_with_cf_attributes(product, tmp_path, predict_app):
    out = tmp_path / "product.nc"
    result = CliRunner().invoke(predict_app, ["export-netcdf", str(product["path"]), str(out)])
    assert result.exit_code == 0, result.output
    zarr_ds = xr.open_dataset(product["path"], engine="zarr")
    nc_ds = xr.open_dataset(out)
    for ds in (zarr_ds, nc_ds):
        sm = ds["sm"]
        assert sm.dims == ("scenario", "layer", "time", "lat", "lon")
        assert sm.attrs["units"] == "m3 m-3"
        assert sm.attrs["standard_name"] == "volume_fraction_of_condensed_water_in_soil"
        assert sm.attrs["long_name"]
        assert sm.encoding["dtype"] == np.int16
        assert sm.encoding["scale_factor"] == pytest.approx(1e-4)
        assert sm.encoding["_FillValue"] == -32768
        assert ds.attrs["Conventions"].startswith("CF-") and ds.attrs["history"]
        assert list(ds["scenario"].values) == [*catalog.pattern_ids(), "reference"]
        assert ds["depth"].attrs["units"] == "cm" and ds["depth"].attrs["bounds"] == "depth_bounds"
        np.testing.assert_array_equal(ds["depth_bounds"].values[:, 0], [0, 10, 20, 30, 40])
        assert ds["lat"].attrs["units"] == "degrees_north"
        for flag in ("time_flag", "pattern_flag", "season_flag"):
            np.testing.assert_array_equal(ds[flag].attrs["flag_values"], [0, 1])
            assert len(ds[flag].attrs["flag_meanings"].split()) == 2
        assert ds["season_flag"].dims == ("month", "lat", "lon")
        np.testing.assert_array_equal(ds["month"].values, np.arange(1, 13))
        assert ds["weights"].attrs["units"] == "1"
    assert "block_done" not in nc_ds
    np.testing.assert_allclose(nc_ds["sm"].values, zarr_ds["sm"].values, rtol=0, atol=1e-6)


def test_every_product_value_lies_within_its_physical_bounds(product, inputs):
    """0 <= SM <= porosity (1 - bulk density / 2.65) of the cell's layer, over the whole product."""
    ds = product["ds"]
    sm = ds["sm"].values  # (scenario, layer, time, lat, lon), decoded
    bulk_density = inputs["static"]["bulk_density"].transpose("layer", "lat", "lon").values
    porosity = 1.0 - bulk_density / 2.65
    assert ds["sm"].attrs["valid_min"] == 0 and ds["sm"].attrs["valid_max"] == 10000
    n_cropland = int((ds["cropland_mask"].values == 1).sum())
    assert np.isfinite(sm).sum() > 0.9 * n_cropland * np.prod(sm.shape[:3])
    assert np.nanmin(sm) >= 0.0
    excess = sm - porosity[None, :, None] - HALF_QUANTUM
    assert np.nanmax(excess) <= 0.0


def test_truth_skill_and_error_map_written(product, run_dir):
    skill = json.loads((run_dir / "truth_skill.json").read_text())
    assert skill["earlier"] == {"kept": True} and "layer1" in skill  # other keys kept
    entry = skill["product"]
    assert entry["cells"] == 159 and entry["days"] == 731
    for k in range(1, 6):
        layer = entry[f"layer{k}"]
        assert layer["reference"]["n"] == 159 * 731
        assert 0.0 < layer["reference"]["r2"] < 1.0 and 0 < layer["reference"]["rmse"] < 0.2
        assert set(layer["by_pattern"]) == set(catalog.pattern_ids())
    assert (run_dir / "figures" / "product_error_map.png").stat().st_size > 10_000
    assert "R2 of the reference vs truth" in product["output"]


def test_reduced_model_set_gives_its_own_reference_product(product, inputs, run_dir, predict_app):
    """A set without the pattern group (its feature names say so) -> reference-only store."""
    from cropsm.features.groups import PATTERN_INPUTS

    reduced = []
    for m in load_models(run_dir / "models"):
        keep = [i for i, n in enumerate(m.feature_names) if n not in PATTERN_INPUTS]
        (w0, b0), *rest = m.weights
        reduced.append(
            LayerModel(m.layer, tuple(m.feature_names[i] for i in keep),
                       type(m.scaler)(m.scaler.mean[keep], m.scaler.std[keep]),
                       m.target_mean, m.target_std, [(w0[keep], b0), *rest], output=m.output)
        )  # fmt: skip
    models_dir = save_models(reduced, run_dir / "attribution" / "no_pattern")
    result = CliRunner().invoke(
        predict_app,
        ["predict", str(run_dir), "--models", str(models_dir), "--scenarios", "reference",
         "--workers", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    path = run_dir / "products" / "no_pattern.zarr"
    ds = xr.open_dataset(path, engine="zarr")
    assert list(ds["scenario"].values) == ["reference"] and ds.attrs["networks_use_pattern"] == 0
    cell = tuple(np.argwhere(ds["cropland_mask"].values == 1)[20])
    table, _ = build_station_table(
        pseudo_stations(ds, [cell], ["ww_fl"]), inputs["climate"], inputs["static"]
    )
    want = predict_chain(reduced, table).to_numpy()
    got = ds["sm"].sel(scenario="reference").isel(lat=cell[0], lon=cell[1]).values.T
    np.testing.assert_allclose(got, want, rtol=0, atol=HALF_QUANTUM)
    assert "product_no_pattern" in json.loads((run_dir / "truth_skill.json").read_text())


def test_forward_chain_matches_predict_chain_with_nan_rows():
    from cropsm.predict.synthetic import table2_models

    models = table2_models(
        seed=3, architectures={1: (3, 8), 2: (0, 1), 3: (1, 4), 4: (2, 4), 5: (1, 2)}
    )
    nets = fold_chain(models)
    rng = np.random.default_rng(0)
    names = sorted({n for net in nets for n in net.shared_names})
    table = pd.DataFrame({n: rng.normal(1.0, 3.0, 50) for n in names})
    table.loc[7, "tair"] = np.nan
    inputs = [
        np.vstack([table[list(net.shared_names)].to_numpy(np.float32).T, np.ones((1, 50), "f4")])
        for net in nets
    ]
    got = forward_chain(nets, inputs, 6, Workspace()).copy()
    for p, pid in enumerate(catalog.pattern_ids()):
        want = predict_chain(models, table.assign(pattern=pid)).to_numpy().T
        np.testing.assert_allclose(got[:, p], want, rtol=1e-5, atol=1e-6)
        assert np.isnan(got[:, p, 7]).all()


def test_packing_period_tiles_and_config():
    packed = encode_sm(np.array([0.12344, 0.12356, np.nan, -0.00004, 5.0]))
    np.testing.assert_array_equal(packed, [1234, 1236, -32768, 0, 32767])
    assert first_complete_day("2011-01-01") == pd.Timestamp("2012-01-01")
    assert first_complete_day("2012-02-29") == pd.Timestamp("2013-03-01")
    mask = np.zeros((10, 10), dtype=bool)
    mask[:, :5] = True
    assert plan_tiles(mask, 4, 10, 10_000) == (((0, 10), (0, 10)),)
    tiles = plan_tiles(mask, 4, 10, 200)
    assert all((y1 - y0) % 4 == 0 or y1 == 10 for (y0, y1), _ in tiles)
    assert max(mask[y0:y1, x0:x1].sum() for (y0, y1), (x0, x1) in tiles) * 10 <= 200
    assert parse_scenarios("reference") == ("reference",)
    assert parse_scenarios("fl_sb,ww_fl") == ("ww_fl", "fl_sb")
    with pytest.raises(ValueError, match="unknown scenario"):
        PredictConfig(scenarios=("maize",))
    with pytest.raises(ValueError):
        PredictConfig(chunks=3)


def test_period_before_the_lookback_is_an_error(inputs, run_dir, tmp_path):
    models = load_models(run_dir / "models")
    with pytest.raises(ValueError, match="look-back"):
        product_module.predict_product(
            tmp_path / "p.zarr", inputs["climate"], inputs["static"], inputs["stations"], models,
            PredictConfig(workers=0, start="2011-06-01"),
        )  # fmt: skip
    periods = region_observation_periods(inputs["stations"].meta, inputs["stations"].obs)
    assert periods.shape == (9, 2) and np.isnat(periods[0]).all()
    assert observed_patterns(inputs["stations"].meta, inputs["stations"].obs).any()


def test_networks_with_an_input_the_grid_lacks_are_refused_by_name(inputs, run_dir, tmp_path):
    """Networks trained on an input this version does not compute (e.g. the soil-temperature
    proxy of an earlier crop set) stop the product before anything is written."""
    models = load_models(run_dir / "models")
    names = list(models[0].feature_names)
    names[names.index("tair")] = "soil_temp_proxy_c"
    renamed = [dataclasses.replace(models[0], feature_names=tuple(names)), *models[1:]]
    out = tmp_path / "p.zarr"
    with pytest.raises(ValueError, match="soil_temp_proxy_c .*retrain"):
        product_module.predict_product(
            out, inputs["climate"], inputs["static"], inputs["stations"], renamed,
            PredictConfig(workers=0),
        )  # fmt: skip
    assert not out.exists()


def test_existing_folder_that_is_not_a_product_is_not_removed(
    inputs, run_dir, tmp_path, predict_app
):
    (tmp_path / "x.zarr").mkdir()
    (tmp_path / "x.zarr" / "keep.txt").write_text("mine")
    result = CliRunner().invoke(
        predict_app, ["predict", str(run_dir), "--workers", "0", "--out", str(tmp_path / "x.zarr")]
    )
    assert result.exit_code != 0
    assert (tmp_path / "x.zarr" / "keep.txt").exists()


def test_stage_is_registered_and_paths_are_named(run_dir):
    from cropsm.pipeline import STAGES
    from cropsm.predict.stage import default_product_path, run_predict_config

    assert STAGES["predict"].config_keys == ("predict",)
    assert run_predict_config(object()) == PredictConfig()
    assert default_product_path(run_dir) == run_dir / "product.zarr"
    assert default_product_path(run_dir, run_dir / "models") == run_dir / "product.zarr"
    other = run_dir / "attribution" / "models_no_soil"
    assert default_product_path(run_dir, other) == run_dir / "products" / "models_no_soil.zarr"


def test_netcdf_chunk_cache_is_limited_for_files_opened_later():
    """Block tasks call this first: workers read each climate chunk once per block, and a small
    HDF5 cache per variable stops the caches of the yearly files left open from piling up."""
    netCDF4 = pytest.importorskip("netCDF4")
    from cropsm.io import NETCDF_CHUNK_CACHE_BYTES, limit_netcdf_chunk_cache

    before = netCDF4.get_chunk_cache()
    try:
        netCDF4.set_chunk_cache(64 << 20, before[1], before[2])
        limit_netcdf_chunk_cache()
        assert netCDF4.get_chunk_cache()[0] == NETCDF_CHUNK_CACHE_BYTES
    finally:
        netCDF4.set_chunk_cache(*before)


def test_ensemble_product_is_deterministic_and_k1_is_the_single_network(inputs, run_dir, tmp_path):
    members = load_ensemble(run_dir / "models")
    residual = load_residual_sd(run_dir / "models")
    args = (inputs["climate"], inputs["static"], inputs["stations"])
    config = PredictConfig(workers=0, **SHORT)
    paths = {name: tmp_path / f"{name}.zarr" for name in ("a", "b", "single", "twins")}
    for name in ("a", "b"):
        product_module.predict_product(paths[name], *args, members, config, residual_sd=residual)
    # the same members -> the same bytes, mean, standard error and member sums alike
    variables = ("sm", "sm_sd", "time_flag", "member_sum", "member_days")
    a, b = chunk_files(paths["a"], variables), chunk_files(paths["b"], variables)
    assert a and a.keys() == b.keys() and all(a[k] == b[k] for k in a)
    assert any(k.startswith("member_sum") for k in a)
    # K = 1 is the single network's product; two identical members give the same mean
    product_module.predict_product(paths["single"], *args, members[0], config)
    twins = [members[0], members[0]]
    product_module.predict_product(paths["twins"], *args, twins, config, residual_sd=residual)
    single = chunk_files(paths["single"], ("sm",))
    assert single == chunk_files(paths["twins"], ("sm",))
    one = xr.open_zarr(paths["single"])
    # one network without a calibrated residual: no standard error to store
    assert "member_sum" not in one and "sm_sd" not in one
    assert one["sm"].attrs["ancillary_variables"] == "time_flag pattern_flag season_flag"
    ds = xr.open_zarr(paths["a"])
    twin = xr.open_zarr(paths["twins"])
    for k in range(1, 6):  # no spread: the standard error is the residual SD
        sd = twin["sm_sd"].sel(layer=k).values
        np.testing.assert_allclose(sd[np.isfinite(sd)], residual[k], atol=HALF_QUANTUM)
    assert ds["sm"].attrs["ancillary_variables"].split()[0] == "sm_sd"
    # members' sums: their mean over members and days is the mean of the stored ensemble mean
    total = ds["member_sum"].sum(["time_block", "month_slot"]).mean("member")
    days = ds["member_days"].sum(["time_block", "month_slot"])
    from_sums = (total / days.where(days > 0)).values
    direct = ds["sm"].mean("time").values
    ok = np.isfinite(direct)
    assert ok.any()
    np.testing.assert_allclose(from_sums[ok], direct[ok], rtol=0, atol=HALF_QUANTUM + 1e-6)


def test_member_sums_by_month_slot_add_each_row_to_its_cell_and_slot():
    """A batch of (day, cell) rows that starts inside a day and crosses a month slot adds every
    member value to its own cell and slot, NaN ignored, and counts the finite-mean days."""
    rng = np.random.default_rng(5)
    n_cells, start, n_rows = 7, 3 * 7 + 4, 25  # from day 3, cell 4, over 5 days
    values = rng.normal(0.3, 0.05, (2, 3, 5, n_rows)).astype(np.float32)
    values[1, 0, 2, 6] = np.nan
    mean = values.mean(axis=0)
    mean[0, 0, 10] = np.nan
    day = (start + np.arange(n_rows)) // n_cells
    slot_of_row = np.where(day < 5, 0, 1)  # the slot changes on day 5
    sums = np.zeros((2, 3, 5, 2, n_cells), np.float32)
    days_valid = np.zeros((3, 5, 2, n_cells), np.int32)
    product_module._add_by_slot(sums, days_valid, values, mean, slot_of_row, start, n_cells)
    want_sums = np.zeros_like(sums, dtype=np.float64)
    want_days = np.zeros_like(days_valid)
    for r in range(n_rows):
        cell, slot = (start + r) % n_cells, slot_of_row[r]
        want_sums[..., slot, cell] += np.nan_to_num(values[..., r])
        want_days[..., slot, cell] += np.isfinite(mean[..., r])
    np.testing.assert_allclose(sums, want_sums, rtol=1e-6)
    np.testing.assert_array_equal(days_valid, want_days)
    assert days_valid.sum() == 3 * 5 * n_rows - 2  # the two NaN means


def test_products_of_one_run_share_the_pre_pass(inputs, run_dir, tmp_path):
    """A second product over the same climate files, cells, soil and blocks takes the first's
    pre-pass instead of running it again, and is the same product; other files do not."""
    members = load_ensemble(run_dir / "models")
    args = (inputs["climate"], inputs["static"], inputs["stations"], members[0])
    config = PredictConfig(workers=0, **SHORT)
    steps: list[str] = []

    def progress(step, done, total):
        steps.append(step)

    product_module._PREPASS_MEMO.clear()
    first, second = tmp_path / "first.zarr", tmp_path / "second.zarr"
    product_module.predict_product(first, *args, config, progress=progress)
    assert any("over the climate record" in s for s in steps)
    steps.clear()
    product_module.predict_product(second, *args, config, progress=progress)
    assert any("the same as this run's last product" in s for s in steps)
    assert not any("over the climate record" in s for s in steps)
    assert chunk_files(first, ("sm",)) == chunk_files(second, ("sm",))
    # the key follows the climate files: another signature, another pre-pass
    job, *_ = product_module.plan_product(first, *args, config)
    dates = pd.DatetimeIndex(inputs["climate"]["time"].values)
    key = product_module._prepass_key(job, dates, [0, 24])
    other = inputs["climate"].copy()
    other.attrs = {**other.attrs, "source_signature": "0123456789abcdef"}
    changed = product_module._prepass_key(dataclasses.replace(job, climate=other), dates, [0, 24])
    assert key is not None and changed is not None and key != changed
    other.attrs.pop("source_signature")
    assert product_module._prepass_key(dataclasses.replace(job, climate=other), dates, [0]) is None
