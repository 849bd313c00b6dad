"""Report: one self-contained HTML page from the JSON/TSV results of robustq runs."""

from robustq.report.build import build_report
from robustq.report.collect import RunRecord, discover

__all__ = ["RunRecord", "build_report", "discover"]
