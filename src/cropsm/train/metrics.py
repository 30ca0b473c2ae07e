"""Agreement between observed and simulated soil moisture (paper section 3b, Table 2).

Every function takes ``obs`` and ``sim`` of the same length and ignores pairs where either is
NaN. With fewer than one valid pair the result is NaN (``n`` is 0).
"""

from __future__ import annotations

import numpy as np


def _valid_pairs(obs, sim) -> tuple[np.ndarray, np.ndarray]:
    o = np.asarray(obs, dtype=np.float64).ravel()
    s = np.asarray(sim, dtype=np.float64).ravel()
    if o.shape != s.shape:
        raise ValueError(f"obs and sim differ in length: {o.size} and {s.size}")
    ok = np.isfinite(o) & np.isfinite(s)
    return o[ok], s[ok]


def n(obs, sim) -> int:
    """Number of pairs where both ``obs`` and ``sim`` are finite."""
    o, _ = _valid_pairs(obs, sim)
    return int(o.size)


def r2(obs, sim) -> float:
    """Coefficient of determination ``R2 = 1 - SSE / SST`` (paper's R2, Table 2).

    ``SSE = sum (obs_i - sim_i)^2``, ``SST = sum (obs_i - mean(obs))^2``. A perfect prediction
    gives 1, predicting the mean of ``obs`` gives 0, worse predictions are negative. NaN when
    ``SST = 0`` or no pairs are valid.
    """
    o, s = _valid_pairs(obs, sim)
    if o.size == 0:
        return float("nan")
    sst = float(np.sum((o - o.mean()) ** 2))
    if sst == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((o - s) ** 2)) / sst


def rmse(obs, sim) -> float:
    """Root mean square error ``RMSE = sqrt(mean((sim - obs)^2))``."""
    o, s = _valid_pairs(obs, sim)
    if o.size == 0:
        return float("nan")
    return float(np.sqrt(np.mean((s - o) ** 2)))


def bias(obs, sim) -> float:
    """Mean error ``bias = mean(sim - obs)`` (positive: simulation too wet)."""
    o, s = _valid_pairs(obs, sim)
    if o.size == 0:
        return float("nan")
    return float(np.mean(s - o))


def ubrmse(obs, sim) -> float:
    """Unbiased RMSE ``ubRMSE = sqrt(RMSE^2 - bias^2)``.

    Equals the RMSE after removing the mean error, ``sqrt(mean(((sim - mean(sim)) -
    (obs - mean(obs)))^2))``; tiny negative round-off under the root is clipped to 0.
    """
    o, s = _valid_pairs(obs, sim)
    if o.size == 0:
        return float("nan")
    mse = float(np.mean((s - o) ** 2))
    mean_error = float(np.mean(s - o))
    return float(np.sqrt(max(mse - mean_error**2, 0.0)))


def pearson_r(obs, sim) -> float:
    """Pearson correlation ``r = cov(obs, sim) / (std(obs) std(sim))``; NaN for a constant."""
    o, s = _valid_pairs(obs, sim)
    if o.size < 2:
        return float("nan")
    do, ds = o - o.mean(), s - s.mean()
    denominator = float(np.sqrt(np.sum(do**2) * np.sum(ds**2)))
    if denominator == 0.0:
        return float("nan")
    return float(np.sum(do * ds)) / denominator


def all_metrics(obs, sim) -> dict[str, float | int]:
    """All scores at once: ``{"r2", "rmse", "ubrmse", "bias", "r", "n"}`` (NaN-safe)."""
    return {
        "r2": r2(obs, sim),
        "rmse": rmse(obs, sim),
        "ubrmse": ubrmse(obs, sim),
        "bias": bias(obs, sim),
        "r": pearson_r(obs, sim),
        "n": n(obs, sim),
    }
