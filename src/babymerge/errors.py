"""The one error type users see: its message is a single line naming the file, tensor or field at fault.

The CLI turns these (and pydantic's ``ValidationError``) into one line and exit status 2; any other exception is
a bug and keeps its traceback.
"""


class BabymergeError(Exception):
    """Bad input or a failed stage; the CLI prints the message on one line and exits non-zero."""


class BadValueError(BabymergeError, ValueError):
    """A bad value from a function whose Python callers may catch ``ValueError`` (conversion, presets, sharding)."""


def one_line(error: BaseException) -> str:
    """A user error as one line (pydantic's ``ValidationError`` as ``field: message; ...``)."""
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        parts = [f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in error.errors()]
        return f"invalid {error.title}: " + "; ".join(parts)
    return " ".join(str(error).split())
