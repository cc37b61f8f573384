"""The report's other views of a study: 3-D front, hypervolume and best-so-far history,
parameter importance, slices, parallel coordinates, and per-suite retention.

Each returns a plotly figure, or None when the study has too little to show (the page says so).
Optuna's own plotting functions are used where they exist; prior observations from other cycles
(warm start) are left out of every view, since they were measured on other data.
"""

from __future__ import annotations

import html
import statistics
import warnings
from collections.abc import Callable
from typing import Any

import optuna

from recipe_opt.registry import OBJECTIVES
from recipe_opt.study import StudyRecord

__all__ = [
    "front_3d",
    "history",
    "importances",
    "parallel_coordinates",
    "retention_bars",
    "slices",
]

# Parameters whose slices a reviewer asks about first, each against the objective it moves.
KEY_SLICES = (("replay_ratio", "forgetting"), ("lora_rank", "cost"), ("peak_lr", "gain"), ("steps", "cost"))


def _view(record: StudyRecord, trials: list[optuna.trial.FrozenTrial] | None = None) -> optuna.Study:
    """An in-memory copy of the study without prior observations (or of `trials` only), for
    Optuna's plot and importance functions."""
    own = [t.trial for t in record.complete] if trials is None else trials
    study = record.study
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created in memory" line
    try:
        copy = optuna.create_study(directions=study.directions, study_name=study.study_name)
    finally:
        optuna.logging.set_verbosity(verbosity)
    copy.add_trials(own)
    return copy


def _target(record: StudyRecord, name: str, *, minimised: bool = False) -> Callable[[optuna.trial.FrozenTrial], float]:
    """The objective's value; `minimised` flips maximised ones (importance evaluators look for low values)."""
    index = record.objectives.index(name)
    sign = -1.0 if minimised and OBJECTIVES[name].maximize else 1.0
    return lambda t: sign * float(t.values[index])


def front_3d(record: StudyRecord, selected: int | None) -> Any:
    import plotly.graph_objects as go

    trials = record.complete
    if len(trials) < 2 or "cost" not in record.objectives:
        return None
    fig = go.Figure()
    for name, keep, colour in (
        ("passes every gate", True, "#1f77b4"),
        ("fails a gate", False, "#bbbbbb"),
    ):
        pts = [t for t in trials if record.feasible(t) == keep]
        if pts:
            fig.add_trace(
                go.Scatter3d(
                    x=[t.values["gain"] for t in pts],
                    y=[t.values["forgetting"] for t in pts],
                    z=[t.values["cost"] for t in pts],
                    mode="markers",
                    name=name,
                    marker={"size": 5, "color": colour},
                    text=[f"trial {t.number}" for t in pts],
                    hovertemplate="%{text}<br>gain %{x:+.3f}<br>forgetting %{y:+.3f}<br>cost %{z:.3g}<extra></extra>",
                )
            )
    sel = [t for t in trials if t.number == selected]
    if sel:
        v = sel[0].values
        fig.add_trace(
            go.Scatter3d(
                x=[v["gain"]],
                y=[v["forgetting"]],
                z=[v["cost"]],
                mode="markers",
                name=f"selected (trial {selected})",
                marker={"size": 9, "color": "#d62728", "symbol": "diamond"},
            )
        )
    fig.update_layout(
        title="All three objectives",
        scene={"xaxis_title": "gain ↑", "yaxis_title": "forgetting ↓", "zaxis_title": "cost (TFLOP) ↓"},
        template="plotly_white",
        height=560,
    )
    return fig


