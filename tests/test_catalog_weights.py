"""Package data (regions, patterns, Table 3) and the crop-area weights of Eq. 1."""

import numpy as np
import pytest

from cropsm import catalog
from cropsm.weights import pattern_weights, weights_fallback


def test_six_patterns_in_paper_order():
    assert catalog.pattern_ids() == ("ww_fl", "ww_mz", "sw_ct", "rs_ct", "fl_mz", "fl_sb")


def test_every_region_has_table3_patterns_among_the_six():
    ids = set(catalog.pattern_ids())
    for r in catalog.regions():
        pats = catalog.table3()[r.id].patterns
        assert pats, r.id
        assert set(pats) <= ids


def test_weight_crops_are_known_crops():
    for p in catalog.patterns():
        assert set(p.weight_crops) <= set(catalog.crops())


def _areas(**by_crop):
    crops = catalog.crops()
    return np.array([[by_crop.get(c, 0.0)] for c in crops])  # (crop, 1 cell)


def test_weights_eq1_hhh():
    # HHH practises ww_mz (wheat + maize) and fl_mz (maize):
    # w(ww_mz) = (W + M) / ((W + M) + M), w(fl_mz) = M / ((W + M) + M).
    areas = _areas(wheat=300.0, maize=100.0, cotton=50.0)
    w = pattern_weights(areas, np.array([catalog.region_code("HHH")]))
    ids = catalog.pattern_ids()
    assert w[ids.index("ww_mz"), 0] == pytest.approx(400 / 500)
    assert w[ids.index("fl_mz"), 0] == pytest.approx(100 / 500)
    assert w[:, 0].sum() == pytest.approx(1.0)
    assert w[ids.index("ww_fl"), 0] == 0.0


def test_weights_sum_to_one_inside_china_and_zero_outside():
    rng = np.random.default_rng(0)
    codes = np.arange(0, 9)
    areas = rng.uniform(0, 100, (6, 9))
    w = pattern_weights(areas, codes)
    assert np.allclose(w[:, 1:].sum(axis=0), 1.0)
    assert np.all(w[:, 0] == 0)


def test_weights_fallback_equal_when_no_crop_area():
    w = pattern_weights(_areas(), np.array([catalog.region_code("NE")]))
    ids = catalog.pattern_ids()
    assert w[ids.index("fl_mz"), 0] == pytest.approx(0.5)
    assert w[ids.index("fl_sb"), 0] == pytest.approx(0.5)
    assert weights_fallback(_areas(), np.array([catalog.region_code("NE")]))[0]
