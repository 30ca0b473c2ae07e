"""The ``attribute`` stage of ``cropsm run``: the control experiments (sections 2c(1), 2c(3)).

Station level always (Fig. 5, :func:`cropsm.attribute.station.station_attribution`); national
level (Fig. 6, :func:`cropsm.attribute.national.national_attribution`) when the run has its
national product and the reduced products can be had. Settings: the ``[attribute]`` section
(:class:`cropsm.attribute.config.AttributeConfig`), defaults when the run config has none.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from cropsm.attribute.config import AttributeConfig
from cropsm.attribute.national import TOP_LAYER, national_attribution
from cropsm.attribute.station import station_attribution
from cropsm.predict.config import PredictConfig
from cropsm.predict.stage import predict_run, run_predict_config
from cropsm.progress import progress_callback
from cropsm.sources import lacking
from cropsm.stage_registry import RunContext, stage

PURPOSE = (
    "control experiments: R2 loss per omitted feature group (Fig. 5), national difference maps "
    "(Fig. 6)"
)


def attribute_settings(config) -> AttributeConfig:
    """The run's ``[attribute]`` settings, or the defaults when the config has no such section."""
    return getattr(config, "attribute", None) or AttributeConfig()


def product_maker(run_config, console=None):
    """``make(run_dir, models_dir, out_path)``: the reference product of another model set.

    Uses :func:`cropsm.predict.stage.predict_run` with the run's ``[predict]`` settings (same
    period, chunks and cluster) but computing only the top layer's network and storing only the
    ``reference`` scenario (Fig. 6 maps the top layer; the chain below it would be a product of
    its own for nothing: on the demo virtual China each reduced product took 75 s with every
    layer and the truth scoring). A current product is kept and an interrupted one resumed.
    ``None`` when :mod:`cropsm.predict` has no stage module (the national maps then use only
    reduced products that already exist). The predict module is imported only when a product
    is made, i.e. after the predict stage has run.
    """
    if importlib.util.find_spec("cropsm.predict.stage") is None:
        return None

    def make(run_dir: Path, models_dir: Path, out: Path) -> Path:

        settings = run_predict_config(run_config).model_dump()
        config = PredictConfig(**{**settings, "scenarios": ("reference",)})
        predict_run(
            run_dir, out=out, models_dir=models_dir, config=config, console=console,
            run_config=run_config, layers=TOP_LAYER, score_truth=False,
        )  # fmt: skip
        return out

    return make


@stage("attribute", PURPOSE, ("attribute",))
def attribute_stage(ctx: RunContext) -> dict:

    settings = attribute_settings(ctx.config)

    def log(line: str) -> None:
        ctx.console.print(f"  {line}", highlight=False)

    with progress_callback(ctx.console) as report:
        result = station_attribution(
            ctx.run_dir, ctx.config, settings=settings, progress=report, log=log
        )
    no_grid = lacking(ctx.config, ("grid",))
    if settings.national and no_grid:
        log(f"national maps: skipped, {no_grid}")
    elif settings.national:
        groups = [g for g in settings.national_groups if g not in ctx.config.features.groups_off]
        national = national_attribution(
            ctx.run_dir, groups, make_product=product_maker(ctx.config, ctx.console), log=log
        )
        if "national" in national:
            log(f"national maps {national['national']}")
            result["national"] = national["national"]
        else:
            result.update(
                {
                    f"national_mean_difference_no_{g}": v
                    for g, v in national["national_mean_difference_m3_m-3"].items()
                }
            )
    return result
