"""``babymerge sweep`` end to end: run (or resume) the grid, then write the table, the plots and, on request, the
pairs' diagnostics (``diagnose/sweep.py``) and full merged folders through mergekit."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..diagnose.sweep import check_held_out, write_diagnostics
from ..errors import BabymergeError
from ..features.store import RANDOM_BACKBONE_WARNING
from ..io import atomic_dir
from ..merging.llava_text import is_text_lm_folder
from .grid import pair_id
from .merge import MergeSpec
from .report import TIES, markdown_table, point_rows, primary_metric, write_report
from .run import Sweep, SweepConfig
from .store import LEGACY, PointKey


@dataclass
class SweepOutcome:
    records: list[dict[str, Any]]
    table: str
    files: list[Path]
    note: str


def wait_for_points(sweep: Sweep, timeout_s: float = 24 * 3600) -> list[dict[str, Any]]:
    """Rank 0's barrier: wait until the store holds every (point, task) of the grid; return the grid's records."""
    sweep.store.wait_for(sweep.grid_keys(), "the other ranks' points", timeout_s, check=sweep.wait_check)
    return sweep.current(sweep.store.records(with_items=True))


def sweep_and_report(
    config: SweepConfig, out_dir: str | os.PathLike, materialize: list[str] | None = None, progress: bool = True
) -> SweepOutcome:
    """Run this process's share of the sweep; rank 0 then waits for the rest and writes the report."""
    out_dir = Path(out_dir)
    check_held_out(config)
    sweep = Sweep(config, progress=progress)
    sweep.run()
    if int(os.environ.get("RANK", 0)) != 0:
        return SweepOutcome(sweep.store.records(), "", [], "")
    records = wait_for_points(sweep)
    note = RANDOM_BACKBONE_WARNING if sweep.random_backbone else ""
    files = write_report(records, out_dir, note=note)
    files += write_diagnostics(config, sweep.pairs(), records, out_dir, progress)
    if materialize:
        files += materialize_merges(sweep, records, materialize, out_dir / "merged")
    return SweepOutcome(records, markdown_table(records), files, note)


def chosen_specs(sweep: Sweep, records: list[dict[str, Any]], choices: list[str]) -> list[MergeSpec]:
    """``method:alpha`` choices as given, and ``best``: each method's alpha with the best mean primary score."""
    specs = []
    for choice in choices:
        if choice == "best":
            tasks, rows = point_rows(records)
            for method in sweep.config.methods:
                scored = [
                    (sum(r[t] for t in tasks) / len(tasks), -abs(r["alpha"] - 0.5), r["alpha"])
                    for r in rows
                    if r["method"] == method and all(r.get(t) is not None for t in tasks)
                ]
                if scored:
                    alpha = max(scored)[2]
                    specs.append(spec_of(sweep, method, alpha))
            continue
        method, _, alpha = choice.partition(":")
        try:
            value = float(alpha)
        except ValueError:
            raise BabymergeError(f"--materialize {choice!r}: expected METHOD:ALPHA (e.g. linear:0.5) or best") from None
        specs.append(spec_of(sweep, method, value))
    unique: dict[tuple, MergeSpec] = {}
    for spec in specs:
        unique.setdefault((spec.method, spec.alpha), spec)
    return list(unique.values())


def spec_of(sweep: Sweep, method: str, alpha: float) -> MergeSpec:
    parameters = sweep.config.method_parameters.get(method, {})
    return MergeSpec(method=method, alpha=alpha, parameters=parameters, seed=sweep.config.seed)


def write_scored_weights(folder: Path, state: dict[str, Any]) -> None:
    """Replace the tensors of every safetensors shard in ``folder`` by ``state``'s (same names, same shards)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from ..formats.checkpoint import weight_files

    for shard in weight_files(folder):
        with safe_open(str(shard), framework="pt") as handle:
            names, metadata = list(handle.keys()), handle.metadata()
        save_file({name: state[name].contiguous() for name in names}, str(shard), metadata=metadata)


def materialize_merges(sweep: Sweep, records: list[dict[str, Any]], choices: list[str], out_dir: Path) -> list[Path]:
    """Write each chosen merge of the sweep's first pair as a full folder through mergekit, with a model card."""
    import yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    from ..logs import torch_dtype_setter

    try:  # babymerge's architecture, methods and guard (normally loaded by its start-up hook)
        from ..merging.plugin import register

        register()
    except ImportError:
        pass
    text, multimodal = sweep.pairs()[0]
    written = []
    for spec in chosen_specs(sweep, records, choices):
        config = spec.mergekit_config(text.path, multimodal.path, sweep.config.base)
        if is_text_lm_folder(text.path):  # the scored model is the multimodal one, so it goes first (llava_text.py)
            config["models"].sort(key=lambda entry: entry["model"] != str(Path(multimodal.path).resolve()))
        seed = f"_seed{spec.seed}" if spec.randomised else ""
        folder = out_dir / f"{spec.method}_alpha{spec.alpha:g}{seed}_{text.name}+{multimodal.name}"
        if folder.exists():
            written.append(folder)
            continue
        with atomic_dir(folder, create=False) as tmp:  # merge and card appear together or not at all
            seed = spec.seed if spec.randomised else None
            options = MergeOptions(trust_remote_code=True, copy_tokenizer=True, lazy_unpickle=True, random_seed=seed)
            source = yaml.safe_dump(config, sort_keys=False)
            with torch_dtype_setter():  # mergekit sets the output config's dtype through a deprecated name
                run_merge(MergeConfiguration.model_validate(config), str(tmp), options=options, config_source=source)
            if spec.randomised:  # mergekit-yaml draws its masks in another order: write the merge that was scored
                write_scored_weights(tmp, sweep.merged_state((text, multimodal), spec))
            card = tmp / "README.md"
            previous = card.read_text() if card.exists() else f"# {folder.name}\n"
            card.write_text(previous.rstrip("\n") + "\n" + card_scores(sweep, records, (text, multimodal), spec))
        written.append(folder)
    return written


def card_scores(sweep: Sweep, records: list[dict[str, Any]], pair: tuple, spec: MergeSpec) -> str:
    """The card section listing the sweep's primary scores of one merge, and tie fractions above zero."""
    point = PointKey.make(pair_id(pair), spec.method, spec.alpha, "", LEGACY).point
    scores = [
        r
        for r in records
        if PointKey.of(r).point == point and "/" not in r["task"]
        if r["metric"] == primary_metric(records, r["task"]) or (r["metric"] == TIES and r["value"] > 0)
    ]
    lines = ["", "## babymerge sweep scores", "", "| task | metric | score (x100) |", "|---|---|---|"]
    lines += [f"| {r['task']} | {r['metric']} | {100 * r['value']:.2f} |" for r in scores]
    if sweep.config.limit:
        lines += ["", f"Scores: limit {sweep.config.limit} per task (a sample across paradigms), not the full sets."]
    if spec.randomised:
        lines += ["", f"Weights: the merge that was scored (seed {spec.seed}, drawn in babymerge's in-memory order)."]
    if sweep.random_backbone:
        lines += ["", f"Note: {RANDOM_BACKBONE_WARNING}."]
    return "\n".join(lines) + "\n"
