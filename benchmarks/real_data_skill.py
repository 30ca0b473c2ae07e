"""Do the networks earn their place on real stations? Networks vs baselines on USCRN (issue 12).

For each feature set and each split (``year``: whole years held out, "new years at known
sites"; ``station``: whole stations held out, "new sites"), a run config is written for every
station of a USCRN daily01 tree (``ROOT/YYYY/CRND0103-*.txt``), the run goes through the main
command's stages ``inputs,features,train`` (:func:`cropsm.pipeline.run_pipeline`), and the test
R2 per layer of the networks is printed beside the baselines the train stage fits on the same
rows and split (``RUN/baselines/comparison.csv``: per-station day-of-year climatology, linear,
gradient boosting). USCRN has no soil texture, cropping pattern, wind or cloud, so those groups
are off. The grid is small so that a run takes minutes on 2 cores.

Usage::

    python benchmarks/real_data_skill.py ../shared/data/uscrn --out /tmp/real_skill \\
        [--sets crop paper] [--splits year station] [--first-year 2000 --last-year 2019] \\
        [--also-off climate_normals] [--elevation-grid ../shared/data/etopo20] \\
        [--chain none] [--bootstrap none] [--input-noise 0.1] [--weight-decay 0.01] \\
        [--members 5] [--units 32 64] [--lr 1e-3 5e-3] [--batch 128] \\
        [--max-epochs 400 --patience 40]
    python benchmarks/real_data_skill.py --table-only /tmp/real_skill   # print saved runs again

Each run lands in ``OUT/<set>_<split>/`` (a normal run directory: ``cropsm evaluate`` works on
it); the table is also written to ``OUT/real_data_skill.csv``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from cropsm.config import load_config
from cropsm.pipeline import run_pipeline

MODELS = ("network", "ensemble", "climatology", "linear", "gradient_boosting")
SHORT = {
    "network": "net",
    "ensemble": "ens",
    "climatology": "clim",
    "linear": "lin",
    "gradient_boosting": "gb",
}

CONFIG_TEMPLATE = """\
[run]
name = "USCRN {set} {split} {first_year}-{last_year} (benchmarks/real_data_skill.py)"
seed = {seed}

[inputs.uscrn]
root = "{root}"
stations = []                 # every station of the tree
first_year = {first_year}
last_year = {last_year}
days_of_month = [8, 18, 28]
frozen = "soil_temperature"
net_solar_fraction = 0.77
min_precip_valid_fraction = 0.9
{elevation}
[features]
set = "{set}"
groups_off = {groups_off}

[train]
split = "{split}"
seed = {seed}
max_epochs = {max_epochs}
patience = {patience}
members = {members}
chain = "{chain}"
bootstrap = "{bootstrap}"
input_noise = {input_noise}
weight_decay = {weight_decay}

[train.grid]
batch_sizes = {batch}
learning_rates = {lr}
hidden_layers = {hidden_layers}
units = {units}
"""


def write_config(path: Path, **values) -> Path:
    """Write one run config (``CONFIG_TEMPLATE`` filled with ``values``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CONFIG_TEMPLATE.format(**values), encoding="utf-8")
    return path


def skill_rows(run_dir: Path, feature_set: str, split: str) -> pd.DataFrame:
    """Test R2 and RMSE per model and layer of one run (from ``baselines/comparison.csv``)."""
    comparison = pd.read_csv(run_dir / "baselines" / "comparison.csv")
    test = comparison[comparison["split"] == "test"]
    return test.assign(set=feature_set, holdout=split)[
        ["set", "holdout", "model", "layer", "r2", "rmse", "n"]
    ]


def seed_ensemble_rows(run_dir: Path, n_members: int, feature_set: str, split: str) -> pd.DataFrame:
    """Test R2 of the mean of ``n_members`` chains trained with weight seeds 0...n-1 on the run's
    own rows, split and config (the run's networks are member 0).

    A stand-in for deep ensembles: on the ``station`` split single networks swing by up to 0.5
    in R2 from one weight seed to the next; the mean of a few is stable.
    """
    import numpy as np

    from cropsm.run_layout import load_run_config
    from cropsm.train.chain import predict_chain, train_layers
    from cropsm.train.metrics import all_metrics

    config = load_run_config(run_dir)
    table = pd.read_parquet(run_dir / "features" / "station_table.parquet")
    membership = pd.read_csv(run_dir / "splits.csv", parse_dates=["date"])
    table = table.merge(membership, on=["station_id", "date"], how="left")
    split_of_row = table.pop("split")
    predictions = []
    for seed in range(n_members):
        chain = train_layers(
            table,
            config.train.model_copy(update={"seed": seed}),
            groups_off=config.features.groups_off,
            split=split_of_row,
            feature_set=config.features.set,
        )
        predictions.append(predict_chain(chain, table))
    mean = sum(predictions) / n_members
    test = (split_of_row == "test").to_numpy()
    rows = []
    for layer in range(1, 6):
        observed = table[f"sm_l{layer}"].to_numpy()
        predicted = mean[f"sm_pred_l{layer}"].to_numpy()
        keep = test & np.isfinite(observed) & np.isfinite(predicted)
        scores = all_metrics(observed[keep], predicted[keep])
        rows.append(
            {
                "set": feature_set,
                "holdout": split,
                "model": f"network_x{n_members}",
                "layer": layer,
                "r2": scores["r2"],
                "rmse": scores["rmse"],
                "n": scores["n"],
            }
        )
    return pd.DataFrame(rows)


