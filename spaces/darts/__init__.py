"""The genotype-cell family (NASNet/DARTS): genotypes, the operation table and the network
built from a genotype, shared by the spaces of the family (``nb301`` here; the NDS cell
spaces reuse them)."""
from spaces.darts.genotype import Genotype, parse_genotype
from spaces.darts.network import DartsNetwork
from spaces.darts.ops import OPS, register_op

__all__ = ["DartsNetwork", "Genotype", "OPS", "parse_genotype", "register_op"]
