"""The release checklist, filled with measured values, and `summary.md` for a pull request.

Built from the study's storage alone: the selected trial's proxy values against the study's
gates, and, once `recipe-opt apply` has run, the full-fidelity values and release decision the
lineage recorded for this cycle. The rollback target is the study's base version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from recipe_opt._files import write_atomic
from recipe_opt.evaluate import PRIMARY_METRIC
from recipe_opt.lineage import DecisionInfo, VersionInfo
from recipe_opt.registry import values_of
from recipe_opt.study import GateCheck, Scored, StudyRecord, TrialRecord, check_gates, search_price

__all__ = [
    "ChecklistItem",
    "baseline_comparison",
    "price_line",
    "release_checklist",
    "release_suite_scores",
    "write_summary",
]


@dataclass(frozen=True)
class ChecklistItem:
    check: str
    measured: str
    bound: str
    status: str  # pass | FAIL | info | pending
    # What judged `status`: "full" (the full run `apply` measured: a verdict) or "proxy" (the
    # selected trial's short run: a forecast until `apply`); "" where nothing measured is judged.
    basis: str = ""

    @property
    def forecast(self) -> bool:
        return self.basis == "proxy" and self.status in ("pass", "FAIL")

    @property
    def shown_status(self) -> str:
        """`pass`, or `forecast: pass` for a proxy's judgement."""
        return f"forecast: {self.status}" if self.forecast else self.status


def _status(ok: bool | None) -> str:
    return "info" if ok is None else ("pass" if ok else "FAIL")


def release_suite_scores(version: VersionInfo, suites: dict[str, list[str]]) -> dict[str, float]:
    """`version`'s own scores at its release, regrouped into `suites`.

    The lineage keeps per-task scores of the full-fidelity evaluation `apply` ran when the
    version was made (in its own cycle, whose suites may be named and grouped differently).
    A suite counts only if every one of its tasks was measured then; {} for a version that was
    registered rather than applied.
    """
    d = version.decision
    if d is None or d.cycle is None:
        return {}
    tasks = version.task_scores(PRIMARY_METRIC, cycle=d.cycle)
    return {
        name: sum(tasks[t] for t in ts) / len(ts) for name, ts in suites.items() if ts and all(t in tasks for t in ts)
    }


def _inheritance(
    record: StudyRecord, applied: VersionInfo | None, parent: VersionInfo | None, ref: str, bounds: dict[str, float]
) -> ChecklistItem:
    """The new version against its parent's own release scores, suite by suite (retention suites).

    The regression rows compare with the base as scored in this cycle; this row asks whether
    what the parent was released with survives, so a base that drifted, or a suite that was
    regrouped between cycles, cannot hide a loss.
    """
    check = f"inheritance from {ref} (its own release scores)"
    if parent is None:
        return ChecklistItem(check, f"{ref} is not in the lineage store", "", "info")
    was = release_suite_scores(parent, record.suite_tasks(retention_only=True))
    if not was:
        return ChecklistItem(
            check,
            f"{ref} was not made by `apply` (registered, or made elsewhere): no release scores to "
            "compare (the regression rows compare against it directly)",
            "",
            "info",
        )
    bound = "each suite's regression bound"
    if applied is None:
        listed = ", ".join(f"{k} {v:.3f}" for k, v in was.items())
        return ChecklistItem(check, f"at release: {listed}; compared at full fidelity after `apply`", bound, "pending")
    now = {sc.suite: sc.score for sc in applied.evaluations if sc.cycle == record.name}
    drops = {k: was[k] - now[k] for k in was if k in now}
    if not drops:
        return ChecklistItem(check, f"{applied.ref} has no scores on {', '.join(was)}", bound, "info")
    worst = max(drops, key=lambda k: drops[k])
    bounded = {k: bounds[k] for k in drops if k in bounds}
    ok = None if not bounded else all(drops[k] <= b for k, b in bounded.items())
    return ChecklistItem(
        check,
        f"{len(drops)} suites; worst {worst}: {was[worst]:.3f} at release -> {now[worst]:.3f} in "
        f"{applied.name} (drop {drops[worst]:+.3f})",
        bound,
        _status(ok),
    )


