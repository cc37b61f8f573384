"""The top of the study report: the verdict, the pick in words, what it trades off, its nearest
alternatives on the front, how sure the numbers are, and what to watch.

Everything a reviewer needs to decide, on the first screen; the evidence follows below it.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from recipe_opt.lineage import VersionInfo
from recipe_opt.recipe import Recipe
from recipe_opt.registry import OBJECTIVES
from recipe_opt.report._text import inline, recipe_words
from recipe_opt.study import Spread, StudyRecord, TaskMove, TrialRecord, within_noise

__all__ = [
    "Alternative",
    "alternatives",
    "decision_html",
    "full_tasks_after",
    "pick_moves",
    "position_text",
    "recipe_changes",
    "trade_text",
]


@dataclass(frozen=True)
class Alternative:
    """A front member near the pick: its values minus the pick's, and whether each difference is
    within noise (None: unknown)."""

    trial: TrialRecord
    deltas: dict[str, float]
    within: dict[str, bool | None]
    changes: list[str]


def recipe_changes(pick: Recipe, other: Recipe) -> list[str]:
    """What `other` sets differently from `pick`, as `field pick -> other`."""
    pairs = [
        ("mixture", _mix(pick), _mix(other)),
        ("replay", f"{pick.replay.ratio:.2f}", f"{other.replay.ratio:.2f}"),
        ("peak LR", f"{pick.schedule.peak_lr:.2e}", f"{other.schedule.peak_lr:.2e}"),
        ("schedule", pick.schedule.shape, other.schedule.shape),
        ("warmup", f"{pick.schedule.warmup_fraction:.2f}", f"{other.schedule.warmup_fraction:.2f}"),
        ("rank", str(pick.adapter.rank), str(other.adapter.rank)),
        ("alpha", f"{pick.adapter.alpha:g}", f"{other.adapter.alpha:g}"),
        ("targets", ",".join(pick.adapter.target_modules), ",".join(other.adapter.target_modules)),
        ("steps", str(pick.budget.steps), str(other.budget.steps)),
        ("batch", str(pick.budget.batch_size), str(other.budget.batch_size)),
    ]
    return [f"{name} {a} -> {b}" for name, a, b in pairs if a != b]


def _mix(r: Recipe) -> str:
    return " ".join(f"{k}={v:.2f}" for k, v in r.mixture.weights)


def alternatives(record: StudyRecord, pick: TrialRecord, k: int = 3) -> list[Alternative]:
    """The `k` front members nearest the pick in objective space (each objective scaled to the
    front's range), nearest first."""
    front = [t for t in record.front if t.number != pick.number and t.recipe is not None]
    objectives = [o for o in record.objectives if o in pick.values]
    span = {
        o: (max(t.values[o] for t in [*front, pick]) - min(t.values[o] for t in [*front, pick])) or 1.0
        for o in objectives
    }

    def distance(t: TrialRecord) -> float:
        return math.sqrt(sum(((t.values[o] - pick.values[o]) / span[o]) ** 2 for o in objectives))

    out = []
    for t in sorted(front, key=lambda t: (distance(t), t.number))[:k]:
        deltas = {o: t.values[o] - pick.values[o] for o in objectives}
        within = {o: within_noise(d, record.spread(t, o), record.spread(pick, o)) for o, d in deltas.items()}
        assert t.recipe is not None and pick.recipe is not None
        out.append(Alternative(t, deltas, within, recipe_changes(pick.recipe, t.recipe)))
    return out


def trade_text(alt: Alternative, pick: TrialRecord) -> str:
    """`gives up 0.095 gain (within noise) for 18% less compute` in words."""
    worse: list[str] = []
    better: list[str] = []
    for o, d in alt.deltas.items():
        spec = OBJECTIVES[o]
        if d == 0:
            continue
        if o == "cost":
            share = abs(d) / pick.values[o] if pick.values[o] else 0.0
            words = f"{share:.0%} {'less' if d < 0 else 'more'} compute"
        else:
            words = f"{abs(d):.3f} {'more' if d > 0 else 'less'} {o}"
        noise = alt.within.get(o)
        if noise:
            words += " (within noise)"
        good = (d > 0) == spec.maximize
        (better if good else worse).append(words)
    if worse and better:
        return f"{', '.join(worse)} for {', '.join(better)}"
    if worse:
        return f"dominated by the pick on the proxies: {', '.join(worse)}"
    return f"{', '.join(better)} (the policy ranks the pick first)"


def position_text(record: StudyRecord, pick: TrialRecord) -> str:
    """Where the pick sits on the feasible front, objective by objective."""
    front = record.front
    n = len(front)
    if n < 2:
        return "the only recipe on the feasible front"
    words = {
        "gain": ("the highest gain", "the lowest gain"),
        "forgetting": ("the least forgetting", "the most forgetting"),
        "cost": ("the cheapest", "the most expensive"),
    }
    parts = []
    for o in record.objectives:
        if o not in pick.values:
            continue
        spec = OBJECTIVES[o]
        better = sum(
            1 for t in front if (t.values[o] > pick.values[o]) == spec.maximize and t.values[o] != pick.values[o]
        )
        worse = sum(
            1 for t in front if t.values[o] != pick.values[o] and (t.values[o] > pick.values[o]) != spec.maximize
        )
        best, worst = words.get(o, (f"the best {o}", f"the worst {o}"))
        tied = sum(1 for t in front if t.values[o] == pick.values[o]) - 1
        if better == 0:
            parts.append(best + (" (tied)" if tied else ""))
        elif worse == 0:
            parts.append(worst)
        else:
            parts.append(f"{o} {better + 1} of {n}")
    lo = min(t.values.get("cost", 0.0) for t in front)
    hi = max(t.values.get("cost", 0.0) for t in front)
    cost = f" (front's cost {lo:.3g} to {hi:.3g} TFLOP)" if "cost" in pick.values else ""
    return f"of the {n} recipes on the feasible front: {', '.join(parts)}{cost}"


def full_tasks_after(applied: VersionInfo | None) -> dict[str, dict[str, float]] | None:
    """The full run's per-task scores, as `apply` recorded them (None before apply)."""
    decision = applied.decision if applied is not None else None
    full = (decision.metrics.get("full") or {}) if decision is not None else {}
    after = full.get("tasks_after")
    return dict(after) if after else None


def pick_moves(record: StudyRecord, applied: VersionInfo | None) -> tuple[str, list[TaskMove]] | None:
    """The pick's task moves against the base: of the full run once applied, else of its proxy."""
    pick = record.selected
    if pick is None or record.base is None:
        return None
    full = full_tasks_after(applied)
    if full is not None:
        return "full run", record.task_moves(full)
    return "proxy", record.task_moves(pick.metrics.get("tasks_after") or {})


def _value(o: str, v: float, s: Spread) -> str:
    text = f"{o} <b>{html.escape(OBJECTIVES[o].format(v))}</b>"
    if s.computed:
        return text + (" TFLOP" if o == "cost" else "")
    return text + (f" ± {s.sd:.3f}" if s.sd is not None else "")


def _verdict(record: StudyRecord, applied: VersionInfo | None) -> tuple[str, str]:
    """(kind, sentence): released | rejected | forecast | none."""
    pick = record.selected
    family, base = record.family or "?", record.base_version or "?"
    if pick is None:
        return (
            "none",
            f"Nothing to release: no recipe passes every release gate, so nothing was selected "
            f"({family}/{base} stays).",
        )
    if applied is not None and applied.status == "released":
        current = ", now current" if applied.is_current else ""
        return "released", (
            f"Released: trial {pick.number}'s recipe, trained in full, passed every gate against "
            f"{family}/{base} and is `{applied.ref}`{current}."
        )
    if applied is not None and applied.status == "rejected":
        reasons = "; ".join(applied.decision.reasons) if applied.decision is not None else ""
        return (
            "rejected",
            f"Rejected at full fidelity: trial {pick.number}'s full run `{applied.ref}` failed: {reasons}.",
        )
    if applied is not None:
        return "forecast", f"Applied as `{applied.ref}` ({applied.status})."
    return "forecast", (
        f"Forecast only: trial {pick.number} passes every gate on its proxy run. Nothing is decided until "
        "`recipe-opt apply` trains it in full and judges the full run."
    )


_VERDICT_STYLE = {
    "released": "#e8f5e9; border-left: 6px solid #2ca02c",
    "rejected": "#fdecea; border-left: 6px solid #d62728",
    "forecast": "#fff4e5; border-left: 6px dashed #ff7f0e",
    "none": "#fdecea; border-left: 6px solid #d62728",
}


def decision_html(record: StudyRecord, applied: VersionInfo | None, price: str) -> str:
    """The decision block (`<section id="decision">`)."""
    e = html.escape
    kind, sentence = _verdict(record, applied)
    parts = [
        f'<div id="verdict" class="verdict-{kind}" style="background: {_VERDICT_STYLE[kind]}; '
        f'padding: 8px 12px; margin: 0.5em 0"><b>{inline(sentence)}</b></div>'
    ]
    pick = record.selected
    if pick is None or pick.recipe is None:
        parts.append(f'<p id="price"><b>Price:</b> {inline(price)}.</p>')
        return '<section id="decision">' + "".join(parts) + "</section>"
    recipe = pick.recipe
    parts.append(
        f'<p id="pick"><b>Picked: trial {pick.number}</b> (recipe <code>{e(recipe.short_hash)}</code>): '
        f"{e(recipe_words(recipe))}.</p>"
    )
    proxy = [_value(o, pick.values[o], record.spread(pick, o)) for o in record.objectives if o in pick.values]
    line = f"<b>Proxy run</b> (a forecast): {', '.join(proxy)}."
    decision = applied.decision if applied is not None else None
    full = (decision.metrics.get("full") or {}) if decision is not None else {}
    if "gain" in full:
        after = full_tasks_after(applied) or {}
        shown = [
            _value(o, float(full[o]), record.spread(pick, o, tasks_after=after))
            for o in record.objectives
            if isinstance(full.get(o), int | float)
        ]
        line += f" <b>Full run</b> (<code>apply</code>, what decides): {', '.join(shown)}."
    parts.append(f'<p id="pick-values">{line}</p>')
    parts.append(f'<p id="tradeoff"><b>Trades off:</b> {e(position_text(record, pick))}.</p>')
    alts = alternatives(record, pick)
    if alts:
        rows = []
        for a in alts:
            cells = [
                f"trial {a.trial.number}",
                *(
                    e(OBJECTIVES[o].format(a.trial.values[o]))
                    + f" ({e(format(d, '+.3f') if o != 'cost' else format(d, '+.3g'))}"
                    + (", within noise" if a.within.get(o) else "")
                    + ")"
                    for o, d in a.deltas.items()
                ),
                e(trade_text(a, pick)),
                e("; ".join(a.changes) or "same recipe"),
            ]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        head = "".join(f"<th>{e(o)} (vs the pick)</th>" for o in alts[0].deltas)
        parts.append(
            '<table id="alternatives"><tr><th>nearest on the front</th>'
            f"{head}<th>against the pick it gives</th><th>recipe differs in</th></tr>{''.join(rows)}</table>"
        )
    parts.append(_certainty(record, pick, alts))
    parts.append(_watch(record, applied))
    parts.append(f'<p id="price"><b>Price:</b> {inline(price)}.</p>')
    return '<section id="decision">' + "".join(parts) + "</section>"


def _certainty(record: StudyRecord, pick: TrialRecord, alts: list[Alternative]) -> str:
    e = html.escape
    spreads = {o: record.spread(pick, o) for o in record.objectives if o in pick.values}
    lines = [f"{e(o)} {e(s.text())}" for o, s in spreads.items()]
    ties = [a.trial.number for a in alts if all(a.within.get(o) for o in a.deltas if not OBJECTIVES[o].deterministic)]
    if ties:
        names = ", ".join(f"trial {n}" for n in ties)
        ranking = (
            f" <b>Within noise:</b> {e(names)} {'differs' if len(ties) == 1 else 'differ'} from the pick by less than "
            "twice the standard error on every measured objective, so the runs do not settle the ranking "
            "(<code>selection.reruns</code> would measure it)."
        )
    else:
        ranking = ""
    if not any(s.seed is not None for s in spreads.values()):
        ranking += (
            " Only the eval's sampling error is shown: seed noise is not known for this study "
            "(declare it under <code>noise:</code>, or set <code>selection.reruns</code>)."
        )
    return f'<p id="uncertainty"><b>How sure:</b> {"; ".join(lines)}.{ranking}</p>'


def _watch(record: StudyRecord, applied: VersionInfo | None) -> str:
    e = html.escape
    moves = pick_moves(record, applied)
    if moves is None:
        return ""
    which, rows = moves
    flagged = [m for m in rows if m.flagged]
    if not flagged:
        return (
            f'<p id="watch"><b>Skills:</b> no task fell beyond noise in the {which} '
            f"({len(rows)} tasks checked against the base).</p>"
        )
    items = "; ".join(
        f"<b>{e(m.task)}</b> ({e(m.suite)}) {m.before:.3f} → {m.after:.3f}" + (f" ({m.items} items)" if m.items else "")
        for m in flagged
    )
    return (
        f'<p id="watch" style="color: #b71c1c"><b>Watch:</b> {len(flagged)} '
        f"{'task' if len(flagged) == 1 else 'tasks'} fell beyond noise in the {which}: {items}.</p>"
    )
