"""The error a user can cause and fix: shown as one line, before any work starts."""
from __future__ import annotations


class SweepError(Exception):
    """Bad input (unknown name, missing file, malformed cell, bad override).

    Its message is one line whatever it quotes: line breaks that came in with a user's
    value or a library's message are folded into spaces, because the command line prints
    it as exactly one ``proxysweep: error:`` line."""

    def __init__(self, message: object = "") -> None:
        lines = (line.strip() for line in str(message).splitlines())
        super().__init__(" ".join(line for line in lines if line))
