"""Enumeration: time to enumerate and hash all 423,624 NB101 cells, and to reload the cache.

    python benchmarks/nb101_enumerate.py [--processes N]

Enumerates into a temporary folder (so an existing cache is neither used nor touched),
prints the wall time of the enumeration, of writing the Parquet table, and of reading it
back as the sweep does (hash and spec string columns), with the peak memory of this
process and the load average.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from spaces.nb101.space import NB101Space
from spaces.nb101.enumeration import NUM_CELLS, enumerate_cells, to_table, write_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=os.cpu_count())
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, {args.processes} hashing processes, load average {os.getloadavg()[0]:.1f}")
    start = time.perf_counter()
    cells = enumerate_cells(processes=args.processes)
    found = time.perf_counter() - start
    assert len(cells) == NUM_CELLS, len(cells)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "nb101_cells.parquet"
        start = time.perf_counter()
        write_table(to_table(cells), path)
        written = time.perf_counter() - start
        start = time.perf_counter()
        table = NB101Space({"cache_dir": folder}).cells()
        loaded = time.perf_counter() - start
        size = path.stat().st_size
    assert len(table) == NUM_CELLS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"enumerate + hash: {len(cells)} cells in {found:.1f} s")
    print(f"build + write the Parquet table: {written:.1f} s ({size / 2**20:.1f} MiB)")
    print(f"read the cached table (hash, arch): {loaded:.2f} s")
    print(f"peak memory of the driver process: {peak:.0f} MiB; load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    sys.exit(main())
