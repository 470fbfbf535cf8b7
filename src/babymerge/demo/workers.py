"""The demo on several CPU processes (``workers``): the text-only and multimodal runs train side by side, and
the sweep points are shared among ranks (RANK / WORLD_SIZE, as under torchrun) writing one store.

Each process uses ``threads`` torch threads: two one-thread processes use two cores without the collapse that
two threads of one small model show on a loaded machine (docs/demo.md, Threads).
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess

from ..errors import BabymergeError, one_line
from ..sweep.config import SweepConfig
from ..training.config import TrainConfig


def _start(target, *args) -> BaseProcess:
    process = multiprocessing.get_context("spawn").Process(target=target, args=args)
    process.start()
    return process


def _in_child(step, *args) -> None:
    """Run ``step`` in a child process: a user error is one line on stderr (as the CLI prints it), exit code 1."""
    from pydantic import ValidationError

    try:
        step(*args)
    except (BabymergeError, ValidationError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr, flush=True)
        sys.exit(1)


def _failed(processes: dict[str, BaseProcess]) -> None:
    for what, process in processes.items():
        if process.exitcode not in (None, 0):
            raise BabymergeError(f"{what} failed in its own process (exit code {process.exitcode}); its error is above")


def _train(config: TrainConfig, threads: int) -> None:
    import torch

    from ..training import train

    torch.set_num_threads(threads)
    train(config)


def train_side_by_side(configs: list[TrainConfig], threads: int) -> None:
    """Train each config in its own process, all at once; a failed run is named once all have ended."""
    processes = {f"training the {c.mode} model": _start(_in_child, _train, c, threads) for c in configs}
    for process in processes.values():
        process.join()
    _failed(processes)


@contextmanager
def rank(index: int, world_size: int) -> Iterator[None]:
    """This process as rank ``index`` of ``world_size`` for the sweep (RANK / WORLD_SIZE), restored after."""
    saved = {name: os.environ.get(name) for name in ("RANK", "WORLD_SIZE")}
    os.environ.update(RANK=str(index), WORLD_SIZE=str(world_size))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def others_alive(sweep, others: dict[str, BaseProcess], parent: int | None = None) -> None:
    """Raise when another rank has failed, or all have ended with ``sweep``'s grid incomplete, or (in a child
    rank) when ``parent``, the process that started it, has ended: the checks a waiting rank runs at each poll."""
    _failed(others)
    if others and all(p.exitcode == 0 for p in others.values()) and not sweep.grid_keys() <= sweep.store.done():
        raise BabymergeError(f"{sweep.store.path}: the other sweep ranks ended without scoring their points")
    if parent is not None and os.getppid() != parent:
        raise BabymergeError(f"{sweep.store.path}: the demo process that started this sweep rank has ended")


def wait_for_grid(
    sweep, others: dict[str, BaseProcess], poll_s: float = 1.0, parent: int | None = None, timeout_s: float = 86400
) -> None:
    """Wait until the store holds every result of ``sweep``'s grid, running :func:`others_alive` at each poll."""
    check = lambda: others_alive(sweep, others, parent)  # noqa: E731
    sweep.store.wait_for(sweep.grid_keys(), "the other ranks' points", timeout_s, poll_s, check)


def sweep_rank(
    configs: tuple[SweepConfig, SweepConfig],
    index: int,
    world_size: int,
    threads: int,
    progress: bool,
    others: dict[str, BaseProcess] | None = None,
    parent: int | None = None,
):
    """Rank ``index``'s share of the demo's two sweeps (the second once the first's grid is complete); returns
    the first sweep (rank 0 keeps it for the report)."""
    import torch

    from ..sweep.run import Sweep

    torch.set_num_threads(threads)
    first, second = configs
    others = others or {}
    with rank(index, world_size):
        sweep = Sweep(first, progress=progress)
        sweep.wait_check = lambda: others_alive(sweep, others, parent)  # also while the selection rule waits
        sweep.run()
        wait_for_grid(sweep, others, parent=parent)
        along = Sweep(second, progress=progress, share_from=sweep)
        along.run()
        wait_for_grid(along, others, parent=parent)
    return sweep


def _sweep_child(
    configs: tuple[SweepConfig, SweepConfig], index: int, world_size: int, threads: int, parent: int
) -> None:
    _in_child(sweep_rank, configs, index, world_size, threads, False, None, parent)


def sweep_side_by_side(configs: tuple[SweepConfig, SweepConfig], workers: int, threads: int, progress: bool):
    """Both sweeps on ``workers`` processes: ranks 1.. in child processes, rank 0 here; returns rank 0's first
    sweep once every rank's points are stored. If this process fails, the children are stopped."""
    parent = os.getpid()
    others = {f"sweep rank {i}": _start(_sweep_child, configs, i, workers, threads, parent) for i in range(1, workers)}
    try:
        sweep = sweep_rank(configs, 0, workers, threads, progress, others)
    except BaseException:
        for process in others.values():
            process.terminate()
        raise
    finally:
        for process in others.values():
            process.join()
    _failed(others)
    return sweep
