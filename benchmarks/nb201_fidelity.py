"""Fidelity: Spearman and Kendall per proxy on a fixed NB201 sample, beside published figures.

Each Spearman comes with its pooled interval from metrics.parquet (bootstrap percentile,
``metrics.bootstrap``), and the last column says whether the published |rho| lies inside it.

Runs (or resumes) a real sweep, then prints one line per (dataset, proxy). Usage:

    python benchmarks/nb201_fidelity.py [Hydra overrides...]
    python benchmarks/nb201_fidelity.py +sweep=nb201_fidelity300 data.root=../shared/data

The sweep resumes from its shard files, so the script can be interrupted and rerun.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import config  # noqa: E402
from published import ABDELFATTAH_NB201  # noqa: E402

from orchestrator.reduce import summary_rows  # noqa: E402
from orchestrator.sweep import run_sweep  # noqa: E402


def main(overrides: list[str]) -> None:
    if not any(o.startswith("+sweep=") for o in overrides):
        overrides = ["+sweep=nb201_fidelity300", *overrides]
    cfg = config(overrides)
    result = run_sweep(cfg)
    metrics = result.reduction.metrics
    rows = summary_rows(metrics, keys=("spearman", "kendall_tau"))
    ci = {(r["dataset"], r["proxy"]): (r["ci_low"], r["ci_high"]) for r in metrics.to_pylist()
          if r["aggregate"] == "pooled" and r["metric"] == "spearman"}
    print(f"\n{'dataset':<15} {'proxy':<16} {'cells':>5} {'spearman':>9} {'95% interval':>16} {'kendall':>8} "
          f"{'published |rho|':>16} {'gap':>6} {'inside':>6}")
    for r in rows:
        published = ABDELFATTAH_NB201.get(r["dataset"], {}).get(r["proxy"])
        rho = r.get("spearman_mean", float("nan"))
        gap = f"{abs(rho) - published:+.2f}" if published is not None else ""
        pub = f"{published:.2f}" if published is not None else "-"
        low, high = ci.get((r["dataset"], r["proxy"]), (None, None))
        interval = f"[{low:+.3f}, {high:+.3f}]" if low is not None else "-"
        inside = ("yes" if low <= published <= high else "no") if published is not None and low is not None else ""
        print(f"{r['dataset']:<15} {r['proxy']:<16} {r['n_cells']:>5} {rho:>+9.3f} {interval:>16} "
              f"{r.get('kendall_tau_mean', float('nan')):>+8.3f} {pub:>16} {gap:>6} {inside:>6}")


if __name__ == "__main__":
    main(sys.argv[1:])
