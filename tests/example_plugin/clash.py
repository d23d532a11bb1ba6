"""A plugin module that takes a built-in proxy's name."""
from proxies import register


@register("synflow", uses_images=False)
def my_synflow(ctx, params) -> float:
    return 0.0
