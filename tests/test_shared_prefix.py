"""The babyllava LM's shared-prefix scoring answers what lm-eval's HFLM scoring and one forward pass per
request answer.

HFLM runs with ``logits_cache=False``: lm-eval 0.4.13's one-token-continuation cache groups requests by
``context + continuation[:-1]`` tokens and, for a group member with a shorter continuation (the same tokens
split later), gathers the representative's leading positions instead of its trailing ones.
"""

from __future__ import annotations

import pytest
import torch
from lm_eval.models.huggingface import HFLM

from babymerge.evaluation import shared_prefix
from babymerge.evaluation.lm import BabyLlavaLM
from babymerge.features.store import FeatureFile
from babymerge.training.init import init_model


def greedy_tokens(model, context: list[int], n: int, features: torch.Tensor | None) -> list[int]:
    """The model's own greedy continuation of ``context`` (so ``is_greedy`` is true for it)."""
    ids = list(context)
    for _ in range(n):
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids]), image_features=features).logits
        ids.append(int(logits[0, -1].argmax()))
    return ids[len(context) :]


def one_pass(lm: BabyLlavaLM, context: list[int], continuation: list[int]) -> float:
    """Sum of the continuation's log-probs from a single unpadded forward pass."""
    window = (context + continuation)[-lm.max_length - 1 : -1]  # lm-eval truncates from the left
    ids, features = lm._model_inputs(torch.tensor([window]))
    with torch.no_grad():
        logprobs = torch.log_softmax(lm.model(input_ids=ids, image_features=features).logits[0], dim=-1)
    scored = logprobs[-len(continuation) :]
    return float(scored.gather(1, torch.tensor(continuation)[:, None]).sum())


def token_requests(lm: BabyLlavaLM, model, tokenizer) -> list[tuple]:
    """Shared prefixes, duplicates, a context/continuation split, images (as virtual ids), greedy continuations."""
    bos, image = tokenizer.bos_token_id, lm.image_token_index
    words = [tokenizer(s, add_special_tokens=False)["input_ids"] for s in ("the cat sees the dog", "a dog runs")]
    prefix = [bos, image]
    requests = []
    for row in (None, 0, 1):
        start = prefix if row is None else [bos, lm.image_base + row]
        features = None if row is None else lm.features.features[row : row + 1]
        for tokens in words:
            requests += [(start, tokens), (start, tokens[:-1] + [7]), (start + tokens[:2], tokens[2:] or [9])]
        requests.append((start, greedy_tokens(model, prefix, 4, features)))
        requests.append((start + words[0], greedy_tokens(model, prefix + words[0], 2, features)))
    requests += requests[:3]  # exact duplicates
    return [((f"r{i}",), list(context), list(continuation)) for i, (context, continuation) in enumerate(requests)]


@pytest.fixture(scope="module")
def setup(tiny_tokenizer):
    model = init_model(tiny_tokenizer, "tiny", seed=5).eval()
    features = FeatureFile(
        ["a.png", "b.png"], 4 * torch.randn(2, 1, 32, generator=torch.Generator().manual_seed(1)), torch.zeros(1, 32)
    )
    return model, features


@pytest.mark.parametrize("split", ["always", "never"])
@pytest.mark.parametrize(("batch_size", "max_length"), [(1, 512), (4, 512), (64, 512), (4, 10)])
def test_answers_equal_hflm(setup, tiny_tokenizer, batch_size, max_length, split, monkeypatch):
    """Batches split at their contexts (stems, then tails on the stems' cache) or run whole answer alike."""
    monkeypatch.setattr(shared_prefix, "SPLIT_GAIN", 10.0 if split == "always" else 0.0)
    model, features = setup
    lm = BabyLlavaLM(
        pretrained=model, tokenizer=tiny_tokenizer, features=features, batch_size=batch_size, max_length=max_length
    )
    requests = token_requests(lm, model, tiny_tokenizer)
    fast = lm._loglikelihood_tokens(requests, disable_tqdm=True)
    lm.logits_cache = False
    reference = HFLM._loglikelihood_tokens(lm, requests, disable_tqdm=True)
    single = [one_pass(lm, context, continuation) for _, context, continuation in requests]
    assert [v for v, _ in fast] == pytest.approx(single, abs=1e-5, rel=0)
    assert [g for _, g in fast] == [g for _, g in reference]
    assert any(g for _, g in reference), "the greedy continuations must be recognised as greedy"
    assert [v for v, _ in fast] == pytest.approx([v for v, _ in reference], abs=1e-5, rel=0)


