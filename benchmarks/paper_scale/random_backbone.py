"""A randomly initialised vision backbone with DINOv2-large's shape, saved as a folder ``babymerge features
--backbone`` loads: for timing feature extraction where the pretrained weights cannot be downloaded.

Shape from facebook/dinov2-large's published config (24 layers, width 1024, 16 heads, patch 14) and its image
processor (resize to 256, centre crop 224, ImageNet mean and std). The features mean nothing; their cost is real.

    python benchmarks/paper_scale/random_backbone.py /tmp/dinov2-large-random [--layers 2]
"""

from __future__ import annotations

import argparse

import torch
from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

from babymerge.features.backbone import IMAGENET_MEAN, IMAGENET_STD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--layers", type=int, default=24, help="24 as DINOv2-large; fewer for a quick check")
    args = parser.parse_args()
    config = Dinov2Config(
        hidden_size=1024,
        num_hidden_layers=args.layers,
        num_attention_heads=16,
        mlp_ratio=4,
        patch_size=14,
        image_size=518,
        layerscale_value=1.0,
    )
    torch.manual_seed(0)
    Dinov2Model(config).save_pretrained(args.out)
    processor = BitImageProcessor(
        size={"shortest_edge": 256},
        resample=3,
        crop_size={"height": 224, "width": 224},
        image_mean=IMAGENET_MEAN,
        image_std=IMAGENET_STD,
    )
    processor.save_pretrained(args.out)
    print(f"wrote a random {args.layers}-layer DINOv2-large-shaped backbone to {args.out}")


if __name__ == "__main__":
    main()
