"""Causal log-likelihoods with every distinct prefix sent through the LM head once.

A causal model's distribution at a position depends only on the tokens up to it, so requests that share a
prefix (BLiMP's minimal pairs share everything before the word they differ in, and every BabyLM request
starts with ``<s> <image>``) share that position's log-probabilities. lm-eval's ``HFLM`` computes the
logits, a full-vocabulary log-softmax and an argmax at every position of every request; here each distinct
prefix gets one row, computed in the batch where it first occurs. On BLiMP fast (16k-entry tokenizer, batch
32) that is 197k rows where HFLM computes 371k padded positions (344k of them scored), which matters where
the LM head over the vocabulary costs more than the transformer (babyllava's tiny preset).

The transformer runs once per distinct *stem* in a batch: a request's window up to its last context token.
Requests that share a context (Entity Tracking's five options of one story) send it through the model once,
and only their continuations after it, attending to its keys and values (the model's key/value cache, one
copy per request). A batch is split at its contexts only when that saves a quarter of its padded input
tokens (BLiMP's two-token ``<s> <image>`` does not pay for the second call); otherwise each window runs
whole. Requests are ordered by stem (longest first), so the requests sharing one mostly land in one batch,
then longest first as lm-eval orders them, in batches of ``batch_size``; windows are truncated from the left
as lm-eval truncates, and answered as ``(sum of continuation log-probs, continuation is greedy)``. ``plan``
does all the bookkeeping once; a sweep reuses it for every merge point.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence

Request = tuple[Sequence[int], Sequence[int]]  # (context tokens, continuation tokens)
SPLIT_GAIN = 0.75  # split a batch at its contexts only when that leaves at most this share of padded tokens


@dataclass
class Stems:
    """A batch's inputs split after each window's last context token: every distinct stem once, then each
    computing request's tail, which continues its stem at position ``lengths[of[row]]``."""

    ids: torch.Tensor  # (distinct stems, width) right-padded
    lengths: torch.Tensor  # (distinct stems,)
    of: torch.Tensor  # (computing requests,) each request's stem
    tails: torch.Tensor  # (computing requests, tail width) right-padded; tail width 0 when no request has one

    def tail_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention mask over (stem width + tail width) keys, hiding stem padding, and the tails' positions."""
        lengths = self.lengths[self.of]
        stem_mask = torch.arange(self.ids.shape[1]) < lengths[:, None]
        mask = torch.cat([stem_mask, torch.ones(self.tails.shape, dtype=torch.bool)], dim=1)
        return mask.long(), lengths[:, None] + torch.arange(self.tails.shape[1])


@dataclass
class Batch:
    """One batch (one or two model calls): the requests it answers and where its new rows' results go."""

    requests: list[int]  # request indices answered after this batch
    stems: Stems | None  # inputs of the requests that compute; None when nothing is new
    rows: torch.Tensor  # new rows: computing request ...
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
    """Each request's input window and continuation, and the processing order (by stem, then longest first)."""
    windows, conts, keys = [], [], []
    for context, continuation in requests:
        if not context or not continuation or len(continuation) > max_length:
            raise ValueError(
                f"a request needs a non-empty context and 1..{max_length} continuation tokens, "
                f"got {len(context)} and {len(continuation)}"
            )
        tokens = list(context) + list(continuation)
        window = tokens[-(max_length + 1) : -1]
        stem = tuple(window[: _stem_length(window, continuation)])
        keys.append((-len(stem), stem, -len(tokens), tuple(tokens)))
        windows.append(window)
        conts.append(list(continuation))
    return windows, conts, sorted(range(len(requests)), key=keys.__getitem__)


