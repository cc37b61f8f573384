"""Padded tensors from encoded examples, with the prompt masked from the loss."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from recipe_opt.data import EncodedExample

__all__ = ["IGNORE_INDEX", "Batch", "collate"]

# Label value ignored by torch's cross-entropy (and by transformers' causal-LM loss).
IGNORE_INDEX = -100


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    @property
    def n_tokens(self) -> int:
        """Real (non-padding) tokens: what the forward pass spends FLOPs on, for cost."""
        return int(self.attention_mask.sum().item())

    @property
    def n_target_tokens(self) -> int:
        return int((self.labels != IGNORE_INDEX).sum().item())


def collate(examples: Sequence[EncodedExample], pad_id: int) -> Batch:
    """Right-pad to the longest example; prompt tokens (or, with a loss mask, every token outside it)
    and padding get label -100 (no loss)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        mask[row, :n] = 1
        if e.loss_mask is None:
            labels[row, e.prompt_len : n] = ids[row, e.prompt_len : n]
        else:
            keep = torch.tensor(e.loss_mask, dtype=torch.bool)
            labels[row, :n] = torch.where(keep, ids[row, :n], IGNORE_INDEX)
    return Batch(ids, mask, labels)
