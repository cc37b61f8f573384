"""LoRA target modules, resolved against the model actually loaded.

A search space names sets of target modules. Besides concrete module names (`q_proj`, `c_attn`),
a set may hold two architecture-independent markers, resolved here to the model's own names so
that recipes (and exported configs) always record concrete modules:

* `all-linear`: every linear layer of the transformer blocks (not the output head), as peft's
  `"all-linear"` means it: Llama/Qwen2/Mistral -> q,k,v,o,gate,up,down_proj; GPT-2 -> c_attn,
  c_proj, c_fc; Phi-3 -> qkv_proj, o_proj, gate_up_proj, down_proj.
* `@attention`: the linear layers inside attention blocks only. Where a name is shared with a
  non-attention layer (GPT-2's `c_proj` sits in both `attn` and `mlp`), the shortest dotted
  suffix that tells them apart is used (`attn.c_proj`; peft matches targets as name suffixes).

A concrete name that matches no linear layer is an error naming the model's linear layers,
found before any trial runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from recipe_opt.exceptions import ConfigError

__all__ = [
    "ALL_LINEAR",
    "ATTENTION",
    "linear_layers",
    "query_value_modules",
    "resolve_target_modules",
    "resolve_target_sets",
]

ALL_LINEAR = "all-linear"
ATTENTION = "@attention"
_LAYER_INDEX = re.compile(r"\.\d+\.")
_ATTENTION_PART = re.compile(r"(^|\.)(self_attn|attn|attention|self_attention)(\.|$)")


def linear_layers(model: Any) -> list[str]:
    """Full names of the model's linear layers (torch Linear, and transformers' Conv1D, GPT-2's
    linear layer), without the output head: what LoRA can adapt."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    out = []
    for name, module in model.named_modules():
        if module is head:
            continue
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
            out.append(name)
    return out


def _generic(name: str) -> str:
    """`model.layers.3.self_attn.q_proj` -> `self_attn.q_proj` (layer index and prefix gone)."""
    parts = _LAYER_INDEX.split(f".{name}.")
    return parts[-1].strip(".") if len(parts) > 1 else name


def _matches(full: str, target: str) -> bool:
    return full == target or full.endswith("." + target)


def _short_suffix(generic: str, others: Sequence[str]) -> str:
    """The shortest dotted suffix of `generic` that ends no name in `others`."""
    parts = generic.split(".")
    for k in range(1, len(parts) + 1):
        suffix = ".".join(parts[-k:])
        if not any(_matches(o, suffix) for o in others):
            return suffix
    return generic


def resolve_target_modules(model: Any, names: Sequence[str], *, where: str, model_ref: str) -> tuple[str, ...]:
    """Concrete target module names for `names` (markers expanded, concrete names checked)."""
    layers = linear_layers(model)
    generic = list(dict.fromkeys(_generic(n) for n in layers))
    out: list[str] = []
    for name in names:
        if name == ALL_LINEAR:
            out += [g.split(".")[-1] for g in generic]
        elif name == ATTENTION:
            attn = [g for g in generic if _ATTENTION_PART.search(g)]
            rest = [g for g in generic if g not in attn]
            if not attn:
                raise ConfigError.single(
                    where, "", f"`{ATTENTION}`: {model_ref} has no linear layers inside an attention block"
                )
            out += [_short_suffix(g, rest) for g in attn]
        else:
            if not any(_matches(full, name) for full in layers):
                leaves = ", ".join(dict.fromkeys(g.split(".")[-1] for g in generic))
                raise ConfigError.single(
                    where,
                    "",
                    f"target module {name!r} is not a linear layer of {model_ref}; its linear layers are: "
                    f"{leaves} (or use `{ALL_LINEAR}` / `{ATTENTION}`)",
                )
            out.append(name)
    return tuple(dict.fromkeys(out))


def resolve_target_sets(
    model: Any, sets: Mapping[str, Sequence[str]], *, source: str, model_ref: str
) -> dict[str, list[str]]:
    """Every named set of a search space, resolved (see the module docstring)."""
    return {
        name: list(
            resolve_target_modules(model, mods, where=f"{source}: target_module_sets.{name}", model_ref=model_ref)
        )
        for name, mods in sets.items()
    }


_QUERY_VALUE = re.compile(r"(^|_)(q|v|query|value|qkv|c_attn|query_key_value|Wqkv)(_proj)?$")


def query_value_modules(model: Any) -> tuple[str, ...]:
    """The attention's query and value projections (`q_proj`, `v_proj`), or its fused qkv
    projection where the model has one (GPT-2's `c_attn`, Phi-3's `qkv_proj`): litgpt's default
    LoRA targets. Falls back to every attention layer (`@attention`) when none is named so."""
    generic = list(dict.fromkeys(_generic(n) for n in linear_layers(model)))
    leaves = [g.split(".")[-1] for g in generic if _ATTENTION_PART.search(g)]
    found = tuple(dict.fromkeys(leaf for leaf in leaves if _QUERY_VALUE.search(leaf)))
    return found or resolve_target_modules(model, [ATTENTION], where="baseline litgpt", model_ref="the model")
