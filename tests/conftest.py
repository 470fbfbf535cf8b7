"""Shared fixtures: the offline environment and the ``babymerge`` CLI in a subprocess, tiny tokenizers and babyllava
checkpoints built in the test, the demo's world and the shared data. Plain helpers live in ``helpers.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import OFFLINE, REPO, babylm_layout, offline_env, run_cli, synthetic_corpus

for _name, _value in OFFLINE.items():
    os.environ.setdefault(_name, _value)

SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def offline() -> dict[str, str]:
    """The environment for a subprocess: this one with the Hub and datasets offline."""
    return offline_env()


@pytest.fixture
def cli():
    """``cli(*args, **subprocess_run_kwargs)``: ``babymerge ARGS`` in a subprocess, offline, output captured."""
    return run_cli


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (it is read in place, never committed)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def layout(tmp_path_factory, shared_data) -> Path:
    """A BabyLM ``evaluation_data`` folder of symlinks into the shared data."""
    return babylm_layout(tmp_path_factory.mktemp("evaluation_data"), shared_data)


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    from babymerge.training.tokenizer import text_files, train_tokenizer

    corpus = synthetic_corpus(tmp_path_factory.mktemp("corpus"))
    return train_tokenizer(text_files(corpus), vocab_size=300, min_frequency=1)


@pytest.fixture(scope="session")
def make_checkpoint(tmp_path_factory, tiny_tokenizer):
    """``make_checkpoint(seed, **overrides) -> Path``: a tiny babyllava folder (weights, code, tokenizer)."""
    from babymerge.training.init import init_model, save_checkpoint

    def make(seed: int = 0, **overrides) -> Path:
        out = tmp_path_factory.mktemp(f"ckpt{seed}") / "model"
        save_checkpoint(init_model(tiny_tokenizer, "tiny", seed=seed, **overrides), tiny_tokenizer, out)
        return out

    return make


@pytest.fixture(scope="session")
def models(make_checkpoint) -> dict[str, Path]:
    """Tiny parents for merges and sweeps: the shared start (seed 0), a text-only and a multimodal model."""
    from babymerge.sweep.merge import BASE, MULTIMODAL, TEXT

    return {BASE: make_checkpoint(0), TEXT: make_checkpoint(1), MULTIMODAL: make_checkpoint(2)}


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> Path:
    """The demo's synthetic world at its quick size (corpus, images, minimal pairs, matching items)."""
    from babymerge.demo.world import QUICK, generate_world

    return generate_world(tmp_path_factory.mktemp("world") / "world", QUICK)
