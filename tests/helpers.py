"""Helpers shared by the tests (as mergekit's ``tests/common.py``): the offline environment and the ``babymerge``
CLI, merging (recipes, ``mergekit-yaml``, mergekit's Python API), tiny stock transformers LLaVA checkpoints and
text-only LMs, the sweep's checkpoint series and store reading, and the BabyLM reference scoring rule.

Fixtures built on these live in ``conftest.py`` (``cli``, ``offline``, ``models``, ...)."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

# -- the offline environment and the CLI ----------------------------------------------------------------------

OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

CLI = [sys.executable, "-c", "import sys; from babymerge.cli import main; sys.exit(main())"]


def offline_env(**extra: str) -> dict[str, str]:
    """This process's environment with the Hub and datasets offline, plus ``extra`` variables."""
    return {**os.environ, **OFFLINE, **extra}


def run_cli(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    """``babymerge ARGS`` in a subprocess, offline, output captured as text (``kwargs`` go to ``subprocess.run``)."""
    kwargs = {"capture_output": True, "text": True, "timeout": 900} | kwargs  # a hang guard, loose for a loaded machine
    return subprocess.run([*CLI, *map(str, args)], env=env or offline_env(), **kwargs)


# -- corpora and tokenizers ------------------------------------------------------------------------------------

WORDS = "the a cat dog bird sees chases likes red blue small big ball tree house runs sleeps".split()


def synthetic_corpus(path: Path, lines: int = 400) -> Path:
    """A small BabyLM-format folder: one ``.train`` file of simple sentences."""
    rng = random.Random(0)
    path.mkdir(parents=True, exist_ok=True)
    sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))).capitalize() + "." for _ in range(lines)]
    (path / "toy.train").write_text("\n".join(sentences) + "\n")
    return path


def word_tokenizer(words: list[str], extra: tuple[str, ...] = ()):
    """A whitespace word-level tokenizer with ``<s> </s> <pad> <unk> <image>`` (trained in memory, no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<s>", "</s>", "<image>", *extra]
    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.train_from_iterator([" ".join(words)], trainers.WordLevelTrainer(special_tokens=specials))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )


# -- merging ---------------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "merge_recipes"
MERGEKIT_YAML = Path(sys.executable).with_name("mergekit-yaml")


# The start of a script run in a fresh process where babymerge cannot be imported (outputs must not need it).
WITHOUT_BABYMERGE = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "babymerge" or name.startswith("babymerge."):
            raise ImportError("babymerge is hidden in this test")
sys.meta_path.insert(0, Block())
"""


def source_tree(dest: Path) -> Path:
    """The files a wheel is built from (pyproject, README, src, evaluation_tasks), copied to ``dest``."""
    dest.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, dest / name)
    for folder in ("src", "evaluation_tasks"):
        shutil.copytree(REPO / folder, dest / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return dest


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def render(recipe: str, tmp: Path, paths: dict[str, Path]) -> Path:
    """A recipe of ``merge_recipes/`` with its placeholders set to ``paths``."""
    from babymerge.merging import write_recipe

    return write_recipe(RECIPES / recipe, tmp / recipe, paths)


def run_merge(recipe: dict, out: Path, **options) -> None:
    """mergekit's Python API on a recipe given as a dict (quiet; ``options`` go to ``MergeOptions``)."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    run_merge(MergeConfiguration.model_validate(recipe), str(out), options=MergeOptions(quiet=True, **options))


def mergekit_yaml(recipe: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """The ``mergekit-yaml`` command in a subprocess, offline."""
    return subprocess.run(
        [str(MERGEKIT_YAML), str(recipe), str(out), "--quiet", *extra],
        capture_output=True,
        text=True,
        env=offline_env(),
        timeout=120,
    )


def mergekit_yaml_in_process(recipe: Path, out: Path, *extra: str) -> None:
    """The ``mergekit-yaml`` console script's own entry function, called in this process (saves the imports)."""
    from mergekit.scripts.run_yaml import main

    main([str(recipe), str(out), "--quiet", *extra], standalone_mode=False)


# -- stock transformers LLaVA checkpoints (CLIP + Llama, SigLIP + Qwen2, DINOv2 + Mistral) and text-only LMs ------

LM = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
LM_KV = {"num_key_value_heads": 2}


def text_config(kind: str, vocab_size: int, **overrides):
    from transformers import LlamaConfig, MistralConfig, Qwen2Config

    cls = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config}[kind]
    return cls(vocab_size=vocab_size, **{**LM, **LM_KV, **overrides})


