"""Bad input, table-driven: every malformed file, model, data set, storage URL or option the
command line is given ends in exit status 2 and one line on stderr, `error: <where>: <what>`,
that names the file and field (or the file and line, or the option); never a traceback, never a
password, and nothing half-written: no study database, no report, no recipe file, no tables in
the PostgreSQL schema the study points at.

Each case starts from a study that is valid in every respect (`test_the_unbroken_study_is_valid`
checks that) and breaks one thing. Most cases run the CLI in-process (`CliRunner`, ~0.1-1 s); a
few run it as users do, as `python -m recipe_opt`, to prove the real exit status.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.conftest import PG_URL, REPO, _postgres_url

PASSWORD = "s3cret-pw"
PG_HOST = "127.0.0.1:5432"


# ---- the unbroken setup -------------------------------------------------------------------------
@dataclass
class Setup:
    """One case's world: a copy of the tiny world's data and model, a study and its space."""

    root: Path
    study: dict[str, Any]
    space: dict[str, Any]
    study_text: str | None = None
    space_text: str | None = None
    pg_url: str = ""
    schema: str = ""

    @property
    def study_path(self) -> Path:
        return self.root / "s" / "study.yaml"

    @property
    def space_path(self) -> Path:
        return self.root / "s" / "space.yaml"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def model(self) -> Path:
        return self.root / "model"

    def expand(self, text: str) -> str:
        for key, value in (
            ("study", self.study_path),
            ("space", self.space_path),
            ("data", self.data),
            ("model", self.model),
            ("root", self.root),
            ("pg", self.pg_url),
            ("schema", self.schema),
        ):
            text = text.replace("{" + key + "}", str(value))
        return text

    def write(self) -> None:
        self.study_path.parent.mkdir(parents=True, exist_ok=True)
        self.study_path.write_text(self.study_text if self.study_text is not None else yaml.safe_dump(self.study))
        self.space_path.write_text(self.space_text if self.space_text is not None else yaml.safe_dump(self.space))


def make_setup(root: Path, world: Path) -> Setup:
    shutil.copytree(world / "data", root / "data")
    shutil.copytree(world / "models" / "v0", root / "model")
    study: dict[str, Any] = {
        "name": "bad-input",
        "family": "demo",
        "base_version": "v0",
        "base_model": str(root / "model"),
        "data_root": str(root / "data"),
        "sources": {
            "new": {"mul": {"path": "cycle1/mul.jsonl"}, "add_text": {"path": "cycle1/add_text.jsonl"}},
            "replay": {"old": {"path": "replay/old.jsonl"}},
        },
        "search_space": "space.yaml",
        "evaluation": {
            "backend": "native",
            "tasks_dir": str(REPO / "evaluators" / "demo"),
            "new_task": {"name": "new_skills", "tasks": ["demo_mul", "demo_add_text"]},
            "retention": [
                {"name": "arithmetic", "tasks": ["demo_add"]},
                {"name": "strings", "tasks": ["demo_rev", "demo_copy"]},
                {"name": "knowledge", "tasks": ["demo_lookup"]},
            ],
        },
        "proxy": {"fraction": 0.1, "batch_size": 16, "max_seq_len": 32, "device": "cpu"},
        "trials": {"n_trials": 1},
        "sampler": {"name": "random", "initial_design": "none"},
        "gates": {"max_forgetting": None},
        "seed": 0,
        "output_dir": "out",
        "storage": "sqlite:///study.db",
    }
    space = yaml.safe_load((REPO / "search_spaces" / "default.yaml").read_text())
    return Setup(root, study, space)


# ---- how a case breaks it -----------------------------------------------------------------------
Edit = Callable[[Setup], None]


def _expand_value(setup: Setup, value: Any) -> Any:
    if isinstance(value, str):
        return setup.expand(value)
    if isinstance(value, dict):
        return {k: _expand_value(setup, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_value(setup, v) for v in value]
    return value


def _parent(mapping: dict[str, Any], dotted: str) -> tuple[dict[str, Any], str]:
    *path, key = dotted.split(".")
    for part in path:
        mapping = mapping[part]
    return mapping, key


def study_set(dotted: str, value: Any) -> Edit:
    def edit(s: Setup) -> None:
        parent, key = _parent(s.study, dotted)
        parent[key] = _expand_value(s, value)

    return edit


def study_del(dotted: str) -> Edit:
    def edit(s: Setup) -> None:
        parent, key = _parent(s.study, dotted)
        del parent[key]

    return edit


def study_text(text: str) -> Edit:
    def edit(s: Setup) -> None:
        s.study_text = s.expand(text)

    return edit


def space_set(key: str, value: Any) -> Edit:
    def edit(s: Setup) -> None:
        s.space[key] = _expand_value(s, value)

    return edit


def space_text(text: str) -> Edit:
    def edit(s: Setup) -> None:
        s.space_text = s.expand(text)

    return edit


def write(relative: str, text: str) -> Edit:
    """Write a file below the case's root (`data/...`, `model/...`)."""

    def edit(s: Setup) -> None:
        path = s.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(s.expand(text))

    return edit


