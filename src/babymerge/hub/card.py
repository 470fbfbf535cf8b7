"""Model card of a merged checkpoint: parents, method and parameters, recipe, evaluation results (model-index).

Built with huggingface_hub's ``ModelCard``/``ModelCardData``/``EvalResult`` from what the merge folder holds:
``mergekit_config.yml`` (the recipe mergekit wrote) and, when present, lm-eval results (``eval_results.json``
written by ``babymerge eval --save-to-model``, or a results file given explicitly). Metadata follows the Hub's
convention for merges (``base_model`` = the parents' Hub ids, ``base_model_relation: merge``); local parent
folders are named by their Hub id (``--parent KEY=owner/name``) or, failing that, by a short name that tells
them apart (``text/final``, ``multimodal/final``), so no local absolute path reaches the card or the recipe
that is uploaded. The recipe is shown and uploaded as its YAML content (its comments, written for the local
recipe, stay behind). A checkpoint whose image features came from a random backbone says so. What the card
says the model is, and its usage snippet, follow ``config.json``'s ``model_type``: babyllava, a stock LLaVA or a
causal LM.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import BabymergeError
from ..evaluation.results import metrics
from ..features.store import RANDOM_BACKBONE_WARNING

RECIPE_FILE = "mergekit_config.yml"
RESULTS_FILE = "eval_results.json"
REPO_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
RANDOM_BACKBONE_PREFIX = "random-"  # ``features.backbone.random_dinov2`` names its backbone random-tiny-dinov2-seedN


@dataclass
class MergeSummary:
    """What a merged folder says about how it was made."""

    method: str
    parents: list[str]
    base_model: str | None
    parameters: dict[str, Any]
    recipe: str  # the YAML content, without the recipe file's comments
    results: dict[str, dict[str, float]] = field(default_factory=dict)
    vision_backbone: str | None = None  # config.json's ``vision_backbone`` (the features' backbone)
    model_type: str = "babyllava"  # config.json's: babyllava, llava (a stock LLaVA) or a causal LM's (llama, ...)

    @property
    def random_backbone(self) -> bool:
        """Whether the image features came from a randomly initialised backbone (``babymerge features
        --random-backbone``: the feature file's ``random_backbone`` metadata, its backbone name in the config)."""
        return (self.vision_backbone or "").startswith(RANDOM_BACKBONE_PREFIX)


def _model_path(ref: Any) -> str:
    return ref if isinstance(ref, str) else str(ref.get("model", ref))


def _model_entries(node: Any, module: str | None = None) -> list[tuple[str | None, Any, dict]]:
    """``(module, model reference, parameters)`` for every model entry, in recipe order (any recipe syntax)."""
    found: list[tuple[str | None, Any, dict]] = []
    if isinstance(node, dict):
        if "model" in node:
            found.append((module, node["model"], node.get("parameters") or {}))
        for key, value in node.items():
            if key == "modules" and isinstance(value, dict):
                for name, sub in value.items():
                    found += _model_entries(sub, name)
            elif key not in ("model", "parameters", "base_model"):
                found += _model_entries(value, module)
    elif isinstance(node, list):
        for value in node:
            found += _model_entries(value, module)
    return found


def read_summary(out_dir: str | Path, results_file: str | Path | None = None) -> MergeSummary:
    """Read the recipe mergekit stored in ``out_dir`` and any evaluation results."""
    out_dir = Path(out_dir)
    recipe_path = out_dir / RECIPE_FILE
    if not recipe_path.is_file():
        raise BabymergeError(f"{recipe_path}: not found; is {out_dir} a mergekit output folder?")
    recipe = recipe_path.read_text()
    try:
        data = yaml.safe_load(recipe)
    except yaml.YAMLError as error:
        raise BabymergeError(f"{recipe_path}: unreadable YAML ({' '.join(str(error).split())})") from error
    if not isinstance(data, dict) or "merge_method" not in data:
        raise BabymergeError(f"{recipe_path}: no merge_method field")
    parents: list[str] = []
    parameters: dict[str, Any] = {}
    if data.get("parameters"):
        parameters["*"] = data["parameters"]
    per_model: dict[str, dict[str, Any]] = {}
    for module, ref, params in _model_entries(data):
        path = _model_path(ref)
        if path not in parents:
            parents.append(path)
        if params:
            per_model.setdefault(path, {})[module or "*"] = params
    for path, by_module in per_model.items():
        distinct = {json.dumps(v, sort_keys=True) for v in by_module.values()}
        if len(distinct) == 1:
            parameters[path] = next(iter(by_module.values()))
        else:
            parameters.update({f"{module}: {path}": v for module, v in by_module.items()})
    base = data.get("base_model")
    base = _model_path(base) if base else None
    if base and base not in parents:
        parents.append(base)
    results_path = Path(results_file) if results_file else out_dir / RESULTS_FILE
    results = read_results(results_path) if (results_file or results_path.is_file()) else {}
    content = yaml.safe_dump(data, sort_keys=False, width=1 << 16)
    config = _config(out_dir)
    backbone, model_type = config.get("vision_backbone"), config.get("model_type")
    return MergeSummary(
        data["merge_method"],
        parents,
        base,
        parameters,
        content,
        results,
        backbone if isinstance(backbone, str) else None,
        model_type if isinstance(model_type, str) else "babyllava",
    )


def _config(out_dir: Path) -> dict[str, Any]:
    try:
        config = json.loads((out_dir / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def read_results(path: Path) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` from lm-eval results (``{"results": {task: {"acc,none": ...}}}``): metrics
    only (``metric,filter`` keys, no stderr, no ``sample_len``); results of a ``--limit`` run are refused."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise BabymergeError(f"{path}: cannot read evaluation results ({error})") from error
    table = data.get("results") if isinstance(data, dict) else None
    if not isinstance(table, dict):
        raise BabymergeError(f"{path}: expected a JSON object with a 'results' table")
    limit = data.get("limit", (data.get("config") or {}).get("limit"))
    if limit is not None:
        raise BabymergeError(
            f"{path}: results of a --limit {limit} run (a subset of each task); rerun `babymerge eval ... "
            f"--save-to-model` without --limit before publishing them"
        )
    out: dict[str, dict[str, float]] = {}
    for metric in metrics(data):
        out.setdefault(metric.task, {})[metric.name] = metric.value
    return out


def is_hub_id(parent: str) -> bool:
    """Whether a recipe's model reference is a Hub id: ``owner/name`` that is not a local folder (a recipe may
    name ``ckpt/llava`` relative to where ``mergekit-yaml`` ran, the folder ``babymerge push`` runs in)."""
    return bool(REPO_ID.match(parent)) and not Path(parent).is_dir()


def local_names(paths: list[str]) -> dict[str, str]:
    """Short names that tell local folders apart: the folder name, preceded (only where names clash) by the
    nearest folders above it that differ, skipping levels they share: ``runs/text/checkpoints/final`` and
    ``runs/multimodal/checkpoints/final`` become ``text/final`` and ``multimodal/final``."""
    tails = {p: Path(p).parts[::-1] for p in paths}
    chosen = {p: list(tails[p][:1]) or [p] for p in paths}
    for depth in range(1, max((len(t) for t in tails.values()), default=0)):
        clashes = defaultdict(list)
        for path in paths:
            clashes[tuple(chosen[path])].append(path)
        for group in clashes.values():
            level = {tails[p][depth] if depth < len(tails[p]) else "" for p in group}
            if len(group) > 1 and len(level) > 1:
                for path in group:
                    if depth < len(tails[path]) and tails[path][depth] != Path(path).anchor:
                        chosen[path].append(tails[path][depth])
    return {path: "/".join(reversed(chosen[path])) for path in paths}


def parent_names(parents: list[str], hub_ids: dict[str, str] | None = None) -> dict[str, str]:
    """How the card names each parent: its Hub id (a parent that is one already, or ``hub_ids[KEY]`` where KEY
    is the parent's path, the end of its path, or its name on the card), else its short name
    (:func:`local_names`). Every KEY in ``hub_ids`` must match exactly one parent."""
    local = local_names([p for p in parents if not is_hub_id(p)])
    names: dict[str, str] = {}
    for key, repo in dict(hub_ids or {}).items():
        if not REPO_ID.match(repo):
            raise BabymergeError(f"--parent {key}={repo}: expected a Hub id owner/name")
        tail = Path(key).parts
        matches = [
            p
            for p in parents
            if key in (p, local.get(p))
            or Path(p).parts[-len(tail) :] == tail
            or Path(key).resolve() == Path(p).resolve()
        ]
        if len(matches) != 1:
            found = "no parent" if not matches else f"{len(matches)} parents"
            raise BabymergeError(
                f"--parent {key}={repo}: {found} of this merge match {key!r} (parents: "
                f"{', '.join(local.get(p, p) for p in parents)}; give a parent's name as listed or its path)"
            )
        names[matches[0]] = repo
    for parent in parents:
        names.setdefault(parent, local.get(parent, parent))
    return names


def public_recipe(recipe: str, names: dict[str, str]) -> str:
    """The recipe with every parent path replaced by its name on the card (longest paths first)."""
    for path in sorted(names, key=len, reverse=True):
        recipe = recipe.replace(path, names[path])
    return recipe


MERGED_WITH = "merged with [mergekit](https://github.com/arcee-ai/mergekit) and babymerge."


def describe(model_type: str) -> tuple[str, str, str]:
    """What the card says the merged model is: its opening sentence, the Hub pipeline tag and a tag of its kind."""
    if model_type == "babyllava":
        return f"A babyllava checkpoint {MERGED_WITH}", "text-generation", "babyllava"
    if model_type == "llava":
        return f"A transformers LLaVA (`LlavaForConditionalGeneration`) {MERGED_WITH}", "image-text-to-text", "llava"
    return f"A causal language model (`{model_type}`) {MERGED_WITH}", "text-generation", model_type


def usage(repo_id: str, model_type: str = "babyllava") -> list[str]:
    if model_type == "llava":
        return [
            "## Usage",
            "",
            "```python",
            "from PIL import Image",
            "from transformers import AutoModelForImageTextToText, AutoProcessor",
            "",
            f'model = AutoModelForImageTextToText.from_pretrained("{repo_id}").eval()',
            f'processor = AutoProcessor.from_pretrained("{repo_id}")',
            'image = Image.open("cat.jpg").convert("RGB")',
            'inputs = processor(text=processor.image_token + "A cat sees a ball.", images=image, return_tensors="pt")',
            "logits = model(**inputs).logits",
            "```",
            "",
            "Evaluate with lm-eval once babymerge is installed (`pip install babymerge`; image tasks read raw images",
            "from the evaluation data folder):",
            f"`lm_eval --model babyllava --model_args pretrained={repo_id} --tasks babylm_text_fast`.",
            "",
        ]
    if model_type != "babyllava":
        return [
            "## Usage",
            "",
            "```python",
            "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "",
            f'model = AutoModelForCausalLM.from_pretrained("{repo_id}").eval()',
            f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")',
            'logits = model(**tokenizer("The cat sees the ball.", return_tensors="pt")).logits',
            "```",
            "",
        ]
    return [
        "## Usage",
        "",
        "```python",
        "import torch",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'model = AutoModelForCausalLM.from_pretrained("{repo_id}", trust_remote_code=True).eval()',
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}", trust_remote_code=True)',
        "",
        "# Text only: the tokenizer adds `<s> <image>`; the image token sees the stored black image, as in training.",
        'inputs = tokenizer("The cat sees the ball.", return_tensors="pt")',
        "logits = model(**inputs).logits",
        "",
        "# With an image: its pooled vision features, (batch, num_image_tokens, vision_feature_dim), e.g. one row",
        "# of a feature file made by `babymerge features` with the backbone named in config.vision_backbone.",
        "image_features = torch.randn(1, model.config.num_image_tokens, model.config.vision_feature_dim)",
        "logits = model(**inputs, image_features=image_features).logits",
        "```",
        "",
        "Evaluate with lm-eval once babymerge is installed (`pip install babymerge`):",
        f"`lm_eval --model babyllava --model_args pretrained={repo_id} --tasks babylm_text_fast`.",
        "",
    ]


def build_card(summary: MergeSummary, repo_id: str, *, names: dict[str, str] | None = None, license: str = "unknown"):
    """A ``huggingface_hub.ModelCard``: merge metadata, model-index results, parents, method, recipe, usage."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    names = names or parent_names(summary.parents)
    eval_results = [
        EvalResult(
            task_type="text-generation",
            dataset_type=task,
            dataset_name=task,
            metric_type=metric,
            metric_value=value,
        )
        for task, metrics in sorted(summary.results.items())
        for metric, value in sorted(metrics.items())
    ]
    local = local_names([p for p in summary.parents if not is_hub_id(p)])
    opening, pipeline_tag, kind = describe(summary.model_type)
    hub_parents = [names[p] for p in summary.parents if names[p] != local.get(p)]  # Hub ids, given or named so
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        license=license,
        tags=["merge", "mergekit", kind, "babylm", summary.method],
        base_model=hub_parents or None,
        base_model_relation="merge" if hub_parents else None,
        model_name=repo_id,
        eval_results=eval_results or None,
    )
    lines = [
        f"# {repo_id.split('/')[-1]}",
        "",
        opening,
        "",
        "## Parents",
        "",
        *[f"- `{names[p]}`" + (" (base model)" if p == summary.base_model else "") for p in summary.parents],
        "",
        "## Method",
        "",
        f"`{summary.method}`",
        "",
    ]
    if summary.parameters:
        lines += ["| scope | parameters |", "|---|---|"]
        for scope, params in summary.parameters.items():
            lines.append(f"| `{public_recipe(scope, names)}` | `{json.dumps(params, sort_keys=True)}` |")
        lines.append("")
    if summary.random_backbone:
        lines += [
            "## Image features",
            "",
            f"**Warning:** trained with {RANDOM_BACKBONE_WARNING} (config `vision_backbone`: "
            f"`{summary.vision_backbone}`).",
            "",
        ]
    lines += ["## Recipe", "", "```yaml", public_recipe(summary.recipe, names).rstrip(), "```", ""]
    if summary.results:
        lines += ["## Evaluation", "", "| task | metric | value |", "|---|---|---|"]
        lines += [
            f"| {task} | {metric} | {value:.4f} |"
            for task, metrics in sorted(summary.results.items())
            for metric, value in sorted(metrics.items())
        ]
        lines.append("")
    lines += usage(repo_id, summary.model_type)
    return ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + "\n".join(lines))
