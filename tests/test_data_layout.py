"""``babymerge data --build --from DOWNLOADS``: downloaded data sets linked into BabyLM's ``evaluation_data``
layout (symlinks only, EWoK zips as they come), reruns, refusals; an EWoK zip linked without ``.zip``."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest

from babymerge.errors import BabymergeError
from babymerge.evaluation.data import describe_sources, read_lines
from babymerge.evaluation.layout import build_layout

PAIR = {"sentence_good": "The cat runs.", "sentence_bad": "The cat run.", "UID": "agreement"}
EWOK = {"Domain": "physics", "Context1": "A ball.", "Target1": "It rolls.", "Target2": "It sings."}


def jsonl(folder: Path, name: str, record: dict, lines: int = 2) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(json.dumps(record) + "\n" for _ in range(lines)))
    return folder


def ewok_zip(path: Path, member: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, json.dumps(EWOK) + "\n")
    return path


def osf_download(root: Path) -> Path:
    """BabyLM's ``evaluation_data`` as downloaded: full_eval/ and fast_eval/ (Wug in both), EWoK as zips."""
    data = root / "evaluation_data"
    for place in ("full_eval/blimp_filtered", "fast_eval/blimp_fast"):
        jsonl(data / place, "agreement.jsonl", PAIR)
    for place in ("full_eval/supplement_filtered", "fast_eval/supplement_fast"):
        jsonl(data / place, "hypernym.jsonl", PAIR)
    ewok_zip(data / "full_eval/ewok_filtered.zip", "ewok_filtered/physics.jsonl")
    ewok_zip(data / "fast_eval/ewok_fast.zip", "ewok_fast/physics.jsonl")
    entity = {"input_prefix": "Box A has", "options": [" a", " b"], "numops": 1}
    jsonl(data / "full_eval/entity_tracking", "regular.jsonl", entity)
    jsonl(data / "fast_eval/entity_tracking_fast", "regular.jsonl", entity)
    for place in ("full_eval/wug_adj_nominalization", "fast_eval/wug_adj_nominalization"):
        jsonl(data / place, "wug.jsonl", {"sentences": "a\tb", "ratio": 0.5})
    row = {"image_idx": 0, "image_key": "image_0", "caption_0": "a", "caption_1": "b"}
    jsonl(data / "full_eval/winoground_filtered", "winoground.jsonl", row)
    (data / "fast_eval/reading").mkdir()  # a set babymerge has no task for: ignored
    return root


def source_downloads(root: Path) -> Path:
    """Downloads from the sources: the BLiMP repository's zip, unpacked, and a Flickr8k folder."""
    jsonl(root / "blimp-master/data", "anaphor_gender_agreement.jsonl", PAIR)
    (root / "Flickr8k/Images").mkdir(parents=True)
    (root / "Flickr8k/captions.txt").write_text("image,caption\n1.jpg,A dog.\n")
    return root


def entries(data_dir: Path) -> dict[str, str]:
    """Every entry of the data dir (links not followed): ``{relative path: link target, or 'dir'/'file'}``."""
    found = {}
    for folder, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            path = Path(folder) / name
            kind = os.readlink(path) if path.is_symlink() else ("dir" if path.is_dir() else "file")
            found[path.relative_to(data_dir).as_posix()] = kind
    return found


def test_build_links_every_downloaded_set_into_the_layout(tmp_path):
    osf, sources = osf_download(tmp_path / "osf"), source_downloads(tmp_path / "src")
    out = tmp_path / "data"
    build_layout([osf, sources], out)
    data = osf / "evaluation_data"
    assert entries(out) == {
        "full_eval": "dir",
        "fast_eval": "dir",
        "extra_eval": "dir",
        "full_eval/blimp_filtered": str(data / "full_eval/blimp_filtered"),
        "fast_eval/blimp_fast": str(data / "fast_eval/blimp_fast"),
        "extra_eval/blimp_original": str(sources / "blimp-master/data"),
        "full_eval/supplement_filtered": str(data / "full_eval/supplement_filtered"),
        "fast_eval/supplement_fast": str(data / "fast_eval/supplement_fast"),
        "full_eval/ewok_filtered.zip": str(data / "full_eval/ewok_filtered.zip"),
        "fast_eval/ewok_fast.zip": str(data / "fast_eval/ewok_fast.zip"),
        "full_eval/entity_tracking": str(data / "full_eval/entity_tracking"),
        "fast_eval/entity_tracking_fast": str(data / "fast_eval/entity_tracking_fast"),
        "full_eval/wug_adj_nominalization": str(data / "full_eval/wug_adj_nominalization"),  # not fast_eval's
        "full_eval/winoground_filtered": str(data / "full_eval/winoground_filtered"),
        "extra_eval/caption_matching": str(sources / "Flickr8k"),
    }  # links only: nothing copied, no zip extracted
    present = {row["name"] for row in describe_sources(out) if row["present"] == "yes"}
    assert present == {row["name"] for row in describe_sources(out)} - {"wug_past"}
    assert [line for _, _, line in read_lines("ewok_fast", out)] == [json.dumps(EWOK)]


