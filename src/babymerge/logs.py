"""Library log messages that say nothing about a babymerge run, dropped by their exact text where babymerge
causes them (every other message passes)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator

TORCH_DTYPE = "`torch_dtype` is deprecated! Use `dtype` instead!"


class DropMessages(logging.Filter):
    """Drops the log records whose message ``drop(message)`` accepts."""

    def __init__(self, drop: Callable[[str], bool]) -> None:
        super().__init__()
        self.drop = drop

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.drop(record.getMessage())


@contextlib.contextmanager
def dropped(logger_name: str, drop: Callable[[str], bool]) -> Iterator[None]:
    """``drop``'s messages of one logger are dropped inside the block."""
    logger, found = logging.getLogger(logger_name), DropMessages(drop)
    logger.addFilter(found)
    try:
        yield
    finally:
        logger.removeFilter(found)


def torch_dtype_setter() -> contextlib.AbstractContextManager:
    """Around mergekit's ``run_merge`` (the guarded merge of every babymerge path): mergekit 0.1.5 sets the output
    config's dtype through transformers' deprecated ``torch_dtype`` name; that one warning is dropped."""
    return dropped("transformers.configuration_utils", lambda message: message == TORCH_DTYPE)


@contextlib.contextmanager
def no_progress_bars(off: bool = True) -> Iterator[None]:
    """``--no-progress`` (``off``): inside the block no progress bar at all, transformers' own and every tqdm bar
    (lm-eval and babyllava pass ``disable=False`` explicitly on rank 0, so tqdm's ``TQDM_DISABLE`` would not
    reach them); both come back afterwards."""
    if not off:
        yield
        return
    import tqdm.std
    from transformers.utils import logging as hf_logging

    bars, init = hf_logging.is_progress_bar_enabled(), tqdm.std.tqdm.__init__

    def disabled(self, *args, **kwargs) -> None:
        init(self, *args, **{**kwargs, "disable": True})

    hf_logging.disable_progress_bar()
    tqdm.std.tqdm.__init__ = disabled
    try:
        yield
    finally:
        tqdm.std.tqdm.__init__ = init
        if bars:
            hf_logging.enable_progress_bar()
