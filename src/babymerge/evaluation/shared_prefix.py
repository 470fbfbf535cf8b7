"""Causal log-likelihoods with every distinct prefix sent through the LM head once.

A causal model's distribution at a position depends only on the tokens up to it, so requests that share a
prefix (BLiMP's minimal pairs share everything before the word they differ in, and every BabyLM request
starts with ``<s> <image>``) share that position's log-probabilities. lm-eval's ``HFLM`` computes the
logits, a full-vocabulary log-softmax and an argmax at every position of every request; here each distinct
prefix gets one row, computed in the batch where it first occurs. On BLiMP fast (16k-entry tokenizer, batch
32) that is 197k rows where HFLM computes 371k padded positions (344k of them scored), which matters where
the LM head over the vocabulary costs more than the transformer (babyllava's tiny preset).

Requests are processed in lm-eval's order (longest first, batches of ``batch_size``), truncated from the
left as lm-eval truncates, and answered as ``(sum of continuation log-probs, continuation is greedy)``.
``plan`` does all the bookkeeping once; a sweep reuses it for every merge point.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

Request = tuple[Sequence[int], Sequence[int]]  # (context tokens, continuation tokens)


@dataclass
class Batch:
    """One model call: the requests it answers and where its new rows' results go."""

    requests: list[int]  # request indices answered after this batch
    ids: torch.Tensor | None  # (computing requests, width) right-padded inputs; None when nothing is new
    rows: torch.Tensor  # new rows: batch row ...
    positions: torch.Tensor  # ... and position
    row_nodes: torch.Tensor  # prefix node of each new row
    pick_rows: torch.Tensor  # (new row, token) pairs to keep ...
    pick_tokens: torch.Tensor
    pick_slots: torch.Tensor  # ... and their slots in the value table
    answer_slots: torch.Tensor  # (requests, longest continuation) value slots; padding points at a zero
    answer_nodes: torch.Tensor  # same shape: prefix nodes, padding points at a node whose best is -1
    answer_targets: torch.Tensor  # same shape: continuation tokens, padding -1


@dataclass
class PrefixPlan:
    batches: list[Batch]
    slots: int  # distinct (prefix, next token) pairs, plus one zero slot
    nodes: int  # prefix nodes, plus one padding node


def _windows(requests: Sequence[Request], max_length: int) -> tuple[list[list[int]], list[list[int]], list[int]]:
    windows, conts, keys = [], [], []
    for context, continuation in requests:
        if not context or not continuation or len(continuation) > max_length:
            raise ValueError(
                f"a request needs a non-empty context and 1..{max_length} continuation tokens, "
                f"got {len(context)} and {len(continuation)}"
            )
        tokens = list(context) + list(continuation)
        keys.append((-len(tokens), tuple(tokens)))
        windows.append(tokens[-(max_length + 1) : -1])
        conts.append(list(continuation))
    return windows, conts, sorted(range(len(requests)), key=keys.__getitem__)


def _prefix_nodes(windows: list[list[int]], order: list[int]) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """Number the distinct prefixes (a trie over the input windows, in ``order``): each window's node at each
    position, and per node the (request, position) where it is first met."""
    trie: dict[tuple[int, int], int] = {}
    first: list[tuple[int, int]] = []
    nodes_at: list[list[int]] = [[] for _ in windows]
    for i in order:
        node = -1
        for position, token in enumerate(windows[i]):
            node = trie.setdefault((node, token), len(trie))
            if node == len(first):
                first.append((i, position))
            nodes_at[i].append(node)
    return nodes_at, first


