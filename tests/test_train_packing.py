"""Packed multimodal rows: several caption examples per row learn exactly what they learn one per row."""

from __future__ import annotations

import pytest
import torch

from babymerge.errors import BabymergeError
from babymerge.modeling import BabyLlavaForConditionalGeneration, make_config
from babymerge.training.data import Collator, TrainingRows, pack_rows

IMAGE, PAD, LENGTH, DIM = 3, 0, 24, 32


def example(length: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``<s> <image>*n words </s>``: ``length`` tokens."""
    words = torch.randint(5, 50, (length - 2 - n,), generator=generator)
    return torch.cat([torch.tensor([1] + [IMAGE] * n), words, torch.tensor([2])])


def rows_and_model(n: int):
    """A tiny model, text blocks and captions (``n`` image tokens each) whose packing holds a row with several
    images, one filled exactly to its end and one with padding."""
    config = make_config(
        "tiny", vocab_size=50, image_token_index=IMAGE, bos_token_id=1, eos_token_id=2, pad_token_id=PAD,
        num_image_tokens=n, image_pooling="grid" if n > 1 else "mean", image_grid_size=2 if n > 1 else None,
    )  # fmt: skip
    torch.manual_seed(0)
    model = BabyLlavaForConditionalGeneration(config).eval()
    generator = torch.Generator().manual_seed(n)
    blocks = torch.cat(
        [torch.tensor([[1] + [IMAGE] * n] * 2), torch.randint(5, 50, (2, LENGTH - 1 - n), generator=generator)], 1
    )
    captions = [example(k, n, generator) for k in (9, 7, 8, 12, 12, 10)]
    features = torch.randn(4, n, DIM, generator=generator)
    images = torch.tensor([0, 1, 2, 3, 0, 1])
    words = torch.tensor([5, 4, 5, 6, 7, 3])
    groups = [[0, 1, 2], [3, 4], [5]]  # 24 tokens (fills the row), 24, 10 (+ padding)
    packed = TrainingRows(blocks, torch.tensor([20, 21]), captions, words, images, groups)
    single = TrainingRows(blocks, torch.tensor([20, 21]), captions, words, images)
    collate = {
        packed: Collator(PAD, IMAGE, features, torch.zeros(n, DIM), packed=True),
        single: Collator(PAD, IMAGE, features, torch.zeros(n, DIM)),
    }
    return model, {name: collate[rows]([rows[i] for i in range(len(rows))]) for name, rows in
                   (("packed", packed), ("single", single))}  # fmt: skip


def spans(batch: dict) -> list[tuple[int, int, int]]:
    """(row, start, end) of every example in a batch, in order; a row without ``position_ids`` holds one."""
    width = batch["input_ids"].shape[1]
    positions = batch.get("position_ids", torch.arange(width).expand(len(batch["input_ids"]), -1))
    out = []
    for row, row_positions in enumerate(positions):
        starts = torch.nonzero(row_positions == 0).flatten().tolist() + [width]
        for start, end in zip(starts, starts[1:], strict=False):
            if batch["input_ids"][row, start] == 1:  # not the padding
                out.append((row, start, min(end, int(batch["num_tokens"][row]))))
    return out


def per_example(batch: dict, logits: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each example's logits and its summed loss, the targets read as the model's loss reads them (shifted by
    one over the whole row, so a label on the next example's first token would count here)."""
    shifted = torch.nn.functional.pad(batch["labels"][:, 1:], (0, 1), value=-100)
    out = []
    for row, start, end in spans(batch):
        loss = torch.nn.functional.cross_entropy(
            logits[row, start:end], shifted[row, start:end], ignore_index=-100, reduction="sum"
        )
        out.append((logits[row, start:end], loss))
    return out


@pytest.mark.parametrize(
    ("n", "attention"),
    [(1, "sdpa"), (4, "sdpa"), (1, "eager"), (4, "flex_attention")],  # flex: the GPU's kernel, forward on a CPU
)
def test_packed_batch_gives_each_example_its_loss_and_logits(n, attention):
    model, batches = rows_and_model(n)
    model.set_attn_implementation(attention)
    packed, single = batches["packed"], batches["single"]
    assert packed["input_ids"].shape == (5, LENGTH) and single["input_ids"].shape == (8, LENGTH)
    assert "attention_mask" not in packed and packed["image_features"].shape == (8, n, DIM)
    assert packed["num_tokens"].tolist() == [LENGTH, LENGTH, 24, 24, 10]
    with torch.no_grad():
        out = {name: model(**{k: v for k, v in b.items() if k not in ("num_words", "num_tokens")}) for name, b in
               batches.items()}  # fmt: skip
    examples = {name: per_example(batches[name], out[name].logits) for name in batches}
    assert len(examples["packed"]) == len(examples["single"]) == 8
    for (logits_p, loss_p), (logits_s, loss_s) in zip(examples["packed"], examples["single"], strict=True):
        assert logits_p.shape == logits_s.shape
        assert torch.allclose(logits_p, logits_s, atol=1e-5, rtol=0)
        assert torch.allclose(loss_p, loss_s, atol=1e-5, rtol=0)
    assert torch.allclose(out["packed"].loss, out["single"].loss, atol=1e-5, rtol=0)  # the same targets


def test_no_example_attends_across_its_boundary():
    model, batches = rows_and_model(1)
    batch = {k: v for k, v in batches["packed"].items() if k not in ("num_words", "num_tokens")}
    with torch.no_grad():
        before = model(**batch).logits
        changed = {**batch, "input_ids": batch["input_ids"].clone(), "image_features": batch["image_features"].clone()}
        changed["input_ids"][2, 2:8] = 7  # the first caption of the row with three (positions 0..8)
        changed["image_features"][2] += 5.0  # its image (images: 2 text blocks, then this row's three)
        after = model(**changed).logits
    assert not torch.allclose(before[2, :9], after[2, :9])
    assert torch.equal(before[2, 9:], after[2, 9:]) and torch.equal(before[[0, 1, 3, 4]], after[[0, 1, 3, 4]])


def test_packing_keeps_every_example_and_word_whole():
    lengths = torch.randint(4, 30, (500,), generator=torch.Generator().manual_seed(0)).tolist()
    rows = pack_rows(lengths, 256, seed=3)
    assert sorted(i for row in rows for i in row) == list(range(500))
    assert all(sum(lengths[i] for i in row) <= 256 for row in rows)
    assert rows == pack_rows(lengths, 256, seed=3) and rows != pack_rows(lengths, 256, seed=4)
    assert sum(lengths) / (256 * len(rows)) > 0.9  # a row wastes less than one example's length
    with pytest.raises(BabymergeError, match="example of 65 tokens does not fit in a row of max_length 64"):
        pack_rows([10, 65], 64, seed=0)

    _, batches = rows_and_model(1)
    assert batches["packed"]["num_words"].sum() == batches["single"]["num_words"].sum() == 71
    assert batches["packed"]["num_words"].tolist() == [20, 21, 14, 13, 3]


def test_labels_stop_at_every_example_boundary():
    _, batches = rows_and_model(1)
    packed = batches["packed"]
    starts = packed["position_ids"] == 0
    assert packed["labels"][starts].eq(-100).all()
    assert packed["position_ids"][2].tolist() == [*range(9), *range(7), *range(8)]
    assert packed["position_ids"][4].tolist() == [*range(10), *range(14)]  # the padding restarts too
    assert packed["labels"][4, 10:].eq(-100).all() and packed["input_ids"][4, 10:].eq(PAD).all()
    spans = [24, 24, 9, 7, 8, 12, 12, 10, 14]  # flash attention's view: every example and padding, rows end to end
    assert packed["cu_seq_lens_q"].tolist() == [0, *torch.tensor(spans).cumsum(0).tolist()]
    assert packed["cu_seq_lens_q"].dtype == torch.int32 and packed["max_length_q"] == 24


def test_image_count_must_match_the_rows_image_tokens():
    model, batches = rows_and_model(1)
    batch = {k: v for k, v in batches["packed"].items() if k not in ("num_words", "num_tokens")}
    with pytest.raises(ValueError, match=r"image_features has 7 images but input_ids holds 8 \(rows 5"):
        model(**{**batch, "image_features": batch["image_features"][:7]})


@pytest.mark.parametrize("mode", ["multimodal", "text"])
def test_a_multimodal_run_from_before_packing_resumes_only_unpacked(tmp_path, mode):
    from babymerge.training import TrainConfig
    from babymerge.training.run import CONFIG_FILE, changed_settings

    paths = {"captions": tmp_path / "c.txt", "features": tmp_path / "f.safetensors"} if mode == "multimodal" else {}
    now = TrainConfig(mode=mode, init=tmp_path, text=tmp_path, out=tmp_path, **paths)
    old = "".join(line for line in now.to_yaml().splitlines(True) if not line.startswith("pack_captions"))
    (tmp_path / CONFIG_FILE).write_text(old)
    expected = {"pack_captions": [False, True]} if mode == "multimodal" else {}
    assert changed_settings(tmp_path, now) == expected
    assert changed_settings(tmp_path, now.model_copy(update={"pack_captions": False})) == {}
