"""The crop-aware feature set and the bounded output: calendars, bucket, grid = station, bounds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from cropsm import catalog
from cropsm.features.calendar import calendar_features, calendar_table
from cropsm.features.groups import (
    PATTERN_ONE_HOT,
    active_groups,
    feature_groups,
    layer_feature_names,
    validate_groups,
)
from cropsm.features.phenology import (
    calendar_on_days,
    temperature_harmonics,
)
from cropsm.features.water_balance import (
    available_water_m3_m3,
    canopy_cover,
    climate_descriptors,
    pattern_bucket_inputs,
    porosity_m3_m3,
    run_bucket,
)
from cropsm.predict.crop_inputs import (
    block_pattern_inputs,
    bucket_prepass,
    pattern_calendars,
    pattern_kc,
    pattern_root_cm,
)
from cropsm.predict.network import Workspace, fold_chain, forward_chain
from cropsm.predict.synthetic import table2_models
from cropsm.train import predict_chain
from cropsm.train.bounds import row_bounds
from cropsm.train.chain import with_pattern_one_hot


def test_calendar_follows_the_patterns_definition():
    # 30 April: winter wheat in mid-season; 8 August: fallow after wheat, maize in ww_mz
    may, august = 120, 220
    ww_fl = calendar_features("ww_fl", [may, august])
    ww_mz = calendar_features("ww_mz", [may, august])
    assert ww_fl["cal_crop_on"].tolist() == [1.0, 0.0]
    assert ww_fl["cal_kc"][0] == pytest.approx(1.15)  # catalog Kc_mid of winter wheat
    assert ww_fl["cal_kc"][1] == pytest.approx(catalog.fallow()["kc"])
    assert ww_mz["cal_crop_on"].tolist() == [1.0, 1.0]
    assert ww_mz["cal_kc"][1] > 1.0  # maize mid-season
    assert ww_fl["cal_root_cm"][1] == pytest.approx(catalog.fallow()["root_depth_cm"])
    # every pattern covers the year, Kc within the catalog's range
    for pid in catalog.pattern_ids():
        table = calendar_table(pid)
        assert table.shape == (366, 3)
        assert 0.1 <= table[:, 0].min() and table[:, 0].max() <= 1.25
    with pytest.raises(ValueError, match="1-366"):
        calendar_features("ww_fl", [0])


def test_feature_sets_and_groups():
    paper = layer_feature_names(2, feature_set="paper")
    crop = layer_feature_names(2, feature_set="crop")
    assert set(PATTERN_ONE_HOT) <= set(paper) and "doy" in paper
    assert not set(PATTERN_ONE_HOT) & set(crop)
    assert {"cal_kc", "wb_top", "wb_sub", "clim_aridity", "doy_sin", "doy_cos"} <= set(crop)
    assert crop[-1] == "sm_pred_upper" and "doy" not in crop
    assert "water_balance" in feature_groups("crop") and "water_balance" not in feature_groups()
    off = layer_feature_names(1, ["pattern", "water_balance"], feature_set="crop")
    assert "cal_kc" not in off and "wb_top" not in off and "precip" in off
    assert active_groups(["water_balance"], "paper") == tuple(feature_groups("paper"))
    with pytest.raises(ValueError, match="unknown feature group 'bucket'"):
        validate_groups(["bucket"])
    with pytest.raises(ValueError, match="unknown feature set"):
        layer_feature_names(1, feature_set="fancy")


def test_bucket_arithmetic_pinned():
    # C = 250 mm: top store 100 mm, subsoil 150 mm, both half full; no rain, ET0 = 5 mm, Kc = 1,
    # roots 60 cm: share from the top 1 - (1 - 20/60)^2 = 5/9. Dual coefficient (FAO-56 Eqs.
    # 71-77): cover f_c = ((1 - 0.15) / (1.2 - 0.15))^1.5, transpiration f_c Kc ET0 by the roots,
    # evaporation min(1.2 - f_c Kc, (1 - f_c) 1.2) ET0 from the top store
    precip = np.zeros((2, 1))
    et0 = np.full((2, 1), 5.0)
    relative, water = run_bucket(precip, et0, 1.0, 60.0, 250.0, np.array([[50.0], [75.0]]))
    cover = (0.85 / 1.05) ** 1.5
    assert canopy_cover(1.0) == pytest.approx(cover) and cover == pytest.approx(0.7284, abs=1e-4)
    transpiration = cover * 5.0
    evaporation = min(1.2 - cover, (1.0 - cover) * 1.2) * 5.0
    top_day1 = 50.0 - (transpiration * 5 / 9 + evaporation)  # not stressed yet (50 >= 0.5 x 100)
    sub_day1 = 75.0 - transpiration * 4 / 9
    # stressed: Ks = W / 50 reduces uptake and (stage 2) evaporation alike
    top_day2 = top_day1 - (transpiration * 5 / 9 + evaporation) * (top_day1 / 50.0)
    np.testing.assert_allclose(relative["wb_top"][:, 0], [top_day1 / 100, top_day2 / 100])
    np.testing.assert_allclose(relative["wb_sub"][0, 0], sub_day1 / 150)
    assert water.shape == (3, 1)  # two stores, snow pack
    assert water[2, 0] == 0.0  # no air temperature: every drop is rain
    # a storm fills the top, then the subsoil, and drains the rest
    relative, water = run_bucket(
        np.array([[400.0]]), np.array([[0.0]]), 1.0, 60.0, 250.0, np.array([[10.0], [10.0]])
    )
    assert relative["wb_top"][0, 0] == 1.0 and relative["wb_sub"][0, 0] == 1.0
    # a fallow field (15 cm roots) takes everything from the top store
    relative, _ = run_bucket(precip, et0, 0.2, 15.0, 250.0, np.array([[50.0], [75.0]]))
    assert relative["wb_sub"][-1, 0] == 0.5 and relative["wb_top"][-1, 0] < 0.5


def test_bare_soil_dries_the_top_and_a_canopy_the_subsoil():
    # a week without rain from a wet start (ET0 5 mm): a fallow field (Kc 0.2, roots 15 cm)
    # evaporates from the top at up to Kc_max ET0; a closed canopy (Kc 1.15, roots 100 cm)
    # shades the soil and transpires, from the subsoil too (FAO-56 dual coefficient)
    precip, et0 = np.zeros((7, 2)), np.full((7, 2), 5.0)
    kc = np.broadcast_to([0.2, 1.15], (7, 2))
    root = np.broadcast_to([15.0, 100.0], (7, 2))
    relative, _ = run_bucket(precip, et0, kc, root, 250.0, np.array([[90.0, 90.0], [140.0, 140.0]]))
    fallow_top, crop_top = relative["wb_top"][-1]
    fallow_sub, crop_sub = relative["wb_sub"][-1]
    assert fallow_top < crop_top - 0.1
    assert crop_sub < fallow_sub == pytest.approx(140.0 / 150.0)
    # on the first day the fallow field (f_c about 0.01) loses (1 - f_c) 1.2 ET0 to evaporation
    # and f_c 0.2 ET0 to transpiration, all from the top
    cover = canopy_cover(0.2)
    lost = ((1.0 - cover) * 1.2 + cover * 0.2) * 5.0
    assert relative["wb_top"][0, 0] == pytest.approx((90.0 - lost) / 100.0)


def test_snow_pack_holds_winter_precipitation_until_the_thaw_pinned():
    # 20 mm falls at -5 degC on day 1 (snow), nothing else; day 2 at +2 degC melts 2.5 x 2 = 5 mm,
    # day 3 at +10 degC melts the remaining 15 mm (at most what the pack holds)
    precip = np.array([[20.0], [0.0], [0.0]])
    tair = np.array([[-5.0], [2.0], [10.0]])
    et0 = np.zeros((3, 1))
    daily, state = run_bucket(
        precip, et0, 1.0, 60.0, 250.0, np.array([[0.0], [0.0]]), air_temperature_c=tair
    )
    np.testing.assert_allclose(daily["snow_water_mm"][:, 0], [20.0, 15.0, 0.0])
    np.testing.assert_allclose(daily["wb_top"][:, 0] * 100.0, [0.0, 5.0, 20.0])
    np.testing.assert_allclose(state[:, 0], [20.0, 0.0, 0.0])
    # without air temperature the same day-1 precipitation is rain at once
    daily, _ = run_bucket(precip, et0, 1.0, 60.0, 250.0, np.array([[0.0], [0.0]]))
    np.testing.assert_allclose(daily["wb_top"][:, 0] * 100.0, [20.0, 20.0, 20.0])
    # a run split in two with the state carried gives the same days (the product's blocks)
    first, mid = run_bucket(
        precip[:2], et0[:2], 1.0, 60.0, 250.0, np.array([[0.0], [0.0]]), air_temperature_c=tair[:2]
    )
    np.testing.assert_allclose(mid[:, 0], [5.0, 0.0, 15.0])
    second, _ = run_bucket(precip[2:], et0[2:], 1.0, 60.0, 250.0, mid, air_temperature_c=tair[2:])
    np.testing.assert_allclose(second["snow_water_mm"][0, 0], 0.0)
    np.testing.assert_allclose(second["wb_top"][0, 0] * 100.0, 20.0)


def test_bucket_stays_within_zero_and_capacity_and_depends_on_the_pattern():
    rng = np.random.default_rng(4)
    n_days = 730
    precip = rng.gamma(0.4, 8.0, (n_days, 3))
    tair = 12 + 12 * np.sin(2 * np.pi * (np.arange(n_days) - 100) / 365)[:, None] + np.zeros(3)
    ssr = 14 + 6 * np.sin(2 * np.pi * (np.arange(n_days) - 80) / 365)[:, None] + np.zeros(3)
    dates = pd.date_range("2011-01-01", periods=n_days)
    kc = pattern_kc(dates)  # (day, 6)
    root = pattern_root_cm(dates)

    def bucket(p):
        return pattern_bucket_inputs(
            precip, tair, ssr, np.repeat(kc[:, [p]], 3, axis=1), np.repeat(root[:, [p]], 3, axis=1)
        )

    fallow_summer, maize_summer = bucket(0), bucket(1)
    for result in (fallow_summer, maize_summer):
        for name in ("wb_top", "wb_sub"):
            assert (result[name] >= 0).all() and (result[name] <= 1).all()
    august = (dates.month == 8) & (dates.year == 2012)
    # ww_fl leaves the field fallow in summer, ww_mz grows deep-rooted maize: the fallow
    # subsoil is wetter
    assert fallow_summer["wb_sub"][august].mean() > maize_summer["wb_sub"][august].mean() + 0.05
    climate = climate_descriptors(precip, fallow_summer["et0_mm"])
    np.testing.assert_allclose(climate["clim_precip_mm_yr"], 365.25 * precip.mean(axis=0))


def test_grid_blocks_continue_the_station_bucket_exactly():
    """A cell's bucket computed block by block (prepass states) equals the whole-record run."""
    rng = np.random.default_rng(7)
    n_days, n_cells = 500, 4
    dates = pd.date_range("2010-01-01", periods=n_days)
    climate = {
        "precipitation": rng.gamma(0.5, 6.0, (n_days, n_cells)).astype(np.float32),
        "air_temperature": rng.normal(12, 8, (n_days, n_cells)).astype(np.float32),
        "net_solar_radiation": rng.uniform(4, 22, (n_days, n_cells)).astype(np.float32),
    }
    soil = {
        "elevation": rng.uniform(0, 2000, n_cells),
        "sand": rng.uniform(10, 70, (5, n_cells)),
        "clay": rng.uniform(5, 45, (5, n_cells)),
    }
    starts = [200, 300, 450]
    states = bucket_prepass(
        lambda sl, names: {k: climate[k][sl] for k in names}, dates, soil, starts
    )
    np.testing.assert_allclose(
        states.harmonics["clim_t_mean_c"],
        temperature_harmonics(dates, climate["air_temperature"])["clim_t_mean_c"],
    )
    tables = pattern_calendars(states.harmonics, n_cells)
    fallow = catalog.fallow()
    bare = pattern_bucket_inputs(
        climate["precipitation"],
        climate["air_temperature"],
        climate["net_solar_radiation"],
        fallow["kc"],
        fallow["root_depth_cm"],
        elevation_m=soil["elevation"],
        sand_by_layer_pct=soil["sand"],
        clay_by_layer_pct=soil["clay"],
    )
    for p, pid in enumerate(catalog.pattern_ids()):
        whole = pattern_bucket_inputs(
            climate["precipitation"],
            climate["air_temperature"],
            climate["net_solar_radiation"],
            calendar_on_days(tables[p], dates, 0),
            calendar_on_days(tables[p], dates, 1),
            elevation_m=soil["elevation"],
            sand_by_layer_pct=soil["sand"],
            clay_by_layer_pct=soil["clay"],
        )
        for i, start in enumerate(starts):
            stop = starts[i + 1] if i + 1 < len(starts) else n_days
            block = {k: v[start:stop] for k, v in climate.items()}
            names = ["wb_top", "wb_sub", "wb_top_bare", "wb_sub_bare", "cal_kc"]
            by_cell_day, shared = block_pattern_inputs(
                block, dates[start:stop], soil, states.start_water_mm[i], names, states.harmonics
            )
            np.testing.assert_allclose(
                by_cell_day["cal_kc"][p], calendar_on_days(tables[p], dates[start:stop], 0)
            )
            for name in ("wb_top", "wb_sub"):
                np.testing.assert_allclose(
                    by_cell_day[name][p], whole[name][start:stop], rtol=0, atol=1e-6, err_msg=pid
                )
                np.testing.assert_allclose(
                    shared[f"{name}_bare"], bare[name][start:stop], rtol=0, atol=1e-6
                )


