"""Benchmark: where a trial's time goes (CPU, demo world), and LoRA step throughput / MFU on a GPU.

    python bench/trial_profile.py [--trials 10] [--backend lm-eval|native] [--world demo_world]
    python bench/trial_profile.py --gpu [--batch 8 --seq 512 --steps 20 --warmup 5] [--peak-tflops T]

CPU part (default): runs the demo study (studies/demo.yaml, cycle 1, its own sampler, scorer and
proxy settings) for --trials trials through `StudyRunner.run` on a fresh SQLite file, and times
each phase from outside by wrapping the public calls a trial makes (nothing in the package is
changed; the wrappers are removed afterwards):

  base-model load   once per process (shown amortised over the trials): from the runner's
                    "loading base model" phase message to its next one (a `SearchReporter`)
  adapter setup     `ProxyTrainer.train` from entry to the start of the step loop: peft injection
                    (`peft.get_peft_model`, reported on its own), AdamW, LR scheduler,
                    `Accelerator.prepare`; i.e. entry-to-yield minus `TrainResult.train_seconds`
  training          `TrainResult.train_seconds` minus the batch sampling and collation inside it
  evaluation        `SuiteEvaluator.evaluate` on the adapted model (and at rungs, if enabled); of
                    which, with lm-eval, the environment metadata `simple_evaluate` collects
                    (`add_env_info`, `get_git_commit_hash`) is reported on its own
  bookkeeping       the rest of the trial: the trial's wall time (from Optuna's `study.ask` to
                    the next trial's) minus the three phases above; split into recipe sampling
                    (`SearchSpace.sample`, with Optuna's suggest calls), data preparation
                    (BatchSampler + `collate`), storage writes in the objective
                    (`Trial.set_user_attr` / `set_constraint`), adapter unload (`PeftModel.unload`
                    and accelerate's `free_memory`), Optuna's `ask`, Optuna's `tell` + the
                    `gc.collect()` after each trial, and what remains.

Writes bench/results/trial_profile_cpu.json.

GPU part (--gpu; skipped with a message where `torch.cuda.is_available()` is false): a Qwen2-0.5B-
shaped model with random weights in bf16, a rank-16 LoRA adapter on all linear projections, AdamW
on the adapter only, random token batches. Reports tokens/s, model FLOPs utilisation and peak
memory; writes bench/results/trial_profile_gpu.json. FLOPs per trained token follow recipe-opt's
LoRA arithmetic (recipe_opt/train/_proxy.py) plus attention scores:

    4 N + 6 n + 12 L s d

N = non-embedding parameters of the frozen base (forward 2N + input-gradient backward 2N), n = the
adapter's parameters (6n), L layers, s sequence length, d = heads x head_dim: QK^T and AV cost
2 s d each per layer and token in the forward pass (4 L s d), twice that in the backward pass
(8 L s d), counted over the full s x s score matrix (the usual MFU convention; causal kernels skip
about half of it). Like recipe-opt's cost, N excludes the (tied) embedding, so the LM-head matmul
(4 V d_model per token with its input gradient) is left out of the MFU; `mfu_incl_lm_head` adds it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from _cycles import REPO, runner_for, study_yaml

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Dense bf16 tensor-core peak FLOP/s (no sparsity), from the vendors' data sheets.
PEAK_BF16 = {"H100 SXM": 989e12, "H100 PCIe": 756e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}
PHASES = ("adapter_setup", "training", "evaluation", "bookkeeping")
# Parts of the phases above, shown as "of which": peft injection (adapter setup), lm-eval's
# metadata collection (evaluation), gc.collect (adapter unload; Optuna's tell and gc).
OF_WHICH = ("peft_injection", "lm_eval_metadata", "gc_collect_in_unload", "gc_collect_elsewhere")
BOOKKEEPING = (
    "recipe_sampling",
    "data_preparation",
    "storage_writes_in_objective",
    "adapter_unload",
    "optuna_ask",
    "optuna_tell_and_gc",
    "other",
)


def versions() -> dict[str, str]:
    import accelerate
    import optuna
    import peft
    import torch
    import transformers

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "accelerate": accelerate.__version__,
        "optuna": optuna.__version__,
    }
    with contextlib.suppress(ImportError):
        import lm_eval

        out["lm_eval"] = getattr(lm_eval, "__version__", "?")
    return out


def machine(load_at_start: tuple[float, ...]) -> dict[str, Any]:
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load_at_start],
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


# ---- CPU part: the demo study's trials, timed phase by phase ---------------------------------------


class Patches:
    """Replace attributes (of modules, classes or instances) and put them all back on exit."""

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []

    def set(self, obj: Any, name: str, value: Any) -> None:
        plain = isinstance(obj, type | ModuleType)
        # object.__setattr__ also reaches instances of frozen dataclasses (SearchSpace).
        setter, deleter = (setattr, delattr) if plain else (object.__setattr__, object.__delattr__)
        own, old = name in vars(obj), vars(obj).get(name)
        setter(obj, name, value)
        self._undo.append(lambda: setter(obj, name, old) if own else deleter(obj, name))

    def undo(self) -> None:
        while self._undo:
            self._undo.pop()()


class PhaseReporter:
    """A `SearchReporter` that only timestamps the runner's phase messages."""

    def __init__(self) -> None:
        self.phases: list[tuple[float, str]] = []

    def phase(self, message: str) -> None:
        self.phases.append((time.perf_counter(), message.replace(str(REPO) + "/", "")))

    def trial_started(self, number: int, recipe: Any, proxy_steps: int) -> None:
        pass

    def step(self, done: int, total: int, loss: float) -> None:
        pass

    def trial_finished(self, summary: Any) -> None:
        pass