def history(record: StudyRecord) -> Any:
    """Hypervolume of the feasible trials so far, and the best in-gate gain so far, per trial."""
    import numpy as np
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    trials = record.complete
    if len(trials) < 2:
        return None
    names = record.objectives
    signs = [-1.0 if OBJECTIVES[o].maximize else 1.0 for o in names]
    points = np.array([[s * t.values[o] for s, o in zip(signs, names, strict=True)] for t in trials])
    # Reference point: 10% of each objective's range beyond its worst value (all minimised here).
    span = np.maximum(points.max(axis=0) - points.min(axis=0), 1e-9)
    reference = points.max(axis=0) + 0.1 * span
    xs, hv, best = [], [], []
    feasible: list[list[float]] = []
    best_gain: float | None = None
    for t, p in zip(trials, points, strict=True):
        if record.feasible(t):
            feasible.append(list(p))
            best_gain = t.values["gain"] if best_gain is None else max(best_gain, t.values["gain"])
        xs.append(t.number)
        hv.append(_hypervolume(np.array(feasible), reference) if feasible else 0.0)
        best.append(best_gain)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=xs, y=hv, name="hypervolume of the feasible trials", mode="lines+markers"))
    fig.add_trace(
        go.Scatter(x=xs, y=best, name="best in-gate gain so far", mode="lines+markers", line={"dash": "dot"}),
        secondary_y=True,
    )
    fig.update_layout(
        title=f"Progress of the search ({', '.join(names)}; reference point 10% beyond the worst values)",
        xaxis_title="trial",
        template="plotly_white",
        height=420,
        legend={"orientation": "h", "y": -0.25},
    )
    fig.update_yaxes(title_text="hypervolume", secondary_y=False)
    seen = [b for b in best if b is not None]
    # Its own range: plotly would otherwise align it with the hypervolume axis's ticks.
    pad = max(0.05, 0.1 * (max(seen) - min(seen))) if seen else 0.1
    fig.update_yaxes(
        title_text="gain",
        secondary_y=True,
        range=[min(seen) - pad, max(seen) + pad] if seen else None,
        showgrid=False,
    )
    return fig


def _hypervolume(points: Any, reference: Any) -> float:
    from optuna._hypervolume import compute_hypervolume  # exact (WFG); no public equivalent in Optuna 5

    inside = points[(points < reference).all(axis=1)]
    return float(compute_hypervolume(inside, reference)) if len(inside) else 0.0


# Importance refits: each on a random 80% of the trials (seeded, so a report is reproducible).
REFITS = 8
REFIT_SHARE = 0.8


def importances(record: StudyRecord) -> tuple[list[tuple[str, Any]], list[str]]:
    """Importance of each parameter per measured objective, by Optuna's default evaluator
    (PED-ANOVA in Optuna 5: which parameter values the best trials share), with its spread over
    refits on subsets of the trials; and a note per objective left out.

    With a few dozen trials one fit ranks parameters by chance as much as by effect: the bar is
    the fit on every trial, the error bar the sd over `REFITS` refits on a random 80%, and a
    parameter whose bar does not clear twice its spread is drawn grey ("within refit noise").
    A deterministic objective (cost: a FLOP count from the recipe) is left out: its
    "importance" would only say which parameters happened to vary together in this study.
    """
    import random

    import plotly.graph_objects as go

    view = _view(record)
    if len(view.trials) < 4:
        return [], []
    out, notes = [], []
    for name in record.objectives:
        spec = OBJECTIVES[name]
        if spec.deterministic:
            notes.append(
                f"*{name}* is not shown: it is counted from the recipe (FLOPs of its tokens through the "
                "model and the adapter), with no noise, so an importance fitted on "
                f"{len(view.trials)} trials would only say which parameters happened to vary together. "
                "The slices below show it against steps and LoRA rank."
            )
            continue
        target = _target(record, name, minimised=True)
        try:
            whole = _importance(view.trials, record, target)
        except (ValueError, RuntimeError):  # e.g. every parameter fixed
            continue
        rng = random.Random(0)
        refits: dict[str, list[float]] = {p: [] for p in whole}
        size = max(4, round(REFIT_SHARE * len(view.trials)))
        for _ in range(REFITS):
            try:
                got = _importance(rng.sample(view.trials, size), record, target)
            except (ValueError, RuntimeError):
                continue
            for p in refits:
                refits[p].append(got.get(p, 0.0))
        params = sorted(whole, key=lambda p: whole[p])
        sd = {p: statistics.pstdev(v) if len(v) > 1 else 0.0 for p, v in refits.items()}
        clear = [whole[p] > 2 * sd[p] for p in params]
        fig = go.Figure(
            go.Bar(
                x=[whole[p] for p in params],
                y=params,
                orientation="h",
                error_x={"type": "data", "array": [sd[p] for p in params], "visible": True},
                marker={"color": ["#1f77b4" if c else "#c7c7c7" for c in clear]},
                text=["" if c else "within refit noise" for c in clear],
                textposition="outside",
                hovertemplate="%{y}: %{x:.2f}<extra></extra>",
            )
        )
        fig.update_layout(
            title=f"Parameter importance for {name} (error bars: sd over {REFITS} refits on "
            f"{REFIT_SHARE:.0%} of the trials; grey: within it)",
            xaxis_title=f"importance for {spec.label}",
            height=60 + 28 * len(params) + 100,
            template="plotly_white",
            margin={"l": 160},
        )
        out.append((name, fig))
    return out, notes


