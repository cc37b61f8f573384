"""Training data as users have it: file types, formats, column mapping, bad rows, chat masking,
and LoRA targets resolved against real (tiny, random) models of each supported family."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from recipe_opt.data import (
    ChatExample,
    Example,
    TextExample,
    encode_chat,
    encode_parsed,
    encode_text,
    parse_rows,
    read_rows,
)
from recipe_opt.exceptions import ConfigError, DataError

ROWS = [{"question": f"q{i} ?", "answer": f" a{i}"} for i in range(4)]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n"
    "{% if m['role'] == 'assistant' %}</s>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".json":
        path.write_text(json.dumps({"data": rows}))
    elif path.suffix == ".csv":
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet"])
def test_every_file_type_reads_the_same_examples_with_mapped_columns(tmp_path: Path, suffix: str) -> None:
    path = _write(tmp_path / f"d{suffix}", ROWS)
    parsed = parse_rows("qa", read_rows(path), columns={"prompt": "question", "completion": "answer"})
    assert parsed.format == "prompt_completion" and parsed.rows == 4 and parsed.bad.total == 0
    assert list(parsed.examples) == [Example(r["question"], r["answer"]) for r in ROWS]


def test_bad_rows_stop_with_their_place_or_are_counted_when_skipped(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"prompt": "a", "completion": " b"}\n'
        "{not json\n"
        '{"prompt": "a"}\n'
        '{"prompt": "c", "completion": " d"}\n'
        '{"prompt": "e"}\n'
        '["a list"]\n'
    )
    with pytest.raises(DataError, match=r"d\.jsonl:2: not valid JSON .*bad_rows: skip"):
        parse_rows("s", read_rows(path))
    parsed = parse_rows("s", read_rows(path), bad_rows="skip")
    assert [e.prompt for e in parsed.examples] == ["a", "c"]  # type: ignore[union-attr]
    assert parsed.rows == 6 and parsed.bad.total == 4
    assert parsed.bad.counts["missing field(s) ['completion']"] == 2
    assert parsed.bad.first["missing field(s) ['completion']"].endswith("d.jsonl:3")
    assert "2 x missing field(s) ['completion'] (first at" in parsed.bad.summary()

    only_bad = tmp_path / "bad.jsonl"
    only_bad.write_text('{"prompt": "a"}\n')
    with pytest.raises(DataError, match=r"none of its 1 rows is usable"):
        parse_rows("s", read_rows(only_bad), format="prompt_completion", bad_rows="skip")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(DataError, match="holds no rows"):
        parse_rows("s", read_rows(empty))


def test_format_detection_names_what_it_found(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.jsonl", [{"q": "x", "a": "y"}])
    with pytest.raises(DataError, match=r"d\.jsonl:1: cannot tell the data format from the fields \['a', 'q'\]"):
        parse_rows("s", read_rows(path))
    texts = parse_rows("t", read_rows(_write(tmp_path / "t.jsonl", [{"text": "hello there"}])))
    assert texts.format == "text" and texts.examples == [TextExample("hello there")]
    chats = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}]
    parsed = parse_rows("c", read_rows(_write(tmp_path / "c.jsonl", chats)))
    assert parsed.format == "chat" and isinstance(parsed.examples[0], ChatExample)
    no_answer = [{"messages": [{"role": "user", "content": "hi"}]}]
    with pytest.raises(DataError, match="no assistant turn"):
        parse_rows("c", read_rows(_write(tmp_path / "n.jsonl", no_answer)))


def test_unreadable_files_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data file not found"):
        list(read_rows(tmp_path / "missing.jsonl"))
    broken = tmp_path / "b.json"
    broken.write_text('{"data": [1, 2')
    with pytest.raises(DataError, match=r"b\.json:1: not valid JSON"):
        list(read_rows(broken))
    pq = tmp_path / "p.parquet"
    pq.write_text("not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        list(read_rows(pq))
    with pytest.raises(DataError, match=r"unknown data file type '\.txt'"):
        list(read_rows(_write(tmp_path / "x.jsonl", ROWS).rename(tmp_path / "x.txt")))


@pytest.fixture(scope="module")
def chat_tokenizer() -> Any:
    from recipe_opt.demo._world import _train_tokenizer

    corpus = ["<|user|> <|assistant|> <|system|> what is two plus two ? it is four . hello there friend"] * 20
    tok = _train_tokenizer(corpus, vocab_size=200)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def test_chat_loss_covers_assistant_turns_only(chat_tokenizer: Any) -> None:
    tok = chat_tokenizer
    ex = ChatExample(
        (
            {"role": "system", "content": "hello there"},
            {"role": "user", "content": "what is two plus two ?"},
            {"role": "assistant", "content": "it is four ."},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hello friend"},
        )
    )
    enc = encode_chat(tok, ex)
    assert enc.loss_mask is not None and len(enc.loss_mask) == len(enc.input_ids)
    # Two separate spans, each exactly an assistant turn and its end-of-turn token.
    spans, start = [], None
    for i, m in enumerate([*enc.loss_mask, 0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            spans.append(enc.input_ids[start:i])
            start = None
    decoded = ["".join(tok.decode(list(s)).split()) for s in spans]
    assert decoded == ["itisfour.</s>", "hellofriend</s>"]
    assert enc.prompt_len == enc.loss_mask.index(1)

    from recipe_opt.train import IGNORE_INDEX, collate

    batch = collate([enc, encode_text(tok, TextExample("hello there"))], pad_id=0)
    labels = batch.labels[0, : len(enc.input_ids)].tolist()
    assert [lab != IGNORE_INDEX for lab in labels] == [bool(m) for m in enc.loss_mask]
    assert batch.n_target_tokens == sum(enc.loss_mask) + len(encode_text(tok, TextExample("hello there")).input_ids) - 1


def test_chat_needs_a_template_and_long_examples_are_refused(chat_tokenizer: Any, tmp_path: Path) -> None:
    from recipe_opt.demo._world import _train_tokenizer

    plain = _train_tokenizer(["hello there"] * 5, vocab_size=50)
    ex = ChatExample(({"role": "user", "content": "hello"}, {"role": "assistant", "content": "there"}))
    with pytest.raises(DataError, match="needs a tokenizer with a chat template"):
        encode_chat(plain, ex)
    parsed = parse_rows("t", read_rows(_write(tmp_path / "t.jsonl", [{"text": "hello there friend " * 10}])))
    with pytest.raises(DataError, match=r"sources.new.t: 1 of 1 examples exceed `max_seq_len=8`"):
        encode_parsed(chat_tokenizer, parsed, max_seq_len=8, where="sources.new.t")


def test_source_config_checks(tmp_path: Path) -> None:
    from recipe_opt.config import SourceConfig

    assert SourceConfig(path="a.parquet", columns={"prompt": "q"}).format == "auto"
    assert SourceConfig(dataset="org/name", split="validation").path is None
    for bad, match in (
        ({"path": "a.jsonl", "dataset": "x"}, "exactly one of `path`"),
        ({}, "exactly one of `path`"),
        ({"path": "a.txt"}, "must end in one of"),
        ({"path": "a.jsonl", "columns": {"question": "q"}}, r"unknown field\(s\) \['question'\]"),
    ):
        with pytest.raises(ValueError, match=match):
            SourceConfig(**bad)


# ---- LoRA targets on each supported family (random weights, a few hundred KB each) ------------
def _tiny(kind: str) -> Any:
    import transformers as tf

    common = {"vocab_size": 64, "hidden_size": 32, "num_attention_heads": 4, "num_hidden_layers": 2}
    if kind == "gpt2":
        cfg: Any = tf.GPT2Config(vocab_size=64, n_embd=32, n_head=4, n_layer=2, n_positions=64)
    elif kind == "llama":
        cfg = tf.LlamaConfig(intermediate_size=64, **common)
    elif kind == "qwen2":
        cfg = tf.Qwen2Config(intermediate_size=64, num_key_value_heads=2, **common)
    elif kind == "mistral":
        cfg = tf.MistralConfig(intermediate_size=64, num_key_value_heads=2, **common)
    elif kind == "phi":
        cfg = tf.PhiConfig(intermediate_size=64, **common)
    else:
        cfg = tf.Phi3Config(intermediate_size=64, pad_token_id=0, **common)
    return tf.AutoModelForCausalLM.from_config(cfg)


@pytest.mark.parametrize(
    ("kind", "all_linear", "attention"),
    [
        ("llama", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         ["q_proj", "k_proj", "v_proj", "o_proj"]),
        ("qwen2", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         ["q_proj", "k_proj", "v_proj", "o_proj"]),
        ("mistral", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
         ["q_proj", "k_proj", "v_proj", "o_proj"]),
        ("gpt2", ["c_attn", "c_proj", "c_fc"], ["c_attn", "attn.c_proj"]),
        ("phi", ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"], ["q_proj", "k_proj", "v_proj", "dense"]),
        ("phi3", ["o_proj", "qkv_proj", "gate_up_proj", "down_proj"], ["o_proj", "qkv_proj"]),
    ],
)  # fmt: skip
# peft notes on every GPT-2 Conv1D that it sets fan_in_fan_out itself (the trainer silences it too).
@pytest.mark.filterwarnings("ignore:fan_in_fan_out is set to False:UserWarning")
def test_target_markers_resolve_per_architecture(kind: str, all_linear: list[str], attention: list[str]) -> None:
    from peft import LoraConfig, get_peft_model

    from recipe_opt.train import resolve_target_modules

    model = _tiny(kind)
    assert list(resolve_target_modules(model, ["all-linear"], where="s", model_ref=kind)) == all_linear
    resolved = resolve_target_modules(model, ["@attention"], where="s", model_ref=kind)
    assert list(resolved) == attention
    # peft adapts exactly the attention block's layers with the resolved names: 2 layers' worth.
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=list(resolved)))
    adapted = {n.rsplit(".lora_A", 1)[0] for n, _ in peft_model.named_parameters() if ".lora_A." in n}
    assert len(adapted) == 2 * len(attention)
    assert all(any(p in n for p in ("attn", "attention")) for n in adapted), adapted


def test_a_target_the_model_lacks_is_a_clear_error() -> None:
    from recipe_opt.train import resolve_target_sets

    message = (
        r"space.yaml: target_module_sets.attention: target module 'q_proj' is not a linear layer of the "
        r"gpt2 model; its linear layers are: c_attn, c_proj, c_fc"
    )
    with pytest.raises(ConfigError, match=message):
        resolve_target_sets(
            _tiny("gpt2"), {"attention": ["q_proj", "k_proj"]}, source="space.yaml", model_ref="the gpt2 model"
        )


def test_a_datasets_dataset_reads_like_a_file(tmp_path: Path) -> None:
    # A local dataset directory (what `datasets` builds from data files); a hub name works the same
    # way on a machine that can reach the hub. The tests run with HF_DATASETS_OFFLINE=1.
    data = tmp_path / "my_dataset"
    data.mkdir()
    _write(data / "train.jsonl", ROWS)
    _write(data / "validation.jsonl", ROWS[:1])
    parsed = parse_rows(
        "qa", read_rows(dataset=str(data), split="train"), columns={"prompt": "question", "completion": "answer"}
    )
    assert parsed.rows == 4 and list(parsed.examples) == [Example(r["question"], r["answer"]) for r in ROWS]
    assert parse_rows("qa", read_rows(dataset=str(data), split="validation"), format="prompt_completion",
                      columns={"prompt": "question", "completion": "answer"}).rows == 1  # fmt: skip
    with pytest.raises(DataError, match=r"dataset 'no-such-org/no-such-set' \(split 'train'\): cannot load: "):
        list(read_rows(dataset="no-such-org/no-such-set"))