def test_prepass_reads_pieces_ahead_in_order_and_fails_at_the_broken_piece():
    """The pre-pass reads the next pieces in threads while it runs the buckets: pieces come in
    order, at most AHEAD reads run beyond the piece in hand, and a read that fails raises its
    own error when its piece is reached (the pieces before it are delivered)."""
    import threading

    from cropsm.predict.crop_inputs import AHEAD, _read_ahead

    started, lock = [], threading.Lock()

    def read(time_slice, names):
        with lock:
            started.append(time_slice.start)
        if time_slice.start == 30:
            raise OSError("climate file era5_1983.nc: HDF error")
        return {name: np.arange(time_slice.start, time_slice.stop) for name in names}

    pieces = [(a, a + 10) for a in range(0, 50, 10)]
    got = _read_ahead(read, pieces, ("precipitation",))
    for a, b in pieces[:3]:
        piece = next(got)
        np.testing.assert_array_equal(piece["precipitation"], np.arange(a, b))
        assert max(started) <= a + 10 * AHEAD  # never more than AHEAD pieces ahead
    with pytest.raises(OSError, match="era5_1983.nc"):
        next(got)
    assert list(_read_ahead(read, [], ("precipitation",))) == []


def test_pedotransfer_and_porosity():
    # Saxton & Rawls (2006) Table 3-like values: loam ~0.13-0.17, sand ~0.05-0.08 available water
    loam, sand = available_water_m3_m3([40, 90], [20, 4], organic_matter_pct=2.5)
    assert 0.12 < loam < 0.18 and 0.03 < sand < 0.09 and loam > sand
    assert porosity_m3_m3(1.325) == pytest.approx(0.5)