def _importance(
    trials: list[optuna.trial.FrozenTrial], record: StudyRecord, target: Callable[[optuna.trial.FrozenTrial], float]
) -> dict[str, float]:
    view = _view(record, trials)
    with warnings.catch_warnings():
        # The evaluator warns that it ranks for low target values: the target is oriented so.
        warnings.filterwarnings("ignore", message=".*computes the importances of params to achieve low.*")
        # Tied values (a gate's floor, say) make PED-ANOVA's quantiles coincide: equal importances.
        warnings.filterwarnings("ignore", message=".*Target and region quantiles select the same set.*")
        return dict(optuna.importance.get_param_importances(view, target=target))


def slices(record: StudyRecord) -> list[tuple[str, Any]]:
    view = _view(record)
    if len(view.trials) < 2:
        return []
    searched = {p for t in view.trials for p in t.params}
    out = []
    for param, objective in KEY_SLICES:
        if param not in searched or objective not in record.objectives:
            continue
        fig = optuna.visualization.plot_slice(
            view, params=[param], target=_target(record, objective), target_name=OBJECTIVES[objective].label
        )
        fig.update_layout(title=f"{param} vs {objective}", height=360, template="plotly_white")
        out.append((f"{param}-{objective}", fig))
    return out


def parallel_coordinates(record: StudyRecord) -> Any:
    view = _view(record)
    if len(view.trials) < 2:
        return None
    fig = optuna.visualization.plot_parallel_coordinate(
        view, target=_target(record, "gain"), target_name=OBJECTIVES["gain"].label
    )
    fig.update_layout(title="Every complete trial's parameters, coloured by gain", height=480, template="plotly_white")
    return fig


def retention_bars(
    record: StudyRecord,
    selected: int | None,
    full_after: dict[str, float] | None,
    previous: tuple[str, dict[str, float]] | None = None,
) -> Any:
    """Suite scores: base (before), the selected recipe's proxy, its full run if applied, and
    `previous` = (name, suite scores) of the base version at its own release, where the lineage
    has them."""
    import plotly.graph_objects as go

    base = dict(record.base.suites) if record.base is not None else {}
    chosen = [t for t in record.trials if t.number == selected]
    if not base or not chosen:
        return None
    after = chosen[0].metrics.get("suites_after", {})
    suites = list(base)
    # plotly renders its own HTML subset in labels and names: `<` and `&` escaped, quotes left
    # alone (plotly shows an escaped quote as the literal `&quot;`).
    labels = [html.escape(s, quote=False) for s in suites]
    base_name = record.base_version or "base"
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            name=f"{html.escape(str(base_name), quote=False)}: base, this cycle", x=labels, y=[base[s] for s in suites]
        )
    )
    fig.add_trace(go.Bar(name=f"selected, proxy (trial {selected})", x=labels, y=[after.get(s) for s in suites]))
    if full_after:
        fig.add_trace(go.Bar(name="selected, full run (apply)", x=labels, y=[full_after.get(s) for s in suites]))
    if previous is not None:
        name, scores = previous
        fig.add_trace(
            go.Bar(
                name=f"{html.escape(name, quote=False)} at its own release (full)",
                x=labels,
                y=[scores.get(s) for s in suites],
                marker={"pattern": {"shape": "/"}},
            )
        )
    fig.update_layout(
        barmode="group",
        title="Per-suite scores: base vs the selected recipe (and the base at its own release)"
        if previous is not None
        else "Per-suite scores: base vs the selected recipe",
        yaxis_title="suite score (mean acc)",
        template="plotly_white",
        height=420,
    )
    return fig