def remove(*relatives: str) -> Edit:
    def edit(s: Setup) -> None:
        for relative in relatives:
            (s.root / relative).unlink()

    return edit


def edit_json(relative: str, **updates: Any) -> Edit:
    def edit(s: Setup) -> None:
        import json

        path = s.root / relative
        body = json.loads(path.read_text())
        body.update(updates)
        path.write_text(json.dumps(body))

    return edit


def both(*edits: Edit) -> Edit:
    def edit(s: Setup) -> None:
        for e in edits:
            e(s)

    return edit


@dataclass(frozen=True)
class Case:
    edit: Edit
    needle: str  # must occur in the one error line; {study}, {space}, {data}, {model}, {root} expanded
    argv: tuple[str, ...] = ("search", "{study}")
    pg: bool = False  # the study's storage is a fresh PostgreSQL schema ({pg}, {schema})
    subprocess: bool = False  # run as `python -m recipe_opt` rather than in-process
    also: tuple[str, ...] = field(default_factory=tuple)  # more substrings of the error line


def pg_storage(user: str = "postgres", host: str = PG_HOST, db: str = "test") -> str:
    """A PostgreSQL URL (with the password) whose search_path is the case's own schema."""
    return f"postgresql+psycopg2://{user}:{PASSWORD}@{host}/{db}?options=-csearch_path%3D{{schema}}"


# Safe loading refuses the tag (the shell command never runs: no `pwned` file appears).
PYTHON_TAG = '!!python/object/apply:os.system ["touch {root}/pwned"]'
REFUSED_TAG = "not valid YAML: could not determine a constructor for the tag"
GOOD_ROW = '{"prompt": "2 * 3 =", "completion": " 6"}\n'
CHAT_NO_ASSISTANT = '{"messages": [{"role": "user", "content": "2 * 3 ="}]}\n'

