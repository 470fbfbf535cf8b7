"""hub stage: model cards for merged checkpoints and ``babymerge push``."""

from .card import MergeSummary, build_card, read_results, read_summary
from .push import Upload, planned_uploads, push

__all__ = ["MergeSummary", "Upload", "build_card", "planned_uploads", "push", "read_results", "read_summary"]
