"""The sections of a study config: evaluation, proxy, budget, sampler, gates, selection, early
stopping, warm start, apply and workers. Names of samplers and policies come from
`recipe_opt.registry`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from recipe_opt.registry import OBJECTIVES, POLICIES, SAMPLERS

__all__ = [
    "NAME",
    "ApplyConfig",
    "EarlyStoppingConfig",
    "EvaluationConfig",
    "GatesConfig",
    "MultiFidelityConfig",
    "NoiseConfig",
    "PrescreenConfig",
    "ProxyConfig",
    "SamplerConfig",
    "SearchBudget",
    "SelectionConfig",
    "SuiteConfig",
    "TrialBudget",
    "WarmStartConfig",
    "WorkersConfig",
    "check_weights",
]

# Study, family, version names: safe as file names and in URLs.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SuiteConfig(_Model):
    """A group of lm-eval tasks scored as the mean of their `acc`."""

    name: str
    tasks: list[str] = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0, description="Weight in the aggregate forgetting.")


class EvaluationConfig(_Model):
    backend: Literal["lm-eval", "native"] = Field(
        default="lm-eval",
        description="lm-eval's simple_evaluate, or the native batched scorer (same metric, faster).",
    )
    tasks_dir: str = Field(description="Directory of lm-eval task YAMLs.")
    new_task: SuiteConfig
    retention: list[SuiteConfig] = Field(min_length=1)
    batch_size: int = Field(default=64, ge=1)
    limit: int | None = Field(default=None, ge=1, description="Items per task (proxy speed).")
    lm_eval: dict[str, Any] = Field(
        default_factory=dict,
        description="Options passed through to lm-eval's simple_evaluate (num_fewshot, apply_chat_template, "
        "fewshot_as_multiturn, system_instruction, ...); lm-eval backend only.",
    )

    @model_validator(mode="after")
    def _unique(self) -> EvaluationConfig:
        names = [self.new_task.name] + [s.name for s in self.retention]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"suite names must be unique, but got duplicates {dupes}")
        return self


class ProxyConfig(_Model):
    fraction: float = Field(gt=0, le=1, description="Share of the recipe's full-update steps the proxy runs.")
    batch_size: int = Field(ge=1)
    max_seq_len: int = Field(ge=4)
    min_steps: int = Field(default=10, ge=1)
    max_grad_norm: float = Field(default=1.0, ge=0)
    explode_factor: float = Field(
        default=10.0, gt=1, description="Stop a trial whose loss exceeds this many times its first loss."
    )
    device: Literal["cpu", "cuda", "auto"] = "auto"
    mixed_precision: Literal["no", "bf16", "fp16"] = Field(
        default="no", description="Autocast the forward pass (accelerate); bf16 on GPUs that support it."
    )
    gradient_accumulation_steps: int = Field(
        default=1, ge=1, description="Micro-batches per optimiser step (must divide batch_size); same recipe."
    )
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute activations in the backward pass: less memory, ~30% more time."
    )

    @model_validator(mode="after")
    def _accumulation_divides(self) -> ProxyConfig:
        if self.batch_size % self.gradient_accumulation_steps:
            raise ValueError(
                "`gradient_accumulation_steps` must divide `batch_size`, but got "
                f"(batch_size={self.batch_size}, gradient_accumulation_steps={self.gradient_accumulation_steps})"
            )
        return self


_BUDGET = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(x|tflops?|gpu[- ]hours?|hours?|h)\s*$", re.IGNORECASE)
_UNITS = {"x": "updates", "tflop": "tflop", "tflops": "tflop"}


@dataclass(frozen=True)
class SearchBudget:
    """What a search may spend, the way a user thinks of it: a share of one full update (`0.25x`),
    TFLOP of training (`40 TFLOP`), or hours of training on this device (`0.5 gpu-hours`)."""

    amount: float
    unit: Literal["updates", "tflop", "hours"]

    @classmethod
    def parse(cls, text: str | float) -> SearchBudget:
        m = _BUDGET.match(str(text))
        if m is None:
            raise ValueError(
                f"a budget is a share of one full update (`0.25x`), TFLOP (`40 TFLOP`) or hours of training "
                f"(`0.5 gpu-hours`), but got {text!r}"
            )
        amount, unit = float(m.group(1)), m.group(2).lower()
        if amount <= 0:
            raise ValueError(f"`budget > 0` must hold, but got {text!r}")
        return cls(amount, _UNITS.get(unit, "hours"))  # type: ignore[arg-type]

    def __str__(self) -> str:
        return {
            "updates": f"{self.amount:g}x",
            "tflop": f"{self.amount:g} TFLOP",
            "hours": f"{self.amount:g} gpu-hours",
        }[self.unit]


class TrialBudget(_Model):
    n_trials: int | None = Field(default=None, ge=1)
    timeout: float | None = Field(default=None, gt=0, description="Seconds.")
    max_cost: float | None = Field(
        default=None, gt=0, description="Stop once the study's summed proxy compute passes this (TFLOP)."
    )
    budget: str | None = Field(
        default=None,
        description="What the whole search may spend besides the update it chooses: a share of one full update "
        "(`0.25x`), TFLOP (`40 TFLOP`) or hours of training (`0.5 gpu-hours`). Plans a multi-fidelity search "
        "(`multi_fidelity`): screen, promote, train the finalist in full; `apply` reuses that run.",
    )

    @field_validator("budget", mode="before")
    @classmethod
    def _budget(cls, v: Any) -> str | None:
        if v is None:
            return None
        SearchBudget.parse(v)
        return str(v)

    @property
    def search_budget(self) -> SearchBudget | None:
        return None if self.budget is None else SearchBudget.parse(self.budget)

    @model_validator(mode="after")
    def _some(self) -> TrialBudget:
        if self.n_trials is None and self.timeout is None and self.max_cost is None and self.budget is None:
            raise ValueError("set at least one of `n_trials`, `timeout`, `max_cost`, `budget`")
        return self


class PrescreenConfig(_Model):
    """A mixture-and-replay prescreen by adapter interpolation before the first trial (opt-in).

    One short LoRA probe per new source and one on the replay pool; `candidates` mixture x replay
    points are scored by combining the probes' weight deltas (evaluation only, no training), and
    the best `top_k` within the gates are queued as the search's first trials. Opt-in until
    bench/prescreen_vs_trained.py shows it ranking mixtures as training does.
    """

    enabled: bool = Field(default=False, description="Run the prescreen when a study starts.")
    probe_fraction: float = Field(
        default=0.25, gt=0, le=1, description="Share of the anchor recipe's steps each probe trains."
    )
    candidates: int = Field(default=48, ge=1, le=4096, description="Mixture x replay points simulated.")
    top_k: int = Field(default=3, ge=1, description="Best simulated candidates queued as trials.")


class MultiFidelityConfig(_Model):
    """How a search with `trials.budget` spends it (successive halving with continuation).

    Every recipe is screened cheaply; the best by Pareto rank (an epsilon-net over the first
    fronts, as MOASHA does, not one objective) are continued to each rung, a prefix of the full
    update's own schedule, from their saved adapter and optimiser state; the best of the last rung
    are trained to the end, which is a full update: selection picks among those full runs, and
    `apply` reuses the pick's run instead of training again. A continued run's compute counts once.
    """

    screen: Literal["compressed", "prefix"] = Field(
        default="compressed",
        description="`compressed`: the whole schedule in `screen_fraction` of the steps (not continuable); "
        "`prefix`: the first `screen_fraction` of the full schedule (continued on promotion).",
    )
    screen_fraction: float = Field(default=0.05, gt=0, lt=1, description="Share of the full steps a screen runs.")
    screen_batch_size: int | None = Field(
        default=None, ge=1, description="A compressed screen's batch (default: a quarter of the proxy's `batch_size`)."
    )
    screen_anneal: float = Field(
        default=0.0, ge=0, lt=1, description="A prefix screen is scored after this share of LR annealing steps."
    )
    # No rung by default: on the demo, prefixes ranked recipes worse than compressed screens at
    # equal compute (bench/fidelity_vs_oracle.py), so the budget goes to screens and the final run.
    rungs: list[float] = Field(
        default_factory=list, description="Prefix rungs between the screen and the full run (shares)."
    )

    def screen_batch(self, proxy_batch: int) -> int:
        """A compressed screen's batch: 5% of the steps at a quarter of the batch is 1.3% of an update."""
        return self.screen_batch_size or max(1, proxy_batch // 4)

    eta: float = Field(default=3.0, gt=1, description="One in `eta` of a rung's trials is promoted to the next.")
    finalists: int = Field(default=1, ge=1, le=8, description="Recipes trained in full at the end.")
    min_screens: int = Field(default=4, ge=2, description="Refuse a budget that screens fewer recipes than this.")

    @field_validator("rungs")
    @classmethod
    def _rungs(cls, v: list[float]) -> list[float]:
        if any(not 0 < r < 1 for r in v) or sorted(set(v)) != v:
            raise ValueError(
                f"must be increasing shares strictly between 0 and 1 (the full run is implied), but got {v}"
            )
        return v

    @model_validator(mode="after")
    def _order(self) -> MultiFidelityConfig:
        if self.rungs and self.rungs[0] <= self.screen_fraction:
            raise ValueError(
                f"`screen_fraction < rungs[0]` must hold, but got (screen_fraction={self.screen_fraction}, "
                f"rungs={self.rungs})"
            )
        return self


class SamplerConfig(_Model):
    name: str = Field(default=SAMPLERS.names()[0], description=f"The Optuna sampler: {SAMPLERS.text()}.")
    n_startup_trials: int = Field(default=8, ge=0, description="Random trials before the model (tpe, gp).")
    initial_design: Literal["auto", "mixed", "informed", "none"] = Field(
        default="auto",
        description=(
            "How a new study starts. `mixed`: designed recipes on the axes that matter (steps, replay, LR) "
            "with every choice of each unpinned categorical spread over them; `informed`: the same axes "
            "with the categoricals pinned at common defaults (see SearchSpace.informed_design); `none`: "
            "the sampler's own start-up trials; `auto`: `mixed`, or `informed` for a budgeted search "
            "(`trials.budget`), each the arm that won bench/search_vs_oracle.py there."
        ),
    )

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        SAMPLERS[v].check_installed()  # an optional extra's sampler: refused here where it is missing
        return SAMPLERS.check(v)


class GatesConfig(_Model):
    """Release gates: the bar an update must clear, the same in the search and at release.

    `recipe_opt.study.check_gates` is their one definition: it gives the Optuna constraints of
    every trial (measured - bound <= 0 is feasible: infeasible trials stay in the study but are
    never selected, and constraint-aware samplers steer away from them), the front the command
    line and the reports show, and the release decision of `apply` on the full run.
    """

    max_forgetting: float | None = Field(
        default=0.05,
        description="Aggregate (weighted) forgetting; also the bound of every retention suite without its own.",
    )
    max_forgetting_per_suite: dict[str, float] = Field(
        default_factory=dict, description="Retention suite name -> largest allowed drop (overrides max_forgetting)."
    )
    max_new_task_drop: float | None = Field(
        default=0.05,
        ge=0,
        description="Largest allowed drop of any single new task below its base score (null: no bound).",
    )
    min_gain: float | None = Field(
        default=None, description="Smallest acceptable new-task gain; unset: the gain must be positive."
    )
    max_cost: float | None = Field(default=None, gt=0, description="Full-update TFLOP per recipe.")


class NoiseConfig(_Model):
    """How much one recipe's values move between training seeds, measured outside this study (for
    example `bench/oracle.py`'s noise floor). The reports show it beside each value and say when a
    ranking is within it; it changes nothing that is trained or selected."""

    gain: float | None = Field(default=None, ge=0, description="Seed-to-seed sd of the new-task gain.")
    forgetting: float | None = Field(default=None, ge=0, description="Seed-to-seed sd of the aggregate forgetting.")
    source: str = Field(default="declared in the study config", description="Where the figures come from.")


class SelectionConfig(_Model):
    """How the recipe to apply is picked from the feasible Pareto front (`recipe_opt.registry.POLICIES`
    holds each policy's rule)."""

    policy: str = Field(default=POLICIES.names()[0], description=f"One of {POLICIES.text()}.")
    weights: dict[str, float] = Field(
        default_factory=lambda: {"gain": 1.0, "forgetting": 1.0, "cost": 0.2},
        description="Objective weights of the `utility` policy.",
    )
    reruns: int = Field(default=0, ge=0, le=20, description="Extra seeds per top candidate before selecting.")
    top_k: int = Field(default=3, ge=1, description="Candidates re-run when `reruns > 0`.")

    @field_validator("policy")
    @classmethod
    def _known(cls, v: str) -> str:
        return POLICIES.check(v)

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, float]) -> dict[str, float]:
        return check_weights(v)