_LABELS = {
    "max_forgetting": "aggregate forgetting",
    "min_gain": "new-task gain",
    "max_cost": "cost of the full update (TFLOP)",
}


def _label(gate: str) -> str:
    kind, _, name = gate.partition(":")
    if kind == "regression":
        return f"regression on {name}"
    if kind == "new_task":
        return f"new task {name} (drop below base)"
    return _LABELS.get(gate, gate)


def _bound(c: GateCheck) -> str:
    if c.gate == "min_gain":
        return "> 0" if c.bound is None else f">= {c.bound:g}"
    return "-" if c.bound is None else f"<= {c.bound:g}"


def full_scored(record: StudyRecord, applied: VersionInfo | None, parent: VersionInfo | None) -> Scored | None:
    """What the gates read from this cycle's full run, as `apply` recorded it (None before apply)."""
    decision = applied.decision if applied else None
    full = (decision.metrics.get("full") or {}) if decision else {}
    if "gain" not in full:
        return None
    after = full.get("tasks_after") or {}
    before = parent.task_scores(PRIMARY_METRIC, cycle=record.name) if parent is not None else {}
    scores = {t: (before[t], float(after[t][PRIMARY_METRIC])) for t in record.new_tasks if t in before and t in after}
    values = values_of(full)
    return Scored(values, dict(full.get("forgetting_per_suite") or {}), scores)


def as_record(study: optuna.Study | StudyRecord) -> StudyRecord:
    return study if isinstance(study, StudyRecord) else StudyRecord.read(study)


def release_checklist(
    study: optuna.Study | StudyRecord, applied: VersionInfo | None = None, parent: VersionInfo | None = None
) -> list[ChecklistItem]:
    """One row per release question, with the proxy value and, once applied, the full-run value.

    The gate rows are the gates' own checks (`check_gates`): on the selected trial's proxy values
    (a forecast) and, once `apply` has run, on the full run, which is what decides. `applied` is
    the version this cycle's `apply` registered, `parent` the base version as the lineage knows
    it (both None without a lineage store).
    """
    record = as_record(study)
    trial = record.selected
    if trial is None:
        return [ChecklistItem("selected recipe", "none: no recipe passes the gates yet", "", "FAIL")]
    proxy = record.checks(trial)
    scored = full_scored(record, applied, parent)
    full = {c.gate: c for c in check_gates(record.gates, scored, suites=record.suites)} if scored else {}
    items = []
    for c in proxy:
        spec = ".3g" if c.gate == "max_cost" else "+.3f"
        measured = f"proxy {format(c.measured, spec)}"
        f = full.get(c.gate)
        measured += f"; full {format(f.measured, spec)}" if f is not None else "; full: not applied yet"
        judged = f if f is not None else c
        unbounded = c.bound is None and c.gate != "min_gain"
        items.append(
            ChecklistItem(
                _label(c.gate),
                measured,
                _bound(c),
                _status(None if unbounded else judged.passed),
                "full" if f is not None else "proxy",
            )
        )
    safety = [s for s in trial.forgetting_per_suite if "safety" in s.lower()]
    items.append(
        ChecklistItem(
            "safety suite",
            f"configured: {', '.join(safety)}" if safety else "none configured (add a retention suite named *safety*)",
            "",
            "info",
        )
    )
    family, base = record.family or "?", record.base_version or "?"
    g = record.gates
    bounds = {
        s: b
        for s in trial.forgetting_per_suite
        if (b := g.max_forgetting_per_suite.get(s, g.max_forgetting)) is not None
    }
    items.append(_inheritance(record, applied, parent, f"{family}/{base}", bounds))
    if applied is None:
        items.append(
            ChecklistItem(
                f"release decision against {family}/{base}", "not applied yet: run `recipe-opt apply`", "", "pending"
            )
        )
    else:
        verdict = "released, now current" if applied.status == "released" and applied.is_current else applied.status
        items.append(
            ChecklistItem(
                f"release decision against {family}/{base}",
                f"{applied.ref} ({verdict}); weights {applied.weights_uri}",
                "every gate at full fidelity",
                "pass" if applied.status == "released" else ("FAIL" if applied.status == "rejected" else "info"),
            )
        )
    items.append(
        ChecklistItem(
            "rollback target",
            f"{family}/{base} (`recipe-opt lineage rollback {family} --to {base}`)",
            "",
            "info",
        )
    )
    return items


