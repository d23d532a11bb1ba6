"""NAS-Bench-101 (Ying et al. 2019): cells, their hashes, networks, the enumeration of the
423,624 unique cells and the converter of the official tfrecord. Importing it registers
the ``nb101`` space."""
from spaces.nb101.space import NB101Space

__all__ = ["NB101Space"]