def _random_rows_through_both_paths(models, seed: int, n: int):
    """Random inputs for a model chain (realistic density and texture) run through the folded
    product path and the station path; asserts they agree and returns
    ``(nets, table, pattern_values, [(rows, want) per pattern])``."""
    nets = fold_chain(models)
    rng = np.random.default_rng(seed)
    shared = sorted({n_ for net in nets for n_ in net.shared_names})
    table = pd.DataFrame({name: rng.normal(1.0, 3.0, n) for name in shared})
    for k in range(1, 6):
        table[f"bd_l{k}"] = rng.uniform(1.0, 1.7, n)
        table[f"sand_l{k}"] = rng.uniform(5.0, 90.0, n)
        table[f"clay_l{k}"] = rng.uniform(3.0, 60.0, n)
    per_pattern = sorted({n_ for net in nets for n_ in net.pattern_input_names})
    pattern_values = {name: rng.uniform(0, 1, (6, n)) for name in per_pattern}
    inputs = [
        np.vstack([table[list(net.shared_names)].to_numpy(np.float32).T, np.ones((1, n), "f4")])
        for net in nets
    ]
    pattern_inputs = [
        np.stack(
            [[pattern_values[name][p] for name in net.pattern_input_names] for p in range(6)]
        ).astype(np.float32)
        if net.pattern_input_names
        else None
        for net in nets
    ]
    got = forward_chain(nets, inputs, 6, Workspace(), pattern_inputs).copy()
    results = []
    for p, pid in enumerate(catalog.pattern_ids()):
        rows = with_pattern_one_hot(
            table.assign(pattern=pid, **{name: v[p] for name, v in pattern_values.items()})
        )
        want = predict_chain(models, rows).to_numpy().T  # (layer, row)
        np.testing.assert_allclose(got[:, p], want, rtol=1e-4, atol=2e-5)
        results.append((rows, want))
    return nets, table, pattern_values, results


