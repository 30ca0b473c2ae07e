"""cropsm.memory: large arrays go back to the system when freed."""

from __future__ import annotations

import pytest

_ARRAYS_SCRIPT = """
import sys
import numpy as np
from cropsm.memory import resident_mb, return_large_arrays_to_os
if sys.argv[1] == "fixed":
    assert return_large_arrays_to_os()
np.ones(30 * 2**17)  # a freed 30 MB mapping raises glibc's own threshold to 30 MB
base = resident_mb()
blocks, keep = [], []
for _ in range(4):
    blocks.append(np.ones(20 * 2**17))  # 20 MB
    keep.append(np.ones(2**17))  # 1 MB after it, still held
del blocks
print(resident_mb() - base)
"""


def test_large_arrays_go_back_to_the_system_when_freed():
    """A year loop's freed 20 MB arrays leave the process with the fixed threshold
    (:func:`cropsm.memory.return_large_arrays_to_os`)."""
    import platform
    import subprocess
    import sys

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt(M_MMAP_THRESHOLD) is glibc's")

    def kept_mb(mode: str) -> float:
        run = subprocess.run(
            [sys.executable, "-c", _ARRAYS_SCRIPT, mode], capture_output=True, text=True, check=True
        )
        return float(run.stdout)

    # Without the call the 4 x 20 MB usually stay resident (80 MB here), but not on every
    # machine (4 MB in one CI run), so only the fixed threshold's promise is asserted.
    assert kept_mb("fixed") < 10  # only the 4 x 1 MB kept
