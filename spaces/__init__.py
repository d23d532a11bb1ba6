"""Search spaces by name. Each built-in space family is a subpackage of this package that
registers its spaces when imported; importing ``spaces`` imports every one of them, so a
new space is its subpackage alone."""
import importlib
import pkgutil

from spaces.base import CellTable, SearchSpace
from spaces.registry import SPACES, get_space, make_space, register_space

for _family in pkgutil.iter_modules(__path__):
    if _family.ispkg:
        importlib.import_module(f"{__name__}.{_family.name}")

__all__ = ["CellTable", "SearchSpace", "SPACES", "get_space", "make_space", "register_space"]
