"""Errors a user sees: one line that names the file, the row or variable, and what was expected."""

from __future__ import annotations

import errno as codes
from pathlib import Path


class CropsmError(Exception):
    """Base class of every error the command line reports as one line (no traceback)."""


class InputError(CropsmError):
    """Bad input data.

    Parameters
    ----------
    path
        The file (or folder) that holds the bad input.
    where
        The row, column or variable, e.g. ``"row 17, column 'sm'"`` or ``"variable 't2m'"``.
    problem
        What is wrong and what was expected.
    """

    def __init__(self, path: str | Path | None, where: str | None, problem: str):
        self.path = None if path is None else Path(path)
        self.where = where
        self.problem = problem
        parts = [str(self.path)] if self.path is not None else []
        if where:
            parts.append(where)
        parts.append(problem)
        super().__init__(": ".join(parts))

    def __reduce__(self):  # rebuilt from its parts when sent back from a dask worker
        return (type(self), (self.path, self.where, self.problem))


class ConfigError(CropsmError):
    """A run configuration that does not validate (unknown key, wrong type, bad value)."""


class UsageError(CropsmError, ValueError):
    """A request that cannot be done as asked: a bad option, an impossible period, a missing
    run directory. (Also a :class:`ValueError`, for callers that catch those.)"""


class OutputError(CropsmError):
    """An output that cannot be written: no permission, a read-only or full file system, a path
    that is not a folder.

    Parameters
    ----------
    path
        The file or folder that cannot be written.
    problem
        What failed, e.g. ``"Permission denied"``.
    hint
        What to do (default: from ``errno``).
    errno
        The operating system's error number, when there is one.
    """

    def __init__(
        self, path: str | Path, problem: str, hint: str | None = None, errno: int | None = None
    ):
        self.path = Path(path)
        self.errno = errno
        self.problem = problem
        self.hint = hint or output_hint(errno)
        super().__init__(f"{self.path}: cannot write ({problem}); {self.hint}")

    def __reduce__(self):  # rebuilt from its parts when sent back from a dask worker
        return (type(self), (self.path, self.problem, self.hint, self.errno))

    @classmethod
    def from_os_error(cls, path: str | Path, err: OSError) -> OutputError:
        """The :class:`OutputError` of an ``OSError`` met while writing ``path``."""
        return cls(path, err.strerror or str(err), errno=err.errno)


def output_hint(errno: int | None) -> str:
    """What a user can do about an output error with this ``errno``."""

    if errno in (codes.ENOSPC, codes.EDQUOT):
        return (
            "free space on its file system or choose another output; running again resumes "
            "what was finished"
        )
    if errno == codes.EROFS:
        return "the file system is read-only; choose an output on a writable one"
    if errno in (codes.EACCES, codes.EPERM):
        return "make the folder writable for you or choose another output"
    if errno in (codes.ENOTDIR, codes.EEXIST):
        return "a file stands where a folder is needed; choose another output"
    return "choose another output"


class ClusterError(CropsmError):
    """The dask cluster cannot finish the work: no worker left, or a task kept killing its
    workers. What was finished is kept (a product resumes)."""
