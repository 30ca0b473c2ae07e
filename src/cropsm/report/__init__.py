"""The run report: one self-contained HTML page with every figure, table and the provenance."""

from cropsm.report.html import render_report, write_report

__all__ = ["render_report", "write_report"]
