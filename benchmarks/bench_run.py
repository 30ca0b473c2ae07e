"""Wall time and memory of ``cropsm run`` as a whole, stage by stage, all processes counted.

Runs ``cropsm run CONFIG --out OUT --stages ...`` as a child process and samples, every
``--interval`` seconds, the resident memory of that process and of all its descendants (a stage
in its own process, the dask scheduler, nannies and workers). Each sample is attributed to the
stage the run's log says is running (the ``stage NAME:`` lines on stderr). Reported per stage:
wall seconds (from the run's stage markers), the peak of all processes together, the largest
single process at that moment and the driver (the ``cropsm run`` process itself).

With ``--compare-isolation`` the same stages run a second time, into ``OUT-inprocess``, with
``[run] isolate_stages = false`` (every stage in the driver, as before stages could have their
own process), and the ratio of the whole-run peaks is printed: the baseline measured in the same
session, on the same inputs.

Reuse a generated virtual China instead of generating it again (the twin's inputs stage takes
~10 min at the paper preset) by hard-linking it into the run folder first::

    mkdir -p OUT/stages && cp -al OLD/inputs OUT/ && cp OLD/stages/inputs.json OUT/stages/

Usage::

    .venv/bin/python benchmarks/bench_run.py examples/demo.toml --out /tmp/bench-demo
    .venv/bin/python benchmarks/bench_run.py examples/paper.toml --out /tmp/bench-paper \\
        --stages inputs,features,train,predict --json /tmp/bench-paper.json
    .venv/bin/python benchmarks/bench_run.py examples/demo.toml --out /tmp/b \\
        --stages inputs,features,train --compare-isolation
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import psutil
import tomli_w

STAGE_LINE = re.compile(r"^stage (\w+)[: ]")


class StageMemory:
    """Peak memory per stage of a running ``cropsm run`` process tree."""

    def __init__(self, root: psutil.Process, interval_s: float):
        self.root = root
        self.interval_s = interval_s
        self.stage = "start"
        self.peaks: dict[str, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return
        sizes = []
        for proc in procs:
            try:
                sizes.append(proc.memory_info().rss)
            except psutil.Error:
                continue
        if not sizes:
            return
        total = sum(sizes)
        peak = self.peaks.setdefault(self.stage, {"all_mb": 0.0})
        if total / 2**20 > peak["all_mb"]:
            peak.update(
                all_mb=total / 2**20,
                largest_mb=max(sizes) / 2**20,
                driver_mb=sizes[0] / 2**20,
                processes=len(sizes),
            )

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


def run_once(config: Path, out: Path, stages: str, interval_s: float, log_path: Path) -> dict:
    """Run ``cropsm run`` once under the sampler; return wall time and per-stage figures."""
    cropsm = shutil.which("cropsm", path=str(Path(sys.executable).parent)) or "cropsm"
    command = [cropsm, "run", str(config), "--out", str(out), "--stages", stages]
    env = {**os.environ, "COLUMNS": "200"}
    t0 = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        child = subprocess.Popen(
            command, stdout=log, stderr=subprocess.PIPE, text=True, env=env, bufsize=1
        )
        with StageMemory(psutil.Process(child.pid), interval_s) as sampler:
            for line in child.stderr:
                log.write(line)
                log.flush()  # the log is the run's progress, read while it runs
                match = STAGE_LINE.match(line)
                if match:
                    sampler.stage = match.group(1)
            code = child.wait()
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"cropsm run failed (exit {code}); see {log_path}")
    summary = json.loads((out / "run_summary.json").read_text(encoding="utf-8"))
    rows = {}
    for name, peak in sampler.peaks.items():
        if name == "start":
            continue
        record = summary.get(name, {})
        rows[name] = {
            "status": record.get("status"),
            "seconds": record.get("seconds"),
            **{k: round(v) if isinstance(v, float) else v for k, v in peak.items()},
        }
    whole = max((r["all_mb"] for r in rows.values()), default=0)
    return {"wall_s": round(wall, 1), "peak_all_mb": whole, "stages": rows}


def with_isolation_off(config: Path, folder: Path) -> Path:
    """A copy of ``config`` with ``[run] isolate_stages = false`` (paths made absolute)."""
    from cropsm.config import config_to_dict, load_config

    data = config_to_dict(load_config(config))
    data.setdefault("run", {})["isolate_stages"] = False
    path = folder / f"{config.stem}-inprocess.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    tomllib.loads(path.read_text(encoding="utf-8"))  # readable back
    return path


def print_table(title: str, result: dict) -> None:
    wall, peak = result["wall_s"], result["peak_all_mb"]
    print(f"{title}: {wall:.1f} s wall, peak {peak:,} MB all processes")
    print(f"  {'stage':<10}{'status':<9}{'seconds':>9}{'all MB':>9}{'largest':>9}{'driver':>9}")
    for name, row in result["stages"].items():
        seconds = "" if row["seconds"] is None else f"{row['seconds']:.1f}"
        print(
            f"  {name:<10}{row['status'] or '':<9}{seconds:>9}{row['all_mb']:>9,}"
            f"{row['largest_mb']:>9,}{row['driver_mb']:>9,}"
        )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="run folder (may hold inputs)")
    parser.add_argument(
        "--stages", default="inputs,features,train,predict,attribute,analyze,report"
    )
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between samples")
    parser.add_argument("--compare-isolation", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"config": str(args.config), "stages_run": args.stages}
    result["isolated"] = run_once(
        args.config, args.out, args.stages, args.interval, args.out / "bench_run.log"
    )
    print_table("cropsm run (stages with own_process in their own process)", result["isolated"])
    if args.compare_isolation:
        other = args.out.with_name(args.out.name + "-inprocess")
        if other.exists():
            shutil.rmtree(other)
        other.mkdir(parents=True)
        inputs = args.out / "inputs"
        if inputs.exists() and "inputs" not in args.stages.split(","):
            shutil.copytree(inputs, other / "inputs", copy_function=os.link)
            (other / "stages").mkdir()
            shutil.copy(args.out / "stages" / "inputs.json", other / "stages" / "inputs.json")
        config = with_isolation_off(args.config, other)
        result["in_process"] = run_once(
            config, other, args.stages, args.interval, other / "bench_run.log"
        )
        print_table("the same with [run] isolate_stages = false", result["in_process"])
        ratio = result["in_process"]["peak_all_mb"] / max(result["isolated"]["peak_all_mb"], 1)
        result["peak_ratio_in_process_over_isolated"] = round(ratio, 2)
        print(f"peak all processes, in-process / isolated: {ratio:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