@pytest.mark.parametrize(
    ("feature_set", "output"), [("paper", "bounded"), ("crop", "bounded"), ("crop", "anchored")]
)
def test_bounded_networks_stay_in_physical_range_and_fold_exactly(feature_set, output):
    models = table2_models(
        seed=5,
        architectures={1: (2, 8), 2: (0, 1), 3: (1, 4), 4: (2, 4), 5: (1, 2)},
        feature_set=feature_set,
        output=output,
    )
    # blow the output weights up so that the linear output would leave [0, porosity]
    models = [
        dataclasses.replace(m, weights=[*m.weights[:-1], (m.weights[-1][0] * 40, m.weights[-1][1])])
        for m in models
    ]
    nets, _, _, results = _random_rows_through_both_paths(models, seed=1, n=400)
    for rows, want in results:
        for k, model in enumerate(models):
            x = rows[list(model.feature_names)[:-1] if k else list(model.feature_names)]
            bounds = row_bounds(x.to_numpy(), model.feature_names, model.layer)
            assert (want[k] >= bounds[:, 0]).all() and (want[k] <= bounds[:, 1] + 1e-12).all()
        # the output weights are large: the bounds are reached, not merely respected
        assert (want < 0.01).any() and (want > 0.35).any()
    if output == "anchored":  # layers of the 20-50 cm store only
        assert [net.anchor_index is not None for net in nets] == [False, False, True, True, True]


