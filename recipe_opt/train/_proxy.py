"""The proxy trainer: a short LoRA fine-tune of the base model under one `Recipe`.

The base model is loaded once per process and reused: each trial injects a fresh peft LoRA adapter,
trains only the adapter, hands the adapted model to the evaluators, then unloads the adapter
(`PeftModel.unload()`, no merge) so the base weights are bit-for-bit what they were. Nothing here
knows about Optuna.

Cost is measured, not guessed. FLOPs per trained token follow from the arithmetic of a frozen base:
the forward pass costs 2N (N = non-embedding parameters, transformers' convention in
`floating_point_ops`), the backward pass computes input gradients only (2N, no weight gradients
for frozen weights), and the adapter's own n parameters cost the full 6n. So a LoRA step is about
(4N + 6n) / 6N = 2/3 of a full fine-tuning step. Attention-score FLOPs (~ 4 * layers * seq * hidden
per token) are left out: at the demo's 16-token sequences they are under 2% of 4N.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from recipe_opt.data import BatchSampler, EncodedExample, source_shares
from recipe_opt.exceptions import TrainingError, first_line
from recipe_opt.recipe import Recipe
from recipe_opt.train._checkpoint import BaseModel
from recipe_opt.train._loop import collate

__all__ = [
    "EarlyStop",
    "Fidelity",
    "ProxySettings",
    "ProxyTrainer",
    "RungFn",
    "TrainResult",
    "TrainState",
    "TrainingData",
    "TrialDiverged",
    "TrialInterrupted",
    "TrialStopped",
]

ProgressFn = Callable[[int, int, float], None]
# Called at a rung step with (step, model in eval mode, measurements so far); raise `EarlyStop` to stop.
RungFn = Callable[[int, Any, "TrainResult"], None]


class TrialInterrupted(TrainingError):
    """A proxy run ended before its last step; `result` holds what it measured until then."""

    def __init__(self, step: int, reason: str, result: TrainResult) -> None:
        self.step = step
        self.reason = reason
        self.result = result
        super().__init__(reason)


class TrialDiverged(TrialInterrupted):
    """The loss became NaN/inf or exploded (above `explode_factor` x its first value)."""


class TrialStopped(TrialInterrupted):
    """A rung callback stopped the run early (it was dominated at that rung)."""


class EarlyStop(Exception):
    """Raised by a rung callback to stop the run; the trainer turns it into `TrialStopped`."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class TrainingData:
    """Encoded examples per source: the update's new sources and the old-data replay pools."""

    new: Mapping[str, Sequence[EncodedExample]]
    replay: Mapping[str, Sequence[EncodedExample]]
    replay_weights: Mapping[str, float]

    def get(self, name: str) -> Sequence[EncodedExample]:
        return self.new[name] if name in self.new else self.replay[name]


@dataclass(frozen=True)
class ProxySettings:
    """How much of the full update the proxy runs, and on what."""

    fraction: float
    batch_size: int
    max_seq_len: int
    min_steps: int = 10
    max_grad_norm: float = 1.0
    explode_factor: float = 10.0
    device: str = "cpu"
    # Systems options: they change speed and memory, not the recipe (a test checks the losses).
    mixed_precision: str = "no"  # "no" | "bf16" | "fp16", through accelerate's autocast
    grad_accumulation: int = 1  # micro-batches per optimiser step; batch_size stays the step's batch
    gradient_checkpointing: bool = False  # recompute activations in the backward pass

    def proxy_steps(self, recipe: Recipe) -> int:
        """`fraction` of the recipe's full-update steps: a longer recipe gets a longer proxy."""
        return max(self.min_steps, round(self.fraction * recipe.budget.steps))


