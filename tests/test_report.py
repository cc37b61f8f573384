"""The HTML report from a study's storage alone: offline, escaped, every trial's recipe in the hover."""

from __future__ import annotations

from pathlib import Path

import optuna

from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule
from recipe_opt.report import write_report


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


def test_report_of_a_study_without_complete_trials(tmp_path: Path) -> None:
    study = optuna.create_study(study_name="empty", directions=["maximize", "minimize"])
    html = write_report(study, tmp_path).read_text()
    assert "no complete trials yet" in html
