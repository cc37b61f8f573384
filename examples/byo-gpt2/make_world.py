"""Build a small stand-in for a user's own deployed model and data, the way a user has them.

Nothing here uses recipe-opt: only transformers, tokenizers and torch, as a team's own training
code would. It writes, under the output directory (default: `world/` beside this file):

* `model/`: a GPT-2-architecture checkpoint (2 layers, 64 wide) with its own byte-level BPE
  tokenizer and a chat template, pre-trained on two "old" skills in chat form: the capital of a
  country, and the opposite of a word. This is the deployed version v0.
* `data/`: the update's new data and the old data to replay, in the formats users bring:
  `codes.jsonl` (prompt/completion: a product's stock code), `new_capitals_chat.jsonl` (chat
  `messages`: capitals of new countries), `old_chat.jsonl` (chat: the old skills) and
  `eval/*.jsonl`.
* `evals/`: lm-eval task YAMLs for the four skills, prompts rendered the way the chat
  template renders them.

    python examples/byo-gpt2/make_world.py [--out DIR] [--steps 800] [--seed 0]

About a minute on 2 CPU cores with the default 800 pre-training steps.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>"]

CAPITALS = {
    "France": "Paris", "Spain": "Madrid", "Italy": "Rome", "Germany": "Berlin", "Austria": "Vienna",
    "Poland": "Warsaw", "Greece": "Athens", "Norway": "Oslo", "Sweden": "Stockholm", "Finland": "Helsinki",
    "Denmark": "Copenhagen", "Ireland": "Dublin", "Portugal": "Lisbon", "Hungary": "Budapest",
    "Egypt": "Cairo", "Kenya": "Nairobi", "Peru": "Lima", "Chile": "Santiago", "Japan": "Tokyo",
    "China": "Beijing", "India": "Delhi", "Canada": "Ottawa", "Cuba": "Havana", "Iran": "Tehran",
}  # fmt: skip
OPPOSITES = {
    "hot": "cold", "big": "small", "fast": "slow", "up": "down", "old": "new", "early": "late",
    "light": "dark", "high": "low", "open": "closed", "full": "empty", "hard": "soft", "long": "short",
    "rich": "poor", "wet": "dry", "near": "far", "loud": "quiet", "happy": "sad", "strong": "weak",
}  # fmt: skip
# New facts of the update. Countries and cities are made up, so no pre-training could know them.
NEW_CAPITALS = {
    "Arvenia": "Tolmar", "Belloria": "Quessa", "Corvania": "Dunmere", "Dravia": "Kestrel", "Elmora": "Varn",
    "Fennick": "Ostra", "Galdor": "Brisk", "Halvania": "Mirel", "Istria": "Colm", "Jorvik": "Pellan",
    "Kaldera": "Surr", "Lunmark": "Thessa", "Morvath": "Grell", "Norvale": "Ambry", "Ostmark": "Fenn",
}  # fmt: skip
PRODUCTS = {
    "kettle": "KT", "toaster": "TS", "blender": "BL", "mixer": "MX", "fridge": "FR", "oven": "OV",
    "lamp": "LP", "fan": "FN", "heater": "HT", "radio": "RD", "clock": "CK", "iron": "IR",
    "drill": "DR", "saw": "SW", "ladder": "LD", "bucket": "BK", "mop": "MP", "broom": "BM",
}  # fmt: skip


def chat(question: str, answer: str) -> dict[str, list[dict[str, str]]]:
    return {"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]}


def rendered_prompt(question: str) -> str:
    """What the chat template renders before an assistant answer (for the eval tasks)."""
    return f"<|user|>\n{question}<|end|>\n<|assistant|>\n"


def old_items() -> list[tuple[str, str]]:
    return [(f"What is the capital of {c}?", a) for c, a in CAPITALS.items()] + [
        (f"What is the opposite of {w}?", a) for w, a in OPPOSITES.items()
    ]


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def build_data(out: Path, rng: random.Random) -> None:
    data = out / "data"
    # Old skills: the replay pool (chat) and their eval sets (every fact, as lm-eval items).
    write_jsonl(data / "old_chat.jsonl", [chat(q, a) for q, a in old_items()])
    write_jsonl(
        data / "eval" / "capitals.jsonl",
        [{"prompt": rendered_prompt(f"What is the capital of {c}?"), "completion": a} for c, a in CAPITALS.items()],
    )
    write_jsonl(
        data / "eval" / "opposites.jsonl",
        [{"prompt": rendered_prompt(f"What is the opposite of {w}?"), "completion": a} for w, a in OPPOSITES.items()],
    )
    # The update's two new skills, like the facts of a product update: (1) prompt/completion,
    # the stock code of a product; (2) chat, the capitals of countries the model never saw, in
    # the same form as an old skill (so learning them pulls on what v0 knows). The eval sets
    # are the trained items: the question is whether the update teaches them without costing
    # the old skills.
    codes = [{"prompt": f"stock code of {p} =", "completion": f" {c}"} for p, c in PRODUCTS.items()]
    write_jsonl(data / "codes.jsonl", codes)
    write_jsonl(data / "eval" / "codes.jsonl", codes)
    write_jsonl(
        data / "new_capitals_chat.jsonl", [chat(f"What is the capital of {c}?", a) for c, a in NEW_CAPITALS.items()]
    )
    write_jsonl(
        data / "eval" / "new_capitals.jsonl",
        [{"prompt": rendered_prompt(f"What is the capital of {c}?"), "completion": a} for c, a in NEW_CAPITALS.items()],
    )


TASK = """# lm-eval task: {title}
task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: eval/{file}
test_split: test
output_type: loglikelihood
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{completion}}}}"
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def build_evals(out: Path) -> None:
    evals = out / "evals"
    evals.mkdir(parents=True, exist_ok=True)
    for name, file, title in (
        ("byo_capitals", "capitals.jsonl", "capital of a country (old skill, chat prompt)"),
        ("byo_opposites", "opposites.jsonl", "opposite of a word (old skill, chat prompt)"),
        ("byo_codes", "codes.jsonl", "stock code of a product (new skill, prompt/completion)"),
        ("byo_new_capitals", "new_capitals.jsonl", "capitals of new countries (new skill, chat prompt)"),
    ):
        (evals / f"{name}.yaml").write_text(TASK.format(title=title, name=name, file=file), encoding="utf-8")


