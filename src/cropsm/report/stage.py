"""The ``report`` stage: ``RUN_DIR/report/index.html``, the last step of ``cropsm run``."""

from __future__ import annotations

from cropsm.report.html import report_summary, write_report
from cropsm.stage_registry import RunContext, stage

PURPOSE = "one self-contained HTML page: inputs, tables, figures, the paper's numbers, provenance"


@stage("report", PURPOSE, ("report",))
def report_stage(ctx: RunContext) -> dict:
    path = write_report(ctx.run_dir)
    ctx.console.print(f"  report written to {path}", highlight=False)
    return report_summary(path)
