"""User-facing errors of the command line, and library errors re-worded in its flags.

The library names its own arguments (`init`, `cross_attention=...`); a command-line user should read
the flags they typed instead (`--init`, `--cross-attention ...`).
"""

from __future__ import annotations

import contextlib
import re


class CliError(Exception):
    """A user-facing problem: printed as one line."""


def flag_worded(message: str, flags: dict[str, str]) -> str:
    """`message` with each library argument name in `flags` replaced by its flag: `name=value` becomes
    `flag value`, a bare `name` becomes `flag`."""
    for name, flag in flags.items():
        message = re.sub(rf"(?<![\w-]){name}=(['\"]?)([^'\"\s,;]+)\1", rf"{flag} \2", message)
        message = re.sub(rf"(?<![\w-]){name}\b", flag, message)
    return message


@contextlib.contextmanager
def as_flags(**flags: str):
    """Re-raises a ValueError from the library as a CliError worded in these flags (name -> flag)."""
    try:
        yield
    except ValueError as e:
        raise CliError(flag_worded(str(e), flags)) from e
