"""Analyses of a run: observations, the national product, the satellite comparison, scenarios.

The rules every analysis, figure and the report share live here, so that a number shown as a
result follows one rule wherever it appears.
"""

MIN_YEARS_FOR_TREND = 5
"""Fewest annual means a trend is computed from: a station's (Fig. 2), the stations' mean series
(Fig. 3), a product cell's or the national series (Fig. 7b), the satellite's (Fig. 7d). Fewer
years give no trend (NaN), not a trend to be read as a result."""

MIN_REGION_CELLS = 10
"""Fewest cropland cells a region needs to be averaged and plotted as a region (Figs. 8, 10,
the error by region); the cells of a smaller region still count in all of China."""