class Clock:
    """Timings: `rec` is the current trial's record (from its `ask` on), or the one-time record."""

    def __init__(self) -> None:
        self.once: dict[str, float] = {}
        self.trials: list[dict[str, Any]] = []
        self.in_trial = False  # from the first `ask` until `optimize` returns
        self.window: str | None = None  # "train" between ProxyTrainer.train's entry and its yield

    @property
    def rec(self) -> dict[str, Any]:
        return self.trials[-1] if self.in_trial else self.once

    def add(self, key: str, seconds: float, rec: dict[str, Any] | None = None) -> None:
        rec = self.rec if rec is None else rec
        rec[key] = rec.get(key, 0.0) + seconds

    def timed(self, key: str, fn: Callable[..., Any], *, skip_in_train: bool = False) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if skip_in_train and self.window == "train":
                return fn(*args, **kwargs)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(key, time.perf_counter() - start)

        return wrapper


def instrument(runner: Any, clock: Clock, patches: Patches) -> None:
    """Wrap what a trial calls. `runner` must be built (trainer and evaluators exist)."""
    import optuna
    import peft

    import recipe_opt.train._proxy as proxy_module
    from recipe_opt.train import TrialInterrupted

    # Optuna: the trial starts at `ask`; `optimize` returning ends the last one.
    orig_ask = optuna.study.Study.ask

    def ask(study: Any, *args: Any, **kwargs: Any) -> Any:
        start, cpu_start = time.perf_counter(), time.process_time()
        trial = orig_ask(study, *args, **kwargs)
        rec = {"ask_start": start, "cpu_start": cpu_start, "optuna_ask": time.perf_counter() - start}
        clock.trials.append(rec)
        clock.in_trial = True
        return trial

    patches.set(optuna.study.Study, "ask", ask)
    orig_optimize = optuna.study.Study.optimize

    def optimize(study: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return orig_optimize(study, *args, **kwargs)
        finally:
            clock.once["optimize_end"] = time.perf_counter()
            clock.once["optimize_end_cpu"] = time.process_time()
            clock.once["optimize"] = clock.once["optimize_end"] - start
            clock.in_trial = False

    patches.set(optuna.study.Study, "optimize", optimize)
    for name in ("set_user_attr", "set_constraint"):
        patches.set(
            optuna.trial.Trial,
            name,
            clock.timed("storage_writes_in_objective", getattr(optuna.trial.Trial, name), skip_in_train=True),
        )
    orig_collect = gc.collect

    def collect(*args: Any, **kwargs: Any) -> int:
        start = time.perf_counter()
        try:
            return orig_collect(*args, **kwargs)
        finally:  # accelerate's `free_memory` collects during the unload; Optuna after each trial
            where = "in_unload" if clock.window == "unload" else "elsewhere"
            clock.add(f"gc_collect_{where}", time.perf_counter() - start)

    patches.set(gc, "collect", collect)

    orig_objective = runner.objective

    def objective(trial: Any, base_eval: Any) -> Any:
        clock.rec["number"] = trial.number
        start = time.perf_counter()
        try:
            return orig_objective(trial, base_eval)
        finally:
            clock.rec["objective"] = time.perf_counter() - start

    patches.set(runner, "objective", objective)
    patches.set(runner.space, "sample", clock.timed("recipe_sampling", runner.space.sample))

    # Evaluation; inside the training window it is a rung evaluation (counted in train_seconds).
    def timed_evaluate(fn: Callable[..., Any]) -> Callable[..., Any]:
        def evaluate(model: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(model)
            finally:
                key = "rung_evaluation" if clock.window == "train" else "evaluation"
                clock.add(key if clock.in_trial else "base_evaluation", time.perf_counter() - start)

        return evaluate

    evaluators = {id(runner.evaluator): runner.evaluator, id(runner.rung_evaluator): runner.rung_evaluator}
    for ev in evaluators.values():
        patches.set(ev, "evaluate", timed_evaluate(ev.evaluate))

    # Training: entry -> yield = adapter setup + the step loop (`TrainResult.train_seconds`).
    trainer = runner.trainer
    orig_train = trainer.train

    @contextlib.contextmanager
    def train(recipe: Any, **kwargs: Any) -> Iterator[Any]:
        rec = clock.rec
        start = time.perf_counter()
        clock.window = "train"
        try:
            with orig_train(recipe, **kwargs) as (model, result):
                rec["train_window"] = time.perf_counter() - start
                rec["train_loop"] = result.train_seconds
                rec["proxy_steps"] = result.proxy_steps
                rec["tokens"] = result.tokens_seen
                clock.window = None
                yield model, result
                unload_start = time.perf_counter()
                clock.window = "unload"
            # Only reached when the body (evaluation) returned: the `with` exit unloaded the adapter.
            rec["adapter_unload"] = time.perf_counter() - unload_start
        except TrialInterrupted as exc:  # diverged or stopped: pruned (its unload lands in adapter setup)
            rec["interrupted"] = exc.reason
            rec["train_window"] = time.perf_counter() - start
            rec["train_loop"] = exc.result.train_seconds
            raise
        finally:
            clock.window = None

    patches.set(trainer, "train", train)
    patches.set(peft, "get_peft_model", clock.timed("peft_injection", peft.get_peft_model))
    orig_sampler = trainer.sampler

    def sampler(recipe: Any) -> Any:
        start = time.perf_counter()
        batches = orig_sampler(recipe)
        clock.add("data_sampler_init", time.perf_counter() - start)
        patches.set(batches, "next_batch", clock.timed("data_next_batch", batches.next_batch))
        return batches

    patches.set(trainer, "sampler", sampler)
    if runner.cfg.evaluation.backend == "lm-eval":
        # `simple_evaluate` ends by collecting environment metadata for its results (torch's
        # collect_env, which runs `pip list` and other probes, and the git commit): part of every
        # evaluation's time, but not scoring. Wrapped where lm-eval's evaluator looks them up.
        import lm_eval.evaluator as lm_evaluator

        for name in ("add_env_info", "get_git_commit_hash"):
            patches.set(lm_evaluator, name, clock.timed("lm_eval_metadata", getattr(lm_evaluator, name)))
    # `collate` is looked up in the trainer's module at each step: the one private name wrapped here.
    patches.set(proxy_module, "collate", clock.timed("data_collate", proxy_module.collate))


def derive(rec: dict[str, Any]) -> dict[str, Any]:
    """Phase seconds of one trial from its raw timings."""
    g = lambda k: float(rec.get(k, 0.0))  # noqa: E731
    data_in_loop = g("data_next_batch") + g("data_collate")
    phases = {
        "adapter_setup": g("train_window") - g("train_loop") - g("data_sampler_init"),
        "training": g("train_loop") - data_in_loop - g("rung_evaluation"),
        "evaluation": g("evaluation") + g("rung_evaluation"),
    }
    phases["bookkeeping"] = rec["total"] - sum(phases.values())
    book = {
        "recipe_sampling": g("recipe_sampling"),
        "data_preparation": g("data_sampler_init") + data_in_loop,
        "storage_writes_in_objective": g("storage_writes_in_objective"),
        "adapter_unload": g("adapter_unload"),
        "optuna_ask": g("optuna_ask"),
        "optuna_tell_and_gc": rec["total"] - g("optuna_ask") - g("objective"),
    }
    book["other"] = phases["bookkeeping"] - sum(book.values())
    return {
        "number": rec.get("number"),
        "total": rec["total"],
        **phases,
        "peft_injection": g("peft_injection"),
        "lm_eval_metadata": g("lm_eval_metadata"),
        "gc_collect_in_unload": g("gc_collect_in_unload"),
        "gc_collect_elsewhere": g("gc_collect_elsewhere"),
        **{f"bookkeeping.{k}": v for k, v in book.items()},
        "cores_used": rec["cores_used"],
        "proxy_steps": rec.get("proxy_steps"),
        "tokens": rec.get("tokens"),
    }


def cpu_part(args: argparse.Namespace) -> None:
    load_at_start = os.getloadavg()
    t_import = time.perf_counter()
    import optuna
    import torch

    from recipe_opt.demo import build_world

    imports_s = time.perf_counter() - t_import
    torch.set_num_threads(os.cpu_count() or 1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not (args.world / "world.json").is_file():
        build_world(args.world)
    tmp = Path(tempfile.mkdtemp(prefix="recipe-opt-trial-profile-"))
    cfg_path = study_yaml(tmp, args.world, "trial-profile", seed=args.seed, trials=args.trials)
    # study_yaml switches to the native scorer (for the lineage benchmarks); restore the demo's.
    cfg = yaml.safe_load(cfg_path.read_text())
    demo_backend = yaml.safe_load((REPO / "studies" / "demo.yaml").read_text())["evaluation"]["backend"]
    cfg["evaluation"]["backend"] = args.backend or demo_backend
    cfg_path.write_text(yaml.safe_dump(cfg))

    clock = Clock()
    patches = Patches()
    try:
        runner = runner_for(cfg_path)
        runner.reporter = reporter = PhaseReporter()
        start = time.perf_counter()
        cpu_start = time.process_time()
        runner.build()
        build_end = time.perf_counter()
        clock.once["build"] = build_end - start
        # Seconds from each of build's phase messages to the next (the last: to `build` returning).
        marks = [*reporter.phases, (build_end, "")]
        build_phases = {msg: marks[i + 1][0] - t for i, (t, msg) in enumerate(reporter.phases)}
        instrument(runner, clock, patches)
        start = time.perf_counter()
        study = runner.run()
        clock.once["run"] = time.perf_counter() - start
        clock.once["cpu"] = time.process_time() - cpu_start
    finally:
        patches.undo()

    # Trial wall time: from its `ask` to the next trial's `ask` (the last: to `optimize` returning).
    # CPU seconds of this process per wall second: ~2 on an idle 2-core machine, lower when
    # other work competes for the cores (every phase then stretches).
    ends = [(t["ask_start"], t["cpu_start"]) for t in clock.trials[1:]]
    ends.append((clock.once["optimize_end"], clock.once["optimize_end_cpu"]))
    for rec, (end, end_cpu) in zip(clock.trials, ends, strict=True):
        rec["total"] = end - rec["ask_start"]
        rec["cores_used"] = (end_cpu - rec["cpu_start"]) / rec["total"]
    by_number = {t.number: t for t in study.trials}
    rows = []
    for rec in clock.trials:
        row = derive(rec)
        t = by_number[row["number"]]
        row["state"] = t.state.name
        row["origin"] = t.user_attrs.get("origin", "sampler")
        rows.append(row)
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    if not complete:
        sys.exit("no trial completed; nothing to profile")

    def mean(key: str, rs: list[dict[str, Any]] = complete) -> float:
        return statistics.fmean(float(r[key]) for r in rs)

    trial_mean = mean("total")
    n = len(complete)
    per_trial = {
        key: {"mean_s": round(mean(key), 4), "share": round(mean(key) / trial_mean, 4)}
        for key in (*PHASES, *(f"bookkeeping.{k}" for k in BOOKKEEPING), *OF_WHICH)
    }
    neither = mean("total") - mean("training") - mean("evaluation")
    once = clock.once
    loads = [v for k, v in build_phases.items() if k.startswith("loading base model")]
    if len(loads) != 1:
        sys.exit(f"cannot find the base-model load among the runner's phase messages: {list(build_phases)}")
    base_load = loads[0]
    end_to_end = once["build"] + once["run"]
    sum_train_eval = sum(r["training"] + r["evaluation"] for r in rows) + once.get("base_evaluation", 0.0)
    by_origin = {}
    for origin in sorted({r["origin"] for r in complete}):
        rs = [r for r in complete if r["origin"] == origin]
        by_origin[origin] = {
            "trials": len(rs),
            "total_mean_s": round(mean("total", rs), 3),
            "bookkeeping_mean_s": round(mean("bookkeeping", rs), 3),
            "optuna_ask_mean_s": round(mean("bookkeeping.optuna_ask", rs), 3),
        }
    rc = runner.cfg
    out = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]).replace(str(REPO) + "/", ""),
        "machine": machine(load_at_start),
        "versions": versions(),
        "setup": {
            "world": "demo world (seed 0), cycle 1: v0 + mul, add_text (studies/demo.yaml)",
            "trials": args.trials,
            "sampler": f"{rc.sampler.name}, {rc.sampler.n_startup_trials} start-up trials, "
            f"initial design {rc.sampler.initial_design}",
            "proxy": f"fraction {rc.proxy.fraction} at batch {rc.proxy.batch_size}, max_seq_len "
            f"{rc.proxy.max_seq_len}, device {runner.device}",
            "evaluation_backend": rc.evaluation.backend,
            "early_stopping": rc.early_stopping.enabled,
            "storage": "fresh SQLite file (temp dir)",
        },
        "trials_complete": n,
        "trials_other": {r["number"]: r["state"] for r in rows if r["state"] != "COMPLETE"},
        "trial_mean_s": round(trial_mean, 4),
        "cores_used_mean (process CPU s / wall s; 2 = both cores of an idle machine)": round(mean("cores_used"), 2),
        "per_trial": per_trial,
        "share_neither_training_nor_evaluation": round(neither / trial_mean, 4),
        "share_neither_training_nor_scoring (lm-eval's metadata counted out of evaluation)": round(
            (neither + mean("lm_eval_metadata")) / trial_mean, 4
        ),
        "one_time": {
            "imports_s": round(imports_s, 3),
            "build_s": round(once["build"], 3),
            "base_model_load_s": round(base_load, 3),
            "base_model_load_amortised_per_trial_s": round(base_load / len(rows), 4),
            "build_phases_s": {k: round(v, 3) for k, v in build_phases.items()},
            "base_evaluation_s": round(once.get("base_evaluation", 0.0), 3),
            "base_evaluation_lm_eval_metadata_s": round(once.get("lm_eval_metadata", 0.0), 3),
            "run_setup_s (storage, study, lineage note, initial design)": round(
                once["run"] - once["optimize"] - once.get("base_evaluation", 0.0), 3
            ),
        },
        "end_to_end": {
            "seconds (build + run)": round(end_to_end, 2),
            "cores_used (process CPU s / wall s)": round(once["cpu"] / end_to_end, 2),
            "per_trial_s": round(end_to_end / len(rows), 3),
            "base_model_load_share": round(base_load / end_to_end, 4),
            "share_neither_training_nor_evaluation": round(1 - sum_train_eval / end_to_end, 4),
        },
        "by_origin": by_origin,
        "trials": [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in rows],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "trials"}, indent=2))
    print(f"\nper trial, mean of {n} complete trials ({trial_mean:.2f} s):")
    for key, v in per_trial.items():
        print(f"  {key:<42} {v['mean_s']:8.3f} s  {100 * v['share']:5.1f}%")
    print(f"  neither training nor evaluation {100 * out['share_neither_training_nor_evaluation']:5.1f}%")
    print(f"  neither training nor scoring    {100 * (neither + mean('lm_eval_metadata')) / trial_mean:5.1f}%")
    print(f"wrote {args.out}")