def check_weights(v: dict[str, float]) -> dict[str, float]:
    """Utility weights: objectives known, >= 0, at least one > 0 (config and `--weights`)."""
    for name in v:
        OBJECTIVES.check(name)
    if any(w < 0 for w in v.values()) or not any(w > 0 for w in v.values()):
        raise ValueError(f"weights must be >= 0 with at least one > 0, but got {v}")
    return v


class EarlyStoppingConfig(_Model):
    """Rung-based early stopping across several objectives (successive halving in the spirit of
    MOASHA): at each rung the trial is scored and stopped if at least `min_dominating` trials
    that reached the same rung dominate it (better or equal on every objective, better on one)."""

    enabled: bool = False
    rungs: list[float] = Field(default_factory=lambda: [0.25, 0.5], description="Fractions of the proxy steps.")
    min_dominating: int = Field(default=2, ge=1)
    min_trials_at_rung: int = Field(default=4, ge=1, description="No stopping before this many peers reached the rung.")

    @field_validator("rungs")
    @classmethod
    def _rungs(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < r < 1 for r in v) or sorted(set(v)) != v:
            raise ValueError(f"must be increasing fractions strictly between 0 and 1, but got {v}")
        return v


class WarmStartConfig(_Model):
    """Seed a new study from earlier cycles in the same storage (see `recipe_opt.study._warm`)."""

    studies: list[str] = Field(
        default_factory=list,
        description="`[auto]` (the cycle that produced the base version), study names, or empty (cold start).",
    )
    max_recipes: int = Field(default=8, ge=1, le=64, description="Recipes enqueued: the selected one, then Pareto.")
    # The defaults (priors on, a 2-recipe control) won bench/search_vs_oracle.py's cycle 2 over
    # the plain warm start (priors off, no control): pick 0.82 against 0.69 of the best in-gate
    # recipe, as good or better in each of 5 seeds, at the same price; README "Warm start".
    priors: bool = Field(default=True, description="Also add their complete trials as prior observations.")
    control: int = Field(
        default=2,
        ge=0,
        le=8,
        description="Initial-design recipes run beside the warm start as a control; if the warm recipes' best "
        "in-gate gain is below theirs, the rest of the design is queued and priors are hidden (0: no check).",
    )

    @field_validator("studies")
    @classmethod
    def _studies(cls, v: list[str]) -> list[str]:
        if "auto" in v and len(v) > 1:
            raise ValueError(f"`auto` stands alone, but got {v}")
        return v


