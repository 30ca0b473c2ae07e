"""Files of a training run: the networks, the grid search, Table 2, metrics and the split.

Layout under an output folder::

    models/layer{k}/weights.npz    w0, b0, w1, b1, ... (float32; np.load(allow_pickle=False))
    models/layer{k}/model.json     features, scaler, target scaling, architecture,
                                   hyperparameters, metrics, row counts, package versions
    grid_search.csv                every configuration of every layer (``layer`` column)
    table2.csv                     the paper's Table 2 with our R2 next to the paper's
    metrics.json                   {"split": ..., "layer1": {"train": M, "validation": M,
                                   "test": M}, ...}, M = cropsm.train.metrics.all_metrics
    splits.csv                     station_id, date, split
    layer_rows.csv                 observed / dropped / train / validation / test rows per layer
    models/member{m}/layer{k}/     deep-ensemble members m = 1...K-1, same files as member 0
                                   (models/layer{k}, the grid search's selected network)
    models/ensemble.json           members, calibrated residual SD and interval coverage per layer

No pickle anywhere: arrays go to ``.npz`` and everything else to JSON or CSV.
"""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd

from cropsm import paper
from cropsm.errors import InputError
from cropsm.io.atomic import atomic_output, atomic_write_text
from cropsm.provenance import read_json_object
from cropsm.train.bounds import (
    DEFAULT_BULK_DENSITY_G_CM3,
    LOWER_BOUND_M3_M3,
    anchor_inputs,
    bound_feature,
)
from cropsm.train.chain import LayerModel, TrainedChain, target_column
from cropsm.train.numpy_net import Scaler
from cropsm.train.splits import split_membership

MODEL_FORMAT = "cropsm-layer-mlp/1"

PAPER_TABLE2 = pd.DataFrame(
    [
        {
            "layer": row.layer,
            "hidden_layers": row.hidden_layers,
            "units": row.units,
            "batch_size": row.batch_size,
            "learning_rate": row.learning_rate,
            "r2_train": row.r2_train,
            "r2_test": row.r2_test,
        }
        for row in paper.TABLE2
    ]
)
"""The paper's Table 2: selected hyperparameters and R2 per soil layer."""

