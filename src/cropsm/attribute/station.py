"""Station-level control experiments: the R2 lost by omitting each feature group (section 2c(1)).

The paper first trains the full network with every feature of Table 1, then nine reduced networks
that each omit one feature group (the seven precipitation features together, the five soil
features together, each other feature alone), and ranks the groups by

``R2 loss = R2_full - R2_reduced``                                           (section 2c(1))

"The control variables that result in the highest R2 differences mark the most important
factors affecting SM" (Fig. 5, 0-10 cm). The paper used the R2 "during NN training"; we report the
loss on the training rows and on the test rows, and rank by the training loss as the paper did.

Like with like: every experiment reuses the full run's split (``RUN_DIR/splits.csv``), seed and
early-stopping settings, and each layer's network is trained with exactly the hyperparameters the
run's grid search selected for that layer (a one-configuration grid), so the full and the reduced
models differ only in their inputs. The full model is retrained the same way (it reproduces the
run's selected network up to float32 round-off; the difference is reported). Layers are chained as
in training (section 2a): the reduced network of layer k >= 2 takes the prediction of the reduced
network of layer k - 1, so a reduced model *set* omits the group in every layer, which is what the
national experiments (section 2c(3)) need. A run trained with ``[train] chain = "none"`` trains
its full and reduced networks unchained alike (the run's ``TrainConfig`` is passed on).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cropsm import LAYER_BOTTOM_CM, LAYER_TOP_CM, paper
from cropsm.attribute.config import AttributeConfig
from cropsm.features.groups import ALL_GROUPS, feature_groups, validate_groups
from cropsm.features.station_table import read_station_table, station_table_path
from cropsm.io.atomic import atomic_output
from cropsm.maps import new_figure, save_figure
from cropsm.provenance import write_json
from cropsm.run_layout import RunLayout, load_run_config
from cropsm.train import load_models
from cropsm.train.artifacts import save_layer_model
from cropsm.train.chain import LayerModel, TrainedChain, train_layers
from cropsm.train.config import GridConfig, TrainConfig
from cropsm.train.splits import make_split

ProgressCallback = Callable[[str, int, int], None]
"""``report(step, done, total)``, as :func:`cropsm.progress.progress_callback` yields."""

GROUP_LABELS: dict[str, str] = {
    "precipitation": "P",
    "soil": "Soil",
    "elevation": "Elev",
    "temperature": "T",
    "vpd": "VPD",
    "pattern": "Crop",
    "ssr": "SSR",
    "wind": "Wind",
    "cloud": "Cloud",
}
"""Short label of every feature group, as on the paper's Fig. 5 axis."""

PAPER_FIG5_R2_LOSS_LAYER1 = paper.FIG5_R2_LOSS_LAYER1
"""The paper's training R2 loss per omitted group, 0-10 cm (Fig. 5; see :mod:`cropsm.paper`)."""

PAPER_FIG5_NOTES = paper.FIG5_NOTES
"""How the paper states each layer-1 R2 loss (section 3c), for tables beside ours."""

HYPERPARAMETER_KEYS: tuple[str, ...] = ("hidden_layers", "units", "batch_size", "learning_rate")
"""The grid dimensions fixed to the full model's selected values in every control experiment."""

R2_LOSS_COLUMNS: tuple[str, ...] = (
    "layer",
    "group",
    "label",
    "r2_full_train",
    "r2_reduced_train",
    "r2_loss_train",
    "r2_full_test",
    "r2_reduced_test",
    "r2_loss_test",
    "rank",
    "rank_test",
    "paper_r2_loss",
    "paper_note",
)
"""Columns of ``RUN_DIR/attribution/station_r2_loss.csv`` (``rank`` by the training loss)."""


# --------------------------------------------------------------------------------------------
# Training with the full model's hyperparameters and split
# --------------------------------------------------------------------------------------------


