"""Offline HTML report of a study: the Pareto front (plotly) and the trial table.

`reports/<study>/index.html` loads `plotly.min.js` from beside it (plotly's
`include_plotlyjs="directory"`), so it opens with no network and no server. Every user-supplied
string (study, suite and source names, paths, recipes) is HTML-escaped.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import optuna

from recipe_opt._files import write_atomic
from recipe_opt.lineage import VersionInfo
from recipe_opt.recipe import Recipe
from recipe_opt.report._checklist import (
    ChecklistItem,
    baseline_comparison,
    price_line,
    release_checklist,
    release_suite_scores,
    write_summary,
)
from recipe_opt.report._decision import decision_html, pick_moves
from recipe_opt.report._skills import move_cells
from recipe_opt.report._text import inline
from recipe_opt.study import StudyRecord

__all__ = ["recipe_hover", "write_report"]


def recipe_hover(recipe: Recipe) -> str:
    """Multi-line hover text (plotly's `<br>`) describing a recipe; escaped."""
    e = html.escape
    mix = ", ".join(f"{e(k)} {v:.2f}" for k, v in recipe.mixture.weights)
    lines = [
        f"mixture: {mix}",
        f"replay ratio: {recipe.replay.ratio:.3f}",
        f"peak LR: {recipe.schedule.peak_lr:.2e} "
        f"({e(recipe.schedule.shape)}, warmup {recipe.schedule.warmup_fraction:.2f})",
        f"LoRA: r={recipe.adapter.rank}, alpha={recipe.adapter.alpha:g}, dropout {recipe.adapter.dropout:g}",
        f"targets: {e(', '.join(recipe.adapter.target_modules))}",
        f"full update: {recipe.budget.steps} steps x {recipe.budget.batch_size}",
        f"recipe {recipe.short_hash}",
    ]
    return "<br>".join(lines)


def _pareto_figure(record: StudyRecord, selected: int | None) -> Any:
    import plotly.graph_objects as go

    # Prior observations (warm start) were measured in another cycle: not points of this front.
    complete = record.complete
    front = {t.number for t in record.front}
    rows = [(t.number, t.values, t.recipe) for t in complete if t.recipe is not None]
    feasible = {t.number for t in complete if record.feasible(t)}
    # Which gates each infeasible trial missed, first in its hover label.
    missed = {
        t.number: "<b>fails:</b> " + html.escape("; ".join(c.note for c in record.missed(t))) + "<br>"
        for t in complete
        if t.number not in feasible
    }
    fig = go.Figure()
    if not rows:
        fig.add_annotation(text="no complete trials yet", showarrow=False, font={"size": 18})
        return fig
    costs = [v.get("cost", 0.0) for _, v, _ in rows]
    groups = {
        "fails a gate": [row for row in rows if row[0] not in feasible],
        "feasible, dominated": [row for row in rows if row[0] in feasible and row[0] not in front],
        "feasible Pareto front": [row for row in rows if row[0] in front],
    }
    for name, symbol, size, opacity in (
        ("fails a gate", "x-thin-open", 9, 0.5),
        ("feasible, dominated", "circle-open", 9, 0.6),
        ("feasible Pareto front", "circle", 13, 1.0),
    ):
        pts = groups[name]
        on_front = name == "feasible Pareto front"
        if not pts:
            continue
        fig.add_trace(
            go.Scatter(
                x=[v["gain"] for _, v, _ in pts],
                y=[v["forgetting"] for _, v, _ in pts],
                mode="markers",
                name=name,
                opacity=opacity,
                marker={
                    "symbol": symbol,
                    "size": size,
                    "color": [v.get("cost", 0.0) for _, v, _ in pts],
                    "colorscale": "Viridis",
                    "cmin": min(costs),
                    "cmax": max(costs),
                    "showscale": on_front,
                    "colorbar": {"title": {"text": "cost<br>(TFLOP, full update)"}},
                    "line": {"width": 1, "color": "#333"},
                },
                text=[
                    f"<b>trial {n}</b><br>gain {v['gain']:+.3f} · forgetting {v['forgetting']:+.3f} · "
                    f"cost {v.get('cost', float('nan')):.3g} TFLOP<br>{missed.get(n, '')}{recipe_hover(r)}"
                    for n, v, r in pts
                ],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    sel = [(n, v, r) for n, v, r in rows if n == selected]
    if sel:
        n, v, r = sel[0]
        fig.add_trace(
            go.Scatter(
                x=[v["gain"]],
                y=[v["forgetting"]],
                mode="markers",
                name=f"selected (trial {n})",
                marker={
                    "symbol": "star",
                    "size": 22,
                    "color": "#d62728",
                    "line": {"width": 1, "color": "#000"},
                },
                text=[f"<b>selected: trial {n}</b><br>{recipe_hover(r)}"],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    budget = record.gates.max_forgetting
    if budget is not None:
        fig.add_hline(
            y=budget,
            line={"dash": "dash", "color": "#d62728", "width": 1},
            annotation_text=f"gate: max forgetting {budget:g}",
            annotation_position="top left",
        )
    # The gain gate: `min_gain`, or a positive gain where it is unset.
    least = record.gates.min_gain
    fig.add_vline(
        x=0.0 if least is None else least,
        line={"dash": "dash", "color": "#d62728", "width": 1},
        annotation_text="gate: gain > 0" if least is None else f"gate: min gain {least:g}",
        annotation_position="bottom right",
    )
    fig.update_layout(
        title="Pareto front: new-task gain vs forgetting (colour: projected cost of the full update)",
        xaxis_title="new-task gain (exact match, after - before) →  better",
        yaxis_title="forgetting (weighted retention drop) ↓  better",
        template="plotly_white",
        height=560,
        legend={"orientation": "h", "y": -0.18},
    )
    return fig


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _table(record: StudyRecord) -> str:
    e = html.escape
    head = (
        "<tr><th>trial</th><th>state</th><th>gain</th><th>forgetting</th><th>cost (TFLOP)</th>"
        "<th>gates</th><th>targets</th><th>train s</th><th>recipe</th><th>note</th></tr>"
    )
    rows = []
    for t in record.trials:
        v = t.values
        train = t.metrics.get("train", {})
        # Where the trial came from (warm start, prior observation, a lost worker's retry), why it
        # failed if it did, and which worker ran it when several did.
        parts = (
            t.origin,
            None if t.retry_of is None else f"retry of trial {t.retry_of}",
            t.failure,
            None if t.worker in (None, "main") else f"worker {t.worker}",
        )
        note = "; ".join(str(n) for n in parts if n)
        summary = t.summary
        state = "QUEUED" if t.state == "WAITING" else t.state
        if t.complete:
            failed = record.missed(t)
            gates = "pass" if not failed else "fails " + "; ".join(c.note for c in failed)
        else:
            gates = ""
        cells = [
            str(t.number),
            e(state + (" (prior)" if t.prior else "")),
            _fmt(v.get("gain"), "+.3f"),
            _fmt(v.get("forgetting"), "+.3f"),
            _fmt(v.get("cost"), ".3g"),
            e(gates),
            e(", ".join(t.recipe.adapter.target_modules) if t.recipe is not None else ""),
            _fmt(train.get("train_seconds"), ".1f"),
            f"<code>{e(str(summary or ''))}</code>",
            e(note),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<table id="trials" class="sortable">{head}{"".join(rows)}</table>'


# Click a column header to sort the trial table by it (numbers numerically, empty cells last);
# click again to reverse. Inline and dependency-free, so the report stays offline.
_SORT_JS = """
<script>
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.style.cursor = "pointer";
    th.title = "sort by this column";
    th.addEventListener("click", function () {
      var rows = Array.from(table.querySelectorAll("tr")).slice(1);
      var asc = th.dataset.order !== "asc";
      th.dataset.order = asc ? "asc" : "desc";
      rows.sort(function (a, b) {
        var x = a.cells[col].textContent.trim(), y = b.cells[col].textContent.trim();
        if (x === "" || y === "") return (x === "") - (y === "");
        var nx = parseFloat(x), ny = parseFloat(y);
        var cmp = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return asc ? cmp : -cmp;
      });
      rows.forEach(function (r) { table.appendChild(r); });
    });
  });
});
</script>
"""


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 13px; margin: 1em 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
th { background: #f4f4f4; }
code { font-size: 12px; }
p.meta { color: #555; margin: 0.2em 0; }
#decision p { margin: 0.4em 0; }
tr.flagged td { background: #fdecea; }
details > summary { cursor: pointer; font-size: 1.1em; margin: 1em 0; }
"""


def write_plotly_js(out: Path) -> None:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    target = out / "plotly.min.js"
    if not target.is_file() or target.stat().st_size != len(js.encode()):
        write_atomic(target, js)


def _div(fig: Any, div_id: str) -> str:
    import plotly.io as pio

    return str(pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id))


def _missing(what: str) -> str:
    return f"<p><i>{html.escape(what)}: not enough complete trials yet.</i></p>"


def _diagnostics(record: StudyRecord, selected: int | None) -> str:
    """The search's own views, for digging rather than deciding (folded at the page's end)."""
    from recipe_opt.report import _figures as f

    parts = ["<h3>Search progress</h3>"]
    hist = f.history(record)
    parts.append(_div(hist, "history") if hist is not None else _missing("hypervolume history"))
    parts.append("<h3>All objectives in 3-D</h3>")
    cube = f.front_3d(record, selected)
    parts.append(_div(cube, "front-3d") if cube is not None else _missing("3-D view"))
    parts.append('<h3 id="importance">Which parameters matter</h3>')
    imps, notes = f.importances(record)
    parts.extend(f"<p>{inline(n)}</p>" for n in notes)
    parts.extend(_div(fig, f"importance-{name}") for name, fig in imps)
    if not imps and not notes:
        parts.append(_missing("parameter importance (needs 4)"))
    cuts = f.slices(record)
    if cuts:
        parts.append(
            "<p>Slices: one dot per trial of this cycle; grey dots fail a gate, the others are shaded by trial "
            "number (Optuna's colouring).</p>"
        )
    parts.extend(_div(fig, f"slice-{key}") for key, fig in cuts)
    parts.append("<h3>All trials, parameter by parameter</h3>")
    par = f.parallel_coordinates(record)
    parts.append(_div(par, "parallel") if par is not None else _missing("parallel coordinates"))
    return "\n".join(parts)


def _risks(record: StudyRecord, selected: int | None, applied: VersionInfo | None, parent: VersionInfo | None) -> str:
    """What could go wrong: each task of the pick against the base (flagged where it fell beyond
    noise) and the per-suite scores."""
    from recipe_opt.report import _figures as f

    e = html.escape
    parts = ['<h2 id="risks">What could go wrong</h2>']
    moves = pick_moves(record, applied)
    if moves is not None:
        which, rows = moves
        body = "".join(
            f'<tr class="{"flagged" if m.flagged else ""}">{move_cells(m)}'
            f"<td>{'<b>fell beyond noise</b>' if m.flagged else ''}</td></tr>"
            for m in rows
        )
        parts.append(
            f"<p>Each task of the pick's {e(which)} against the base, this cycle's evaluation (every "
            "score here is better higher). A task is flagged when it fell by more than one standard error "
            "of the change (binomial, from its item count) and by at least two items: a reason to look, "
            "not a gate.</p>"
            '<table id="task-moves"><tr><th>task</th><th>suite</th><th>base</th><th>after</th><th>change</th>'
            f"<th>standard error</th><th>items</th><th>flag</th></tr>{body}</table>"
        )
    decision = applied.decision if applied else None
    full_after = ((decision.metrics.get("full") or {}).get("suites_after") if decision else None) or None
    at_release = release_suite_scores(parent, record.suite_tasks()) if parent is not None else {}
    bars = f.retention_bars(
        record, selected, full_after, previous=(parent.name, at_release) if parent is not None and at_release else None
    )
    parts.append(_div(bars, "retention") if bars is not None else _missing("per-suite retention"))
    return "\n".join(parts)


def _checklist_html(record: StudyRecord, applied: VersionInfo | None, parent: VersionInfo | None) -> str:
    e = html.escape
    colour = {"pass": "#2ca02c", "FAIL": "#d62728", "pending": "#ff7f0e", "info": "#555"}

    def status(i: ChecklistItem) -> str:
        if i.forecast:  # a proxy's judgement: outlined and in words, never a solid verdict
            return (
                f'<td class="forecast" style="color:{colour.get(i.status, "#555")}; border: 2px dashed '
                f'{colour.get(i.status, "#555")}">{e(i.shown_status)}</td>'
            )
        return f'<td class="verdict" style="color:{colour.get(i.status, "#555")}"><b>{e(i.status)}</b></td>'

    rows = "".join(
        f"<tr><td>{inline(i.check)}</td><td>{inline(i.measured)}</td><td>{inline(i.bound)}</td>{status(i)}</tr>"
        for i in release_checklist(record, applied, parent)
    )
    html_out = (
        '<h2 id="release-checklist">Release checklist</h2>'
        "<p>A bold status is a verdict on the full run (<code>apply</code>); <i>forecast:</i> marks a "
        "judgement of the proxy run only.</p>"
        "<table><tr><th>check</th><th>measured</th><th>bound</th><th>status</th></tr>"
        f"{rows}</table>"
    )
    comparison = baseline_comparison(applied.decision if applied is not None else None)
    if comparison is not None:
        header, table = comparison
        head = "".join(f"<th>{e(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in table)
        html_out += (
            '<h3 id="baselines">The pick against the baselines (full fidelity, <code>apply</code>)</h3>'
            f"<table><tr>{head}</tr>{body}</table>"
        )
    return html_out


def _no_pick_html(record: StudyRecord) -> str:
    """Why nothing was selected: the trials closest to passing, and the gates each missed."""
    e = html.escape
    if not record.complete:
        return ""
    rows = "".join(
        f"<tr><td>{t.number}</td><td>{e('; '.join(f'{c.gate}: {c.note}' for c in failed))}</td>"
        f"<td><code>{e(t.summary)}</code></td></tr>"
        for t, failed in record.nearest_misses()
    )
    return (
        '<h2 id="no-pick">No recipe passes the release gates</h2>'
        f"<p>None of the {len(record.complete)} complete trials passes every gate, so nothing was selected. "
        "The closest, and the gates each missed:</p>"
        f"<table><tr><th>trial</th><th>gates missed</th><th>recipe</th></tr>{rows}</table>"
    )


# Plots drawn while their <details> was closed have no width: redraw them when it opens.
_RESIZE_JS = """
<script>
document.querySelectorAll("details").forEach(function (d) {
  d.addEventListener("toggle", function () {
    if (d.open && window.Plotly) {
      d.querySelectorAll(".plotly-graph-div").forEach(function (g) { Plotly.Plots.resize(g); });
    }
  });
});
</script>
"""


def write_report(study: optuna.Study, out_dir: str | Path, *, storage_url: str | None = None) -> Path:
    """Write `out_dir/index.html` (+ plotly.min.js) and `summary.md` for `study`; returns the HTML path.

    Ordered for the decision: the verdict and the pick (in words, with what it trades off, its
    nearest alternatives and how sure the numbers are), the release checklist, the front, what
    could go wrong; the search's diagnostics and every trial follow, folded. With `storage_url`
    (the study's database), the checklist also shows what `apply` measured and decided for this
    cycle, from the lineage store.
    """
    import plotly.io as pio

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    e = html.escape
    record = StudyRecord.read(study)
    applied = parent = None
    if storage_url is not None:
        from recipe_opt.lineage import LineageStore

        with LineageStore(storage_url) as store:
            applied = store.applied_version(record.name)
            if record.family and record.base_version:
                versions = store.list_versions_or_empty(record.family)
                parent = next((v for v in versions if v.name == record.base_version), None)
    selection = record.selection or {}
    selected = selection.get("trial_number")
    fig = _pareto_figure(record, selected)
    # "directory" makes the page load plotly.min.js from beside it; `to_html` does not write that
    # file (only `write_html` does), so it is written here, once per report directory.
    plot = pio.to_html(fig, include_plotlyjs="directory", full_html=False, div_id="pareto-front")
    write_plotly_js(out)
    decision = applied.decision if applied is not None else None
    price = price_line(record, decision) if record.trials else "nothing spent yet"
    top = decision_html(record, applied, price) if record.trials else ""
    why = ""
    if selection and selected is not None:
        why = (
            f'<p id="why"><b>Rule:</b> {inline(str(selection.get("rule", "")))}. '
            f"<b>Why:</b> {inline(str(selection.get('reason', '')))}. "
            f"Recipe file: <code>{e(str(selection.get('recipe_file', '')))}</code>.</p>"
        )
    no_pick = _no_pick_html(record) if selected is None else ""
    base = dict(record.base.suites) if record.base is not None else {}
    base_rows = "".join(f"<tr><td>{e(k)}</td><td>{v:.3f}</td></tr>" for k, v in base.items())

    counts: dict[str, int] = {}
    for t in record.trials:
        state = "prior observations" if t.prior else t.state.lower()
        counts[state] = counts.get(state, 0) + 1
    # "waiting" trials are recipes enqueued (warm start, initial design) that the budget did not reach.
    trial_line = ", ".join(f"{n} {'queued' if k == 'waiting' else k}" for k, n in sorted(counts.items()))
    gates_drawn = (
        "Dashed red lines: the max-forgetting gate (aggregate) and the gain gate. Crosses fail a gate "
        "(hover or the trial table names which); per-suite and per-task gates are not axes of this plot."
    )
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>recipe-opt report: {e(record.name)}</title>
<style>{PAGE_STYLE}</style></head><body>
<h1>recipe-opt study <code>{e(record.name)}</code></h1>
<p class="meta">Trials: {e(trial_line or "none yet")}. Objectives: {e(", ".join(record.objectives))}.</p>
{top}
{no_pick}
{_checklist_html(record, applied, parent)}
{why}
<h2 id="front">Pareto front</h2>
<p>{e(gates_drawn)}</p>
{plot}
{_risks(record, selected, applied, parent)}
<details id="diagnostics"><summary><b>Diagnostics</b>: search progress, 3-D view, parameter importance,
slices, parallel coordinates, base scores, every trial</summary>
{_diagnostics(record, selected)}
<h3>Base model scores (before the update)</h3>
<table><tr><th>suite</th><th>score</th></tr>{base_rows}</table>
<h3>All trials</h3>
<p>Click a column header to sort.</p>
{_table(record)}
</details>
{_SORT_JS}
{_RESIZE_JS}
</body></html>
"""
    path = write_atomic(out / "index.html", doc)
    write_summary(record, out, applied, parent)
    return path
