"""``python -m orchestrator.data {fetch,convert,check}``: get the data a sweep reads.

- ``fetch`` downloads and unpacks the official CIFAR python archives (``fetch.py``, with the
  resumable HTTP transfer in ``download.py``);
- ``convert`` builds the NAS-Bench-201 truth table from the official benchmark files
  (``nb201_convert.py``, reading them with ``nb201_files.py``) and the NAS-Bench-101 one
  through ``spaces.nb101.convert``;
- ``check`` tells which data files are present, which come from the embedded defaults and
  what each sweep still lacks (``check.py``).

A mistake a user can make and fix (bad arguments, a missing or malformed file, a wrong
checksum, a network failure) is a ``DataError``: the command prints it as one line on stderr
and exits with status 2, as the sweep command does with its ``SweepError``.
"""
from __future__ import annotations


class DataError(Exception):
    """A user error of the data command, shown as one line (``proxysweep: error: ...``)."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, with its type when the message is empty."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