def winning_hyperparameters(models: Iterable[LayerModel]) -> dict[int, dict]:
    """The selected ``hidden_layers, units, batch_size, learning_rate`` of every layer model.

    Parameters
    ----------
    models
        The run's layer models (``cropsm.train.load_models(RUN_DIR / "models")``); their
        ``hyperparameters`` come from ``model.json``.

    Returns
    -------
    dict[int, dict]
        ``{layer: {"hidden_layers": int, "units": int, "batch_size": int,
        "learning_rate": float}}``.
    """
    out = {}
    for model in models:
        missing = [k for k in HYPERPARAMETER_KEYS if k not in model.hyperparameters]
        if missing:
            raise ValueError(
                f"layer {model.layer}: model.json hyperparameters lack {', '.join(missing)}"
            )
        h = model.hyperparameters
        out[model.layer] = {
            "hidden_layers": int(h["hidden_layers"]),
            "units": int(h["units"]),
            "batch_size": int(h["batch_size"]),
            "learning_rate": float(h["learning_rate"]),
        }
    return out


def single_configuration_grid(hyperparameters: Mapping) -> GridConfig:
    """A grid holding one configuration: the given hidden layers, units, batch size and rate."""
    return GridConfig(
        batch_sizes=[int(hyperparameters["batch_size"])],
        learning_rates=[float(hyperparameters["learning_rate"])],
        hidden_layers=[int(hyperparameters["hidden_layers"])],
        units=[int(hyperparameters["units"])],
    )


def split_from_membership(table: pd.DataFrame, membership: pd.DataFrame) -> pd.Series:
    """The split of the station-table rows from a ``splits.csv`` table.

    Parameters
    ----------
    table
        Station table with ``station_id`` and ``date``.
    membership
        ``station_id, date, split`` as written by :func:`cropsm.train.split_membership`.

    Returns
    -------
    pandas.Series
        ``train`` / ``validation`` / ``test`` per row, indexed like ``table``, named ``split``.

    Raises
    ------
    ValueError
        When a row of the table has no membership (the table changed since training).
    """
    key = (
        membership["station_id"].astype(str)
        + "|"
        + pd.to_datetime(membership["date"]).dt.strftime("%Y-%m-%d")
    )
    lookup = pd.Series(membership["split"].to_numpy(), index=key.to_numpy())
    if lookup.index.has_duplicates:
        raise ValueError("splits.csv has repeated (station_id, date) rows")
    table_key = (
        table["station_id"].astype(str)
        + "|"
        + pd.to_datetime(table["date"]).dt.strftime("%Y-%m-%d")
    )
    split = lookup.reindex(table_key.to_numpy())
    n_missing = int(split.isna().sum())
    if n_missing:
        raise ValueError(
            f"splits.csv lacks {n_missing} of the {len(table)} station-table rows; the station "
            "table changed since training, re-run the train stage"
        )
    return pd.Series(split.to_numpy(dtype=object), index=table.index, name="split")


def train_chain_fixed(
    table: pd.DataFrame,
    config: TrainConfig,
    hyperparameters: Mapping[int, Mapping],
    split: pd.Series,
    *,
    groups_off: Iterable[str] = (),
    progress: Callable[[], None] | None = None,
    feature_set: str = "paper",
) -> TrainedChain:
    """Train the chained layer networks with fixed per-layer hyperparameters and a given split.

    The same procedure as :func:`cropsm.train.train_layers` (inputs and target standardised with
    training-row statistics, early stopping on validation MSE, chained top-down, section 2a),
    except that layer k trains the single configuration ``hyperparameters[k]`` instead of
    searching a grid, and the train / validation / test membership is ``split``.

    Parameters
    ----------
    table
        Station table.
    config
        The run's training settings (seed, ``max_epochs``, ``patience``, ensemble grouping);
        its grid is not used.
    hyperparameters
        ``{layer: {hidden_layers, units, batch_size, learning_rate}}`` for layers 1...n.
    split
        Membership of every table row (same for every layer).
    groups_off
        Feature groups omitted from every layer's inputs.
    progress
        Called once after each trained layer.

    Returns
    -------
    TrainedChain
    """
    groups_off = tuple(groups_off)
    layers = sorted(int(k) for k in hyperparameters)
    if layers != list(range(1, len(layers) + 1)):
        raise ValueError(f"hyperparameters must cover layers 1...n without gaps, got {layers}")

    def layer_trained(_step: str, _done: int, _total: int) -> None:
        if progress is not None:
            progress()

    # Control experiments compare single networks (member 0's procedure, K = 1): the R2 losses
    # need no ensemble, and K members would multiply the cost of every experiment by K.
    return train_layers(
        table,
        config.model_copy(update={"members": 1}),
        progress=layer_trained,
        groups_off=groups_off,
        n_layers=len(layers),
        split=split,
        grid_for_layer=lambda layer: single_configuration_grid(hyperparameters[layer]),
        feature_set=feature_set,
    )


