"""formats.captions: the one reader and writer of caption files (CSV ``image,caption`` and Flickr8k TSV)."""

from __future__ import annotations

import pytest

from babymerge.errors import BabymergeError
from babymerge.formats.captions import caption_images, read_captions, write_captions

ROWS = [("a.jpg", "A dog runs ."), ("a.jpg", 'A dog, "brown", runs .'), ("b.jpg", "Two cats .")]


def test_written_captions_read_back(tmp_path):
    path = write_captions(tmp_path / "sub" / "captions.txt", ROWS)
    assert path.read_text().splitlines()[0] == "image,caption"
    assert read_captions(path) == ROWS
    assert caption_images(read_captions(path)) == ["a.jpg", "b.jpg"]


def test_flickr8k_csv_reads_in_place(shared_data):
    rows = read_captions(shared_data / "flickr8k_1k" / "captions.txt")
    assert len(rows) == 5000 and len(caption_images(rows)) == 1000 and rows[0][0].endswith(".jpg")


def test_tsv_token_file_reads_like_the_csv(tmp_path):
    tsv = tmp_path / "Flickr8k.token.txt"
    tsv.write_text("".join(f"{image}#{k}\t{caption}\n" for k, (image, caption) in enumerate(ROWS)) + "\n")
    assert read_captions(tsv) == ROWS


@pytest.mark.parametrize(
    "text",
    [
        "caption,image\nA dog runs .,a.jpg\n",  # columns in any order
        "Image_ID , Caption\na.jpg,A dog runs .\n",  # image_id, case and blanks in names
        "image,caption\na.jpg,A dog runs .\n\n",  # blank lines skipped
    ],
)
def test_csv_headers_accepted(tmp_path, text):
    path = tmp_path / "c.csv"
    path.write_text(text)
    assert read_captions(path) == [("a.jpg", "A dog runs .")]


def test_unquoted_commas_stay_in_the_last_column(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("image,caption\na.jpg,A dog, brown, runs .\n")
    assert read_captions(path) == [("a.jpg", "A dog, brown, runs .")]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("image,caption\na.jpg,A dog .\nb.jpg\n", ":3:"),  # short row
        ("image,caption\na.jpg,A dog .\nb.jpg,  \n", ":3:"),  # empty caption
        ("image,caption\n,A dog .\n", ":2:"),  # empty image id
        ("a.jpg#0\tA dog .\nno tab here\n", ":2:"),  # TSV line without a tab
        ("a.jpg,A dog .\n", ":1:"),  # CSV without a header
    ],
)
def test_bad_row_names_file_and_line(tmp_path, text, where):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(BabymergeError) as info:
        read_captions(path)
    message = str(info.value)
    assert message.startswith(f"{path}{where}") and "\n" not in message


@pytest.mark.parametrize("content", [b"", b"image,caption\n", b"\xff\xfe image,caption\n"])
def test_empty_or_undecodable_file_is_one_line(tmp_path, content):
    path = tmp_path / "c.csv"
    path.write_bytes(content)
    with pytest.raises(BabymergeError, match=f"^{path}: "):
        read_captions(path)


def test_missing_file(tmp_path):
    with pytest.raises(BabymergeError, match="captions file not found"):
        read_captions(tmp_path / "nowhere.csv")