def skill_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Wide table: one row per (set, split, layer), test R2 of every model, and the margin of
    the networks over the best baseline."""
    wide = rows.pivot_table(index=["set", "holdout", "layer"], columns="model", values="r2")
    ensembles = sorted(c for c in wide.columns if c.startswith("network_x"))
    wide = wide[[m for m in MODELS if m in wide.columns] + ensembles].rename(columns=SHORT)
    wide = wide.rename(columns={c: c.replace("network_", "net_") for c in ensembles})
    baselines = [c for c in ("clim", "lin", "gb") if c in wide.columns]
    wide["net-best"] = wide["net"] - wide[baselines].max(axis=1)
    for c in ensembles:
        name = c.replace("network_", "net_")
        wide[f"{name}-best"] = wide[name] - wide[baselines].max(axis=1)
    return wide.round(3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, help="USCRN daily01 tree (ROOT/YYYY/...)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/real_data_skill"))
    parser.add_argument("--sets", nargs="+", default=["crop"], choices=["crop", "paper"])
    parser.add_argument("--splits", nargs="+", default=["year", "station"])
    parser.add_argument("--first-year", type=int, default=2000)
    parser.add_argument("--last-year", type=int, default=2019)
    parser.add_argument("--elevation-grid", type=Path, help="ETOPO20 folder (optional)")
    parser.add_argument("--max-epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--batch", type=int, nargs="+", default=[256], help="grid batch sizes")
    parser.add_argument("--lr", type=float, nargs="+", default=[5e-3], help="grid learning rates")
    parser.add_argument("--hidden-layers", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--units", type=int, nargs="+", default=[32], help="grid units per layer")
    parser.add_argument(
        "--members", type=int, default=5, help="[train] members: deep-ensemble size K"
    )
    parser.add_argument(
        "--bootstrap",
        default="stations",
        choices=["stations", "rows", "none"],
        help="[train] bootstrap: what ensemble members 1...K-1 resample",
    )
    parser.add_argument(
        "--input-noise",
        type=float,
        default=0.0,
        help="[train] input_noise: SD of the noise on the standardised training inputs",
    )
    parser.add_argument(
        "--weight-decay", type=float, default=0.0, help="[train] weight_decay (AdamW lambda)"
    )
    parser.add_argument(
        "--chain",
        default="upper",
        choices=["upper", "none"],
        help="[train] chain: layer k >= 2 takes layer k-1's prediction (upper) or not (none)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="[run] and [train] seed: the split, the initial weights and the members' resamples",
    )
    parser.add_argument(
        "--also-off",
        nargs="*",
        default=[],
        help="groups to switch off besides soil/pattern/wind/cloud (e.g. climate_normals)",
    )
    parser.add_argument(
        "--ensemble", type=int, default=1, help="also score the mean of N weight seeds (N > 1)"
    )
    parser.add_argument("--table-only", type=Path, help="print the table of runs under this OUT")
    args = parser.parse_args(argv)

    out = args.table_only or args.out
    rows = []
    for feature_set in args.sets:
        for split in args.splits:
            run_dir = out / f"{feature_set}_{split}"
            if args.table_only is None:
                if args.root is None:
                    parser.error("give the USCRN root (or --table-only OUT)")
                elevation = (
                    f'elevation_grid = "{args.elevation_grid.resolve()}"\n'
                    if args.elevation_grid
                    else ""
                )
                config_path = write_config(
                    out / "configs" / f"{feature_set}_{split}.toml",
                    set=feature_set,
                    split=split,
                    root=args.root.resolve(),
                    first_year=args.first_year,
                    last_year=args.last_year,
                    elevation=elevation,
                    max_epochs=args.max_epochs,
                    patience=args.patience,
                    batch=json.dumps(args.batch),
                    lr=json.dumps(args.lr),
                    hidden_layers=json.dumps(args.hidden_layers),
                    units=json.dumps(args.units),
                    members=args.members,
                    chain=args.chain,
                    bootstrap=args.bootstrap,
                    input_noise=args.input_noise,
                    weight_decay=args.weight_decay,
                    seed=args.seed,
                    groups_off=json.dumps(["soil", "pattern", "wind", "cloud", *args.also_off]),
                )
                t0 = time.perf_counter()
                summary = run_pipeline(
                    load_config(config_path), run_dir, stages=["inputs", "features", "train"]
                )
                seconds = time.perf_counter() - t0
                train_s = summary.get("train", {}).get("seconds")
                print(f"{feature_set}/{split}: {seconds:.0f} s in all, train stage {train_s} s")
            rows.append(skill_rows(run_dir, feature_set, split))
            if args.ensemble > 1:
                t0 = time.perf_counter()
                rows.append(seed_ensemble_rows(run_dir, args.ensemble, feature_set, split))
                print(
                    f"{feature_set}/{split}: ensemble of {args.ensemble} "
                    f"in {time.perf_counter() - t0:.0f} s"
                )
    table = skill_table(pd.concat(rows, ignore_index=True))
    table.to_csv(out / "real_data_skill.csv")
    print(
        "test R2 per layer (net: networks; clim: per-station day-of-year climatology; "
        "lin: linear; gb: gradient boosting; net_xN: mean of N weight seeds; "
        "*-best: minus the best baseline)"
    )
    print(table.to_string())


if __name__ == "__main__":
    main()