def test_cached_plan_reads_the_current_weights(setup, tiny_tokenizer):
    """A sweep scores the same requests with new weights at every point: nothing from the last call is reused."""
    model, features = setup
    lm = BabyLlavaLM(pretrained=model, tokenizer=tiny_tokenizer, features=features, batch_size=4)
    requests = token_requests(lm, model, tiny_tokenizer)
    before = lm._loglikelihood_tokens(requests, disable_tqdm=True)
    original = {k: v.clone() for k, v in model.state_dict().items()}
    try:
        model.load_state_dict(init_model(tiny_tokenizer, "tiny", seed=6).state_dict())
        after = lm._loglikelihood_tokens(requests, disable_tqdm=True)
        lm.logits_cache = False
        reference = HFLM._loglikelihood_tokens(lm, requests, disable_tqdm=True)
    finally:
        model.load_state_dict(original)
    assert len(lm._plans) == 1
    assert [v for v, _ in after] == pytest.approx([v for v, _ in reference], abs=1e-5, rel=0)
    assert min(abs(a[0] - b[0]) for a, b in zip(before, after, strict=True)) > 1e-3


def test_a_continuation_longer_than_the_window_is_refused(setup, tiny_tokenizer):
    model, features = setup
    lm = BabyLlavaLM(pretrained=model, tokenizer=tiny_tokenizer, features=features, batch_size=4, max_length=3)
    with pytest.raises(ValueError, match=r"1\.\.3 continuation tokens, got 2 and 4"):
        lm._loglikelihood_tokens([(("r",), [1, 3], [10, 11, 12, 13])], disable_tqdm=True)


def test_a_shared_context_runs_through_the_model_once(setup, tiny_tokenizer):
    """Entity Tracking's shape: five options after one long story. The story's tokens go through the model
    once, each option's tokens after it once, and the answers still equal one forward pass per request."""
    model, features = setup
    lm = BabyLlavaLM(pretrained=model, tokenizer=tiny_tokenizer, features=features, batch_size=8)
    story = [tiny_tokenizer.bos_token_id, lm.image_base + 1] + [5 + i % 40 for i in range(60)]
    options = [[10 + k, 20 + k, 30 + k] for k in range(5)]
    requests = [((f"o{k}",), story, option) for k, option in enumerate(options)]
    seen = []
    hook = model.get_input_embeddings().register_forward_hook(lambda _m, args, _out: seen.append(args[0].numel()))
    try:
        answers = lm._loglikelihood_tokens(requests, disable_tqdm=True)
    finally:
        hook.remove()
    assert sum(seen) == len(story) + len(options) * 2  # the story once; each option but its last token once
    single = [one_pass(lm, story, option) for option in options]
    assert [v for v, _ in answers] == pytest.approx(single, abs=1e-5, rel=0)


def test_a_short_shared_context_runs_each_window_whole(setup, tiny_tokenizer):
    """BLiMP's shape: whole sentences after ``<s> <image>``. Splitting off two tokens would cost a second call
    for little, so each batch is one call over the whole windows."""
    model, features = setup
    lm = BabyLlavaLM(pretrained=model, tokenizer=tiny_tokenizer, features=features, batch_size=8)
    start = [tiny_tokenizer.bos_token_id, lm.image_token_index]
    requests = [((f"s{k}",), start, [5 + k, 6, 7, 8 + k, 9, 10, 11, 12, 13, 14]) for k in range(8)]
    calls = []
    hook = model.get_input_embeddings().register_forward_hook(lambda _m, args, _out: calls.append(tuple(args[0].shape)))
    try:
        lm._loglikelihood_tokens(requests, disable_tqdm=True)
    finally:
        hook.remove()
    assert calls == [(8, 11)]
