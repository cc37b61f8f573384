"""End to end: `recipe-opt search` on the tiny world, then what it leaves behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from recipe_opt.recipe import Recipe
from recipe_opt.space import load_search_space
from tests.conftest import write_study

pytestmark = pytest.mark.integration


def search(cfg: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "recipe_opt", "search", str(cfg), *extra], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_three_trial_study_end_to_end(tiny_world: Path, tmp_path: Path) -> None:
    cfg = write_study(tmp_path / "studies", tiny_world, name="e2e", n_trials=3, backend="lm-eval")
    r = search(cfg)
    assert "Feasible Pareto front of e2e" in r.stdout and "selected trial" in r.stdout
    assert "Traceback" not in r.stderr

    url = f"sqlite:///{tmp_path / 'studies' / 'demo.db'}"
    study = optuna.load_study(study_name="e2e", storage=url)
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 3
    base = study.user_attrs["base_evaluation"]["suites"]
    assert base["arithmetic"] >= 0.9 and base["new_skills"] < 0.3
    for t in trials:
        recipe = Recipe.from_dict(t.user_attrs["recipe"])
        m = t.user_attrs["metrics"]
        assert t.values == pytest.approx([m["gain"], m["forgetting"], m["cost"]])
        assert set(m["forgetting_per_suite"]) == {"arithmetic", "strings", "knowledge"}
        # aggregate = weighted mean (knowledge has weight 2)
        fps = m["forgetting_per_suite"]
        assert m["forgetting"] == pytest.approx((fps["arithmetic"] + fps["strings"] + 2 * fps["knowledge"]) / 4)
        assert m["gain"] == pytest.approx(m["suites_after"]["new_skills"] - base["new_skills"])
        assert m["train"]["proxy_steps"] == max(10, round(0.1 * recipe.budget.steps))
        assert m["cost"] > 0

    selection = study.user_attrs["selection"]
    recipe_file = Path(selection["recipe_file"])
    assert recipe_file == tmp_path / "studies" / "out" / "recipe.yaml"
    chosen = Recipe.load(recipe_file)
    selected_trial = study.trials[selection["trial_number"]]
    assert chosen.content_hash == selected_trial.user_attrs["recipe_hash"]
    assert selected_trial.number in {t.number for t in study.best_trials}

    engine = sa.create_engine(url)
    with engine.connect() as c:
        version = c.execute(sa.text("select id, family, name, parent_id from lineage_model_versions")).one()
        assert (version.family, version.name, version.parent_id) == ("demo", "v0", None)
        cycle = c.execute(
            sa.text("select id, study_name, base_version_id, data_manifest from lineage_update_cycles")
        ).one()
        assert (cycle.study_name, cycle.base_version_id) == ("e2e", version.id)
        assert set(json.loads(cycle.data_manifest)) == {"new/mul", "new/add_text", "replay/old"}
        sel = c.execute(sa.text("select cycle_id, trial_number, recipe_id from lineage_selections")).one()
        assert (sel.cycle_id, sel.trial_number) == (cycle.id, selection["trial_number"])
        stored = c.execute(
            sa.text("select content_hash from lineage_recipes where id = :i"), {"i": sel.recipe_id}
        ).one()
        assert stored.content_hash == chosen.content_hash
    engine.dispose()

    html = (tmp_path / "studies" / "out" / "index.html").read_text()
    assert 'id="pareto-front"' in html and 'src="plotly.min.js"' in html
    assert "cdn" not in html.lower() and "https://" not in html.split("<body>")[1].split('id="pareto-front"')[0]
    assert chosen.short_hash in html  # hover text carries each trial's recipe
    assert (tmp_path / "studies" / "out" / "plotly.min.js").stat().st_size > 1_000_000

    # Re-selection from the CLI: no new trials, a new selection record per call.
    for args in (
        ["--policy", "knee"],
        ["--policy", "utility", "--weights", "cost=1"],
        ["--reruns", "1", "--top-k", "2"],
    ):
        r = subprocess.run(
            [sys.executable, "-m", "recipe_opt", "select", str(cfg), *args], capture_output=True, text=True, timeout=300
        )
        assert r.returncode == 0, r.stdout + r.stderr
    study = optuna.load_study(study_name="e2e", storage=url)
    assert len(study.trials) == 3
    last = study.user_attrs["selection"]
    assert last["policy"] == "gain-within-gates" and len(last["reruns"]["candidates"]) == min(2, len(study.best_trials))
    assert all(c["runs"] == 2 for c in last["reruns"]["candidates"])
    engine = sa.create_engine(url)
    with engine.connect() as c:
        assert c.execute(sa.text("select count(*) from lineage_selections")).scalar() == 4
        cheapest = min(study.best_trials, key=lambda t: t.user_attrs["metrics"]["cost"]).number
        picks = c.execute(sa.text("select policy, trial_number from lineage_selections order by id")).all()
        assert [p.policy for p in picks] == ["gain-within-gates", "knee", "utility", "gain-within-gates"]
        assert picks[2].trial_number == cheapest
    engine.dispose()


def test_resume_continues_and_refuses_a_changed_space(tiny_world: Path, tmp_path: Path) -> None:
    cfg = write_study(tmp_path, tiny_world, name="resume", n_trials=2)
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    search(cfg)
    first = optuna.load_study(study_name="resume", storage=url)
    first_params = [t.params for t in first.trials]
    base_eval = first.user_attrs["base_evaluation"]

    # A trial left RUNNING by a killed process (recipe sampled, training under way) is failed and
    # its recipe re-queued.
    first.enqueue_trial(first_params[0])
    orphan = first.ask()
    load_search_space(tmp_path / "space.yaml", ["mul", "add_text"]).sample(orphan)
    assert orphan.number == 2 and orphan.params == first_params[0]

    r = search(cfg, "--n-trials", "4")
    assert "resuming study 'resume' at 2 finished trials" in r.stdout
    study = optuna.load_study(study_name="resume", storage=url)
    states = [t.state.name for t in study.trials]
    assert states.count("COMPLETE") == 4 and states[2] == "FAIL"
    assert "interrupted" in study.trials[2].user_attrs["failure"]
    assert [t.params for t in study.trials[:2]] == first_params  # old trials untouched
    assert study.trials[3].params == study.trials[2].params  # the interrupted recipe ran again
    assert study.trials[4].params not in first_params  # re-seeded sampler: no replay of old draws
    assert study.user_attrs["base_evaluation"] == base_eval  # base scored once per study

    r = search(cfg, "--n-trials", "4")
    assert "nothing to run" in r.stdout
    assert len(optuna.load_study(study_name="resume", storage=url).trials) == 5

    # A changed search space is a different study: resuming it is refused, and nothing is added.
    space = tmp_path / "space.yaml"
    space.write_text(space.read_text().replace("high: 0.5}", "high: 0.4}"))
    r = subprocess.run(
        [sys.executable, "-m", "recipe_opt", "search", str(cfg), "--n-trials", "6"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "different search space" in r.stderr, r.stdout + r.stderr
    assert len(optuna.load_study(study_name="resume", storage=url).trials) == 5
