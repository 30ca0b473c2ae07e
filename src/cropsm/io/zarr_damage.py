"""Damaged zarr stores: chunk files that are there but cannot be decoded.

A torn copy or an altered byte turns a chunk into something its codec cannot read; zarr then
raises the codec's own error (``Zstd decompression error: invalid input data``) without naming
the file. :func:`undecodable_chunks` finds such files by decoding every chunk of a store, and
:func:`damaged_stores` does so for every store of a run directory -- both meant for the
failure path only (they read everything).
"""

from __future__ import annotations

import itertools
import os
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from cropsm.errors import CropsmError, InputError
from cropsm.provenance import read_json_object


def stored_files(folder: Path) -> set[str]:
    """Relative paths (``/``-separated) of the files under a folder."""
    out = set()
    for root, _, files in os.walk(folder):
        base = Path(root).relative_to(folder)
        out.update((base / f).as_posix() for f in files)
    return out


def array_folders(store: Path) -> list[str]:
    """Relative paths of the arrays of a zarr (v3) store (folders whose ``zarr.json`` says
    ``node_type: array``)."""
    out = []
    for meta in sorted(Path(store).rglob("zarr.json")):
        try:
            node = read_json_object(meta) or {}
        except InputError:
            continue
        if node.get("node_type") == "array":
            out.append(meta.parent.relative_to(store).as_posix())
    return out


def undecodable_chunks(store: str | Path, arrays: Sequence[str] | None = None) -> list[str]:
    """Chunk files of ``arrays`` (None: every array of the store) that are there but cannot
    be decoded, as ``"ARRAY/c/0/1/2"``. Decodes every chunk (the failure path only)."""
    import zarr

    store = Path(store)
    bad: list[str] = []
    for name in array_folders(store) if arrays is None else arrays:
        folder = store / name
        if not (folder / "zarr.json").is_file():
            continue
        try:
            array = zarr.open_array(str(folder), mode="r")
        except Exception:  # noqa: BLE001 - unreadable metadata: no chunk to name
            continue
        for key in sorted(stored_files(folder) - {"zarr.json"}):
            parts = key.split("/")
            if parts[0] != "c" or not all(p.isdigit() for p in parts[1:]):
                continue
            try:
                array.get_block_selection(tuple(int(p) for p in parts[1:]))
            except Exception:  # noqa: BLE001 - whatever the codec raises: the chunk is bad
                bad.append(f"{name}/{key}")
    return bad


def chunk_key(encoding: dict, coords: Sequence[int]) -> str:
    """A chunk's key under its array's folder, by the array's ``chunk_key_encoding``."""
    name = encoding.get("name", "default")
    default_separator = "/" if name == "default" else "."
    separator = (encoding.get("configuration") or {}).get("separator", default_separator)
    parts = [str(int(c)) for c in coords]
    if name == "default":
        return separator.join(["c", *parts])
    return separator.join(parts) if parts else "0"


def absent_chunks(store: str | Path, arrays: Sequence[str] | None = None) -> list[str]:
    """Chunk files of ``arrays`` (None: every array of the store) that are not there, over
    each array's whole chunk grid -- damage in a store that writes every chunk (zarr skips
    chunks holding only the fill value unless told to write them)."""
    store = Path(store)
    absent: list[str] = []
    for name in array_folders(store) if arrays is None else arrays:
        try:
            meta = read_json_object(store / name / "zarr.json") or {}
        except InputError:
            continue
        shape = meta.get("shape")
        grid = ((meta.get("chunk_grid") or {}).get("configuration") or {}).get("chunk_shape")
        if shape is None or grid is None or len(shape) != len(grid):
            continue
        stored = stored_files(store / name)
        encoding = meta.get("chunk_key_encoding") or {}
        ranges = [range(-(-int(n) // int(c))) for n, c in zip(shape, grid, strict=True)]
        absent += [
            f"{name}/{key}"
            for key in (chunk_key(encoding, coords) for coords in itertools.product(*ranges))
            if key not in stored
        ]
    return absent


def write_every_chunk_skeleton(dataset, path: str | Path, encoding: dict) -> None:
    """``dataset.to_zarr`` as a new zarr (v3) store whose eager variables store every chunk,
    also one holding only the fill value (lazy variables are left for later writes), so that
    a chunk file missing later is damage (:func:`absent_chunks`)."""
    dataset.to_zarr(
        path,
        mode="w",
        compute=False,
        encoding=encoding,
        zarr_format=3,
        consolidated=False,
        write_empty_chunks=True,
    )


def raised_while_reading_zarr(err: BaseException) -> bool:
    """Whether zarr or a codec is among the frames the exception passed through."""
    frames = traceback.extract_tb(err.__traceback__)
    return any(f"{os.sep}zarr{os.sep}" in f.filename or "numcodecs" in f.filename for f in frames)


def damaged_stores(root: str | Path, max_depth: int = 3) -> dict[str, list[str]]:
    """``{store: undecodable chunk files}`` of the zarr stores (``*.zarr`` folders, at most
    ``max_depth`` levels) under ``root`` that have any; ``root`` itself when it is a store."""
    root = Path(root)
    out: dict[str, list[str]] = {}
    if (root / "zarr.json").is_file():
        bad = undecodable_chunks(root)
        return {str(root): bad} if bad else {}
    for depth in range(1, max_depth + 1):
        for store in sorted(root.glob("/".join(["*"] * (depth - 1) + ["*.zarr"]))):
            if store.is_dir() and (bad := undecodable_chunks(store)):
                out[str(store)] = bad
    return out


@contextmanager
def naming_damaged_stores(root: str | Path) -> Iterator[None]:
    """Turn a failure while reading a zarr store into a one-line
    :class:`cropsm.errors.InputError` naming the undecodable chunk files, when the stores at
    or under ``root`` (a store, or a run directory: :func:`damaged_stores`) have some; any
    other failure passes unchanged, and nothing is scanned unless zarr or a codec raised.

    The message: ``STORE: damaged zarr store: chunk file(s) ARRAY/c/... cannot be decoded
    (CODEC ERROR); delete them and run the command that wrote the store again ...``.
    """
    try:
        yield
    except CropsmError:
        raise
    except Exception as err:
        if not raised_while_reading_zarr(err):
            raise
        damaged = damaged_stores(root)
        if not damaged:
            raise
        store, files = next(iter(damaged.items()))
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        others = f" (and {len(damaged) - 1} more store(s))" if len(damaged) > 1 else ""
        reason = " ".join(str(err).split())[:120]
        raise InputError(
            store,
            None,
            f"damaged zarr store: chunk file(s) {shown} cannot be decoded ({reason}){others}; "
            "delete them and run the command that wrote the store again (a product: `cropsm "
            "predict` recomputes just those blocks; the virtual China: `cropsm twin`)",
        ) from None


__all__ = [
    "absent_chunks",
    "chunk_key",
    "damaged_stores",
    "naming_damaged_stores",
    "raised_while_reading_zarr",
    "undecodable_chunks",
    "write_every_chunk_skeleton",
]
