"""The HTML report from a study's storage alone: offline, escaped, every trial's recipe in the hover."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from recipe_opt.lineage import VersionInfo
from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule
from recipe_opt.report import write_report
from tests.flows import STUDY_REPORT_PLOTS


def _recipe(replay: float) -> Recipe:
    return Recipe(
        Mixture.from_mapping({"<b>src</b>": 1.0}),
        Replay(replay),
        Schedule(1e-3, 0.1, "cosine"),
        Adapter(8, 2.0, ("q_proj",)),
        Budget(100, 8),
    )


def test_report_escapes_and_is_offline(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="<script>alert(1)</script>", directions=["maximize", "minimize", "minimize"])
    for i, (gain, forgetting, cost) in enumerate([(0.5, 0.3, 1.0), (0.4, 0.01, 1.2), (0.1, 0.5, 2.0)]):
        r = _recipe(0.1 * i)
        study.add_trial(
            optuna.trial.create_trial(
                values=[gain, forgetting, cost],
                user_attrs={
                    "recipe": r.to_dict(),
                    "summary": r.summary(),
                    "metrics": {"gain": gain, "forgetting": forgetting, "cost": cost},
                },
            )
        )
    study.set_user_attr("selection", {"trial_number": 1, "rule": "<rule>", "reason": "why", "recipe_hash": "x" * 64})
    html = write_report(study, tmp_path).read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>src</b>" not in html and "&lt;b&gt;src&lt;/b&gt;" in html
    assert "selected (trial 1)" in html
    for t in study.trials:
        assert Recipe.from_dict(t.user_attrs["recipe"]).short_hash in html
    assert 'src="plotly.min.js"' in html and (tmp_path / "plotly.min.js").is_file()
    assert "cdn.plot.ly" not in html
    assert '<table id="trials" class="sortable">' in html and "table.sortable" in html  # sortable, inline JS


def test_report_of_a_study_without_complete_trials(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="empty", directions=["maximize", "minimize"])
    html = write_report(study, tmp_path).read_text()
    assert "no complete trials yet" in html


def _study_with_selection(url: str) -> optuna.Study:
    study = optuna.create_study(study_name="cyc|le", storage=url, directions=["maximize", "minimize", "minimize"])
    study.set_user_attr(
        "config",
        {
            "family": "fam",
            "base_version": "v0",
            "gates": {"max_forgetting": 0.05, "max_forgetting_per_suite": {"k": 0.2}},
        },
    )
    r = _recipe(0.3)
    metrics = {"gain": 0.5, "forgetting": 0.04, "cost": 1.0, "forgetting_per_suite": {"a": 0.07, "k": 0.01}}
    study.add_trial(
        optuna.trial.create_trial(values=[0.5, 0.04, 1.0], user_attrs={"recipe": r.to_dict(), "metrics": metrics})
    )
    study.set_user_attr("selection", {"trial_number": 0, "policy": "knee", "reason": "a | b", "recipe_hash": "x"})
    return study


def test_checklist_and_summary_before_and_after_apply(tmp_path: Path) -> None:
    from recipe_opt.lineage import LineageStore, SuiteScore
    from recipe_opt.report import release_checklist

    url = f"sqlite:///{tmp_path / 'fam.db'}"
    study = _study_with_selection(url)
    before = {i.check: i for i in release_checklist(study)}
    # Before apply the proxy is the forecast: `a` has no own bound, so the aggregate's 0.05 applies.
    assert before["regression on a"].status == "FAIL" and before["regression on a"].bound == "<= 0.05"
    assert before["regression on k"].status == "pass" and before["release decision against fam/v0"].status == "pending"
    assert before["inheritance from fam/v0 (its own release scores)"].measured == "fam/v0 is not in the lineage store"
    assert "fam/v0" in before["rollback target"].measured

    store = LineageStore(url)
    v0 = store.ensure_version("fam", "v0", weights_uri="/m/v0")
    store.ensure_cycle(
        "cyc|le", base_version_id=v0, optuna_study_id=1, objectives={}, data_manifest={}, search_space={}
    )
    full = {"gain": 0.55, "forgetting": 0.0, "cost": 1.0, "forgetting_per_suite": {"a": 0.0, "k": 0.0}}
    store.record_apply(
        study_name="cyc|le",
        name="v1",
        weights_uri="/m/v1",
        weights_checksum="c" * 64,
        tier=None,
        recipe=_recipe(0.3),
        trial_number=0,
        released=True,
        checks=[],
        reasons=["every release gate passes"],
        metrics={"full": full},
        parent_scores=[SuiteScore("a", "retention", 1.0, {}, "native", None)],
        scores=[SuiteScore("a", "retention", 1.0, {}, "native", None)],
        proxy=metrics_of(study),
        full=full,
    )
    store.close()
    html = write_report(study, tmp_path / "out", storage_url=url).read_text()
    assert 'id="release-checklist"' in html and "fam/v1 (released, now current)" in html
    summary = (tmp_path / "out" / "summary.md").read_text()
    # Judged on the full run now: `a` regressed 0.07 as a proxy but 0.00 in full.
    assert "| regression on a | proxy +0.070; full +0.000 | <= 0.05 | pass |" in summary
    assert "# Release summary: `cyc\\|le`" in summary and "**Why:** a \\| b" in summary  # pipes escaped
    assert "```yaml" in summary and "content_hash:" in summary


def metrics_of(study: optuna.Study) -> dict[str, float]:
    return {k: float(v) for k, v in study.trials[0].user_attrs["metrics"].items() if k != "forgetting_per_suite"}


def test_every_view_renders_from_a_real_study(tmp_path: Path) -> None:
    import random

    rng = random.Random(0)
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(study_name="views", storage=url, directions=["maximize", "minimize", "minimize"])
    study.set_user_attr("objectives", ["gain", "forgetting", "cost"])
    study.set_user_attr("base_evaluation", {"suites": {"new": 0.1, "old": 1.0}, "tasks": {}})
    dists = {
        "replay_ratio": optuna.distributions.FloatDistribution(0.0, 0.5),
        "peak_lr": optuna.distributions.FloatDistribution(1e-4, 2e-2, log=True),
        "lora_rank": optuna.distributions.IntDistribution(2, 64, log=True),
        "steps": optuna.distributions.IntDistribution(200, 1000, step=50),
    }
    for _ in range(8):
        params = {
            "replay_ratio": rng.uniform(0, 0.5),
            "peak_lr": 10 ** rng.uniform(-4, -1.7),
            "lora_rank": rng.choice([2, 4, 8, 16, 32]),
            "steps": rng.choice(range(200, 1001, 50)),
        }
        gain, forgetting = rng.uniform(0, 0.7), 0.5 - params["replay_ratio"]
        cost = params["steps"] / 1000
        r = _recipe(params["replay_ratio"])
        study.add_trial(
            optuna.trial.create_trial(
                params=params,
                distributions=dists,
                values=[gain, forgetting, cost],
                user_attrs={
                    "recipe": r.to_dict(),
                    "summary": r.summary(),
                    "metrics": {
                        "gain": gain,
                        "forgetting": forgetting,
                        "cost": cost,
                        "suites_after": {"new": 0.1 + gain, "old": 1.0 - forgetting},
                    },
                },
                system_attrs={"constraints:max_forgetting": forgetting - 0.2},
            )
        )
    study.set_user_attr("selection", {"trial_number": 3, "policy": "knee", "reason": "r"})
    html = write_report(study, tmp_path / "out").read_text()
    for div in (*STUDY_REPORT_PLOTS, "release-checklist"):
        assert f'id="{div}"' in html, div
    assert "not enough complete trials" not in html
    assert html.count("plotly.min.js") == 1  # plotly.js loaded once, from beside the page


def test_small_study_says_what_it_cannot_show(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="one", directions=["maximize", "minimize", "minimize"])
    r = _recipe(0.1)
    study.add_trial(
        optuna.trial.create_trial(
            values=[0.5, 0.1, 1.0],
            user_attrs={"recipe": r.to_dict(), "metrics": {"gain": 0.5, "forgetting": 0.1, "cost": 1.0}},
        )
    )
    html = write_report(study, tmp_path).read_text()
    assert "hypervolume history: not enough complete trials yet" in html
    assert 'id="history"' not in html


def _version(name: str, status: str, cycle: str | None, tasks: dict[str, float], *, scored_in: str) -> VersionInfo:
    from datetime import UTC, datetime

    from recipe_opt.lineage import DecisionInfo, SuiteScore

    now = datetime.now(UTC)
    decision = DecisionInfo("release", "fam", name, None, cycle, None, [], [], {}, now) if cycle else None
    scores = [SuiteScore("whatever", "retention", 0.0, {t: {"acc": v} for t, v in tasks.items()}, "native", scored_in)]
    return VersionInfo(
        1, "fam", name, None, "patch", status, "/w", None, None, None, now, True, [decision] if decision else [], scores
    )


def test_inheritance_regroups_the_parents_release_scores_into_this_cycles_suites(tmp_path: Path) -> None:
    from recipe_opt.lineage import SuiteScore
    from recipe_opt.report import release_checklist, release_suite_scores

    study = _study_with_selection(f"sqlite:///{tmp_path / 'fam.db'}")
    config = dict(study.user_attrs["config"])
    config["evaluation"] = {
        "new_task": {"name": "fresh", "tasks": ["t_new"]},
        "retention": [{"name": "a", "tasks": ["t1", "t2"]}, {"name": "k", "tasks": ["t3"]}],
    }
    study.set_user_attr("config", config)
    # v0 was made by cycle "c0", where t1..t3 sat in other suites; the later scoring as a base
    # ("c1", here t3 = 0.2) must not count as its release scores.
    parent = _version("v0", "released", "c0", {"t1": 1.0, "t2": 0.8, "t3": 0.9}, scored_in="c0")
    parent = replace(
        parent, evaluations=[*parent.evaluations, *_version("v0", "", None, {"t3": 0.2}, scored_in="c1").evaluations]
    )
    assert release_suite_scores(parent, {"a": ["t1", "t2"], "k": ["t3"], "fresh": ["t_new"]}) == pytest.approx(
        {"a": 0.9, "k": 0.9}
    )
    before = {i.check: i for i in release_checklist(study, None, parent)}[
        "inheritance from fam/v0 (its own release scores)"
    ]
    assert before.status == "pending" and "a 0.900, k 0.900" in before.measured

    # After apply: v1's full scores in this cycle ("cyc|le"). `k` dropped 0.3 > its bound 0.2.
    now = [
        SuiteScore("a", "retention", 0.9, {}, "native", "cyc|le"),
        SuiteScore("k", "retention", 0.6, {}, "native", "cyc|le"),
    ]
    applied = replace(_version("v1", "released", "cyc|le", {}, scored_in="cyc|le"), evaluations=now)
    after = {i.check: i for i in release_checklist(study, applied, parent)}[
        "inheritance from fam/v0 (its own release scores)"
    ]
    assert after.status == "FAIL" and "worst k: 0.900 at release -> 0.600 in v1 (drop +0.300)" in after.measured
    ok = replace(applied, evaluations=[now[0], replace(now[1], score=0.85)])
    assert {i.check: i for i in release_checklist(study, ok, parent)}[after.check].status == "pass"
