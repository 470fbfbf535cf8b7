"""Evaluation throughput (items/s): babyllava through lm-eval vs the same weights as a plain LlamaForCausalLM
through lm-eval's ``hf`` model, measured side by side in one process.

    python benchmarks/eval_throughput.py --data-dir DIR [--task babylm_entity_tracking_fast] [--preset paper]
        [--items 200] [--repeats 12]

DIR is a BabyLM ``evaluation_data`` folder. An item is one lm-eval document: a BLiMP pair, an Entity Tracking
story with its five options. The tokenizer is trained here on the BabyLM text in ``--text`` (a few corpora of
../shared/data/babylm_text/train_600k by default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from lm_eval import simple_evaluate  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402
from transformers import LlamaForCausalLM  # noqa: E402

from babymerge.evaluation import tasks_dir  # noqa: E402
from babymerge.evaluation.lm import BabyLlavaLM  # noqa: E402
from babymerge.training.init import init_model  # noqa: E402
from babymerge.training.tokenizer import train_tokenizer  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def plain_llama(model) -> LlamaForCausalLM:
    """A LlamaForCausalLM holding babyllava's language model and LM head (the projector is dropped)."""
    llama = LlamaForCausalLM(model.config.text_config)
    state = {f"model.{k}": v for k, v in model.model.language_model.state_dict().items()}
    state["lm_head.weight"] = model.lm_head.weight
    missing, unexpected = llama.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in m for m in missing), (missing, unexpected)
    return llama.to(model.device, model.dtype).eval()


def timed(lm, manager: TaskManager, task: str, items: int) -> tuple[float, float]:
    if isinstance(lm, BabyLlavaLM):  # a cold evaluation, as one lm_eval run: no tokenisation or plan kept
        lm._splits.clear()
        lm._plans.clear()
    start = time.perf_counter()
    out = simple_evaluate(model=lm, tasks=[task], task_manager=manager, limit=items, bootstrap_iters=0)
    seconds = time.perf_counter() - start
    return items / seconds, out["results"][task]["acc,none"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument(
        "--text",
        nargs="*",
        default=[SHARED / "babylm_text/train_600k/childes.train", SHARED / "babylm_text/train_600k/simple_wiki.train"],
    )
    parser.add_argument("--task", default="babylm_entity_tracking_fast", help="--model hf is refused on BLiMP")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--items", type=int, default=200, help="lm-eval documents per round (limit)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=12, help="rounds")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tokenizer = train_tokenizer([Path(p) for p in args.text], vocab_size=16000)
    model = init_model(tokenizer, args.preset, seed=0).to(args.device).eval()
    llama = plain_llama(model)
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata={"data_dir": args.data_dir})
    models = {
        "babyllava (--model babyllava)": BabyLlavaLM(pretrained=model, tokenizer=tokenizer, batch_size=args.batch_size),
        "LlamaForCausalLM (--model hf)": HFLM(
            pretrained=llama, tokenizer=tokenizer, backend="causal", batch_size=args.batch_size
        ),
    }
    for lm in models.values():  # warm-up
        timed(lm, manager, args.task, min(args.items, 64))
    names = list(models)
    rates: dict[str, list[float]] = {name: [] for name in names}
    paired = []
    for round_ in range(args.repeats):  # short alternating rounds: load changes hit both alike
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            rate, acc = timed(models[name], manager, args.task, args.items)
            rates[name].append(rate)
            print(f"round {round_}: {name}: {rate:.1f} items/s (acc {acc:.4f})", flush=True)
        paired.append(rates[names[0]][-1] / rates[names[1]][-1])
    print(
        f"\n{args.task}: device {args.device}, torch threads {torch.get_num_threads()}, preset {args.preset}, "
        f"{args.items} items x {args.repeats} rounds, batch {args.batch_size}"
    )
    print("| model | items/s (median) | items/s (best) |\n|---|---|---|")
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):.1f} | {max(values):.1f} |")
    print(f"\nper-round ratios babyllava / plain Llama: {', '.join(f'{r:.2f}' for r in paired)}")
    print(f"median per-round ratio: {statistics.median(paired):.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
