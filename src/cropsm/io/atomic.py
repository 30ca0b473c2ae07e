"""Writing outputs safely: whole files or nothing, readable like any tool's output.

:func:`atomic_output` is the one way cropsm writes a file: the writer fills a temporary file
beside the target, which is renamed onto the target only when the writer succeeded and removed
otherwise, so a reader never sees a half-written file (an interrupted or failing run leaves the
previous file, or none). The finished file gets the permissions of a plain new file
(``0666`` less the umask, i.e. ``0644`` usually), not the ``0600`` of :func:`tempfile.mkstemp`.
An ``OSError`` while writing (permission, read-only or full file system) becomes an
:class:`cropsm.errors.OutputError` that names the target, not the temporary file.

:func:`check_writable` answers, before any heavy work, whether an output folder can be
created and written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cropsm.errors import OutputError, output_hint


def _umask() -> int:
    """The process umask (read from ``/proc`` where possible: setting it is not thread safe)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def new_file_mode() -> int:
    """Permissions of a plain new file: ``0o666`` less the umask (``0o644`` with umask 022)."""
    return 0o666 & ~_umask()


def new_folder_mode() -> int:
    """Permissions of a plain new folder: ``0o777`` less the umask."""
    return 0o777 & ~_umask()


def make_folder(path: str | Path) -> Path:
    """``mkdir -p path``; an ``OSError`` becomes an :class:`OutputError` naming ``path``."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as err:
        raise OutputError(path, "a file of that name exists", errno=err.errno) from None
    except OSError as err:
        raise OutputError.from_os_error(path, err) from None
    return path


@contextmanager
def atomic_output(path: str | Path, *, folder: bool = False) -> Iterator[Path]:
    """Write ``path`` whole or not at all.

    Yields a temporary path beside ``path`` (same folder, so the final rename is atomic; same
    extension, for writers that choose the format by it); the
    caller writes the file there (``ds.to_netcdf(tmp)``, ``frame.to_csv(tmp)``,
    ``fig.savefig(tmp)``). On success the temporary file gets :func:`new_file_mode` and
    replaces ``path``; on any exception it is removed and the exception propagates (an
    ``OSError`` as :class:`OutputError` naming ``path``).

    Parameters
    ----------
    path
        The file to write; its folder is created when missing.
    folder
        Yield a temporary path that does not exist yet, for writers that create a folder
        (a zarr store); an existing ``path`` folder is replaced on success.
    """
    path = Path(path)
    make_folder(path.parent)
    try:
        fd, name = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=f".tmp{path.suffix}"
        )
        os.close(fd)
    except OSError as err:
        raise OutputError.from_os_error(path, err) from None
    tmp = Path(name)
    if folder:
        tmp.unlink()
    try:
        try:
            yield tmp
            if folder:
                if path.is_dir():
                    shutil.rmtree(path)
            else:
                os.chmod(tmp, new_file_mode())
            os.replace(tmp, path)
        except OSError as err:
            if isinstance(err, FileNotFoundError) and err.filename not in (str(tmp), None):
                raise  # an input the writer reads is missing: not an output problem
            raise OutputError.from_os_error(path, err) from None
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write a UTF-8 text file with :func:`atomic_output`."""
    path = Path(path)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def check_writable(path: str | Path, what: str = "output", *, beside: bool = False) -> Path:
    """Raise :class:`OutputError` now when ``path`` (a folder to create or write into) cannot
    be written, so the failure comes before inputs are read or a cluster starts.

    Walks up to the nearest existing folder and creates (then removes) a probe file there; a
    file standing where a folder is needed, a read-only or full file system and missing
    permissions all fail here. Nothing is left behind.

    Parameters
    ----------
    path
        The output folder (it need not exist yet).
    what
        What the folder is for, in the error's hint (``"--out"``).
    beside
        ``path`` is written beside itself (a store built under a temporary name in the same
        folder): check its folder, but name ``path`` in the error.
    """
    path = Path(path).absolute()
    existing = path.parent if beside else path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(
            path,
            f"{existing} is a file, not a folder",
            hint=f"choose another {what}",
        )
    step, fd, name = "created", None, None
    try:
        fd, name = tempfile.mkstemp(dir=existing, prefix=".cropsm-write-check.", suffix=".tmp")
        step = "written"
        os.write(fd, b"x")
    except OSError as err:
        raise OutputError(
            path,
            f"no file can be {step} in {existing}: {err.strerror or err}",
            hint=_hint_for(what, err.errno),
            errno=err.errno,
        ) from None
    finally:
        if fd is not None:
            os.close(fd)
            Path(name).unlink(missing_ok=True)
    return path


def _hint_for(what: str, errno: int | None) -> str:

    return output_hint(errno).replace("another output", f"another {what}")