CASES = [
    # ---- search space ----------------------------------------------------------------------------
    pytest.param(
        Case(
            space_set("lora_rank", {"type": "int", "low": 64, "high": 8}),
            "{space}: lora_rank: `low <= high` must hold, but got (low=64, high=8)",
        ),
        id="space-inverted-range",
    ),
    pytest.param(Case(space_set("lora_rnak", 8), "{space}: lora_rnak: unknown key"), id="space-unknown-key"),
    pytest.param(
        Case(space_set("peak_lr", {"type": "float", "low": "tiny", "high": 0.01}), "{space}: peak_lr.low:"),
        id="space-wrong-type",
    ),
    pytest.param(Case(space_text(""), "{space}: file is empty"), id="space-empty-file"),
    pytest.param(
        Case(space_text("- peak_lr\n- lora_rank\n"), "{space}: top level must be a mapping, but got list"),
        id="space-top-level-list",
    ),
    pytest.param(
        Case(
            space_text("peak_lr: {type: float, low: 1.0e-4\nlora_rank: 8\n"),
            "{space}: line 2, column 10: not valid YAML",
        ),
        id="space-yaml-syntax",
    ),
    pytest.param(
        Case(
            space_set("peak_lr", {"type": "float", "low": 0.0, "high": 0.01, "log": True}),
            "{space}: peak_lr: a log range needs `low > 0`, but got (low=0.0)",
        ),
        id="space-log-low-zero",
    ),
    pytest.param(
        Case(space_set("schedule", {"type": "categorical", "choices": []}), "{space}: schedule.choices:"),
        id="space-empty-choices",
    ),
    pytest.param(
        Case(
            space_set("mixture", {"type": "simplex", "sources": ["mul", "division"]}),
            "{space}: mixture.sources: unknown source(s) ['division']",
        ),
        id="space-mixture-unknown-source",
    ),
    pytest.param(
        Case(space_text(f"lora_rank: {PYTHON_TAG}\n"), "{space}: line 1, column 12:", also=(REFUSED_TAG,)),
        id="space-python-tag",
    ),
    pytest.param(
        Case(
            space_text(f"lora_rank: {PYTHON_TAG}\n"),
            "{space}: line 1, column 12:",
            also=(REFUSED_TAG,),
            argv=("validate", "{space}"),
        ),
        id="space-python-tag-validate",
    ),
    pytest.param(
        Case(
            space_set("schedule", {"type": "categorical", "choices": ["cosine", "cosinus"]}),
            "{space}: schedule: unknown schedule shape 'cosinus'",
        ),
        id="space-unknown-schedule",
    ),
    pytest.param(
        Case(space_set("lora_rank", 0), "{space}: lora_rank: must lie in [1, 4096], but got 0"),
        id="space-rank-out-of-bounds",
    ),
    pytest.param(
        Case(
            space_set("target_module_sets", {"attention": ["@attention"], "all_linear": ["qq_proj"]}),
            "{space}: target_module_sets.all_linear: target module 'qq_proj' is not a linear layer",
        ),
        id="space-target-module-not-in-model",
    ),
    pytest.param(
        Case(
            space_text(
                "replay_ratio: 0.1\npeak_lr: {type: float, low: 1.0e-4, high: 1.0e-2}\nlora_rank: 8\n"
                "steps: 200\npeak_lr: {type: float, low: 0.1, high: 0.5}\n"
            ),
            "{space}: duplicate key 'peak_lr': on line 2 and again on line 5",
        ),
        id="space-duplicate-key",
    ),
    # ---- study config ----------------------------------------------------------------------------
    pytest.param(Case(study_set("n_trials", 4), "{study}: n_trials: unknown key"), id="study-unknown-key"),
    pytest.param(Case(study_set("seed", "many"), "{study}: seed:"), id="study-wrong-type"),
    pytest.param(
        Case(study_del("base_model"), "{study}: base_model: required field is missing"), id="study-missing-field"
    ),
    pytest.param(
        Case(study_set("search_space", "nope.yaml"), "{study}: search_space: file not found"),
        id="study-space-file-missing",
    ),
    pytest.param(
        Case(study_set("data_root", "{root}/no-data"), "{study}: data_root: directory not found"),
        id="study-data-root-missing",
    ),
    pytest.param(
        Case(study_set("objectives", ["gain", "speed"]), "{study}: objectives[1]:", also=("'speed'",)),
        id="study-unknown-objective",
    ),
    pytest.param(
        Case(
            study_set("gates", {"max_forgetting_per_suite": {"maths": 0.1}}),
            "{study}: gates.max_forgetting_per_suite: unknown retention suite(s) ['maths']",
        ),
        id="study-gate-unknown-suite",
    ),
    pytest.param(
        Case(study_set("sampler", {"name": "cmaes"}), "{study}: sampler.name:", also=("'cmaes'",)),
        id="study-unknown-sampler",
    ),
    pytest.param(
        Case(study_text("name: bad-input\nsources: {new: [unclosed\n"), "{study}: line 3, column 1: not valid YAML"),
        id="study-yaml-syntax",
    ),
    pytest.param(Case(study_text("\n# nothing here\n"), "{study}: file is empty"), id="study-empty-file"),
    pytest.param(
        Case(study_text(f"name: {PYTHON_TAG}\n"), "{study}: line 1, column 7:", also=(REFUSED_TAG,)),
        id="study-python-tag",
    ),
    pytest.param(
        Case(study_set("trials", {"n_trials": 0}), "{study}: trials.n_trials:", also=("0",)),
        id="study-n-trials-zero",
    ),
    pytest.param(
        Case(study_set("trials", {"n_trials": -3}), "{study}: trials.n_trials:", also=("-3",)),
        id="study-n-trials-negative",
    ),
    pytest.param(
        Case(
            study_set("evaluation.new_task.tasks", ["demo_mull", "demo_add_text"]),
            f"eval task 'demo_mull' is not defined in {REPO}/evaluators/demo",
            also=("Did you mean 'demo_mul'?",),
        ),
        id="study-unknown-eval-task",
    ),
    pytest.param(
        Case(study_set("evaluation.tasks_dir", "{root}/no-evals"), "{study}: evaluation.tasks_dir: directory not"),
        id="study-tasks-dir-missing",
    ),
    pytest.param(Case(study_set("name", "my study"), "{study}: name:"), id="study-bad-name"),
    pytest.param(
        Case(study_set("sources.new.mul.path", "cycle1/mul.txt"), "{study}: sources.new.mul:", also=("mul.txt",)),
        id="study-source-suffix",
    ),
    pytest.param(
        Case(lambda s: None, "{root}/nope.yaml: file not found", argv=("search", "{root}/nope.yaml")),
        id="study-file-missing",
    ),
    pytest.param(
        Case(lambda s: None, "--sampler", argv=("search", "{study}", "--sampler", "bogus"), also=("'bogus'",)),
        id="option-unknown-sampler",
    ),
    pytest.param(
        Case(lambda s: None, "--n-trials", argv=("search", "{study}", "--n-trials", "0"), also=("0",)),
        id="option-n-trials-zero",
    ),
    pytest.param(
        Case(
            lambda s: None,
            "--storage: unknown database dialect 'mongodb'",
            argv=("search", "{study}", "--storage", f"mongodb://u:{PASSWORD}@127.0.0.1:27017/x"),
        ),
        id="option-storage-unknown-dialect",
    ),
    pytest.param(
        Case(lambda s: None, "--workers", argv=("search", "{study}", "--workers", "0"), also=("0",)),
        id="option-workers-zero",
    ),
    pytest.param(
        Case(
            lambda s: setattr(s, "study_text", yaml.safe_dump(s.study) + "trials: {n_trials: 500}\n"),
            "{study}: duplicate key 'trials'",
            also=("and again on line",),
        ),
        id="study-duplicate-key",
    ),
    pytest.param(
        Case(
            both(write("blocker", "a file, not a directory"), study_set("output_dir", "{root}/blocker/reports")),
            "{study}: output_dir: {root}/blocker/reports cannot be written: {root}/blocker is not a directory",
        ),
        id="study-output-dir-unwritable",
    ),
    # ---- data files ------------------------------------------------------------------------------
    pytest.param(
        Case(write("data/cycle1/mul.jsonl", GOOD_ROW + "{oops\n"), "{data}/cycle1/mul.jsonl:2: not valid JSON"),
        id="data-bad-json-line",
    ),
    pytest.param(
        Case(
            write("data/cycle1/mul.jsonl", GOOD_ROW + '{"prompt": "9 * 9 ="}\n'),
            "{data}/cycle1/mul.jsonl:2: missing field(s) ['completion']",
        ),
        id="data-missing-field",
    ),
    pytest.param(
        Case(write("data/cycle1/mul.jsonl", ""), "{data}/cycle1/mul.jsonl: holds no rows"), id="data-empty-file"
    ),
    pytest.param(
        Case(
            study_set("sources.new.mul.path", "cycle1/nope.jsonl"),
            "{study}: sources.new.mul.path: file not found",
        ),
        id="data-file-missing",
    ),
    pytest.param(
        Case(
            both(
                write("data/cycle1/mul.csv", "prompt,answer\n2 * 3 =, 6\n"),
                study_set("sources.new.mul.path", "cycle1/mul.csv"),
            ),
            "{data}/cycle1/mul.csv:2: cannot tell the data format",
        ),
        id="data-csv-without-column",
    ),
    pytest.param(
        Case(
            both(
                write("data/cycle1/mul.csv", "prompt,answer\n2 * 3 =, 6\n"),
                study_set("sources.new.mul", {"path": "cycle1/mul.csv", "format": "prompt_completion"}),
            ),
            "{data}/cycle1/mul.csv:2: missing field(s) ['completion']",
        ),
        id="data-csv-without-column-format-given",
    ),
    pytest.param(
        Case(
            both(
                write("data/cycle1/chat.jsonl", CHAT_NO_ASSISTANT),
                study_set("sources.new.mul.path", "cycle1/chat.jsonl"),
            ),
            "{data}/cycle1/chat.jsonl:1: no assistant turn",
        ),
        id="data-chat-without-assistant",
    ),
    pytest.param(
        Case(
            study_set("sources.new.mul", {"path": "cycle1/mul.jsonl", "columns": {"completion": "answer"}}),
            "{data}/cycle1/mul.jsonl:1: `columns: {completion: answer}` names column(s) ['answer']",
        ),
        id="data-column-mapping-missing",
    ),
    pytest.param(
        Case(
            both(write("data/cycle1/mul.json", '{"a": 1}'), study_set("sources.new.mul.path", "cycle1/mul.json")),
            "{data}/cycle1/mul.json: expected a JSON list",
        ),
        id="data-json-not-a-list",
    ),
    pytest.param(
        Case(write("data/replay/old.jsonl", GOOD_ROW + "[1, 2]\n"), "{data}/replay/old.jsonl:2: not an object"),
        id="data-row-not-an-object",
    ),
    # ---- model -----------------------------------------------------------------------------------
    pytest.param(
        Case(study_set("base_model", "{root}/no-model"), "{study}: base_model: directory not found"),
        id="model-dir-missing",
    ),
    pytest.param(Case(remove("model/config.json"), "{model}: not a Hugging Face checkpoint"), id="model-no-config"),
    pytest.param(
        Case(write("model/config.json", "{not json"), "{model}: cannot load the tokenizer:", also=("config.json",)),
        id="model-config-not-json",
    ),
    pytest.param(
        Case(edit_json("model/config.json", model_type="llamax"), "{model}: cannot load the model:", also=("llamax",)),
        id="model-unknown-type",
    ),
    pytest.param(
        Case(remove("model/model.safetensors"), "{model}: cannot load the model:", also=("model.safetensors",)),
        id="model-no-weights",
    ),
    pytest.param(
        Case(write("model/model.safetensors", "garbage"), "{model}: cannot load the model: SafetensorError"),
        id="model-corrupt-weights",
    ),
    pytest.param(Case(remove("model/tokenizer.json"), "{model}: cannot load the tokenizer:"), id="model-no-tokenizer"),
    pytest.param(
        Case(write("model/tokenizer.json", "{not json"), "{model}: cannot load the tokenizer: JSONDecodeError"),
        id="model-broken-tokenizer",
    ),
    pytest.param(
        Case(write("model/tokenizer_config.json", "{not json"), "{model}: cannot load the tokenizer:"),
        id="model-broken-tokenizer-config",
    ),
    # ---- storage ---------------------------------------------------------------------------------
    pytest.param(
        Case(
            study_set("storage", pg_storage(host="127.0.0.1:1")),
            "storage postgresql+psycopg2://postgres:***@127.0.0.1:1/test",
            also=("Connection refused",),
            pg=True,
        ),
        id="storage-unreachable",
    ),
    pytest.param(
        Case(
            study_set("storage", pg_storage(user="nobody")),
            "storage postgresql+psycopg2://nobody:***@127.0.0.1:5432/test",
            also=('role "nobody" does not exist',),
            pg=True,
        ),
        id="storage-wrong-role",
    ),
    pytest.param(
        Case(study_set("storage", pg_storage(db="no_such_db")), 'database "no_such_db" does not exist', pg=True),
        id="storage-no-such-database",
    ),
    pytest.param(
        Case(
            study_set("storage", f"mongodb://u:{PASSWORD}@127.0.0.1:27017/x"),
            "{study}: storage: unknown database dialect 'mongodb'",
        ),
        id="storage-scheme-mongodb",
    ),
    pytest.param(
        Case(
            study_set("storage", f"http://u:{PASSWORD}@127.0.0.1/x"),
            "{study}: storage: unknown database dialect 'http'",
        ),
        id="storage-scheme-http",
    ),
    pytest.param(
        Case(
            study_set("storage", f"postgresql://u:{PASSWORD}@127.0.0.1:notaport/x"),
            "{study}: storage: not a valid database URL",
            also=("notaport",),
        ),
        id="storage-malformed-port",
    ),
    pytest.param(
        Case(study_set("storage", "not a url"), "{study}: storage: not a database URL", also=("'not a url'",)),
        id="storage-not-a-url",
    ),
    pytest.param(
        Case(study_set("storage", f"postgres:{PASSWORD}@127.0.0.1/test"), "{study}: storage: not a database URL"),
        id="storage-no-scheme",
    ),
    pytest.param(
        Case(
            study_set("storage", f"postgresql+nodriver://u:{PASSWORD}@127.0.0.1/x"),
            "{study}: storage: unknown database dialect 'postgresql+nodriver'",
        ),
        id="storage-unknown-driver",
    ),
    pytest.param(
        Case(
            study_set("storage", "sqlite:///no-dir/study.db"), "{study}: storage: directory not found: {root}/s/no-dir"
        ),
        id="storage-sqlite-missing-dir",
    ),
    pytest.param(
        Case(
            study_set("storage", f"mysql+pymysql://u:{PASSWORD}@127.0.0.1:3306/x"),
            "{study}: storage: the database driver for 'mysql+pymysql' is not installed",
        ),
        id="storage-driver-not-installed",
    ),
    pytest.param(
        Case(
            study_set("storage", f"postgresql+psycopg2://postgres:pre@{PASSWORD}@127.0.0.1:5432/test"),
            "{study}: storage: the password in 'postgresql+psycopg2://postgres:***@127.0.0.1:5432/test' holds an "
            "unencoded '@': write it as %40",
        ),
        id="storage-password-with-at",
    ),
    # ---- a space whose single trial does not fit: found from a measured proxy step (issue 16) ------
    pytest.param(
        Case(
            space_set("steps", {"type": "int", "low": 200, "high": 1_000_000_000}),
            "{space}: steps: one trial at steps 1,000,000,000",
            also=("(100,000,000 proxy steps) would train for ~", "no trial may train for more than 24.0 h"),
        ),
        id="space-steps-beyond-a-day",
    ),
    pytest.param(
        Case(
            space_set("steps", {"type": "int", "low": 200, "high": 1_000_000_000}),
            "{space}: steps: one trial at steps 1,000,000,000",
            argv=("validate", "{study}"),
        ),
        id="space-steps-beyond-a-day-validate",
    ),
    pytest.param(
        Case(
            study_set("trials", {"n_trials": 3, "max_cost": 0.0001}),
            "{space}: steps: one trial at steps 1,000",
            also=("more than the study's whole max_cost of 0.0001 TFLOP",),
        ),
        id="study-max-cost-below-one-trial",
    ),
    pytest.param(
        Case(
            space_set("steps", {"type": "int", "low": 200, "high": 200_000}),
            "{space}: steps: one trial at steps 200,000",
            argv=("search", "{study}", "--timeout", "60"),
            also=("longer than the study's whole timeout of 60 s",),
        ),
        id="option-timeout-below-one-trial",
    ),
    # ---- recipes trained at full fidelity beside the search (issue 17) ---------------------------
    pytest.param(
        Case(
            study_set("baselines", ["llama-factroy"]),
            "{study}: baselines: unknown baseline 'llama-factroy'; did you mean 'llama-factory'?",
        ),
        id="study-baseline-unknown",
    ),
    pytest.param(
        Case(study_set("baselines", ["team/current.yaml"]), "{study}: baselines[0]: file not found: {root}/s/team"),
        id="study-baseline-file-missing",
    ),
    pytest.param(
        Case(
            study_set("seed", 0),
            "{root}/nope.yaml: file not found",
            argv=("train", "{root}/nope.yaml", "--study", "{study}"),
        ),
        id="option-train-recipe-missing",
    ),
    pytest.param(
        Case(
            write("mine.yaml", "mixture: {mul: 0.5\n"),
            "{root}/mine.yaml: not a recipe: ",
            argv=("train", "{root}/mine.yaml", "--study", "{study}"),
        ),
        id="option-train-recipe-not-yaml",
    ),
    # ---- with PostgreSQL storage, failing after the storage was reached --------------------------
    pytest.param(
        Case(
            both(study_set("storage", "{pg}"), remove("model/model.safetensors")),
            "{model}: cannot load the model:",
            pg=True,
        ),
        id="pg-model-no-weights",
    ),
    pytest.param(
        Case(
            both(study_set("storage", "{pg}"), write("data/replay/old.jsonl", GOOD_ROW + "{oops\n")),
            "{data}/replay/old.jsonl:2: not valid JSON",
            pg=True,
        ),
        id="pg-data-bad-json",
    ),
    pytest.param(
        Case(
            both(
                study_set("storage", "{pg}"),
                space_set("target_module_sets", {"attention": ["@attention"], "all_linear": ["qq_proj"]}),
            ),
            "{space}: target_module_sets.all_linear:",
            pg=True,
        ),
        id="pg-space-target-module",
    ),
    # ---- as users run it: a real process, the real exit status -----------------------------------
    pytest.param(
        Case(space_set("lora_rank", {"type": "int", "low": 64, "high": 8}), "{space}: lora_rank:", subprocess=True),
        id="process-space-inverted-range",
    ),
    pytest.param(
        Case(study_text(f"name: {PYTHON_TAG}\n"), "{study}: line 1, column 7:", also=(REFUSED_TAG,), subprocess=True),
        id="process-study-python-tag",
    ),
    pytest.param(
        Case(
            study_set("storage", f"postgresql://u:{PASSWORD}@127.0.0.1:notaport/x"),
            "{study}: storage: not a valid database URL",
            subprocess=True,
        ),
        id="process-storage-malformed-port",
    ),
    pytest.param(
        Case(
            both(study_set("storage", "{pg}"), write("model/tokenizer.json", "{not json")),
            "{model}: cannot load the tokenizer:",
            pg=True,
            subprocess=True,
        ),
        id="process-pg-broken-tokenizer",
    ),
]


