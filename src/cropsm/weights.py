"""Crop-area weights of the cropping patterns (Liu et al. 2021, section 2c(2), Eqs. 1-2).

The reference soil moisture of a cell is the weighted sum of the six pattern products over the
patterns its region practises (the paper's Table 3 mapped onto the six, package data)::

    weight_i = sum_{j in crops(i)} area_j / sum_{i' in region} sum_{j in crops(i')} area_j  (1)
    SM_ref   = sum_i weight_i * SM_i                                                          (2)

``crops(i)`` are the pattern's ``weight_crops`` (fallow takes the area of the crop it rotates
with, so it adds no crop of its own). The denominator sums the pattern areas, so a crop shared by
two of the region's patterns counts once per pattern and the weights of a cell sum to exactly 1
wherever any of its crops has area; a cell with no area of its region's crops gets equal weights
over the region's patterns (documented fallback, flagged by ``weights_fallback``).
"""

from __future__ import annotations

import numpy as np

from cropsm import catalog


def pattern_crop_matrix() -> np.ndarray:
    """Matrix M (pattern, crop) with M[i, j] = 1 when crop j is a weight crop of pattern i."""
    crops = catalog.crops()
    pats = catalog.patterns()
    matrix = np.zeros((len(pats), len(crops)))
    for i, p in enumerate(pats):
        for c in p.weight_crops:
            matrix[i, crops.index(c)] = 1.0
    return matrix


def region_pattern_matrix() -> np.ndarray:
    """Matrix R (region code 0..8, pattern) with R[r, i] = 1 when region r practises pattern i.

    Row 0 (outside any region) is all zeros.
    """
    ids = catalog.pattern_ids()
    table = catalog.table3()
    out = np.zeros((len(catalog.regions()) + 1, len(ids)))
    for r in catalog.regions():
        for p in table[r.id].patterns:
            out[r.code, ids.index(p)] = 1.0
    return out


def pattern_weights(harvested_area_ha: np.ndarray, region_code: np.ndarray) -> np.ndarray:
    """Weights of the six patterns per cell (Eq. 1).

    Parameters
    ----------
    harvested_area_ha
        Array (crop, ...) of harvested areas in catalog crop order.
    region_code
        Integer array (...) of region codes (0 outside China).

    Returns
    -------
    numpy.ndarray
        Array (pattern, ...) of weights; zero outside China and for patterns the region does not
        practise; sums to 1 over patterns inside China.
    """
    areas = np.asarray(harvested_area_ha, dtype=np.float64)
    codes = np.asarray(region_code).astype(np.intp)
    pattern_area = np.tensordot(pattern_crop_matrix(), np.nan_to_num(areas), axes=(1, 0))
    practised = np.moveaxis(region_pattern_matrix()[codes], -1, 0)  # (pattern, ...)
    pattern_area = pattern_area * practised
    total = pattern_area.sum(axis=0)
    n_practised = practised.sum(axis=0)
    equal = np.divide(practised, n_practised, out=np.zeros_like(practised), where=n_practised > 0)
    weights = np.where(total > 0, pattern_area / np.where(total > 0, total, 1.0), equal)
    return weights


def weights_fallback(harvested_area_ha: np.ndarray, region_code: np.ndarray) -> np.ndarray:
    """True where a cell inside China has no area of its region's crops (equal weights used)."""
    areas = np.nan_to_num(np.asarray(harvested_area_ha, dtype=np.float64))
    codes = np.asarray(region_code).astype(np.intp)
    pattern_area = np.tensordot(pattern_crop_matrix(), areas, axes=(1, 0))
    practised = np.moveaxis(region_pattern_matrix()[codes], -1, 0)
    return (codes > 0) & ((pattern_area * practised).sum(axis=0) <= 0)
