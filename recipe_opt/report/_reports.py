"""Both reports of a study at once: its own (with summary.md) and its family's, beside it."""

from __future__ import annotations

from pathlib import Path

import optuna

from recipe_opt.lineage import LineageStore
from recipe_opt.report._family import family_report_dir, write_family_report
from recipe_opt.report._html import write_report

__all__ = ["write_reports"]


def write_reports(study: optuna.Study, out_dir: Path, storage_url: str, family: str) -> tuple[Path, Path | None]:
    """`out_dir/index.html` (+ summary.md) and, once the family is in the lineage store, the
    family's cross-cycle report in `<out_dir's parent>/<family>-lineage/`."""
    path = write_report(study, out_dir, storage_url=storage_url)
    with LineageStore(storage_url) as store:
        if family not in store.families():
            return path, None
        fam = write_family_report(store, storage_url, family, family_report_dir(out_dir.parent, family))
    return path, fam
