"""Soil-moisture variations seen by the stations themselves (Liu et al. 2021, section 3a).

Three analyses of the canonical station data (``cropsm.io.stations.StationData``: ``meta``
indexed by ``station_id``; long ``obs`` with ``station_id, date, layer, sm``):

* **Station trends** (Fig. 2): the annual mean soil moisture of every station and layer,

  ``SM_bar(s, k, y) = mean_{d in y} SM(s, k, d)``,

  and its trend over the years as Sen's slope (Theil 1950; Sen 1968; median of the pairwise
  slopes ``(SM_bar_j - SM_bar_i) / (y_j - y_i)``, m3 m-3 yr-1) with the Mann-Kendall test
  (Mann 1945; Kendall 1975) for its significance, both from :mod:`pymannkendall`
  (``original_test``). Only stations with at least :data:`MIN_YEARS_FOR_TREND` annual means get a
  trend. The paper: "most stations show a negative trend and the overall magnitude of the negative
  trends is higher than that of positive trends".
* **Annual means across stations** (Fig. 3): ``SM_bar(k, y) = mean_s SM_bar(s, k, y)`` per layer,
  its Sen's slope per layer and averaged over the layers (paper: -1.5e-3 m3 m-3 yr-1), and the
  Pearson correlation between the top- and bottom-layer series (paper: r = 0.85).
* **Trends by cropping pattern** (Fig. S3): the distribution of the station trends of each
  pattern.

The science is pure functions over DataFrames; :func:`analyze_observations` reads a run's
station files and writes every table next to its figure (``RUN_DIR/analysis/``,
``RUN_DIR/figures/``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pymannkendall
from matplotlib import colormaps
from matplotlib.figure import Figure
from scipy.stats import pearsonr

from cropsm import LAYER_BOTTOM_CM, LAYER_TOP_CM, N_LAYERS, paper
from cropsm.analyze import MIN_YEARS_FOR_TREND  # the one trend rule of a run (re-exported)
from cropsm.catalog import pattern_ids, patterns
from cropsm.io.atomic import atomic_output
from cropsm.io.stations import read_stations
from cropsm.maps import colorbar, fit_extent, new_figure, save_figure, station_map_panel
from cropsm.provenance import write_json
from cropsm.run_layout import RunLayout, load_run_config
from cropsm.sources import grid_input_paths

MIN_OBSERVATIONS_PER_YEAR = 3
"""Fewest observations of a layer in a calendar year for its annual mean (our choice; the paper
does not say). Stations sample every ~10 days in the growing season, so a regular year has
~15-20; a year with one or two readings would weigh a single day like a season."""

SIGNIFICANCE_LEVEL = 0.05
"""Mann-Kendall test level for calling a trend significant."""

PAPER_MEAN_TREND_M3_M3_PER_YEAR = paper.MEAN_TREND_M3_M3_PER_YEAR
"""Average trend of the annual mean SM across the 273 stations (Fig. 3; :mod:`cropsm.paper`)."""

PAPER_TOP_BOTTOM_R = paper.TOP_BOTTOM_R
"""Correlation between the top- and bottom-layer annual mean series (Fig. 3)."""

SM_COLUMN = "sm_annual_mean_m3_m-3"
TREND_COLUMN = "sen_slope_m3_m-3_yr-1"


# --------------------------------------------------------------------------------------------
# Pure analyses
# --------------------------------------------------------------------------------------------


def annual_station_means(
    obs: pd.DataFrame, min_observations_per_year: int = MIN_OBSERVATIONS_PER_YEAR
) -> pd.DataFrame:
    """Annual mean soil moisture of every station, layer and calendar year.

    ``SM_bar(s, k, y) = (1 / n) sum_{d in y} SM(s, k, d)`` over the ``n`` observations of the
    year; years with ``n < min_observations_per_year`` are dropped.

    Parameters
    ----------
    obs
        Canonical observations: ``station_id``, ``date``, ``layer``, ``sm`` (m3 m-3).
    min_observations_per_year
        Fewest observations a year needs.

    Returns
    -------
    pandas.DataFrame
        ``station_id, layer, year, sm_annual_mean_m3_m-3, n_observations``, sorted.
    """
    frame = pd.DataFrame(
        {
            "station_id": obs["station_id"].astype(str).to_numpy(),
            "layer": obs["layer"].astype(int).to_numpy(),
            "year": pd.to_datetime(obs["date"]).dt.year.to_numpy(),
            "sm": obs["sm"].astype(float).to_numpy(),
        }
    )
    grouped = frame.groupby(["station_id", "layer", "year"], sort=True)["sm"]
    out = grouped.agg(["mean", "count"]).reset_index()
    out = out.rename(columns={"mean": SM_COLUMN, "count": "n_observations"})
    out = out[out["n_observations"] >= min_observations_per_year]
    return out.reset_index(drop=True)


def sen_mann_kendall(
    years: Sequence[int] | np.ndarray,
    values: Sequence[float] | np.ndarray,
    alpha: float = SIGNIFICANCE_LEVEL,
) -> dict:
    """Sen's slope per year and the Mann-Kendall test of one annual series (``pymannkendall``).

    The series is placed on a regular axis of consecutive years, missing years as NaN, so Sen's
    slope ``median_{i<j} (x_j - x_i) / (y_j - y_i)`` is per calendar year even with gaps
    (``pymannkendall.original_test`` skips the NaNs in the test and in the pairwise slopes).

    Parameters
    ----------
    years
        Calendar years (unique integers, any order).
    values
        The annual values (e.g. m3 m-3); NaNs are ignored.
    alpha
        Test level for ``significant``.

    Returns
    -------
    dict
        ``slope`` (units of ``values`` per year), ``intercept`` (value at the first year of the
        axis), ``p``, ``tau`` (Kendall's tau), ``z``, ``trend`` (``increasing``,
        ``decreasing`` or ``no trend``), ``significant`` and ``n_years`` (finite values).
        With fewer than 3 finite values everything is NaN / ``no trend``.
    """
    years = np.asarray(years, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if years.shape != values.shape:
        raise ValueError(f"years and values differ in length: {years.size} and {values.size}")
    if np.unique(years).size != years.size:
        raise ValueError("years must be unique")
    ok = np.isfinite(values)
    n = int(ok.sum())
    empty = {"slope": np.nan, "intercept": np.nan, "p": np.nan, "tau": np.nan, "z": np.nan,
             "trend": "no trend", "significant": False, "n_years": n}  # fmt: skip
    if n < 3:
        return empty
    first, last = int(years[ok].min()), int(years[ok].max())
    series = np.full(last - first + 1, np.nan)
    series[years[ok] - first] = values[ok]
    result = pymannkendall.original_test(series, alpha=alpha)
    return {
        "slope": float(result.slope),
        "intercept": float(result.intercept),
        "p": float(result.p),
        "tau": float(result.Tau),
        "z": float(result.z),
        "trend": str(result.trend),
        "significant": bool(result.h),
        "n_years": n,
    }


def station_trends(
    annual: pd.DataFrame,
    meta: pd.DataFrame,
    min_years: int = MIN_YEARS_FOR_TREND,
    alpha: float = SIGNIFICANCE_LEVEL,
) -> pd.DataFrame:
    """Sen's slope and Mann-Kendall p of the annual mean SM of every station and layer (Fig. 2).

    Parameters
    ----------
    annual
        :func:`annual_station_means` output.
    meta
        Canonical station metadata indexed by ``station_id`` (``lat``, ``lon``, ``region``,
        ``pattern``).
    min_years
        Fewest annual means a station-layer needs for a trend.
    alpha
        Mann-Kendall test level.

    Returns
    -------
    pandas.DataFrame
        ``station_id, layer, lat, lon, region, pattern, n_years, first_year, last_year,
        sen_slope_m3_m-3_yr-1, mk_p, mk_tau, mk_trend, significant`` for every station-layer with
        ``n_years >= min_years``.
    """
    columns = ["station_id", "layer", "lat", "lon", "region", "pattern", "n_years",
               "first_year", "last_year", TREND_COLUMN, "mk_p", "mk_tau", "mk_trend",
               "significant"]  # fmt: skip
    rows = []
    for (station, layer), group in annual.groupby(["station_id", "layer"], sort=True):
        if len(group) < min_years:
            continue
        test = sen_mann_kendall(group["year"].to_numpy(), group[SM_COLUMN].to_numpy(), alpha)
        info = meta.loc[station] if station in meta.index else None
        rows.append(
            {
                "station_id": station,
                "layer": int(layer),
                "lat": float(info["lat"]) if info is not None else np.nan,
                "lon": float(info["lon"]) if info is not None else np.nan,
                "region": str(info["region"]) if info is not None else "",
                "pattern": str(info["pattern"]) if info is not None else "",
                "n_years": test["n_years"],
                "first_year": int(group["year"].min()),
                "last_year": int(group["year"].max()),
                TREND_COLUMN: test["slope"],
                "mk_p": test["p"],
                "mk_tau": test["tau"],
                "mk_trend": test["trend"],
                "significant": test["significant"],
            }
        )
    return pd.DataFrame(rows, columns=columns)


def layer_mean_series(annual: pd.DataFrame) -> pd.DataFrame:
    """Annual mean SM across stations per layer (Fig. 3): ``SM_bar(k, y) = mean_s SM_bar(s, k, y)``.

    The mean is over the stations with an annual mean that year (the station set may change from
    year to year; ``n_stations`` says how many).

    Returns
    -------
    pandas.DataFrame
        ``layer, year, sm_annual_mean_m3_m-3, n_stations``.
    """
    grouped = annual.groupby(["layer", "year"], sort=True)[SM_COLUMN]
    out = grouped.agg(["mean", "count"]).reset_index()
    return out.rename(columns={"mean": SM_COLUMN, "count": "n_stations"})


def layer_series_trends(series: pd.DataFrame, alpha: float = SIGNIFICANCE_LEVEL) -> pd.DataFrame:
    """Sen's slope and Mann-Kendall p of each layer's across-station series (Fig. 3).

    Returns
    -------
    pandas.DataFrame
        ``layer, n_years, sen_slope_m3_m-3_yr-1, mk_p, mk_trend, significant``.
    """
    rows = []
    for layer, group in series.groupby("layer", sort=True):
        test = sen_mann_kendall(group["year"].to_numpy(), group[SM_COLUMN].to_numpy(), alpha)
        rows.append(
            {
                "layer": int(layer),
                "n_years": test["n_years"],
                TREND_COLUMN: test["slope"],
                "mk_p": test["p"],
                "mk_trend": test["trend"],
                "significant": test["significant"],
            }
        )
    return pd.DataFrame(
        rows, columns=["layer", "n_years", TREND_COLUMN, "mk_p", "mk_trend", "significant"]
    )


def layer_correlation(series: pd.DataFrame, layer_a: int = 1, layer_b: int = N_LAYERS) -> dict:
    """Pearson correlation of two layers' across-station annual series over their common years.

    ``r = sum (a - a_bar)(b - b_bar) / sqrt(sum (a - a_bar)^2 sum (b - b_bar)^2)``
    (the paper: r = 0.85 between the top and the bottom layer, section 3a).

    Returns
    -------
    dict
        ``layer_a``, ``layer_b``, ``r``, ``p`` (two-sided, :func:`scipy.stats.pearsonr`) and
        ``n_years``; ``r`` and ``p`` are NaN with fewer than 3 common years or a constant series.
    """

    wide = series.pivot(index="year", columns="layer", values=SM_COLUMN)
    out = {"layer_a": int(layer_a), "layer_b": int(layer_b), "r": np.nan, "p": np.nan,
           "n_years": 0}  # fmt: skip
    if layer_a not in wide.columns or layer_b not in wide.columns:
        return out
    both = wide[[layer_a, layer_b]].dropna()
    out["n_years"] = int(len(both))
    a, b = both[layer_a].to_numpy(), both[layer_b].to_numpy()
    if len(both) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return out
    result = pearsonr(a, b)
    out["r"], out["p"] = float(result.statistic), float(result.pvalue)
    return out


def trends_by_pattern(trends: pd.DataFrame) -> pd.DataFrame:
    """Distribution of the station trends per cropping pattern and layer (Fig. S3).

    Returns
    -------
    pandas.DataFrame
        ``layer, pattern, n_stations, median, q25, q75, min, max`` (all m3 m-3 yr-1, suffixed
        ``_m3_m-3_yr-1``) and ``share_negative``, patterns in catalog order.
    """

    suffix = "_m3_m-3_yr-1"
    columns = ["layer", "pattern", "n_stations", *[f"{s}{suffix}" for s in
               ("median", "q25", "q75", "min", "max")], "share_negative"]  # fmt: skip
    rows = []
    order = {p: i for i, p in enumerate(pattern_ids())}
    for (layer, pattern), group in trends.groupby(["layer", "pattern"], sort=True):
        v = group[TREND_COLUMN].dropna().to_numpy()
        if not v.size:
            continue
        rows.append(
            {
                "layer": int(layer),
                "pattern": pattern,
                "n_stations": int(v.size),
                f"median{suffix}": float(np.median(v)),
                f"q25{suffix}": float(np.percentile(v, 25)),
                f"q75{suffix}": float(np.percentile(v, 75)),
                f"min{suffix}": float(v.min()),
                f"max{suffix}": float(v.max()),
                "share_negative": float(np.mean(v < 0)),
            }
        )
    out = pd.DataFrame(rows, columns=columns)
    key = out["pattern"].map(order).fillna(len(order))
    return out.assign(_o=key).sort_values(["layer", "_o"]).drop(columns="_o").reset_index(drop=True)


def observation_summary(
    trends: pd.DataFrame, layer_trends: pd.DataFrame, correlation: dict
) -> dict:
    """Headline numbers of section 3a with the paper's beside ours.

    Per layer: stations with a trend, shares negative / significantly negative / significantly
    positive, median station trend and the mean magnitude of negative and of positive trends;
    the across-station series trend per layer and averaged over the layers; the top-bottom r.
    """
    per_layer = {}
    for layer, group in trends.groupby("layer", sort=True):
        v = group[TREND_COLUMN].to_numpy(dtype=np.float64)
        sig = group["significant"].to_numpy(dtype=bool)
        neg, pos = v[v < 0], v[v > 0]
        per_layer[f"layer{layer}"] = {
            "stations_with_trend": int(v.size),
            "share_negative": float(np.mean(v < 0)) if v.size else None,
            "share_significant_negative": float(np.mean((v < 0) & sig)) if v.size else None,
            "share_significant_positive": float(np.mean((v > 0) & sig)) if v.size else None,
            "median_station_trend_m3_m-3_yr-1": float(np.median(v)) if v.size else None,
            "mean_negative_trend_m3_m-3_yr-1": float(neg.mean()) if neg.size else None,
            "mean_positive_trend_m3_m-3_yr-1": float(pos.mean()) if pos.size else None,
        }
    slopes = layer_trends[TREND_COLUMN].to_numpy(dtype=np.float64)
    mean_trend = float(np.nanmean(slopes)) if np.isfinite(slopes).any() else None
    return {
        "station_trends": per_layer,
        "layer_series_trend_m3_m-3_yr-1": {
            f"layer{int(r.layer)}": (
                None if not np.isfinite(r[TREND_COLUMN]) else float(r[TREND_COLUMN])
            )  # fmt: skip
            for _, r in layer_trends.iterrows()
        },
        "mean_trend_all_layers_m3_m-3_yr-1": mean_trend,
        "paper_mean_trend_m3_m-3_yr-1": PAPER_MEAN_TREND_M3_M3_PER_YEAR,
        "top_bottom_r": None if not np.isfinite(correlation["r"]) else correlation["r"],
        "top_bottom_p": None if not np.isfinite(correlation["p"]) else correlation["p"],
        "top_bottom_years": correlation["n_years"],
        "paper_top_bottom_r": PAPER_TOP_BOTTOM_R,
        "min_years_for_trend": MIN_YEARS_FOR_TREND,
        "min_observations_per_year": MIN_OBSERVATIONS_PER_YEAR,
        "significance_level": SIGNIFICANCE_LEVEL,
    }


def paper_comparison(summary: dict) -> pd.DataFrame:
    """Our section-3a headline numbers beside the paper's: ``quantity, ours, paper, units``."""
    return pd.DataFrame(
        [
            {
                "quantity": "mean trend of the across-station annual mean SM, all layers",
                "ours": summary["mean_trend_all_layers_m3_m-3_yr-1"],
                "paper": PAPER_MEAN_TREND_M3_M3_PER_YEAR,
                "units": "m3 m-3 yr-1",
            },
            {
                "quantity": "correlation of the top and bottom layer annual mean series",
                "ours": summary["top_bottom_r"],
                "paper": PAPER_TOP_BOTTOM_R,
                "units": "1",
            },
        ],
        columns=["quantity", "ours", "paper", "units"],
    )


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _depth(layer: int) -> str:
    return f"{LAYER_TOP_CM[layer - 1]}-{LAYER_BOTTOM_CM[layer - 1]} cm"


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=11,
            bbox={"facecolor": "white", "edgecolor": "0.6"}, zorder=10)  # fmt: skip


