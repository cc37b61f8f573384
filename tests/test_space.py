from __future__ import annotations

import statistics
from pathlib import Path

import optuna
import pytest
import yaml

from recipe_opt.exceptions import ConfigError
from recipe_opt.space import load_search_space

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "search_spaces" / "default.yaml"


def write_space(tmp_path: Path, edit: dict[str, object] | None = None, drop: str | None = None) -> Path:
    data = yaml.safe_load(DEFAULT.read_text())
    data.update(edit or {})
    if drop:
        del data[drop]
    p = tmp_path / "space.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def problems(path: Path, sources: list[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_search_space(path, sources or ["mul", "add_text"])
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("edit", "field", "needle"),
    [
        ({"replay_ratoi": {"fixed": 0.1}}, "replay_ratoi", "unknown key"),
        ({"peak_lr": {"type": "float", "low": 1e-2, "high": 1e-4, "log": True}}, "peak_lr", "`low <= high`"),
        ({"lora_rank": {"type": "int", "low": 64, "high": 8}}, "lora_rank", "(low=64, high=8)"),
        ({"lora_rank": {"type": "int", "low": "eight", "high": 8}}, "lora_rank.low", "integer"),
        ({"schedule": {"type": "categorical", "choices": []}}, "schedule.choices", "at least 1"),
        ({"schedule": {"type": "categorical", "choices": ["cosine", "zigzag"]}}, "schedule", "'zigzag'"),
        ({"replay_ratio": {"type": "float", "low": 0.0, "high": 1.5}}, "replay_ratio", "[0, 0.95]"),
        ({"lora_rank": {"type": "float", "low": 2, "high": 8}}, "lora_rank", "integer range"),
        ({"peak_lr": {"type": "normal", "low": 1, "high": 2}}, "peak_lr", "`fixed: VALUE` or `type:`"),
        ({"peak_lr": {"type": "float", "low": 0.0, "high": 1e-2, "log": True}}, "peak_lr", "log range"),
        ({"target_modules": {"fixed": "mlp_only"}}, "target_modules", "target_module_sets"),
        ({"mixture": {"fixed": {"mul": 0.5, "add_text": 0.6}}}, "mixture.fixed", "sum to 1"),
        ({"mixture": {"type": "simplex", "sources": ["mul", "code"]}}, "mixture.sources", "'code'"),
        ({"steps": [1, 2]}, "steps", "fixed: VALUE"),
    ],
)
def test_each_problem_names_file_and_field(tmp_path: Path, edit: dict[str, object], field: str, needle: str) -> None:
    found = problems(write_space(tmp_path, edit))
    assert any(p.startswith(f"{tmp_path / 'space.yaml'}: {field}:") and needle in p for p in found), found


def test_missing_required_field(tmp_path: Path) -> None:
    found = problems(write_space(tmp_path, drop="peak_lr"))
    assert found == [f"{tmp_path / 'space.yaml'}: peak_lr: required field is missing"]


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    bad = {"replay_ratoi": 1, "lora_rank": {"type": "int", "low": 64, "high": 8}, "batch_size": "big"}
    found = problems(write_space(tmp_path, bad))
    assert len(found) >= 3


def test_not_yaml_and_empty(tmp_path: Path) -> None:
    p = tmp_path / "s.yaml"
    p.write_text("replay_ratio: {type: float, low: 0\n")
    assert "not valid YAML" in problems(p)[0]
    p.write_text("")
    assert problems(p) == [f"{p}: file is empty"]


def test_fixed_values_are_not_searched(tmp_path: Path) -> None:
    space = load_search_space(write_space(tmp_path, {"lora_rank": 16, "peak_lr": {"fixed": 3e-3}}), ["mul", "add_text"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    recipe = space.sample(trial)
    assert recipe.adapter.rank == 16 and recipe.schedule.peak_lr == 3e-3
    assert "lora_rank" not in trial.params and "peak_lr" not in trial.params


def test_simplex_weights_sum_to_one_and_cover_the_simplex() -> None:
    space = load_search_space(DEFAULT, ["a", "b", "c"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    draws = []
    for _ in range(600):
        w = space.sample(study.ask()).mixture.as_dict()
        assert abs(sum(w.values()) - 1) < 1e-9 and min(w.values()) >= 0
        draws.append(w)
    # Uniform on the simplex: each weight has mean 1/3 (Dirichlet(1,1,1)); 600 draws -> s.e. ~0.01.
    for k in "abc":
        assert abs(statistics.mean(d[k] for d in draws) - 1 / 3) < 0.04


def test_params_for_inverts_sample() -> None:
    space = load_search_space(DEFAULT, ["a", "b", "c"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    for _ in range(20):
        trial = study.ask()
        recipe = space.sample(trial)
        again = space.sample(optuna.trial.FixedTrial(space.params_for(recipe)))
        assert again.content_hash == recipe.content_hash


def test_params_for_rejects_out_of_space() -> None:
    space = load_search_space(DEFAULT, ["a", "b"])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    recipe = space.sample(study.ask())
    narrow = load_search_space(DEFAULT, ["a", "c"])
    with pytest.raises(ValueError, match="mixes"):
        narrow.params_for(recipe)
