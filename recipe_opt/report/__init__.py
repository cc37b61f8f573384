"""Reports a release reviewer reads: the HTML report, the release checklist and `summary.md`."""

from recipe_opt.report._checklist import ChecklistItem, release_checklist, write_summary
from recipe_opt.report._html import recipe_hover, write_report

__all__ = ["ChecklistItem", "recipe_hover", "release_checklist", "write_report", "write_summary"]
