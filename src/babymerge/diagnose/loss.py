"""The loss along the straight line between two models, and the barrier height on it.

The model at ``alpha`` is the sweep's in-memory linear merge (mergekit's ``linear`` method,
``theta = alpha * theta_text + (1 - alpha) * theta_multimodal``). Its loss on a sample is the model's own
causal-LM loss (forward with labels), averaged over every scored token of the sample.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..sweep.merge import MULTIMODAL, TEXT, MergeSpec
from ..sweep.slot import load_weights
from ..training.data import Collator, TrainingRows


@torch.no_grad()
def mean_loss(
    model: nn.Module, rows: TrainingRows, collator: Collator, *, batch_size: int, device: str
) -> tuple[float, int]:
    """The mean token loss of ``model`` over ``rows`` and the number of tokens it is taken over."""
    model.eval()
    total, tokens = 0.0, 0
    for batch in DataLoader(rows, batch_size=batch_size, collate_fn=collator):
        batch.pop("num_words")
        batch = {key: value.to(device) for key, value in batch.items()}
        count = int((batch["labels"][:, 1:] != -100).sum())
        total += float(model(**batch).loss) * count
        tokens += count
    return total / max(tokens, 1), tokens


def barrier(alphas: list[float], losses: list[float]) -> tuple[float, float]:
    """The largest excess of ``losses`` over the straight line between the endpoints' losses, and its alpha.

    ``alphas`` must hold 0 (the multimodal model) and 1 (the text-only one); the excess at the endpoints is 0,
    so the barrier is never negative.
    """
    by_alpha = dict(zip(alphas, losses, strict=True))
    start, end = by_alpha[0.0], by_alpha[1.0]
    excess = [loss - (a * end + (1 - a) * start) for a, loss in zip(alphas, losses, strict=True)]
    top = max(range(len(alphas)), key=excess.__getitem__)
    return excess[top], alphas[top]


def loss_path(
    model: nn.Module,
    states: dict[str, dict[str, torch.Tensor]],
    samples: dict[str, tuple[TrainingRows, Collator]],
    alphas: list[float],
    *,
    batch_size: int,
    device: str,
    progress: bool = True,
) -> dict[str, dict]:
    """Per source: the loss at every alpha, the tokens scored, and the barrier (height and alpha)."""
    losses: dict[str, list[float]] = {name: [] for name in samples}
    tokens: dict[str, int] = {}
    for alpha in tqdm(alphas, desc="loss along alpha", disable=not progress):
        merged = MergeSpec(method="linear", alpha=alpha).merge({TEXT: states[TEXT], MULTIMODAL: states[MULTIMODAL]})
        load_weights(model, merged)
        for name, (rows, collator) in samples.items():
            loss, tokens[name] = mean_loss(model, rows, collator, batch_size=batch_size, device=device)
            losses[name].append(loss)
    out = {}
    for name, values in losses.items():
        height, at = barrier(alphas, values)
        out[name] = {"alphas": alphas, "loss": values, "tokens": tokens[name], "barrier": height, "barrier_alpha": at}
    return out
