"""Search spaces by name; importing this package registers the built-in ones."""
from spaces import nb101, nb201  # noqa: F401  (registration)
from spaces.base import CellTable, SearchSpace
from spaces.registry import SPACES, get_space, make_space, register_space

__all__ = ["CellTable", "SearchSpace", "SPACES", "get_space", "make_space", "register_space"]
