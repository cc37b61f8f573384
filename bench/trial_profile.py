"""Benchmark: where a trial's time goes (CPU, demo world), and LoRA step throughput / MFU on a GPU.

    python bench/trial_profile.py [--trials 10] [--backend lm-eval|native] [--world demo_world]
    python bench/trial_profile.py --gpu [--batch 8 --seq 512 --steps 20 --warmup 5] [--peak-tflops T]

CPU part (default): runs the demo study (studies/demo.yaml, cycle 1, its own sampler, scorer and
proxy settings) for --trials trials through `StudyRunner.run` on a fresh SQLite file, and reads
each trial's phases from what the package itself records with every trial (nothing of
recipe-opt is wrapped or patched):

  base-model load   once per process (shown amortised over the trials): from the runner's
                    "loading base model" phase message to its next one (a `Reporter`)
  adapter setup     `TrainResult.setup_seconds`: peft injection, AdamW, LR scheduler,
                    `Accelerator.prepare`
  training          `TrainResult.step_seconds`: the step loop less batch preparation and rung
                    evaluations (forward, backward, optimiser)
  evaluation        the trial's `eval_seconds` (lm-eval or native, every suite) plus its rung
                    evaluations; of which, with lm-eval, the environment metadata
                    `simple_evaluate` collects (`add_env_info`, `get_git_commit_hash`, wrapped in
                    lm-eval's module and reported on its own)
  bookkeeping       the rest of the trial's wall time, from its start in Optuna's storage to the
                    next trial's start: recipe sampling (`sampling_seconds`: the sampler's
                    suggest calls, GP fit included), data preparation (`data_seconds`: batch
                    sampling and collation), adapter unload (`unload_seconds`: peft unload and
                    accelerate's `free_memory` with its `gc.collect`), the objective's other work
                    (attribute and constraint writes, progress), and the worker loop between
                    trials (Optuna's `tell` and `ask`, stale-trial check, budget count).
Writes bench/results/trial_profile_cpu.json.

GPU part (--gpu; skipped with a message where `torch.cuda.is_available()` is false): a Qwen2-0.5B-
shaped model with random weights (throughput does not depend on them), a rank-16 LoRA adapter on
all linear projections, random full-length token sequences, timed two ways:

  proxy_trial               recipe-opt's own trainer (`ProxyTrainer.train`, the path a trial of
                            `recipe-opt search` takes): the base loaded as `load_base_model` loads a
                            checkpoint (fp32, frozen), bf16 from accelerate's autocast
                            (`proxy.mixed_precision: bf16`), AdamW on the adapter; steps timed
                            from the trainer's progress callback (each reads the loss, so each
                            mark is a synchronised step boundary); adapter setup and unload
                            reported beside
  reference_loop_bf16_base  a hand-written LoRA loop over a base stored in bf16 (no autocast
                            casts): how far the trainer's path is from a lean loop

Reports tokens/s, model FLOPs utilisation and peak memory for each; writes
bench/results/trial_profile_gpu.json. FLOPs per trained token follow recipe-opt's
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
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from _cycles import REPO, runner_for, study_yaml

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Dense bf16 tensor-core peak FLOP/s (no sparsity), from the vendors' data sheets.
PEAK_BF16 = {"H100 SXM": 989e12, "H100 PCIe": 756e12, "H200": 989e12, "A100": 312e12, "L4": 121e12}
PHASES = ("adapter_setup", "training", "evaluation", "bookkeeping")
# Shown as "of which" of evaluation: lm-eval's environment-metadata collection.
OF_WHICH = ("lm_eval_metadata",)
BOOKKEEPING = ("recipe_sampling", "data_preparation", "adapter_unload", "objective_other", "worker_loop")


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


class PhaseReporter:
    """A `Reporter` that timestamps the runner's phase messages and marks the running trial."""

    def __init__(self) -> None:
        self.phases: list[tuple[float, str]] = []
        self.trial: int | None = None  # the trial between its `trial_started` and `trial_finished`

    def phase(self, message: str) -> None:
        self.phases.append((time.perf_counter(), message.replace(str(REPO) + "/", "")))

    def trial_started(self, number: int, recipe: Any, proxy_steps: int) -> None:
        self.trial = number

    def step(self, done: int, total: int, loss: float) -> None:
        pass

    def trial_finished(self, summary: Any) -> None:
        self.trial = None