@dataclass(frozen=True)
class Fidelity:
    """Which part of a recipe's full update one run trains, when it is not a compressed proxy.

    A compressed proxy (`ProxySettings.fraction`) squeezes the whole schedule into fewer steps, so
    it cannot be continued: its LR has already decayed. A `Fidelity` run trains steps
    `resume.step + 1 .. stop` of the full update's own schedule (`horizon` steps long), so a later
    run can continue it from its `TrainState` and, at `stop == horizon`, it *is* the full update.
    `anneal` evaluates a side branch instead of the prefix itself: from the LR at `stop` it decays
    linearly to 0 over `anneal` extra steps (the annealing that a schedule's end would do, in
    miniature: arXiv 2408.11029 shows most of a schedule's late loss drop is that annealing). The
    branch is scored and thrown away; the saved state is the prefix's, taken before it.
    """

    stop: int
    horizon: int
    anneal: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.stop <= self.horizon:
            raise ValueError(f"`1 <= stop <= horizon` must hold, but got (stop={self.stop}, horizon={self.horizon})")
        if self.anneal < 0:
            raise ValueError(f"`anneal >= 0` must hold, but got (anneal={self.anneal})")

    @property
    def branch(self) -> int:
        """Annealing steps actually run: none at the schedule's end (it has annealed already)."""
        return self.anneal if self.stop < self.horizon else 0


@dataclass
class TrainState:
    """Where a `Fidelity` run stopped: enough to continue it bit for bit (`ProxyTrainer.train(resume=)`).

    The adapter's tensors and AdamW's moments (3x the adapter's size), the scheduler's position, the
    RNG, and the step: the batch stream is deterministic, so it is replayed to `step`, not stored.
    """

    recipe_hash: str
    horizon: int
    step: int
    adapter: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: torch.Tensor
    first_loss: float
    tokens: int  # tokens trained on the way here (the prefix only, not any annealing branch)

    def save(self, path: os.PathLike[str] | str) -> None:
        torch.save(self.__dict__, path)

    @classmethod
    def load(cls, path: os.PathLike[str] | str) -> TrainState:
        return cls(**torch.load(path, map_location="cpu", weights_only=False))


@dataclass
class TrainResult:
    """What one proxy run measured. All counts are exact; seconds and memory are measurements."""

    proxy_steps: int
    tokens_seen: int
    target_tokens_seen: int
    trainable_params: int
    frozen_params: int
    train_seconds: float
    peak_memory_bytes: int
    proxy_flops: float
    full_update_flops: float
    full_update_tokens: float
    tokens_per_second: float
    first_loss: float
    final_loss: float
    losses: list[float] = field(default_factory=list)
    # Where the trial's trainer time went, for `bench/trial_profile.py` and the trial record.
    # `train_seconds` is the whole step loop; of it, `data_seconds` went to batch sampling and
    # collation and `rung_seconds` to rung evaluations. `setup_seconds` is before the loop (peft
    # injection, optimiser, scheduler, accelerate's prepare); `unload_seconds` after it (adapter
    # unload, accelerate's free_memory and its gc.collect), set when the `train` block exits.
    setup_seconds: float = 0.0
    data_seconds: float = 0.0
    rung_seconds: float = 0.0
    unload_seconds: float = 0.0
    # A `Fidelity` run: the step it started after (0 unless resumed) and its state at `stop`.
    # `proxy_steps`, `tokens_seen` and `proxy_flops` count this run's own steps only (an annealing
    # branch included): a continued run's compute is counted once, by the run that spent it.
    start_step: int = 0
    state: TrainState | None = None

    @property
    def step_seconds(self) -> float:
        """The step loop less data preparation and rung evaluations: forward, backward, optimiser."""
        return self.train_seconds - self.data_seconds - self.rung_seconds

    @property
    def projected_full_seconds(self) -> float:
        """Wall time of the full update at the proxy's measured throughput (noisy; recorded only)."""
        return self.full_update_tokens / self.tokens_per_second if self.tokens_per_second else math.inf

    def as_metrics(self) -> dict[str, float]:
        return {
            "proxy_steps": self.proxy_steps,
            "tokens_seen": self.tokens_seen,
            "trainable_params": self.trainable_params,
            "train_seconds": round(self.train_seconds, 4),
            "peak_memory_mb": round(self.peak_memory_bytes / 2**20, 2),
            "proxy_tflops": self.proxy_flops / 1e12,
            "full_update_tflops": self.full_update_flops / 1e12,
            "full_update_tokens": self.full_update_tokens,
            "tokens_per_second": round(self.tokens_per_second, 1),
            "projected_full_seconds": round(self.projected_full_seconds, 2),
            "first_loss": self.first_loss,
            "final_loss": self.final_loss,
            "setup_seconds": round(self.setup_seconds, 4),
            "data_seconds": round(self.data_seconds, 4),
            "rung_seconds": round(self.rung_seconds, 4),
            "unload_seconds": round(self.unload_seconds, 4),
            "start_step": self.start_step,
        }


