"""The national product (paper section 2c(2), DESIGN section 6).

Daily five-layer soil moisture for every cropland cell (cropland fraction >= 0.1) and day,
under each of the six cropping patterns (chained layer networks) and their crop-area-weighted
reference (Eq. 1-2), with the time and pattern quality flags (section 4c), streamed over
space-time blocks with dask into a resumable zarr store, plus a CF netCDF export.

Modules
-------
config         ``PredictConfig`` (the ``[predict]`` section)
grid_features  network inputs of a block's cropland cells (same feature code as the stations)
network        trained networks folded into float32 affine maps; the batched chained pass
flags          time and pattern flags
store          zarr layout, packing, resume records
product        block task and driver (:func:`cropsm.predict.product.predict_product`)
cluster        local dask cluster / existing scheduler
export         CF netCDF copy
skill          product vs the virtual China's truth
synthetic      paper-size synthetic inputs for the benchmark
stage          the ``predict`` stage; commands: ``cropsm predict``, ``cropsm export-netcdf``
"""

from cropsm.predict.config import REFERENCE, PredictConfig, all_scenarios

__all__ = ["REFERENCE", "PredictConfig", "all_scenarios"]
