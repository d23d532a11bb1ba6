"""proxysweep from Python: results in one line, one network scored in a notebook, and the
decorators that add a proxy or a space.

    from proxysweep import load_scores, load_metrics, score
    scores = load_scores("outputs/nb201_smoke")          # Arrow table, truth joined
    found = load_searches("outputs/nb201_search")        # one row per search run and variant
    df = scores.to_pandas()
    score(model, ["synflow", "naswot"], inputs, targets)  # {"synflow": ..., "naswot": ...}
"""
from proxies import register
from proxysweep.results import load_comparisons, load_metrics, load_scores, load_searches
from proxysweep.scoring import score
from spaces import register_space

__all__ = ["load_comparisons", "load_metrics", "load_scores", "load_searches", "register", "register_space", "score"]