def _stem_length(window: Sequence[int], continuation: Sequence[int]) -> int:
    """Window tokens up to and including the last context token (whose state predicts the continuation)."""
    return len(window) - len(continuation) + 1


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
        stems, rows, positions, row_nodes, picks = None, [], [], [], []
        if computing:
            stems = self._stems(computing)
            for row, i in enumerate(computing):
                for position in sorted(self.new_rows[i]):
                    node = self.nodes_at[i][position]
                    picks += [(len(rows), t, self.slot_of[(node, t)]) for t in self.targets_of[node]]
                    rows.append(row)
                    positions.append(position)
                    row_nodes.append(node)
        pick_rows, pick_tokens, pick_slots = torch.tensor(picks, dtype=torch.long).reshape(-1, 3).unbind(dim=1)
        return Batch(
            members,
            stems,
            torch.tensor(rows, dtype=torch.long),
            torch.tensor(positions, dtype=torch.long),
            torch.tensor(row_nodes, dtype=torch.long),
            pick_rows,
            pick_tokens,
            pick_slots,
            *self._answers(members),
        )

    def _stems(self, computing: list[int]) -> Stems:
        """Split at the contexts when that leaves at most ``SPLIT_GAIN`` of the padded input tokens; otherwise
        each window is its own stem."""
        windows = [self.windows[i] for i in computing]
        cut = [_stem_length(w, self.conts[i]) for i, w in zip(computing, windows, strict=True)]
        distinct = {tuple(w[:n]) for w, n in zip(windows, cut, strict=True)}
        tails = [len(w) - n for w, n in zip(windows, cut, strict=True)]
        split = len(distinct) * max(map(len, distinct)) + len(windows) * max(tails)  # padded tokens, both calls
        if split > SPLIT_GAIN * len(windows) * max(map(len, windows)):
            cut = [len(w) for w in windows]
        index: dict[tuple[int, ...], int] = {}
        of = [index.setdefault(tuple(w[:n]), len(index)) for w, n in zip(windows, cut, strict=True)]
        return Stems(
            _right_padded(list(index)),
            torch.tensor([len(stem) for stem in index], dtype=torch.long),
            torch.tensor(of, dtype=torch.long),
            _right_padded([w[n:] for w, n in zip(windows, cut, strict=True)]),
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


def _right_padded(rows: list[Sequence[int]]) -> torch.Tensor:
    return pad_sequence([torch.tensor(row, dtype=torch.long) for row in rows], batch_first=True)


def plan(requests: Sequence[Request], max_length: int, batch_size: int) -> PrefixPlan:
    """Number the distinct prefixes (a trie over the input windows) and lay out every batch's work."""
    windows, conts, order = _windows(requests, max_length)
    layout = _Layout.of(windows, conts, order)
    batches = [layout.batch(order[begin : begin + batch_size]) for begin in range(0, len(order), batch_size)]
    return PrefixPlan(batches, layout.zero_slot + 1, layout.pad_node + 1)


def score(
    prefix_plan: PrefixPlan,
    *,
    hidden: Callable[[Stems], tuple[torch.Tensor, torch.Tensor | None]],
    head: Callable[[torch.Tensor], torch.Tensor],
    softmax_dtype: torch.dtype | None = None,
) -> Iterator[tuple[list[int], list[tuple[float, bool]]]]:
    """Yield ``(request indices, answers)`` batch by batch.

    ``hidden(stems)`` returns the last hidden states of the stems, ``(stems, stem width, hidden)``, and of the
    tails run after them, ``(computing requests, tail width, hidden)`` (None when the tail width is 0);
    ``head(rows)`` maps ``(rows, hidden)`` to ``(rows, vocab)`` logits. Log-probabilities and their sums are
    float32 at least (``softmax_dtype`` may ask for float64), whatever the logits' dtype: bf16 sums tie often.
    """
    dtype = softmax_dtype or torch.float32
    values: torch.Tensor | None = None
    best = torch.full((prefix_plan.nodes,), -1, dtype=torch.long)
    for batch in prefix_plan.batches:
        if batch.stems is not None:
            states = _row_states(batch, *hidden(batch.stems))
            device = states.device
            logprobs = torch.log_softmax(head(states), dim=-1, dtype=torch.promote_types(dtype, torch.float32))
            if values is None:
                values = torch.zeros(prefix_plan.slots, dtype=logprobs.dtype)
            values[batch.pick_slots] = logprobs[batch.pick_rows.to(device), batch.pick_tokens.to(device)].cpu()
            best[batch.row_nodes] = logprobs.argmax(dim=-1).cpu()
            del states, logprobs
        assert values is not None, "the first batch always computes"
        sums = values[batch.answer_slots].sum(dim=1).tolist()
        greedy = ((best[batch.answer_nodes] == batch.answer_targets) | (batch.answer_targets < 0)).all(dim=1)
        yield batch.requests, list(zip(sums, greedy.tolist(), strict=True))


def _row_states(batch: Batch, stem_states: torch.Tensor, tail_states: torch.Tensor | None) -> torch.Tensor:
    """The hidden state of each new row (computing request, position): from its stem or from its tail."""
    assert batch.stems is not None
    device = stem_states.device
    stem = batch.stems.of[batch.rows]
    length = batch.stems.lengths[stem]
    in_stem = batch.positions < length
    states = stem_states[stem.to(device), batch.positions.clamp(max=stem_states.shape[1] - 1).to(device)]
    if tail_states is None:
        assert bool(in_stem.all()), "rows past a stem need tail states"
        return states
    tail = tail_states[batch.rows.to(device), (batch.positions - length).clamp(min=0).to(device)]
    return torch.where(in_stem.to(device)[:, None], states, tail)
