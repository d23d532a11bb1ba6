"""NAS-Bench-201 (Dong & Yang 2020): cell strings, networks and the accuracy table.
Importing it registers the ``nb201`` space."""
from spaces.nb201.space import NB201Space

__all__ = ["NB201Space"]