# Markdown renderers that allow HTML (CommonMark's default) run a raw tag: `<` that opens one
# (a letter, `/`, `!` or `?` next) and `&` that starts an entity are written as entities.
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")
_ENTITY = re.compile(r"&(?=#|[A-Za-z][A-Za-z0-9]*;)")


def _md(text: str) -> str:
    """Text with user strings in it, as Markdown that shows it as written: no raw HTML, pipes
    escaped (a table cell), newlines flattened. Our own `code` and *emphasis* still render."""
    text = _TAG_OPEN.sub("&lt;", _ENTITY.sub("&amp;", text))
    return text.replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    """`text` as an inline code span (nothing inside is markup), fenced past any backticks in it."""
    fence = "`" * (max((len(m) for m in re.findall(r"`+", text)), default=0) + 1)
    body = text.replace("|", "\\|").replace("\n", " ")
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def price_line(record: StudyRecord, decision: DecisionInfo | None = None) -> str:
    """What the search cost in full updates of its pick; against the measured run once applied."""
    full = (decision.metrics.get("full") or {}) if decision is not None else {}
    measured = full.get("cost")
    return search_price(record, measured_update_tflop=float(measured) if measured is not None else None).line()


def baseline_comparison(decision: DecisionInfo | None) -> tuple[list[str], list[list[str]]] | None:
    """The pick against the study's baselines on every release gate, all at full fidelity (as
    `apply` recorded them): a header and one row per gate, then whether each passes them all."""
    baselines = list((decision.metrics.get("baselines") or []) if decision is not None else [])
    if decision is None or not baselines:
        return None

    def cell(check: dict[str, Any] | None) -> str:
        if check is None:
            return "-"
        spec = ".3g" if check["gate"] == "max_cost" else "+.3f"
        return f"{format(check['measured'], spec)} {'pass' if check['passed'] else 'FAIL'}"

    header = ["gate", "pick", *(str(b.get("label", "?")) for b in baselines)]
    rows = []
    for check in decision.checks:
        gate = check["gate"]
        others = [next((c for c in b.get("gates", []) if c["gate"] == gate), None) for b in baselines]
        rows.append([gate, cell(check), *(cell(o) for o in others)])
    every = ["every gate", "pass" if all(c["passed"] for c in decision.checks) else "FAIL"]
    rows.append(every + ["pass" if b.get("passes_gates") else "FAIL" for b in baselines])
    return header, rows


def _decision_lines(record: StudyRecord, trial: TrialRecord, applied: VersionInfo | None) -> list[str]:
    """What the pick trades off, its nearest alternatives, how sure the values are, what to watch."""
    from recipe_opt.report._decision import alternatives, pick_moves, position_text, trade_text

    lines = [f"**Trades off:** {_md(position_text(record, trial))}.", ""]
    for a in alternatives(record, trial):
        lines.append(
            f"- trial {a.trial.number} gives {_md(trade_text(a, trial))}; differs in {_md('; '.join(a.changes))}"
        )
    spreads = "; ".join(f"{o} {record.spread(trial, o).text()}" for o in record.objectives if o in trial.values)
    lines += ["", f"**How sure (proxy):** {_md(spreads)}.", ""]
    moves = pick_moves(record, applied)
    if moves is not None:
        which, rows = moves
        flagged = [m for m in rows if m.flagged]
        if flagged:
            fell = "; ".join(f"{m.task} ({m.suite}) {m.before:.3f} -> {m.after:.3f}" for m in flagged)
            lines += [f"**Watch:** fell beyond noise in the {which}: {_md(fell)}.", ""]
    return lines


