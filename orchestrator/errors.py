"""The error a user can cause and fix: shown as one line, before any work starts."""


class SweepError(Exception):
    """Bad input (unknown name, missing file, malformed cell, bad override)."""
