"""`recipe-opt export`: the selected recipe as HF Trainer / LLaMA-Factory / axolotl / JSON config.

The exported values are parsed back and compared with the recipe's; the hf-trainer export is fed
to the real `TrainingArguments`, `LoraConfig` and `interleave_datasets`, which proves its names.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import recipe_opt
from recipe_opt.config import StudyConfig, load_study_config
from recipe_opt.data import source_shares
from recipe_opt.exceptions import ConfigError
from recipe_opt.export import EXPORT_FORMATS, export_recipe
from recipe_opt.export._formats import ALL_LINEAR_MODULES, HF_SCHEDULER_NAMES
from recipe_opt.recipe import SCHEDULE_SHAPES, Adapter, Budget, Mixture, Recipe, Replay, Schedule

REPO = Path(__file__).resolve().parents[1]
LLAMA_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _recipe(
    *,
    mixture: dict[str, float] | None = None,
    replay: float = 0.2,
    shape: str = "linear",
    rank: int = 16,
    alpha_ratio: float = 2.0,
    targets: tuple[str, ...] = ("q_proj", "v_proj"),
) -> Recipe:
    return Recipe(
        Mixture.from_mapping(mixture or {"mul": 0.75, "add_text": 0.25}),
        Replay(replay),
        Schedule(3e-4, 0.12, shape, weight_decay=0.01),
        Adapter(rank, alpha_ratio, targets, dropout=0.05),
        Budget(120, 4),
        seed=7,
    ).with_stamp()


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _write_study(root: Path, *, name: str = "cyc", replay: str | None = None) -> Path:
    """A study config with real data files: two new sources, two weighted replay pools, and a chat
    file and a `datasets` text corpus for the format tests."""
    data = root / "data"
    for source in ("mul", "add_text", "old_a", "old_b"):
        _jsonl(data / f"{source}.jsonl", [{"prompt": f"{source} {i} =", "completion": f" {i}"} for i in range(50)])
    _jsonl(
        data / "chat.jsonl",
        [{"conversation": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}],
    )
    (root / "models" / "v0").mkdir(parents=True, exist_ok=True)
    replay = replay or "old_a: {path: old_a.jsonl, weight: 1.0}\n    old_b: {path: old_b.jsonl, weight: 3.0}"
    cfg = root / "study.yaml"
    cfg.write_text(
        f"""
name: {name}
base_model: models/v0
data_root: data
sources:
  new:
    mul: {{path: mul.jsonl}}
    add_text: {{path: add_text.jsonl, format: prompt_completion}}
    chat: {{path: chat.jsonl, columns: {{messages: conversation}}}}
    corpus: {{dataset: someorg/corpus, subset: en, split: train, format: text, columns: {{text: body}}}}
  replay:
    {replay}
search_space: {REPO}/search_spaces/default.yaml
evaluation:
  tasks_dir: {REPO}/evaluators/demo
  new_task: {{name: new_skills, tasks: [demo_mul]}}
  retention:
    - {{name: arithmetic, tasks: [demo_add]}}