class ApplyConfig(_Model):
    """`recipe-opt apply`: the selected recipe trained at full fidelity, registered as a new version.

    Full fidelity means every step of the recipe's budget (the proxy runs `proxy.fraction` of
    them) at the recipe's batch size, and every eval item (no `evaluation.limit`).
    """

    version: str | None = Field(
        default=None, description="Name of the new version; default: the base's trailing number + 1 (v0 -> v1)."
    )
    weights_dir: str | None = Field(
        default=None, description="Where `<version>/` is written; default: the directory holding `base_model`."
    )
    tier: Literal["foundation", "industrial", "application"] | None = Field(
        default=None, description="Tier of the new version; default: the parent's."
    )

    @field_validator("version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        if v is not None and not NAME.match(v):
            raise ValueError("must be 1-100 characters of letters, digits, '.', '_' or '-'")
        return v


class WorkersConfig(_Model):
    """How workers sharing one study (`recipe-opt worker`, `search --workers N`) keep it honest.

    Heartbeats are on for server databases (PostgreSQL, MySQL): each running trial's worker stamps
    it every `heartbeat_interval` s; a trial silent for `grace_period` s (its worker was killed, its
    machine lost) is failed by the next worker that looks and re-queued with the same recipe, at
    most `max_retry` times. The grace period must outlast a stalled storage round-trip, not a trial:
    trials of any length keep stamping while they run.
    """

    heartbeat_interval: int = Field(default=10, ge=1, description="Seconds between a running trial's heartbeats.")
    grace_period: int = Field(
        default=60, ge=2, description="Seconds without a heartbeat after which a trial is failed and retried."
    )
    max_retry: int = Field(default=2, ge=0, description="Times one recipe is retried after its worker was lost.")
    max_consecutive_failures: int = Field(
        default=5,
        ge=1,
        description="A worker stops after this many of its own trials fail in a row (a broken setup, not bad luck).",
    )

    @model_validator(mode="after")
    def _grace(self) -> WorkersConfig:
        if self.grace_period <= self.heartbeat_interval:
            raise ValueError(
                "`grace_period > heartbeat_interval` must hold, but got "
                f"(grace_period={self.grace_period}, heartbeat_interval={self.heartbeat_interval})"
            )
        return self
