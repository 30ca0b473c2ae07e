"""Faults: a lost dask worker, an interrupted product, unwritable and full outputs.

The product of small synthetic inputs (a 16 x 16 cell corner of the paper grid, all cropland,
91 days in 16 blocks, the paper's network shapes with random weights) is made once in this
process; the same product is then made on 2-worker ``LocalCluster`` s while a worker process is
killed (``SIGKILL``, its nanny told not to restart it) at chosen moments, and compared chunk for
chunk. With every worker killed the run must stop with a one-line error within a bounded time
and resume to the identical product.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from cropsm.analyze.product import standardize_product
from cropsm.errors import ClusterError, InputError, OutputError, UsageError
from cropsm.io.atomic import atomic_output, check_writable, new_file_mode
from cropsm.predict import cluster as cluster_module
from cropsm.predict import product as product_module
from cropsm.predict import synthetic
from cropsm.predict.config import PredictConfig
from cropsm.predict.export import export_netcdf
from cropsm.predict.store import chunk_files, open_product, partial_path

CONFIG = {"start": "2012-01-01", "end": "2012-03-31", "time_chunk_days": 6}
N_BLOCKS = 16  # ceil(91 / 6)


@pytest.fixture(scope="module")
def inputs() -> tuple:
    """Climate (in memory), static, stations and networks of a 16 x 16 all-cropland corner."""
    ys, xs = slice(60, 76), slice(120, 136)
    climate = synthetic.synthetic_climate("2011-01-01", "2012-03-31", time_chunk_days=40)
    climate = climate.isel(lat=ys, lon=xs).load()
    static = synthetic.synthetic_static(synthetic.PAPER_LAT.size * synthetic.PAPER_LON.size)
    static = static.isel(lat=ys, lon=xs)
    return climate, static, synthetic.synthetic_stations(2012, 2012), synthetic.table2_models()


@pytest.fixture(scope="module")
def reference(inputs, tmp_path_factory) -> dict:
    """Chunk files of the uninterrupted product, made in this process."""
    path = tmp_path_factory.mktemp("faults") / "reference.zarr"
    summary = product_module.predict_product(path, *inputs, PredictConfig(workers=0, **CONFIG))
    assert summary["blocks_computed"] == N_BLOCKS
    return chunk_files(path)


class Cluster:
    """A 2-worker LocalCluster whose worker processes the test can kill for good."""

    def __init__(self):
        from distributed import Client, LocalCluster

        self.cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        )
        self.client = Client(self.cluster)
        self.client.wait_for_workers(2, timeout=60)
        self.killed: list[str] = []

    def kill(self, address: str) -> None:
        """SIGKILL the worker process at ``address``; its nanny closes instead of restarting."""
        from distributed.core import Status

        pid = self.client.run(os.getpid, workers=[address])[address]
        for nanny in self.cluster.workers.values():
            if nanny.worker_address == address:
                nanny.status = Status.closing_gracefully
        os.kill(pid, signal.SIGKILL)
        self.killed.append(address)

    def busy_worker(self) -> str:
        """A worker that is running a task now (else any worker)."""
        processing = self.client.processing()
        busy = [w for w, keys in processing.items() if keys]
        return (busy or sorted(processing))[0]

    def close(self) -> None:
        self.client.close()
        self.cluster.close()


def _run_with_kill(inputs, out: Path, when: str) -> tuple[dict, Cluster]:
    """Make the product on a fresh 2-worker cluster, killing one worker at moment ``when``."""
    cl = Cluster()
    state = {"done": False}

    def on_progress(step: str, done: int, total: int) -> None:
        if when.startswith("after_blocks_") and done == int(when.rsplit("_", 1)[1]):
            if not state["done"]:
                state["done"] = True
                cl.kill(cl.busy_worker())

    watcher = None
    if when == "job_arrived":
        # kill the worker that holds the job as soon as the job is in a worker's memory

        def watch() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not state["done"]:
                holders = cl.client.run_on_scheduler(_job_holders)
                if holders:
                    state["done"] = True
                    cl.kill(holders[0])
                    return
                time.sleep(0.005)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
    try:
        summary = product_module.predict_product(
            out, *inputs, PredictConfig(**CONFIG), client=cl.client, progress=on_progress
        )
    finally:
        if watcher is not None:
            watcher.join(timeout=30)
    assert state["done"], f"the worker was not killed ({when})"
    return summary, cl


def _job_holders(dask_scheduler) -> list[str]:
    return [
        ws.address
        for ts in dask_scheduler.tasks.values()
        if str(ts.key).startswith("cropsm-job") and ts.state == "memory"
        for ws in ts.who_has
    ]


@pytest.mark.parametrize("when", ["job_arrived", "after_blocks_1", "after_blocks_8"])
def test_losing_a_worker_gives_the_identical_product(inputs, reference, tmp_path, when):
    out = tmp_path / "product.zarr"
    started = time.monotonic()
    summary, cl = _run_with_kill(inputs, out, when)
    try:
        assert len(cl.client.nthreads()) == 1  # finished on the remaining worker
    finally:
        cl.close()
    assert summary["blocks_computed"] == N_BLOCKS
    assert time.monotonic() - started < 60
    got = chunk_files(out)
    assert got.keys() == reference.keys()
    assert all(got[k] == reference[k] for k in reference)
    assert not partial_path(out).exists()


def test_no_worker_left_is_a_bounded_error_and_the_run_resumes(
    inputs, reference, tmp_path, monkeypatch
):
    monkeypatch.setattr(cluster_module, "NO_WORKER_TIMEOUT_S", 2.0)
    out = tmp_path / "product.zarr"
    cl = Cluster()
    killed = {"n": 0}

    def on_progress(step: str, done: int, total: int) -> None:
        if done == 2 and not killed["n"]:
            killed["n"] = 2
            for address in sorted(cl.client.nthreads()):
                cl.kill(address)

    started = time.monotonic()
    try:
        with pytest.raises(ClusterError, match="no worker left") as err:
            product_module.predict_product(
                out, *inputs, PredictConfig(**CONFIG), client=cl.client, progress=on_progress
            )
    finally:
        cl.close()
    assert time.monotonic() - started < 30
    assert "\n" not in str(err.value) and "run again to resume" in str(err.value)
    # nothing under the final name; the unfinished store refuses to be read as a product
    assert not out.exists() and partial_path(out).exists()
    with pytest.raises(UsageError, match="unfinished product"):
        open_product(partial_path(out))
    with pytest.raises(UsageError, match="blocks are not computed"):
        export_netcdf(partial_path(out), tmp_path / "copy.nc")
    with pytest.raises(UsageError, match="unfinished product"):
        standardize_product(xr.open_zarr(partial_path(out)), partial_path(out))
    assert not (tmp_path / "copy.nc").exists()
    # a worker killed inside a chunk write leaves zarr's temporary chunk file behind
    chunk_dir = partial_path(out) / "sm" / "c" / "0" / "0" / "0" / "0"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    (chunk_dir / "0.61ce132cecd14a5296433c43ded529ae.partial").write_bytes(b"torn")
    again = product_module.predict_product(out, *inputs, PredictConfig(workers=0, **CONFIG))
    assert again["status"] == "resumed"
    assert 2 <= again["blocks_skipped"] < N_BLOCKS
    got = chunk_files(out)
    assert got.keys() == reference.keys() and all(got[k] == reference[k] for k in reference)


def test_finished_product_has_no_resume_record_and_opens(inputs, tmp_path):
    out = tmp_path / "p.zarr"
    config = PredictConfig(workers=0, **{**CONFIG, "end": "2012-01-12"})  # 2 blocks
    product_module.predict_product(out, *inputs, config)
    ds = open_product(out)
    assert "block_done" not in ds.variables and "block_done" not in xr.open_zarr(out)
    assert not (out / "block_done").exists() and not partial_path(out).exists()
    assert int(ds["sm"].notnull().sum()) == 7 * 5 * 12 * 256
    again = product_module.predict_product(out, *inputs, config)
    assert (again["status"], again["blocks_computed"]) == ("resumed", 0)


def test_disk_full_during_a_block_is_one_line_naming_the_store(inputs, tmp_path, monkeypatch):
    import zarr

    real = zarr.core.array.Array.__setitem__
    calls = {"n": 0}

    def full_disk(self, key, value):
        calls["n"] += 1
        if calls["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device", "/x/sm/c/0/0/0/0/0")
        return real(self, key, value)

    monkeypatch.setattr(zarr.core.array.Array, "__setitem__", full_disk)
    out = tmp_path / "p.zarr"
    with pytest.raises(OutputError) as err:
        product_module.predict_product(out, *inputs, PredictConfig(workers=0, **CONFIG))
    message = str(err.value)
    assert message.startswith(f"{partial_path(out)}: cannot write (No space left on device)")
    assert "free space" in message and "\n" not in message
    assert not out.exists()


def test_atomic_output_is_whole_or_nothing_and_world_readable(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    old_umask = os.umask(0o022)
    try:
        with atomic_output(target) as tmp:
            assert tmp.parent == target.parent and tmp.suffix == ".csv"
            tmp.write_text("a,b\n1,2\n")
            assert not target.exists()
        assert new_file_mode() == 0o644
    finally:
        os.umask(old_umask)
    assert target.read_text() == "a,b\n1,2\n"
    assert target.stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert target.read_text() == "a,b\n1,2\n"  # the old file is kept
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.csv"]  # no temp left


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_unwritable_output_fails_before_any_work(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="Permission denied"):
            check_writable(locked / "run" / "product.zarr", "--out")
        with pytest.raises(OutputError):
            with atomic_output(locked / "x.csv") as tmp:
                tmp.write_text("x")
    finally:
        locked.chmod(0o700)
    assert list(locked.iterdir()) == []


def test_output_under_a_file_or_proc_fails_at_once(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        check_writable(tmp_path / "file" / "run", "--out")
    with pytest.raises(OutputError, match="/proc"):
        check_writable(Path("/proc/self/cropsm-run"), "--out")
    assert check_writable(tmp_path / "new" / "run") == (tmp_path / "new" / "run")
    assert not (tmp_path / "new").exists()  # the check creates nothing
    np.testing.assert_equal(sorted(p.name for p in tmp_path.iterdir()), ["file"])


def test_cli_output_under_proc_is_one_line_before_inputs_are_read(tmp_path):
    from typer.testing import CliRunner

    from cropsm.cli import app

    config = tmp_path / "run.toml"
    missing = tmp_path / "nowhere"
    config.write_text(
        "[inputs.files]\n"
        f'stations = "{missing}/stations.csv"\nobservations = "{missing}/obs.csv"\n'
        f'climate = ["{missing}/*.nc"]\n'
    )
    result = CliRunner().invoke(app, ["run", str(config), "--out", "/proc/self/cropsm-run"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: /proc/self/cropsm-run: cannot write")
    assert "choose another --out" in lines[0] and "nowhere" not in lines[0]  # inputs not read


def test_disk_full_on_a_worker_is_one_line_without_a_worker_traceback(
    inputs, tmp_path, monkeypatch, caplog
):
    import logging

    from distributed import Client, LocalCluster

    from cropsm.predict import store as store_module

    def full_disk(path, *args):
        raise OSError(errno.ENOSPC, "No space left on device", f"{path}/sm/c/0/0/0/0/0")

    monkeypatch.setattr(store_module, "_write_block", full_disk)  # workers are threads here
    out = tmp_path / "p.zarr"
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
        with Client(cluster) as client, caplog.at_level(logging.ERROR, "distributed.worker"):
            with pytest.raises(OutputError, match="No space left on device") as err:
                product_module.predict_product(out, *inputs, PredictConfig(**CONFIG), client=client)
    assert str(err.value).startswith(f"{partial_path(out)}: cannot write")
    assert not [r for r in caplog.records if "Compute Failed" in r.getMessage()]
    assert not out.exists()
    # the threads that ran the blocks left dask's global config as they found it (a global
    # scheduler setting restored by a worker thread after the client closed broke later tests)
    import dask

    assert dask.config.get("scheduler", None) != "dask.distributed"


KILLED_DRIVER = """
import sys
from cropsm.predict import product, synthetic
from cropsm.predict.config import PredictConfig

