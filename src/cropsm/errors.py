"""Errors a user sees: one line that names the file, the row or variable, and what was expected."""

from __future__ import annotations

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


class ConfigError(CropsmError):
    """A run configuration that does not validate (unknown key, wrong type, bad value)."""
