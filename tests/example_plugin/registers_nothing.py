"""A plugin module that forgot to register anything."""


def not_a_proxy() -> float:
    return 0.0
