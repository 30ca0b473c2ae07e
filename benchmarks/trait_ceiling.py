"""What the per-cell crop traits cost: the scenario-effect check scored on truths without them.

The virtual China's truth grows every crop with per-cell traits (Kc_mid x 1 +- 8 %, maximum
rooting depth x 1 +- 20 %, thermal-time requirement x 1 +- 8 %; smooth random fields,
:func:`cropsm.twin.calendars.cell_traits`) that no model is told. This script regenerates the
run's virtual China (same preset and seed, so the same weather, soils and stations) with other
traits, computes its pattern-minus-reference median-annual effect maps over the product's years
exactly as the analysis does for the truth
(:func:`cropsm.analyze.scenarios.differences_from_annual`) and scores them against the run's
true maps with the run's own check (:func:`cropsm.analyze.scenarios.agreement_with_truth`, on
the product's pattern-flag cells):

* ``nominal``: every trait at its nominal value (factor 1). This is a model that knows all of
  the truth's physics, soils, weather and calendar rules, and nothing of the traits: the best
  any model not told the traits can score.
* ``stations``: the true trait fields at the stations (only for the seasons of each station's
  pattern, the ones its observations could reveal), interpolated to every cell by a
  Gaussian process (RBF + white noise, length scale fitted; prior mean 1 away from stations).
  This is a model that learnt the traits perfectly at the stations: the ceiling of any route
  that calibrates traits on station observations and interpolates them.

* ``estimated`` (with ``--estimates``): the same kriging of the traits that the stations'
  readings gave (``benchmarks/trait_identifiability.py --out``): the ceiling of that
  calibration route with those estimates.

The product's own scores (``analysis/truth_scenario_agreement.csv``) are printed beside them.
Each regenerated twin takes about 4 min and 8 GB on the paper preset; it is deleted after
scoring unless ``--keep``.

Usage::

    python benchmarks/trait_ceiling.py RUN --work DIR [--variants nominal stations] [--keep]
        [--estimates TABLE.csv]
"""

from __future__ import annotations

import argparse
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

from cropsm import catalog
from cropsm.analyze import scenarios as scen
from cropsm.twin import calendars
from cropsm.twin.generate import generate_twin
from cropsm.twin.truth_store import open_truth

KM_PER_DEG = (111.0 * np.cos(np.radians(35.0)), 111.0)
TRAITS = ("kc_mid_factor", "root_factor", "thermal_factor")
SEASONS = tuple(calendars.SEASON_RULES)
PATTERNS = {p.id: p for p in catalog.patterns()}
ESTIMATE_COLUMN = {"kc_mid_factor": "kc_mid", "root_factor": "root", "thermal_factor": "thermal"}


def _km(lat, lon) -> np.ndarray:
    return np.column_stack([np.asarray(lon) * KM_PER_DEG[0], np.asarray(lat) * KM_PER_DEG[1]])


