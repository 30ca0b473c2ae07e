"""The known truth of the virtual China as a zarr store, written year by year.

Layout (``truth.zarr``), soil moisture in m3 m-3 packed as int16 with scale 1e-4:

* ``sm`` (pattern, layer, time, cell): every cropland cell under each of the six patterns;
* ``reference_sm`` (layer, time, cell): the crop-area-weighted sum over the region's patterns;
* ``station_sm`` (layer, time, station): the noise-free truth at each station's own soil;
* ``weights`` (pattern, cell), ``cell_lat``/``cell_lon`` (cell), ``station_id`` (station).

The store is built under a temporary name and renamed when complete, so a reader never sees a
half-written truth.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from cropsm import LAYER_BOTTOM_CM, LAYER_TOP_CM, N_LAYERS, catalog
from cropsm.errors import InputError
from cropsm.io.zarr_damage import absent_chunks, write_every_chunk_skeleton

_SCALE = 1.0e-4
_FILL = np.int16(-32768)
_TIME_CHUNK = 366
_CELL_CHUNK = 2048


def _sm_attrs(long_name: str) -> dict:
    return {
        "long_name": long_name,
        "standard_name": "volume_fraction_of_condensed_water_in_soil",
        "units": "m3 m-3",
    }


def _encoding() -> dict:
    return {"dtype": "int16", "scale_factor": _SCALE, "_FillValue": _FILL}


class TruthWriter:
    """Creates the store's skeleton, then fills one time slab at a time."""

    def __init__(
        self,
        path: Path,
        dates: pd.DatetimeIndex,
        cell_lat: np.ndarray,
        cell_lon: np.ndarray,
        station_ids: list[str],
        weights: np.ndarray,
    ):
        self.path = Path(path)
        self.tmp_path = self.path.with_name(self.path.name + ".partial")
        if self.tmp_path.exists():
            shutil.rmtree(self.tmp_path)
        n_time, n_cell, n_station = len(dates), len(cell_lat), len(station_ids)
        n_pat = len(catalog.pattern_ids())
        tc, cc = min(_TIME_CHUNK, n_time), max(1, min(_CELL_CHUNK, n_cell))
        sc = max(1, n_station)

        def zeros(shape, chunks):
            return da.zeros(shape, chunks=chunks, dtype=np.float32)

        template = xr.Dataset(
            {
                "sm": (
                    ("pattern", "layer", "time", "cell"),
                    zeros((n_pat, N_LAYERS, n_time, n_cell), (1, N_LAYERS, tc, cc)),
                    _sm_attrs("true soil moisture under each cropping pattern"),
                ),
                "reference_sm": (
                    ("layer", "time", "cell"),
                    zeros((N_LAYERS, n_time, n_cell), (N_LAYERS, tc, cc)),
                    _sm_attrs("true soil moisture of the crop-area-weighted reference"),
                ),
                "station_sm": (
                    ("layer", "time", "station"),
                    zeros((N_LAYERS, n_time, n_station), (N_LAYERS, tc, sc)),
                    _sm_attrs("noise-free true soil moisture at the stations"),
                ),
            },
            coords={
                "pattern": ("pattern", np.array(catalog.pattern_ids(), dtype=object)),
                "layer": ("layer", np.arange(1, N_LAYERS + 1), {"long_name": "soil layer"}),
                "layer_top": ("layer", np.array(LAYER_TOP_CM, float), {"units": "cm"}),
                "layer_bottom": ("layer", np.array(LAYER_BOTTOM_CM, float), {"units": "cm"}),
                "time": ("time", dates.values),
                "cell_lat": ("cell", cell_lat.astype(np.float64), {"units": "degrees_north"}),
                "cell_lon": ("cell", cell_lon.astype(np.float64), {"units": "degrees_east"}),
                "station_id": ("station", np.array(station_ids, dtype=object)),
            },
            attrs={
                "title": "cropsm virtual China: true soil moisture",
                "Conventions": "CF-1.8",
            },
        )
        template["weights"] = (
            ("pattern", "cell"),
            weights.astype(np.float32),
            {"long_name": "crop-area weight of each pattern (Eq. 1)", "units": "1"},
        )
        encoding = {name: _encoding() for name in ("sm", "reference_sm", "station_sm")}
        write_every_chunk_skeleton(template, self.tmp_path, encoding)
        self.dates = dates

    def write(
        self,
        start: int,
        sm: np.ndarray,
        reference_sm: np.ndarray,
        station_sm: np.ndarray,
    ) -> None:
        """Write days ``start .. start + n`` of the three variables.

        Shapes: ``sm`` (pattern, layer, n, cell), ``reference_sm`` (layer, n, cell),
        ``station_sm`` (layer, n, station).
        """
        n = sm.shape[2]
        days = slice(start, start + n)
        # one pattern at a time: encoding (scale, pack) makes temporary copies of what it gets,
        # and a year of all six patterns is 0.7 GB as float32 on the paper preset
        for p in range(sm.shape[0]):
            slab = xr.Dataset({"sm": (("pattern", "layer", "time", "cell"), sm[p : p + 1])})
            self._write_region(slab, {"pattern": slice(p, p + 1), "time": days})
        slab = xr.Dataset(
            {
                "reference_sm": (("layer", "time", "cell"), reference_sm),
                "station_sm": (("layer", "time", "station"), station_sm),
            }
        )
        self._write_region(slab, {"time": days})

    def _write_region(self, slab: xr.Dataset, region: dict) -> None:
        slab.to_zarr(
            self.tmp_path,
            region=region,
            mode="r+",
            safe_chunks=False,
            consolidated=False,
            write_empty_chunks=True,
        )

    def finish(self) -> Path:
        if self.path.exists():
            shutil.rmtree(self.path)
        self.tmp_path.rename(self.path)
        return self.path


def open_truth(path: str | Path) -> xr.Dataset:
    """Open a truth store lazily (``truth.zarr``, or the folder of a virtual China).

    Every chunk of a truth store holds values (only cropland cells and stations are stored;
    written with every chunk, all-fill ones too), so a chunk file missing is damage, which
    would otherwise read as "no truth" there.

    Raises
    ------
    cropsm.errors.InputError
        When chunk files are missing (:func:`cropsm.io.zarr_damage.absent_chunks`).
    """
    path = Path(path)
    if path.suffix != ".zarr":
        path = path / "truth.zarr"
    absent = absent_chunks(path)
    if absent:
        raise InputError(
            path,
            None,
            f"{len(absent)} chunk file(s) missing (e.g. {absent[0]}); the virtual China is "
            "damaged: generate it again (cropsm twin OUT_DIR --preset ... --seed ...)",
        )
    return xr.open_zarr(path, consolidated=False)