@dataclass
class ControlExperiments:
    """The full model set and the reduced sets of the station-level control experiments.

    Attributes
    ----------
    full
        Retrained full chain (all groups of the run).
    reduced
        ``{group: chain without that group}``, in the feature set's order.
    hyperparameters
        The fixed per-layer hyperparameters every chain was trained with.
    skipped
        ``{group: reason}`` for groups not run (e.g. already switched off in the run).
    seconds
        Wall time per experiment (``"full"`` and each group).
    """

    full: TrainedChain
    reduced: dict[str, TrainedChain]
    hyperparameters: dict[int, dict]
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def run_control_experiments(
    table: pd.DataFrame,
    config: TrainConfig,
    hyperparameters: Mapping[int, Mapping],
    split: pd.Series,
    *,
    groups: Iterable[str] = ALL_GROUPS,
    groups_off: Iterable[str] = (),
    progress: ProgressCallback | None = None,
    log: Callable[[str], None] | None = None,
    feature_set: str = "paper",
) -> ControlExperiments:
    """Train the full chain and one reduced chain per feature group (section 2c(1)).

    Parameters
    ----------
    table
        Station table.
    config
        The run's training settings.
    hyperparameters
        Fixed per-layer hyperparameters (:func:`winning_hyperparameters` of the run's models).
    split
        The run's membership of every row (:func:`split_from_membership`).
    groups
        Groups to omit one at a time; groups in ``groups_off`` are skipped.
    groups_off
        Groups switched off in the run (off in the full model and in every reduced one).
    progress
        ``report("control experiments", done, total)`` after each trained layer.
    log
        Receives one line per finished experiment.

    Returns
    -------
    ControlExperiments
    """
    groups = validate_groups(list(groups))
    groups_off = validate_groups(list(groups_off))
    skipped = {
        g: "switched off in the run ([features] groups_off)" for g in groups if g in groups_off
    }
    in_set = feature_groups(feature_set)
    to_run = [g for g in in_set if g in groups and g not in groups_off]
    n_layers = len(hyperparameters)
    total = (1 + len(to_run)) * n_layers
    counter = {"done": 0}

    def layer_done() -> None:
        counter["done"] += 1
        if progress is not None:
            progress("control experiments", counter["done"], total)

    seconds: dict[str, float] = {}
    start = time.perf_counter()
    full = train_chain_fixed(
        table, config, hyperparameters, split, groups_off=groups_off, progress=layer_done,
        feature_set=feature_set,
    )  # fmt: skip
    seconds["full"] = time.perf_counter() - start
    if log is not None:
        log(f"full model: R2 train layer 1 {full.models[0].metrics['train']['r2']:.3f}")
    reduced: dict[str, TrainedChain] = {}
    for group in to_run:
        start = time.perf_counter()
        reduced[group] = train_chain_fixed(
            table, config, hyperparameters, split,
            groups_off=(*groups_off, group), progress=layer_done, feature_set=feature_set,
        )  # fmt: skip
        seconds[group] = time.perf_counter() - start
        if log is not None:
            r2_reduced = reduced[group].models[0].metrics["train"]["r2"]
            log(f"without {group}: R2 train layer 1 {r2_reduced:.3f}")
    return ControlExperiments(
        full=full,
        reduced=reduced,
        hyperparameters={int(k): dict(v) for k, v in hyperparameters.items()},
        skipped=skipped,
        seconds=seconds,
    )


# --------------------------------------------------------------------------------------------
# The R2 loss table (pure)
# --------------------------------------------------------------------------------------------