# ---- GPU part: LoRA step throughput and MFU on a Qwen2-0.5B-shaped model ---------------------------


def peak_flops_for(name: str) -> float | None:
    """Dense bf16 peak of a GPU from its CUDA device name; None where the table has no entry."""
    up = name.upper()
    if "H200" in up:
        return PEAK_BF16["H200"]
    if "H100" in up:
        if "PCIE" in up:
            return PEAK_BF16["H100 PCIe"]
        if "SXM" in up or "HBM3" in up:  # the SXM part reports itself as "NVIDIA H100 80GB HBM3"
            return PEAK_BF16["H100 SXM"]
        return None  # H100 NVL and others: not in the table
    if "A100" in up:
        return PEAK_BF16["A100"]
    if re.search(r"\bL4\b", up):  # not L40 / L40S
        return PEAK_BF16["L4"]
    return None


def qwen2_config(tiny: bool) -> Any:
    from transformers import Qwen2Config

    if tiny:
        shape = dict(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=128,
            vocab_size=1000,
        )
    else:  # Qwen2-0.5B
        shape = dict(
            hidden_size=896,
            num_hidden_layers=24,
            num_attention_heads=14,
            num_key_value_heads=2,
            intermediate_size=4864,
            vocab_size=151936,
        )
    return Qwen2Config(**shape, tie_word_embeddings=True, max_position_embeddings=32768, use_cache=False)


