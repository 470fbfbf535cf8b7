"""``babymerge push``: upload a merged folder to the Hugging Face Hub in one commit, with a generated card.

Only the model's own files go up: hidden files and folders (``.cache/``, ``.git/``, tokens) stay behind; the
card (``README.md``), the recipe (``mergekit_config.yml``, parents renamed) and ``eval_results.json`` (metrics
only) are generated, and no uploaded file may hold a local absolute path of the merge or its parents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import BabymergeError
from .card import RECIPE_FILE, RESULTS_FILE, build_card, parent_names, public_recipe, read_summary

CARD_FILE = "README.md"
TEXT_CHECK_LIMIT = 1 << 20  # files up to 1 MiB are searched for local paths (weights are not text)


@dataclass(frozen=True)
class Upload:
    path_in_repo: str
    size: int
    content: bytes | None = None  # generated files; None: the file of that name in the folder


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def planned_uploads(out_dir: Path, generated: dict[str, bytes]) -> list[Upload]:
    """The folder's visible files (generated ones replace files of the same name), sorted, generated last."""
    uploads = []
    for path in sorted(out_dir.rglob("*")):
        relative = path.relative_to(out_dir)
        if path.is_file() and not _hidden(relative) and relative.as_posix() not in generated:
            uploads.append(Upload(relative.as_posix(), path.stat().st_size))
    return uploads + [Upload(name, len(content), content) for name, content in sorted(generated.items())]


def _check_no_local_paths(out_dir: Path, uploads: list[Upload], paths: list[str]) -> None:
    needles = [p.encode() for p in {str(out_dir.resolve()), *paths} if p.startswith("/")]
    for upload in uploads:
        data = upload.content
        if data is None and upload.size <= TEXT_CHECK_LIMIT:
            data = (out_dir / upload.path_in_repo).read_bytes()
        for needle in needles:
            if data is not None and needle in data:
                raise BabymergeError(
                    f"{out_dir / upload.path_in_repo}: holds the local path {needle.decode()}; remove it before "
                    f"pushing (nothing was published)"
                )


def push(
    out_dir: str | Path,
    repo_id: str,
    *,
    results: str | Path | None = None,
    parents: dict[str, str] | None = None,
    license: str = "unknown",
    private: bool = False,
    dry_run: bool = False,
    token: str | None = None,
) -> tuple[list[Upload], str]:
    """Upload ``out_dir`` to ``repo_id``; returns the uploads and the card text (nothing is sent when dry_run).

    ``parents``: ``{parent path or folder name: Hub id}`` for parents that are local folders.
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise BabymergeError(f"{out_dir}: merged folder not found")
    summary = read_summary(out_dir, results)
    names = parent_names(summary.parents, parents)
    text = str(build_card(summary, repo_id, names=names, license=license))
    generated = {CARD_FILE: text.encode(), RECIPE_FILE: public_recipe(summary.recipe, names).encode()}
    if summary.results:
        generated[RESULTS_FILE] = (json.dumps({"results": summary.results}, indent=2, sort_keys=True) + "\n").encode()
    uploads = planned_uploads(out_dir, generated)
    _check_no_local_paths(out_dir, uploads, summary.parents)
    if dry_run:
        return uploads, text
    from huggingface_hub import CommitOperationAdd, HfApi

    operations = [
        CommitOperationAdd(
            path_in_repo=u.path_in_repo,
            path_or_fileobj=u.content if u.content is not None else str(out_dir / u.path_in_repo),
        )
        for u in uploads
    ]
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.create_commit(repo_id, operations=operations, commit_message=f"Upload {summary.method} merge")
    except Exception as error:  # network, auth and offline-mode errors all end here with one line
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise BabymergeError(
            f"push {repo_id}: cannot reach the Hugging Face Hub or it refused the upload "
            f"({type(error).__name__}: {reason}); nothing was published"
        ) from error
    return uploads, text