def chain_r2(chain: TrainedChain) -> dict[int, dict[str, float]]:
    """``{layer: {"train": R2, "test": R2}}`` of a trained chain."""
    return {
        m.layer: {name: float(m.metrics[name]["r2"]) for name in ("train", "test")}
        for m in chain.models
    }


def r2_loss_table(
    full_r2: Mapping[int, Mapping[str, float]],
    reduced_r2: Mapping[str, Mapping[int, Mapping[str, float]]],
    paper_layer1: Mapping[str, float | None] = PAPER_FIG5_R2_LOSS_LAYER1,
) -> pd.DataFrame:
    """R2 loss of every reduced model against the full one, ranked per layer (section 2c(1)).

    ``r2_loss_<set> = R2_full,<set> - R2_reduced,<set>`` for ``set`` = train and test rows.
    ``rank`` orders the groups of a layer by the training loss (1 = largest loss = most
    important group, as in the paper, which used the training R2); ``rank_test`` by the test
    loss. Ties share the lowest rank.

    Parameters
    ----------
    full_r2
        ``{layer: {"train": R2, "test": R2}}`` of the full model.
    reduced_r2
        ``{group: {layer: {"train": R2, "test": R2}}}`` of each reduced model.
    paper_layer1
        The paper's layer-1 losses (Fig. 5) put beside ours in ``paper_r2_loss`` (NaN
        elsewhere); the wording of each in ``paper_note``.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`R2_LOSS_COLUMNS`, sorted by layer and rank.
    """
    rows = []
    for group, per_layer in reduced_r2.items():
        for layer, reduced in per_layer.items():
            full = full_r2[layer]
            paper = paper_layer1.get(group) if layer == 1 else None
            rows.append(
                {
                    "layer": int(layer),
                    "group": group,
                    "label": GROUP_LABELS.get(group, group),
                    "r2_full_train": full["train"],
                    "r2_reduced_train": reduced["train"],
                    "r2_loss_train": full["train"] - reduced["train"],
                    "r2_full_test": full["test"],
                    "r2_reduced_test": reduced["test"],
                    "r2_loss_test": full["test"] - reduced["test"],
                    "paper_r2_loss": np.nan if paper is None else float(paper),
                    "paper_note": PAPER_FIG5_NOTES.get(group, "") if layer == 1 else "",
                }
            )
    out = pd.DataFrame(rows, columns=[c for c in R2_LOSS_COLUMNS if c not in ("rank", "rank_test")])
    if out.empty:
        return pd.DataFrame(columns=list(R2_LOSS_COLUMNS))
    by_layer = out.groupby("layer")
    out["rank"] = by_layer["r2_loss_train"].rank(ascending=False, method="min").astype(int)
    out["rank_test"] = by_layer["r2_loss_test"].rank(ascending=False, method="min").astype(int)
    out = out.sort_values(["layer", "rank", "group"], kind="stable").reset_index(drop=True)
    return out.loc[:, list(R2_LOSS_COLUMNS)]


# --------------------------------------------------------------------------------------------
# Figure 5
# --------------------------------------------------------------------------------------------


