"""Text for the HTML reports: our own Markdown-style strings as HTML, and a recipe in words.

Reasons, rules and checklist rows are written once, in Markdown style (`summary.md` renders them
as Markdown); in the HTML they are escaped first and then only `code` spans and *emphasis* turn
into tags, so a user string can never become markup and no backtick or asterisk shows raw.
"""

from __future__ import annotations

import html
import re

from recipe_opt.recipe import Recipe

__all__ = ["inline", "recipe_words"]

_CODE = re.compile(r"`([^`]+)`")
# *word* or *a few words*: an asterisk after a non-space opens nothing (`2 * 3 * 4` stays as is).
_EMPHASIS = re.compile(r"(?<![\w*])\*(?=\S)([^*<>]*?\S)\*(?![\w*])")


def inline(text: str) -> str:
    """`text` escaped as HTML, its `code` spans as <code> and its *emphasis* as <em>."""
    out = []
    last = 0
    for m in _CODE.finditer(text):  # code spans first: nothing inside them is emphasis
        out.append(_EMPHASIS.sub(r"<em>\1</em>", html.escape(text[last : m.start()])))
        out.append(f"<code>{html.escape(m.group(1))}</code>")
        last = m.end()
    out.append(_EMPHASIS.sub(r"<em>\1</em>", html.escape(text[last:])))
    return "".join(out)


def recipe_words(recipe: Recipe) -> str:
    """The recipe as a reviewer reads it aloud (plain text, to be escaped by the caller)."""
    mix = ", ".join(f"{name} {w:.0%}" for name, w in recipe.mixture.weights)
    replay = (
        "no replay of old data"
        if recipe.replay.ratio == 0
        else f"{recipe.replay.ratio:.0%} of every batch replayed from old data"
    )
    s, a, b = recipe.schedule, recipe.adapter, recipe.budget
    decay = f", weight decay {s.weight_decay:g}" if s.weight_decay else ""
    dropout = f", dropout {a.dropout:g}" if a.dropout else ""
    return (
        f"new data mixed {mix}; {replay}; peak LR {s.peak_lr:.2e}, {s.shape} schedule, "
        f"{s.warmup_fraction:.0%} warmup{decay}; LoRA rank {a.rank}, alpha {a.alpha:g}{dropout} "
        f"on {', '.join(a.target_modules)}; full update {b.steps} steps x {b.batch_size} sequences"
    )
