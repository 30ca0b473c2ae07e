"""Control experiments: station-level R2 loss (Fig. 5) and national differences (Fig. 6).

A one-layer "run" is trained once per module on a small synthetic station table whose target
depends strongly on precipitation and not at all on wind; the control experiments reuse it. JAX
compiles once per input width, so the tests are arranged to reuse few widths (the two-layer chain
test reuses the widths of the one-layer experiments).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from rich.console import Console
from typer.testing import CliRunner

from cropsm.attribute.config import AttributeConfig
from cropsm.attribute.national import (
    difference_summary,
    median_annual_sm,
    national_attribution,
    national_differences,
    write_national_attribution,
)
from cropsm.attribute.station import (
    PAPER_FIG5_R2_LOSS_LAYER1,
    R2_LOSS_COLUMNS,
    r2_loss_table,
    run_control_experiments,
    split_from_membership,
    station_attribution,
    train_chain_fixed,
    winning_hyperparameters,
)
from cropsm.features.groups import FEATURE_GROUPS, layer_feature_names
from cropsm.features.station_table import station_table_path, write_station_table
from cropsm.train import (
    GridConfig,
    TrainConfig,
    split_membership,
    train_layers,
    write_training_outputs,
)
from cropsm.train.synthetic import synthetic_station_table

N_LAYERS_RUN = 1
GROUPS = ("precipitation", "wind")
CONFIG = TrainConfig(
    max_epochs=20,
    patience=5,
    seed=3,
    grid=GridConfig(batch_sizes=[64], learning_rates=[1e-2], hidden_layers=[2], units=[16]),
)
RUN_TOML = """
[run]
name = "attribution test"
seed = 0
[inputs.twin]
preset = "tiny"
seed = 0
[features]
set = "paper"
[train]
seed = 3
max_epochs = 20
patience = 5
[train.grid]
batch_sizes = [64]
learning_rates = [1e-2]
hidden_layers = [2]
units = [16]
"""


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_station_table(n_stations=30, n_years=3, dates_per_year=10, seed=2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, table):
    """A run directory holding a station table, two trained layers, splits.csv and its config."""
    root = tmp_path_factory.mktemp("attr") / "run"
    write_station_table(table, station_table_path(root))
    chain = train_layers(table, CONFIG, n_layers=N_LAYERS_RUN)
    write_training_outputs(chain, table, root)
    (root / "config.resolved.toml").write_text(RUN_TOML)
    return root


@pytest.fixture(scope="module")
def attribution(run_dir):
    from cropsm.run_layout import load_run_config

    config = load_run_config(run_dir)
    settings = AttributeConfig(groups=GROUPS, national_groups=("precipitation",))
    result = station_attribution(run_dir, config, settings=settings)
    return run_dir, result


def test_reduced_model_sets_omit_their_group(attribution):
    run_dir, _ = attribution
    saved = run_dir / "attribution" / "models_no_precipitation"
    for k in range(1, N_LAYERS_RUN + 1):
        names = json.loads((saved / f"layer{k}" / "model.json").read_text())["feature_names"]
        assert names == layer_feature_names(k, ("precipitation",))
        assert not set(FEATURE_GROUPS["precipitation"]) & set(names)
        assert "wind" in names
    assert not (run_dir / "attribution" / "models_no_wind").exists()  # not a national group


def test_same_split_and_hyperparameters_as_the_full_model(run_dir, table):
    from cropsm.train import load_models

    run_models = load_models(run_dir / "models")
    hyper = winning_hyperparameters(run_models)
    split = split_from_membership(table, pd.read_csv(run_dir / "splits.csv"))
    experiments = run_control_experiments(table, CONFIG, hyper, split, groups=("wind",))
    for chain in (experiments.full, experiments.reduced["wind"]):
        assert (chain.split.to_numpy() == split.to_numpy()).all()
        for model in chain.models:
            for key in ("hidden_layers", "units", "batch_size", "learning_rate"):
                assert model.hyperparameters[key] == hyper[model.layer][key]
    # The retrained full model is the run's selected network (same seed, config and split).
    for model, retrained in zip(run_models, experiments.full.models, strict=True):
        assert retrained.metrics["train"]["r2"] == pytest.approx(model.metrics["train"]["r2"],
                                                                 abs=1e-4)  # fmt: skip
    assert experiments.reduced["wind"].groups_off == ("wind",)


def test_r2_loss_table_complete_ranked_and_precipitation_matters(attribution):
    run_dir, result = attribution
    losses = pd.read_csv(run_dir / "attribution" / "station_r2_loss.csv")
    assert list(losses.columns) == list(R2_LOSS_COLUMNS)
    assert len(losses) == len(GROUPS) * N_LAYERS_RUN
    for _, rows in losses.groupby("layer"):
        assert sorted(rows["group"]) == sorted(GROUPS)
        assert sorted(rows["rank"]) == list(range(1, len(GROUPS) + 1))
        assert rows["r2_loss_train"].is_monotonic_decreasing  # sorted by rank
        np.testing.assert_allclose(
            rows["r2_loss_train"], rows["r2_full_train"] - rows["r2_reduced_train"]
        )
        np.testing.assert_allclose(
            rows["r2_loss_test"], rows["r2_full_test"] - rows["r2_reduced_test"]
        )
        loss = rows.set_index("group")
        # The synthetic target depends strongly on precipitation and not at all on wind.
        assert loss.loc["precipitation", "r2_loss_train"] > loss.loc["wind", "r2_loss_train"]
        assert loss.loc["precipitation", "r2_loss_test"] > loss.loc["wind", "r2_loss_test"]
        assert loss.loc["precipitation", "r2_loss_train"] > 0.05
    assert result["layer1_top_group"] == "precipitation"
    paper = losses[losses["layer"] == 1].set_index("group")["paper_r2_loss"]
    assert paper["precipitation"] == PAPER_FIG5_R2_LOSS_LAYER1["precipitation"]
    assert (run_dir / "figures" / "fig5_r2_loss_all_layers.png").stat().st_size > 10_000
    assert not list((run_dir / "figures").glob("fig5_r2_loss_layer*.png"))  # one chart
    summary = json.loads((run_dir / "attribution" / "station_attribution.json").read_text())
    assert summary["split_source"] == "splits.csv"
    assert summary["hyperparameters"]["layer1"]["units"] == 16


def test_r2_loss_table_by_hand():
    full = {1: {"train": 0.8, "test": 0.7}, 2: {"train": 0.9, "test": 0.8}}
    reduced = {
        "wind": {1: {"train": 0.79, "test": 0.71}, 2: {"train": 0.5, "test": 0.5}},
        "precipitation": {1: {"train": 0.6, "test": 0.55}, 2: {"train": 0.8, "test": 0.7}},
        "soil": {1: {"train": 0.7, "test": 0.69}, 2: {"train": 0.8, "test": 0.6}},
    }
    table = r2_loss_table(full, reduced)
    assert list(table["layer"]) == [1, 1, 1, 2, 2, 2]
    out = table[table["layer"] == 1].set_index("group")
    assert out.loc["precipitation", "r2_loss_train"] == pytest.approx(0.2)
    assert out.loc["wind", "r2_loss_test"] == pytest.approx(-0.01)
    assert out["rank"].to_dict() == {"precipitation": 1, "soil": 2, "wind": 3}
    assert out["rank_test"].to_dict() == {"precipitation": 1, "soil": 2, "wind": 3}
    assert out.loc["soil", "paper_r2_loss"] == 0.15
    assert np.isnan(out.loc["wind", "paper_r2_loss"])
    layer2 = table[table["layer"] == 2].set_index("group")
    assert layer2["rank"].to_dict() == {"wind": 1, "precipitation": 2, "soil": 2}  # a tie
    assert layer2["rank_test"].to_dict() == {"wind": 1, "soil": 2, "precipitation": 3}
    assert layer2["paper_r2_loss"].isna().all()


def test_chained_reduced_models(run_dir, table):
    """Layer 2 of a reduced set omits the group too and takes the reduced layer-1 prediction."""
    from cropsm.features.groups import UPPER
    from cropsm.train import load_models, predict_chain

    hyper = winning_hyperparameters(load_models(run_dir / "models"))
    two_layers = {1: hyper[1], 2: hyper[1]}
    split = split_from_membership(table, pd.read_csv(run_dir / "splits.csv"))
    chain = train_chain_fixed(table, CONFIG, two_layers, split, groups_off=("wind",))
    names = chain.models[1].feature_names
    assert names == tuple(layer_feature_names(2, ("wind",))) and names[-1] == UPPER
    assert "wind" not in names and "clay_l2" in names
    first = predict_chain(chain.models[:1], table)["sm_pred_l1"]
    np.testing.assert_allclose(chain.upper_inputs[2].to_numpy(), first[chain.upper_inputs[2].index])
    assert chain.models[1].metrics["test"]["r2"] > 0.5
    assert list(chain.row_counts.index) == [1, 2]


def test_chain_r2_and_split_roundtrip(run_dir, table):
    membership = pd.read_csv(run_dir / "splits.csv")
    split = split_from_membership(table.sample(frac=1.0, random_state=0), membership)
    again = split_membership(table, split.reindex(table.index))
    assert (again["split"].to_numpy() == membership["split"].to_numpy()).all()
    with pytest.raises(ValueError, match="lacks"):
        split_from_membership(table, membership.iloc[:-3])


def test_config_validates_groups():
    with pytest.raises(ValueError, match="unknown feature group"):
        AttributeConfig(groups=("rain",))
    with pytest.raises(ValueError, match="not in groups"):
        AttributeConfig(groups=("wind",), national_groups=("soil",))
    with pytest.raises(ValueError):
        AttributeConfig(nationl=True)


def test_attribute_command(attribution, monkeypatch):
    """``cropsm attribute RUN_DIR`` runs the stage once, then skips it while current."""
    import typer

    from cropsm.attribute import commands, stage

    run_dir, _ = attribution
    settings = AttributeConfig(groups=("wind",), national_groups=())
    monkeypatch.setattr(stage, "attribute_settings", lambda config: settings)
    app = typer.Typer()
    register_calls = []
    commands.register(app, lambda f: register_calls.append(f) or f, Console(width=200))

    @app.callback()
    def main() -> None:  # a group, so the command is addressed by name
        """test app"""

    runner = CliRunner()
    first = runner.invoke(app, ["attribute", str(run_dir)])
    assert first.exit_code == 0, first.output
    assert "R2 loss per omitted feature group" in first.output
    assert "no national product" in first.output
    assert json.loads((run_dir / "stages" / "attribute.json").read_text())["result"]["groups"] == 1
    second = runner.invoke(app, ["attribute", str(run_dir)])
    assert second.exit_code == 0, second.output
    assert "skipped" in second.output
    missing = runner.invoke(app, ["attribute", str(run_dir / "nope")])
    assert missing.exit_code != 0


# --------------------------------------------------------------------------------------------
# National level
# --------------------------------------------------------------------------------------------


def _field(values: np.ndarray, time: pd.DatetimeIndex) -> xr.DataArray:
    lat = np.array([30.0, 31.0])
    lon = np.array([110.0, 111.0, 112.0])
    return xr.DataArray(values, coords={"time": time, "lat": lat, "lon": lon},
                        dims=("time", "lat", "lon"), attrs={"units": "m3 m-3"})  # fmt: skip


def test_national_differences_by_hand():
    time = pd.date_range("2001-01-01", "2003-12-31", freq="D")
    rng = np.random.default_rng(0)
    full = _field(0.2 + 0.1 * rng.random((time.size, 2, 3)), time)
    dry = _field(full.values - 0.03 + 0.01 * rng.random((time.size, 2, 3)), time)
    out = national_differences(full, {"precipitation": dry, "pattern": full + 0.01})

    def by_hand(da: xr.DataArray) -> np.ndarray:
        years = da["time"].dt.year.values
        annual = np.stack([da.values[years == y].mean(axis=0) for y in (2001, 2002, 2003)])
        return np.median(annual, axis=0)

    np.testing.assert_allclose(out["median_annual_sm_full"].values, by_hand(full), rtol=1e-12)
    np.testing.assert_allclose(
        out["sm_difference"].sel(group="precipitation").values, by_hand(dry) - by_hand(full),
        rtol=1e-10,
    )  # fmt: skip
    np.testing.assert_allclose(out["sm_difference"].sel(group="pattern").values, 0.01, rtol=1e-8)
    assert list(out["group"].values) == ["precipitation", "pattern"]
    assert out["sm_difference"].attrs["units"] == "m3 m-3"
    assert out.attrs["years"] == "2001-2003"
    np.testing.assert_allclose(median_annual_sm(full).values, by_hand(full), rtol=1e-12)

    summary = difference_summary(out).set_index("group")
    assert summary.loc["pattern", "share_positive"] == 1.0
    assert summary.loc["pattern", "mean_m3_m-3"] == pytest.approx(0.01)
    assert summary.loc["precipitation", "n_cells"] == 6


def test_national_differences_rejects_other_grids():
    time = pd.date_range("2001-01-01", periods=400, freq="D")
    full = _field(np.full((time.size, 2, 3), 0.2), time)
    shifted = full.assign_coords(lon=full["lon"] + 0.5)
    with pytest.raises(ValueError, match="grid or days differ"):
        national_differences(full, {"soil": shifted})
    with pytest.raises(ValueError, match="dims"):
        national_differences(full.isel(time=0), {"soil": full})
    with pytest.raises(ValueError, match="at least one"):
        national_differences(full, {})


def test_write_national_attribution(tmp_path):
    time = pd.date_range("2001-01-01", "2002-12-31", freq="D")
    full = _field(np.full((time.size, 2, 3), 0.2), time)
    region = xr.DataArray([[1, 1, 2], [2, 2, 0]], coords={"lat": full["lat"], "lon": full["lon"]},
                          dims=("lat", "lon"))  # fmt: skip
    groups = ("precipitation", "soil", "temperature", "pattern")
    reduced = {g: full - 0.01 * (i + 1) for i, g in enumerate(groups)}
    result = write_national_attribution(tmp_path, full, reduced, region=region)
    assert result["national_mean_difference_m3_m-3"]["soil"] == pytest.approx(-0.02)
    ds = xr.open_dataset(tmp_path / "attribution" / "national_differences.nc")
    assert ds["sm_difference"].sizes["group"] == 4
    ds.close()
    csv = pd.read_csv(tmp_path / "attribution" / "national_differences_summary.csv")
    assert set(csv["area"]) == {"CHN", "NE", "N"}
    assert (tmp_path / "figures" / "fig6_national_differences.png").stat().st_size > 20_000


def test_national_attribution_skips_without_products(tmp_path):
    out = national_attribution(tmp_path, ["soil"])
    assert out["national"].startswith("skipped: no national product")
