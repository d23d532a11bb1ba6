"""Fidelity: Spearman and Kendall per proxy on a fixed NB101 sample, beside published figures.

Runs (or resumes) a real sweep, then prints one line per proxy with the published |rho| of
Abdelfattah et al. 2021 over all of NAS-Bench-101. The default truth is the 30,001-cell
sample table, ONE training repeat per cell (the published figures use the benchmark's
3-repeat mean), validation accuracy at 108 epochs. Usage:

    python benchmarks/nb101_fidelity.py [Hydra overrides...]
    python benchmarks/nb101_fidelity.py +sweep=nb101_fidelity300 data.root=../shared/data

The sweep resumes from its shard files, so the script can be interrupted and rerun. It
also prints, per proxy, a bootstrap standard deviation of the Spearman rho over the
sample's cells, and the median seconds per cell the sweep's actors recorded (one torch
thread each: the proxy alone, its shared passes and the model build included).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import config  # noqa: E402
from published import ABDELFATTAH_NB101  # noqa: E402

from orchestrator.reduce import summary_rows  # noqa: E402
from orchestrator.sweep import run_sweep  # noqa: E402
from proxies import PROXIES  # noqa: E402
from proxysweep import load_scores  # noqa: E402


def main(overrides: list[str]) -> None:
    if not any(o.startswith("+sweep=") for o in overrides):
        overrides = ["+sweep=nb101_fidelity300", *overrides]
    cfg = config(overrides)
    result = run_sweep(cfg)
    rows = summary_rows(result.reduction.metrics, keys=("spearman", "kendall_tau"))
    truth = cfg.space.nb101.truth.cifar10
    print(f"\ntruth: {cfg.space.nb101.truth_file} column {truth}")
    print(f"{'proxy':<16} {'cells':>5} {'spearman':>9} {'kendall':>8} {'published |rho|':>16} {'gap':>6}")
    for r in rows:
        published = ABDELFATTAH_NB101.get(r["proxy"])
        rho = r.get("spearman_mean", float("nan"))
        gap = f"{abs(rho) - published:+.2f}" if published is not None else ""
        pub = f"{published:.2f}" if published is not None else "-"
        print(f"{r['proxy']:<16} {r['n_cells']:>5} {rho:>+9.3f} {r.get('kendall_tau_mean', float('nan')):>+8.3f} {pub:>16} {gap:>6}")
    spread_and_speed(result.out_dir, cfg)


def spread_and_speed(out_dir: Path, cfg, resamples: int = 1000) -> None:
    """Bootstrap SD of each proxy's Spearman rho, and the median seconds per cell."""
    scores = load_scores(out_dir)
    truth = dict(zip(scores["arch_id"].to_pylist(), scores["accuracy"].to_pylist()))
    rng = np.random.default_rng(0)
    print(f"\n{'proxy':<16} {'bootstrap SD of rho':>20} {'median s/cell':>14} {'cells/s':>8}")
    for proxy in sorted(set(scores["proxy"].to_pylist())):
        rows = scores.filter(pc.equal(scores["proxy"], proxy))
        seconds = np.median(rows["seconds"].to_numpy())
        ok = [(s, truth[i]) for i, s, st in zip(rows["arch_id"].to_pylist(), rows["score"].to_pylist(),
                                                rows["status"].to_pylist())
              if st in ("ok", "nonfinite") and s is not None and not np.isnan(s) and truth[i] is not None]
        s, a = np.array(ok, dtype=np.float64).T
        s = s if PROXIES[proxy].higher_is_better else -s
        boot = [spearmanr(s[k], a[k]).statistic for k in (rng.integers(0, len(s), len(s)) for _ in range(resamples))]
        print(f"{proxy:<16} {np.nanstd(boot):>20.3f} {seconds:>14.2f} {1 / seconds:>8.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
