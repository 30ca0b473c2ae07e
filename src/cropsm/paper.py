"""The paper's reference numbers that tables, figures and the report put beside a run's.

One place for every number of Liu et al. (2021) that cropsm quotes, with where it comes from.
Values are read off the paper's text and tables; where the paper gives no number (e.g. the R2
loss of SSR, wind and cloud in Fig. 5) the entry is ``None`` with a note.
"""

from __future__ import annotations

from dataclasses import dataclass

CITATION_SHORT = "Liu et al. (2021)"
"""The paper in running text (docstrings, captions, attributes)."""

CITATION = (
    "Liu et al. (2021), Journal of Hydrometeorology, 22, February 2021: a neural-network daily "
    "multilayer (0-50 cm) cropland soil-moisture dataset for China, 1981-2013, under cropping "
    "patterns"
)
"""The one citation of the paper: README, report, product attributes and code all use this.

It names the paper by authors, journal, volume and issue date, and describes its content; the
text cropsm was built from (``shared/seed``) has no title page, so no title is quoted."""

PAPER = CITATION
"""Alias kept for callers of the earlier name."""

N_STATIONS = 273
"""Agrometeorological stations with soil-moisture observations (section 2b(1))."""

PERIOD_YEARS = (1981, 2013)
"""Study period (section 2b)."""

GRID_RESOLUTION_DEG = 0.25
"""Resolution of the national product and of ERA-Interim (section 2b(2))."""


@dataclass(frozen=True)
class Table2Row:
    """One soil layer of the paper's Table 2: selected hyperparameters and R2."""

    layer: int
    hidden_layers: int
    units: int
    batch_size: int
    learning_rate: float
    r2_train: float
    r2_test: float


TABLE2: tuple[Table2Row, ...] = (
    Table2Row(1, 3, 32, 128, 0.0005, 0.65, 0.64),
    Table2Row(2, 2, 16, 128, 0.0005, 0.67, 0.66),
    Table2Row(3, 3, 16, 128, 0.001, 0.68, 0.67),
    Table2Row(4, 3, 16, 128, 0.0005, 0.69, 0.69),
    Table2Row(5, 2, 16, 128, 0.0005, 0.70, 0.69),
)
"""Table 2: hyperparameters per layer and R2 between predictions and observations."""

FIG5_R2_LOSS_LAYER1: dict[str, float | None] = {
    "precipitation": 0.15,
    "soil": 0.15,
    "elevation": 0.09,
    "temperature": 0.07,
    "vpd": 0.07,
    "pattern": 0.07,
    "ssr": None,
    "wind": None,
    "cloud": None,
}
"""Fig. 5 / section 3c: R2 loss (full minus reduced model, training, 0-10 cm) per omitted group.

"The R2 difference between the full and the two reduced models omitting P and soil properties are
both 0.15 ... elevation ... 0.09. Excluding air temperature T or VPD or cropping patterns ...
results in an R2 loss ~0.07 for all ... SSR, cloud cover, and wind speed tend to have lower
impacts" (no number)."""

FIG5_NOTES: dict[str, str] = {
    "precipitation": "0.15",
    "soil": "0.15",
    "elevation": "0.09",
    "temperature": "~0.07",
    "vpd": "~0.07",
    "pattern": "~0.07",
    "ssr": "lower (< 0.07, no number)",
    "wind": "lower (< 0.07, no number)",
    "cloud": "lower (< 0.07, no number)",
}
"""How the paper states each Fig. 5 loss, for display."""

MEAN_TREND_M3_M3_PER_YEAR = -1.5e-3
"""Average trend of the annual mean SM across the stations, all five layers (section 3a, Fig. 3),
m3 m-3 yr-1."""

TOP_BOTTOM_R = 0.85
"""Correlation of the top (0-10 cm) and bottom (40-50 cm) annual mean series across stations
(section 3a, Fig. 3)."""

R2_TRAIN_RANGE = (0.65, 0.70)
R2_TEST_RANGE = (0.64, 0.69)
"""Ranges of Table 2's training and testing R2 over the five layers (section 3b)."""
