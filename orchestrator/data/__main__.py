"""``python -m orchestrator.data {fetch,convert,check}``: the command line of the data tools.

argparse, with its error method replaced so that a bad argument, like every other user
error of this command, is one line on stderr (``proxysweep: error: ...``) and exit status 2.
"""
from __future__ import annotations

import argparse
import inspect
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from orchestrator.data import DataError

PROG = "python -m orchestrator.data"
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


class OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"proxysweep: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def default_root() -> Path:
    """The root ``conf/config.yaml`` gives ``data.root``: ``$PROXYSWEEP_DATA``, else ./data."""
    from benchdata.root import ENV_VAR, resolve_root

    return resolve_root(os.environ.get(ENV_VAR) or "data")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Get, build and check the data proxysweep sweeps read.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{fetch,convert,check}")

    fetch = sub.add_parser(
        "fetch", help="download and unpack the official CIFAR-10 or CIFAR-100 python archive",
        description="Download the official archive (resumable: rerun after a cut connection), check its "
        "SHA-256 and unpack it under the data root (cifar-10-batches-py/ or cifar-100-python/). "
        "Progress goes to stdout; errors are one line on stderr.",
        epilog="example: python -m orchestrator.data fetch cifar10 --root /data, then run sweeps with "
        "data.root=/data data.images.cifar10=cifar-10-batches-py")
    fetch.add_argument("dataset", choices=["cifar10", "cifar100"])
    fetch.add_argument("--root", type=Path, default=None,
                       help="data root to unpack under (default: $PROXYSWEEP_DATA, else ./data, as data.root)")
    fetch.add_argument("--url", default=None, help="download from this mirror instead of www.cs.toronto.edu")
    fetch.add_argument("--sha256", default=None, help="expected SHA-256 of the archive (default: the official one)")
    fetch.add_argument("--keep-archive", action="store_true", help="keep the .tar.gz after unpacking it")
    fetch.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the server (default 60)")

    from spaces import SPACES

    convertible = {name: entry.cls for name, entry in sorted(SPACES.items()) if hasattr(entry.cls, "convert")}
    convert = sub.add_parser(
        "convert", help="build a truth table (Parquet) from official benchmark files",
        description=" ".join(f"{name}: {_first_sentence(cls.convert)}" for name, cls in convertible.items()),
        epilog="example: python -m orchestrator.data convert nb201 NATS-tss-v1_0-3ffb9-simple "
        "/data/nb201_accuracy.parquet")
    convert.add_argument("benchmark", choices=list(convertible), help="the search space whose table to build")
    convert.add_argument("input", type=Path, help="the official file or folder")
    convert.add_argument("output", type=Path, help="the Parquet file to write (put it under the data root)")
    convert.add_argument("--no-verify", action="store_true",
                         help="skip the converter's own checks of the input where it has any (nb101: every cell's hash)")

    check = sub.add_parser(
        "check", help="say which data files are present and which sweeps can run",
        description="List every data file the configs name (found under the data root, taken from the "
        "embedded defaults, or missing with how to get it) and whether each sweep has what it reads. "
        "Judges the sweep named by +sweep=NAME, else every sweep in conf/sweep/. Exit status 0 when "
        "the judged sweeps can run, 1 otherwise.",
        epilog="example: python -m orchestrator.data check +sweep=nb201_all data.root=/data")
    check.add_argument("overrides", nargs="*", metavar="OVERRIDE",
                       help="Hydra overrides, as for python -m orchestrator (e.g. +sweep=nb201_all data.root=DIR)")
    check.add_argument("--all-sweeps", action="store_true", help="judge every sweep, even with +sweep=NAME")
    return parser


def _first_sentence(fn: object) -> str:
    """A converter's docstring up to its first full stop, on one line."""
    text = " ".join(inspect.cleandoc(getattr(fn, "__doc__", None) or "").split())
    return text.split(". ")[0].rstrip(".") + "."


def run_fetch(args: argparse.Namespace) -> int:
    from orchestrator.data.fetch import DATASETS, fetch

    if args.sha256 is not None and not SHA256.match(args.sha256):
        raise DataError(f"--sha256 must be 64 hexadecimal digits, got {args.sha256!r}")
    if args.timeout <= 0:
        raise DataError("--timeout must be positive")
    root = args.root.expanduser().resolve() if args.root else default_root()
    fetch(args.dataset, root, url=args.url, sha256=args.sha256, keep_archive=args.keep_archive, timeout=args.timeout)
    folder = DATASETS[args.dataset].folder
    print(f"use it with: data.root={root} data.images.{args.dataset}={folder}")
    return 0


def run_convert(args: argparse.Namespace) -> int:
    from spaces import get_space

    if args.output.is_dir():
        raise DataError(f"{args.output} is a folder; give the Parquet file to write")
    for line in get_space(args.benchmark).cls.convert(args.input, args.output, verify=not args.no_verify):
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "fetch":
            return run_fetch(args)
        if args.command == "convert":
            return run_convert(args)
        from orchestrator.data.check import run_check

        return run_check(args.overrides, all_sweeps=args.all_sweeps)
    except DataError as exc:
        print(f"proxysweep: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # permissions, a full disk: the user's to fix, so one line too
        print(f"proxysweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("proxysweep: error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
