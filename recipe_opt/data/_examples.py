"""Prompt/completion examples: reading JSONL and tokenising with the prompt masked from the loss."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from recipe_opt.exceptions import DataError

__all__ = [
    "EncodedExample",
    "Example",
    "TokenizerLike",
    "encode_example",
    "encode_examples",
    "read_json_lines",
    "read_jsonl",
    "write_jsonl",
]


@dataclass(frozen=True)
class Example:
    prompt: str
    completion: str


@dataclass(frozen=True)
class EncodedExample:
    """Token ids of prompt + completion (+ EOS); the first `prompt_len` ids carry no loss.

    `loss_mask` (1 = the token is a target), where set, says exactly which tokens carry loss:
    a chat example's assistant turns, which need not be one tail.
    """

    input_ids: tuple[int, ...]
    prompt_len: int
    loss_mask: tuple[int, ...] | None = None

    @property
    def completion_len(self) -> int:
        return len(self.input_ids) - self.prompt_len


class TokenizerLike(Protocol):
    """The part of a Hugging Face tokenizer the data layer uses."""

    eos_token_id: int | None

    def __call__(self, text: str, add_special_tokens: bool = ...) -> Any: ...


def read_json_lines(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; a malformed line is a `DataError` naming
    the file and the line, an empty file too."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: data file not found")
    rows: list[tuple[int, dict[str, Any]]] = []
    with p.open(encoding="utf-8-sig") as fh:  # with or without a BOM, as every data file
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}:{lineno}: not valid JSON ({exc.msg})") from None
            except UnicodeDecodeError:
                raise DataError(f"{p}:{lineno}: not UTF-8 text") from None
            if not isinstance(row, dict):
                raise DataError(f"{p}:{lineno}: each line must be a JSON object")
            rows.append((lineno, row))
    if not rows:
        raise DataError(f"{p}: file holds no examples")
    return rows


def read_jsonl(path: str | Path) -> list[Example]:
    """Read prompt/completion JSONL; every problem names the file and the line."""
    examples: list[Example] = []
    for lineno, row in read_json_lines(path):
        missing = [k for k in ("prompt", "completion") if k not in row]
        if missing:
            raise DataError(f"{path}:{lineno}: missing field(s) {missing}")
        prompt, completion = row["prompt"], row["completion"]
        if not isinstance(prompt, str) or not isinstance(completion, str):
            raise DataError(f"{path}:{lineno}: `prompt` and `completion` must be strings")
        if not completion.strip():
            raise DataError(f"{path}:{lineno}: `completion` is empty: nothing to learn or score")
        examples.append(Example(prompt, completion))
    return examples


def write_jsonl(path: str | Path, examples: Iterable[Example]) -> int:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with p.open("w", encoding="utf-8") as fh:
        for ex in examples:
            fh.write(json.dumps({"prompt": ex.prompt, "completion": ex.completion}) + "\n")
            n += 1
    return n


def _ids(tokenizer: TokenizerLike, text: str) -> list[int]:
    out = tokenizer(text, add_special_tokens=True)
    return list(out["input_ids"])


def encode_example(tokenizer: TokenizerLike, ex: Example, *, add_eos: bool = True) -> EncodedExample:
    """Tokenise the way lm-eval scores a loglikelihood request.

    lm-eval encodes `context + continuation` whole and takes the continuation as the tail after
    `len(encode(context))` tokens; doing the same here keeps training, the native scorer and
    lm-eval on identical token boundaries. The tokenizer's own special tokens (BOS) are kept.
    """
    prompt_ids = _ids(tokenizer, ex.prompt)
    whole = _ids(tokenizer, ex.prompt + ex.completion)
    if whole[: len(prompt_ids)] != prompt_ids or len(whole) <= len(prompt_ids):
        raise DataError(
            f"prompt {ex.prompt!r} does not tokenise as a prefix of prompt+completion; "
            "put the separator (a space) at the start of the completion"
        )
    if add_eos and tokenizer.eos_token_id is not None:
        whole.append(int(tokenizer.eos_token_id))
    return EncodedExample(tuple(whole), len(prompt_ids))


def encode_examples(
    tokenizer: TokenizerLike,
    examples: Sequence[Example],
    *,
    max_seq_len: int,
    source: str,
    add_eos: bool = True,
) -> list[EncodedExample]:
    """Encode all examples; one longer than `max_seq_len` is an error (it would be scored wrongly)."""
    encoded = [encode_example(tokenizer, ex, add_eos=add_eos) for ex in examples]
    too_long = sum(1 for e in encoded if len(e.input_ids) > max_seq_len)
    if too_long:
        longest = max(len(e.input_ids) for e in encoded)
        raise DataError(
            f"{source}: {too_long} of {len(encoded)} examples exceed `max_seq_len={max_seq_len}` "
            f"tokens (longest: {longest}); raise proxy.max_seq_len"
        )
    return encoded
