"""A mixture-and-replay prescreen by adapter interpolation (after OP-Mix, arXiv 2605.15220).

Train one short LoRA probe per new source (all of its batch from that source, no replay) and one
on the replay pool (90% old data: a recipe's replay share must stay below 1, and OP-Mix's own
probes are 10/90 and 90/10). A candidate mixture x replay is then *simulated*, with no training:
its batch shares are an affine combination of the probes' shares, and the same combination of
the probes' weight deltas (each LoRA's B @ A x alpha / r) is added to the base weights and
evaluated. Merging-as-proxy work reports Spearman > 0.9 against trained mixtures at 8B (MergeMix,
arXiv 2601.17858); `bench/prescreen_vs_trained.py` measures it on the demo world.

Only the mixture and the replay share vary; every other parameter is the anchor's (the informed
design's centre). The best candidates within the gates are what a search starts from
(`prescreen.top_k` enqueued trials), so the sampler's first trials land in the best region.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import optuna

from recipe_opt.config import StudyConfig
from recipe_opt.evaluate import Evaluation, SuiteEvaluator
from recipe_opt.recipe import Mixture, Recipe, Replay
from recipe_opt.space import SearchSpace
from recipe_opt.study._gates import Scored, check_gates
from recipe_opt.study._records import new_task_scores
from recipe_opt.study._setup import Setup
from recipe_opt.train import ProxyTrainer

__all__ = [
    "REPLAY_PROBE",
    "AdapterMixer",
    "Candidate",
    "PrescreenResult",
    "Probe",
    "affine_weights",
    "prescreen_anchor",
    "prescreen_candidates",
    "run_prescreen",
    "train_probes",
]

REPLAY_PROBE = "replay"  # the probe trained on the old data, and its share's name
REPLAY_PROBE_RATIO = 0.9


@dataclass(frozen=True)
class Probe:
    """One short adapter: what its batches held, and the weight change it makes."""

    name: str  # a new source, or REPLAY_PROBE
    recipe: Recipe
    shares: dict[str, float]  # its batch shares by new source and REPLAY_PROBE (sum 1)
    delta: dict[str, Any]  # module path in the base model -> delta W, in that weight's layout
    tflop: float  # what training it cost


@dataclass(frozen=True)
class Candidate:
    """One simulated mixture x replay and its scores."""

    recipe: Recipe  # the anchor with this mixture and replay share
    order: int  # its place among the drawn candidates (Sobol order)
    weights: tuple[float, ...]  # of each probe's delta, in probe order (sum 1; may be negative)
    gain: float
    forgetting: float
    passes: bool  # within the gates, as simulated


@dataclass(frozen=True)
class PrescreenResult:
    anchor: Recipe
    probes: list[Probe]
    candidates: list[Candidate]  # best first: within the gates by gain, then the rest by gain
    seconds: float

    @property
    def tflop(self) -> float:
        return sum(p.tflop for p in self.probes)

    def to_dict(self, top: int) -> dict[str, Any]:
        """What the study records (the prescreen's attribute): probes, cost and the top candidates."""
        return {
            "anchor": self.anchor.summary(),
            "probes": [{"name": p.name, "recipe": p.recipe.summary(), "tflop": p.tflop} for p in self.probes],
            "tflop": self.tflop,
            "n_candidates": len(self.candidates),
            "seconds": round(self.seconds, 1),
            "top": [
                {"recipe": c.recipe.summary(), "gain": c.gain, "forgetting": c.forgetting, "passes": c.passes}
                for c in self.candidates[:top]
            ],
        }


def shares_of(recipe: Recipe, *, replay: bool = True) -> dict[str, float]:
    """A recipe's batch shares by new source, and its replay share under REPLAY_PROBE (`replay`:
    the study has a replay pool, hence a replay probe)."""
    r = recipe.replay.ratio
    out = {name: (1.0 - r) * w for name, w in recipe.mixture.weights}
    if replay:
        out[REPLAY_PROBE] = r
    return out


def affine_weights(probes: Sequence[Probe], target: dict[str, float]) -> tuple[float, ...]:
    """The probe weights whose combination of shares is `target`: one per probe, summing to 1.

    The K source probes and the replay probe have affinely independent shares, so the square
    system has one solution; weights go negative where `target` lies outside the probes' hull
    (a source below the replay probe's 10% / K of it), which the deltas extrapolate linearly.
    """
    keys = [p.name for p in probes]
    if sorted(keys) != sorted(target):
        raise ValueError(f"target shares name {sorted(target)}, but the probes are {sorted(keys)}")
    a = np.array([[p.shares[k] for p in probes] for k in keys])
    lam = np.linalg.solve(a, np.array([target[k] for k in keys]))
    return tuple(float(x) for x in lam)


class AdapterMixer:
    """Adds a weighted sum of the probes' deltas to the base model's weights, and restores them."""

    def __init__(self, model: Any, probes: Sequence[Probe]) -> None:
        self.model = model
        self.probes = list(probes)
        names = sorted({n for p in self.probes for n in p.delta})
        self._weights = {n: model.get_submodule(n).weight for n in names}
        self._original = {n: w.detach().clone() for n, w in self._weights.items()}

    @contextlib.contextmanager
    def mixed(self, weights: Sequence[float]) -> Iterator[Any]:
        """The base model with `sum_j weights[j] * delta_j` added, inside the `with` block."""
        import torch

        if len(weights) != len(self.probes):
            raise ValueError(f"one weight per probe ({len(self.probes)}), but got {len(weights)}")
        try:
            with torch.no_grad():
                for n, w in self._weights.items():
                    total = self._original[n].clone()
                    for lam, p in zip(weights, self.probes, strict=True):
                        if n in p.delta:
                            total += lam * p.delta[n].to(total.dtype)
                    w.copy_(total)
            yield self.model
        finally:
            with torch.no_grad():
                for n, w in self._weights.items():
                    w.copy_(self._original[n])  # bit-for-bit the base again


def _deltas(model: Any) -> dict[str, Any]:
    """Each LoRA layer's delta W (peft's `get_delta_weight`: B @ A x alpha / r, in the base weight's
    layout), keyed by the module's path in the base model (peft's `base_model.model.` prefix cut)."""
    out = {}
    for name, module in model.named_modules():
        if hasattr(module, "get_delta_weight") and "default" in getattr(module, "lora_A", {}):
            path = name.removeprefix("base_model.model.")
            out[path] = module.get_delta_weight("default").detach().to("cpu", copy=True)
    return out


def probe_recipes(anchor: Recipe, *, replay: bool = True) -> list[tuple[str, Recipe]]:
    """The anchor with each new source alone (no replay), and (`replay`) with an equal mixture at
    90% replay."""
    sources = [n for n, _ in anchor.mixture.weights]
    out = []
    for s in sources:
        mix = Mixture(tuple((n, 1.0 if n == s else 0.0) for n in sources))
        out.append((s, replace(anchor, mixture=mix, replay=Replay(0.0))))
    if not replay:
        return out
    equal = Mixture(tuple((n, 1.0 / len(sources)) for n in sources))
    out.append((REPLAY_PROBE, replace(anchor, mixture=equal, replay=Replay(REPLAY_PROBE_RATIO))))
    return out


def train_probes(setup: Setup, anchor: Recipe, fraction: float, *, replay: bool = True) -> list[Probe]:
    """One probe per new source and (`replay`) one on replay: `fraction` of the anchor's steps each
    (a compressed schedule at the proxy's batch, as a proxy trial trains)."""
    settings = replace(setup.trainer.settings, fraction=fraction, min_steps=1)
    trainer = ProxyTrainer(setup.base, setup.trainer.data, settings)
    probes = []
    for name, recipe in probe_recipes(anchor, replay=replay):
        with trainer.train(recipe) as (model, result):
            delta = _deltas(model)
        probes.append(Probe(name, recipe, shares_of(recipe, replay=replay), delta, result.proxy_flops / 1e12))
    return probes


def prescreen_anchor(space: SearchSpace, seed: int) -> Recipe:
    """The recipe every probe and candidate shares besides its mixture and replay: the informed
    design's centre, its free parameters drawn (seeded) where the design leaves them out."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    design = space.informed_design()
    if design:
        study.enqueue_trial(design[0])
    return space.sample(study.ask(), seed=seed)


def prescreen_candidates(space: SearchSpace, anchor: Recipe, n: int, seed: int) -> list[Recipe]:
    """`n` mixture x replay points spread over the space (scrambled Sobol), on the anchor."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.QMCSampler(seed=seed, scramble=True)
    study = optuna.create_study(sampler=sampler)
    out: list[Recipe] = []
    seen: set[str] = set()
    for _ in range(n):
        drawn = space.sample(study.ask(), seed=seed)
        recipe = replace(anchor, mixture=drawn.mixture, replay=drawn.replay)
        if recipe.content_hash not in seen:
            seen.add(recipe.content_hash)
            out.append(recipe)
    return out


def run_prescreen(
    cfg: StudyConfig,
    space: SearchSpace,
    setup: Setup,
    base_eval: Evaluation,
    *,
    candidates: int,
    fraction: float,
    evaluator: SuiteEvaluator | None = None,
) -> PrescreenResult:
    """Train the probes, simulate `candidates` mixture x replay points, rank them (no more training).

    `evaluator` (default: the study's, as its trials are scored) must be what `base_eval` came from."""
    start = time.perf_counter()
    anchor = prescreen_anchor(space, cfg.seed)
    replay = bool(cfg.sources.replay)
    probes = train_probes(setup, anchor, fraction, replay=replay)
    mixer = AdapterMixer(setup.base.model, probes)
    ev = evaluator or setup.evaluator
    scored: list[Candidate] = []
    for order, recipe in enumerate(prescreen_candidates(space, anchor, candidates, cfg.seed)):
        lam = affine_weights(probes, shares_of(recipe, replay=replay))
        with mixer.mixed(lam) as model:
            after = ev.evaluate(model)
        out = ev.outcome(base_eval, after)
        s = Scored(
            {"gain": out.gain, "forgetting": out.forgetting},
            dict(out.forgetting_per_suite),
            new_task_scores(base_eval.tasks, after.tasks, ev.new_suite.tasks),
        )
        passes = all(c.passed for c in check_gates(cfg.gates, s))  # no cost: the anchor fixes it
        scored.append(Candidate(recipe, order, lam, out.gain, out.forgetting, passes))
    scored.sort(key=lambda c: (not c.passes, -c.gain, c.forgetting, c.order))
    return PrescreenResult(anchor, probes, scored, time.perf_counter() - start)