def test_members_share_a_batchs_weight_free_terms_without_changing_a_value():
    """The members of a deep ensemble read the same inputs, so the product computes a batch's
    weight-free terms (pattern-input steps, porosity, anchor offsets) once for all of them: each
    member's soil moisture is then bit-identical to its own forward pass, NaN rows included.
    Chains that read their inputs differently do not share."""
    from cropsm.predict.network import batch_terms, share_batch_terms

    shapes = {1: (2, 8), 2: (1, 4), 3: (1, 4), 4: (2, 4), 5: (1, 2)}
    chains = [
        fold_chain(table2_models(seed=s, architectures=shapes, feature_set="crop", output=o))
        for s, o in ((1, "anchored"), (2, "anchored"), (3, "anchored"))
    ]
    assert share_batch_terms(chains)
    paper = fold_chain(table2_models(seed=1, architectures=shapes, feature_set="paper"))
    assert not share_batch_terms([chains[0], paper])
    rng = np.random.default_rng(3)
    n = 257
    table = pd.DataFrame(
        {name: rng.normal(1.0, 3.0, n) for net in chains[0] for name in net.shared_names}
    )
    for k in range(1, 6):
        table[f"bd_l{k}"] = rng.uniform(1.0, 1.7, n)
        table[f"sand_l{k}"] = rng.uniform(5.0, 90.0, n)
        table[f"clay_l{k}"] = rng.uniform(3.0, 60.0, n)
    table.iloc[5, 0] = np.nan
    inputs = [
        np.vstack([table[list(net.shared_names)].to_numpy(np.float32).T, np.ones((1, n), "f4")])
        for net in chains[0]
    ]
    pattern_inputs = [
        rng.uniform(0, 1, (6, len(net.pattern_input_names), n)).astype(np.float32)
        for net in chains[0]
    ]
    pattern_inputs[3][2, -1, 9] = np.nan  # one pattern's bucket of one row
    alone = [forward_chain(nets, inputs, 6, Workspace(), pattern_inputs).copy() for nets in chains]
    ws = Workspace()
    terms = batch_terms(chains[0], inputs, 6, pattern_inputs, ws)
    shared = [
        forward_chain(nets, inputs, 6, w, pattern_inputs, terms).copy()
        for nets, w in zip(chains, [ws, Workspace(), Workspace()], strict=True)
    ]
    for a, b in zip(alone, shared, strict=True):
        np.testing.assert_array_equal(a, b)
    assert np.isnan(alone[0][:, :, 5]).all()  # a shared input: every layer and pattern
    assert np.isnan(alone[0][3:, 2, 9]).all() and np.isfinite(alone[0][:3, :, 9]).all()
    assert np.isfinite(np.delete(alone[0], [5, 9], axis=2)).all()
    assert not np.array_equal(alone[0], alone[1])  # the members differ


