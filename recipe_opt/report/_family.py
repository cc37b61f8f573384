"""The cross-cycle view of a model family: every cycle's front overlaid, the lineage as a tree,
each version's skills, and one row per update cycle.

Read from the family's database alone: the lineage store gives the versions, their release
decisions and full-fidelity scores; the same storage holds each cycle's Optuna study (the
default layout: one `<family>.db` per family). A cycle whose study is not in that storage is
listed with a note instead of a front.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from recipe_opt._files import write_atomic
from recipe_opt.evaluate import PRIMARY_METRIC
from recipe_opt.lineage import LineageStore, VersionInfo
from recipe_opt.report._skills import SkillMove, flag_line, skill_flags_html, skill_moves
from recipe_opt.study import StudyRecord, TrialRecord, search_price

__all__ = ["family_report_dir", "write_family_report"]

# One colour per cycle, in order (plotly's qualitative "D3" palette); cycles beyond it wrap.
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_STATUS_COLOUR = {"released": "#2ca02c", "rejected": "#d62728", "rolled-back": "#ff7f0e", "registered": "#7f7f7f"}


@dataclass(frozen=True)
class _Cycle:
    study_name: str
    base: str
    study: StudyRecord | None  # None: not in this storage
    produced: VersionInfo | None  # the version its latest `apply` registered
    recorded_price: tuple[float | None, int | None] = (None, None)  # the lineage's (TFLOP, trials)

    @property
    def price(self) -> str:
        """The search's price in full updates of its pick (measured once applied)."""
        measured = self.full.get("cost")
        if self.study is not None:
            p = search_price(self.study, measured_update_tflop=measured)
            return "-" if p.ratio is None else f"{p.search_tflop:.3g} TFLOP = {p.ratio:.1f} x"
        tflop, _ = self.recorded_price
        if tflop is None:
            return "not recorded"
        return f"{tflop:.3g} TFLOP" + (f" = {tflop / measured:.1f} x" if measured else "")

    @property
    def selected(self) -> TrialRecord | None:
        return None if self.study is None else self.study.selected

    @property
    def full(self) -> dict[str, float]:
        decision = self.produced.decision if self.produced else None
        return dict((decision.metrics.get("full") or {}) if decision else {})


def family_report_dir(reports_root: str | Path, family: str) -> Path:
    """Where a family's cross-cycle report goes: beside the per-study reports."""
    return Path(reports_root) / f"{family}-lineage"


def _load_cycles(store: LineageStore, storage: optuna.storages.BaseStorage, family: str) -> list[_Cycle]:
    versions = store.list_versions(family)
    produced: dict[str, VersionInfo] = {}
    for v in sorted(versions, key=lambda v: v.created_at):
        d = v.decision
        if d is not None and d.cycle is not None and d.action in ("release", "reject"):
            produced[d.cycle] = v  # the latest apply of a cycle wins
    out = []
    prices = store.search_prices(family)
    for study_name, base, _ in store.cycles(family):
        try:
            study: StudyRecord | None = StudyRecord.read(optuna.load_study(study_name=study_name, storage=storage))
        except KeyError:
            study = None
        out.append(_Cycle(study_name, base, study, produced.get(study_name), prices.get(study_name, (None, None))))
    return out


