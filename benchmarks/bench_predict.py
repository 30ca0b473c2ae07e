"""Speed and memory of the national product on a synthetic paper-size setup.

Runs the real product code (:func:`cropsm.predict.product.predict_product`: climate read per
block with its 12-month look-back, gridded features, the folded float32 networks, packing, zarr
writes, resume records) on the paper's grid (all China at 0.25 deg) with ``--cells`` cropland
cells (default 8,000), a lazy synthetic climate (generated chunk by chunk, so no input files
are read; the generation is counted as reading), the networks of the paper's Table 2 (random
weights; or ``--models DIR`` for a trained set) and a local dask cluster of ``--workers``
processes with one thread each.

Reported:

* cell-days per second (wall time of the product, cluster start excluded) and the time the full
  paper product (1981-2013, 5 layers x 6 patterns + reference) would take at that rate;
* GFLOP/s of the network part: floating-point operations the forward passes execute
  (:func:`cropsm.predict.network.executed_flops_per_cell_day`, shared first-layer product
  counted once) over the seconds the workers spent in them, per worker thread, against a
  float32 ``numpy`` matrix-multiply peak (2048 x 2048, one BLAS thread, best of several) measured
  in the same run; the ratio is the efficiency;
* peak RSS: the largest sum of the resident memory of this process and all its children
  (scheduler, nannies, workers) sampled every 0.1 s, and the largest single process.

Usage::

    .venv/bin/python benchmarks/bench_predict.py                 # 1981-1982, 8,000 cells
    .venv/bin/python benchmarks/bench_predict.py --full          # 1981-2013
    .venv/bin/python benchmarks/bench_predict.py --workers 0     # in this process
    .venv/bin/python benchmarks/bench_predict.py --json out.json
    .venv/bin/python benchmarks/bench_predict.py --feature-set crop --compare
        # the crop-aware networks (calendar, pattern buckets, bounded output) and, in the same
        # run, the paper's networks of the same shapes; prints the time ratio crop / paper
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

PAPER_DAYS = 12053  # 1981-01-01 ... 2013-12-31


def matmul_peak_gflops(
    n: int = 2048, threads: int = 1, repeats: int = 7, clock=time.perf_counter
) -> float:
    """Best float32 ``n x n`` matrix-multiply rate (GFLOP/s, 2 n^3 per product).

    ``clock`` = :func:`time.thread_time` measures CPU time (one thread only), which is what the
    network rate per worker thread is measured in; :func:`time.perf_counter` wall time.
    """
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    best = float("inf")
    with threadpool_limits(limits=threads):
        np.matmul(a, b, out=out)
        for _ in range(repeats):
            t0 = clock()
            np.matmul(a, b, out=out)
            best = min(best, clock() - t0)
    return 2.0 * n**3 / best / 1e9


class RssSampler:
    """Peak resident memory of this process plus its children, sampled in a thread."""

    def __init__(self, interval_s: float = 0.1):
        import psutil

        self._psutil = psutil
        self.interval_s = interval_s
        self.peak_total = 0
        self.peak_single = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = self._psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                rss = proc.memory_info().rss
            except self._psutil.Error:
                continue
            total += rss
            self.peak_single = max(self.peak_single, rss)
        self.peak_total = max(self.peak_total, total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=8000, help="cropland cells")
    parser.add_argument("--first-year", type=int, default=1981)
    parser.add_argument("--last-year", type=int, default=1982)
    parser.add_argument("--full", action="store_true", help="the paper's 1981-2013")
    parser.add_argument("--workers", type=int, default=None, help="default: one per core")
    parser.add_argument("--models", default=None, help="a trained model set instead of Table 2")
    parser.add_argument("--batch", type=int, default=None, help="cell-days per network batch")
    parser.add_argument(
        "--max-block-cell-days", type=int, default=None, help="[predict] max_block_cell_days"
    )
    parser.add_argument("--out", default=None, help="product store (default: a temp folder)")
    parser.add_argument("--json", default=None, help="also write the figures as JSON")
    parser.add_argument(
        "--feature-set", choices=["paper", "crop"], default="paper", help="inputs of the networks"
    )
    parser.add_argument(
        "--output",
        choices=["linear", "bounded", "anchored"],
        default=None,
        help="default: bounded for crop",
    )
    parser.add_argument(
        "--members",
        type=int,
        default=5,
        help="deep-ensemble size K; the K = 1 product runs in the same run for the time ratio",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also run the paper's linear networks in the same run and print the time ratio",
    )
    args = parser.parse_args()
    if args.output is None:
        args.output = "bounded" if args.feature_set == "crop" else "linear"
    result = run_once(args, args.feature_set, args.output)
    if args.members > 1:
        print(f"\nthe same product with a deep ensemble of K = {args.members} members")
        ensemble = run_once(args, args.feature_set, args.output, members=args.members)
        result[f"members_{args.members}"] = ensemble
        for key, label in (("wall_s", "wall time"), ("cpu_s_blocks", "CPU time of the blocks")):
            ratio = ensemble[key] / result[key] if result[key] else float("nan")
            result[f"ratio_{key}_k{args.members}_to_k1"] = round(ratio, 3)
            print(f"ratio K = {args.members} / K = 1, {label}: {ratio:.2f}")
        print(
            f"peak RSS all processes K = {args.members}: "
            f"{ensemble['peak_rss_mb']['all_processes']:,.0f} MB vs K = 1 "
            f"{result['peak_rss_mb']['all_processes']:,.0f} MB; store "
            f"{ensemble['store_mb']:.1f} MB vs {result['store_mb']:.1f} MB"
        )
    if args.compare and (args.feature_set, args.output) != ("paper", "linear"):
        print("\nbaseline in the same run: the paper's feature set, linear output")
        baseline = run_once(args, "paper", "linear")
        ratio = result["wall_s"] / baseline["wall_s"]
        result["baseline_paper_linear"] = baseline
        result["wall_ratio_to_paper_linear"] = round(ratio, 3)
        print(
            f"\nratio {args.feature_set}/{args.output} to paper/linear wall time: {ratio:.2f} "
            f"({result['wall_s']:.1f} s vs {baseline['wall_s']:.1f} s); peak RSS all processes "
            f"{result['peak_rss_mb']['all_processes']:,.0f} vs "
            f"{baseline['peak_rss_mb']['all_processes']:,.0f} MB"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


def ensemble_of(models, n_members: int, seed: int = 0) -> list:
    """``n_members`` members: the given networks and copies with every weight multiplied by
    ``1 + 0.05 N(0, 1)`` (timing only: the cost does not depend on the values)."""
    import dataclasses

    rng = np.random.default_rng(seed)
    members = [list(models)]
    for _ in range(1, n_members):
        members.append(
            [
                dataclasses.replace(
                    m,
                    weights=[
                        (w * (1 + 0.05 * rng.standard_normal(w.shape)), b) for w, b in m.weights
                    ],
                )
                for m in models
            ]
        )
    return members


def run_once(args, feature_set: str, output: str, members: int = 1) -> dict:
    """One product run of the benchmark with networks of the given feature set and output
    (``members`` > 1: a deep ensemble of that many member chains)."""
    if args.full:
        args.first_year, args.last_year = 1981, 2013

    from cropsm.predict.cluster import available_cores, dask_client, local_worker_count
    from cropsm.predict.config import PredictConfig
    from cropsm.predict.network import (
        executed_flops_per_cell_day,
        fold_chain,
        nominal_flops_per_cell_day,
    )
    from cropsm.predict.product import predict_product
    from cropsm.predict.synthetic import (
        synthetic_climate,
        synthetic_static,
        synthetic_stations,
        table2_models,
    )

    models = (
        table2_models(feature_set=feature_set, output=output)
        if args.models is None
        else _load(args.models)
    )
    climate = synthetic_climate(f"{args.first_year - 1}-01-01", f"{args.last_year}-12-31")
    static = synthetic_static(args.cells)
    stations = synthetic_stations(args.first_year, args.last_year)
    updates = {"workers": args.workers}
    if args.batch:
        updates["batch_cell_days"] = args.batch
    if args.max_block_cell_days:
        updates["max_block_cell_days"] = args.max_block_cell_days
    config = PredictConfig(**updates)
    n_workers = 0 if args.workers == 0 else local_worker_count(args.workers)
    threads = max(1, n_workers)

    peak_1 = matmul_peak_gflops(threads=1, clock=time.thread_time)
    peak_n = matmul_peak_gflops(threads=threads) if threads > 1 else peak_1

    tmp = tempfile.mkdtemp(prefix="bench_predict_")
    out = args.out or os.path.join(tmp, "product.zarr")
    try:
        with RssSampler() as rss:
            with dask_client(None, config.workers) as client:
                t0 = time.perf_counter()
                summary = predict_product(
                    out, climate, static, stations,
                    models if members == 1 else ensemble_of(models, members), config,
                    client=client, source="benchmark",
                )  # fmt: skip
                wall = time.perf_counter() - t0
        store_bytes = sum(
            os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs
        )
    finally:
        if args.out is None:
            shutil.rmtree(tmp, ignore_errors=True)

    nets = fold_chain(models)
    n_pat = 6 if summary["networks_use_pattern"] else 1
    cell_days = summary["cell_days"]
    network_cpu_s = summary["network_cpu_s"]
    per_thread_gflops = summary["flops"] / network_cpu_s / 1e9 if network_cpu_s else float("nan")
    wall_gflops = summary["flops"] / summary["network_s"] / 1e9 if summary["network_s"] else 0.0
    cpu_rate = cell_days / summary["cpu_s"] if summary["cpu_s"] else float("nan")
    result = {
        "machine": {"cores": available_cores(), "workers": n_workers},
        "feature_set": feature_set,
        "output": output,
        "members": members,
        "setup": {
            "cells": summary["cells"],
            "days": summary["days"],
            "period": summary["period"],
            "scenarios": len(summary["scenarios"]),
            "architectures": [
                f"{m.hidden_layers}x{m.units}" for m in sorted(models, key=lambda m: m.layer)
            ],
            "batch_cell_days": config.batch_cell_days,
        },
        "wall_s": round(wall, 2),
        "cell_days": cell_days,
        "cell_days_per_s": round(cell_days / wall, 1),
        "paper_product_estimate_s": round(summary["cells"] * PAPER_DAYS / (cell_days / wall), 1),
        "cpu_s_blocks": round(summary["cpu_s"], 2),
        "cell_days_per_cpu_s": round(cpu_rate, 1),
        "paper_product_estimate_from_cpu_s": round(
            summary["cells"] * PAPER_DAYS / (cpu_rate * threads), 1
        ),
        "load_average": os.getloadavg(),
        "seconds_by_part_summed_over_workers": {
            k: summary[k] for k in ("read_s", "features_s", "network_s", "assemble_s", "write_s")
        },
        "cpu_seconds_by_part": {
            k: summary[f"{k}_cpu_s"] for k in ("read", "features", "network", "assemble", "write")
        },
        "network": {
            "executed_flops_per_cell_day": executed_flops_per_cell_day(nets, n_pat),
            "nominal_flops_per_cell_day": nominal_flops_per_cell_day(models, n_pat),
            "gflops_per_worker_thread": round(per_thread_gflops, 2),
            "gflops_per_worker_thread_wall": round(wall_gflops, 2),
            "matmul_peak_gflops_1_thread_cpu_time": round(peak_1, 2),
            "ratio_to_peak": round(per_thread_gflops / peak_1, 3),
            f"matmul_peak_gflops_{threads}_threads_wall": round(peak_n, 2),
        },
        "peak_rss_mb": {
            "all_processes": round(rss.peak_total / 2**20, 1),
            "largest_process": round(rss.peak_single / 2**20, 1),
        },
        "store_mb": round(store_bytes / 2**20, 1),
    }
    _print(result)
    return result


def _load(path):
    from cropsm.train import load_models

    return load_models(path)


def _print(r: dict) -> None:
    s, n = r["setup"], r["network"]
    print(f"machine: {r['machine']['cores']} cores, {r['machine']['workers']} worker processes")
    print(f"networks: {r['feature_set']} feature set, {r['output']} output")
    print(
        f"setup: {s['cells']} cropland cells x {s['days']} days ({s['period'][0]} to "
        f"{s['period'][1]}), {s['scenarios']} scenarios x 5 layers, networks "
        f"{', '.join(s['architectures'])}, batch {s['batch_cell_days']} cell-days"
    )
    print(f"wall time: {r['wall_s']:.1f} s for {r['cell_days']:,} cell-days")
    print(f"cell-days per second: {r['cell_days_per_s']:,.0f}")
    print(
        f"full paper product (1981-2013, {s['cells']} cells) at this rate: "
        f"{r['paper_product_estimate_s'] / 60:.1f} min"
    )
    workers = max(1, r["machine"]["workers"])
    print(
        f"CPU time of the blocks: {r['cpu_s_blocks']:.1f} s = {r['cell_days_per_cpu_s']:,.0f} "
        f"cell-days per CPU-second; with {workers} dedicated core(s) the full paper product "
        f"would take {r['paper_product_estimate_from_cpu_s'] / 60:.1f} min "
        f"(load average during the run: {', '.join(f'{x:.1f}' for x in r['load_average'])})"
    )
    parts = ", ".join(
        f"{k[:-2]} {v:.1f} s" for k, v in r["seconds_by_part_summed_over_workers"].items()
    )
    print(f"wall time by part, summed over workers: {parts}")
    cpu = ", ".join(f"{k} {v:.1f} s" for k, v in r["cpu_seconds_by_part"].items())
    print(f"CPU time by part: {cpu}")
    print(
        f"network: {n['executed_flops_per_cell_day']:,} FLOP per cell-day executed "
        f"({n['nominal_flops_per_cell_day']:,} for an unshared evaluation), "
        f"{n['gflops_per_worker_thread']:.1f} GFLOP/s per worker thread (CPU time; "
        f"{n['gflops_per_worker_thread_wall']:.1f} by wall time) vs matmul peak "
        f"{n['matmul_peak_gflops_1_thread_cpu_time']:.1f} GFLOP/s (1 thread, CPU time): ratio "
        f"{n['ratio_to_peak']:.2f}"
    )
    m = r["peak_rss_mb"]
    print(
        f"peak RSS: {m['all_processes']:,.0f} MB all processes together, "
        f"{m['largest_process']:,.0f} MB the largest one; store {r['store_mb']:,.0f} MB"
    )


if __name__ == "__main__":
    main()