def vision_config(kind: str):
    from transformers import CLIPVisionConfig, Dinov2Config, SiglipVisionConfig

    small = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2}
    if kind == "clip":
        return CLIPVisionConfig(image_size=32, patch_size=8, **small)
    if kind == "siglip":
        return SiglipVisionConfig(image_size=32, patch_size=8, **small)
    return Dinov2Config(image_size=28, patch_size=14, **small)


def save_llava(folder: Path, tokenizer, lm: str, tower: str, seed: int, **lm_overrides) -> Path:
    """A ``LlavaForConditionalGeneration`` folder as transformers saves it, with processor and tokenizer files."""
    from transformers import CLIPImageProcessor, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    torch.manual_seed(seed)
    config = LlavaConfig(
        vision_config=vision_config(tower),
        text_config=text_config(lm, len(tokenizer), **lm_overrides),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
    )
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    size = config.vision_config.image_size
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size}),
        tokenizer=tokenizer,
        patch_size=config.vision_config.patch_size,
        num_additional_image_tokens=0 if tower == "siglip" else 1,  # CLIP and DINOv2 add a CLS token
        vision_feature_select_strategy=config.vision_feature_select_strategy,
    )
    processor.save_pretrained(folder)
    return folder


def save_text_lm(folder: Path, tokenizer, lm: str, seed: int, **overrides) -> Path:
    """A text-only causal LM (``LlamaForCausalLM``, ``MistralForCausalLM``, ``Qwen2ForCausalLM``), same tokenizer."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    AutoModelForCausalLM.from_config(text_config(lm, len(tokenizer), **overrides)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_llama_like(babyllava: Path, folder: Path, seed: int, **overrides) -> Path:
    """A plain ``LlamaForCausalLM`` of a babyllava's language-model shape, with the babyllava's tokenizer files."""
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(babyllava, trust_remote_code=True).get_text_config()
    LlamaForCausalLM(type(config).from_dict({**config.to_dict(), **overrides})).save_pretrained(folder)
    AutoTokenizer.from_pretrained(babyllava).save_pretrained(folder)
    return folder


# -- the sweep --------------------------------------------------------------------------------------------------

TASK = "babylm_blimp_fast"


def sweep_cmd(models, world, out: Path, *extra: str) -> list[str]:
    """``babymerge sweep`` on the conftest ``models`` and the demo ``world``'s BLiMP-format task."""
    from babymerge.sweep.merge import BASE, MULTIMODAL, TEXT

    return [
        *CLI,
        "sweep",
        "--text",
        str(models[TEXT]),
        "--multimodal",
        str(models[MULTIMODAL]),
        "--base",
        str(models[BASE]),
        "--tasks",
        TASK,
        "--data-dir",
        str(world / "evaluation_data"),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


class CountingScorer:
    """A sweep scorer for tests: scores the current weights (their sum) and counts every evaluation."""

    def __init__(self, model, tokenizer, tasks):
        self.model, self.tasks, self.calls = model, list(tasks), []

    def score(self, task: str) -> list[dict]:
        self.calls.append(task)
        total = sum(float(t.double().sum()) for t in self.model.state_dict().values() if t.is_floating_point())
        return [{"task": task, "metric": "acc", "value": total, "stderr": None}]


def world_sweep(text: Path, multimodal: Path, world: Path, tmp: Path, **fields):
    """A ``Sweep`` of ``text`` x ``multimodal`` on the demo ``world``'s BLiMP-format task, storing in ``tmp``;
    one linear merge at alpha 0.5 of the best pair unless ``fields`` say otherwise."""
    from babymerge.sweep.run import Sweep, SweepConfig

    defaults = {"methods": ["linear"], "alphas": [0.5], "tasks": [TASK], "pairing": ["best"]}
    defaults |= {"store": tmp / "results.jsonl", "data_dir": world / "evaluation_data"}
    return Sweep(SweepConfig(text=text, multimodal=multimodal, **defaults | fields), progress=False)


def raw_keys(store: Path) -> Counter:
    """Every complete line's key, counted (duplicates would show as counts above 1)."""
    from babymerge.sweep.store import record_key

    keys: Counter = Counter()
    for line in store.read_text().splitlines(keepends=True):
        if line.endswith("\n"):
            keys[record_key(json.loads(line))] += 1
    return keys


def series(root: Path, source: Path, names_words: list[tuple[str, int]]) -> Path:
    """A training output folder holding copies of ``source`` as ``checkpoints/NAME`` with their words seen."""
    for name, words in names_words:
        shutil.copytree(source, root / "checkpoints" / name)
        (root / "checkpoints" / name / "babymerge_training.json").write_text(json.dumps({"words_seen": words}))
    return root


# -- evaluation: the BabyLM data layout and an independent implementation of BabyLM 2025's causal scoring -------


def babylm_layout(root: Path, shared: Path) -> Path:
    """A BabyLM ``evaluation_data`` folder made of symlinks into the shared data (``babymerge data --build``'s
    function; links already there are kept, so a benchmark can be rerun on its folder)."""
    from babymerge.evaluation.layout import build_layout

    build_layout([shared], root)
    return root


def winoground_features(shared: Path):
    """CLIP image embeddings of the 800 Winoground images as a feature file (rows interleave image_0/image_1)."""
    from babymerge.features.store import FeatureFile

    img = torch.from_numpy(np.load(shared / "winoground" / "winoground_clip_vitb32_embeddings.npz")["img"]).float()
    ids = [f"{row // 2}_image_{row % 2}.png" for row in range(img.shape[0])]
    return FeatureFile(ids, img.unsqueeze(1) * 10, torch.zeros(1, img.shape[1]))


def reference_logprob(model, tokenizer, prefix: str, completion: str, image: torch.Tensor | None = None) -> float:
    """BabyLM 2025's causal rule (evaluation-pipeline-2025, ``process_causal_sentences``): tokenise the
    sentence ``prefix + completion`` with special tokens; score the tokens whose offset end exceeds
    ``len(sentence) - len(completion) + offsets[0][0]`` (the completion keeps its leading space); position 0 has
    no prediction. The sum is taken in float64 from one unpadded forward pass.
    """
    sentence = prefix + completion
    encoding = tokenizer(sentence, add_special_tokens=True, return_offsets_mapping=True)
    offsets = encoding["offset_mapping"]
    start_char = len(sentence) - len(completion) + offsets[0][0]
    ids = torch.tensor([encoding["input_ids"]])
    with torch.no_grad():
        features = None if image is None else image.reshape(1, 1, -1)
        logprobs = torch.log_softmax(model(input_ids=ids, image_features=features).logits[0].double(), dim=-1)
    return sum(float(logprobs[i - 1, ids[0, i]]) for i, (_, end) in enumerate(offsets) if end > start_char and i > 0)


def read_jsonl_files(folder: Path) -> list[tuple[str, dict]]:
    return [
        (file.stem, json.loads(line))
        for file in sorted(folder.glob("*.jsonl"))
        for line in file.read_text().splitlines()
        if line.strip()
    ]


def read_ewok_zip(path: Path, password: bytes) -> list[dict]:
    with zipfile.ZipFile(path) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jsonl"))
        return [
            json.loads(line)
            for n in names
            for line in io.StringIO(archive.read(n, pwd=password).decode())
            if line.strip()
        ]


def spread(n: int, k: int = 12) -> list[int]:
    return list(range(0, n, max(n // k, 1)))[:k]


def macro(items: list[tuple[str, float]]) -> float:
    """The mean of per-key means (BabyLM's macro-average over sub-tasks)."""
    groups = defaultdict(list)
    for key, value in items:
        groups[key].append(value)
    return float(np.mean([np.mean(v) for v in groups.values()]))


def resps(sample: dict) -> list[float]:
    """The log-likelihoods of an lm-eval sample's responses."""
    return [r[0][0] for r in sample["resps"]]
