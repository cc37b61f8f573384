"""Training data in the formats users already have: files (JSONL, JSON, Parquet, CSV) or any
`datasets` dataset, holding prompt/completion pairs, chat `messages`, or plain text.

Reading and encoding are separate steps. `read_rows` yields `(where, row)` pairs, `where` being
"file:line" (JSONL, CSV) or "file row N" so every problem can be pointed at. `parse_rows` maps
the user's column names onto ours, decides the format, and sorts rows into examples or
`BadRows` (counted per reason, with the first place each reason occurred). `encode_*` turn
examples into token ids with the loss mask:

* prompt/completion: loss on the completion (+ EOS), tokenised the way lm-eval scores it;
* chat: the conversation rendered with the tokenizer's own chat template; loss on the assistant
  turns only, found by rendering each prefix of the conversation (the tokens an assistant turn
  adds to the rendered prefix are its tokens);
* text: loss on every token.

Nothing here imports torch.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from recipe_opt.data._examples import EncodedExample, Example, TokenizerLike, encode_example
from recipe_opt.exceptions import DataError, first_line

__all__ = [
    "FILE_SUFFIXES",
    "BadRows",
    "ChatExample",
    "DataFormat",
    "ParsedSource",
    "TextExample",
    "encode_chat",
    "encode_parsed",
    "encode_text",
    "parse_rows",
    "read_rows",
]

DataFormat = Literal["auto", "prompt_completion", "chat", "text"]
FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet", ".csv")
# UTF-8 with or without a byte-order mark: Excel and many Windows tools write one, and read as
# plain UTF-8 it makes the first row "not valid JSON" (silently dropped under `bad_rows: skip`).
TEXT_ENCODING = "utf-8-sig"
# The fields each format reads (our names; `columns:` in the config maps them to the user's).
FIELDS: dict[str, tuple[str, ...]] = {
    "prompt_completion": ("prompt", "completion"),
    "chat": ("messages",),
    "text": ("text",),
}


@dataclass(frozen=True)
class ChatExample:
    """A conversation: ({"role": ..., "content": ...}, ...), at least one assistant turn."""

    messages: tuple[Mapping[str, str], ...]


@dataclass(frozen=True)
class TextExample:
    text: str


@dataclass
class BadRows:
    """Rows left out, counted per reason, with where each reason was first seen."""

    counts: dict[str, int] = field(default_factory=dict)
    first: dict[str, str] = field(default_factory=dict)

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self.first.setdefault(reason, where)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        return "; ".join(f"{n} x {reason} (first at {self.first[reason]})" for reason, n in self.counts.items())


@dataclass(frozen=True)
class ParsedSource:
    name: str
    format: str
    examples: Sequence[Example | ChatExample | TextExample]
    rows: int
    bad: BadRows


# ---- reading ---------------------------------------------------------------------------------
def read_rows(
    path: str | Path | None = None,
    *,
    dataset: str | None = None,
    subset: str | None = None,
    split: str = "train",
    bad: BadRows | None = None,
) -> Iterator[tuple[str, Any]]:
    """(where, row) for every row of a data file or a `datasets` dataset.

    A file that cannot be read at all is a `DataError`. A JSONL line that is not JSON is handed
    on as `(where, _Unparsable(message))` so the caller counts it like any other bad row.
    """
    if dataset is not None:
        yield from _dataset_rows(dataset, subset, split)
        return
    if path is None:
        raise DataError("a data source needs a `path` or a `dataset`")
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: data file not found")
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows = _jsonl_rows(p)
    elif suffix == ".json":
        rows = _json_rows(p)
    elif suffix == ".parquet":
        rows = _parquet_rows(p)
    elif suffix == ".csv":
        rows = _csv_rows(p)
    else:
        raise DataError(f"{p}: unknown data file type {suffix!r}; use one of {', '.join(FILE_SUFFIXES)}")
    n = 0
    for item in rows:
        n += 1
        yield item
    if n == 0:  # named here, where the file is known, rather than by source name in parse_rows
        raise DataError(f"{p}: holds no rows (the file is empty)")


@dataclass(frozen=True)
class _Unparsable:
    message: str


def _jsonl_rows(p: Path) -> Iterator[tuple[str, Any]]:
    try:
        with p.open(encoding=TEXT_ENCODING) as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    yield f"{p}:{lineno}", json.loads(line)
                except json.JSONDecodeError as exc:
                    yield f"{p}:{lineno}", _Unparsable(f"not valid JSON ({exc.msg})")
    except UnicodeDecodeError:
        raise DataError(f"{p}: not UTF-8 text") from None


def _json_rows(p: Path) -> Iterator[tuple[str, Any]]:
    try:
        body = json.loads(p.read_text(encoding=TEXT_ENCODING))
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError:
        raise DataError(f"{p}: not UTF-8 text") from None
    # A list of rows, or one object holding the list (`{"data": [...]}`, as many exports write).
    if isinstance(body, dict):
        lists = [v for v in body.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError(f"{p}: expected a JSON list of rows, or an object holding exactly one list")
        body = lists[0]
    if not isinstance(body, list):
        raise DataError(f"{p}: expected a JSON list of rows")
    for i, row in enumerate(body):
        yield f"{p} row {i}", row


def _parquet_rows(p: Path) -> Iterator[tuple[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with `datasets`, a dependency of lm-eval
        raise DataError(f"{p}: reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(p)
    except Exception as exc:  # pyarrow raises its own ArrowInvalid/OSError family
        raise DataError(f"{p}: not a readable Parquet file ({first_line(exc)})") from None
    for i, row in enumerate(table.to_pylist()):
        yield f"{p} row {i}", row


def _csv_rows(p: Path) -> Iterator[tuple[str, Any]]:
    try:
        with p.open(encoding=TEXT_ENCODING, newline="") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                # line_num is the reader's position after the row: right for one-line rows.
                yield f"{p}:{reader.line_num}", dict(row)
    except UnicodeDecodeError:
        raise DataError(f"{p}: not UTF-8 text") from None
    except csv.Error as exc:
        raise DataError(f"{p}: not a readable CSV file ({exc})") from None


def _dataset_rows(name: str, subset: str | None, split: str) -> Iterator[tuple[str, Any]]:
    try:
        import datasets
    except ImportError:  # pragma: no cover - a dependency of lm-eval
        raise DataError(f"dataset {name!r}: the `datasets` package is not installed") from None
    try:
        ds = datasets.load_dataset(name, subset, split=split)
    except Exception as exc:  # hub offline, unknown name, unknown split: one line, not a traceback
        first = first_line(exc)
        raise DataError(f"dataset {name!r} (split {split!r}): cannot load: {first}") from None
    for i, row in enumerate(ds):
        yield f"dataset {name} [{split}] row {i}", row


# ---- parsing ---------------------------------------------------------------------------------
def _detect(row: Mapping[str, Any]) -> str | None:
    for fmt in ("chat", "prompt_completion", "text"):
        if all(f in row for f in FIELDS[fmt]):
            return fmt
    return None


def parse_rows(
    name: str,
    rows: Iterator[tuple[str, Any]],
    *,
    format: DataFormat = "auto",
    columns: Mapping[str, str] | None = None,
    bad_rows: Literal["error", "skip"] = "error",
) -> ParsedSource:
    """Map columns, decide the format, keep the good rows and count the bad.

    `bad_rows: error` stops at the first bad row with its place; `skip` leaves bad rows out and
    counts them (the count is reported, never silent). No good row at all is always an error.
    """
    rename = {theirs: ours for ours, theirs in (columns or {}).items()}
    fmt: str | None = None if format == "auto" else format
    bad = BadRows()
    examples: list[Example | ChatExample | TextExample] = []
    n = 0
    where_first = ""
    for where, raw in rows:
        n += 1
        where_first = where_first or where
        if isinstance(raw, _Unparsable):
            reason = raw.message
        elif not isinstance(raw, Mapping):
            reason = "not an object (a row must map field names to values)"
        elif absent := [theirs for theirs in rename if theirs not in raw]:
            # A mapped column the row lacks: never fall back on a column of our own name. Absent
            # from the first row, it is the mapping that is wrong (as for format detection).
            if n == 1:
                mapped = ", ".join(f"{rename[t]}: {t}" for t in absent)
                raise DataError(
                    f"{where}: `columns: {{{mapped}}}` names column(s) {absent} the data does not have, "
                    f"but got the fields {sorted(raw)}"
                )
            reason = f"missing column(s) {absent} named in `columns:`"
        else:
            row: dict[str, Any] = {rename.get(str(k), str(k)): v for k, v in raw.items()}
            if fmt is None:
                fmt = _detect(row)
                if fmt is None:
                    raise DataError(
                        f"{where}: cannot tell the data format from the fields {sorted(raw)}: expected "
                        "`messages` (chat), `prompt` + `completion`, or `text`; map yours with `columns:` "
                        "or set `format:`"
                    )
            reason, example = _parse(fmt, row)
            if example is not None:
                examples.append(example)
                continue
        if bad_rows == "error":
            hint = " (set `bad_rows: skip` on the source to leave such rows out; they are counted)"
            raise DataError(f"{where}: {reason}{hint}")
        bad.add(reason, where)
    if n == 0:
        raise DataError(f"source {name!r}: holds no rows")
    if not examples:
        raise DataError(f"source {name!r}: none of its {n} rows is usable: {bad.summary()}")
    return ParsedSource(name, fmt or "prompt_completion", examples, n, bad)


def _parse(fmt: str, row: Mapping[str, Any]) -> tuple[str, Example | ChatExample | TextExample | None]:
    missing = [f for f in FIELDS[fmt] if f not in row or row[f] is None]
    if missing:
        return f"missing field(s) {missing}", None
    if fmt == "prompt_completion":
        prompt, completion = row["prompt"], row["completion"]
        if not isinstance(prompt, str) or not isinstance(completion, str):
            return "`prompt` and `completion` must be strings", None
        if not completion.strip():
            return "`completion` is empty: nothing to learn or score", None
        return "", Example(prompt, completion)
    if fmt == "text":
        text = row["text"]
        if not isinstance(text, str) or not text.strip():
            return "`text` must be a non-empty string", None
        return "", TextExample(text)
    messages = row["messages"]
    if not isinstance(messages, list) or not messages:
        return "`messages` must be a non-empty list", None
    turns = []
    for m in messages:
        if not isinstance(m, Mapping) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            return "each message needs a string `role` and `content`", None
        turns.append({"role": m["role"], "content": m["content"]})
    if not any(t["role"] == "assistant" for t in turns):
        return "no assistant turn: nothing to learn", None
    return "", ChatExample(tuple(turns))


# ---- encoding --------------------------------------------------------------------------------
def encode_text(tokenizer: TokenizerLike, ex: TextExample, *, add_eos: bool = True) -> EncodedExample:
    ids = list(tokenizer(ex.text, add_special_tokens=True)["input_ids"])
    if add_eos and tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    # The first token has nothing before it to predict it from: prompt_len 1, loss on the rest.
    return EncodedExample(tuple(ids), min(1, len(ids) - 1))


def _render(tokenizer: Any, messages: Sequence[Mapping[str, str]], *, generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        list(messages), tokenize=True, add_generation_prompt=generation_prompt, return_dict=False
    )
    if isinstance(out, Mapping):  # some tokenizers return a BatchEncoding whatever `return_dict` says
        out = out["input_ids"]
    return [int(i) for i in out]


def encode_chat(tokenizer: Any, ex: ChatExample) -> EncodedExample:
    """The conversation through the tokenizer's chat template; loss on assistant tokens only."""
    if not getattr(tokenizer, "chat_template", None):
        raise DataError(
            "chat data needs a tokenizer with a chat template (tokenizer_config.json `chat_template`); "
            "this one has none: use prompt/completion data, or add a template"
        )
    ids = _render(tokenizer, ex.messages, generation_prompt=False)
    mask = [0] * len(ids)
    for i, turn in enumerate(ex.messages):
        if turn["role"] != "assistant":
            continue
        before = _render(tokenizer, ex.messages[:i], generation_prompt=True) if i else []
        upto = _render(tokenizer, ex.messages[: i + 1], generation_prompt=False)
        if ids[: len(upto)] != upto or upto[: len(before)] != before:
            raise DataError(
                "the chat template does not render a conversation's prefix as a prefix of the whole "
                "(it rewrites earlier turns), so assistant turns cannot be located; use prompt/completion data"
            )
        for j in range(len(before), len(upto)):
            mask[j] = 1
    return EncodedExample(tuple(ids), _first(mask), tuple(mask))


def _first(mask: Sequence[int]) -> int:
    return next((i for i, m in enumerate(mask) if m), len(mask))


def encode_parsed(
    tokenizer: Any, source: ParsedSource, *, max_seq_len: int, where: str, add_eos: bool = True
) -> list[EncodedExample]:
    """Encode a parsed source; examples longer than `max_seq_len` are an error naming the source."""
    encoded: list[EncodedExample] = []
    for ex in source.examples:
        if isinstance(ex, Example):
            encoded.append(encode_example(tokenizer, ex, add_eos=add_eos))
        elif isinstance(ex, ChatExample):
            encoded.append(encode_chat(tokenizer, ex))
        else:
            encoded.append(encode_text(tokenizer, ex, add_eos=add_eos))
    too_long = sum(1 for e in encoded if len(e.input_ids) > max_seq_len)
    if too_long:
        longest = max(len(e.input_ids) for e in encoded)
        raise DataError(
            f"{where}: {too_long} of {len(encoded)} examples exceed `max_seq_len={max_seq_len}` "
            f"tokens (longest: {longest}); raise proxy.max_seq_len"
        )
    return encoded