def station_trend_map_figure(trends: pd.DataFrame, layer: int = 1) -> Figure:
    """Fig. 2: map of the station trends of one layer; negative trends above, positive below.

    Marker colour and size show the magnitude ``|Sen's slope|``; filled markers are significant
    (Mann-Kendall p < :data:`SIGNIFICANCE_LEVEL`), rings are not. China's outline and provinces
    from :mod:`cropsm.maps`.
    """

    rows = trends[trends["layer"] == layer]
    slope = rows[TREND_COLUMN].to_numpy(dtype=np.float64)
    magnitude = np.abs(slope[np.isfinite(slope)])
    vmax = float(np.percentile(magnitude, 95)) if magnitude.size else 1e-3
    vmax = vmax if vmax > 0 else 1e-3
    extent = fit_extent(rows["lon"], rows["lat"], pad_deg=3.0)
    fig = new_figure((7.5, 10.0))
    axes = fig.subplots(2, 1)
    panels = (
        (axes[0], slope < 0, "Reds", "negative"),
        (axes[1], slope > 0, "Blues", "positive"),
    )
    for ax, mask, cmap, sign in panels:
        part = rows[mask]
        size = 12.0 + 100.0 * np.clip(np.abs(part[TREND_COLUMN].to_numpy()) / vmax, 0.0, 1.0)
        mappable = station_map_panel(
            ax, part["lon"], part["lat"], np.abs(part[TREND_COLUMN]), cmap=cmap, vmin=0.0,
            vmax=vmax, sizes=size, filled=part["significant"], extent=extent,
            title=f"{sign} trends: {len(part)} of {len(rows)} stations "
            f"({int(part['significant'].sum())} significant, filled)",
        )  # fmt: skip
        colorbar(fig, mappable, ax, "m3 m-3 yr-1", f"|trend| ({sign})")
        if not len(part):
            _no_data(ax, f"no station with a {sign} trend")
    if not len(rows):
        _no_data(axes[0], f"no station with >= {MIN_YEARS_FOR_TREND} years of annual means")
    fig.suptitle(f"Trend of annual mean SM at the stations, {_depth(layer)} (Sen's slope)")
    return fig


