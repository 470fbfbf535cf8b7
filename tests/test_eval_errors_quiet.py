"""Messages that said nothing about a babymerge run are gone at their source, and other warnings still pass:
lm-eval's git lookup, its ``Custom kwargs`` advice, HFLM's loaded-model warnings, mergekit's ``torch_dtype``."""

from __future__ import annotations

import logging


def test_lm_evals_git_lookup_is_quiet_outside_a_repository(tmp_path, monkeypatch, capfd):
    from lm_eval import evaluator

    from babymerge.evaluation.plugin import refuse_other_model_types

    refuse_other_model_types()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert evaluator.get_git_commit_hash() is None
    assert "fatal" not in capfd.readouterr().err


def test_custom_kwargs_advice_is_dropped_for_babymerge_tasks_only(caplog):
    from babymerge.evaluation.plugin import include_tasks
    from babymerge.evaluation.quiet import CUSTOM_KWARGS

    include_tasks()
    logger = logging.getLogger("lm_eval.api.task")
    with caplog.at_level(logging.WARNING, logger="lm_eval.api.task"):
        logger.warning(f"babylm_ewok_fast{CUSTOM_KWARGS} in console (as json string) or to the TaskManager.")
        logger.warning(f"someone_elses_task{CUSTOM_KWARGS} in console (as json string) or to the TaskManager.")
        logger.warning("babylm_ewok_fast: another warning")
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["someone_elses_task", "babylm_ewok_fast"]


def test_the_sweeps_lm_wrapper_gives_no_loaded_model_warnings(make_checkpoint, caplog):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from babymerge import modeling  # noqa: F401  (registers babyllava)
    from babymerge.evaluation.run import babyllava_lm

    folder = make_checkpoint(3)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    with caplog.at_level(logging.INFO):
        babyllava_lm(model, AutoTokenizer.from_pretrained(folder), batch_size=2)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "`pretrained` model kwarg is not of type `str`" not in text
    assert "Passed an already-initialized model" not in text
    logger = logging.getLogger("lm_eval.models.huggingface")
    assert not logger.filters  # only while wrapping
    with caplog.at_level(logging.WARNING):
        logger.warning("Passed an already-initialized model through `pretrained`, elsewhere")
    assert "elsewhere" in caplog.text


def test_mergekits_torch_dtype_setter_is_quiet(caplog):
    import torch
    from transformers import LlamaConfig
    from transformers.utils import logging as hf_logging

    from babymerge.logs import TORCH_DTYPE, torch_dtype_setter

    hf_logging.get_logger("x").warning_once.cache_clear()  # transformers says it once per process
    logger = logging.getLogger("transformers.configuration_utils")
    logger.addHandler(caplog.handler)  # transformers' loggers do not propagate to the root logger
    try:
        with torch_dtype_setter():
            LlamaConfig().torch_dtype = torch.float16  # what mergekit 0.1.5's run_merge does
        assert TORCH_DTYPE not in caplog.text
        hf_logging.get_logger("x").warning_once.cache_clear()
        LlamaConfig().torch_dtype = torch.float16
        assert TORCH_DTYPE in caplog.text  # outside the block it still warns
    finally:
        logger.removeHandler(caplog.handler)


def test_plain_mergekit_yaml_prints_no_torch_dtype_deprecation(models, tmp_path):
    """Every guarded merge (``babymerge merge``, plain ``mergekit-yaml``, ``sweep --materialize``) runs mergekit
    inside ``torch_dtype_setter``."""
    import yaml
    from helpers import mergekit_yaml

    from babymerge.sweep.merge import MULTIMODAL, TEXT

    recipe = tmp_path / "linear.yml"
    parents = [{"model": str(models[k]), "parameters": {"weight": 0.5}} for k in (TEXT, MULTIMODAL)]
    recipe.write_text(yaml.safe_dump({"merge_method": "linear", "models": parents, "dtype": "float32"}))  # sets it
    done = mergekit_yaml(recipe, tmp_path / "out")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "torch_dtype" not in done.stderr
