"""The release checklist, filled with measured values, and `summary.md` for a pull request.

Built from the study's storage alone: the selected trial's proxy values against the study's
gates, and, once `recipe-opt apply` has run, the full-fidelity values and release decision the
lineage recorded for this cycle. The rollback target is the study's base version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from recipe_opt.evaluate import PRIMARY_METRIC
from recipe_opt.lineage import VersionInfo
from recipe_opt.recipe import Recipe
from recipe_opt.study import ATTR_METRICS, ATTR_RECIPE, pareto_front, trial_values

__all__ = ["ChecklistItem", "release_checklist", "release_suite_scores", "write_summary"]


@dataclass(frozen=True)
class ChecklistItem:
    check: str
    measured: str
    bound: str
    status: str  # pass | FAIL | info | pending


def _status(ok: bool | None) -> str:
    return "info" if ok is None else ("pass" if ok else "FAIL")


def study_suites(study: optuna.Study, *, retention_only: bool = False) -> dict[str, list[str]]:
    """Suite name -> its tasks, as the study's config defines them (new-task suite first)."""
    evaluation = (study.user_attrs.get("config") or {}).get("evaluation") or {}
    suites = [] if retention_only else [evaluation.get("new_task") or {}]
    suites += list(evaluation.get("retention") or [])
    return {str(s["name"]): list(s.get("tasks") or []) for s in suites if s.get("name")}


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
    study: optuna.Study, applied: VersionInfo | None, parent: VersionInfo | None, ref: str, bounds: dict[str, float]
) -> ChecklistItem:
    """The new version against its parent's own release scores, suite by suite (retention suites).

    The regression rows compare with the base as scored in this cycle; this row asks whether
    what the parent was released with survives, so a base that drifted, or a suite that was
    regrouped between cycles, cannot hide a loss.
    """
    check = f"inheritance from {ref} (its own release scores)"
    if parent is None:
        return ChecklistItem(check, f"{ref} is not in the lineage store", "", "info")
    was = release_suite_scores(parent, study_suites(study, retention_only=True))
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
    now = {sc.suite: sc.score for sc in applied.evaluations if sc.cycle == study.study_name}
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


def release_checklist(
    study: optuna.Study, applied: VersionInfo | None = None, parent: VersionInfo | None = None
) -> list[ChecklistItem]:
    """One row per release question, with the proxy value and, once applied, the full-run value.

    `applied` is the version this cycle's `apply` registered, `parent` the base version as the
    lineage knows it (both None without a lineage store).
    """
    config: dict[str, Any] = study.user_attrs.get("config") or {}
    gates: dict[str, Any] = config.get("gates") or {}
    selection = study.user_attrs.get("selection") or {}
    if "trial_number" not in selection:
        return [ChecklistItem("selected recipe", "none: no recipe passes the gates yet", "", "FAIL")]
    trial = study.trials[int(selection["trial_number"])]
    proxy = trial_values(trial)
    per_suite = dict((trial.user_attrs.get(ATTR_METRICS) or {}).get("forgetting_per_suite", {}))
    decision = applied.decision if applied else None
    full = (decision.metrics.get("full") or {}) if decision else {}
    full_suite = dict(full.get("forgetting_per_suite", {}))

    def both(value: float, full_value: float | None, spec: str) -> str:
        text = f"proxy {format(value, spec)}"
        return text + (f"; full {format(full_value, spec)}" if full_value is not None else "; full: not applied yet")

    items = []
    bounds: dict[str, float] = {}
    for suite, drop in per_suite.items():
        bound = (gates.get("max_forgetting_per_suite") or {}).get(suite, gates.get("max_forgetting"))
        if bound is not None:
            bounds[suite] = float(bound)
        # Judged on the full run once there is one (that is what the release decision used),
        # on the proxy until then (a forecast).
        worst = full_suite.get(suite, drop)
        items.append(
            ChecklistItem(
                f"regression on {suite}",
                both(drop, full_suite.get(suite), "+.3f"),
                "-" if bound is None else f"<= {bound:g}",
                _status(None if bound is None else worst <= bound),
            )
        )
    mf = gates.get("max_forgetting")
    worst = full.get("forgetting", proxy["forgetting"])
    items.append(
        ChecklistItem(
            "aggregate forgetting",
            both(proxy["forgetting"], full.get("forgetting"), "+.3f"),
            "-" if mf is None else f"<= {mf:g}",
            _status(None if mf is None else worst <= mf),
        )
    )
    mg = gates.get("min_gain")
    least = full.get("gain", proxy["gain"])
    items.append(
        ChecklistItem(
            "new-task gain",
            both(proxy["gain"], full.get("gain"), "+.3f"),
            f">= {mg:g}" if mg is not None else "> 0",
            _status(least >= mg if mg is not None else least > 0),
        )
    )
    mc = gates.get("max_cost")
    cost = full.get("cost", proxy.get("cost", 0.0))
    items.append(
        ChecklistItem(
            "cost of the full update (TFLOP)",
            both(proxy.get("cost", 0.0), full.get("cost"), ".3g"),
            "-" if mc is None else f"<= {mc:g}",
            _status(None if mc is None else cost <= mc),
        )
    )
    safety = [s for s in per_suite if "safety" in s.lower()]
    items.append(
        ChecklistItem(
            "safety suite",
            f"configured: {', '.join(safety)}" if safety else "none configured (add a retention suite named *safety*)",
            "",
            "info",
        )
    )
    base = config.get("base_version", "?")
    family = config.get("family", "?")
    items.append(_inheritance(study, applied, parent, f"{family}/{base}", bounds))
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