def test_anchored_network_starts_from_the_bucket_and_moves_with_the_pattern():
    """With a zero output map an anchored network of the 20-50 cm layers predicts the bucket's
    soil moisture theta_1500 + W_sub (theta_33 - theta_1500), in the station path and the folded
    product path, per pattern; the 0-20 cm layers are not anchored (0.5 porosity)."""
    from cropsm.features.water_balance import saxton_rawls_retention

    models = table2_models(
        seed=2, architectures={k: (1, 4) for k in range(1, 6)}, feature_set="crop",
        output="anchored",
    )  # fmt: skip
    models = [
        dataclasses.replace(m, weights=[*m.weights[:-1], tuple(a * 0 for a in m.weights[-1])])
        for m in models
    ]
    _, table, values, results = _random_rows_through_both_paths(models, seed=4, n=300)
    for p, (_, want) in enumerate(results):
        for k in range(3, 6):  # the 20-50 cm layers start from the subsoil store
            w = values["wb_sub"][p]
            wp, fc = saxton_rawls_retention(
                table[f"sand_l{k}"] / 100, table[f"clay_l{k}"] / 100, 2.0
            )
            bucket = wp + w * np.maximum(fc - wp, 0.02)
            porosity = 1 - table[f"bd_l{k}"].to_numpy() / 2.65
            inside = (bucket > 0.03 * porosity) & (bucket < 0.97 * porosity)
            assert inside.mean() > 0.8
            np.testing.assert_allclose(want[k - 1][inside], bucket[inside], rtol=1e-9)
        for k in (1, 2):
            porosity = 1 - table[f"bd_l{k}"].to_numpy() / 2.65
            np.testing.assert_allclose(want[k - 1], 0.5 * porosity, rtol=1e-9)


def test_location_unit_vector_and_group():
    from cropsm.features.location import LOCATION_FEATURES, location_unit_vector

    loc = location_unit_vector(
        [0.0, 0.0, 90.0, -30.0, 40.0, 40.0], [0.0, 90.0, 17.0, 180.0, -100.0, 260.0]
    )
    np.testing.assert_allclose(loc["loc_x"][:3], [1.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(loc["loc_y"][:3], [0.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(loc["loc_z"][:3], [0.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(loc["loc_x"][3], -np.sqrt(3) / 2)  # (-30, 180): x = -cos 30
    np.testing.assert_allclose(loc["loc_z"][3], -0.5)
    # -100 and 260 degrees east are the same meridian; every vector has unit length
    for name in LOCATION_FEATURES:
        assert loc[name][4] == pytest.approx(loc[name][5])
    length = np.sqrt(sum(loc[n] ** 2 for n in LOCATION_FEATURES))
    np.testing.assert_allclose(length, 1.0)
    assert np.isnan(location_unit_vector(np.nan, 10.0)["loc_z"])
    with pytest.raises(ValueError, match="latitude outside"):
        location_unit_vector(120.0, 10.0)
    # a group of the crop-aware set (switchable), not of the paper's Table 1
    crop = layer_feature_names(1, feature_set="crop")
    assert set(LOCATION_FEATURES) <= set(crop)
    assert not set(LOCATION_FEATURES) & set(layer_feature_names(1, feature_set="paper"))
    assert not set(LOCATION_FEATURES) & set(layer_feature_names(1, ["location"], "crop"))


def test_grid_cells_get_the_location_of_their_coordinates():
    import xarray as xr

    from cropsm.predict.grid_features import STATIC_FEATURES, static_cell_features

    assert {"loc_x", "loc_y", "loc_z"} <= set(STATIC_FEATURES)
    static = xr.Dataset(
        {"elevation": (("lat", "lon"), np.array([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]]))},
        coords={"lat": [30.0, 45.0], "lon": [100.0, 110.0, 120.0]},
    )
    cells = static_cell_features(
        static, np.array([1, 0]), np.array([2, 0]), ["elevation", "loc_x", "loc_z"]
    )
    np.testing.assert_allclose(cells["elevation"], [60.0, 10.0])
    np.testing.assert_allclose(
        cells["loc_x"],
        [
            np.cos(np.radians(45)) * np.cos(np.radians(120)),
            np.cos(np.radians(30)) * np.cos(np.radians(100)),
        ],
    )
    np.testing.assert_allclose(cells["loc_z"], [np.sin(np.radians(45)), 0.5])
