"""Every shipped YAML loads; study-config errors name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from recipe_opt.config import load_study_config
from recipe_opt.evaluate import load_task
from recipe_opt.exceptions import ConfigError
from recipe_opt.space import load_search_space
from tests.conftest import write_study

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((REPO / "search_spaces").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_search_spaces_load(path: Path) -> None:
    assert load_search_space(path, None).describe()


@pytest.mark.parametrize("path", sorted((REPO / "studies").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_studies_load(path: Path) -> None:
    cfg = load_study_config(path, check_paths=False)
    load_search_space(cfg.search_space_path, list(cfg.sources.new))
    assert cfg.storage_url.startswith("sqlite:///") and cfg.storage_url.endswith(f"studies/{cfg.family}.db")


@pytest.mark.parametrize("path", sorted((REPO / "examples").rglob("study.yaml")), ids=lambda p: p.parent.name)
def test_shipped_example_studies_load(path: Path) -> None:
    # The example's world is built by its script, so only the config and space are checked here.
    cfg = load_study_config(path, check_paths=False)
    load_search_space(cfg.search_space_path, list(cfg.sources.new))
    assert cfg.base_model_kind == "dir" and not cfg.trust_remote_code


@pytest.mark.parametrize("path", sorted((REPO / "evaluators").rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_eval_tasks_load(path: Path) -> None:
    task = load_task(path, REPO)
    assert task.metrics[0] == ("acc", True)


def _edit(tmp_path: Path, edit: dict[str, object]) -> Path:
    data = yaml.safe_load((REPO / "studies" / "demo.yaml").read_text())
    for dotted, value in edit.items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[leaf]
        else:
            node[leaf] = value
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


_DELETE = object()


@pytest.mark.parametrize(
    ("edit", "field", "needle"),
    [
        ({"sampler.name": "bayes"}, "sampler.name", "'tpe'"),
        ({"proxy.fraction": 1.5}, "proxy.fraction", "less than or equal to 1"),
        ({"proxy.batch_size": "many"}, "proxy.batch_size", "integer"),
        ({"trials": {}}, "trials", "n_trials"),
        ({"objectives": ["forgetting", "cost"]}, "objectives", "gain"),
        ({"evaluation.retention": []}, "evaluation.retention", "at least 1"),
        ({"evaluation.backend": "vllm"}, "evaluation.backend", "'lm-eval'"),
        ({"name": "my study!"}, "name", "letters"),
        ({"proxy.warmup": 3}, "proxy.warmup", "unknown key"),
        ({"base_model": _DELETE}, "base_model", "required"),
        ({"trials.budget": "25%"}, "trials.budget", "share of one full update (`0.25x`)"),
        ({"trials.budget": "0x"}, "trials.budget", "budget > 0"),
        ({"multi_fidelity": {"rungs": [0.5, 0.25]}}, "multi_fidelity.rungs", "increasing"),
        ({"noise": {"gain": -0.03}}, "noise.gain", "greater than or equal to 0"),
        ({"noise": {"spread": 0.03}}, "noise.spread", "unknown key"),
        ({"multi_fidelity": {"screen_fraction": 0.3, "rungs": [0.25]}}, "multi_fidelity", "screen_fraction < rungs[0]"),
    ],
)
def test_study_problems_name_file_and_field(tmp_path: Path, edit: dict[str, object], field: str, needle: str) -> None:
    path = _edit(tmp_path, edit)
    with pytest.raises(ConfigError) as info:
        load_study_config(path, check_paths=False)
    lines = [str(p) for p in info.value.problems]
    assert any(line.startswith(f"{path}: {field}:") and needle in line for line in lines), lines


def test_missing_paths_are_reported_together(tmp_path: Path) -> None:
    path = _edit(tmp_path, {"base_model": "./nowhere/v0", "search_space": "nope.yaml"})
    with pytest.raises(ConfigError) as info:
        load_study_config(path)
    fields = {p.field for p in info.value.problems}
    assert {"base_model", "search_space", "data_root"} <= fields
    # Shaped like a hub id (org/name) and not a directory: fetched when the study runs, not checked here.
    path = _edit(tmp_path, {"base_model": "nowhere/v0", "search_space": "nope.yaml"})
    with pytest.raises(ConfigError) as info:
        load_study_config(path)
    assert "base_model" not in {p.field for p in info.value.problems}


@pytest.mark.parametrize(
    ("base", "expected"), [("v0", "v1"), ("v9", "v10"), ("prod-2026.3", "prod-2026.4"), ("base", "base-1")]
)
def test_apply_version_defaults_to_the_next_number(tmp_path: Path, base: str, expected: str) -> None:
    path = write_study(tmp_path, tmp_path / "w")
    path.write_text(path.read_text().replace("base_version: v0", f"base_version: {base}"))
    cfg = load_study_config(path, check_paths=False)
    assert cfg.apply_version == expected
    assert cfg.apply_weights_root == (tmp_path / "w" / "models").resolve()  # beside the base model


def test_release_checks_bounds_per_suite_fall_back_to_the_aggregate(tmp_path: Path) -> None:
    from recipe_opt.study import release_checks

    gates = "{max_forgetting: 0.05, max_forgetting_per_suite: {knowledge: 0.2}, max_cost: 1.0}"
    cfg = load_study_config(write_study(tmp_path, tmp_path / "w", gates=gates), check_paths=False)
    per_suite = {"arithmetic": 0.06, "strings": 0.0, "knowledge": 0.15}
    checks = {c.gate: c for c in release_checks(cfg, {"gain": 0.0, "forgetting": 0.04, "cost": 2.0}, per_suite, "v0")}
    assert not checks["regression:arithmetic"].passed and checks["regression:arithmetic"].bound == 0.05
    assert checks["regression:knowledge"].passed and checks["regression:knowledge"].bound == 0.2
    assert checks["max_forgetting"].passed
    assert not checks["min_gain"].passed and checks["min_gain"].bound is None  # unset: gain must be > 0
    assert not checks["max_cost"].passed


@pytest.mark.parametrize(
    ("design", "budget", "resolved"),
    [("auto", None, "mixed"), ("auto", "0.5x", "informed"), ("informed", None, "informed"), ("mixed", "0.5x", "mixed")],
)
def test_initial_design_auto_is_the_arm_that_won_with_and_without_a_budget(
    tmp_path: Path, design: str, budget: str | None, resolved: str
) -> None:
    trials = f"trials: {{n_trials: 4, budget: {budget}}}" if budget else ""
    cfg = write_study(tmp_path, tmp_path / "w", sampler=f"{{name: gp, initial_design: {design}}}", extra=trials)
    loaded = load_study_config(cfg, check_paths=False)
    assert loaded.sampler.initial_design == design and loaded.initial_design == resolved
    # Left out, it is `auto`.
    plain = write_study(tmp_path / "p", tmp_path / "w", sampler="{name: gp}", extra=trials)
    assert load_study_config(plain, check_paths=False).initial_design == ("informed" if budget else "mixed")
