"""Data: training sources in the formats users have (files or `datasets`; prompt/completion, chat,
text), tokenisation with loss masking, mixture batch sampling."""

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
from recipe_opt.data._sources import (
    FILE_SUFFIXES,
    BadRows,
    ChatExample,
    DataFormat,
    ParsedSource,
    TextExample,
    encode_chat,
    encode_parsed,
    encode_text,
    parse_rows,
    read_rows,
)

__all__ = [
    "FILE_SUFFIXES",
    "BadRows",
    "BatchSampler",
    "ChatExample",
    "DataFormat",
    "EncodedExample",
    "Example",
    "ParsedSource",
    "SourceDraw",
    "TextExample",
    "TokenizerLike",
    "encode_chat",
    "encode_example",
    "encode_examples",
    "encode_parsed",
    "encode_text",
    "parse_rows",
    "read_json_lines",
    "read_jsonl",
    "read_rows",
    "source_shares",
    "write_jsonl",
]