ys, xs = slice(60, 76), slice(120, 136)
climate = synthetic.synthetic_climate("2011-01-01", "2012-03-31", time_chunk_days=40)
climate = climate.isel(lat=ys, lon=xs).load()
static = synthetic.synthetic_static(synthetic.PAPER_LAT.size * synthetic.PAPER_LON.size)
static = static.isel(lat=ys, lon=xs)
inputs = (climate, static, synthetic.synthetic_stations(2012, 2012), synthetic.table2_models())


def report(step, done, total):
    print("done", done, flush=True)
    if done >= 4:
        input()  # wait here to be killed


product.predict_product(sys.argv[1], *inputs, PredictConfig(workers=0, **CONFIG), progress=report)
"""


def test_driver_killed_leaves_no_product_and_resumes_identically(inputs, reference, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "product.zarr"
    script = tmp_path / "driver.py"
    script.write_text(f"CONFIG = {CONFIG!r}\n" + KILLED_DRIVER)
    env = {**os.environ, "PYTHONPATH": str(Path(product_module.__file__).parents[2])}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(out)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        for line in proc.stdout:
            if line.strip() == "done 4":
                break
        proc.kill()  # SIGKILL: no clean-up runs
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists() and partial_path(out).exists()
    with pytest.raises(UsageError, match=r"unfinished product \(12 of 16 blocks"):
        open_product(partial_path(out))
    again = product_module.predict_product(out, *inputs, PredictConfig(workers=0, **CONFIG))
    assert (again["status"], again["blocks_skipped"], again["blocks_computed"]) == (
        "resumed", 4, 12,
    )  # fmt: skip
    got = chunk_files(out)
    assert got.keys() == reference.keys() and all(got[k] == reference[k] for k in reference)


def test_unfinished_store_of_an_earlier_cropsm_is_finished_in_place(
    inputs, reference, tmp_path, monkeypatch
):
    out = tmp_path / "product.zarr"
    real = product_module.compute_block
    calls = []

    def dies_in_third_block(job, block_id):
        calls.append(block_id)
        if len(calls) == 3:
            raise RuntimeError("killed")
        return real(job, block_id)

    monkeypatch.setattr(product_module, "compute_block", dies_in_third_block)
    with pytest.raises(RuntimeError, match="killed"):
        product_module.predict_product(out, *inputs, PredictConfig(workers=0, **CONFIG))
    monkeypatch.setattr(product_module, "compute_block", real)
    partial_path(out).rename(out)  # the layout of earlier versions: unfinished under the name
    with pytest.raises(UsageError, match=r"unfinished product \(14 of 16 blocks"):
        open_product(out)
    again = product_module.predict_product(out, *inputs, PredictConfig(workers=0, **CONFIG))
    assert (again["status"], again["blocks_computed"]) == ("resumed", 14)
    assert "block_done" not in open_product(out).variables
    got = chunk_files(out)
    assert got.keys() == reference.keys() and all(got[k] == reference[k] for k in reference)


def test_workers_ignore_ctrl_c_so_only_the_driver_handles_it():
    """Ctrl-C reaches the whole process group: the product's worker processes ignore it (no
    traceback of theirs), the driver keeps its KeyboardInterrupt and closes the cluster."""
    from cropsm.predict.cluster import dask_client

    before = signal.getsignal(signal.SIGINT)
    with dask_client(workers=1) as client:
        assert signal.getsignal(signal.SIGINT) is before  # restored once the workers started
        ignored = client.run(lambda: signal.getsignal(signal.SIGINT) == signal.SIG_IGN)
    assert list(ignored.values()) == [True]


def _interrupted_after_two_blocks(inputs, out: Path) -> Path:
    """``out`` made up to its second block and interrupted there (Ctrl-C)."""

    def stop_after_two(step: str, done: int, total: int) -> None:
        if step == "predict blocks" and done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        product_module.predict_product(
            out, *inputs, PredictConfig(workers=0, **CONFIG), progress=stop_after_two
        )
    return out


def test_an_unfinished_store_without_its_resume_record_is_rebuilt(inputs, reference, tmp_path):
    """Without ``block_done`` an unfinished store cannot say which blocks are written: it is
    rebuilt (not finished as if complete), to the identical product; one whose metadata is
    damaged is not taken for a cropsm store and is left for the user to remove."""
    out = _interrupted_after_two_blocks(inputs, tmp_path / "product.zarr")
    work = partial_path(out)
    assert work.exists() and not out.exists()
    shutil.rmtree(work / "block_done")
    again = product_module.predict_product(out, *inputs, PredictConfig(workers=0, **CONFIG))
    assert (again["status"], again["blocks_computed"]) == ("created", N_BLOCKS)
    got = chunk_files(out)
    assert got.keys() == reference.keys() and all(got[k] == reference[k] for k in reference)

    other = tmp_path / "other.zarr"
    partial_path(other).mkdir()
    (partial_path(other) / "zarr.json").write_text('{"attributes": {"cropsm_fing')
    with pytest.raises(FileExistsError, match="is not an unfinished cropsm product"):
        product_module.predict_product(other, *inputs, PredictConfig(workers=0, **CONFIG))
    assert (partial_path(other) / "zarr.json").exists()  # not ours to remove


def test_every_chunk_is_stored_so_a_lost_one_is_refused_and_recomputed(inputs, tmp_path):
    """Chunks that hold only fill values (no cropland there) are stored too, so a chunk file
    missing from a finished product is damage: opening, exporting and analysing it are
    refused with the file named (not read as fill), and ``predict`` recomputes only the
    blocks that lost a chunk, to the identical product."""
    from cropsm.analyze.product import open_product as open_run_product
    from cropsm.pipeline import _outputs_present
    from cropsm.predict.store import store_damage

    climate, static, stations, models = inputs
    no_crop = static.copy()
    fraction = no_crop["cropland_fraction"].values.copy()
    fraction[:8, :8] = 0.0  # one of the four 8 x 8 chunks of a layer-day has no cropland
    no_crop["cropland_fraction"] = (no_crop["cropland_fraction"].dims, fraction)
    config = PredictConfig(workers=0, space_chunk_cells=8, **CONFIG)
    out = tmp_path / "product.zarr"
    product_module.predict_product(out, climate, no_crop, stations, models, config)
    whole = chunk_files(out, ("sm", "time_flag"))
    n_scenarios = open_product(out).sizes["scenario"]
    assert len(whole) == N_BLOCKS * 4 * (n_scenarios * 5 + 1)  # all-fill chunks included
    assert store_damage(out) is None

    lost = ["sm/c/2/3/5/0/0", "time_flag/c/5/0/0", "sm/c/0/0/9/1/1"]  # blocks 5 and 9
    for key in lost:
        (out / key).unlink()
    assert store_damage(out) == (2, sorted(lost))
    expected = r"product.zarr: damaged product: 3 chunk file\(s\) missing \(e.g. sm/c/0/0/9/1/1\)"
    with pytest.raises(UsageError, match=expected):
        open_product(out)
    with pytest.raises(UsageError, match=expected):
        export_netcdf(out, tmp_path / "product.nc")
    with pytest.raises(UsageError, match=expected):
        open_run_product(tmp_path)
    assert not (tmp_path / "product.nc").exists()
    assert not _outputs_present(tmp_path, "predict")  # `cropsm run` runs predict again

    again = product_module.predict_product(out, climate, no_crop, stations, models, config)
    assert (again["status"], again["blocks_computed"]) == ("repaired", 2)
    assert not partial_path(out).exists() and store_damage(out) is None
    got = chunk_files(out, ("sm", "time_flag"))
    assert got.keys() == whole.keys() and all(got[k] == whole[k] for k in whole)


def test_a_forged_resume_record_does_not_finish_a_half_written_store(inputs, reference, tmp_path):
    """``block_done`` set to 1 for blocks that were never written: the missing chunk files
    give them away and they are computed, not published as fill."""
    import zarr

    out = _interrupted_after_two_blocks(inputs, tmp_path / "product.zarr")
    record = zarr.open_array(str(partial_path(out) / "block_done"), mode="r+")
    record[...] = 1
    again = product_module.predict_product(out, *inputs, PredictConfig(workers=0, **CONFIG))
    assert (again["status"], again["blocks_computed"]) == ("resumed", N_BLOCKS - 2)
    got = chunk_files(out)
    assert got.keys() == reference.keys() and all(got[k] == reference[k] for k in reference)


def test_a_product_of_the_top_layers_only_is_whole(inputs, tmp_path):
    """A product of layers 1...k (the control experiments' top-layer products) stores fill
    chunks for the layers below, so it finishes and is not taken for damaged."""
    from cropsm.predict.store import store_damage

    climate, static, stations, models = inputs
    out = tmp_path / "top.zarr"
    config = PredictConfig(workers=0, **CONFIG)
    product_module.predict_product(out, climate, static, stations, models[:1], config)
    assert store_damage(out) is None
    ds = open_product(out)
    assert (
        ds["sm"].isel(layer=0).notnull().any()
        and ds["sm"].isel(layer=slice(1, None)).isnull().all()
    )


def test_a_chunk_that_cannot_be_decoded_is_named_then_recomputed(inputs, reference, tmp_path):
    """A torn chunk file (present, but not zstd any more) stops export and the analyses with
    one line naming it; deleted, it is recomputed by ``predict`` to the identical product."""
    from cropsm.analyze.product import open_product as open_run_product
    from cropsm.predict.store import reading_product, undecodable_chunks

    out = tmp_path / "product.zarr"
    product_module.predict_product(out, *inputs, PredictConfig(workers=0, **CONFIG))
    torn = out / "sm" / "c" / "6" / "2" / "7" / "0" / "0"
    torn.write_bytes(torn.read_bytes()[:40])
    assert undecodable_chunks(out) == ["sm/c/6/2/7/0/0"]
    expected = (
        r"product.zarr: damaged zarr store: chunk file\(s\) sm/c/6/2/7/0/0 cannot be decoded "
        r"\(Zstd .*\); delete them"
    )
    with pytest.raises(InputError, match=expected):
        export_netcdf(out, tmp_path / "product.nc")
    assert not (tmp_path / "product.nc").exists()
    with pytest.raises(InputError, match=expected), reading_product(tmp_path):
        open_run_product(tmp_path)["sm"].load()

    torn.unlink()
    again = product_module.predict_product(out, *inputs, PredictConfig(workers=0, **CONFIG))
    assert (again["status"], again["blocks_computed"]) == ("repaired", 1)
    got = chunk_files(out)
    assert got.keys() == reference.keys() and all(got[k] == reference[k] for k in reference)
    with pytest.raises(ZeroDivisionError), reading_product(out):  # a whole store: passed on
        1 / 0  # noqa: B018


def test_a_product_that_lost_a_variables_metadata_is_refused_and_rebuilt(
    inputs, reference, tmp_path
):
    """Without ``sm/zarr.json`` (and consolidated metadata) zarr leaves ``sm`` out silently:
    the product is refused instead of exported without its soil moisture, and rebuilt."""
    import json

    out = tmp_path / "product.zarr"
    product_module.predict_product(out, *inputs, PredictConfig(workers=0, **CONFIG))
    root = json.loads((out / "zarr.json").read_text())
    root.pop("consolidated_metadata")
    (out / "zarr.json").write_text(json.dumps(root))
    (out / "sm" / "zarr.json").unlink()
    expected = r"product.zarr: damaged product: sm/zarr.json missing or unreadable; run"
    with pytest.raises(UsageError, match=expected):
        open_product(out)
    with pytest.raises(UsageError, match=expected):
        export_netcdf(out, tmp_path / "product.nc")
    assert not (tmp_path / "product.nc").exists()
    again = product_module.predict_product(out, *inputs, PredictConfig(workers=0, **CONFIG))
    assert (again["status"], again["blocks_computed"]) == ("replaced", N_BLOCKS)
    got = chunk_files(out)
    assert got.keys() == reference.keys() and all(got[k] == reference[k] for k in reference)

    text = (out / "zarr.json").read_text()
    (out / "zarr.json").write_text(text[: len(text) // 2])  # the store's own metadata torn
    with pytest.raises(InputError, match=r"product.zarr/zarr.json: cannot be read \("):
        export_netcdf(out, tmp_path / "product.nc")
    with pytest.raises(InputError, match="metadata is damaged; remove the store and run"):
        open_product(out)


@pytest.mark.parametrize("damage", ["record metadata deleted", "record chunk torn"])
def test_an_unfinished_store_whose_resume_record_is_damaged_is_rebuilt(
    inputs, reference, tmp_path, damage
):
    out = _interrupted_after_two_blocks(inputs, tmp_path / "product.zarr")
    record = partial_path(out) / "block_done"
    if damage == "record metadata deleted":
        (record / "zarr.json").unlink()
    else:
        next(f for f in record.rglob("*") if f.is_file() and f.name != "zarr.json").write_bytes(
            b"torn"
        )
    with pytest.raises(UsageError, match=r"resume record \(block_done\) cannot be read; run"):
        open_product(partial_path(out))
    again = product_module.predict_product(out, *inputs, PredictConfig(workers=0, **CONFIG))
    assert (again["status"], again["blocks_computed"]) == ("created", N_BLOCKS)
    got = chunk_files(out)
    assert got.keys() == reference.keys() and all(got[k] == reference[k] for k in reference)


def test_a_lost_chunk_of_a_static_array_is_refused_and_the_product_rebuilt(
    inputs, reference, tmp_path
):
    """Regions, weights and flags are written when the store is created, every chunk too: a
    lost one (which read as "outside China") is damage that only a rebuild mends."""
    out = tmp_path / "product.zarr"
    product_module.predict_product(out, *inputs, PredictConfig(workers=0, **CONFIG))
    (out / "region" / "c" / "0" / "0").unlink()
    with pytest.raises(UsageError, match=r"1 chunk file\(s\) missing \(e.g. region/c/0/0\); run"):
        open_product(out)
    again = product_module.predict_product(out, *inputs, PredictConfig(workers=0, **CONFIG))
    assert (again["status"], again["blocks_computed"]) == ("replaced", N_BLOCKS)
    assert (out / "region" / "c" / "0" / "0").is_file()
    got = chunk_files(out)
    assert got.keys() == reference.keys() and all(got[k] == reference[k] for k in reference)
