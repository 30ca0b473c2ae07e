"""cropsm: daily five-layer cropland soil moisture from sparse stations with neural networks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("cropsm")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

N_LAYERS = 5
"""Five 10-cm soil layers, 0-50 cm (paper section 2b(1))."""

LAYER_TOP_CM = (0, 10, 20, 30, 40)
LAYER_BOTTOM_CM = (10, 20, 30, 40, 50)
LAYER_MID_CM = (5.0, 15.0, 25.0, 35.0, 45.0)


def __getattr__(name: str):
    """``cropsm.read_product``: open a product (zarr or netCDF) as a user reads it (lazy import)."""
    if name == "read_product":
        from cropsm.predict.export import read_product

        return read_product
    raise AttributeError(f"module 'cropsm' has no attribute {name!r}")
