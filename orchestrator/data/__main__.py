"""``python -m orchestrator.data {fetch}``: the command line of the data tools.

argparse, with its error method replaced so that a bad argument, like every other user
error of this command, is one line on stderr (``proxysweep: error: ...``) and exit status 2.
"""
from __future__ import annotations

import argparse
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
    from spaces.data_root import ENV_VAR, resolve_root

    return resolve_root(os.environ.get(ENV_VAR) or "data")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog=PROG, description="Get the data proxysweep sweeps read.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{fetch}")

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

    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run_fetch(args)
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