def _md(text: str) -> str:
    """Table-cell safe: pipes escaped, newlines flattened."""
    return text.replace("|", "\\|").replace("\n", " ")


def write_summary(
    study: optuna.Study, out_dir: Path, applied: VersionInfo | None = None, parent: VersionInfo | None = None
) -> Path:
    """`summary.md`: the selected recipe and the filled checklist, fit for a release document or PR."""
    import yaml

    selection = study.user_attrs.get("selection") or {}
    config: dict[str, Any] = study.user_attrs.get("config") or {}
    family, base = config.get("family", "?"), config.get("base_version", "?")
    lines = [f"# Release summary: `{_md(study.study_name)}`", ""]
    decision = applied.decision if applied else None
    if applied is not None:
        lines += [f"**Update:** `{_md(family)}/{_md(base)}` -> `{_md(applied.ref)}`, **{applied.status}**.", ""]
    else:
        lines += [f"**Update:** from `{_md(family)}/{_md(base)}`; not applied yet (`recipe-opt apply`).", ""]
    if "trial_number" in selection:
        trial = study.trials[int(selection["trial_number"])]
        recipe = Recipe.from_dict(trial.user_attrs[ATTR_RECIPE])
        v = trial_values(trial)
        lines += [
            f"**Selected:** trial {trial.number} under `{_md(str(selection.get('policy', '')))}`: gain "
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
        lines += [
            f"**Why:** {_md(str(selection.get('reason', '')))}",
            "",
            f"**Recipe** `{recipe.short_hash}`: {recipe.summary()}",
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
    lines += [
        "## Release checklist",
        "",
        "Each check is judged on the full run once `apply` has run, on the proxy (a forecast) until then.",
        "",
        "| check | measured | bound | status |",
        "|---|---|---|---|",
    ]
    for item in release_checklist(study, applied, parent):
        status = f"**{item.status}**" if item.status == "FAIL" else item.status
        lines.append(f"| {_md(item.check)} | {_md(item.measured)} | {_md(item.bound)} | {status} |")
    front = sorted(pareto_front(study), key=lambda t: -trial_values(t)["gain"])
    if front:
        lines += [
            "",
            f"## Feasible Pareto front ({len(front)} {'trial' if len(front) == 1 else 'trials'}, proxy values)",
            "",
            "| trial | gain | forgetting | cost (TFLOP) | recipe |",
            "|---|---|---|---|---|",
        ]
        for t in front:
            v = trial_values(t)
            summary = Recipe.from_dict(t.user_attrs[ATTR_RECIPE]).summary() if ATTR_RECIPE in t.user_attrs else ""
            lines.append(
                f"| {t.number} | {v['gain']:+.3f} | {v['forgetting']:+.3f} | {v.get('cost', 0.0):.3g} | "
                f"`{_md(summary)}` |"
            )
    path = out_dir / "summary.md"
    tmp = out_dir / "summary.md.tmp"
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
