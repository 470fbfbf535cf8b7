"""``babymerge push``: upload a merged folder to the Hugging Face Hub in one commit, with a generated card."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import BabymergeError
from .card import build_card, read_summary


@dataclass(frozen=True)
class Upload:
    path_in_repo: str
    size: int


def planned_uploads(out_dir: Path) -> list[Upload]:
    """Every file of the folder (README.md is replaced by the generated card), sorted."""
    files = [p for p in sorted(out_dir.rglob("*")) if p.is_file() and not p.name.startswith(".")]
    uploads = [Upload(str(p.relative_to(out_dir)), p.stat().st_size) for p in files if p.name != "README.md"]
    return uploads + [Upload("README.md", -1)]


def push(
    out_dir: str | Path,
    repo_id: str,
    *,
    results: str | Path | None = None,
    private: bool = False,
    dry_run: bool = False,
    token: str | None = None,
) -> tuple[list[Upload], str]:
    """Upload ``out_dir`` to ``repo_id``; returns the uploads and the card text (nothing is sent when dry_run)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise BabymergeError(f"{out_dir}: merged folder not found")
    summary = read_summary(out_dir, results)
    readme = out_dir / "README.md"
    card = build_card(summary, repo_id, readme.read_text() if readme.is_file() else None)
    uploads = planned_uploads(out_dir)
    text = str(card)
    if dry_run:
        return uploads, text
    from huggingface_hub import CommitOperationAdd, HfApi

    operations = [
        CommitOperationAdd(path_in_repo=u.path_in_repo, path_or_fileobj=str(out_dir / u.path_in_repo))
        for u in uploads
        if u.path_in_repo != "README.md"
    ]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=text.encode()))
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