def _fronts_figure(cycles: list[_Cycle]) -> Any:
    import plotly.graph_objects as go

    e = html.escape
    fig = go.Figure()
    for i, c in enumerate(cycles):
        if c.study is None:
            continue
        colour = _PALETTE[i % len(_PALETTE)]
        name = e(f"{c.study_name} ({c.base} → {c.produced.name if c.produced else '?'})")
        own = c.study.complete
        if own:
            fig.add_trace(
                go.Scatter(
                    x=[t.values["gain"] for t in own],
                    y=[t.values["forgetting"] for t in own],
                    mode="markers",
                    name=f"{name}: all trials",
                    legendgroup=name,
                    opacity=0.3,
                    marker={"color": colour, "size": 6},
                    text=[f"{e(c.study_name)} trial {t.number}" for t in own],
                    hovertemplate="%{text}<br>gain %{x:+.3f} · forgetting %{y:+.3f}<extra></extra>",
                )
            )
        front = sorted(c.study.front, key=lambda t: t.values["gain"])
        if front:
            fig.add_trace(
                go.Scatter(
                    x=[t.values["gain"] for t in front],
                    y=[t.values["forgetting"] for t in front],
                    mode="lines+markers",
                    name=f"{name}: feasible front",
                    legendgroup=name,
                    line={"color": colour, "width": 2, "shape": "hv"},
                    marker={"color": colour, "size": 9},
                    text=[f"{e(c.study_name)} trial {t.number}<br>{e(t.summary)}" for t in front],
                    hovertemplate="%{text}<br>gain %{x:+.3f} · forgetting %{y:+.3f}<extra></extra>",
                )
            )
        sel = c.selected
        if sel is not None:
            v = sel.values
            xs, ys, labels = [v["gain"]], [v["forgetting"]], [f"selected: trial {sel.number} (proxy)"]
            if "gain" in c.full and "forgetting" in c.full:
                # The same recipe at full fidelity (`apply`): the dotted segment is the proxy's error.
                xs.append(c.full["gain"])
                ys.append(c.full["forgetting"])
                if c.produced is not None:
                    labels.append(f"{e(c.produced.name)}: full run ({e(c.produced.status)})")
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    mode="lines+markers",
                    name=f"{name}: selected, proxy → full",
                    legendgroup=name,
                    line={"color": colour, "dash": "dot", "width": 1},
                    marker={
                        "symbol": ["star", "diamond"][: len(xs)],
                        "size": [18, 14][: len(xs)],
                        "color": colour,
                        "line": {"width": 1, "color": "#000"},
                    },
                    text=labels,
                    hovertemplate=f"{e(c.study_name)}: "
                    "%{text}<br>gain %{x:+.3f} · forgetting %{y:+.3f}<extra></extra>",
                )
            )
    # Scale the forgetting axis to what a reviewer compares (fronts, picks and their full runs),
    # not to the worst trial: one trial forgetting 0.8 would squash every feasible point onto 0.
    shown = [y for trace in fig.data if "all trials" not in str(trace.name) for y in (trace.y or ())]
    if shown:
        lo, hi = min(shown), max(shown)
        pad = max(0.1 * (hi - lo), 0.01)
        fig.update_yaxes(range=[lo - pad, hi + pad])
        outside = sum(
            1
            for trace in fig.data
            if "all trials" in str(trace.name)
            for y in (trace.y or ())
            if not lo - pad <= y <= hi + pad
        )
        if outside:
            fig.add_annotation(
                text=f"{outside} trials off this scale (forgetting beyond the fronts): zoom out to see them",
                xref="paper",
                yref="paper",
                x=1,
                y=1.02,
                showarrow=False,
                font={"size": 11, "color": "#555"},
            )
    fig.update_layout(
        title="Every cycle's front: gain vs forgetting (★ selected by the proxy, ◆ the same recipe in full)",
        xaxis_title="new-task gain of that cycle's update →  better",
        yaxis_title="forgetting ↓  better",
        template="plotly_white",
        height=560,
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def _tree_layout(versions: list[VersionInfo]) -> dict[str, tuple[int, float]]:
    """(depth, row) of each version: parents left of children, each leaf on its own row and a
    parent centred on its children (a tidy tree, drawn left to right)."""
    children: dict[str | None, list[VersionInfo]] = {}
    names = {v.name for v in versions}
    for v in sorted(versions, key=lambda v: v.created_at):
        children.setdefault(v.parent if v.parent in names else None, []).append(v)
    pos: dict[str, tuple[int, float]] = {}
    next_row = [0.0]

    def place(v: VersionInfo, depth: int) -> float:
        kids = children.get(v.name, [])
        rows = [place(k, depth + 1) for k in kids]
        row = sum(rows) / len(rows) if rows else next_row[0]
        if not rows:
            next_row[0] += 1.0
        pos[v.name] = (depth, row)
        return row

    for root in children.get(None, []):
        place(root, 0)
    return pos


def _tree_figure(versions: list[VersionInfo], cycles: list[_Cycle]) -> Any:
    import plotly.graph_objects as go

    e = html.escape
    pos = _tree_layout(versions)
    fig = go.Figure()
    edge_x: list[float | None] = []
    edge_y: list[float | None] = []
    for v in versions:
        if v.parent in pos:
            (x0, y0), (x1, y1) = pos[v.parent], pos[v.name]
            edge_x += [x0, x1, None]
            edge_y += [y0, y1, None]
    fig.add_trace(
        go.Scatter(x=edge_x, y=edge_y, mode="lines", line={"color": "#999"}, hoverinfo="skip", showlegend=False)
    )
    by_cycle = {c.produced.name: c for c in cycles if c.produced is not None}
    for status, colour in _STATUS_COLOUR.items():
        group = [v for v in versions if v.status == status]
        if not group:
            continue
        hover = []
        for v in group:
            lines = [f"<b>{e(v.ref)}</b> ({e(v.status)}{', current' if v.is_current else ''})"]
            c = by_cycle.get(v.name)
            if c is not None and c.full:
                lines.append(
                    f"from {e(c.study_name)}: gain {c.full.get('gain', 0.0):+.3f}, "
                    f"forgetting {c.full.get('forgetting', 0.0):+.3f} (full)"
                )
            d = v.decision
            if d is not None and d.recipe_hash:
                lines.append(f"recipe {e(d.recipe_hash[:12])}")
            if d is not None and d.reasons and v.status == "rejected":
                lines.append("why: " + e("; ".join(d.reasons)))
            lines.append(f"weights {e(v.weights_uri)}")
            hover.append("<br>".join(lines))
        fig.add_trace(
            go.Scatter(
                x=[pos[v.name][0] for v in group],
                y=[pos[v.name][1] for v in group],
                mode="markers+text",
                name=status,
                text=[e(v.name) + (" ★" if v.is_current else "") for v in group],
                textposition="top center",
                marker={
                    "size": [22 if v.is_current else 15 for v in group],
                    "color": colour,
                    "line": {"width": [3 if v.is_current else 1 for v in group], "color": "#000"},
                },
                customdata=hover,
                hovertemplate="%{customdata}<extra></extra>",
            )
        )
    # Label each edge with the cycle that produced the child.
    for c in cycles:
        if c.produced is not None and c.produced.name in pos and c.base in pos:
            (x0, y0), (x1, y1) = pos[c.base], pos[c.produced.name]
            fig.add_annotation(
                x=(x0 + x1) / 2,
                y=(y0 + y1) / 2,
                text=e(c.study_name),
                showarrow=False,
                font={"size": 10, "color": "#555"},
                yshift=-10,
            )
    depth = max((p[0] for p in pos.values()), default=0)
    rows = max((p[1] for p in pos.values()), default=0.0)
    fig.update_layout(
        title="Lineage (★ current version; colour: status)",
        template="plotly_white",
        height=max(260, 90 * (rows + 2)),
        xaxis={"visible": False, "range": [-0.5, depth + 0.5]},
        yaxis={"visible": False, "range": [rows + 0.7, -0.7]},
        legend={"orientation": "h", "y": -0.05},
    )
    return fig


def _version_task_scores(v: VersionInfo) -> dict[str, float]:
    """A version's primary score per task, as the lineage measured it at full fidelity: the
    evaluations of the cycle that produced it first, then those of later cycles it was a base of."""
    d = v.decision
    own = v.task_scores(PRIMARY_METRIC, cycle=d.cycle) if d is not None and d.cycle is not None else {}
    return {**v.task_scores(PRIMARY_METRIC), **own}  # the producing cycle's scores win


def _skills_figure(versions: list[VersionInfo], moves: list[SkillMove]) -> Any:
    import plotly.graph_objects as go

    e = html.escape
    kept = [v for v in sorted(versions, key=lambda v: v.created_at) if v.status != "rejected"]
    scores = {v.name: _version_task_scores(v) for v in kept}
    tasks = sorted({t for s in scores.values() for t in s})
    if not tasks or len(kept) < 2:
        return None
    fig = go.Figure()
    for task in tasks:
        fig.add_trace(
            go.Scatter(
                x=[e(v.name) for v in kept],
                y=[scores[v.name].get(task) for v in kept],
                mode="lines+markers",
                name=e(task),
                connectgaps=False,
            )
        )
    flagged = [(v, m) for v, _, m in moves if m.flagged and v.status != "rejected"]
    if flagged:
        fig.add_trace(
            go.Scatter(
                x=[e(v.name) for v, _ in flagged],
                y=[scores[v.name].get(m.task, m.after) for v, m in flagged],
                mode="markers",
                name="fell beyond noise",
                marker={"symbol": "x", "size": 14, "color": "#d62728", "line": {"width": 2}},
                text=[f"{e(m.task)}: {m.before:.3f} → {m.after:.3f}" for _, m in flagged],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    fig.update_layout(
        title=f"Each task's score per version ({PRIMARY_METRIC}, full fidelity; rejected versions left out; "
        "✕ fell beyond noise)",
        xaxis_title="version (oldest first)",
        yaxis_title=PRIMARY_METRIC,
        template="plotly_white",
        height=440,
    )
    return fig


def _decisions_table(versions: list[VersionInfo]) -> str:
    """Every release decision with its reasons and each gate it checked, in the open (no hover)."""
    e = html.escape
    rows = []
    for v in sorted(versions, key=lambda v: v.created_at):
        for d in v.decisions:
            checks = "<br>".join(
                f'<span style="color:{"#2ca02c" if c.get("passed") else "#d62728"}">'
                f"{'pass' if c.get('passed') else '<b>FAIL</b>'}</span> {e(str(c.get('gate')))}: "
                f"{e(str(c.get('note') or c.get('measured')))}"
                for c in d.checks
            )
            rows.append(
                f"<tr><td><code>{e(v.name)}</code></td><td>{e(d.action)}</td><td>{e(d.cycle or '')}</td>"
                f"<td>{e(d.previous or '')}</td><td>{e('; '.join(d.reasons))}</td><td>{checks}</td></tr>"
            )
    if not rows:
        return "<p><i>No release decisions recorded yet.</i></p>"
    return (
        '<table id="decisions"><tr><th>version</th><th>decision</th><th>cycle</th><th>against</th>'
        f"<th>reasons</th><th>gates (full fidelity)</th></tr>{''.join(rows)}</table>"
    )


def _cycles_table(cycles: list[_Cycle]) -> str:
    e = html.escape
    head = (
        "<tr><th>cycle (study)</th><th>base → version</th><th>status</th><th>trials run</th><th>selected</th>"
        "<th>gain proxy / full</th><th>forgetting proxy / full</th><th>search price (full updates)</th>"
        "<th>recipe</th></tr>"
    )
    rows = []
    for c in cycles:
        if c.study is None:
            rows.append(
                f"<tr><td>{e(c.study_name)}</td><td colspan=6><i>study not in this storage</i></td>"
                f"<td>{e(c.price)}</td><td></td></tr>"
            )
            continue
        # Trials this cycle ran (warm-start recipes still queued and prior observations don't count).
        n = sum(1 for t in c.study.trials if t.finished and not t.prior)
        sel = c.selected
        v = sel.values if sel is not None else {}

        full = c.full

        def pair(key: str, v: dict[str, float] = v, full: dict[str, float] = full) -> str:
            proxy = f"{v[key]:+.3f}" if key in v else "-"
            return f"{proxy} / {full[key]:+.3f}" if key in full else f"{proxy} / -"

        produced = c.produced
        rows.append(
            "<tr>"
            f"<td>{e(c.study_name)}</td>"
            f"<td>{e(c.base)} → {e(produced.name) if produced else '<i>not applied</i>'}</td>"
            f"<td>{e(produced.status) if produced else ''}</td>"
            f"<td>{n}</td>"
            f"<td>{'' if sel is None else sel.number}</td>"
            f"<td>{pair('gain')}</td><td>{pair('forgetting')}</td>"
            f"<td>{e(c.price)}</td>"
            f"<td><code>{e(sel.summary) if sel is not None else ''}</code></td>"
            "</tr>"
        )
    return f'<table id="cycles">{head}{"".join(rows)}</table>'


def _text_tree(versions: list[VersionInfo]) -> str:
    """The lineage as nested lists, readable without JavaScript."""
    e = html.escape
    names = {v.name for v in versions}
    children: dict[str | None, list[VersionInfo]] = {}
    for v in sorted(versions, key=lambda v: v.created_at):
        children.setdefault(v.parent if v.parent in names else None, []).append(v)

    def items(parent: str | None) -> str:
        kids = children.get(parent, [])
        if not kids:
            return ""
        li = []
        for v in kids:
            d = v.decision
            via = f" via <code>{e(d.cycle)}</code>" if d is not None and d.cycle else ""
            current = " <b>★ current</b>" if v.is_current else ""
            li.append(f"<li><code>{e(v.name)}</code> — {e(v.status)}{via}{current}{items(v.name)}</li>")
        return "<ul>" + "".join(li) + "</ul>"

    return items(None)


def write_family_report(store: LineageStore, storage_url: str, family: str, out_dir: str | Path) -> Path:
    """Write `out_dir/index.html` (+ plotly.min.js): the family's cycles and lineage; returns the path."""
    import plotly.io as pio

    from recipe_opt.report._html import PAGE_STYLE, write_plotly_js

    e = html.escape
    versions = store.list_versions(family)  # raises LineageError (with "did you mean") if unknown
    storage = optuna.storages.RDBStorage(storage_url)
    try:
        cycles = _load_cycles(store, storage, family)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_plotly_js(out)

        def div(fig: Any, div_id: str, *, js: bool = False) -> str:
            return str(pio.to_html(fig, include_plotlyjs="directory" if js else False, full_html=False, div_id=div_id))

        current = next((v for v in versions if v.is_current), None)
        moves = skill_moves(versions)
        sections = [
            '<h2 id="lineage-section">Lineage</h2>',
            div(_tree_figure(versions, cycles), "lineage-tree", js=True),
            _text_tree(versions),
            '<h2 id="fronts-section">Fronts of successive cycles</h2>',
            "<p>Each cycle's gain is measured on its own new tasks against its own base version, so the "
            "x-axis compares how much each update taught, not absolute ability. The dotted segment "
            "joins a cycle's pick as the proxy scored it to the same recipe's full run.</p>",
        ]
        if any(c.study is not None for c in cycles):
            sections.append(div(_fronts_figure(cycles), "fronts"))
        else:
            sections.append("<p><i>No cycle of this family has a study in this storage yet.</i></p>")
        sections.append('<h2 id="skills-section">Skills across versions</h2>')
        sections.append(skill_flags_html(moves))
        skills = _skills_figure(versions, moves)
        sections.append(
            div(skills, "skills")
            if skills is not None
            else "<p><i>Skills across versions: needs two versions with full-fidelity scores.</i></p>"
        )
        sections += [
            '<h2 id="decisions-section">Release decisions</h2>',
            _decisions_table(versions),
            "<h2>Update cycles</h2>",
            _cycles_table(cycles),
        ]
    finally:
        storage.engine.dispose()
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>recipe-opt lineage: {e(family)}</title>
<style>{PAGE_STYLE}</style></head><body>
<h1>Model family <code>{e(family)}</code></h1>
<p>{len(versions)} versions, {len(cycles)} update cycles. Current version:
<code>{e(current.name) if current else "none"}</code>.</p>
{flag_line(moves)}
{"".join(sections)}
</body></html>
"""
    return write_atomic(out / "index.html", doc)
