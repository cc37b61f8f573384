"""Two update cycles end to end, as a user runs them: v0 -> v1 -> v2 through search, apply and a
lineage warm start; a rejected release; rollback; the lineage, fidelity and report commands.

The cycles run once per session (`two_cycles` in tests/flows.py); the browser test reads the
same reports."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from recipe_opt.lineage import LineageStore
from recipe_opt.recipe import Recipe
from tests.flows import TwoCycles, cli

pytestmark = pytest.mark.integration


def test_cycle1_rejected_then_released(two_cycles: TwoCycles) -> None:
    run = two_cycles
    r = run.out["apply-strict"]
    assert "rejected demo/v1-strict" in r.stdout and "below the bound 5" in r.stdout
    # Tightened release gates reject the update: registered as rejected, v0 stays current.
    assert run.after_reject == ("rejected", "v0")
    out = run.out["apply-c1"].stdout
    assert "released demo/v1" in out and "proxy vs full" in out
    # The decision first, then where the reports are, then the next cycle's own config by name.
    assert out.index("Release checks for demo/v1") < out.index("released demo/v1") < out.index("report:")
    assert f"next cycle: recipe-opt search {run.c2}" in out.replace("\n", "")
    assert "0 failed;" in run.out["search-c1"].stdout and "(0 in this run)" not in run.out["search-c1"].stdout
    v1_dir = run.models / "v1"
    assert {"config.json", "model.safetensors", "tokenizer.json", "recipe.yaml"} <= {p.name for p in v1_dir.iterdir()}
    assert (v1_dir / "adapter" / "adapter_config.json").is_file()
    assert not (run.models / "v1.partial").exists()
    study1 = optuna.load_study(study_name="c1", storage=run.db)
    selected = study1.trials[study1.user_attrs["selection"]["trial_number"]]
    assert Recipe.load(v1_dir / "recipe.yaml").content_hash == selected.user_attrs["recipe_hash"]
    with LineageStore(run.db) as store:
        v1 = store.get_version("demo/v1")
        assert (v1.parent, v1.status) == ("v0", "released")
        assert {e.suite for e in v1.evaluations if e.cycle == "c1"} == {
            "new_skills",
            "arithmetic",
            "strings",
            "knowledge",
        }
        checks = {c["gate"]: c for c in v1.decision.checks}  # type: ignore[union-attr]
        assert checks["regression:knowledge"]["bound"] == 0.3 and all(c["passed"] for c in checks.values())
    assert "already exists" in run.out["apply-c1-again"].stderr  # refused before any training


def test_cycle2_warm_starts_from_the_cycle_that_made_its_base(two_cycles: TwoCycles) -> None:
    run = two_cycles
    r = run.out["search-c2"]
    assert "demo/v1 was produced by study 'c1'" in r.stdout
    assert "mixture set to equal weights" in r.stdout  # cycle 2 mixes other sources than cycle 1
    study1 = optuna.load_study(study_name="c1", storage=run.db)
    selected = study1.trials[study1.user_attrs["selection"]["trial_number"]]
    study2 = optuna.load_study(study_name="c2", storage=run.db)
    priors = [t for t in study2.trials if t.user_attrs.get("origin", "").startswith("prior")]
    # Enqueued recipes beyond the budget stay WAITING for a resumed run.
    own = [t for t in study2.trials if t not in priors and t.state.name != "WAITING"]
    # Cycle 1's three trials inform the sampler; the budget of four counts only this cycle's.
    assert len(priors) == 3 and [t.state.name for t in own] == ["COMPLETE"] * 4
    assert study2.user_attrs["selection"]["trial_number"] in {t.number for t in own}
    first = own[0]
    assert first.user_attrs["origin"] == f"warm start: c1 trial {selected.number} (selected)"
    # Every parameter of the carried recipe, not only some: the CLI's warm start once planned on
    # the unresolved space and dropped the LoRA targets (they were drawn again).
    assert "target_modules dropped" not in r.stdout
    carried = {k: v for k, v in selected.params.items() if not k.startswith("mix.")}
    assert {k: first.params[k] for k in carried} == carried
    assert (
        Recipe.from_dict(first.user_attrs["recipe"]).adapter == Recipe.from_dict(selected.user_attrs["recipe"]).adapter
    )
    assert first.params["mix.max"] == 0.5  # equal weights over the new sources
    assert study2.user_attrs["base_evaluation"]["suites"]["cycle1_skills"] > 0  # v1 learned cycle 1


def test_reports_compare_with_the_parent_and_across_cycles(two_cycles: TwoCycles) -> None:
    run = two_cycles
    assert "family report:" in run.out["apply-c2"].stdout
    # Cycle 1's base was registered, not made by apply: nothing of its own release to compare.
    summary1 = (run.tmp / "out" / "summary.md").read_text()
    row1 = next(ln for ln in summary1.splitlines() if ln.startswith("| inheritance from demo/v0"))
    assert "not made by `apply`" in row1 and row1.endswith("| info |")
    # Cycle 2's base v1 was: its release scores (cycle 1's suites, regrouped into cycle 2's four
    # retention suites) against v2's full-fidelity scores, each suite under its own bound.
    summary2 = (run.tmp / "out2" / "summary.md").read_text()
    row2 = next(ln for ln in summary2.splitlines() if ln.startswith("| inheritance from demo/v1"))
    assert "| 4 suites; worst " in row2 and "at release ->" in row2 and "in v2 (drop" in row2
    assert row2.endswith(("| pass |", "| **FAIL** |"))
    report2 = (run.tmp / "out2" / "index.html").read_text()
    assert "v1 at its own release (full)" in report2  # the retention view's fourth bar

    family = (run.tmp / "demo-lineage" / "index.html").read_text()
    for div in ("lineage-tree", "fronts", "skills", "cycles"):
        assert f'id="{div}"' in family, div
    # One row per cycle, and the rejected attempt in the tree.
    assert "<td>c1</td><td>v0 → v1</td><td>released</td><td>3</td>" in family
    assert "<td>c2</td><td>v1 → v2</td><td>released</td><td>4</td>" in family
    assert "<code>v1-strict</code> — rejected via <code>c1</code>" in family
    assert family.count("plotly.min.js") == 1 and (run.tmp / "demo-lineage" / "plotly.min.js").is_file()

    out = run.tmp / "lineage-again"
    r = cli("lineage", "report", "demo", "--storage", run.db, "--out", str(out))
    assert (out / "index.html").is_file() and str(out / "index.html") in r.stdout.replace("\n", "")
    r = cli("lineage", "report", "demoo", "--storage", run.db, "--out", str(run.tmp / "none"), code=2)
    assert "did you mean 'demo'" in r.stderr.lower() and not (run.tmp / "none").exists()


def test_lineage_commands_and_rollback(two_cycles: TwoCycles) -> None:
    run = two_cycles
    r = cli("lineage", "tree", "demo", "--storage", str(run.c2))
    lines = r.stdout.splitlines()
    depth = {n: next(i for i, ln in enumerate(lines) if f"{n} (" in ln) for n in ("v0", "v1", "v2", "v1-strict")}
    assert depth["v0"] < depth["v1"] < depth["v2"] and "via c2" in lines[depth["v2"]]
    assert "rejected" in lines[depth["v1-strict"]]
    r = cli("lineage", "show", "v2", "--storage", run.db)
    assert "parent v1" in r.stdout and "cycle2/max" in r.stdout and "release from c2" in r.stdout
    r = cli("fidelity", "demo", "--storage", run.db)
    assert "3 recipes" in r.stdout and "Spearman rho" in r.stdout
    # Three recipes, from two cycles: said as what they are, not as a verdict.
    assert "n = 3: too few to judge" in r.stdout and "come from 2 update cycles" in r.stderr.replace("\n", " ")

    # Last: it moves the family's current version (the reports above were written before).
    r = cli("lineage", "rollback", "demo", "--storage", run.db)
    assert "v2 -> v1" in r.stdout
    r = cli("lineage", "list", "--storage", run.db)
    v1_row = next(ln for ln in r.stdout.splitlines() if "demo/v1 " in ln)
    assert "current" in v1_row
    r = cli("lineage", "show", "v9", "--storage", run.db, code=2)
    assert r.stderr.startswith("error: no model version 'v9'")


def test_register_a_foundation_release(tmp_path: Path, tiny_world: Path) -> None:
    db = f"sqlite:///{tmp_path / 'lineage.db'}"
    r = cli(
        "lineage",
        "register",
        "base-2026",
        "--family",
        "fm",
        "--weights",
        str(tiny_world / "models" / "v0"),
        "--storage",
        db,
    )
    assert "registered fm/base-2026 (foundation) as current" in r.stdout
    with LineageStore(db) as store:
        v = store.get_version("fm/base-2026")
        assert v.weights_checksum and len(v.weights_checksum) == 64
    r = cli("lineage", "register", "x", "--family", "fm", "--weights", str(tmp_path), "--storage", db, code=2)
    assert "not a checkpoint directory" in r.stderr
    r = cli("lineage", "list", "--storage", f"sqlite:///{tmp_path / 'none.db'}", code=2)
    assert "no database at" in r.stderr and not (tmp_path / "none.db").exists()


def test_the_price_and_the_baselines_are_shown_beside_the_pick(two_cycles: TwoCycles) -> None:
    run = two_cycles

    # The search's price, in full updates of its pick: after search, and after apply measured.
    def said(step: str) -> str:  # the console wraps long lines at 140 columns
        return " ".join(run.out[step].stdout.split())

    assert "price: this search spent " in said("search-c1")
    assert "x the full update of the selected recipe (3 trials)" in said("search-c1")
    assert "x the measured full run of the selected recipe" in said("apply-c2")
    summary = (run.tmp / "out2" / "summary.md").read_text()
    assert "**Price:** this search spent " in summary and "x the measured full run" in summary
    page = (run.tmp / "out2" / "index.html").read_text()
    assert 'id="price"' in page and 'id="baselines"' in page
    family = next(run.tmp.glob("**/demo-lineage/index.html")).read_text()
    assert "search price (full updates)" in family and " TFLOP = " in family
    with LineageStore(run.db) as store:
        prices = store.search_prices("demo")
        decision = store.get_version("demo/v2").decision
        v1_recipe = store.producing_recipe("demo", "v1")
        v2_recipe = store.producing_recipe("demo", "v2")
    assert prices["c1"][0] and prices["c1"][0] > 0 and prices["c1"][1] == 3
    # The baselines, trained at full fidelity beside the pick and judged by the same gates.
    assert decision is not None and v1_recipe is not None
    baselines = decision.metrics["baselines"]
    assert [b["label"] for b in baselines] == ["current (v1)", "litgpt"]
    # `current` is cycle 1's recipe on this cycle's mixture (cycle 1's sources are replay pools now).
    assert v2_recipe is not None
    assert baselines[0]["recipe_hash"] == replace(v1_recipe, mixture=v2_recipe.mixture).content_hash
    assert {c["gate"] for c in baselines[1]["gates"]} == {c["gate"] for c in decision.checks}
    out = said("apply-c2")
    assert "The pick against the baselines (full fidelity)" in out and "current (v1)" in out
    assert "| gate | pick | current (v1) | litgpt |" in summary
    assert summary.count("| every gate |") == 1


def test_train_scores_any_recipe_at_full_fidelity_as_apply_does(two_cycles: TwoCycles, tmp_path: Path) -> None:
    import json

    run = two_cycles
    out = tmp_path / "run.json"
    r = cli("train", str(run.tmp / "out" / "recipe.yaml"), "--study", str(run.c1), "--out", str(out))
    assert "Release gates for" in r.stdout and ("passes every gate" in r.stdout or "fails a gate" in r.stdout)
    record = json.loads(out.read_text())
    with LineageStore(run.db) as store:
        v1 = store.get_version("demo/v1")
    assert v1.decision is not None
    full = v1.decision.metrics["full"]
    assert record["recipe_hash"] == v1.decision.recipe_hash and record["tflop"] == pytest.approx(full["cost"])
    # The same recipe, seed and path as `apply`; apply scores the merged checkpoint, `train` the
    # adapter in place: the same up to float rounding in the merge (one item is 0.045 of a task).
    assert record["gain"] == pytest.approx(full["gain"], abs=0.05)
    assert set(record["forgetting_per_suite"]) == set(full["forgetting_per_suite"])
    assert record["passes_gates"] == all(c["passed"] for c in record["gates"])
