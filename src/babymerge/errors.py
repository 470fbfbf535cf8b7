"""The one error type users see: its message is a single line naming the file, tensor or field at fault."""


class BabymergeError(Exception):
    """Bad input or a failed stage; the CLI prints the message on one line and exits non-zero."""
