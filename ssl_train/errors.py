"""The exceptions that the CLI turns into a one-line message and exit code 2."""
from __future__ import annotations


class UserError(Exception):
    """Bad input a person can fix: the message names the problem and the fix, in one line."""


class ExportError(UserError):
    """An export could not produce a faithful model folder (nothing was replaced)."""
