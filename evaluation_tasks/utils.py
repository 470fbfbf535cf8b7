"""Helpers named by the task YAMLs (``!function utils.x``): dataset builders and BabyLM metrics.

The data directory comes from lm-eval's metadata (``--metadata '{"data_dir": "..."}'``), else
``$BABYMERGE_DATA``, else ``~/.cache/babymerge/evaluation_data``.
"""

from functools import partial

from babymerge.evaluation import docs
from babymerge.evaluation.data import add_image_files
from babymerge.evaluation.metrics import (  # noqa: F401  (named by the YAMLs)
    choice_results,
    entity_tracking_accuracy,
    entity_tracking_results,
    group_score,
    group_score_tie_neutral,
    image_score,
    image_score_tie_neutral,
    image_tie_fraction,
    macro_accuracy,
    pair_results,
    sentence_pair_results,
    spearman,
    text_score,
    text_score_tie_neutral,
    winoground_results,
    wug_results,
)

blimp = partial(docs.minimal_pairs, "blimp")
blimp_fast = partial(docs.minimal_pairs, "blimp_fast")
blimp_original = partial(docs.minimal_pairs, "blimp_original")
supplement = partial(docs.minimal_pairs, "supplement")
supplement_fast = partial(docs.minimal_pairs, "supplement_fast")
ewok = partial(docs.ewok, "ewok")
ewok_fast = partial(docs.ewok, "ewok_fast")
entity_tracking = partial(docs.entity_tracking, "entity_tracking")
entity_tracking_fast = partial(docs.entity_tracking, "entity_tracking_fast")
wug_adj = partial(docs.wug, "wug_adj")
wug_past = partial(docs.wug, "wug_past")


def winoground(data_dir=None, **kwargs):
    """Winoground docs, each with its raw image file when the layout has one (a stock LLaVA reads it)."""
    return add_image_files(docs.winoground(data_dir, **kwargs), "winoground", data_dir)


def caption_matching(data_dir=None, captions=None, per_image=0, **kwargs):
    """Caption-matching docs, each with its raw image file (``images/`` beside the captions file)."""
    dataset = docs.caption_matching(data_dir, captions=captions, per_image=per_image, **kwargs)
    return add_image_files(dataset, "caption_matching", data_dir, captions)


caption_matching_fast = partial(caption_matching, per_image=1)