def lora_step_profile(
    cfg: Any, *, device: str, dtype: Any, batch: int, seq: int, steps: int, warmup: int, rank: int
) -> dict[str, Any]:
    """Time `steps` LoRA training steps (after `warmup` untimed ones) on random tokens."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).to(device=device, dtype=dtype)
    attn_implementation = model.config._attn_implementation
    for p in model.parameters():
        p.requires_grad_(False)
    n_frozen = int(model.num_parameters(exclude_embeddings=True))  # N, as `load_base_model` counts it
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=ALL_LINEAR, task_type="CAUSAL_LM")
    with warnings.catch_warnings():  # peft probes transformers 5's deprecated `is_gradient_checkpointing`
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model = get_peft_model(model, lora)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_adapter = sum(p.numel() for p in trainable)
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(cfg.vocab_size, (batch, seq), generator=gen).to(device) for _ in range(4)]
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def step(i: int) -> float:
        ids = batches[i % len(batches)]
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach()) if i == 0 else 0.0

    model.train()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    first_loss = step(0)
    for i in range(1, warmup):
        step(i)
    sync()
    start = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    sync()
    seconds = time.perf_counter() - start

    layers, heads = cfg.num_hidden_layers, cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    attn_width = heads * head_dim
    per_token = {
        "frozen_4N": 4.0 * n_frozen,
        "adapter_6n": 6.0 * n_adapter,
        "attention_12Lsd": 12.0 * layers * seq * attn_width,
    }
    lm_head = 4.0 * cfg.vocab_size * cfg.hidden_size  # forward 2Vd + input-gradient backward 2Vd
    tokens = batch * seq * steps
    return {
        "frozen_non_embedding_params_N": n_frozen,
        "adapter_params_n": n_adapter,
        "adapter_dtype": str(trainable[0].dtype),
        "base_dtype": str(dtype),
        "attn_implementation": attn_implementation,
        "batch": batch,
        "seq": seq,
        "warmup_steps": warmup,
        "timed_steps": steps,
        "timed_seconds": round(seconds, 4),
        "step_ms": round(1e3 * seconds / steps, 2),
        "tokens_per_second": round(tokens / seconds, 1),
        "flops_per_token": {**per_token, "total": sum(per_token.values())},
        "achieved_flops_per_second": sum(per_token.values()) * tokens / seconds,
        "lm_head_flops_per_token_not_counted": lm_head,
        "achieved_flops_per_second_incl_lm_head": (sum(per_token.values()) + lm_head) * tokens / seconds,
        "peak_memory_allocated_bytes": int(torch.cuda.max_memory_allocated()) if cuda else None,
        "first_loss": round(first_loss, 4),
    }


def gpu_part(args: argparse.Namespace, *, dry_run_cpu: bool) -> None:
    load_at_start = os.getloadavg()
    import torch

    if dry_run_cpu:
        device, dtype, name, peak = "cpu", torch.float32, "cpu (dry run)", None
        if args.peak_tflops:
            peak = args.peak_tflops * 1e12
        shape = dict(batch=2, seq=32, steps=3, warmup=1)
    else:
        if not torch.cuda.is_available():
            print("GPU part skipped: torch.cuda.is_available() is False (no CUDA device on this machine).")
            return
        device, dtype = "cuda", torch.bfloat16
        name = torch.cuda.get_device_name()
        peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_flops_for(name)
        if peak is None:
            sys.exit(
                f"no bf16 peak known for {name!r} (table: {', '.join(PEAK_BF16)}): "
                "pass its dense bf16 peak as --peak-tflops T"
            )
        shape = dict(batch=args.batch, seq=args.seq, steps=args.steps, warmup=args.warmup)
    cfg = qwen2_config(tiny=dry_run_cpu)
    r = lora_step_profile(cfg, device=device, dtype=dtype, rank=args.rank, **shape)
    if peak is not None:
        r["mfu"] = round(r["achieved_flops_per_second"] / peak, 4)
        r["mfu_incl_lm_head"] = round(r["achieved_flops_per_second_incl_lm_head"] / peak, 4)
    out = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]).replace(str(REPO) + "/", ""),
        "machine": {
            **machine(load_at_start),
            "device": name,
            "cuda": torch.version.cuda,
            "peak_bf16_flops_per_second": peak,
            "peak_source": "--peak-tflops"
            if args.peak_tflops
            else ("none (CPU dry run)" if dry_run_cpu else "table (dense bf16, no sparsity)"),
        },
        "versions": versions(),
        "model": "Qwen2-0.5B shape, random weights" if not dry_run_cpu else "tiny Qwen2 (2 layers, hidden 64)",
        "lora": f"rank {args.rank}, alpha {2 * args.rank}, {', '.join(ALL_LINEAR)}; AdamW on the adapter only",
        "flop_formula": "per token 4N + 6n + 12*L*s*d (d = heads * head_dim); LM head not counted "
        "(N excludes the tied embedding, as recipe-opt's cost does); *_incl_lm_head adds 4*V*d_model",
        "result": r,
    }
    text = json.dumps(out, indent=2) + "\n"
    print(text, end="")
    if dry_run_cpu and args.out is None:
        print("dry run on CPU: nothing written")
        return
    path = args.out or REPO / "bench" / "results" / "trial_profile_gpu.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=Path, default=REPO / "demo_world")
    ap.add_argument("--trials", type=int, default=10, help="Trials of the demo study to profile (CPU part).")
    ap.add_argument("--backend", choices=["lm-eval", "native"], help="Scorer (default: the demo study's).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="JSON path (default: bench/results/trial_profile_{cpu,gpu}.json).")
    ap.add_argument("--gpu", action="store_true", help="Run the GPU part instead of the CPU part.")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20, help="Timed steps (GPU part).")
    ap.add_argument("--warmup", type=int, default=5, help="Untimed steps first (GPU part).")
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--peak-tflops", type=float, help="Dense bf16 peak of the GPU, where the table has none.")
    ap.add_argument("--gpu-dry-run-cpu", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.trials < 1 or min(args.batch, args.seq, args.steps, args.warmup, args.rank) < 1:
        ap.error("--trials, --batch, --seq, --steps, --warmup and --rank must be >= 1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.gpu or args.gpu_dry_run_cpu:
        gpu_part(args, dry_run_cpu=args.gpu_dry_run_cpu)
        return
    args.out = args.out or REPO / "bench" / "results" / "trial_profile_cpu.json"
    cpu_part(args)


if __name__ == "__main__":
    main()