def r2_loss_layers_figure(losses: pd.DataFrame) -> Figure:
    """Fig. 5 for every layer in one chart: R2 loss per omitted group, one panel per layer.

    Groups stand in one fixed order (:data:`cropsm.features.groups.ALL_GROUPS`) in every panel and
    the panels share the y axis, so a group's bar compares across layers at a glance. Bars: our
    training-row loss (the paper's measure) and test-row loss; black diamonds (layer 1): the
    paper's values where its text gives a number.
    """

    layers = sorted(int(k) for k in losses["layer"].unique())
    order = [g for g in ALL_GROUPS if g in set(losses["group"])]
    fig = new_figure((3.0 * max(1, len(layers)) + 1.0, 4.6))
    axes = np.atleast_1d(fig.subplots(1, max(1, len(layers)), sharex=True, sharey=True))
    width = 0.38
    y = np.arange(len(order))
    for ax, layer in zip(axes, layers, strict=False):
        rows = losses[losses["layer"] == layer].set_index("group").reindex(order)
        ax.barh(y - width / 2, rows["r2_loss_train"], width, color="tab:blue",
                label="ours, training rows")  # fmt: skip
        ax.barh(y + width / 2, rows["r2_loss_test"], width, color="tab:orange",
                label="ours, test rows")  # fmt: skip
        paper = rows["paper_r2_loss"].to_numpy(dtype=np.float64) if layer == 1 else None
        if paper is not None and np.isfinite(paper).any():
            ok = np.isfinite(paper)
            ax.scatter(paper[ok], y[ok] - width / 2, marker="D", color="black", zorder=3,
                       label="paper (Fig. 5, training)")  # fmt: skip
        ax.axvline(0.0, color="black", lw=0.8)
        top, bottom = LAYER_TOP_CM[layer - 1], LAYER_BOTTOM_CM[layer - 1]
        full = rows.dropna(subset=["r2_full_train"])
        subtitle = (
            f"full model R$^2$ train {full['r2_full_train'].iloc[0]:.2f}, "
            f"test {full['r2_full_test'].iloc[0]:.2f}"
            if len(full)
            else ""
        )
        ax.set_title(f"layer {layer} ({top}-{bottom} cm)\n{subtitle}", fontsize=10)
        ax.set_xlabel("R$^2$ loss")
    axes[0].set_yticks(y, [GROUP_LABELS.get(g, g) for g in order])
    axes[0].invert_yaxis()
    axes[0].legend(frameon=False, fontsize="x-small", loc="lower right")
    fig.suptitle("R$^2$ loss when one feature group is left out (full minus reduced model)")
    return fig


# --------------------------------------------------------------------------------------------
# A run directory (I/O)
# --------------------------------------------------------------------------------------------


def attribution_dir(run_dir: str | Path) -> Path:
    """``RUN_DIR/attribution``."""
    return Path(run_dir) / "attribution"


def reduced_models_dir(run_dir: str | Path, group: str) -> Path:
    """Where the reduced model set without ``group`` is saved: ``attribution/models_no_<group>``."""
    (group,) = validate_groups([group])
    return attribution_dir(run_dir) / f"models_no_{group}"


def run_split(run_dir: str | Path, table: pd.DataFrame, config: TrainConfig) -> pd.Series:
    """The run's split: from ``RUN_DIR/splits.csv`` when present, else recomputed with its seed."""
    path = Path(run_dir) / "splits.csv"
    if path.is_file():
        return split_from_membership(table, pd.read_csv(path, dtype={"station_id": str}))
    return make_split(
        table, config.split, config.seed, config.test_fraction, config.validation_fraction
    )


def save_reduced_models(
    chain: TrainedChain, directory: str | Path, group: str, hyperparameters_from: str
) -> Path:
    """Write a reduced model set as ``directory/layer{k}/`` (the layout of ``RUN_DIR/models``)."""

    directory = Path(directory)
    training = {
        "experiment": f"control without feature group {group!r} (paper section 2c)",
        "groups_off": list(chain.groups_off),
        "split": chain.split_kind,
        "config": chain.config.model_dump(mode="json"),
        "hyperparameters_from": hyperparameters_from,
    }
    for model in chain.models:
        save_layer_model(model, directory / f"layer{model.layer}", training)
    return directory


