"""Train / validation / test membership."""

import pandas as pd
import pytest

from cropsm.train.splits import make_split, split_membership
from cropsm.train.synthetic import synthetic_station_table


@pytest.fixture(scope="module")
def table():
    return synthetic_station_table(n_stations=30, n_years=6, dates_per_year=10, seed=3)


def test_random_split_fractions(table):
    split = make_split(table, "random", seed=0)
    shares = split.value_counts(normalize=True)
    assert shares["test"] == pytest.approx(0.3, abs=0.002)
    n_rest = (split != "test").sum()
    assert (split == "validation").sum() / n_rest == pytest.approx(0.1, abs=0.002)
    assert set(split.unique()) == {"train", "validation", "test"}
    assert split.index.equals(table.index)


def test_same_seed_same_membership_and_row_order_does_not_matter(table):
    a = make_split(table, "random", seed=7)
    b = make_split(table, "random", seed=7)
    shuffled = table.sample(frac=1.0, random_state=1)
    c = make_split(shuffled, "random", seed=7)
    pd.testing.assert_series_equal(a, b)
    pd.testing.assert_series_equal(a, c.reindex(a.index))
    assert not a.equals(make_split(table, "random", seed=8))


def test_station_split_keeps_stations_whole(table):
    split = make_split(table, "station", seed=0)
    per_station = split.groupby(table["station_id"]).nunique()
    assert (per_station == 1).all()
    assert set(split.unique()) == {"train", "validation", "test"}
    assert (split == "test").mean() == pytest.approx(0.3, abs=0.05)


def test_year_split_keeps_years_whole(table):
    split = make_split(table, "year", seed=1)
    per_year = split.groupby(pd.to_datetime(table["date"]).dt.year).nunique()
    assert (per_year == 1).all()
    assert set(split.unique()) == {"train", "validation", "test"}
    pd.testing.assert_series_equal(split, make_split(table, "year", seed=1))


def test_too_few_groups_is_an_error(table):
    two_stations = table[table["station_id"].isin(["S0000", "S0001"])]
    with pytest.raises(ValueError, match="at least 3 distinct stations"):
        make_split(two_stations, "station")


def test_membership_table_for_csv(table, tmp_path):
    split = make_split(table, "random", seed=0)
    frame = split_membership(table, split)
    assert list(frame.columns) == ["station_id", "date", "split"]
    path = tmp_path / "splits.csv"
    frame.to_csv(path, index=False)
    back = pd.read_csv(path)
    assert back["split"].tolist() == split.tolist()
    assert back["date"].iloc[0] == pd.Timestamp(table["date"].iloc[0]).strftime("%Y-%m-%d")
