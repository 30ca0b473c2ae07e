"""Unit strings: normalise the spellings publishers use, convert values, check physical ranges.

Readers call these helpers once, at the edge, so everything downstream can trust the canonical
units of ``docs/contracts.md``.

* :func:`normalize_units` turns ``"m s**-1"``, ``"m s-1"`` and ``"m/s"`` into one spelling
  (``"m s-1"``); ``"K"``/``"kelvin"`` → ``"K"``; ``"degC"``/``"C"``/``"celsius"`` → ``"degC"``;
  ``"(0 - 1)"``/``"1"``/``"fraction"``/``""`` → ``"1"``; ``"%"``/``"percent"`` → ``"%"``.
* :func:`convert` converts values between two spellings of one physical dimension.
* :func:`check_range` and :func:`first_out_of_range` find values outside a physical range.
* :func:`check_temperature_units` catches °C declared as K (and the reverse) from the values.

Water-equivalent spellings are treated as lengths: ``kg m-2`` of water is ``mm`` and
``kg m-2 s-1`` is ``mm s-1``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from cropsm.errors import InputError

SECONDS_PER_DAY = 86400.0

# Whole-string spellings (compared lower-case, blanks collapsed) and their normal form.
_WHOLE_ALIASES = {
    "": "1",
    "-": "1",
    "1": "1",
    "0-1": "1",
    "(0-1)": "1",
    "(0 - 1)": "1",
    "0 - 1": "1",
    "fraction": "1",
    "dimensionless": "1",
    "unitless": "1",
    "none": "1",
    "%": "%",
    "percent": "%",
    "pct": "%",
    "k": "K",
    "kelvin": "K",
    "degk": "K",
    "deg_k": "K",
    "degrees_kelvin": "K",
    "c": "degC",
    "°c": "degC",
    "degc": "degC",
    "deg_c": "degC",
    "deg c": "degC",
    "celsius": "degC",
    "degree_celsius": "degC",
    "degrees_celsius": "degC",
    "degree celsius": "degC",
    "degrees celsius": "degC",
    "m of water equivalent": "m",
    "m water equivalent": "m",
    "mm of water equivalent": "mm",
    "ph": "1",
    "degrees_north": "degrees_north",
    "degree_north": "degrees_north",
    "degrees_n": "degrees_north",
    "degrees_east": "degrees_east",
    "degree_east": "degrees_east",
    "degrees_e": "degrees_east",
}

# Spellings of one base unit inside a compound unit.
_BASE_ALIASES = {
    "day": "d",
    "days": "d",
    "hour": "h",
    "hours": "h",
    "hr": "h",
    "sec": "s",
    "second": "s",
    "seconds": "s",
    "meter": "m",
    "meters": "m",
    "metre": "m",
    "metres": "m",
    "gram": "g",
    "grams": "g",
    "joule": "J",
    "joules": "J",
    "watt": "W",
    "watts": "W",
    "hectare": "ha",
    "hectares": "ha",
}

_SUPERSCRIPTS = str.maketrans({"⁻": "-", "¹": "1", "²": "2", "³": "3", "⁴": "4"})

_TOKEN = re.compile(r"^([A-Za-zµ]+)\^?([+-]?\d+)?$")

# Normal form -> (physical dimension, factor to the dimension's reference unit, offset).
# value_in_reference = value * factor + offset.
_UNITS: dict[str, tuple[str, float, float]] = {
    # dimensionless fractions (volumetric and mass fractions included)
    "1": ("fraction", 1.0, 0.0),
    "%": ("fraction", 0.01, 0.0),
    "g kg-1": ("fraction", 1.0e-3, 0.0),
    "m3 m-3": ("fraction", 1.0, 0.0),
    "cm3 cm-3": ("fraction", 1.0, 0.0),
    "g g-1": ("fraction", 1.0, 0.0),
    "kg kg-1": ("fraction", 1.0, 0.0),
    # lengths (and water-equivalent amounts), reference m
    "m": ("length", 1.0, 0.0),
    "cm": ("length", 1.0e-2, 0.0),
    "mm": ("length", 1.0e-3, 0.0),
    "km": ("length", 1.0e3, 0.0),
    "kg m-2": ("length", 1.0e-3, 0.0),
    # velocities and water-equivalent rates, reference m s-1
    "m s-1": ("velocity", 1.0, 0.0),
    "km h-1": ("velocity", 1.0 / 3.6, 0.0),
    "mm s-1": ("velocity", 1.0e-3, 0.0),
    "mm h-1": ("velocity", 1.0e-3 / 3600.0, 0.0),
    "mm d-1": ("velocity", 1.0e-3 / SECONDS_PER_DAY, 0.0),
    "m d-1": ("velocity", 1.0 / SECONDS_PER_DAY, 0.0),
    "m h-1": ("velocity", 1.0 / 3600.0, 0.0),
    "kg m-2 s-1": ("velocity", 1.0e-3, 0.0),
    "kg m-2 d-1": ("velocity", 1.0e-3 / SECONDS_PER_DAY, 0.0),
    # temperatures, reference K
    "K": ("temperature", 1.0, 0.0),
    "degC": ("temperature", 1.0, 273.15),
    # energy per area, reference J m-2
    "J m-2": ("energy_per_area", 1.0, 0.0),
    "kJ m-2": ("energy_per_area", 1.0e3, 0.0),
    "MJ m-2": ("energy_per_area", 1.0e6, 0.0),
    # power per area, reference W m-2
    "W m-2": ("power_per_area", 1.0, 0.0),
    "J m-2 s-1": ("power_per_area", 1.0, 0.0),
    "J m-2 d-1": ("power_per_area", 1.0 / SECONDS_PER_DAY, 0.0),
    "kJ m-2 d-1": ("power_per_area", 1.0e3 / SECONDS_PER_DAY, 0.0),
    "MJ m-2 d-1": ("power_per_area", 1.0e6 / SECONDS_PER_DAY, 0.0),
    # densities, reference kg m-3
    "kg m-3": ("density", 1.0, 0.0),
    "g cm-3": ("density", 1.0e3, 0.0),
    "cg cm-3": ("density", 10.0, 0.0),
    "kg dm-3": ("density", 1.0e3, 0.0),
    "t m-3": ("density", 1.0e3, 0.0),
    # areas, reference m2
    "m2": ("area", 1.0, 0.0),
    "ha": ("area", 1.0e4, 0.0),
    "km2": ("area", 1.0e6, 0.0),
}


def normalize_units(text: str | None) -> str:
    """The normal spelling of a unit string.

    Parameters
    ----------
    text
        A unit string as a publisher writes it (``None`` is read as dimensionless).

    Returns
    -------
    str
        The normal form: base units separated by one blank, exponents written ``-1`` (no
        ``**`` or ``^``), divisions as negative exponents, e.g. ``"m/s"`` → ``"m s-1"``,
        ``"J m**-2"`` → ``"J m-2"``, ``"celsius"`` → ``"degC"``, ``"(0 - 1)"`` → ``"1"``.
        A string that cannot be parsed is returned stripped but otherwise unchanged.
    """
    if text is None:
        return "1"
    cleaned = " ".join(str(text).translate(_SUPERSCRIPTS).strip().split())
    whole = _WHOLE_ALIASES.get(cleaned.lower())
    if whole is not None:
        return whole
    compact = cleaned.replace("**", "^").replace("·", " ").replace("*", " ")
    parts = compact.split("/")
    tokens: list[str] = []
    for i, part in enumerate(parts):
        words = part.replace(".", " ").split()
        if not words:
            return cleaned
        for word in words:
            match = _TOKEN.match(word)
            if match is None:
                return cleaned
            base = _BASE_ALIASES.get(match.group(1).lower(), match.group(1))
            exponent = int(match.group(2)) if match.group(2) else 1
            if i > 0:
                exponent = -exponent
            tokens.append(base if exponent == 1 else f"{base}{exponent}")
    return " ".join(tokens)


def same_units(a: str | None, b: str | None) -> bool:
    """Whether two unit strings spell the same unit (``"m/s"`` and ``"m s**-1"`` do)."""
    return normalize_units(a) == normalize_units(b)


def units_dimension(units: str | None) -> str | None:
    """The physical dimension of a unit (``"length"``, ``"velocity"``, ...), None if unknown."""
    entry = _UNITS.get(normalize_units(units))
    return None if entry is None else entry[0]


def known_units(dimension: str) -> tuple[str, ...]:
    """The normal spellings this module converts for one physical dimension."""
    return tuple(name for name, entry in _UNITS.items() if entry[0] == dimension)


def conversion(
    from_units: str | None,
    to_units: str,
    *,
    path: str | Path | None = None,
    where: str | None = None,
) -> tuple[float, float]:
    """Factor and offset that convert values: ``to = from * factor + offset``.

    Raises
    ------
    InputError
        When ``from_units`` is unknown or of another physical dimension than ``to_units``.
    """
    source = _UNITS.get(normalize_units(from_units))
    target = _UNITS.get(normalize_units(to_units))
    if target is None:
        raise ValueError(f"unknown target units {to_units!r}")
    if source is None or source[0] != target[0]:
        accepted = ", ".join(repr(u) for u in known_units(target[0]))
        raise InputError(
            path,
            where,
            f"units {from_units!r} cannot be converted to {to_units!r}; expected one of {accepted}",
        )
    factor = source[1] / target[1]
    offset = (source[2] - target[2]) / target[1]
    return factor, offset


def convert(
    values: Any,
    from_units: str | None,
    to_units: str,
    *,
    path: str | Path | None = None,
    where: str | None = None,
) -> Any:
    """Values converted from one unit to another (returns the input object when equal).

    Parameters
    ----------
    values
        Numbers, a NumPy array, a pandas Series or an xarray DataArray (lazily for dask).
    from_units, to_units
        Unit strings in any spelling :func:`normalize_units` understands.
    path, where
        The file and variable, named in the error when the units do not convert.

    Returns
    -------
    The converted values, same type as ``values``. An xarray DataArray gets its ``units``
    attribute set to the normal spelling of ``to_units``.
    """
    factor, offset = conversion(from_units, to_units, path=path, where=where)
    if factor == 1.0 and offset == 0.0:
        out = values
    else:
        out = values * factor + offset if offset else values * factor
    if isinstance(out, xr.DataArray):
        out = out.copy(deep=False)
        out.attrs = {**values.attrs, "units": normalize_units(to_units)}
    return out


def _label(value: Any) -> str:
    """A coordinate label written for a person: dates as dates, floats short."""
    if isinstance(value, np.datetime64 | pd.Timestamp):
        stamp = pd.Timestamp(value)
        return stamp.strftime("%Y-%m-%d") if stamp == stamp.normalize() else str(stamp)
    if isinstance(value, float | np.floating):
        return f"{float(value):g}"
    return str(value)


def first_out_of_range(values: Any, lo: float, hi: float) -> tuple[str, float] | None:
    """The first finite value outside ``[lo, hi]`` and where it is, or None.

    Parameters
    ----------
    values
        NumPy array, pandas Series (located by its index label, named by the index name) or
        xarray DataArray (located by its coordinates; dask arrays reduce chunk by chunk).
    lo, hi
        Inclusive bounds. NaN values are ignored.

    Returns
    -------
    tuple of (str, float) or None
        A location such as ``"time=2001-01-05, lat=30, lon=110"`` or ``"row 17"``, and the
        value.
    """
    if isinstance(values, xr.DataArray):
        bad = (values < lo) | (values > hi)
        if not bool(bad.any()):
            return None
        index = np.unravel_index(int(np.argmax(np.asarray(bad.values).ravel())), bad.shape)
        labels = []
        for dim, i in zip(values.dims, index, strict=True):
            coord = values[dim].values[i] if dim in values.coords else i
            labels.append(f"{dim}={_label(coord)}")
        value = float(values[dict(zip(values.dims, index, strict=True))].values)
        return ", ".join(labels), value
    if isinstance(values, pd.Series):
        numbers = values.to_numpy(dtype=float)
        bad = (numbers < lo) | (numbers > hi)
        if not bad.any():
            return None
        i = int(np.argmax(bad))
        name = values.index.name or "index"
        return f"{name} {_label(values.index[i])}", float(numbers[i])
    numbers = np.asarray(values, dtype=float)
    bad = (numbers < lo) | (numbers > hi)
    if not bad.any():
        return None
    index = np.unravel_index(int(np.argmax(bad.ravel())), bad.shape)
    where = ", ".join(str(i) for i in index)
    return f"index ({where})" if numbers.ndim > 1 else f"index {where}", float(numbers[index])


def check_range(
    values: Any,
    lo: float,
    hi: float,
    path: str | Path | None,
    where: str | None,
    units: str = "",
) -> None:
    """Raise if any finite value lies outside ``[lo, hi]``.

    Parameters
    ----------
    values
        See :func:`first_out_of_range`.
    lo, hi
        Inclusive physical range.
    path, where
        The file and the variable or column, for the error.
    units
        Units of the range, written in the error.

    Raises
    ------
    InputError
        Naming the first offending value and its location, e.g. ``"...: variable 'tp': value
        -3 at time=2001-01-05, lat=30, lon=110 is outside the physical range 0 to 1000 mm d-1"``.
    """
    found = first_out_of_range(values, lo, hi)
    if found is None:
        return
    location, value = found
    unit_text = f" {units}" if units and units != "1" else ""
    raise InputError(
        path,
        where,
        f"value {value:g} at {location} is outside the physical range {lo:g} to {hi:g}{unit_text}",
    )


def _sample(values: Any, max_points: int = 200_000) -> np.ndarray:
    """A small, cheap sample of the values: the leading block of the first axis, strided rest."""
    if isinstance(values, xr.DataArray):
        if values.ndim == 0:
            return np.atleast_1d(np.asarray(values.values, dtype=float))
        first = values.dims[0]
        selection: dict[str, slice] = {first: slice(0, 48)}
        rest = int(np.prod([values.sizes[d] for d in values.dims[1:]], dtype=np.int64) or 1)
        per_step = max(1, max_points // min(48, values.sizes[first]))
        stride = max(1, int(np.ceil((rest / per_step) ** (1.0 / max(1, values.ndim - 1)))))
        for dim in values.dims[1:]:
            selection[dim] = slice(None, None, stride)
        return np.asarray(values.isel(selection).values, dtype=float).ravel()
    numbers = np.asarray(values, dtype=float).ravel()
    step = max(1, numbers.size // max_points)
    return numbers[::step]


def check_temperature_units(
    values: Any,
    declared_units: str | None,
    path: str | Path | None,
    where: str | None,
) -> None:
    """Raise when temperatures declared in K look like °C, or declared in °C look like K.

    A near-surface temperature field in kelvin has a median well above 150; in °C well below.
    The median is taken over a small sample (the first 48 steps of the first dimension, the
    other dimensions strided), so this is cheap on a lazy, large array.

    Raises
    ------
    InputError
        E.g. ``"...: variable 't2m': declared units 'K' but the median value is 14.2, which is
        degC; expected kelvin (about 200 to 330) - fix the 'units' attribute or the values"``.
    """
    units = normalize_units(declared_units)
    if units not in ("K", "degC"):
        return
    sample = _sample(values)
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return
    median = float(np.median(sample))
    if units == "K" and median < 100.0:
        raise InputError(
            path,
            where,
            f"declared units {declared_units!r} but the median value is {median:.4g}, which is "
            "degC; expected kelvin (about 200 to 330) - fix the 'units' attribute or the values",
        )
    if units == "degC" and median > 150.0:
        raise InputError(
            path,
            where,
            f"declared units {declared_units!r} but the median value is {median:.4g}, which is "
            "kelvin; expected degC (about -70 to 60) - fix the 'units' attribute or the values",
        )
