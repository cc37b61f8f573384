"""Two interchangeable scorers behind one interface: lm-eval itself, and the native batched scorer.

Both return, per task, the task's `acc` (exact greedy match of the completion, lm-eval's metric for
`output_type: loglikelihood`). The lm-eval scorer runs `lm_eval.simple_evaluate` with an `HFLM`
that wraps the in-memory (peft) model; its `TaskManager` and `Task` objects are built once per
process. The native scorer renders the same task files the same way and scores in a few padded
forward passes.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from recipe_opt.data import EncodedExample, Example, encode_examples, read_json_lines
from recipe_opt.evaluate._native import score_items
from recipe_opt.evaluate._tasks import TaskDef
from recipe_opt.exceptions import EvaluationError, first_line

__all__ = ["BACKENDS", "LmEvalScorer", "NativeScorer", "TaskScorer", "make_scorer"]

BACKENDS = ("native", "lm-eval")


class TaskScorer(Protocol):
    backend: str

    def score(self, model: Any) -> dict[str, dict[str, float]]:
        """task name -> {metric: value} for the model as it is now."""
        ...


_UNSUPPORTED_BY_NATIVE = (
    "process_docs",
    "filter_list",
    "fewshot_config",
    "doc_to_choice",
    "custom_dataset",
)


def _render(template: str, doc: Mapping[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
    return env.from_string(template).render(**doc)


def _task_examples(task: TaskDef) -> list[Example]:
    """The (context, continuation) pairs lm-eval builds for a zero-shot loglikelihood task."""
    cfg = task.config
    if task.builtin:
        raise EvaluationError(
            f"{task.name!r} is one of lm-eval's own tasks; the native scorer renders only local "
            "prompt/completion tasks (use evaluation.backend: lm-eval)"
        )
    if cfg.get("output_type", "generate_until") != "loglikelihood":
        raise EvaluationError(
            f"{task.source}: the native scorer handles `output_type: loglikelihood` tasks; "
            f"{task.name!r} has {cfg.get('output_type')!r} (use evaluation.backend: lm-eval)"
        )
    used = [k for k in _UNSUPPORTED_BY_NATIVE if cfg.get(k)] + (["num_fewshot"] if cfg.get("num_fewshot") else [])
    if used:
        raise EvaluationError(
            f"{task.source}: task {task.name!r} uses {used}, which the native scorer does not "
            "implement (use evaluation.backend: lm-eval)"
        )
    if cfg.get("dataset_path") not in ("json", "jsonl"):
        raise EvaluationError(f"{task.source}: the native scorer reads local JSON lines (`dataset_path: json`)")
    delimiter = str(cfg.get("target_delimiter", " "))
    docs: list[Example] = []
    for _, doc in read_json_lines(task.data_file):
        try:
            context = _render(str(cfg["doc_to_text"]), doc)
            target = _render(str(cfg["doc_to_target"]), doc)
        except Exception as exc:  # jinja2's UndefinedError and syntax errors
            raise EvaluationError(f"{task.source}: cannot render a document: {exc}") from None
        docs.append(Example(context, delimiter + target))
    return docs


class NativeScorer:
    backend = "native"

    def __init__(
        self,
        tasks: Mapping[str, TaskDef],
        tokenizer: Any,
        *,
        pad_id: int,
        max_seq_len: int,
        batch_size: int = 256,
        limit: int | None = None,
        device: str = "cpu",
    ) -> None:
        self.pad_id = pad_id
        self.batch_size = batch_size
        self.device = device
        self.items: dict[str, list[EncodedExample]] = {}
        for name, task in tasks.items():
            examples = _task_examples(task)[:limit] if limit else _task_examples(task)
            self.items[name] = encode_examples(
                tokenizer,
                examples,
                max_seq_len=max_seq_len,
                source=str(task.data_file),
                add_eos=False,
            )

    def score(self, model: Any) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for name, items in self.items.items():
            s = score_items(model, items, pad_id=self.pad_id, batch_size=self.batch_size, device=self.device)
            out[name] = {
                "acc": s.acc,
                "loglikelihood": s.mean_loglikelihood,
                "n": float(len(items)),
            }
        return out


@contextlib.contextmanager
def _quiet_lm_eval() -> Iterator[None]:
    """lm-eval logs every task build at INFO and draws tqdm bars on stderr per call; keep the
    terminal for recipe-opt's own progress. Exceptions still propagate."""
    names = (
        "lm-eval",
        "lm_eval",
        "lm_eval.evaluator",
        "lm_eval.api.task",
        "lm_eval.models.huggingface",
    )
    saved = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


