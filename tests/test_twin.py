"""The virtual China: files in the real formats, physically consistent truth, stations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cropsm import catalog
from cropsm.io.check import load_inputs
from cropsm.twin import generate as generate_module
from cropsm.twin.generate import generate_twin, layer_soils
from cropsm.twin.soilwater import saxton_rawls
from cropsm.twin.stations import OBSERVATION_DAYS
from cropsm.twin.truth_store import open_truth


def paths(root):
    return {
        "stations": root / "stations" / "stations.csv",
        "observations": root / "stations" / "observations.csv",
        "climate": [str(root / "climate" / "*.nc")],
        "static": root / "static" / "static.nc",
        "satellite": [str(root / "satellite" / "*.nc")],
    }


def test_summary_counts(tiny_twin):
    root, summary = tiny_twin
    assert summary["cropland_cells"] > 50
    assert summary["stations"] == 30
    assert summary["observations"] > 1000
    assert set(summary["annual_precipitation_mm"]) <= set(catalog.region_ids())
    for value in summary["mean_reference_sm_by_layer"].values():
        assert 0.1 < value < 0.45
    assert (root / "twin.json").exists()
    assert not root.with_name(root.name + ".partial").exists()


def test_era_files_have_era_names_and_units(tiny_twin):
    root, _ = tiny_twin
    files = sorted((root / "climate").glob("era5_daily_*.nc"))
    assert len(files) == 3  # one spin-up year + two truth years
    with xr.open_dataset(files[0]) as ds:
        assert {"tp", "t2m", "d2m", "ssr", "tcc"} <= set(ds.data_vars)
        assert ds["tp"].attrs["units"] == "m"
        assert ds["t2m"].attrs["units"] == "K"
        assert ds["ssr"].attrs["units"].startswith("J m")
        assert float(ds["t2m"].mean()) > 250
        lat_name = "latitude" if "latitude" in ds.dims else "lat"
        assert ds[lat_name].values[0] > ds[lat_name].values[-1]  # descending like ERA


def test_everything_reads_through_the_user_readers(tiny_twin):
    root, summary = tiny_twin
    data = load_inputs(paths(root))
    climate, static, stations = data["climate"], data["static"], data["stations"]
    assert climate["precipitation"].attrs["units"] == "mm d-1"
    assert climate["air_temperature"].attrs["units"] == "degC"
    assert static["sand"].sizes["layer"] == 5
    assert static["bulk_density"].attrs["units"] == "g cm-3"
    assert len(stations.meta) == summary["stations"]
    assert len(stations.obs) == summary["observations"]
    assert stations.obs["sm"].between(0.0, 0.7).all()
    assert data["satellite"].attrs["units"] == "m3 m-3"


def test_truth_between_residual_and_saturation(tiny_twin):
    root, _ = tiny_twin
    truth = open_truth(root)
    static = xr.open_dataset(root / "static" / "static.nc")
    soil = layer_soils(static)
    lat = static["lat"].values
    lon = static["lon"].values
    iy = np.searchsorted(lat, truth["cell_lat"].values)
    ix = np.searchsorted(lon, truth["cell_lon"].values)
    hyd = saxton_rawls(
        soil["sand"][:, iy, ix].T,
        soil["clay"][:, iy, ix].T,
        organic_matter_pct=1.5,
        bulk_density_g_cm3=soil["bulk_density"][:, iy, ix].T,
    )
    sm = truth["sm"].values  # (pattern, layer, time, cell)
    lo = hyd.residual.T[None, :, None, :]
    hi = hyd.saturation.T[None, :, None, :]
    assert np.all(sm >= lo - 2e-4)  # int16 packing at 1e-4
    assert np.all(sm <= hi + 2e-4)


def test_reference_is_weighted_sum_of_patterns(tiny_twin):
    root, _ = tiny_twin
    truth = open_truth(root)
    w = truth["weights"].values
    assert np.allclose(w.sum(axis=0), 1.0, atol=1e-5)
    expected = np.einsum("pc,pltc->ltc", w, truth["sm"].values)
    assert np.allclose(truth["reference_sm"].values, expected, atol=3e-4)


def test_patterns_differ_and_winter_crop_dries_spring(tiny_twin):
    root, _ = tiny_twin
    truth = open_truth(root)
    spring = truth["time"].dt.month.isin([4, 5])
    profile = truth["sm"].where(spring, drop=True).mean(dim=("time", "layer"))
    ww_fl = float(profile.sel(pattern="ww_fl").mean())
    fl_mz = float(profile.sel(pattern="fl_mz").mean())
    # winter wheat transpires in April-May; the fallow field of fl_mz does not
    assert ww_fl < fl_mz


def test_station_observations_follow_the_paper_schedule(tiny_twin):
    root, _ = tiny_twin
    obs = pd.read_csv(root / "stations" / "observations.csv", parse_dates=["date"])
    meta = pd.read_csv(root / "stations" / "stations.csv")
    assert set(obs["date"].dt.day.unique()) <= set(OBSERVATION_DAYS)
    assert set(obs["layer"].unique()) == {1, 2, 3, 4, 5}
    assert not obs.duplicated(["station_id", "date", "layer"]).any()
    assert set(meta["pattern"]) <= set(catalog.pattern_ids())
    for row in meta.itertuples():
        assert row.pattern in catalog.table3()[row.region].patterns
    grav = set(meta.loc[meta["sm_type"] == "gravimetric", "station_id"])
    assert grav, "some stations report gravimetric water content"
    assert {f"bd_layer{k}" for k in range(1, 6)} <= set(meta.columns)


def test_station_noise_against_station_truth(tiny_twin):
    root, _ = tiny_twin
    data = load_inputs(paths(root))
    obs = data["stations"].obs
    truth = open_truth(root)["station_sm"].load()
    ids = list(truth["station_id"].values)
    t_index = truth.indexes["time"].get_indexer(obs["date"])
    s_index = np.array([ids.index(s) for s in obs["station_id"]])
    true_values = truth.values[obs["layer"].to_numpy() - 1, t_index, s_index]
    err = obs["sm"].to_numpy() - true_values
    # noise 0.02 + representativeness 0.015 per station-layer: sd about 0.025
    assert 0.015 < float(np.std(err)) < 0.04
    assert abs(float(np.mean(err))) < 0.01


def test_same_seed_same_files_other_seed_differs(tiny_twin, tmp_path):
    root, _ = tiny_twin
    again = tmp_path / "again"
    generate_twin(again, "tiny", seed=0)
    a = pd.read_csv(root / "stations" / "observations.csv")
    b = pd.read_csv(again / "stations" / "observations.csv")
    pd.testing.assert_frame_equal(a, b)
    with (
        xr.open_dataset(root / "climate" / "era5_daily_2012.nc") as x,
        xr.open_dataset(again / "climate" / "era5_daily_2012.nc") as y,
    ):
        assert np.array_equal(x["tp"].values, y["tp"].values)
    other = tmp_path / "other"
    generate_twin(other, "tiny", seed=1)
    c = pd.read_csv(other / "stations" / "observations.csv")
    assert not a.equals(c)


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = generate_module.weather.generate_weather_year

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("killed midway")
        return real(*args, **kwargs)

    monkeypatch.setattr(generate_module.weather, "generate_weather_year", failing)
    target = tmp_path / "vc"
    with pytest.raises(RuntimeError):
        generate_twin(target, "tiny", seed=0)
    assert not target.exists()


def test_refuses_to_overwrite_non_empty_folder(tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_twin(target, "tiny", seed=0)
    assert (target / "keep.txt").read_text() == "user data"


def test_a_torn_chunk_of_the_truth_is_named_not_a_codec_traceback(tiny_twin, tmp_path):
    """Reading a truth store with a chunk that no longer decodes ends in one line naming the
    store and the file (for every stage, through the stage registry's guard)."""
    import shutil

    from cropsm.errors import InputError
    from cropsm.io.zarr_damage import naming_damaged_stores

    root, _ = tiny_twin
    run = tmp_path / "run"
    store = Path(shutil.copytree(root / "truth.zarr", run / "inputs" / "twin" / "truth.zarr"))
    chunk = store / "reference_sm" / "c" / "0" / "0" / "0"
    chunk.write_bytes(b"\x00" * 16)
    with pytest.raises(InputError) as err, naming_damaged_stores(run):
        open_truth(store)["reference_sm"].load()
    message = str(err.value)
    assert message.startswith(f"{store}: damaged zarr store: chunk file(s) reference_sm/c/0/0/0")
    assert "cannot be decoded (" in message and "`cropsm twin`" in message
    with pytest.raises(KeyError), naming_damaged_stores(run):  # not zarr's failure: unchanged
        {}["x"]  # noqa: B018


def test_a_missing_chunk_of_the_truth_is_refused_not_read_as_no_truth(tiny_twin, tmp_path):
    import shutil

    from cropsm.errors import InputError

    root, _ = tiny_twin
    store = Path(shutil.copytree(root / "truth.zarr", tmp_path / "truth.zarr"))
    assert open_truth(store)["reference_sm"].notnull().all()  # every chunk holds values
    (store / "station_sm" / "c" / "0" / "0" / "0").unlink()
    with pytest.raises(InputError, match=r"1 chunk file\(s\) missing \(e.g. station_sm/c/0/0/0\)"):
        open_truth(store)


def test_traits_hook_changes_only_the_crops(tiny_twin, tmp_path):
    """``generate_twin(traits=...)`` (benchmarks/trait_ceiling.py) keeps the weather, soils and
    stations and changes the truth through the crop traits alone."""
    from cropsm.twin import calendars

    root, _ = tiny_twin
    flat = tmp_path / "flat"
    summary = generate_twin(flat, "tiny", seed=0, traits=calendars.nominal_traits)
    assert "nominal" in summary["cell_traits"]
    pd.testing.assert_frame_equal(
        pd.read_csv(root / "stations" / "stations.csv"),
        pd.read_csv(flat / "stations" / "stations.csv"),
    )
    with (
        xr.open_dataset(root / "climate" / "era5_daily_2012.nc") as x,
        xr.open_dataset(flat / "climate" / "era5_daily_2012.nc") as y,
    ):
        assert np.array_equal(x["tp"].values, y["tp"].values)
    difference = np.abs(
        open_truth(root / "truth.zarr")["sm"].values - open_truth(flat / "truth.zarr")["sm"].values
    )
    # seed 0: the traits move the crops' soil moisture by 0.0043 m3 m-3 on average, at most 0.14
    assert 0.05 < float(difference.max()) < 0.25
    assert 0.002 < float(difference.mean()) < 0.008
    assert float(np.median(difference)) < 0.002
