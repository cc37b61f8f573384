"""The search's price in full updates of its pick, and where users see it (issue 17)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from recipe_opt.study import StudyRecord, search_price
from recipe_opt.study._attrs import ATTR_ORIGIN, ATTR_PROXY_TFLOPS, ATTR_SELECTION, PRIOR
from tests.test_selection import recipe as _recipe


def _study() -> optuna.Study:
    """Three trials of this cycle (complete, pruned, failed), a prior observation, a pick."""
    study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
    fd = optuna.distributions.FloatDistribution(0.0, 1.0)
    for i, (state, spent) in enumerate(
        [
            (optuna.trial.TrialState.COMPLETE, 0.5),
            (optuna.trial.TrialState.PRUNED, 0.2),
            (optuna.trial.TrialState.FAIL, 0.1),
        ]
    ):
        values = {"gain": 0.4, "forgetting": 0.01, "cost": 0.25}
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                values=[0.4, 0.01, 0.25] if state == optuna.trial.TrialState.COMPLETE else None,
                params={"x": 0.1 * i},
                distributions={"x": fd},
                user_attrs={
                    "recipe": _recipe(400 + i).to_dict(),
                    "metrics": {**values, "forgetting_per_suite": {}},
                    ATTR_PROXY_TFLOPS: spent,
                },
            )
        )
    # An observation carried over from an earlier cycle: it cost this cycle nothing.
    study.add_trial(
        optuna.trial.create_trial(
            values=[0.3, 0.0, 0.2],
            params={"x": 0.9},
            distributions={"x": fd},
            user_attrs={"recipe": _recipe(300).to_dict(), "metrics": {}, ATTR_ORIGIN: PRIOR, ATTR_PROXY_TFLOPS: 9.0},
        )
    )
    study.set_user_attr(ATTR_SELECTION, {"trial_number": 0, "reruns": {"proxy_tflops": 0.2}})
    return study


def test_the_price_counts_every_trial_of_the_cycle_and_the_reruns_against_the_picks_update() -> None:
    price = search_price(StudyRecord.read(_study()))
    # 0.5 + 0.2 (pruned: its steps were spent) + 0.1 (failed) + 0.2 (re-runs); the prior is free.
    assert price.search_tflop == pytest.approx(1.0) and price.trials == 3 and price.rerun_tflop == pytest.approx(0.2)
    assert price.update_tflop == pytest.approx(0.25) and not price.measured
    assert price.ratio == pytest.approx(4.0)
    assert price.line() == (
        "this search spent 1 TFLOP = 4.0 x the full update of the selected recipe (3 trials, re-runs 0.2 TFLOP of it)"
    )
    measured = search_price(StudyRecord.read(_study()), measured_update_tflop=0.5)
    assert measured.ratio == pytest.approx(2.0) and "x the measured full run" in measured.line()


def test_without_a_pick_the_price_says_nothing_was_selected() -> None:
    study = _study()
    study.set_user_attr(ATTR_SELECTION, None)
    price = search_price(StudyRecord.read(study))
    assert price.ratio is None and price.search_tflop == pytest.approx(0.8)
    assert price.line() == "this search spent 0.8 TFLOP (3 trials); nothing was selected"


def test_the_lineage_keeps_each_cycles_price(tmp_path: Path) -> None:
    from recipe_opt.lineage import LineageStore

    with LineageStore(f"sqlite:///{tmp_path / 'l.db'}") as store:
        v0 = store.ensure_version("fam", "v0", weights_uri="/m/v0")
        cycle = store.ensure_cycle(
            "c1", base_version_id=v0, optuna_study_id=1, objectives={}, data_manifest={}, search_space={}
        )
        store.ensure_cycle(
            "c0", base_version_id=v0, optuna_study_id=2, objectives={}, data_manifest={}, search_space={}
        )
        store.record_selection(
            cycle,
            _recipe(400),
            trial_number=0,
            rule="r",
            reason="why",
            values={"gain": 0.4},
            metrics={},
            n_complete=1,
            search_tflop=1.0,
            n_trials=3,
        )
        assert store.search_prices("fam") == {"c1": (1.0, 3), "c0": (None, None)}