def station_attribution(
    run_dir: str | Path,
    config=None,
    *,
    settings=None,
    progress: ProgressCallback | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Run the station-level control experiments of a trained run and write their outputs.

    Reads ``RUN_DIR/features/station_table.parquet``, ``RUN_DIR/models/layer{k}/model.json``
    (hyperparameters) and ``RUN_DIR/splits.csv``; writes

    * ``RUN_DIR/attribution/station_r2_loss.csv`` (:data:`R2_LOSS_COLUMNS`),
    * ``RUN_DIR/attribution/station_attribution.json`` (hyperparameters, skipped groups, the
      retrained full model's R2 against the run's, timings),
    * ``RUN_DIR/attribution/models_no_<group>/layer{k}/`` for the national groups,
    * ``RUN_DIR/figures/fig5_r2_loss_all_layers.png`` (every layer, one chart).

    Parameters
    ----------
    run_dir
        A run directory after the ``train`` stage.
    config
        The run's :class:`cropsm.config.RunConfig` (default: read from the run directory).
    settings
        :class:`cropsm.attribute.config.AttributeConfig`; default the config's ``attribute``
        section, or the defaults when it has none.
    progress, log
        See :func:`run_control_experiments`.

    Returns
    -------
    dict
        Summary: groups run, top group and loss per layer, paths.
    """

    run_dir = Path(run_dir)
    if config is None:
        config = load_run_config(run_dir)
    if settings is None:
        settings = getattr(config, "attribute", None) or AttributeConfig()
    groups_off = tuple(config.features.groups_off)
    models_dir = RunLayout(run_dir).models_dir
    if not (models_dir / "layer1" / "model.json").is_file():
        raise FileNotFoundError(
            f"{models_dir}: no trained networks; run the train stage first (`cropsm train`)"
        )
    run_models = load_models(models_dir)
    hyperparameters = winning_hyperparameters(run_models)
    table = read_station_table(station_table_path(run_dir))
    split = run_split(run_dir, table, config.train)

    experiments = run_control_experiments(
        table, config.train, hyperparameters, split,
        groups=settings.groups, groups_off=groups_off, progress=progress, log=log,
        feature_set=config.features.set,
    )  # fmt: skip
    losses = r2_loss_table(
        chain_r2(experiments.full),
        {g: chain_r2(chain) for g, chain in experiments.reduced.items()},
    )
    out_dir = attribution_dir(run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(out_dir / "station_r2_loss.csv") as tmp:
        losses.to_csv(tmp, index=False)

    saved_models = {}
    if settings.national:
        for group in settings.national_groups:
            if group in experiments.reduced:
                saved_models[group] = str(
                    save_reduced_models(
                        experiments.reduced[group],
                        reduced_models_dir(run_dir, group),
                        group,
                        hyperparameters_from=str(models_dir),
                    )
                )

    figures = []
    figure_dir = RunLayout(run_dir).figures_dir
    for stale in figure_dir.glob("fig5_r2_loss_layer*.png"):  # one per layer before
        stale.unlink()
    if not losses.empty:  # one chart, every layer, groups in one order
        figures.append(
            save_figure(r2_loss_layers_figure(losses), figure_dir / "fig5_r2_loss_all_layers.png")
        )

    run_r2 = {
        m.layer: {s: float(m.metrics[s]["r2"]) for s in ("train", "test")} for m in run_models
    }
    full_r2 = chain_r2(experiments.full)
    reproduction = {
        f"layer{k}": {
            "r2_train_run": run_r2[k]["train"],
            "r2_train_retrained": full_r2[k]["train"],
            "r2_test_run": run_r2[k]["test"],
            "r2_test_retrained": full_r2[k]["test"],
        }
        for k in full_r2
        if k in run_r2
    }
    summary = {
        "groups": list(experiments.reduced),
        "skipped_groups": experiments.skipped,
        "groups_off_in_run": list(groups_off),
        "hyperparameters": {f"layer{k}": v for k, v in experiments.hyperparameters.items()},
        "split": config.train.split,
        "split_source": "splits.csv" if RunLayout(run_dir).splits.is_file() else "recomputed",
        "full_model_reproduction": reproduction,
        "reduced_model_sets": saved_models,
        "seconds": {k: round(v, 2) for k, v in experiments.seconds.items()},
        "ranking_by": "r2_loss_train (the paper used the training R2)",
        "paper_fig5_layer1": PAPER_FIG5_NOTES,
    }
    write_json(out_dir / "station_attribution.json", summary)
    result: dict = {"groups": len(experiments.reduced)}
    for layer, rows in losses.groupby("layer"):
        top = rows.sort_values("rank", kind="stable").iloc[0]
        result[f"layer{layer}_top_group"] = str(top["group"])
        result[f"layer{layer}_top_r2_loss_train"] = round(float(top["r2_loss_train"]), 3)
    result["figures"] = len(figures)
    return result
