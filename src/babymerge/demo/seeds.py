"""``babymerge demo --seeds N`` (``seeds: [0, 1, 2]``): one text-only/multimodal pair per training seed.

The world (or real data), tokenizer and image features are made once, from ``seed``, in ``OUT``; each seed S gets
``OUT/seed-S/`` with its own initialisation (``init/``, seeded S), its runs (seed S: data order and dropout),
the seed pre-training run when ``seed_words`` asks for one, and its ``sweep/`` store and tables. With
``pairing: best`` the paper's rule picks the checkpoint names with the best mean selection score over the seeds,
and every seed merges that pair. ``OUT/seeds/`` holds the tables across seeds (``sweep.seeds``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..sweep.config import SweepConfig
from .config import DemoConfig
from .run import (
    RANDOM_NOTE,
    WORLD_TITLES,
    Inputs,
    base_checkpoint,
    log,
    make_init,
    sweep_configs,
    train_both,
)


def seed_config(config: DemoConfig, seed: int) -> DemoConfig:
    """The demo's settings for one seed: its folder ``OUT/seed-S`` and its seed."""
    return config.model_copy(update={"out": config.out / f"seed-{seed}", "seed": seed, "seeds": None})


def chosen_pair(best: SweepConfig, names: dict[str, str]) -> SweepConfig:
    """``best`` merging the named checkpoints of its runs (a single checkpoint per side: no selection left)."""
    update = {role: Path(getattr(best, role)) / "checkpoints" / name for role, name in names.items()}
    return best.model_copy(update=update)


def run_seeds(config: DemoConfig, inputs: Inputs, tokenizer: Path, features: Path, timed: Callable) -> dict[str, Any]:
    """Train and sweep every seed, then the tables across seeds; returns the demo's outcome."""
    from ..sweep.report import write_report
    from ..sweep.run import Sweep, pair_id
    from ..sweep.seeds import select_by_mean, write_seed_report
    from ..sweep.store import ResultStore

    configs = {seed: seed_config(config, seed) for seed in config.seeds}
    sweeps: dict[int, tuple[SweepConfig, SweepConfig]] = {}
    for seed, mine in configs.items():
        log(f"seed {seed}: {mine.out}")
        init = timed(f"init_seed{seed}", make_init, mine, tokenizer, features)
        runs = timed(f"training_seed{seed}", train_both, mine, inputs, init, features)
        sweeps[seed] = sweep_configs(mine, inputs, runs, base_checkpoint(mine, init), features)
    shared: Sweep | None = None  # one model slot and scorer for every seed (same architecture and tokenizer)

    def sweep(sweep_config: SweepConfig) -> Sweep:
        nonlocal shared
        made = Sweep(sweep_config, progress=config.progress, share_from=shared)
        shared = shared or made
        return made

    if config.pairing == "best":
        for seed, (best, _) in sweeps.items():
            timed(f"selection_seed{seed}", sweep(best).select)
        stores = {seed: ResultStore(best.store).records() for seed, (best, _) in sweeps.items()}
        names = select_by_mean(stores)
        log(f"selection over {len(stores)} seeds (best mean score): {names}")
        sweeps = {seed: (chosen_pair(best, names), along) for seed, (best, along) in sweeps.items()}
    stores, pairs, note = {}, set(), ""
    titles = WORLD_TITLES if inputs.synthetic else None
    for seed, (best, along) in sweeps.items():
        merged = sweep(best)
        timed(f"sweep_best_pair_seed{seed}", merged.run)
        timed(f"sweep_aligned_seed{seed}", sweep(along).run)
        note = note or (RANDOM_NOTE if merged.random_backbone else "")
        pairs.add(pair_id(merged.pairs()[0]))
        stores[seed] = ResultStore(best.store).records(with_items=True)
        label = "random vision backbone" if note else ""
        write_report(stores[seed], Path(best.store).parent, label, titles, selected=[pair_id(merged.pairs()[0])])
    text, files = write_seed_report(
        stores, config.out / "seeds", titles, sorted(pairs), "random vision backbone" if note else ""
    )
    return {
        "equal_words": "",
        "table": text,
        "files": files,
        "note": note,
        "pair": ", ".join(sorted(pairs)),
        "synthetic": inputs.synthetic,
        "remarks": [],
        "seeds": list(configs),
    }
