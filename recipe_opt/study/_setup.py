"""What a study builds once per process: the base model, the tokenised data, the trainer and the
evaluators (`Setup`). The search space arrives resolved (`_base.resolve_space`)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any

from recipe_opt.config import SourceConfig, StudyConfig
from recipe_opt.data import EncodedExample, encode_parsed, parse_rows, read_rows
from recipe_opt.evaluate import Suite, SuiteEvaluator, TaskDef, find_tasks, make_scorer
from recipe_opt.exceptions import RecipeOptError, TrainingError
from recipe_opt.recipe import Recipe
from recipe_opt.study._progress import Reporter
from recipe_opt.train import BaseModel, ProxySettings, ProxyTrainer, TrainingData, load_base_model, state_checksum

__all__ = ["Setup", "build_setup"]


@dataclass
class Setup:
    device: str
    base: BaseModel
    trainer: ProxyTrainer
    tasks: dict[str, TaskDef]
    evaluator: SuiteEvaluator  # the configured backend, at `evaluation.limit`
    rung_evaluator: SuiteEvaluator  # what early-stopping rungs score with
    base_checksum: str
    data_report: dict[str, dict[str, Any]]  # per source: format read, rows, rows left out and why
    cfg: StudyConfig

    def make_evaluator(self, backend: str, limit: int | None) -> SuiteEvaluator:
        """An evaluator over the study's suites (`limit=None`: every item, as at full fidelity)."""
        return _evaluator(self.cfg, self.base, self.tasks, self.device, backend, limit)

    def full_trainer(self, recipe: Recipe) -> ProxyTrainer:
        """A trainer that runs `recipe` at full fidelity: every step of its budget at its batch size."""
        settings = replace(self.trainer.settings, fraction=1.0, batch_size=recipe.budget.batch_size, min_steps=1)
        return ProxyTrainer(self.base, self.trainer.data, settings)


def _evaluator(
    cfg: StudyConfig, base: BaseModel, tasks: dict[str, TaskDef], device: str, backend: str, limit: int | None
) -> SuiteEvaluator:
    ev = cfg.evaluation
    scorer = make_scorer(
        backend,
        tasks,
        base.tokenizer,
        pad_id=base.pad_id,
        max_seq_len=cfg.proxy.max_seq_len,
        batch_size=ev.batch_size,
        limit=limit,
        device=device,
        lm_eval_options=ev.lm_eval,
    )
    return SuiteEvaluator(
        scorer,
        Suite(ev.new_task.name, tuple(ev.new_task.tasks)),
        [Suite(s.name, tuple(s.tasks), s.weight) for s in ev.retention],
    )


def build_setup(cfg: StudyConfig, reporter: Reporter) -> Setup:
    """Load the base model, read and tokenise every source, build the eval tasks and evaluators."""
    import torch

    device = cfg.proxy.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("proxy.device is 'cuda' but no CUDA device is available")
    reporter.phase(f"loading base model {cfg.base_model_path}")
    base = load_base_model(cfg.base_model_path, device=device, trust_remote_code=cfg.trust_remote_code)
    tok, max_len = base.tokenizer, cfg.proxy.max_seq_len

    reporter.phase("reading and tokenising data sources")
    report: dict[str, dict[str, Any]] = {}

    def encoded(group: str, name: str, src: SourceConfig) -> list[EncodedExample]:
        path = cfg.source_path(src)
        rows = read_rows(path, dataset=src.dataset, subset=src.subset, split=src.split)
        parsed = parse_rows(name, rows, format=src.format, columns=src.columns, bad_rows=src.bad_rows)
        if parsed.bad.total:
            # Never dropped silently: the count, the reasons and the first place of each.
            reporter.phase(
                f"sources.{group}.{name}: left out {parsed.bad.total} of {parsed.rows} rows: {parsed.bad.summary()}"
            )
        report[f"{group}/{name}"] = {
            "format": parsed.format,
            "rows": parsed.rows,
            "bad_rows": parsed.bad.total,
            "bad_reasons": dict(parsed.bad.counts),
        }
        where = f"sources.{group}.{name} ({path if path is not None else src.dataset})"
        return encode_parsed(tok, parsed, max_seq_len=max_len, where=where)

    new = {name: encoded("new", name, src) for name, src in cfg.sources.new.items()}
    replay = {name: encoded("replay", name, src) for name, src in cfg.sources.replay.items()}
    data = TrainingData(new=new, replay=replay, replay_weights={n: s.weight for n, s in cfg.sources.replay.items()})
    p = cfg.proxy
    settings = ProxySettings(
        fraction=p.fraction,
        batch_size=p.batch_size,
        max_seq_len=max_len,
        min_steps=p.min_steps,
        max_grad_norm=p.max_grad_norm,
        explode_factor=p.explode_factor,
        device=device,
        mixed_precision=p.mixed_precision,
        grad_accumulation=p.gradient_accumulation_steps,
        gradient_checkpointing=p.gradient_checkpointing,
    )
    trainer = ProxyTrainer(base, data, settings)

    ev = cfg.evaluation
    reporter.phase(f"building eval tasks ({ev.backend})")
    names = list(dict.fromkeys([*ev.new_task.tasks, *(t for s in ev.retention for t in s.tasks)]))
    tasks = find_tasks(cfg.tasks_dir_path, names, cfg.data_root_path)
    evaluator = _evaluator(cfg, base, tasks, device, ev.backend, ev.limit)
    # Rungs score with the native scorer when the tasks allow it: the same metric as lm-eval
    # (a test checks they agree exactly) at a seventh of the cost.
    rung_evaluator = evaluator
    if cfg.early_stopping.enabled and ev.backend != "native":
        # Tasks the native scorer cannot render keep the configured backend at the rungs.
        with contextlib.suppress(RecipeOptError):
            rung_evaluator = _evaluator(cfg, base, tasks, device, "native", ev.limit)
    return Setup(
        device=device,
        base=base,
        trainer=trainer,
        tasks=tasks,
        evaluator=evaluator,
        rung_evaluator=rung_evaluator,
        base_checksum=state_checksum(base.model),
        data_report=report,
        cfg=cfg,
    )
