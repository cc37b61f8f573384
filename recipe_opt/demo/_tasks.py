"""The demo world's capabilities: small closed-world tasks with exact answers.

A ~300k-parameter model masters these in under a minute on 2 CPU cores, which matters: a base
model that does not know its old tasks cannot show forgetting (see the demo-world notes).

Tokens are separated by spaces (the tokenizer splits on whitespace and isolates digits), so a
letter or digit is always one token and reversal or copying is a token-level operation.

Held-out split: tasks that are functions of their input (reversal, copying, the new text format
of addition) are evaluated on inputs never seen in training; tasks that are tables of facts
(single-digit sums and products, the key->value lookup) are evaluated on every fact, since a
fact left out of training cannot be known.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from recipe_opt.data import Example

__all__ = ["CYCLE_TASKS", "NEW_TASKS", "OLD_TASKS", "TaskSplit", "build_cycle_tasks", "build_tasks"]

_LETTERS = "abcdef"
OLD_TASKS = ("add", "rev", "copy", "lookup")
NEW_TASKS = ("mul", "add_text")
# The new data of each update cycle. Each cycle brings a new task and a new format of an
# earlier one, so an update competes with what earlier versions learned; cycles 2 and 3 reuse
# only characters the tokenizer already knows (it is trained on v0's and cycle 1's text only,
# so v0 is the same model whether or not later cycles exist).
CYCLE_TASKS: dict[int, tuple[str, ...]] = {1: NEW_TASKS, 2: ("max", "mul_text"), 3: ("diff", "rev4")}


@dataclass(frozen=True)
class TaskSplit:
    name: str
    train: tuple[Example, ...]
    eval: tuple[Example, ...]
    kind: str  # "facts" (eval = every fact) or "function" (eval = held-out inputs)


def _spaced(chars: str | tuple[str, ...]) -> str:
    return " ".join(chars)


def _function_split(name: str, items: list[Example], rng: random.Random, eval_share: float) -> TaskSplit:
    items = list(items)
    rng.shuffle(items)
    n_eval = round(len(items) * eval_share)
    return TaskSplit(name, tuple(items[n_eval:]), tuple(items[:n_eval]), "function")


def build_tasks(seed: int) -> dict[str, TaskSplit]:
    """Every task of the demo world, split deterministically from `seed`."""
    rng = random.Random(seed)
    tasks: dict[str, TaskSplit] = {}

    add = [Example(f"{a} + {b} =", f" {a + b}") for a in range(10) for b in range(10)]
    add = [Example(e.prompt, " " + _spaced(e.completion.strip())) for e in add]
    tasks["add"] = TaskSplit("add", tuple(add), tuple(add), "facts")

    rev = [Example(f"rev {_spaced(w)} =", " " + _spaced(w[::-1])) for w in itertools.product(_LETTERS, repeat=3)]
    tasks["rev"] = _function_split("rev", rev, rng, eval_share=0.3)

    copy = [Example(f"copy {_spaced(w)} =", " " + _spaced(w)) for w in itertools.product(_LETTERS, repeat=4)]
    copy_split = _function_split("copy", copy, rng, eval_share=0.2)
    # 1296 strings: keep the held-out set at 300, the size below which exact-match noise
    # between seeds exceeds about +-0.05 (demo-world notes).
    tasks["copy"] = TaskSplit("copy", copy_split.train, copy_split.eval[:300], "function")

    alphabet = "ghijklmnopqrstuvwxyz"
    values = [a + b for a in alphabet for b in alphabet]
    rng.shuffle(values)
    lookup = [Example(f"get k {_spaced(str(k))} =", " " + _spaced(values[k])) for k in range(40)]
    tasks["lookup"] = TaskSplit("lookup", tuple(lookup), tuple(lookup), "facts")

    mul = [Example(f"{a} * {b} =", " " + _spaced(str(a * b))) for a in range(10) for b in range(10)]
    tasks["mul"] = TaskSplit("mul", tuple(mul), tuple(mul), "facts")

    add_text = [Example(f"sum of {a} and {b} is", " " + _spaced(str(a + b))) for a in range(10) for b in range(10)]
    tasks["add_text"] = _function_split("add_text", add_text, rng, eval_share=0.5)
    return tasks


def build_cycle_tasks(seed: int) -> dict[str, TaskSplit]:
    """The tasks of update cycles 2 and 3, from their own random stream (cycle 1's are in `build_tasks`)."""
    rng = random.Random(seed + 1)
    tasks: dict[str, TaskSplit] = {}
    pairs = [(a, b) for a in range(10) for b in range(10)]
    mx = [Example(f"max of {a} and {b} is", f" {max(a, b)}") for a, b in pairs]
    tasks["max"] = _function_split("max", mx, rng, eval_share=0.5)
    mul_text = [Example(f"product of {a} and {b} is", " " + _spaced(str(a * b))) for a, b in pairs]
    tasks["mul_text"] = _function_split("mul_text", mul_text, rng, eval_share=0.5)
    diff = [Example(f"diff of {a} and {b} is", f" {a - b}") for a, b in pairs if a >= b]
    tasks["diff"] = _function_split("diff", diff, rng, eval_share=0.4)
    rev4 = [Example(f"rev {_spaced(w)} =", " " + _spaced(w[::-1])) for w in itertools.product(_LETTERS, repeat=4)]
    split = _function_split("rev4", rev4, rng, eval_share=0.2)
    tasks["rev4"] = TaskSplit("rev4", split.train, split.eval[:300], "function")
    return tasks
