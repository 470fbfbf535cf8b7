"""Initial checkpoints for the GPU probes, made on the device from the study's init (deterministic CPU init).

Round 1: vocabularies 2,000 and 8,000 (seed 0) and 6 layers; round 2 (prefix-space tokenizer): 6 layers and
seed 1; round 3: seeds 2-5 with the prefix-space tokenizer and 1-3 with the study's own.
Run from the repository root: python3 .gpudata/probe_inits.py ROUND
"""

import sys

import torch
from safetensors.torch import load_file

from babymerge.modeling import BabyLlavaForConditionalGeneration
from babymerge.training.init import init_model, load_tokenizer, save_checkpoint

G = ".gpudata"


def six_layers(source: str, out: str) -> None:
    base = BabyLlavaForConditionalGeneration.from_pretrained(source)
    config = base.config
    config.text_config.num_hidden_layers = 6
    if getattr(config.text_config, "layer_types", None):
        config.text_config.layer_types = None
    torch.manual_seed(0)
    model = BabyLlavaForConditionalGeneration(config)
    model.model.black_image_features.copy_(base.model.black_image_features)
    save_checkpoint(model, load_tokenizer(source), out)


black = load_file(f"{G}/features.safetensors")["black"]
if sys.argv[1] == "1":
    for vocab in (2000, 8000):
        tokenizer = load_tokenizer(f"{G}/tok_v{vocab}")
        save_checkpoint(init_model(tokenizer, "small", seed=0, black_features=black), tokenizer, f"{G}/init_v{vocab}")
    six_layers(f"{G}/init_v4000", f"{G}/init_l6")
elif sys.argv[1] == "3":
    for name, seeds in (("init_ps", range(2, 6)), ("init_v4000", range(1, 4))):
        tokenizer = load_tokenizer(f"{G}/{name}")
        for seed in seeds:
            model = init_model(tokenizer, "small", seed=seed, black_features=black)
            save_checkpoint(model, tokenizer, f"{G}/{name}_seed{seed}")
else:
    tokenizer = load_tokenizer(f"{G}/init_ps")
    save_checkpoint(init_model(tokenizer, "small", seed=1, black_features=black), tokenizer, f"{G}/init_ps_seed1")
    six_layers(f"{G}/init_ps", f"{G}/init_ps_l6")
print("inits ok")
