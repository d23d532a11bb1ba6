"""A user's plugin package as the README describes it: proxies registered outside the
repository's own packages, used by the tests with ``plugins=[example_plugin.proxies]``."""
