"""Wall time and XLA compilations of the whole chained training, against another checkout.

Trains the five chained layer networks of a run exactly as the train stage does
(:func:`cropsm.train.chain.train_layers` with the run's ``[train]`` and ``[features]``
settings, on ``RUN/features/station_table.parquet``) and prints the wall time, the number of
XLA programs compiled and their summed compile seconds (JAX's monitoring events), the
process's peak resident memory and a digest of the trained weights. With ``--baseline-src DIR``
(the ``src`` folder of another checkout, e.g. ``git worktree add /tmp/old <commit>``) the
same measurement runs for that code too, the two alternating ``--repeats`` times in fresh
processes (the machine may be shared), and the ratios are printed; the digests show whether
both train the same networks.

Usage::

    .venv/bin/python benchmarks/bench_train_compile.py runs/demo --baseline-src /tmp/old/src

Measured (session 15, demo run, 3 members, 2 shared cores): 153 programs, 90 and 108 s, against
228 programs, 115 and 126 s before the initial weights were made per weight-matrix shape and
zeros/copies/compactions on the host (ratio 0.82); identical weights. Session 16, same run and
machine, against session 15's code: 173 programs (the validation loss a program of its own), 114
and 109 s, compile 91 and 87 s, peak 1.3 GB, against 153 programs, 139 and 140 s, compile 133
and 139 s, peak 1.5 GB (ratio 0.80), after the layers came to share their training programs
(training rows padded to a shared count, :func:`cropsm.train.mlp.padded_row_count`); identical
weights.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


def measure(run_dir: str) -> dict:
    """Train the run's chain in this process; wall, compile count and seconds, weight digest."""
    import jax.monitoring
    import numpy as np

    seconds: defaultdict[str, float] = defaultdict(float)
    counts: Counter = Counter()

    def listen(event: str, duration: float, **_kw) -> None:
        seconds[event] += duration
        counts[event] += 1

    jax.monitoring.register_event_duration_secs_listener(listen)
    from cropsm.features.station_table import read_station_table
    from cropsm.run_layout import load_run_config
    from cropsm.train.chain import train_layers

    config = load_run_config(run_dir)
    table = read_station_table(Path(run_dir) / "features" / "station_table.parquet")
    start = time.perf_counter()
    chain = train_layers(
        table, config.train, groups_off=config.features.groups_off, feature_set=config.features.set
    )
    wall = time.perf_counter() - start
    digest = [float(sum(np.sum(w) for w, _ in m.weights)) for m in chain.models]
    import resource

    return {
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "programs": counts[COMPILE_EVENT],
        "compile_s": round(seconds[COMPILE_EVENT], 1),
        "weights_digest": digest,
    }


def in_fresh_process(run_dir: str, src: str | None) -> dict:
    """:func:`measure` in a new Python process, importing cropsm from ``src`` when given."""
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run(
        [sys.executable, __file__, run_dir, "--child"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a run directory with its features stage done")
    parser.add_argument("--baseline-src", help="src/ of another checkout to compare with")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.run_dir)))
        return
    rows: list[tuple[str, dict]] = []
    for _ in range(args.repeats):
        rows.append(("this", in_fresh_process(args.run_dir, None)))
        if args.baseline_src:
            rows.append(("baseline", in_fresh_process(args.run_dir, args.baseline_src)))
    for name, row in rows:
        print(f"{name:9s} wall {row['wall_s']:7.1f} s  programs {row['programs']:4d}  "
              f"compile {row['compile_s']:7.1f} s  peak {row['peak_rss_mb']:5d} MB")  # fmt: skip
    if args.baseline_src:
        mine = [r for n, r in rows if n == "this"]
        base = [r for n, r in rows if n == "baseline"]
        wall_ratio = sum(r["wall_s"] for r in mine) / sum(r["wall_s"] for r in base)
        print(f"ratio this/baseline: wall {wall_ratio:.2f}, "
              f"programs {mine[0]['programs'] / base[0]['programs']:.2f}")  # fmt: skip
        same = mine[0]["weights_digest"] == base[0]["weights_digest"]
        print(f"same trained weights: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()