def annual_mean_figure(
    series: pd.DataFrame, layer_trends: pd.DataFrame, correlation: dict
) -> Figure:
    """Fig. 3: annual mean SM across stations for every layer, with each layer's Sen's slope and
    the top-bottom correlation in the title."""

    fig = new_figure((8.0, 4.8))
    ax = fig.add_subplot(1, 1, 1)
    colors = colormaps["viridis"](np.linspace(0.0, 0.9, N_LAYERS))
    slopes = layer_trends.set_index("layer")[TREND_COLUMN] if len(layer_trends) else {}
    for layer, group in series.groupby("layer", sort=True):
        slope = float(slopes.get(layer, np.nan)) if len(layer_trends) else np.nan
        n_years = int(group[SM_COLUMN].notna().sum())
        label = (
            f"{_depth(int(layer))}: {slope * 1e3:+.2f}e-3 yr$^{{-1}}$"
            if np.isfinite(slope)
            else f"{_depth(int(layer))}: no trend ({n_years} < {MIN_YEARS_FOR_TREND} years)"
        )
        ax.plot(group["year"], group[SM_COLUMN], marker="o", ms=3, color=colors[int(layer) - 1],
                label=label)  # fmt: skip
    if series.empty:
        _no_data(ax, "no annual means")
    ax.set_xlabel("year")
    ax.set_ylabel("annual mean SM across stations (m$^3$ m$^{-3}$)")
    r = correlation.get("r", np.nan)
    r_text = f"{r:.2f}" if np.isfinite(r) else "n/a"
    ax.set_title(
        f"Annual mean SM across stations; r(top, bottom) = {r_text} (paper {PAPER_TOP_BOTTOM_R})"
    )
    if not series.empty:
        ax.legend(frameon=False, fontsize="small", title="layer: Sen's slope (m$^3$ m$^{-3}$)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def trends_by_pattern_figure(trends: pd.DataFrame, layer: int = 1) -> Figure:
    """Fig. S3: box plot of the station trends per cropping pattern for one layer."""

    rows = trends[trends["layer"] == layer]
    fig = new_figure((8.0, 4.8))
    ax = fig.add_subplot(1, 1, 1)
    data, labels = [], []
    for p in patterns():
        v = rows.loc[rows["pattern"] == p.id, TREND_COLUMN].dropna().to_numpy()
        if v.size:
            data.append(v * 1e3)
            labels.append(
                "\n".join(textwrap.wrap(p.name, 16, break_long_words=False)) + f"\n(n = {v.size})"
            )
    if data:
        ax.boxplot(data, tick_labels=labels, showfliers=True)
        ax.tick_params(axis="x", labelsize="small")
    else:
        _no_data(ax, f"no station with >= {MIN_YEARS_FOR_TREND} years of annual means")
    ax.axhline(0.0, color="black", lw=0.8, ls="--")
    ax.set_ylabel("trend of annual mean SM (10$^{-3}$ m$^3$ m$^{-3}$ yr$^{-1}$)")
    ax.set_title(f"Station trends by cropping pattern, {_depth(layer)}")
    return fig


# --------------------------------------------------------------------------------------------
# A run directory (I/O)
# --------------------------------------------------------------------------------------------


def read_run_stations(run_dir: str | Path):
    """The canonical station data of a run, read through the run's input paths."""

    config = load_run_config(run_dir)
    paths = grid_input_paths(config, RunLayout(Path(run_dir)))
    return read_stations(paths["stations"], paths["observations"])


def analyze_observations(run_dir: str | Path, top_layer: int = 1) -> dict:
    """The station analyses of section 3a for a run: numbers and figures.

    Writes into ``RUN_DIR/analysis/``: ``observations_annual_station_means.csv``,
    ``observations_station_trends.csv`` (Fig. 2), ``observations_annual_means.csv`` and
    ``observations_layer_trends.csv`` (Fig. 3), ``observations_trends_by_pattern.csv`` (Fig. S3),
    ``observations_paper_comparison.csv`` and ``observations_summary.json`` (headline numbers
    with the paper's beside them); into
    ``RUN_DIR/figures/``: ``fig2_station_trends.png``, ``fig3_annual_mean_sm.png``,
    ``figS3_trends_by_pattern.png``.

    Parameters
    ----------
    run_dir
        A run directory (its resolved config names the station files).
    top_layer
        The layer mapped in Figs. 2 and S3.

    Returns
    -------
    dict
        :func:`observation_summary` plus ``files`` (paths relative to ``run_dir``).
    """

    run_dir = Path(run_dir)
    stations = read_run_stations(run_dir)
    annual = annual_station_means(stations.obs)
    trends = station_trends(annual, stations.meta)
    series = layer_mean_series(annual)
    layer_trends = layer_series_trends(series)
    correlation = layer_correlation(series, 1, N_LAYERS)
    by_pattern = trends_by_pattern(trends)
    summary = observation_summary(trends, layer_trends, correlation)

    analysis_dir, figure_dir = RunLayout(run_dir).analysis_dir, RunLayout(run_dir).figures_dir
    analysis_dir.mkdir(parents=True, exist_ok=True)
    tables = {
        "observations_annual_station_means.csv": annual,
        "observations_station_trends.csv": trends,
        "observations_annual_means.csv": series,
        "observations_layer_trends.csv": layer_trends,
        "observations_trends_by_pattern.csv": by_pattern,
        "observations_paper_comparison.csv": paper_comparison(summary),
    }
    files = []
    for name, frame in tables.items():
        with atomic_output(analysis_dir / name) as tmp:
            frame.to_csv(tmp, index=False)
        files.append(analysis_dir / name)
    write_json(analysis_dir / "observations_summary.json", summary)
    files.append(analysis_dir / "observations_summary.json")
    figures = {"fig3_annual_mean_sm.png": annual_mean_figure(series, layer_trends, correlation)}
    absent = {}
    if len(trends):
        figures["fig2_station_trends.png"] = station_trend_map_figure(trends, top_layer)
        figures["figS3_trends_by_pattern.png"] = trends_by_pattern_figure(trends, top_layer)
    else:  # no empty maps: the report says in one line why they are absent
        years = int(annual["year"].nunique()) if len(annual) else 0
        reason = (
            f"no station has >= {MIN_YEARS_FOR_TREND} years of annual means "
            f"(this run's observations span {years} year{'s' if years != 1 else ''})"
        )
        for name in ("fig2_station_trends.png", "figS3_trends_by_pattern.png"):
            (figure_dir / name).unlink(missing_ok=True)
            absent[name.removesuffix(".png")] = reason
    for name, fig in figures.items():
        files.append(save_figure(fig, figure_dir / name))
    if absent:
        summary["figures_absent"] = absent
        write_json(analysis_dir / "observations_summary.json", summary)
    return {**summary, "files": [str(p.relative_to(run_dir)) for p in files]}