def write_summary(
    study: optuna.Study | StudyRecord,
    out_dir: Path,
    applied: VersionInfo | None = None,
    parent: VersionInfo | None = None,
) -> Path:
    """`summary.md`: the selected recipe and the filled checklist, fit for a release document or PR."""
    import yaml

    record = as_record(study)
    selection = record.selection or {}
    family, base = record.family or "?", record.base_version or "?"
    lines = [f"# Release summary: {_code(record.name)}", ""]
    decision = applied.decision if applied else None
    if applied is not None:
        lines += [f"**Update:** {_code(f'{family}/{base}')} -> {_code(applied.ref)}, **{applied.status}**.", ""]
    else:
        lines += [f"**Update:** from {_code(f'{family}/{base}')}; not applied yet (`recipe-opt apply`).", ""]
    trial = record.selected
    if trial is not None and trial.recipe is not None:
        recipe = trial.recipe
        v = trial.values
        lines += [
            f"**Selected:** trial {trial.number} under {_code(str(selection.get('policy', '')))}: gain "
            f"{v['gain']:+.3f}, forgetting {v['forgetting']:+.3f}, cost {v.get('cost', 0.0):.3g} TFLOP (proxy).",
            "",
        ]
        full = (decision.metrics.get("full") or {}) if decision else {}
        if "gain" in full:
            lines += [
                f"**Full run (`apply`):** gain {full['gain']:+.3f}, forgetting {full.get('forgetting', 0.0):+.3f}, "
                f"cost {full.get('cost', 0.0):.3g} TFLOP.",
                "",
            ]
        lines += [f"**Price:** {_md(price_line(record, decision))}.", ""]
        lines += _decision_lines(record, trial, applied)
        lines += [
            f"**Why:** {_md(str(selection.get('reason', '')))}",
            "",
            f"**Recipe** `{recipe.short_hash}`: {_code(recipe.summary())}",
            "",
            # Collapsed on GitHub and GitLab: the YAML is for the record, the line above for reading.
            "<details><summary>recipe.yaml</summary>",
            "",
            "```yaml",
            yaml.safe_dump(recipe.to_dict(), sort_keys=False).rstrip(),
            "```",
            "",
            "</details>",
            "",
        ]
    if trial is None and record.complete:
        lines += [
            f"**Nothing selected:** none of the {len(record.complete)} complete trials passes every gate. "
            "The closest, and the gates each missed:",
            "",
            "| trial | gates missed | recipe |",
            "|---|---|---|",
        ]
        for t, failed in record.nearest_misses():
            missed = "; ".join(f"{c.gate}: {c.note}" for c in failed)
            lines.append(f"| {t.number} | {_md(missed)} | {_code(t.summary)} |")
        lines += ["", f"**Price:** {_md(price_line(record))}.", ""]
    lines += [
        "## Release checklist",
        "",
        "Each check is judged on the full run once `apply` has run, on the proxy until then: "
        "`forecast: pass` is a proxy's forecast, not a verdict.",
        "",
        "| check | measured | bound | status |",
        "|---|---|---|---|",
    ]
    for item in release_checklist(record, applied, parent):
        status = f"**{item.shown_status}**" if item.status == "FAIL" else item.shown_status
        lines.append(f"| {_md(item.check)} | {_md(item.measured)} | {_md(item.bound)} | {status} |")
    comparison = baseline_comparison(decision)
    if comparison is not None:
        header, rows = comparison
        lines += [
            "",
            "## The pick against the baselines (full fidelity, `apply`)",
            "",
            "| " + " | ".join(_md(h) for h in header) + " |",
            "|" + "---|" * len(header),
        ]
        lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows]
    front = sorted(record.front, key=lambda t: -t.values["gain"])
    if front:
        lines += [
            "",
            f"## Feasible Pareto front ({len(front)} {'trial' if len(front) == 1 else 'trials'}, proxy values)",
            "",
            "| trial | gain | forgetting | cost (TFLOP) | recipe |",
            "|---|---|---|---|---|",
        ]
        for t in front:
            v = t.values
            summary = t.summary
            lines.append(
                f"| {t.number} | {v['gain']:+.3f} | {v['forgetting']:+.3f} | {v.get('cost', 0.0):.3g} | "
                f"{_code(summary)} |"
            )
    return write_atomic(out_dir / "summary.md", "\n".join(lines) + "\n")
