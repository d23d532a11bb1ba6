"""Our NB301 scores beside NASLib's released ones, cell by cell.

    python benchmarks/nb301_naslib_agreement.py OUT_DIR ZC_NASBENCH301_JSON

OUT_DIR is a finished NB301 sweep (``+sweep=nb301_fidelity``, any subset of the 725 cells);
the JSON is NASLib's zero-cost benchmark file for the same cells
(``naslib/data/zc_nasbench301.json`` of automl/NASLib, the 725-cell version: one record per
compact genotype, ``{"score": ..., "time": ...}`` per proxy, and ``val_accuracy``), which
the user downloads; the project ships none of it.

For each proxy both scored, it prints Spearman's rho against ``val_accuracy`` of our scores
and of NASLib's on the cells we scored, NASLib's on all its cells (the figure
``../shared/data/README.md`` quotes), and the per-cell agreement (Spearman between our
score and NASLib's on each cell). With two or more seeds stored it also prints our own
seed-to-seed agreement: a proxy that disagrees with itself across batches cannot agree with
NASLib, which draws its own batch. Why: a sample of 100 cells differs from the 725 by about
0.1 for proxies near zero, so the fair comparison is both implementations on the same
cells.
"""
from __future__ import annotations

import argparse
import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from orchestrator.metrics import spearman
from proxysweep import load_scores
from spaces.darts.genotype import parse_compact

NASLIB_NAMES = {"nwot": "naswot", "jacov": "jacob_cov"}
"""NASLib's proxy names that differ from the project's."""


def naslib_scores(path: Path) -> pd.DataFrame:
    """NASLib's file as rows of (arch_id in the project's canonical form, proxy, score, accuracy)."""
    records = json.loads(path.read_text())
    records = records.get("cifar10", records.get("nasbench301", {}).get("cifar10"))
    rows = []
    for compact, record in records.items():
        arch_id = parse_compact(compact).canonical().to_id()
        for name, value in record.items():
            if isinstance(value, dict) and "score" in value:
                rows.append((arch_id, NASLIB_NAMES.get(name, name), float(value["score"]),
                             float(record["val_accuracy"])))
    return pd.DataFrame(rows, columns=["arch_id", "proxy", "naslib", "naslib_accuracy"])


def rho(x: pd.Series, y: pd.Series) -> float:
    keep = np.isfinite(x.to_numpy(float)) & np.isfinite(y.to_numpy(float))
    return spearman(x.to_numpy(float)[keep], y.to_numpy(float)[keep])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("naslib_json", type=Path)
    args = parser.parse_args()

    theirs = naslib_scores(args.naslib_json)
    ours = load_scores(args.out_dir).to_pandas()
    ours = ours[(ours.space == "nb301") & (ours.status == "ok")]
    merged = ours.merge(theirs, on=["arch_id", "proxy"])
    if merged.empty:
        raise SystemExit("no (cell, proxy) pair of the sweep is in NASLib's file")
    same_truth = np.allclose(merged.accuracy, merged.naslib_accuracy)
    print(f"{merged.arch_id.nunique()} cells of {theirs.arch_id.nunique()} in NASLib's file; "
          f"truth identical on every cell: {same_truth}\n")
    print("| proxy | seed | cells | ours rho | NASLib rho, same cells | NASLib rho, all cells "
          "| agreement (ours vs NASLib) | our seed-to-seed agreement |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for proxy, rows in merged.groupby("proxy"):
        everything = theirs[theirs.proxy == proxy]
        all_cells = rho(everything.naslib, everything.naslib_accuracy)
        by_seed = rows.pivot_table(index="arch_id", columns="seed", values="score")
        self_agreement = [rho(by_seed[a], by_seed[b]) for a, b in combinations(by_seed.columns, 2)]
        seed_text = ", ".join(f"{value:+.3f}" for value in self_agreement) or "-"
        for seed, part in rows.groupby("seed"):
            print(f"| {proxy} | {seed} | {len(part)} | {rho(part.score, part.accuracy):+.3f} "
                  f"| {rho(part.naslib, part.accuracy):+.3f} | {all_cells:+.3f} "
                  f"| {rho(part.score, part.naslib):+.3f} | {seed_text} |")


if __name__ == "__main__":
    main()