def station_kriged_traits(stations: pd.DataFrame, estimates: pd.DataFrame | None = None):
    """Traits kriged from the stations' ones, a function like ``cell_traits``.

    ``estimates``: a table of ``benchmarks/trait_identifiability.py --out`` (``station_id``,
    ``season``, ``kc_mid_weighted``, ``root_weighted``, ``thermal_weighted``), the traits the
    stations' readings gave; None: the true trait fields at the stations.
    """

    def station_values(name: str, trait: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Mask of the stations whose pattern grows season ``name``, and their trait values."""
        if estimates is not None:
            rows = estimates[estimates["season"] == name].set_index("station_id")
            grows = stations["station_id"].isin(rows.index).to_numpy()
            column = f"{ESTIMATE_COLUMN[trait]}_weighted"
            return grows, rows.loc[stations["station_id"][grows], column].to_numpy(float)
        grows = (
            stations["pattern"]
            .map(lambda p: any(s.name == name for s in PATTERNS[p].seasons))
            .to_numpy(bool)
        )
        true = calendars.cell_traits(stations["lat"].values, stations["lon"].values, seed)
        return grows, getattr(true[name], trait)[grows]

    def traits(lat_deg, lon_deg, seed: int) -> dict:
        out = {}
        for name in SEASONS:
            fields = []
            for trait in TRAITS:
                grows, values = station_values(name, trait, seed)
                if grows.sum() < 3:
                    fields.append(np.ones(np.asarray(lat_deg).size))
                    continue
                departure = values - 1.0
                kernel = ConstantKernel(departure.var() + 1e-9, "fixed") * RBF(
                    500.0, (50.0, 3000.0)
                ) + WhiteKernel(1e-6, (1e-10, 1.0))
                gp = GaussianProcessRegressor(kernel).fit(
                    _km(stations["lat"].values[grows], stations["lon"].values[grows]), departure
                )
                fields.append(1.0 + gp.predict(_km(lat_deg, lon_deg)))
            out[name] = calendars.SeasonTraits(*fields)
        return out

    return traits


def effect_maps(truth_path: Path, start, end, region_cells: xr.DataArray) -> xr.DataArray:
    """``(pattern, layer, cell)`` median-annual effects of a truth over ``start``-``end``."""
    sm = scen.truth_scenarios(open_truth(truth_path)).sel(time=slice(start, end))
    annual = sm.groupby("time.year").mean("time").compute()
    return scen.differences_from_annual(annual, region_cells)


def summary_line(table: pd.DataFrame, flag: str) -> str:
    """One group's medians and maps meeting the target (:func:`scen.agreement_summary`)."""
    group = scen.agreement_summary(table, digits=3)[f"flag{flag}"]
    median = group["median"]
    return (
        f"flag {flag}: median sign {median['sign_agreement']:.3f} / r "
        f"{median['pearson_r']:.3f} / slope {median['slope']:.3f}; "
        f"{group['maps_meeting_target']} maps meet sign >= 0.9, r >= 0.7, slope 0.7-1.3"
    )


def print_maps(table: pd.DataFrame, flag: str) -> None:
    for pattern, rows in table[table["pattern_flag"] == flag].groupby("pattern", sort=False):
        cells = [
            f"{r.sign_agreement:.2f}/{r.pearson_r:.2f}/{r.slope:.2f}"
            for r in rows.sort_values("layer").itertuples()
        ]
        print(f"  {pattern}: " + " | ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a run on the virtual China with product.zarr")
    parser.add_argument("--work", type=Path, required=True, help="folder for regenerated twins")
    parser.add_argument("--variants", nargs="+", default=["nominal", "stations"])
    parser.add_argument("--keep", action="store_true", help="keep the regenerated twins")
    parser.add_argument(
        "--estimates",
        type=Path,
        help="trait_identifiability.py --out table: adds the variant 'estimated' (kriged from it)",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    twins = sorted(p.parent for p in (args.run / "inputs").glob("*/twin.json"))
    if not twins or not (args.run / "product.zarr").exists():
        parser.error(f"{args.run}: expected inputs/<twin>/twin.json and product.zarr (a run)")
    twin = twins[0]
    spec = json.loads((twin / "twin.json").read_text())
    product = xr.open_zarr(args.run / "product.zarr")
    times = pd.DatetimeIndex(product["time"].values)
    start, end = times[0], times[-1]
    truth = open_truth(twin / "truth.zarr")
    lat, lon = truth["cell_lat"].values, truth["cell_lon"].values
    region = scen.grid_to_cells(product["region"].load(), lat, lon)
    true_effects = effect_maps(twin / "truth.zarr", start, end, region)
    patterns = [str(p) for p in true_effects["pattern"].values]
    flag = product["pattern_flag"].load().rename(scenario="pattern").sel(pattern=patterns)
    flag = scen.grid_to_cells(flag, lat, lon)
    stations = pd.read_csv(twin / "stations" / "stations.csv", dtype={"station_id": str})
    makers = {"nominal": calendars.nominal_traits, "stations": station_kriged_traits(stations)}
    if args.estimates is not None:
        estimates = pd.read_csv(args.estimates, dtype={"station_id": str})
        makers["estimated"] = station_kriged_traits(stations, estimates)
        args.variants = [*args.variants, "estimated"]
    tables = []
    for variant in args.variants:
        out = args.work / f"{twin.name}-{variant}-traits"
        if not (out / "truth.zarr").exists():
            generate_twin(out, spec["preset"], int(spec["seed"]), traits=makers[variant])
        regenerated = pd.read_csv(out / "stations" / "stations.csv", dtype={"station_id": str})
        if not regenerated[["station_id", "lat", "lon"]].equals(
            stations[["station_id", "lat", "lon"]]
        ):
            raise SystemExit(f"{out}: its stations differ from the run's; not the same twin")
        effects = effect_maps(out / "truth.zarr", start, end, region)
        table = scen.agreement_with_truth(effects, true_effects, flag).assign(variant=variant)
        tables.append(table)
        if not args.keep:
            shutil.rmtree(out)
    product_table = pd.read_csv(args.run / "analysis" / "truth_scenario_agreement.csv")
    product_table = product_table.assign(pattern_flag=product_table["pattern_flag"].astype(str))
    tables.append(product_table.assign(variant="product"))
    result = pd.concat(tables, ignore_index=True)
    args.work.mkdir(parents=True, exist_ok=True)
    result.to_csv(args.work / "trait_ceiling.csv", index=False)
    print(
        f"run {args.run}, twin {spec['preset']} seed {spec['seed']},",
        f"{start:%Y-%m-%d}..{end:%Y-%m-%d}",
    )
    print("sign where |true| > 0.005 / Pearson r / slope, layers 1-5")
    for variant, table in result.groupby("variant", sort=False):
        print(f"\n{variant}:")
        for group in ("1", "0"):
            print(summary_line(table, group))
            print_maps(table, group)
    print(f"\nwritten: {args.work / 'trait_ceiling.csv'}")


if __name__ == "__main__":
    main()