@dataclass
class _Layout:
    """The bookkeeping shared by every batch: windows, continuations, prefix nodes and value slots."""

    windows: list[list[int]]
    conts: list[list[int]]
    nodes_at: list[list[int]]
    slot_of: dict[tuple[int, int], int]  # (prefix node, next token) -> value slot
    new_rows: dict[int, list[int]]  # request -> positions whose rows it computes first
    targets_of: dict[int, list[int]]  # prefix node -> next tokens scored after it
    zero_slot: int
    pad_node: int

    @classmethod
    def of(cls, windows: list[list[int]], conts: list[list[int]], order: list[int]) -> _Layout:
        nodes_at, first = _prefix_nodes(windows, order)
        slot_of: dict[tuple[int, int], int] = {}
        new_rows: dict[int, list[int]] = {}
        for i in order:
            start = len(windows[i]) - len(conts[i])
            for node, target in zip(nodes_at[i][start:], conts[i], strict=True):
                if (node, target) not in slot_of:
                    slot_of[(node, target)] = len(slot_of)
                    request, position = first[node]
                    rows = new_rows.setdefault(request, [])
                    if position not in rows:
                        rows.append(position)
        targets_of: dict[int, list[int]] = {}
        for node, target in slot_of:
            targets_of.setdefault(node, []).append(target)
        return cls(windows, conts, nodes_at, slot_of, new_rows, targets_of, len(slot_of), len(first))

    def batch(self, members: list[int]) -> Batch:
        """One batch: inputs and new rows of the requests that compute, answer slots of every member."""
        computing = [i for i in members if i in self.new_rows]
        ids, rows, positions, row_nodes, picks = None, [], [], [], []
        if computing:
            ids = torch.zeros(len(computing), max(len(self.windows[i]) for i in computing), dtype=torch.long)
            for row, i in enumerate(computing):
                ids[row, : len(self.windows[i])] = torch.tensor(self.windows[i])
                for position in sorted(self.new_rows[i]):
                    node = self.nodes_at[i][position]
                    picks += [(len(rows), t, self.slot_of[(node, t)]) for t in self.targets_of[node]]
                    rows.append(row)
                    positions.append(position)
                    row_nodes.append(node)
        pick_rows, pick_tokens, pick_slots = torch.tensor(picks, dtype=torch.long).reshape(-1, 3).unbind(dim=1)
        return Batch(
            members,
            ids,
            torch.tensor(rows, dtype=torch.long),
            torch.tensor(positions, dtype=torch.long),
            torch.tensor(row_nodes, dtype=torch.long),
            pick_rows,
            pick_tokens,
            pick_slots,
            *self._answers(members),
        )

    def _answers(self, members: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(requests, longest continuation) value slots, prefix nodes and targets, padded."""
        width = max(len(self.conts[i]) for i in members)
        slots = torch.full((len(members), width), self.zero_slot, dtype=torch.long)
        nodes = torch.full((len(members), width), self.pad_node, dtype=torch.long)
        targets = torch.full((len(members), width), -1, dtype=torch.long)
        for row, i in enumerate(members):
            conts = self.conts[i]
            n = len(conts)
            scored = self.nodes_at[i][len(self.windows[i]) - n :]
            slots[row, :n] = torch.tensor([self.slot_of[(node, t)] for node, t in zip(scored, conts, strict=True)])
            nodes[row, :n] = torch.tensor(scored)
            targets[row, :n] = torch.tensor(conts)
        return slots, nodes, targets


def plan(requests: Sequence[Request], max_length: int, batch_size: int) -> PrefixPlan:
    """Number the distinct prefixes (a trie over the input windows) and lay out every batch's work."""
    windows, conts, order = _windows(requests, max_length)
    layout = _Layout.of(windows, conts, order)
    batches = [layout.batch(order[begin : begin + batch_size]) for begin in range(0, len(order), batch_size)]
    return PrefixPlan(batches, layout.zero_slot + 1, layout.pad_node + 1)


def score(
    prefix_plan: PrefixPlan,
    *,
    hidden: Callable[[torch.Tensor], torch.Tensor],
    head: Callable[[torch.Tensor], torch.Tensor],
    softmax_dtype: torch.dtype | None = None,
) -> Iterator[tuple[list[int], list[tuple[float, bool]]]]:
    """Yield ``(request indices, answers)`` batch by batch.

    ``hidden(ids)`` maps right-padded ``(batch, width)`` ids to ``(batch, width, hidden)`` last hidden states;
    ``head(rows)`` maps ``(rows, hidden)`` to ``(rows, vocab)`` logits.
    """
    values: torch.Tensor | None = None
    best = torch.full((prefix_plan.nodes,), -1, dtype=torch.long)
    for batch in prefix_plan.batches:
        if batch.ids is not None:
            states = hidden(batch.ids)
            device = states.device
            logprobs = torch.log_softmax(
                head(states[batch.rows.to(device), batch.positions.to(device)]), dim=-1, dtype=softmax_dtype
            )
            if values is None:
                values = torch.zeros(prefix_plan.slots, dtype=logprobs.dtype)
            values[batch.pick_slots] = logprobs[batch.pick_rows.to(device), batch.pick_tokens.to(device)].cpu()
            best[batch.row_nodes] = logprobs.argmax(dim=-1).cpu()
            del states, logprobs
        assert values is not None, "the first batch always computes"
        sums = values[batch.answer_slots].sum(dim=1).tolist()
        greedy = ((best[batch.answer_nodes] == batch.answer_targets) | (batch.answer_targets < 0)).all(dim=1)
        yield batch.requests, list(zip(sums, greedy.tolist(), strict=True))
