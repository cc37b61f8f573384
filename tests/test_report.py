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


# ---- what a release reviewer reads first (issue: a report decided from in one screen) ----------


def test_eval_sampling_error_and_task_flags() -> None:
    from recipe_opt.study import task_moves, value_spread

    # A suite's score is the mean of its tasks': sd = sqrt(sum p(1-p)/n) / k.
    tasks = {"a": {"acc": 0.5, "n": 100.0}, "b": {"acc": 0.9, "n": 25.0}}
    s = value_spread("gain", tasks, new_tasks=["a", "b"], retention={})
    assert s.sampling == pytest.approx(((0.25 / 100 + 0.09 / 25) ** 0.5) / 2)
    assert s.items == (25, 100) and s.seed is None and "steps of 0.040" in s.text()
    assert value_spread("cost", tasks, new_tasks=["a"], retention={}).computed  # a FLOP count: exact
    # Without item counts nothing is claimed.
    assert value_spread("gain", {"a": {"acc": 0.5}}, new_tasks=["a"], retention={}).sd is None

    before = {"diff": {"acc": 0.227, "n": 22.0}, "one": {"acc": 1.0, "n": 40.0}, "up": {"acc": 0.1, "n": 22.0}}
    after = {"diff": {"acc": 0.091, "n": 22.0}, "one": {"acc": 0.975, "n": 40.0}, "up": {"acc": 0.6, "n": 22.0}}
    moves = {m.task: m for m in task_moves(before, after, {"s": ["diff", "one", "up"]})}
    # 3 of 22 items lost: 1.3 standard errors of the change (0.108), more than two items.
    assert moves["diff"].flagged and moves["diff"].se == pytest.approx((0.227 * 0.773 / 22 + 0.091 * 0.909 / 22) ** 0.5)
    assert not moves["one"].flagged  # one item of 40: beyond its tiny binomial error, below two items
    assert not moves["up"].flagged  # moved with its direction
    (unknown,) = task_moves({"t": {"acc": 0.9}}, {"t": {"acc": 0.1}}, {"s": ["t"]})
    assert unknown.se is None and not unknown.flagged  # no item count: noise unknown, not judged


def test_within_noise_uses_declared_noise_and_reruns() -> None:
    from recipe_opt.study import StudyRecord, within_noise
    from tests.reviewer import PICK, reviewer_study

    study = reviewer_study()
    record = StudyRecord.read(study)
    pick, other = record.trial(PICK), record.trial(1)
    a, b = record.spread(pick, "gain"), record.spread(other, "gain")
    assert a.seed == 0.05 and a.seed_source == "declared: the oracle's noise floor"
    assert within_noise(other.values["gain"] - pick.values["gain"], a, b)  # 0.010 apart
    assert not within_noise(0.3, a, b)
    # A selection that re-ran the pick measured its spread: that wins over the declared figure.
    sel = dict(study.user_attrs["selection"])
    sel["reruns"] = {"candidates": [{"trial": PICK, "std": {"gain": 0.004}, "runs": 3}]}
    study.set_user_attr("selection", sel)
    rerun = StudyRecord.read(study).spread(pick, "gain")
    assert rerun.seed == 0.004 and rerun.seed_source == "measured over 3 seeds (re-runs)"


def test_inline_markdown_becomes_tags_and_user_html_stays_text() -> None:
    from recipe_opt.report._text import inline

    assert inline("under `gain-within-gates`, a *safety* suite") == (
        "under <code>gain-within-gates</code>, a <em>safety</em> suite"
    )
    assert inline("`<b>x</b>` <i>y</i>") == "<code>&lt;b&gt;x&lt;/b&gt;</code> &lt;i&gt;y&lt;/i&gt;"
    assert inline("2 * 3 * 4 and `*not em*`") == "2 * 3 * 4 and <code>*not em*</code>"


