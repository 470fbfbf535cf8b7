"""Where a model or backbone name points, checked before anything loads: a local folder or a Hub repo.

A name that looks local (absolute, ``./``, ``../``, ``~``, more than one ``/``, a backslash, or whose first
part exists here) never goes to the Hub: a missing folder is one line at once. A Hub name (``name`` or
``org/name``) is refused at once when the Hub cannot be used (``HF_HUB_OFFLINE`` set, or no connection) and the
name is not in the Hugging Face cache; when the cache has it, the process goes offline so that transformers
reads the cache instead of retrying the network (about 30 s per file otherwise). Imports nothing heavy.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from .errors import BabymergeError

CONNECT_TIMEOUT_S = 2.0
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def looks_local(name: str) -> bool:
    """True for names that can only be a path (a Hub id is ``name`` or ``org/name``)."""
    if name.startswith(("/", "./", "../", "~", ".\\", "..\\")) or "\\" in name or name in (".", ".."):
        return True
    parts = name.split("/")
    return len(parts) > 2 or (len(parts) == 2 and Path(parts[0]).exists()) or Path(name).exists()


def resolve(name: str, what: str, *, instead: str = "") -> str:
    """``name`` (``~`` expanded) when it is a local folder or a usable Hub repo; else one ``BabymergeError`` line.

    ``what`` says what the name is for in the message (``model``, ``backbone``); ``instead`` offers an
    alternative to an unusable Hub name (e.g. ``--random-backbone``).
    """
    if looks_local(name):
        path = Path(name).expanduser()
        if not path.exists():
            raise BabymergeError(f"{name}: no such folder (the {what} looks like a local path)")
        if not path.is_dir():
            raise BabymergeError(f"{name}: not a folder (the {what} must be a model folder or a Hub name)")
        return str(path)
    offline = _offline_reason()
    if offline:
        if not _cached(name):
            raise BabymergeError(
                f"{name}: not a local folder and not in the Hugging Face cache, and {offline}; give the {what} "
                f"as a local folder{instead}"
            )
        go_offline()
    return name


def _offline_reason() -> str | None:
    """Why the Hub cannot be used now (``HF_HUB_OFFLINE`` or no connection), or None."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(var) for var in PROXY_VARS):
        return None  # the proxy decides; a direct connection says nothing
    url = urlparse(constants.ENDPOINT)
    host, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
    return None if _connects(host, port) else f"the Hub ({host}:{port}) cannot be reached"


def _connects(host: str, port: int, timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """One TCP connection attempt, name lookup included, bounded by ``timeout`` seconds."""
    result: list[bool] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


def go_offline() -> None:
    """Make this process read the Hugging Face cache only (what ``HF_HUB_OFFLINE=1`` does at start-up)."""
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
