"""Data: prompt/completion examples, tokenisation with prompt masking, mixture batch sampling."""

from recipe_opt.data._examples import (
    EncodedExample,
    Example,
    TokenizerLike,
    encode_example,
    encode_examples,
    read_json_lines,
    read_jsonl,
    write_jsonl,
)
from recipe_opt.data._sampler import BatchSampler, SourceDraw, source_shares

__all__ = [
    "BatchSampler",
    "EncodedExample",
    "Example",
    "SourceDraw",
    "TokenizerLike",
    "encode_example",
    "encode_examples",
    "read_json_lines",
    "read_jsonl",
    "source_shares",
    "write_jsonl",
]