@contextlib.contextmanager
def lm_eval_metadata_timer(reporter: PhaseReporter, seconds: dict[int | None, float]) -> Iterator[None]:
    """Time lm-eval's environment-metadata calls, per trial (None: outside a trial).

    `simple_evaluate` ends by collecting metadata for its results (torch's collect_env, which
    runs `pip list` and other probes, and the git commit): part of every evaluation's time, but
    not scoring. Wrapped where lm-eval's evaluator looks them up, and put back afterwards.
    """
    try:
        import lm_eval.evaluator as lm_evaluator
    except ImportError:
        yield
        return
    originals = {name: getattr(lm_evaluator, name) for name in ("add_env_info", "get_git_commit_hash")}

    def timed(fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                seconds[reporter.trial] = seconds.get(reporter.trial, 0.0) + time.perf_counter() - start

        return wrapper

    for name, fn in originals.items():
        setattr(lm_evaluator, name, timed(fn))
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(lm_evaluator, name, fn)


def derive(metrics: dict[str, Any], total: float, lm_eval_metadata: float) -> dict[str, float]:
    """Phase seconds of one complete trial from what it recorded, and its wall time `total`."""
    train = metrics["train"]
    phases = {
        "adapter_setup": train["setup_seconds"],
        "training": train["train_seconds"] - train["data_seconds"] - train["rung_seconds"],
        "evaluation": metrics["eval_seconds"] + train["rung_seconds"],
    }
    phases["bookkeeping"] = total - sum(phases.values())
    in_objective = metrics["trial_seconds"]  # from the objective's start to its metrics write
    timed_in_objective = (
        metrics["sampling_seconds"]
        + train["setup_seconds"]
        + train["train_seconds"]
        + metrics["eval_seconds"]
        + train["unload_seconds"]
    )
    book = {
        "recipe_sampling": metrics["sampling_seconds"],
        "data_preparation": train["data_seconds"],
        "adapter_unload": train["unload_seconds"],
        "objective_other": in_objective - timed_in_objective,
        "worker_loop": total - in_objective,
    }
    return {
        "total": total,
        **phases,
        "lm_eval_metadata": lm_eval_metadata,
        **{f"bookkeeping.{k}": v for k, v in book.items()},
    }


def cpu_part(args: argparse.Namespace) -> None:
    load_at_start = os.getloadavg()
    t_import = time.perf_counter()
    import optuna
    import torch

    from recipe_opt.demo import build_world
    from recipe_opt.study import ATTR_BASE_EVAL, ATTR_METRICS

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

    runner = runner_for(cfg_path)
    runner.reporter = reporter = PhaseReporter()
    metadata: dict[int | None, float] = {}
    cpu_start = time.process_time()
    start = time.perf_counter()
    with lm_eval_metadata_timer(reporter, metadata):
        runner.build()
        build_end = time.perf_counter()
        run_start = time.perf_counter()
        study = runner.run()
        run_end, run_end_wall = time.perf_counter(), datetime.now()
    cpu = time.process_time() - cpu_start
    # Seconds from each of build's phase messages to the next (the last: to `build` returning).
    build_phases_list = [m for m in reporter.phases if m[0] <= build_end]
    marks = [*build_phases_list, (build_end, "")]
    build_phases = {msg: marks[i + 1][0] - t for i, (t, msg) in enumerate(build_phases_list)}

    # A trial's wall time: from its start in the storage (Optuna stamps it when the trial begins
    # to run) to the next trial's start; the last one's to the end of the run.
    trials = sorted(
        (t for t in study.trials if t.datetime_start is not None), key=lambda t: (t.datetime_start, t.number)
    )
    ends = [t.datetime_start for t in trials[1:]] + [run_end_wall]
    rows = []
    for t, end in zip(trials, ends, strict=True):
        total = (end - t.datetime_start).total_seconds()
        row: dict[str, Any] = {
            "number": t.number,
            "state": t.state.name,
            "origin": t.user_attrs.get("origin", "sampler"),
        }
        if t.state == optuna.trial.TrialState.COMPLETE:
            m = t.user_attrs[ATTR_METRICS]
            row.update(derive(m, total, metadata.get(t.number, 0.0)))
            row["proxy_steps"] = m["train"]["proxy_steps"]
            row["tokens"] = m["train"]["tokens_seen"]
        else:
            row["total"] = total
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
    loads = [v for k, v in build_phases.items() if k.startswith("loading base model")]
    if len(loads) != 1:
        sys.exit(f"cannot find the base-model load among the runner's phase messages: {list(build_phases)}")
    base_load = loads[0]
    build_s = build_end - start
    run_s = run_end - run_start
    end_to_end = build_s + run_s
    base_eval_s = float(study.user_attrs[ATTR_BASE_EVAL].get("seconds", 0.0))
    sum_train_eval = sum(r.get("training", 0.0) + r.get("evaluation", 0.0) for r in rows) + base_eval_s
    first_start = (trials[0].datetime_start - run_end_wall).total_seconds() + run_end if trials else run_end
    by_origin = {}
    for origin in sorted({r["origin"] for r in complete}):
        rs = [r for r in complete if r["origin"] == origin]
        by_origin[origin] = {
            "trials": len(rs),
            "total_mean_s": round(mean("total", rs), 3),
            "bookkeeping_mean_s": round(mean("bookkeeping", rs), 3),
            "recipe_sampling_mean_s": round(mean("bookkeeping.recipe_sampling", rs), 3),
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
            "timings": "recorded by the package with each trial (TrainResult, the trial's metrics); "
            "trial wall time from Optuna's trial start timestamps",
        },
        "trials_complete": n,
        "trials_other": {r["number"]: r["state"] for r in rows if r["state"] != "COMPLETE"},
        "trial_mean_s": round(trial_mean, 4),
        "per_trial": per_trial,
        "share_neither_training_nor_evaluation": round(neither / trial_mean, 4),
        "share_neither_training_nor_scoring (lm-eval's metadata counted out of evaluation)": round(
            (neither + mean("lm_eval_metadata")) / trial_mean, 4
        ),
        "one_time": {
            "imports_s": round(imports_s, 3),
            "build_s": round(build_s, 3),
            "base_model_load_s": round(base_load, 3),
            "base_model_load_amortised_per_trial_s": round(base_load / len(rows), 4),
            "build_phases_s": {k: round(v, 3) for k, v in build_phases.items()},
            "base_evaluation_s": round(base_eval_s, 3),
            "base_evaluation_lm_eval_metadata_s": round(metadata.get(None, 0.0), 3),
            "run_setup_s (storage, study, lineage note, initial design, base scores)": round(
                first_start - run_start, 3
            ),
        },
        "end_to_end": {
            "seconds (build + run)": round(end_to_end, 2),
            "cores_used (process CPU s / wall s; 2 = both cores of an idle machine)": round(cpu / end_to_end, 2),
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


def throughput(
    cfg: Any, *, n_frozen: int, n_adapter: int, batch: int, seq: int, warmup: int, steps: int, seconds: float
) -> dict[str, Any]:
    """Timing, tokens/s and achieved FLOP/s of `steps` timed steps, by `4N + 6n + 12 L s d` per token."""
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    per_token = {
        "frozen_4N": 4.0 * n_frozen,
        "adapter_6n": 6.0 * n_adapter,
        "attention_12Lsd": 12.0 * cfg.num_hidden_layers * seq * heads * head_dim,
    }
    lm_head = 4.0 * cfg.vocab_size * cfg.hidden_size  # forward 2Vd + input-gradient backward 2Vd
    tokens = batch * seq * steps
    return {
        "frozen_non_embedding_params_N": n_frozen,
        "adapter_params_n": n_adapter,
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
    }


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
    return {
        **throughput(
            cfg,
            n_frozen=n_frozen,
            n_adapter=n_adapter,
            batch=batch,
            seq=seq,
            warmup=warmup,
            steps=steps,
            seconds=seconds,
        ),
        "adapter_dtype": str(trainable[0].dtype),
        "base_dtype": str(dtype),
        "attn_implementation": attn_implementation,
        "peak_memory_allocated_bytes": int(torch.cuda.max_memory_allocated()) if cuda else None,
        "first_loss": round(first_loss, 4),
    }


def proxy_trial_profile(
    cfg: Any, *, device: str, mixed_precision: str, batch: int, seq: int, steps: int, warmup: int, rank: int
) -> dict[str, Any]:
    """One recipe-opt proxy trial (`ProxyTrainer.train`, as `recipe-opt search` runs it) of a
    randomly initialised model on random full-length sequences; steps after `warmup` are timed.

    The trainer reads the loss of every step (`float(loss)`, which waits for the GPU), so the
    progress callback's timestamps are step boundaries.
    """
    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast, Qwen2ForCausalLM

    from recipe_opt.data import EncodedExample
    from recipe_opt.recipe import Adapter, Budget, Mixture, Recipe, Replay, Schedule
    from recipe_opt.train import BaseModel, ProxySettings, ProxyTrainer, TrainingData

    torch.manual_seed(0)
    # Loaded the way `load_base_model` loads a checkpoint: fp32 weights, frozen, on the device;
    # bf16 comes from the trainer's autocast (`proxy.mixed_precision: bf16`).
    model = Qwen2ForCausalLM(cfg).to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    # The trainer needs only the pad id of a tokenizer: a one-token vocabulary gives a real one.
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"<pad>": 0}, unk_token="<pad>")))
    tokenizer.pad_token = "<pad>"
    base = BaseModel(model, tokenizer, Path("random-qwen2"), int(model.num_parameters(exclude_embeddings=True)))
    gen = torch.Generator().manual_seed(0)
    # Full-length sequences (no padding), loss on every token after the first: prompt_len 1.
    examples = [
        EncodedExample(tuple(torch.randint(1, cfg.vocab_size, (seq,), generator=gen).tolist()), 1) for _ in range(64)
    ]
    data = TrainingData(new={"random": examples}, replay={}, replay_weights={})
    total_steps = warmup + steps
    settings = ProxySettings(
        fraction=1.0, batch_size=batch, max_seq_len=seq, min_steps=1, device=device, mixed_precision=mixed_precision
    )
    trainer = ProxyTrainer(base, data, settings)
    recipe = Recipe(
        Mixture.from_mapping({"random": 1.0}),
        Replay(0.0),
        Schedule(1e-4, 0.0, "constant_with_warmup"),
        Adapter(rank, 2.0, tuple(ALL_LINEAR)),
        Budget(total_steps, batch),
    )
    marks: dict[int, float] = {}
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with trainer.train(recipe, progress=lambda done, total, loss: marks.__setitem__(done, time.perf_counter())) as (
        _,
        result,
    ):
        pass
    seconds = marks[total_steps] - marks[warmup]
    return {
        "path": "recipe_opt.train.ProxyTrainer.train (the proxy trial recipe-opt runs)",
        **throughput(
            cfg,
            n_frozen=base.non_embedding_params,
            n_adapter=result.trainable_params,
            batch=batch,
            seq=seq,
            warmup=warmup,
            steps=steps,
            seconds=seconds,
        ),
        "base_dtype": str(next(model.parameters()).dtype),
        "mixed_precision": mixed_precision,
        "attn_implementation": model.config._attn_implementation,
        "peak_memory_allocated_bytes": int(torch.cuda.max_memory_allocated()) if cuda else None,
        "trial_phases_s": {
            "adapter_setup": round(result.setup_seconds, 4),
            "step_loop (all steps)": round(result.train_seconds, 4),
            "of which data preparation": round(result.data_seconds, 4),
            "adapter_unload": round(result.unload_seconds, 4),
        },
        "first_loss": round(result.first_loss, 4),
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
    results = {
        # What recipe-opt achieves: its own trainer, fp32 base weights under bf16 autocast.
        "proxy_trial": proxy_trial_profile(
            cfg, device=device, mixed_precision="no" if dry_run_cpu else "bf16", rank=args.rank, **shape
        ),
        # A reference: a hand-written LoRA loop over a base stored in bf16 (no autocast casts).
        "reference_loop_bf16_base": lora_step_profile(cfg, device=device, dtype=dtype, rank=args.rank, **shape),
    }
    for r in results.values():
        if peak is not None:
            r["mfu"] = round(r["achieved_flops_per_second"] / peak, 4)
            r["mfu_incl_lm_head"] = round(r["achieved_flops_per_second_incl_lm_head"] / peak, 4)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
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
        "results": results,
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