class LmEvalScorer:
    backend = "lm-eval"

    def __init__(
        self,
        tasks: Mapping[str, TaskDef],
        tokenizer: Any,
        *,
        batch_size: int = 64,
        limit: int | None = None,
        device: str = "cpu",
        options: Mapping[str, Any] | None = None,
    ) -> None:
        import inspect
        import os

        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import lm_eval.evaluator
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager

        # Pass-through options for `simple_evaluate` (num_fewshot, apply_chat_template,
        # fewshot_as_multiturn, system_instruction, gen_kwargs, ...); the ones recipe-opt sets
        # itself are not for the user to override.
        own = {"model", "tasks", "task_manager", "limit", "bootstrap_iters", "log_samples", "verbosity", "device"}
        allowed = set(inspect.signature(simple_evaluate).parameters) - own - {"model_args", "batch_size"}
        unknown = sorted(set(options or {}) - allowed)
        if unknown:
            raise EvaluationError(
                f"evaluation.lm_eval: {unknown} not options of lm-eval's simple_evaluate "
                f"(or set by recipe-opt); allowed: {', '.join(sorted(allowed))}"
            )
        self.options = dict(options or {})

        # lm-eval shells out to `git describe` to stamp its results; outside a git checkout git
        # prints "fatal: not a git repository" on the user's terminal. recipe-opt stamps its own
        # versions, so that call is skipped.
        lm_eval.evaluator.get_git_commit_hash = lambda: None
        _cache_env_info(lm_eval.evaluator)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.limit = limit
        self.device = device
        self.names = list(tasks)
        with _quiet_lm_eval():
            # Built once per process: without include_defaults=False, lm-eval indexes its ~10k
            # built-in tasks (about 7.7 s) on every construction.
            # lm-eval's own tasks need its index; local ones alone do not.
            self.task_manager = TaskManager(include_defaults=any(t.builtin for t in tasks.values()))
            specs: list[Any] = [t.name if t.builtin else t.lm_eval_config() for t in tasks.values()]
            try:
                loaded = self.task_manager.load(specs)
                self.task_objects = dict(loaded["tasks"])
            except Exception as exc:  # a built-in task's dataset not downloadable (offline), ...
                first = first_line(exc)
                raise EvaluationError(f"lm-eval could not build the eval tasks: {first}") from None

    def score(self, model: Any) -> dict[str, dict[str, float]]:
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM

        with _quiet_lm_eval():
            lm = HFLM(
                pretrained=model,
                tokenizer=self.tokenizer,
                batch_size=self.batch_size,
                device=self.device,
            )
            results = simple_evaluate(
                model=lm,
                tasks=list(self.task_objects.values()),
                task_manager=self.task_manager,
                limit=self.limit,
                bootstrap_iters=0,
                log_samples=False,
                verbosity="ERROR",
                **self.options,
            )
        if results is None:
            raise EvaluationError("lm-eval returned no results")
        out: dict[str, dict[str, float]] = {}
        for name in self.names:
            row = results["results"].get(name)
            if row is None:
                raise EvaluationError(f"lm-eval returned no result for task {name!r}")
            # Keys look like "acc,none" (metric, filter); stderr entries are "N/A" with no bootstrap.
            metrics = {
                k.split(",")[0]: float(v) for k, v in row.items() if k.endswith(",none") and isinstance(v, int | float)
            }
            if "acc" not in metrics:
                raise EvaluationError(f"lm-eval task {name!r} reported no `acc` (got {sorted(metrics)})")
            n = results.get("n-samples", {}).get(name, {}).get("effective", 0)
            shots = results.get("n-shot", {}).get(name, 0)
            out[name] = {**metrics, "n": float(n), "n_shot": float(shots if isinstance(shots, int | float) else 0)}
        return out


def _cache_env_info(lm_evaluator: Any) -> None:
    """Collect lm-eval's environment metadata once per process instead of once per evaluation.

    `simple_evaluate` ends every call with `add_env_info`, which runs torch's `collect_env`
    (`pip list`, compiler and driver probes in subprocesses): about 0.8 s on the demo world,
    12% of a 6.7 s trial, for the same answer every time (bench/trial_profile.py measured it).
    The first call's answer is kept and copied into each later result.
    """
    import copy

    current = lm_evaluator.add_env_info
    if getattr(current, "_recipe_opt_cached", False):
        return
    cache: dict[str, Any] = {}

    def add_env_info(storage: dict[str, Any]) -> None:
        if not cache:
            probe: dict[str, Any] = {}
            current(probe)
            cache.update(probe)
        storage.update(copy.deepcopy(cache))

    add_env_info._recipe_opt_cached = True  # type: ignore[attr-defined]
    lm_evaluator.add_env_info = add_env_info


def make_scorer(
    backend: str,
    tasks: Mapping[str, TaskDef],
    tokenizer: Any,
    *,
    pad_id: int,
    max_seq_len: int,
    batch_size: int,
    limit: int | None,
    device: str,
    lm_eval_options: Mapping[str, Any] | None = None,
) -> TaskScorer:
    if backend == "native":
        return NativeScorer(
            tasks,
            tokenizer,
            pad_id=pad_id,
            max_seq_len=max_seq_len,
            batch_size=batch_size,
            limit=limit,
            device=device,
        )
    if backend == "lm-eval":
        return LmEvalScorer(
            tasks, tokenizer, batch_size=batch_size, limit=limit, device=device, options=lm_eval_options
        )
    raise EvaluationError(f"unknown evaluation backend {backend!r}; known: {', '.join(BACKENDS)}")
