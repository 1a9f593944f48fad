"""Errors any part of the kit may raise for the CLI to print as one line, without a traceback."""
from __future__ import annotations


class UsageError(Exception):
    """The command line asks for something that does not exist or does not fit (exit 2)."""