def test_rerun_keeps_links_and_a_different_entry_is_refused_before_linking(tmp_path):
    osf = osf_download(tmp_path / "osf")
    out = tmp_path / "data"
    build_layout([osf], out)
    before = entries(out)
    build_layout([osf], out)  # a rerun changes nothing
    assert entries(out) == before
    other = jsonl(tmp_path / "mine/blimp_fast", "x.jsonl", PAIR)
    (out / "fast_eval/blimp_fast").unlink()
    (out / "fast_eval/blimp_fast").symlink_to(other)
    (out / "full_eval/winoground_filtered").unlink()
    with pytest.raises(BabymergeError) as error:
        build_layout([osf], out)
    message = str(error.value)
    assert "\n" not in message and f"{out / 'fast_eval/blimp_fast'}: already there (a link to {other})" in message
    assert not (out / "full_eval/winoground_filtered").is_symlink()  # nothing linked when one entry is refused
    assert os.readlink(out / "fast_eval/blimp_fast") == str(other)


def test_a_plain_folder_beside_the_zip_name_is_refused(tmp_path):
    osf = osf_download(tmp_path / "osf")
    out = tmp_path / "data"
    jsonl(out / "fast_eval/ewok_fast", "plain.jsonl", EWOK)
    with pytest.raises(BabymergeError, match=r"fast_eval/ewok_fast: already there \(not a link\)"):
        build_layout([osf], out)


def test_two_copies_of_one_set_are_ambiguous(tmp_path):
    first = jsonl(tmp_path / "a/blimp_fast", "x.jsonl", PAIR)
    second = jsonl(tmp_path / "b/blimp_fast", "x.jsonl", PAIR)
    with pytest.raises(BabymergeError, match="blimp_fast: found twice") as error:
        build_layout([tmp_path / "a", tmp_path / "b"], tmp_path / "data")
    assert str(first) in str(error.value) and str(second) in str(error.value)


def test_the_most_specific_copy_wins_whatever_the_order(tmp_path):
    wug = {"sentences": "a\tb", "ratio": 0.5}
    for place in ("a/wug_adj_nominalization", "b/wug_adj_nominalization", "c/full_eval/wug_adj_nominalization"):
        jsonl(tmp_path / place, "wug.jsonl", wug)
    [link] = build_layout([tmp_path / "a", tmp_path / "b", tmp_path / "c"], tmp_path / "data")
    assert link.target == tmp_path / "c/full_eval/wug_adj_nominalization"


def test_cli_build_then_lists(tmp_path, capsys):
    from babymerge.cli import main

    out = tmp_path / "data"
    args = ["data", "--build", "--from", str(osf_download(tmp_path / "osf")), "--data-dir", str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"linked {out / 'fast_eval/ewok_fast.zip'} -> " in printed and "| ewok_fast | yes | yes |" in printed
    assert main(["data", "--build", "--data-dir", str(out)]) == 2  # --build needs --from
    assert main(["data", "--build", "--from", str(tmp_path / "nowhere"), "--data-dir", str(out)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2 and "--build and --from" in errors[0] and "downloads folder not found" in errors[1]


def test_ewok_zip_linked_without_zip_suffix_is_read(tmp_path):
    archive = ewok_zip(tmp_path / "downloads/ewok_fast_babylm2025.zip", "ewok_fast/physics.jsonl")
    (tmp_path / "data/fast_eval").mkdir(parents=True)
    (tmp_path / "data/fast_eval/ewok_fast").symlink_to(archive)
    assert [line for _, _, line in read_lines("ewok_fast", tmp_path / "data")] == [json.dumps(EWOK)]
    rows = {row["name"]: row["present"] for row in describe_sources(tmp_path / "data")}
    assert rows["ewok_fast"] == "yes"


SHARED_LAYOUT = {  # how ../shared/data (laid out by source) maps onto evaluation_data
    "fast_eval/blimp_fast": "blimp/babylm_blimp_fast",
    "full_eval/blimp_filtered": "blimp/babylm_blimp_filtered",
    "extra_eval/blimp_original": "blimp/original",
    "fast_eval/supplement_fast": "blimp_supplement/supplement_fast",
    "full_eval/supplement_filtered": "blimp_supplement/supplement_filtered",
    "fast_eval/ewok_fast.zip": "ewok/ewok_fast_babylm2025.zip",
    "full_eval/ewok_filtered.zip": "ewok/ewok_filtered_full.zip",
    "fast_eval/entity_tracking_fast": "entity_tracking/fast",
    "full_eval/entity_tracking": "entity_tracking/full",
    "full_eval/wug_adj_nominalization": "wug/wug_adj_nominalization",
    "full_eval/winoground_filtered": "winoground/babylm_winoground_filtered",
    "extra_eval/caption_matching": "flickr8k_1k",
}


def test_build_from_the_shared_data(tmp_path, shared_data):
    out = tmp_path / "data"
    links = build_layout([shared_data], out)
    assert {link.link.relative_to(out).as_posix(): link.target for link in links} == {
        rel: (shared_data / source).resolve() for rel, source in SHARED_LAYOUT.items()
    }
    assert "file" not in entries(out).values()  # links only
    assert sum(1 for _ in read_lines("ewok_fast", out)) > 0  # the password-protected zip, read in memory