proxy: {{fraction: 0.1, batch_size: 4, max_seq_len: 32}}
trials: {{n_trials: 2}}
"""
    )
    return cfg


@pytest.fixture
def study(tmp_path: Path) -> StudyConfig:
    return load_study_config(_write_study(tmp_path / "study"), check_paths=False)


def _expected_shares(recipe: Recipe, replay: dict[str, float]) -> dict[str, float]:
    return source_shares(recipe.mixture.as_dict(), recipe.replay.ratio, replay)


def _yaml_export(recipe: Recipe, fmt: str, study: StudyConfig | None = None) -> tuple[dict[str, Any], str, list[str]]:
    result = export_recipe(recipe, fmt, study=study)
    return yaml.safe_load(result.text), result.text, result.warnings


def _header_ok(text: str, recipe: Recipe) -> None:
    header = text.split("\n\n", 1)[0].splitlines()
    assert all(line.startswith("#") for line in header), header
    assert f"# recipe content_hash: {recipe.content_hash}" in header
    assert f"recipe-opt {recipe_opt.__version__}" in header[0]


# ---- hf-trainer ---------------------------------------------------------------------------------
def test_hf_trainer_maps_every_field_and_warns_about_the_mixture() -> None:
    recipe = _recipe()
    result = export_recipe(recipe, "hf-trainer")
    data = json.loads(result.text)
    assert result.suggested_name == "hf_trainer_lora.json"
    assert next(iter(data)) == "_recipe_opt"
    assert data["_recipe_opt"]["content_hash"] == recipe.content_hash
    assert data["_recipe_opt"]["recipe_opt_version"] == recipe_opt.__version__
    assert data["_recipe_opt"]["warnings"] == result.warnings
    assert data["training_arguments"] == {
        "learning_rate": 3e-4,
        "lr_scheduler_type": "linear",
        "warmup_steps": 14,  # round(0.12 * 120) = round(14.4), as recipe-opt's trainer: not ceil, not floor
        "weight_decay": 0.01,
        "max_steps": 120,
        "per_device_train_batch_size": 4,
        "gradient_accumulation_steps": 1,
        "seed": 7,
    }
    assert data["lora_config"] == {
        "r": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "target_modules": ["q_proj", "v_proj"],
        "task_type": "CAUSAL_LM",
    }
    mix = data["data_mixture"]
    # Without a study the replay pools are unknown: one placeholder pool takes the replay share.
    assert [s["name"] for s in mix["sources"]] == ["mul", "add_text", "replay"]
    assert [s["data_files"] for s in mix["sources"]] == ["mul", "add_text", "replay"]
    assert mix["probabilities"] == pytest.approx(list(_expected_shares(recipe, {"replay": 1.0}).values()), abs=1e-9)
    assert mix["probabilities"] == pytest.approx([0.6, 0.2, 0.2], abs=1e-9)
    assert sum(mix["probabilities"]) == pytest.approx(1.0, abs=1e-9)
    assert mix["seed"] == 7 and mix["stopping_strategy"] == "all_exhausted"
    w = "\n".join(result.warnings)
    assert "placeholders" in w and "--study" in w
    assert any(x.startswith("mixture.weights:") and "interleave_datasets" in x for x in result.warnings)
    assert any(x.startswith("replay.ratio:") for x in result.warnings)
    assert data["model_name_or_path"] == "PATH/TO/BASE_MODEL"


def test_hf_trainer_with_a_study_writes_files_formats_and_weighted_replay_pools(study: StudyConfig) -> None:
    recipe = _recipe(mixture={"mul": 0.5, "chat": 0.3, "corpus": 0.2}, replay=0.2)
    result = export_recipe(recipe, "hf-trainer", study=study)
    data = json.loads(result.text)
    assert data["model_name_or_path"] == str(study.base_model_path)
    sources = {s["name"]: s for s in data["data_mixture"]["sources"]}
    assert list(sources) == ["mul", "chat", "corpus", "old_a", "old_b"]
    expected = _expected_shares(recipe, {"old_a": 1.0, "old_b": 3.0})
    assert data["data_mixture"]["probabilities"] == pytest.approx(list(expected.values()), abs=1e-9)
    assert sources["old_b"]["probability"] == pytest.approx(0.2 * 3 / 4)
    assert sources["old_a"]["role"] == "replay" and sources["mul"]["role"] == "new"
    assert sources["mul"]["data_files"] == str(study.data_root_path / "mul.jsonl")
    assert Path(sources["mul"]["data_files"]).is_absolute()
    assert sources["mul"]["format"] == "prompt_completion"  # `auto`, decided from the first row
    assert sources["chat"]["format"] == "chat" and sources["chat"]["columns"] == {"messages": "conversation"}
    assert sources["corpus"] == {
        "name": "corpus",
        "role": "new",
        "probability": pytest.approx(0.8 * 0.2),
        "dataset": "someorg/corpus",
        "subset": "en",
        "split": "train",
        "format": "text",
        "columns": {"text": "body"},
    }
    assert not any("placeholder" in w or "not found" in w for w in result.warnings), result.warnings


def test_hf_trainer_export_is_accepted_by_transformers_peft_and_datasets(tmp_path: Path, study: StudyConfig) -> None:
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    datasets = pytest.importorskip("datasets")
    recipe = _recipe(targets=LLAMA_LINEAR)
    data = json.loads(export_recipe(recipe, "hf-trainer", study=study).text)
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "out"), **data["training_arguments"])
    assert args.learning_rate == recipe.schedule.peak_lr
    assert args.max_steps == recipe.budget.steps and args.per_device_train_batch_size == recipe.budget.batch_size
    assert args.seed == recipe.seed and args.weight_decay == recipe.schedule.weight_decay
    assert args.lr_scheduler_type.value == recipe.schedule.shape
    assert args.get_warmup_steps(recipe.budget.steps) == round(recipe.schedule.warmup_fraction * recipe.budget.steps)
    lora = peft.LoraConfig(**data["lora_config"])
    assert lora.r == recipe.adapter.rank and lora.lora_alpha / lora.r == recipe.adapter.alpha_ratio
    assert set(lora.target_modules) == set(LLAMA_LINEAR) and lora.lora_dropout == recipe.adapter.dropout
    # Every schedule shape recipe-opt allows is a name Trainer knows.
    for shape in SCHEDULE_SHAPES:
        assert shape in HF_SCHEDULER_NAMES
        transformers.trainer_utils.SchedulerType(shape)

    # The mixture, as the warning tells the user to build it, follows the recipe's shares.
    mix = data["data_mixture"]
    parts = []
    for s in mix["sources"]:
        rows = [json.loads(line) for line in Path(s["data_files"]).read_text().splitlines()]
        parts.append(datasets.Dataset.from_list([{"source": s["name"], **r} for r in rows]))
    mixed = datasets.interleave_datasets(
        parts, probabilities=mix["probabilities"], seed=mix["seed"], stopping_strategy=mix["stopping_strategy"]
    )
    drawn = mixed["source"]
    for s in mix["sources"]:
        assert drawn.count(s["name"]) / len(drawn) == pytest.approx(s["probability"], abs=0.05), s["name"]


# ---- llama-factory ------------------------------------------------------------------------------
def test_llama_factory_maps_every_field(study: StudyConfig) -> None:
    recipe = _recipe()
    cfg, text, warnings = _yaml_export(recipe, "llama-factory", study)
    _header_ok(text, recipe)
    assert cfg["stage"] == "sft" and cfg["do_train"] is True and cfg["finetuning_type"] == "lora"
    assert (cfg["lora_rank"], cfg["lora_alpha"], cfg["lora_dropout"]) == (16, 32, 0.05)
    assert cfg["lora_target"] == "q_proj,v_proj"
    assert cfg["learning_rate"] == 3e-4 and cfg["lr_scheduler_type"] == "linear"
    assert cfg["warmup_steps"] == 14 and cfg["weight_decay"] == 0.01 and cfg["max_steps"] == 120
    assert cfg["per_device_train_batch_size"] == 4 and cfg["gradient_accumulation_steps"] == 1
    assert cfg["seed"] == 7
    assert cfg["model_name_or_path"] == str(study.base_model_path)
    assert cfg["template"] == "empty"  # plain prompt + completion, as recipe-opt trains
    names = cfg["dataset"].split(",")
    probs = [float(p) for p in cfg["interleave_probs"].split(",")]
    assert cfg["mix_strategy"] == "interleave_over"
    expected = _expected_shares(recipe, {"old_a": 1.0, "old_b": 3.0})
    assert names == list(expected)
    assert probs == pytest.approx(list(expected.values()), abs=1e-9)
    assert sum(probs) == pytest.approx(1.0, abs=1e-9)
    # The dataset_info.json entries in the header register every dataset with its resolved file.
    entries = {}
    for line in text.splitlines():
        if line.startswith("#   {"):
            entries.update(json.loads(line[4:]))
    assert list(entries) == names
    assert entries["mul"] == {
        "file_name": str(study.data_root_path / "mul.jsonl"),
        "columns": {"prompt": "prompt", "response": "completion"},
    }
    assert any(w.startswith("dataset:") and "dataset_info.json" in w for w in warnings)
    assert not any("mixture.weights" in w or "replay.ratio" in w for w in warnings)  # nothing dropped


def test_llama_factory_all_linear_chat_and_text_sources(study: StudyConfig) -> None:
    recipe = _recipe(mixture={"mul": 0.5, "chat": 0.3, "corpus": 0.2}, targets=LLAMA_LINEAR)
    cfg, text, warnings = _yaml_export(recipe, "llama-factory", study)
    assert cfg["lora_target"] == "all"
    assert "template" not in cfg  # chat needs the model's own template, not `empty`
    entries = {}
    for line in text.splitlines():
        if line.startswith("#   {"):
            entries.update(json.loads(line[4:]))
    assert entries["chat"]["formatting"] == "sharegpt"
    assert entries["chat"]["columns"] == {"messages": "conversation"}
    assert entries["chat"]["tags"]["assistant_tag"] == "assistant"
    assert entries["corpus"] == {
        "hf_hub_url": "someorg/corpus",
        "subset": "en",
        "split": "train",
        "columns": {"response": "body"},
    }
    assert any(w.startswith("template:") for w in warnings)


# ---- axolotl ------------------------------------------------------------------------------------
def test_axolotl_maps_every_field_and_warns_about_dropped_weights(study: StudyConfig) -> None:
    recipe = _recipe(mixture={"mul": 0.5, "chat": 0.3, "corpus": 0.2})
    cfg, text, warnings = _yaml_export(recipe, "axolotl", study)
    _header_ok(text, recipe)
    assert cfg["base_model"] == str(study.base_model_path)
    assert cfg["adapter"] == "lora" and (cfg["lora_r"], cfg["lora_alpha"], cfg["lora_dropout"]) == (16, 32, 0.05)
    assert cfg["lora_target_modules"] == ["q_proj", "v_proj"] and "lora_target_linear" not in cfg
    assert cfg["learning_rate"] == 3e-4 and cfg["lr_scheduler"] == "linear" and cfg["warmup_steps"] == 14
    assert cfg["weight_decay"] == 0.01 and cfg["max_steps"] == 120 and cfg["seed"] == 7
    assert cfg["micro_batch_size"] == 4 and cfg["gradient_accumulation_steps"] == 1
    datasets = {d["path"]: d for d in cfg["datasets"]}
    mul = datasets[str(study.data_root_path / "mul.jsonl")]
    assert mul["ds_type"] == "json" and mul["type"]["field_instruction"] == "prompt"
    assert mul["type"]["field_output"] == "completion"
    chat = datasets[str(study.data_root_path / "chat.jsonl")]
    assert chat["type"] == "chat_template" and chat["field_messages"] == "conversation"
    assert cfg["chat_template"] == "tokenizer_default"
    assert datasets["someorg/corpus"] == {
        "path": "someorg/corpus",
        "name": "en",
        "split": "train",
        "type": ("completion"),
        "field": "body",
    }
    assert len(cfg["datasets"]) == 5  # the two replay pools too
    assert not any(k in cfg for k in ("interleave_probs", "probabilities", "weights"))
    mixture = next(w for w in warnings if w.startswith("mixture.weights:"))
    assert "no per-dataset sampling weights" in mixture and "mul 0.4" in mixture
    assert any(w.startswith("replay.ratio:") and "0.2" in w for w in warnings)
    assert all(f"# WARNING: {w}" in text for w in warnings)


def test_axolotl_all_linear_and_an_alpha_it_cannot_hold() -> None:
    cfg, _, warnings = _yaml_export(_recipe(targets=LLAMA_LINEAR, replay=0.0), "axolotl")
    assert cfg["lora_target_linear"] is True and "lora_target_modules" not in cfg
    assert frozenset(LLAMA_LINEAR) == ALL_LINEAR_MODULES
    assert not any(w.startswith("replay.ratio:") for w in warnings)  # no replay, nothing lost
    cfg, _, warnings = _yaml_export(_recipe(rank=3, alpha_ratio=1.5), "axolotl")
    assert cfg["lora_alpha"] == 4 and isinstance(cfg["lora_alpha"], int)  # 4.5 does not fit an int
    assert any(w.startswith("adapter.alpha_ratio:") and "4.5" in w for w in warnings)


# ---- json ---------------------------------------------------------------------------------------
def test_json_is_the_recipe_itself_and_loads_back(tmp_path: Path) -> None:
    recipe = _recipe()
    result = export_recipe(recipe, "json")
    data = json.loads(result.text)
    assert result.warnings == [] and result.suggested_name == "recipe.json"
    assert data["_recipe_opt"]["content_hash"] == recipe.content_hash == data["content_hash"]
    assert data["_recipe_opt"]["recipe_opt_version"] == recipe_opt.__version__
    assert {k: v for k, v in data.items() if k != "_recipe_opt"} == json.loads(recipe.to_json())
    path = tmp_path / "r.json"
    path.write_text(result.text)
    assert Recipe.load(path) == recipe


# ---- errors -------------------------------------------------------------------------------------
def test_every_schedule_shape_and_format_exports() -> None:
    for shape in SCHEDULE_SHAPES:
        recipe = _recipe(shape=shape)
        assert yaml.safe_load(export_recipe(recipe, "llama-factory").text)["lr_scheduler_type"] == shape
        assert yaml.safe_load(export_recipe(recipe, "axolotl").text)["lr_scheduler"] == shape
    for fmt in EXPORT_FORMATS:
        assert export_recipe(_recipe(), fmt.replace("-", "_").upper()).format == fmt


def test_unknown_format_and_a_recipe_from_another_study(study: StudyConfig) -> None:
    with pytest.raises(ConfigError, match=r"--format: unknown export format 'axolot'; did you mean 'axolotl'\?"):
        export_recipe(_recipe(), "axolot")
    with pytest.raises(ConfigError, match="formats: hf-trainer, llama-factory, axolotl, json"):
        export_recipe(_recipe(), "xyzzy")
    with pytest.raises(ConfigError, match=r"sources.new: the recipe mixes source\(s\) \['nope'\]"):
        export_recipe(_recipe(mixture={"mul": 0.5, "nope": 0.5}), "axolotl", study=study)


# ---- the command line ---------------------------------------------------------------------------
def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "recipe_opt", "export", *map(str, args)], capture_output=True, text=True, timeout=120
    )


def test_cli_unknown_format_is_one_line_exit_2_and_writes_nothing(tmp_path: Path) -> None:
    recipe = _recipe().save(tmp_path / "recipe.yaml")
    out = tmp_path / "out.yaml"
    r = run(recipe, "--format", "llama_factroy", "--out", out)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: --format: unknown export format 'llama_factroy'; did you mean 'llama-factory'? "
        "(formats: hf-trainer, llama-factory, axolotl, json)"
    ]
    assert r.stdout == "" and not out.exists() and not (tmp_path / "out.yaml.tmp").exists()


def test_cli_out_writes_the_file_and_warns_on_stderr(tmp_path: Path) -> None:
    cfg = _write_study(tmp_path / "s")
    recipe = _recipe()
    path = recipe.save(tmp_path / "recipe.yaml")
    out = tmp_path / "cfg" / "axolotl.yaml"
    r = run(path, "--format", "axolotl", "--study", cfg, "--out", out)
    assert r.returncode == 0, r.stderr
    expected = export_recipe(recipe, "axolotl", study=load_study_config(cfg, check_paths=False))
    assert out.read_text() == expected.text
    assert not (out.parent / "axolotl.yaml.tmp").exists()
    assert f"wrote {out}" in r.stdout
    assert [ln for ln in r.stderr.splitlines()] == [f"warning: {w}" for w in expected.warnings]


def test_cli_study_config_as_recipe_and_out_directory(tmp_path: Path) -> None:
    cfg_path = _write_study(tmp_path / "s", name="cycle-1")
    cfg = load_study_config(cfg_path, check_paths=False)
    recipe = _recipe()
    recipe.save(cfg.output_path / "recipe.yaml")  # where `recipe-opt search` / `select` put it
    r = run(cfg_path, "-f", "llama-factory", "-o", tmp_path)
    assert r.returncode == 0, r.stderr
    written = tmp_path / "llama_factory_lora.yaml"
    assert written.read_text() == export_recipe(recipe, "llama-factory", study=cfg).text
    assert yaml.safe_load(written.read_text())["model_name_or_path"] == str(cfg.base_model_path)
    # A directory that does not exist yet, named with a trailing slash, is created.
    r = run(cfg_path, "-f", "axolotl", "-o", f"{tmp_path / 'configs'}/")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "configs" / "axolotl_lora.yaml").is_file()
    # Printed to stdout when there is no --out: the file's text, nothing else.
    r = run(cfg_path, "--format", "json")
    assert r.returncode == 0 and json.loads(r.stdout)["content_hash"] == recipe.content_hash


def test_cli_failed_export_writes_nothing(tmp_path: Path) -> None:
    cfg = _write_study(tmp_path / "s")
    foreign = _recipe(mixture={"mul": 0.5, "elsewhere": 0.5}).save(tmp_path / "recipe.yaml")
    out = tmp_path / "out.json"
    r = run(foreign, "--format", "hf-trainer", "--study", cfg, "--out", out)
    assert r.returncode == 2
    assert r.stderr.startswith(f"error: {cfg.resolve()}: sources.new: the recipe mixes source(s) ['elsewhere']")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))
    # A study that has not selected a recipe yet.
    r = run(cfg, "--format", "json", "--out", out)
    assert r.returncode == 2 and "no selected recipe at" in r.stderr and not out.exists()


def test_export_imports_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "import recipe_opt.export, recipe_opt.cli._export\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'optuna') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
