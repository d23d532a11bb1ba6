"""Fidelity: Spearman and Kendall per proxy on a fixed NB201 sample, against every truth
column the sweep names, beside the published figures measured against the same column.

Each Spearman comes with its pooled interval from metrics.parquet (bootstrap percentile,
``metrics.bootstrap``); for each published figure on the same (dataset, truth column) the
line gives its value, the gap to ours (published |rho| or tau against our value of the same
statistic, both oriented so that positive means "ranks well"), whether a published rho lies
inside our interval, and the figure's source (``published.NB201_FIGURES``).

Runs (or resumes) a real sweep, then prints one line per (dataset, truth, proxy). Usage:

    python benchmarks/nb201_fidelity.py [Hydra overrides...]
    python benchmarks/nb201_fidelity.py +sweep=nb201_fidelity300 data.root=../shared/data
    python benchmarks/nb201_fidelity.py --reduce-only OUT_DIR   # an existing sweep folder

The sweep resumes from its shard files, so the script can be interrupted and rerun.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import config  # noqa: E402
from published import NB201_FIGURES, Figure  # noqa: E402

from orchestrator.reduce import reduce_sweep, summary_rows  # noqa: E402
from orchestrator.sweep import run_sweep  # noqa: E402

STATISTIC = {"spearman": "rho", "kendall_tau": "tau"}


def figures_for(dataset: str, truth: str, proxy: str) -> list[Figure]:
    return [f for f in NB201_FIGURES if (f.dataset, f.truth, f.proxy) == (dataset, truth, proxy)]


def print_table(metrics: pa.Table) -> None:
    rows = summary_rows(metrics, keys=("spearman", "kendall_tau"))
    ci = {(r["dataset"], r["truth"], r["proxy"]): (r["ci_low"], r["ci_high"]) for r in metrics.to_pylist()
          if r["aggregate"] == "pooled" and r["metric"] == "spearman"}
    print(f"\n{'dataset':<10} {'truth':<20} {'proxy':<16} {'cells':>5} {'spearman':>9} {'95% interval':>16} "
          f"{'kendall':>8}  published (gap, inside; source)")
    for r in rows:
        key = (r["dataset"], r["truth"], r["proxy"])
        rho = r.get("spearman_mean", float("nan"))
        low, high = ci.get(key, (None, None))
        interval = f"[{low:+.3f}, {high:+.3f}]" if low is not None else "-"
        notes = []
        for f in figures_for(*key):
            ours = r.get(f"{f.statistic}_mean", float("nan"))
            inside = ""
            if f.statistic == "spearman" and low is not None:
                inside = ", inside" if low <= f.value <= high else ", outside"
            notes.append(f"{STATISTIC[f.statistic]} {f.value:.2f} ({ours - f.value:+.2f}{inside}; {f.source})")
        print(f"{r['dataset']:<10} {r['truth']:<20} {r['proxy']:<16} {r['n_cells']:>5} {rho:>+9.3f} {interval:>16} "
              f"{r.get('kendall_tau_mean', float('nan')):>+8.3f}  {' | '.join(notes) or '-'}")


def main(argv: list[str]) -> None:
    if argv[:1] == ["--reduce-only"]:
        print_table(reduce_sweep(Path(argv[1])).metrics)
        return
    if not any(o.startswith("+sweep=") for o in argv):
        argv = ["+sweep=nb201_fidelity300", *argv]
    print_table(run_sweep(config(argv)).reduction.metrics)


if __name__ == "__main__":
    main(sys.argv[1:])