TABLE2_COLUMNS = (
    "layer",
    "hidden_layers",
    "units",
    "batch_size",
    "learning_rate",
    "r2_train",
    "r2_validation",
    "r2_test",
    "paper_r2_train",
    "paper_r2_test",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that determine the numbers of a trained network."""
    out = {}
    for name in ("cropsm", "jax", "jaxlib", "optax", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def json_safe(obj):
    """Replace NaN and infinities by None and NumPy scalars by Python ones (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.integer | bool | np.bool_):
        return obj.item() if isinstance(obj, np.generic) else obj
    if isinstance(obj, float | np.floating):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


def _write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


def _float_or_nan(value) -> float:
    return float("nan") if value is None else float(value)


# --------------------------------------------------------------------------------------------
# One layer model
# --------------------------------------------------------------------------------------------


def save_layer_model(model: LayerModel, directory: str | Path, training: dict | None = None):
    """Write ``weights.npz`` and ``model.json`` of one layer into ``directory``.

    Parameters
    ----------
    model
        The trained layer network.
    directory
        Created if needed.
    training
        Extra provenance for ``model.json`` (split, seed, epochs, groups switched off).

    Returns
    -------
    pathlib.Path
        ``directory``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i, (w, b) in enumerate(model.weights):
        arrays[f"w{i}"] = np.asarray(w)
        arrays[f"b{i}"] = np.asarray(b)
    with atomic_output(directory / "weights.npz") as tmp:
        np.savez(tmp, **arrays)
    description = {
        "format": MODEL_FORMAT,
        "layer": model.layer,
        "target": target_column(model.layer),
        "feature_names": list(model.feature_names),
        "scaler": {"mean": model.scaler.mean.tolist(), "std": model.scaler.std.tolist()},
        "target_scaling": {"mean": model.target_mean, "std": model.target_std},
        "architecture": {
            "n_inputs": len(model.feature_names),
            "hidden_layers": model.hidden_layers,
            "units": model.units,
            "hidden_activation": "relu",
            "output_activation": {
                "linear": "linear",
                "bounded": "bounded_sigmoid",
                "anchored": "anchored_bounded_sigmoid",
            }[model.output],
            "arrays": list(arrays),
        },
        "output": _output_description(model),
        "hyperparameters": model.hyperparameters,
        "metrics": model.metrics,
        "row_counts": model.row_counts,
        "training": training or {},
        "versions": package_versions(),
    }
    _write_json(directory / "model.json", description)
    return directory


def _output_description(model: LayerModel) -> dict:
    """How the network's last value becomes soil moisture (written into ``model.json``)."""
    if model.output == "linear":
        return {"kind": "linear", "formula": "sm = target_mean + target_std * z"}
    feature = bound_feature(model.layer, model.feature_names)
    description = {
        "kind": "bounded",
        "formula": "sm = lower + (upper - lower) * sigmoid(z)",
        "lower_m3_m3": LOWER_BOUND_M3_M3,
        "upper": (
            f"porosity 1 - {feature} / 2.65"
            if feature
            else f"porosity of bulk density {DEFAULT_BULK_DENSITY_G_CM3} g cm-3"
        ),
    }
    if model.output == "anchored":
        store, sand, clay = anchor_inputs(model.layer, model.feature_names)
        texture = f"{sand}, {clay}" if sand and clay else "a loam (no soil inputs)"
        description.update(
            kind="anchored",
            formula="sm = lower + (upper - lower) * sigmoid(z + logit(b))",
            anchor=(
                f"b = clip((theta_1500 + {store} (theta_33 - theta_1500)) / upper, 0.02, 0.98), "
                f"Saxton-Rawls retention of {texture}"
                if store
                else "none: the network lacks the bucket input (b = 0.5)"
            ),
        )
    return description


RETRAIN = "expected the files `cropsm train` writes; retrain: cropsm run CONFIG --stages train"


def _read_json_file(path: Path) -> dict:
    """A JSON object from ``path``; a missing, unreadable or non-object file is an input error
    naming it (:func:`cropsm.provenance.read_json_object`)."""
    data = read_json_object(path, RETRAIN)
    if data is None:
        raise InputError(path, None, f"missing; {RETRAIN}")
    return data


def _check_layer_model(directory: Path, model: LayerModel) -> None:
    """Shapes and values a layer network must have: one scaler entry per input, finite numbers,
    positive scales, and affine maps that chain from the inputs to one output."""
    description, weights_file = directory / "model.json", directory / "weights.npz"
    n_inputs = len(model.feature_names)
    for name, values in (("scaler.mean", model.scaler.mean), ("scaler.std", model.scaler.std)):
        if values.shape != (n_inputs,):
            raise InputError(
                description,
                f"field {name}",
                f"{values.size} values for {n_inputs} inputs (feature_names); {RETRAIN}",
            )
        if not np.isfinite(values).all() or (name == "scaler.std" and (values <= 0).any()):
            raise InputError(
                description, f"field {name}", f"expected finite values (std > 0); {RETRAIN}"
            )
    if not (np.isfinite(model.target_std) and model.target_std > 0) or not np.isfinite(
        model.target_mean
    ):
        raise InputError(
            description, "field target_scaling", f"expected a finite mean and std > 0; {RETRAIN}"
        )
    width = n_inputs
    for i, (w, b) in enumerate(model.weights):
        if w.ndim != 2 or w.shape[0] != width or b.shape != (w.shape[1],):
            raise InputError(
                weights_file,
                f"arrays w{i}, b{i}",
                f"shapes {w.shape} and {b.shape}; expected ({width}, n) and (n,) to follow the "
                f"previous map; {RETRAIN}",
            )
        if not (np.isfinite(w).all() and np.isfinite(b).all()):
            raise InputError(
                weights_file, f"arrays w{i}, b{i}", f"expected finite values; {RETRAIN}"
            )
        width = w.shape[1]
    if width != 1:
        raise InputError(
            weights_file, "last map", f"{width} outputs; expected one per row; {RETRAIN}"
        )


def load_layer_model(directory: str | Path) -> LayerModel:
    """Read a layer model written by :func:`save_layer_model` (``allow_pickle=False``).

    Raises
    ------
    cropsm.errors.InputError
        A missing, unreadable or inconsistent ``model.json`` or ``weights.npz`` (wrong shapes,
        NaN or infinite numbers, a scale of 0), naming the file and the field.
    """
    directory = Path(directory)
    path = directory / "model.json"
    description = _read_json_file(path)
    if description.get("format") != MODEL_FORMAT:
        raise InputError(path, "field format", f"not a {MODEL_FORMAT} model description")
    weights_file = directory / "weights.npz"
    try:
        n_arrays = len(description["architecture"]["arrays"]) // 2
        with np.load(weights_file, allow_pickle=False) as data:
            weights = [(data[f"w{i}"].copy(), data[f"b{i}"].copy()) for i in range(n_arrays)]
    except FileNotFoundError:
        raise InputError(weights_file, None, f"missing; {RETRAIN}") from None
    except (KeyError, TypeError) as err:
        raise InputError(weights_file, None, f"lacks {err}; {RETRAIN}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise InputError(weights_file, None, f"cannot be read ({err}); {RETRAIN}") from None
    try:
        metrics = {
            name: {k: (_float_or_nan(v) if k != "n" else int(v)) for k, v in m.items()}
            for name, m in description.get("metrics", {}).items()
        }
        hyper = dict(description.get("hyperparameters", {}))
        if "validation_mse" in hyper:
            hyper["validation_mse"] = _float_or_nan(hyper["validation_mse"])
        model = LayerModel(
            layer=int(description["layer"]),
            feature_names=tuple(description["feature_names"]),
            scaler=Scaler(
                mean=np.asarray(description["scaler"]["mean"], dtype=np.float64),
                std=np.asarray(description["scaler"]["std"], dtype=np.float64),
            ),
            target_mean=float(description["target_scaling"]["mean"]),
            target_std=float(description["target_scaling"]["std"]),
            weights=weights,
            hyperparameters=hyper,
            metrics=metrics,
            row_counts=dict(description.get("row_counts", {})),
            output=str(description.get("output", {}).get("kind", "linear")),
        )
    except KeyError as err:
        raise InputError(path, f"field {err}", f"missing; {RETRAIN}") from None
    except (TypeError, ValueError, AttributeError) as err:
        raise InputError(path, None, f"malformed ({err}); {RETRAIN}") from None
    _check_layer_model(directory, model)
    return model


def save_models(
    models: Sequence[LayerModel] | TrainedChain, out_dir: str | Path, training: dict | None = None
) -> Path:
    """Write every layer to ``out_dir/models/layer{k}/``; returns ``out_dir/models``."""
    if isinstance(models, TrainedChain):
        training = training or _training_provenance(models)
        models = models.models
    root = Path(out_dir) / "models"
    for model in models:
        save_layer_model(model, root / f"layer{model.layer}", training)
    return root


ENSEMBLE_FILE = "ensemble.json"
BOOTSTRAP_DESCRIPTIONS = {
    "stations": "stations resampled with replacement, as per-row loss weights",
    "rows": "rows resampled with replacement, as per-row loss weights",
    "none": "no resampling: members differ in initial weights and row order",
}


def save_ensemble(chain: TrainedChain, out_dir: str | Path) -> Path:
    """Write members 1...K-1 to ``out_dir/models/member{m}/layer{k}/`` (the format of
    :func:`save_layer_model`) and ``out_dir/models/ensemble.json`` (members, calibration)."""
    root = Path(out_dir) / "models"
    training = _training_provenance(chain)
    for m, models in enumerate(chain.members, start=1):
        for model in models:
            save_layer_model(model, root / f"member{m}" / f"layer{model.layer}", training)
    description = {
        "members": 1 + len(chain.members),
        "member_folders": ["."] + [f"member{m}" for m in range(1, 1 + len(chain.members))],
        "bootstrap": BOOTSTRAP_DESCRIPTIONS[chain.config.bootstrap],
        "interval": "mean +/- 1.645 sqrt(spread^2 + residual_sd^2), central 90 % of the soil "
        "moisture; of a station's reading: sqrt(spread^2 + residual_sd^2 + "
        "observation_error_sd^2)",
        "layers": {f"layer{k}": v for k, v in sorted(chain.ensemble.items())},
    }
    _write_json(root / ENSEMBLE_FILE, description)
    return root / ENSEMBLE_FILE


def load_ensemble(out_dir: str | Path) -> list[list[LayerModel]]:
    """Every member's layer models, member 0 (``models/layer{k}``) first; ``[member 0]`` for a
    run without ``ensemble.json`` (one network per layer)."""
    root = Path(out_dir)
    if (root / "models").is_dir():
        root = root / "models"
    members = [load_models(root)]
    path = root / ENSEMBLE_FILE
    if path.is_file():
        description = _read_json_file(path)
        folders = description.get("member_folders", [])
        if not isinstance(folders, list) or description.get("members") != len(folders):
            raise InputError(
                path,
                "fields members, member_folders",
                f"members {description.get('members')!r} but {len(folders)} member folder(s); "
                f"expected one folder per member; {RETRAIN}",
            )
        for folder in folders[1:]:
            members.append(load_models(root / folder))
            if len(members[-1]) != len(members[0]):
                raise InputError(
                    root / folder,
                    None,
                    f"{len(members[-1])} layer(s) where member 0 has {len(members[0])}; {RETRAIN}",
                )
        load_residual_sd(root)  # checked with the members
        load_observation_error_sd(root)
    return members


def load_residual_sd(out_dir: str | Path) -> dict[int, float]:
    """Calibrated residual SD per layer (m3 m-3) from ``ensemble.json``; empty when absent."""
    return _layer_sds(out_dir, "residual_sd_m3_m-3")


def load_observation_error_sd(out_dir: str | Path) -> dict[int, float]:
    """The readings' own error per layer (m3 m-3) from ``ensemble.json``, which the intervals
    of the soil moisture leave out (:func:`cropsm.train.ensemble.observation_error_sd`); 0 for a
    run trained before it was estimated (its residual SD was fitted to the readings); empty
    when the file is absent."""
    return _layer_sds(out_dir, "observation_error_sd_m3_m-3")


def _layer_sds(out_dir: str | Path, field: str) -> dict[int, float]:
    root = Path(out_dir)
    if (root / "models").is_dir():
        root = root / "models"
    path = root / ENSEMBLE_FILE
    if not path.is_file():
        return {}
    layers = _read_json_file(path).get("layers", {})
    out = {}
    for name, v in layers.items():
        value = v.get(field) if isinstance(v, dict) else None
        sd = 0.0 if value is None else float(value)
        if not (np.isfinite(sd) and sd >= 0):
            raise InputError(
                path,
                f"field layers.{name}.{field}",
                f"{value!r}; expected a finite standard deviation >= 0; {RETRAIN}",
            )
        out[int(name.removeprefix("layer"))] = sd
    return out


def load_models(out_dir: str | Path) -> list[LayerModel]:
    """Read ``out_dir/models/layer{k}/`` (or ``out_dir/layer{k}/``) for k = 1, 2, ... in order."""
    root = Path(out_dir)
    if (root / "models").is_dir():
        root = root / "models"
    folders = sorted(
        int(p.name.removeprefix("layer"))
        for p in root.glob("layer*")
        if p.is_dir() and p.name.removeprefix("layer").isdigit()
    )
    if not folders:
        raise FileNotFoundError(f"{root}: no layer1/model.json")
    for k in range(1, folders[-1] + 1):
        if not (root / f"layer{k}" / "model.json").is_file():
            raise InputError(
                root / f"layer{k}",
                None,
                f"missing model.json (layers 1-{folders[-1]} exist around it); {RETRAIN}",
            )
    return [load_layer_model(root / f"layer{k}") for k in range(1, folders[-1] + 1)]


# --------------------------------------------------------------------------------------------
# Tables of a run
# --------------------------------------------------------------------------------------------


def _training_provenance(chain: TrainedChain) -> dict:
    return {
        "split": chain.split_kind,
        "config": chain.config.model_dump(mode="json"),
        "groups_off": list(chain.groups_off),
        "feature_set": chain.feature_set,
        "grid_search_seconds": {f"layer{k}": v for k, v in chain.seconds.items()},
    }


def table2(chain: TrainedChain) -> pd.DataFrame:
    """Our Table 2 (selected hyperparameters and R2 per layer) with the paper's R2 beside it."""
    paper = PAPER_TABLE2.set_index("layer")
    rows = []
    for model in chain.models:
        h = model.hyperparameters
        rows.append(
            {
                "layer": model.layer,
                "hidden_layers": h["hidden_layers"],
                "units": h["units"],
                "batch_size": h["batch_size"],
                "learning_rate": h["learning_rate"],
                "r2_train": model.metrics["train"]["r2"],
                "r2_validation": model.metrics["validation"]["r2"],
                "r2_test": model.metrics["test"]["r2"],
                "paper_r2_train": paper.loc[model.layer, "r2_train"],
                "paper_r2_test": paper.loc[model.layer, "r2_test"],
            }
        )
    return pd.DataFrame(rows, columns=list(TABLE2_COLUMNS))


def write_metrics_json(chain: TrainedChain, path: str | Path) -> Path:
    """``{"split": kind, "layer1": {"train": M, "validation": M, "test": M}, ...}``."""
    path = Path(path)
    _write_json(path, chain.metrics)
    return path


def write_training_outputs(
    chain: TrainedChain, table: pd.DataFrame, out_dir: str | Path
) -> dict[str, Path]:
    """Write models, ``grid_search.csv``, ``table2.csv``, ``metrics.json``, ``splits.csv`` and
    ``layer_rows.csv`` into ``out_dir``.

    Parameters
    ----------
    chain
        Result of :func:`cropsm.train.chain.train_layers`.
    table
        The station table it was trained on (for the split membership).
    out_dir
        Output folder, created if needed.

    Returns
    -------
    dict[str, pathlib.Path]
        What was written, by name.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"models": save_models(chain, out)}
    if chain.ensemble:
        paths["ensemble"] = save_ensemble(chain, out)
    tables = {
        "grid_search": chain.grid_search,
        "table2": table2(chain),
        "splits": split_membership(table, chain.split),
        "layer_rows": chain.row_counts.reset_index(),
    }
    for name, frame in tables.items():
        paths[name] = out / f"{name}.csv"
        with atomic_output(paths[name]) as tmp:
            frame.to_csv(tmp, index=False)
    paths["metrics"] = write_metrics_json(chain, out / "metrics.json")
    return paths
