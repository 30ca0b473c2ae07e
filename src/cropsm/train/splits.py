"""Train / validation / test membership of the station-table rows (paper section 2a).

The paper samples 70 % of the observations at random for training and keeps 30 % for testing;
10 % of the training set is used for validation. The membership is decided once per station-date
row, so a row is in the same set for all five layers. Two stricter alternatives hold out whole
stations or whole years, to test transfer in space or time.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from cropsm.errors import UsageError

SplitKind = Literal["random", "station", "year"]
SPLIT_NAMES = ("train", "validation", "test")


def _canonical_order(table: pd.DataFrame) -> np.ndarray:
    """Positions of the rows sorted by (station_id, date), so membership ignores row order."""
    if {"station_id", "date"} <= set(table.columns):
        keys = pd.DataFrame(
            {"station_id": table["station_id"].astype(str).to_numpy(), "date": table["date"]}
        )
        return np.lexsort((keys["date"].to_numpy(), keys["station_id"].to_numpy()))
    return np.arange(len(table))


def _take_groups(order: np.ndarray, sizes: np.ndarray, target: float, keep_after: int) -> int:
    """How many groups (in ``order``) to take so that their rows come closest to ``target``.

    At least one group is taken and at least ``keep_after`` groups are left over.
    """
    cumulative = np.cumsum(sizes[order])
    best = int(np.argmin(np.abs(cumulative - target))) + 1
    return int(min(max(best, 1), len(order) - keep_after))


def _group_split(
    groups: np.ndarray, seed: int, test_fraction: float, validation_fraction: float, what: str
) -> np.ndarray:
    """Assign whole groups (stations or years) to test, then validation, the rest to train."""
    labels, codes = np.unique(groups, return_inverse=True)
    if len(labels) < 3:
        raise UsageError(
            f"a split by {what} needs at least 3 distinct {what}s, found {len(labels)}"
        )
    sizes = np.bincount(codes, minlength=len(labels)).astype(np.float64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    n_test = _take_groups(order, sizes, test_fraction * sizes.sum(), keep_after=2)
    rest = order[n_test:]
    n_val = _take_groups(rest, sizes, validation_fraction * sizes[rest].sum(), keep_after=1)
    assignment = np.full(len(labels), "train", dtype=object)
    assignment[order[:n_test]] = "test"
    assignment[rest[:n_val]] = "validation"
    return assignment[codes]


def make_split(
    table: pd.DataFrame,
    kind: SplitKind = "random",
    seed: int = 0,
    test_fraction: float = 0.3,
    validation_fraction: float = 0.1,
) -> pd.Series:
    """Assign every row of the station table to ``train``, ``validation`` or ``test``.

    Parameters
    ----------
    table
        Station table (one row per station-date), with ``station_id`` and ``date`` columns.
    kind
        ``random``: rows sampled at random, ``round(test_fraction * n)`` rows to test and
        ``round(validation_fraction * n_rest)`` of the rest to validation (section 2a:
        70/30, 10 % of training for validation). ``station``: whole stations, chosen at random
        until their rows come closest to the same fractions. ``year``: the same with calendar
        years of ``date``.
    seed
        Same table and seed give the same membership (independent of the row order).
    test_fraction, validation_fraction
        Shares of all rows, and of the non-test rows.

    Returns
    -------
    pandas.Series
        Named ``split``, indexed like ``table``, values ``"train" | "validation" | "test"``.
    """
    if not 0.0 < test_fraction < 1.0 or not 0.0 < validation_fraction < 1.0:
        raise ValueError("test_fraction and validation_fraction must lie between 0 and 1")
    n_rows = len(table)
    if n_rows < 3:
        raise UsageError(f"cannot split {n_rows} rows into train, validation and test")
    order = _canonical_order(table)
    membership = np.empty(n_rows, dtype=object)
    if kind == "random":
        rng = np.random.default_rng(seed)
        shuffled = order[rng.permutation(n_rows)]
        n_test = min(max(int(round(test_fraction * n_rows)), 1), n_rows - 2)
        n_rest = n_rows - n_test
        n_val = min(max(int(round(validation_fraction * n_rest)), 1), n_rest - 1)
        membership[shuffled[:n_test]] = "test"
        membership[shuffled[n_test : n_test + n_val]] = "validation"
        membership[shuffled[n_test + n_val :]] = "train"
    elif kind == "station":
        stations = table["station_id"].astype(str).to_numpy()
        membership[:] = _group_split(stations, seed, test_fraction, validation_fraction, "station")
    elif kind == "year":
        years = pd.to_datetime(table["date"]).dt.year.to_numpy()
        membership[:] = _group_split(years, seed, test_fraction, validation_fraction, "year")
    else:
        raise ValueError(f"unknown split kind {kind!r}; expected random, station or year")
    return pd.Series(membership, index=table.index, name="split", dtype=object)


def split_membership(table: pd.DataFrame, split: pd.Series) -> pd.DataFrame:
    """The membership as a table ``station_id, date, split`` (written as ``splits.csv``)."""
    return pd.DataFrame(
        {
            "station_id": table["station_id"].astype(str).to_numpy(),
            "date": pd.to_datetime(table["date"]).dt.strftime("%Y-%m-%d").to_numpy(),
            "split": split.reindex(table.index).to_numpy(),
        }
    )
