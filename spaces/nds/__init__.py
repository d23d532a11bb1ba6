"""The NDS design spaces (Radosavovic et al., ICCV 2019): the DARTS, ENAS, PNAS, NASNet and
Amoeba cell spaces and the ResNet, ResNeXt and Vanilla spaces, read from NDS's sweep files.
Importing it registers ``nds_darts``, ``nds_resnext_a``, ... (``spaces.nds.space``)."""
from spaces.nds.space import DESIGN_SPACES, NDSSpace, SPACE_CLASSES

__all__ = ["DESIGN_SPACES", "NDSSpace", "SPACE_CLASSES"]
