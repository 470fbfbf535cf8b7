"""`babymerge tokenizer` on real BabyLM text: the ratio it prints, the saved folder, offsets and image tokens."""

from __future__ import annotations

import contextlib
import io
import re

import pytest
from transformers import AutoTokenizer

from babymerge.cli import main

FILES = ("childes_dev.train", "simple_wiki_dev.train")


@pytest.fixture(scope="module")
def babylm_slice(shared_data, tmp_path_factory):
    """Two small BabyLM files, linked (not copied) into a folder of their own as training files."""
    folder = tmp_path_factory.mktemp("babylm")
    for name in FILES:
        (folder / name.replace("_dev", "")).symlink_to(shared_data / "babylm_text" / "train_600k" / name)
    return folder


@pytest.fixture(scope="module")
def trained(babylm_slice, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok") / "tokenizer"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(
            ["tokenizer", str(babylm_slice), "--out", str(out), "--vocab-size", "1500", "--num-image-tokens", "2"]
        )
    assert code == 0
    return out, stdout.getvalue()


def independent_ratio(tokenizer, folder) -> float:
    """Subwords per white-space word, counted line by line and word by word (never across lines)."""
    words = tokens = 0
    for name in FILES:
        for line in (folder / name.replace("_dev", "")).read_text(encoding="utf-8").splitlines():
            words += len(line.split())
            tokens += len(tokenizer(line, add_special_tokens=False)["input_ids"])
    return tokens / words


def test_ratio_is_printed_and_sane(trained, babylm_slice):
    out, printed = trained
    match = re.search(r"([\d.]+) subwords per word on all text \(paper: 1.36\)", printed)
    assert match, printed
    ratio = float(match.group(1))
    assert 1.0 < ratio < 3.0
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) == 1500
    assert ratio == pytest.approx(independent_ratio(tokenizer, babylm_slice), rel=0.03)


def test_saved_tokenizer_layout_and_offsets(trained):
    out, _ = trained
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == ["<pad>", "<s>", "</s>", "<image>"]
    text = "The little dog was playing in the garden."
    enc = tokenizer(text, return_offsets_mapping=True)
    assert enc["input_ids"][:3] == [1, 3, 3] and 2 not in enc["input_ids"]
    offsets = enc["offset_mapping"]
    assert offsets[:3] == [(0, 0)] * 3
    words = [text[start:end] for start, end in offsets[3:]]
    assert "".join(words).replace(" ", "") == text.replace(" ", "")
    assert all(end > start for start, end in offsets[3:])
    assert tokenizer.decode(enc["input_ids"], skip_special_tokens=True) == text


def test_existing_output_is_refused(babylm_slice, trained, capsys):
    out, _ = trained
    code = main(["tokenizer", str(babylm_slice), "--out", str(out), "--vocab-size", "1500"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"babymerge tokenizer: error: {out}:")


def test_a_sentence_opens_with_the_tokens_of_its_words_mid_text(tmp_path):
    """BLiMP scores "Who has ..." from its first word: that word must be the token it is mid-text (" Who"), not
    the rare no-space pieces a plain byte-level BPE gives a string's first word."""
    from babymerge.training.tokenizer import train_tokenizer

    corpus = tmp_path / "generated.train"
    corpus.write_text(" ".join(["The dog ran. Who has the cat seen? The cat sat."] * 200), encoding="utf-8")
    tokenizer = train_tokenizer([corpus], 400, progress=False)
    for sentence in ("The dog ran.", "Who has the cat seen?"):
        alone = tokenizer(sentence, add_special_tokens=False)["input_ids"]
        mid_text = tokenizer("So. " + sentence, add_special_tokens=False)["input_ids"]
        assert mid_text[-len(alone) :] == alone, tokenizer.convert_ids_to_tokens(alone)
        assert tokenizer.decode(tokenizer(sentence)["input_ids"], skip_special_tokens=True) == sentence


def test_missing_text_is_named_as_missing(tmp_path):
    from babymerge.errors import BabymergeError
    from babymerge.training.tokenizer import text_files

    with pytest.raises(BabymergeError, match=r"corpNOPE: no such file or folder"):
        text_files(tmp_path / "corpNOPE")
    with pytest.raises(BabymergeError, match=r"no .train files found"):
        text_files(tmp_path)
