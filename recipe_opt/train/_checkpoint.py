"""The base model: a Hugging Face causal-LM checkpoint directory, loaded once per process.

Any failure inside transformers, tokenizers or safetensors (a config that is not JSON, an unknown
model_type, missing or truncated weights, a broken tokenizer.json) is bad input: one line naming
the directory and the part that failed, never a traceback. `model_skeleton` builds the
architecture alone on torch's meta device (no weights read), for what needs only module names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from recipe_opt.exceptions import TrainingError

__all__ = ["BaseModel", "load_base_model", "load_tokenizer", "model_skeleton", "state_checksum"]


# What a saved tokenizer holds: a fast tokenizer's tokenizer.json, a sentencepiece model, a BPE
# vocabulary (GPT-2's vocab.json + merges.txt) or a WordPiece one; tokenizer_config.json alone is none.
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt")


def _checkpoint_dir(path: str | Path) -> Path:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise TrainingError(f"{path}: not a Hugging Face checkpoint directory (no config.json)")
    return path


def _load_error(path: Path, part: str, exc: Exception, trust_remote_code: bool) -> TrainingError:
    reason = " ".join(str(exc).split())
    reason = f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__
    if len(reason) > 300:
        reason = reason[:297] + "..."
    if "trust_remote_code" in str(exc) and not trust_remote_code:
        reason = "its architecture needs custom code from the checkpoint; set `trust_remote_code: true` "
        reason += "in the study config if you trust it"
    return TrainingError(f"{path}: cannot load the {part}: {reason}")


def load_tokenizer(path: str | Path, *, trust_remote_code: bool = False) -> Any:
    """The tokenizer saved beside the model; it must be able to pad (a pad or an EOS token)."""
    from transformers import AutoTokenizer

    path = _checkpoint_dir(path)
    if not any((path / f).is_file() for f in _TOKENIZER_FILES):
        # transformers would try to convert a slow tokenizer and fail on sentencepiece instead.
        raise TrainingError(
            f"{path}: cannot load the tokenizer: the checkpoint has no tokenizer files "
            f"({', '.join(_TOKENIZER_FILES)}); save the tokenizer beside the model (`tokenizer.save_pretrained`)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise _load_error(path, "tokenizer", exc, trust_remote_code) from None
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is None:
        raise TrainingError(f"{path}: the tokenizer has neither a pad nor an EOS token; batches cannot be padded")
    return tokenizer


def model_skeleton(path: str | Path, *, trust_remote_code: bool = False) -> Any:
    """The checkpoint's architecture on the meta device: every module, no weights, no memory."""
    from transformers import AutoConfig, AutoModelForCausalLM

    path = _checkpoint_dir(path)
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)  # type: ignore[no-untyped-call]
    except Exception as exc:
        raise _load_error(path, "model", exc, trust_remote_code) from None


@dataclass
class BaseModel:
    """The base model and tokenizer, loaded once per process."""

    model: Any
    tokenizer: Any
    path: Path
    non_embedding_params: int

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return int(pad if pad is not None else self.tokenizer.eos_token_id)


def load_base_model(path: str | Path, *, device: str = "cpu", trust_remote_code: bool = False) -> BaseModel:
    """Load an HF causal-LM checkpoint directory (and the tokenizer saved beside it).

    Any architecture transformers knows (Llama, Qwen2, Mistral, GPT-2, Phi, ...). A checkpoint
    whose architecture needs its own Python code loads only with `trust_remote_code=True`, which
    the study config must ask for: the code would run in this process.
    """
    from transformers import AutoModelForCausalLM

    path = _checkpoint_dir(path)
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path, local_files_only=True, dtype=torch.float32, trust_remote_code=trust_remote_code
        )
    except Exception as exc:
        raise _load_error(path, "model", exc, trust_remote_code) from None
    model.to(device)  # type: ignore[arg-type]  # transformers 5 types `.to` through a decorator
    for p in model.parameters():
        p.requires_grad_(False)
    n = int(model.num_parameters(exclude_embeddings=True))
    return BaseModel(model=model, tokenizer=tokenizer, path=path, non_embedding_params=n)


def state_checksum(model: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer, in name order: equal iff the weights are equal."""
    import hashlib

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