def _pg_setup(stack: contextlib.ExitStack, setup: Setup) -> None:
    urls: Iterator[str] = _postgres_url()
    url = next(urls)  # skips the case when no server is reachable
    stack.callback(next, urls, None)  # runs the generator's `finally`: drops the schema
    parsed = sa.make_url(url)
    setup.schema = str(parsed.query["options"]).split("=", 1)[1]
    setup.pg_url = parsed.set(password=PASSWORD).render_as_string(hide_password=False)


def _pg_tables(schema: str) -> list[str]:
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as c:
            rows = c.execute(
                sa.text("select table_name from information_schema.tables where table_schema = :s"), {"s": schema}
            )
            return sorted(r[0] for r in rows)
    finally:
        engine.dispose()


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _run(argv: list[str], *, in_process: bool, cwd: Path) -> tuple[int, str, str]:
    if not in_process:
        r = subprocess.run(
            [sys.executable, "-m", "recipe_opt", *argv], capture_output=True, text=True, cwd=cwd, timeout=300
        )
        return r.returncode, r.stdout, r.stderr
    from typer.testing import CliRunner

    from recipe_opt.cli import app

    result = CliRunner().invoke(app, argv)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        assert result.exc_info is not None
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return result.exit_code, result.stdout, stderr


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case: Case, tiny_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "case"
    setup = make_setup(root, tiny_world)
    with contextlib.ExitStack() as stack:
        if case.pg:
            _pg_setup(stack, setup)
        case.edit(setup)
        setup.write()
        before = _files(tmp_path)
        monkeypatch.chdir(tmp_path)
        code, stdout, stderr = _run([setup.expand(a) for a in case.argv], in_process=not case.subprocess, cwd=tmp_path)
        shown = f"exit {code}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        assert "Traceback" not in stdout + stderr, shown
        assert PASSWORD not in stdout + stderr, shown
        assert code == 2, shown
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), shown
        for needle in (case.needle, *case.also):
            assert setup.expand(needle) in lines[0], shown
        # Nothing half-written: no database, report, recipe or pwned marker; the PG schema empty.
        assert _files(tmp_path) == before
        assert not (root / "pwned").exists()
        assert not (REPO / "reports" / "bad-input").exists()
        if case.pg:
            assert _pg_tables(setup.schema) == []


def test_the_unbroken_study_is_valid(tiny_world: Path, tmp_path: Path) -> None:
    """Every case breaks one thing of this setup, which `validate` accepts as it is."""
    setup = make_setup(tmp_path, tiny_world)
    setup.write()
    code, stdout, stderr = _run(["validate", str(setup.study_path)], in_process=True, cwd=tmp_path)
    assert code == 0, (stdout, stderr)
    assert "ok" in stdout and not stderr.strip()


def test_the_table_covers_every_kind_of_input() -> None:
    kinds = Counter(str(p.id).split("-")[0] for p in CASES)
    assert len(CASES) >= 32 and all(kinds[k] >= 6 for k in ("space", "study", "data", "model", "storage")), kinds
