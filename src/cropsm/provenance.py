"""Provenance of a run: resolved config, package versions, git commit and seeds."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import tomli_w

import cropsm
from cropsm.errors import InputError
from cropsm.io.atomic import atomic_write_text as write

TRACKED_PACKAGES = ("numpy", "pandas", "xarray", "dask", "zarr", "jax", "optax", "pyet")


def git_commit() -> str:
    """Commit of the source tree cropsm runs from, or ``"unknown"`` outside a git checkout."""
    src = Path(cropsm.__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        return "unknown"
    dirty = subprocess.run(
        ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    ).stdout.strip()
    return commit + ("-dirty" if dirty else "")


def package_versions() -> dict[str, str]:
    versions = {"cropsm": cropsm.__version__, "python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file whole or not at all (:func:`cropsm.io.atomic.atomic_output`)."""

    write(path, text)


def read_json_object(path: str | Path, hint: str = "expected a JSON object") -> dict | None:
    """The JSON object in ``path``; None when the file does not exist.

    A file that cannot be read, is not JSON or holds no object is an
    :class:`~cropsm.errors.InputError` naming it, ending with ``hint`` (what to do).
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(path, None, f"cannot be read ({err}); {hint}") from None
    if not isinstance(data, dict):
        raise InputError(path, None, f"holds a {type(data).__name__}, not an object; {hint}")
    return data


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def write_provenance(run_dir: Path, config_dict: dict, seeds: dict[str, int]) -> dict:
    """Write ``config.resolved.toml`` and ``provenance.json`` into the run directory."""
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.resolved.toml", tomli_w.dumps(config_dict))
    record = {
        "cropsm_version": cropsm.__version__,
        "git_commit": git_commit(),
        "seeds": seeds,
        "versions": package_versions(),
        "command": " ".join(sys.argv),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"platform": platform.platform(), "cpus": os.cpu_count()},
    }
    write_json(run_dir / "provenance.json", record)
    return record