def test_decision_block_names_the_pick_its_trade_offs_and_what_to_watch(tmp_path: Path) -> None:
    from recipe_opt.report._decision import alternatives
    from recipe_opt.study import StudyRecord
    from tests.reviewer import PICK, reviewer_study

    study = reviewer_study()
    record = StudyRecord.read(study)
    (alt,) = alternatives(record, record.trial(PICK))
    assert alt.trial.number == 1 and alt.within["gain"] and alt.within["cost"] is False
    assert alt.changes == ["replay 0.15 -> 0.30", "steps 600 -> 500"]
    html = write_report(study, tmp_path).read_text()
    top = html[html.index('<section id="decision">') : html.index("</section>")]
    assert "Forecast only: trial 2 passes every gate on its proxy run" in top
    assert "LoRA rank 16, alpha 32 on q_proj, v_proj; full update 600 steps x 8 sequences" in top
    assert "the highest gain" in top and "the most expensive" in top
    assert "0.010 less gain (within noise) for 18% less compute" in top
    assert "<b>Within noise:</b> trial 1 differs from the pick" in top
    assert "<b>demo_diff</b> (new_skills) 0.227 → 0.091 (22 items)" in top
    # Failed gates are named for the crossed trial, in the table and the hover.
    assert "<td>fails arithmetic +0.600 vs the base (bound 0.05); aggregate forgetting +0.300 (bound 0.05)</td>" in html
    assert "fails:\\u003c\\u002fb\\u003e arithmetic +0.600 vs the base" in html  # the hover, as plotly's JSON
    assert "gate: min gain 0.1" in html  # both gates drawn
    # The checklist before apply: gate rows are forecasts, not verdicts; no raw Markdown.
    assert 'class="forecast"' in html and "forecast: pass" in html
    assert "`gain-within-gates`" not in html and "*safety*" not in html
    assert "<code>gain-within-gates</code>" in html
    summary = (tmp_path / "summary.md").read_text()
    assert "| new-task gain | proxy +0.432; full: not applied yet | >= 0.1 | forecast: pass |" in summary


def test_importance_leaves_out_the_deterministic_cost_and_shows_its_spread(tmp_path: Path) -> None:
    import random

    from recipe_opt.report._figures import importances
    from recipe_opt.study import StudyRecord

    rng = random.Random(1)
    study = optuna.create_study(study_name="imp", directions=["maximize", "minimize", "minimize"])
    for _ in range(12):
        lr, warm = rng.uniform(1e-4, 1e-2), rng.uniform(0.0, 0.1)
        gain = lr * 50 + rng.gauss(0, 0.01)
        study.add_trial(
            optuna.trial.create_trial(
                params={"peak_lr": lr, "warmup_fraction": warm},
                distributions={
                    "peak_lr": optuna.distributions.FloatDistribution(1e-4, 1e-2),
                    "warmup_fraction": optuna.distributions.FloatDistribution(0.0, 0.1),
                },
                values=[gain, 0.01, 1.0],
                user_attrs={"metrics": {"gain": gain, "forgetting": 0.01, "cost": 1.0}},
            )
        )
    figs, notes = importances(StudyRecord.read(study))
    assert [name for name, _ in figs] == ["gain", "forgetting"]
    assert len(notes) == 1 and notes[0].startswith("*cost* is not shown")
    bar = figs[0][1].data[0]
    ranked = dict(zip(bar.y, bar.x, strict=True))
    assert ranked["peak_lr"] > ranked["warmup_fraction"]  # gain follows the LR only
    assert len(bar.error_x.array) == 2 and all(sd >= 0 for sd in bar.error_x.array)


def test_family_report_flags_a_task_that_fell_while_its_suite_rose(tmp_path: Path) -> None:
    from recipe_opt.lineage import LineageStore
    from recipe_opt.report import write_family_report
    from recipe_opt.report._skills import skill_moves
    from tests.reviewer import record_release, reviewer_study

    url = f"sqlite:///{tmp_path / 'fam.db'}"
    reviewer_study(url)
    record_release(url)
    with LineageStore(url) as store:
        moves = skill_moves(store.list_versions("fam"))
        flagged = [(v.name, p, m.task) for v, p, m in moves if m.flagged]
        assert flagged == [("v1", "v0", "demo_diff")]
        html = write_family_report(store, url, "fam", tmp_path / "fam").read_text()
    assert "<b>Regressed skills:</b> demo_diff 0.227 → 0.091 in v1" in html
    assert '<table id="skill-flags">' in html and '<table id="decisions">' in html
    assert "every release gate passes" in html and "new-task gain +0.432" in html  # reasons, gates: no hover
