"""``python -m orchestrator.data {fetch,convert,check}``: get the data a sweep reads.

- ``fetch`` downloads and unpacks the official CIFAR python archives (``fetch.py``, with the
  resumable HTTP transfer in ``download.py``);
- ``convert <space>`` builds a space's truth table from the benchmark's official files,
  with the converter the space itself provides (``convert`` on its class: NB201's in
  ``spaces/nb201/convert.py``, NB101's in ``spaces/nb101/convert.py``);
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
