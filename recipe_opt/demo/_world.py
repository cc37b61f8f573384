"""Build the embedded demo world offline and deterministically from a seed.

What `build_world(DIR)` writes:

    DIR/models/v0/        HF checkpoint (LlamaForCausalLM, safetensors) + its tokenizer: version v0
    DIR/data/cycle1/*.jsonl  new data of update cycle 1 (v0 -> v1): mul, a new task, and
                          add_text, a new format of an old one (addition)
    DIR/data/cycle2/*.jsonl  cycle 2 (v1 -> v2): max, and mul_text (multiplication in words)
    DIR/data/cycle3/*.jsonl  cycle 3 (v2 -> v3): diff, and rev4 (reversal of 4 letters)
    DIR/data/replay/old.jsonl  replay pool of v0's training data, balanced across its tasks
                          (later cycles replay earlier cycles' files beside it)
    DIR/data/eval/*.jsonl held-out eval sets, one per capability
    DIR/world.json        what was built: seed, sizes, base accuracies, file hashes

Later versions (v1, v2, ...) are not built here: `recipe-opt apply` writes them beside v0.

Nothing is downloaded: the tokenizer is trained with `tokenizers` on the world's own text and the
model is pre-trained here (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from recipe_opt.data import Example, write_jsonl
from recipe_opt.demo._tasks import CYCLE_TASKS, OLD_TASKS, TaskSplit, build_cycle_tasks, build_tasks

__all__ = ["WORLD_FORMAT", "DemoWorldConfig", "WorldSummary", "build_world"]

# Bumped when the world's files change shape (2: data per update cycle, cycles 2 and 3 added).
WORLD_FORMAT = 2

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")


@dataclass(frozen=True)
class DemoWorldConfig:
    """Sizes of the demo world; defaults give a base that knows every old task (>= 0.98 acc)."""

    seed: int = 0
    # Llama with hidden 96, 3 layers, 4 heads, MLP 256, tied embeddings: about 0.29M parameters.
    hidden_size: int = 96
    intermediate_size: int = 256
    num_layers: int = 3
    num_heads: int = 4
    vocab_size: int = 96
    max_position_embeddings: int = 64
    pretrain_steps: int = 1000
    pretrain_batch_size: int = 64
    pretrain_lr: float = 5e-3
    pretrain_warmup_steps: int = 50
    replay_pool_per_task: int = 256
    min_base_accuracy: float = 0.9


@dataclass(frozen=True)
class WorldSummary:
    root: Path
    model_dir: Path
    n_parameters: int
    base_accuracy: dict[str, float]
    pretrain_seconds: float


def _train_tokenizer(texts: list[str], vocab_size: int) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    # Whitespace split, then every digit on its own: "12" -> "1", "2", so arithmetic is per digit.
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Digits(individual_digits=True)]
    )
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    bos_id = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", bos_id)]
    )
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _balanced_pool(splits: list[TaskSplit], per_task: int, rng: random.Random) -> list[Example]:
    pool: list[Example] = []
    for split in splits:
        items = list(split.train)
        # Small fact tables (40 lookups) are repeated to fill their share; larger ones subsampled.
        picked = (
            [items[i % len(items)] for i in range(per_task)] if len(items) < per_task else rng.sample(items, per_task)
        )
        pool.extend(picked)
    rng.shuffle(pool)
    return pool


def build_world(
    root: str | Path,
    config: DemoWorldConfig | None = None,
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> WorldSummary:
    """Build the world under `root` (created; must be empty or absent)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, get_scheduler

    from recipe_opt.data import BatchSampler, encode_examples
    from recipe_opt.evaluate import score_items
    from recipe_opt.train import collate

    cfg = config or DemoWorldConfig()
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root}: directory exists and is not empty")
    tmp = root.with_name(root.name + ".building")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)

    tasks = build_tasks(cfg.seed)
    later = build_cycle_tasks(cfg.seed)
    rng = random.Random(cfg.seed)

    # ---- data files -----------------------------------------------------------------------
    data = tmp / "data"
    every = {**tasks, **later}
    for cycle, names in CYCLE_TASKS.items():
        for name in names:
            write_jsonl(data / f"cycle{cycle}" / f"{name}.jsonl", every[name].train)
    write_jsonl(
        data / "replay" / "old.jsonl",
        _balanced_pool([tasks[n] for n in OLD_TASKS], cfg.replay_pool_per_task, rng),
    )
    for name, split in every.items():
        write_jsonl(data / "eval" / f"{name}.jsonl", split.eval)

    # ---- tokenizer over the text of v0's tasks and cycle 1 ------------------------------------
    # (Later cycles use the same characters; leaving their text out keeps v0 identical.)
    texts = [ex.prompt + ex.completion for split in tasks.values() for ex in split.train + split.eval]
    tokenizer = _train_tokenizer(texts, cfg.vocab_size)

    # ---- v0: pre-train on the old tasks -----------------------------------------------------
    torch.manual_seed(cfg.seed)
    model_cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(model_cfg)
    n_params = sum(p.numel() for p in model.parameters())

    max_len = cfg.max_position_embeddings
    encoded = {n: encode_examples(tokenizer, tasks[n].train, max_seq_len=max_len, source=n) for n in OLD_TASKS}
    sampler = BatchSampler(
        dict.fromkeys(OLD_TASKS, 1 / len(OLD_TASKS)),
        {n: len(v) for n, v in encoded.items()},
        cfg.pretrain_batch_size,
        seed=cfg.seed,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr, weight_decay=0.0)
    scheduler = get_scheduler(
        "cosine",
        optimizer,
        num_warmup_steps=cfg.pretrain_warmup_steps,
        num_training_steps=cfg.pretrain_steps,
    )
    model.train()
    t0 = time.perf_counter()
    pad_id = int(tokenizer.pad_token_id)
    for step in range(cfg.pretrain_steps):
        batch = collate([encoded[d.source][d.index] for d in sampler.next_batch()], pad_id)
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if progress is not None and (step % 25 == 0 or step == cfg.pretrain_steps - 1):
            progress(f"pre-training v0 (loss {out.loss.item():.3f})", step + 1, cfg.pretrain_steps)
    pretrain_seconds = time.perf_counter() - t0

    base_accuracy: dict[str, float] = {}
    for name, split in every.items():
        items = encode_examples(tokenizer, split.eval, max_seq_len=max_len, source=name, add_eos=False)
        base_accuracy[name] = score_items(model, items, pad_id=pad_id).acc
    weak = {n: a for n, a in base_accuracy.items() if n in OLD_TASKS and a < cfg.min_base_accuracy}
    if weak:
        raise RuntimeError(
            f"pre-trained base does not know its old tasks (exact match {weak} < "
            f"{cfg.min_base_accuracy}); forgetting would be hidden. Raise pretrain_steps."
        )

    model_dir = tmp / "models" / "v0"
    model.save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)

    manifest = {
        "kind": "recipe-opt demo world",
        "format": WORLD_FORMAT,
        "config": asdict(cfg),
        "n_parameters": n_params,
        "old_tasks": list(OLD_TASKS),
        "cycles": {str(c): list(names) for c, names in CYCLE_TASKS.items()},
        "base_accuracy": base_accuracy,
        "pretrain_seconds": round(pretrain_seconds, 1),
        "files": {str(p.relative_to(tmp)): _sha256(p) for p in sorted(data.rglob("*.jsonl"))},
    }
    (tmp / "world.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if root.exists():
        root.rmdir()
    tmp.rename(root)
    return WorldSummary(root, root / "models" / "v0", n_params, base_accuracy, pretrain_seconds)