def flops_per_token(frozen: int, trainable: int) -> float:
    """Training FLOP per token: 4N for the frozen base (forward, and the backward to its inputs,
    2N each; no weight gradients), 6n for the adapter (forward, input and weight gradients)."""
    return 4.0 * frozen + 6.0 * trainable


def _rss_bytes() -> int:
    """Resident set size of this process (Linux /proc; 0 where unavailable)."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class ProxyTrainer:
    """Runs recipes as short LoRA fine-tunes of one base model."""

    def __init__(self, base: BaseModel, data: TrainingData, settings: ProxySettings) -> None:
        from accelerate import Accelerator

        self.base = base
        self.data = data
        self.settings = settings
        if settings.batch_size % settings.grad_accumulation:
            raise TrainingError(
                f"`gradient_accumulation_steps` must divide the batch size, but got "
                f"(batch_size={settings.batch_size}, gradient_accumulation_steps={settings.grad_accumulation})"
            )
        # accelerate places the model; precision is torch's autocast around the forward pass
        # (accelerate keeps one precision per process, and a study's trainers may differ).
        self.accelerator = Accelerator(cpu=settings.device == "cpu")
        self.autocast_dtype = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[settings.mixed_precision]
        if settings.mixed_precision == "fp16" and settings.device != "cuda":
            raise TrainingError("`mixed_precision: fp16` needs a CUDA device (use bf16 on CPU)")
        if settings.mixed_precision == "bf16" and settings.device == "cuda" and not torch.cuda.is_bf16_supported():
            raise TrainingError("`mixed_precision: bf16` is not supported by this GPU (use fp16)")
        # fp16 gradients underflow without loss scaling; bf16 has fp32's exponent range and needs none.
        self.scaler = torch.amp.GradScaler("cuda") if settings.mixed_precision == "fp16" else None
        self.sizes = {name: len(v) for name, v in {**data.new, **data.replay}.items()}

    def sampler(self, recipe: Recipe) -> BatchSampler:
        shares = source_shares(recipe.mixture.as_dict(), recipe.replay.ratio, self.data.replay_weights)
        unknown = [s for s in shares if s not in self.sizes]
        if unknown:
            raise TrainingError(f"recipe mixes source(s) {unknown} that the study does not provide")
        return BatchSampler(shares, self.sizes, self.settings.batch_size, seed=recipe.seed)

    @contextlib.contextmanager
    def train(
        self,
        recipe: Recipe,
        *,
        progress: ProgressFn | None = None,
        rungs: Mapping[int, RungFn] | None = None,
        fidelity: Fidelity | None = None,
        resume: TrainState | None = None,
    ) -> Iterator[tuple[Any, TrainResult]]:
        """Train `recipe`'s adapter; yield `(adapted_model, result)`; always restore the base.

        Without `fidelity`, a compressed proxy of `ProxySettings.fraction` of the steps. With it,
        a prefix of the full update's schedule, continued from `resume` if given; the result then
        carries the state at `fidelity.stop`; resumed at `stop` itself, nothing is trained and the
        model is the state's (how `apply` reuses a search's full run). The adapted model is only
        valid inside the `with` block: evaluate it there.
        """
        from peft import LoraConfig, get_peft_model
        from transformers import get_scheduler

        entered = time.perf_counter()
        s = self.settings
        steps = s.proxy_steps(recipe) if fidelity is None else fidelity.horizon
        stop = steps if fidelity is None else fidelity.stop
        start = 0
        if resume is not None:
            if fidelity is None:
                raise TrainingError("a run can only be resumed at a `Fidelity` (a compressed proxy cannot continue)")
            if (resume.recipe_hash, resume.horizon) != (recipe.content_hash, fidelity.horizon):
                raise TrainingError(
                    f"cannot resume recipe {recipe.short_hash} (horizon {fidelity.horizon}) from the state of "
                    f"{resume.recipe_hash[:12]} (horizon {resume.horizon})"
                )
            if not resume.step <= stop:
                raise TrainingError(f"`resume.step <= stop` must hold, but got (step={resume.step}, stop={stop})")
            start = resume.step
        lora = LoraConfig(
            r=recipe.adapter.rank,
            # peft annotates an int, but only ever uses alpha / r as a float scale.
            lora_alpha=recipe.adapter.alpha,  # type: ignore[arg-type]
            lora_dropout=recipe.adapter.dropout,
            target_modules=list(recipe.adapter.target_modules),
            bias="none",
            task_type="CAUSAL_LM",
        )
        torch.manual_seed(recipe.seed)  # LoRA A-matrix init and dropout draw from torch's RNG
        result: TrainResult | None = None
        try:
            with warnings.catch_warnings():
                # peft 0.21 probes transformers 5's deprecated `is_gradient_checkpointing`.
                warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
                # GPT-2's Conv1D layers: peft sets fan_in_fan_out itself, and says so on every trial.
                warnings.filterwarnings("ignore", message=".*fan_in_fan_out is set to False.*", category=UserWarning)
                # transformers 5 renames the checkpointing methods (activation_checkpointing_*) but
                # peft still calls the old ones; one name works with both.
                warnings.filterwarnings("ignore", message=".*gradient_checkpointing_enable.*", category=FutureWarning)
                if self.settings.gradient_checkpointing:
                    # Non-reentrant checkpointing needs no input that requires grad (the frozen
                    # embeddings give none), which the reentrant kind would.
                    self.base.model.gradient_checkpointing_enable(
                        gradient_checkpointing_kwargs={"use_reentrant": False}
                    )
                peft_model = get_peft_model(self.base.model, lora)
        except ValueError as exc:
            raise TrainingError(f"cannot attach LoRA adapter: {first_line(exc)}") from None
        try:
            named = [(n, p) for n, p in peft_model.named_parameters() if p.requires_grad]
            trainable = [p for _, p in named]
            n_trainable = sum(p.numel() for p in trainable)
            if resume is not None:
                with torch.no_grad():
                    for n, p in named:
                        p.copy_(resume.adapter[n])
            optimizer = torch.optim.AdamW(
                trainable, lr=recipe.schedule.peak_lr, weight_decay=recipe.schedule.weight_decay
            )
            scheduler = get_scheduler(
                recipe.schedule.shape,
                optimizer,
                num_warmup_steps=round(recipe.schedule.warmup_fraction * steps),
                num_training_steps=steps,
            )
            if resume is not None:
                # In this order: the optimiser's state holds the LR the scheduler set after step
                # `resume.step`; the scheduler's state, its position, so its next step is the one after.
                optimizer.load_state_dict(resume.optimizer)
                scheduler.load_state_dict(resume.scheduler)
                torch.set_rng_state(resume.rng)
            model, optimizer = self.accelerator.prepare(peft_model, optimizer)
            tally = _Tally(n_trainable=n_trainable, setup_seconds=time.perf_counter() - entered)
            if resume is not None:
                tally.reference_loss = resume.first_loss
            if self.accelerator.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.accelerator.device)
            tally.start = time.perf_counter()
            sampler = self.sampler(recipe)
            for _ in range(start):  # the batch stream is deterministic: replay it to where the run stopped
                sampler.next_batch()
            tally.data_seconds += time.perf_counter() - tally.start
            total = stop + (fidelity.branch if fidelity is not None else 0)
            result = self._loop(
                recipe,
                model,
                optimizer,
                scheduler,
                sampler,
                range(start + 1, stop + 1),
                total,
                tally,
                progress,
                rungs or {},
            )
            if fidelity is not None:
                result.start_step = start
                result.state = TrainState(
                    recipe_hash=recipe.content_hash,
                    horizon=fidelity.horizon,
                    step=stop,
                    adapter={n: p.detach().to("cpu", copy=True) for n, p in named},
                    optimizer=_to_cpu(copy.deepcopy(optimizer.state_dict())),
                    scheduler=copy.deepcopy(scheduler.state_dict()),
                    rng=torch.get_rng_state(),
                    first_loss=tally.reference_loss if tally.reference_loss is not None else result.first_loss,
                    tokens=(resume.tokens if resume is not None else 0) + tally.tokens,
                )
                if fidelity.branch:
                    # The annealing branch: linear from the LR at `stop` to 0, on the same optimiser
                    # (its state is saved above). LambdaLR scales the peak LR, hence the ratio.
                    ratio = optimizer.param_groups[0]["lr"] / recipe.schedule.peak_lr
                    extra = fidelity.branch
                    branch = torch.optim.lr_scheduler.LambdaLR(
                        optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer,
                        lambda i: ratio * max(0.0, 1.0 - i / extra),
                    )
                    state, kept = result.state, result.start_step
                    result = self._loop(
                        recipe,
                        model,
                        optimizer,
                        branch,
                        sampler,
                        range(stop + 1, stop + extra + 1),
                        total,
                        tally,
                        progress,
                        {},
                    )
                    result.state, result.start_step = state, kept
            model.eval()
            yield model, result
        except TrialInterrupted as exc:
            result = exc.result  # a diverged or stopped run's unload is timed too
            raise
        finally:
            unloading = time.perf_counter()
            self.accelerator.free_memory()
            restored = peft_model.unload()  # removes LoRA layers without merging them
            if self.settings.gradient_checkpointing:
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message=".*gradient_checkpointing_disable.*")
                    restored.gradient_checkpointing_disable()  # type: ignore[operator]  # peft types unload() as Tensor
            self.base.model = restored
            for p in restored.parameters():
                p.requires_grad_(False)
            restored.eval()
            if result is not None:
                result.unload_seconds = time.perf_counter() - unloading

    def _loop(
        self,
        recipe: Recipe,
        model: Any,
        optimizer: Any,
        scheduler: Any,
        sampler: BatchSampler,
        span: range,
        total: int,
        tally: _Tally,
        progress: ProgressFn | None,
        rungs: Mapping[int, RungFn],
    ) -> TrainResult:
        """Steps `span` of the run (of `total`, for progress); the tally carries on across calls."""
        s = self.settings
        device = self.accelerator.device
        pad_id = self.base.pad_id
        model.train()
        for step in span:
            data_start = time.perf_counter()
            examples = [self.data.get(d.source)[d.index] for d in sampler.next_batch()]
            # With accumulation the step's batch runs as `k` micro-batches. Each micro-batch's
            # mean loss is weighted by its share of the step's target tokens, so the summed
            # gradient is the gradient of the whole batch's mean loss, as without accumulation.
            k = s.grad_accumulation
            size = len(examples) // k
            micro = [collate(examples[i * size : (i + 1) * size], pad_id) for i in range(k)]
            tally.data_seconds += time.perf_counter() - data_start
            n_targets = max(1, sum(b.n_target_tokens for b in micro))
            step_loss = 0.0
            pending = []
            for b in micro:
                tally.tokens += b.n_tokens
                tally.target_tokens += b.n_target_tokens
                with torch.autocast(device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
                    out = model(
                        input_ids=b.input_ids.to(device),
                        attention_mask=b.attention_mask.to(device),
                        labels=b.labels.to(device),
                    )
                share = b.n_target_tokens / n_targets
                step_loss += float(out.loss.detach()) * share
                pending.append(out.loss * share)
                if k > 1:  # backward now, so only one micro-batch's activations are alive at a time
                    self._backward(pending.pop())
            loss = step_loss
            tally.losses.append(loss)
            if not math.isfinite(loss):
                raise TrialDiverged(step, f"loss became {loss} at step {step}", self._result(recipe, tally, device))
            # Floored at 0.1 nats: when the first loss is near zero (the data is already known),
            # any wobble would otherwise look like an explosion. A resumed run keeps the first
            # loss of the run it continues.
            first = tally.losses[0] if tally.reference_loss is None else tally.reference_loss
            if loss > s.explode_factor * max(first, 0.1):
                raise TrialDiverged(
                    step,
                    f"loss exploded at step {step}: {loss:.3g} > {s.explode_factor:g} x first loss {first:.3g}",
                    self._result(recipe, tally, device),
                )
            if pending:
                self._backward(pending.pop())
            if self.scaler is not None:
                self.scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            if s.max_grad_norm > 0:
                self.accelerator.clip_grad_norm_(model.parameters(), s.max_grad_norm)
            if self.scaler is not None:
                self.scaler.step(optimizer)
                self.scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if step % 10 == 1:
                tally.peak_rss = max(tally.peak_rss, _rss_bytes())
            if progress is not None:
                progress(step, total, loss)
            if step in rungs:
                model.eval()
                rung_start = time.perf_counter()
                try:
                    rungs[step](step, model, self._result(recipe, tally, device))
                except EarlyStop as stop:
                    tally.rung_seconds += time.perf_counter() - rung_start
                    raise TrialStopped(step, stop.reason, self._result(recipe, tally, device)) from None
                tally.rung_seconds += time.perf_counter() - rung_start
                model.train()
        return self._result(recipe, tally, device)

    def _backward(self, loss: torch.Tensor) -> None:
        self.accelerator.backward(self.scaler.scale(loss) if self.scaler is not None else loss)

    def _result(self, recipe: Recipe, t: _Tally, device: torch.device) -> TrainResult:
        """Measurements of the steps run so far (all of them, or up to a stop)."""
        seconds = time.perf_counter() - t.start
        done = len(t.losses)
        peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else max(t.peak_rss, _rss_bytes())
        per_token = flops_per_token(self.base.non_embedding_params, t.n_trainable)
        tokens_per_sequence = t.tokens / (done * self.settings.batch_size) if done else 0.0
        full_tokens = recipe.budget.steps * recipe.budget.batch_size * tokens_per_sequence
        finite = [x for x in t.losses[-5:] if math.isfinite(x)]
        return TrainResult(
            proxy_steps=done,
            tokens_seen=t.tokens,
            target_tokens_seen=t.target_tokens,
            trainable_params=t.n_trainable,
            frozen_params=self.base.non_embedding_params,
            train_seconds=seconds,
            peak_memory_bytes=peak,
            proxy_flops=per_token * t.tokens,
            full_update_flops=per_token * full_tokens,
            full_update_tokens=full_tokens,
            tokens_per_second=t.tokens / seconds if seconds > 0 else 0.0,
            first_loss=t.losses[0] if t.losses else math.nan,
            final_loss=sum(finite) / len(finite) if finite else math.nan,
            losses=list(t.losses),
            setup_seconds=t.setup_seconds,
            data_seconds=t.data_seconds,
            rung_seconds=t.rung_seconds,
        )


@dataclass
class _Tally:
    n_trainable: int
    setup_seconds: float = 0.0
    data_seconds: float = 0.0
    rung_seconds: float = 0.0
    tokens: int = 0
    target_tokens: int = 0
    start: float = 0.0
    peak_rss: int = field(default_factory=_rss_bytes)
    losses: list[float] = field(default_factory=list)
    reference_loss: float | None = None  # a resumed run's first loss: that of the run it continues


def _to_cpu(state: Any) -> Any:
    """An optimiser state dict with its tensors on the CPU (a saved state outlives the device)."""
    if isinstance(state, torch.Tensor):
        return state.to("cpu")
    if isinstance(state, dict):
        return {k: _to_cpu(v) for k, v in state.items()}
    if isinstance(state, list):
        return [_to_cpu(v) for v in state]
    return state
