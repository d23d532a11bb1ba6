"""The genotype-cell family (NASNet/DARTS): genotypes, the operation table and the network
built from a genotype, shared by the spaces of the family, and NAS-Bench-301, the family's
benchmark on DARTS's space. Importing it registers the ``nb301`` space; the NDS cell spaces
reuse ``genotype``, ``ops`` and ``network``."""
from spaces.darts.genotype import Genotype, parse_genotype
from spaces.darts.nb301 import NB301Space
from spaces.darts.network import DartsNetwork
from spaces.darts.ops import OPS, register_op

__all__ = ["DartsNetwork", "Genotype", "NB301Space", "OPS", "parse_genotype", "register_op"]