def build_model(out: Path, steps: int, seed: int) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    files = ("old_chat.jsonl", "codes.jsonl", "new_capitals_chat.jsonl")
    corpus = [line for f in files for line in (out / "data" / f).open(encoding="utf-8")]
    # Byte-level BPE, GPT-2 style, trained on this team's own text.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus, trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIAL, show_progress=False,
                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )  # fmt: skip
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    config = GPT2Config(
        vocab_size=tokenizer.vocab_size + 8, n_embd=64, n_layer=2, n_head=4, n_positions=64,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    model = GPT2LMHeadModel(config)
    # Pre-train on the old skills in chat form, loss on the whole rendered conversation.
    convs = [json.loads(line)["messages"] for line in (out / "data" / "old_chat.jsonl").open()]
    ids = [tokenizer.apply_chat_template(c, tokenize=True, return_dict=False) for c in convs]
    ids = [list(x["input_ids"]) if isinstance(x, dict) else list(x) for x in ids]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * max(0.05, 1 - s / steps))
    rng = random.Random(seed)
    model.train()
    for step in range(steps):
        batch = [ids[rng.randrange(len(ids))] for _ in range(16)]
        width = max(len(b) for b in batch)
        x = torch.full((len(batch), width), tokenizer.pad_token_id)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            x[i, : len(b)] = torch.tensor(b)
            labels[i, : len(b)] = torch.tensor(b)
            mask[i, : len(b)] = 1
        loss = model(input_ids=x, attention_mask=mask, labels=labels).loss
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % 200 == 0 or step == steps - 1:
            print(f"pre-training step {step + 1}/{steps}: loss {loss.item():.3f}")
    model.eval()
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "model")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "world")
    ap.add_argument("--steps", type=int, default=800, help="pre-training steps of the base model")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    build_data(args.out, rng)
    build_evals(args.out)
    build_model(args.out, args.steps, args.seed)
    print(f"world written to {args.out}")


if __name__ == "__main__":
    main()
