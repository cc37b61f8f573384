"""Skills that regressed: each version made by `apply` against its parent, task by task, and the
HTML both reports show them with (a flag is `TaskMove.flagged`: a fall beyond noise)."""

from __future__ import annotations

import html
from typing import Any

from recipe_opt.lineage import VersionInfo
from recipe_opt.study import TaskMove, task_moves

__all__ = ["SkillMove", "flag_line", "move_cells", "skill_flags_html", "skill_moves"]

# (the version, its parent's name, one task's move between them)
SkillMove = tuple[VersionInfo, str, TaskMove]


def _version_tasks(v: VersionInfo, cycle: str) -> tuple[dict[str, dict[str, Any]], dict[str, list[str]]]:
    """A version's every metric per task in one cycle's evaluation, and that cycle's suites."""
    tasks: dict[str, dict[str, Any]] = {}
    suites: dict[str, list[str]] = {}
    for sc in v.evaluations:
        if sc.cycle == cycle:
            for task, metrics in sc.tasks.items():
                tasks.setdefault(task, dict(metrics))
            suites.setdefault(sc.suite, list(sc.tasks))
    return tasks, suites


def skill_moves(versions: list[VersionInfo]) -> list[SkillMove]:
    """Each version made by `apply` against its parent, task by task, on the cycle that made it
    (both scored on the same items then)."""
    by_name = {v.name: v for v in versions}
    out = []
    for v in sorted(versions, key=lambda v: v.created_at):
        d = v.decision
        parent = by_name.get(v.parent or "")
        if d is None or d.cycle is None or parent is None:
            continue
        after, suites = _version_tasks(v, d.cycle)
        before, _ = _version_tasks(parent, d.cycle)
        out += [(v, parent.name, m) for m in task_moves(before, after, suites)]
    return out


def move_cells(m: TaskMove) -> str:
    """task, suite, before, after, change, standard error, items: one table row's cells."""
    e = html.escape
    return (
        f"<td>{e(m.task)}</td><td>{e(m.suite)}</td><td>{m.before:.3f}</td><td>{m.after:.3f}</td>"
        f"<td>{m.change:+.3f}</td><td>{'' if m.se is None else format(m.se, '.3f')}</td><td>{m.items or ''}</td>"
    )


def flag_line(moves: list[SkillMove]) -> str:
    """The family page's first word on skills: which updates lost a task beyond noise."""
    e = html.escape
    flagged = [(v, m) for v, _, m in moves if m.flagged]
    if not flagged:
        return '<p id="flag-line">No task fell beyond noise in any update.</p>'
    items = "; ".join(f"{e(m.task)} {m.before:.3f} → {m.after:.3f} in {e(v.name)}" for v, m in flagged)
    return (
        f'<p id="flag-line" style="color:#b71c1c"><b>Regressed skills:</b> {items} '
        '(<a href="#skill-flags">details</a>).</p>'
    )


def skill_flags_html(moves: list[SkillMove]) -> str:
    """The flagged moves as a table (or a line saying there are none)."""
    e = html.escape
    flagged = [(v, p, m) for v, p, m in moves if m.flagged]
    if not moves:
        return "<p><i>No version made by <code>apply</code> has task scores to compare with its parent yet.</i></p>"
    if not flagged:
        return (
            f'<p id="skill-flags">No task fell beyond noise in any update ({len(moves)} task scores compared, '
            "each version against its parent on the cycle that made it).</p>"
        )
    rows = "".join(
        f'<tr class="flagged"><td><code>{e(p)}</code> → <code>{e(v.name)}</code> ({e(v.status)})</td>'
        f"{move_cells(m)}</tr>"
        for v, p, m in flagged
    )
    return (
        f'<p style="color:#b71c1c"><b>{len(flagged)} '
        f"{'task' if len(flagged) == 1 else 'tasks'} fell beyond noise</b> in an update (more than one standard "
        "error of the change, from the item count, and at least two items), each against the parent "
        "on the cycle that made the version; the suite it belongs to may still have improved:</p>"
        '<table id="skill-flags"><tr><th>update</th><th>task</th><th>suite</th><th>before</th><th>after</th>'
        f"<th>change</th><th>standard error</th><th>items</th></tr>{rows}</table>"
    )
