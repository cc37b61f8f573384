"""Reports reviewers read before release: offline HTML with plotly figures."""

from recipe_opt.report._html import recipe_hover, write_report

__all__ = ["recipe_hover", "write_report"]
