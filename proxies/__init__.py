"""Zero-cost proxies. Importing this package registers every proxy family."""
from proxies import activation, baseline, gradient, gradient_stats, ntk, statistics  # noqa: F401  (registration)
from proxies.context import ScoringContext, batch_spec, batch_specs
from proxies.registry import PROXIES, Proxy, get_proxy, register

__all__ = ["PROXIES", "Proxy", "ScoringContext", "batch_spec", "batch_specs", "get_proxy", "register"]
