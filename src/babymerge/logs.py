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
