"""Reports a release reviewer reads: the HTML report, the release checklist, `summary.md`, and
the cross-cycle report of a model family."""

from recipe_opt.report._checklist import (
    ChecklistItem,
    baseline_comparison,
    price_line,
    release_checklist,
    release_suite_scores,
    write_summary,
)
from recipe_opt.report._family import family_report_dir, write_family_report
from recipe_opt.report._html import recipe_hover, write_report
from recipe_opt.report._reports import write_reports

__all__ = [
    "ChecklistItem",
    "baseline_comparison",
    "family_report_dir",
    "price_line",
    "recipe_hover",
    "release_checklist",
    "release_suite_scores",
    "write_family_report",
    "write_report",
    "write_reports",
    "write_summary",
]
