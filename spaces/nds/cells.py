"""The cell design spaces' records (DARTS, ENAS, PNAS, NASNet, Amoeba) as arch strings and
networks, on the genotype-cell family's network (``spaces.darts.network.DartsNetwork``).

pycls trained NDS's cell models with DARTS's evaluation networks (facebookresearch/unnas at
commit 0ed0dbc, ``pycls/models/nas/nas.py``: ``NetworkCIFAR`` for the CIFAR files,
``NetworkImageNet`` for the ``_in`` files), which ``DartsNetwork`` builds with
``stem="cifar"`` or ``"imagenet"``: a record's ``net.width`` is DARTS's ``C``, ``net.depth``
its number of cells, ``net.genotype`` the two cells. The auxiliary head (``net.aux``) and
drop-path (``net.drop_prob``) act in training only and are left out (zero-cost scoring
uses neither; a record with ``aux`` true would record the auxiliary head's parameters too); inside cells the BatchNorm layers are affine, as pycls builds them.
Operations are those of the op table, which ``spaces.nds.ops`` extends by NDS's; an
operation it does not hold is refused when the file is read.

Arch string: the width, the depth and the genotype's canonical id
(``spaces.darts.genotype.Genotype.to_id``)::

    width=32;depth=12;normal=avg_pool_3x3~0+conv_7x1_1x7~1|...;normal_concat=3,5,6;reduce=...;reduce_concat=3,6

(the id orders each node's two operations by input: the same network either way).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from torch import nn

from spaces.darts.genotype import Genotype, parse_id
from spaces.darts.network import DartsNetwork
import spaces.nds.ops  # noqa: F401  (registers the NDS operations before any genotype is read)
from spaces.nds.records import short

GENOTYPE_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")


@dataclass(frozen=True)
class CellSpec:
    """One NDS cell-space network: DARTS's ``C``, the number of cells and the genotype."""

    width: int
    depth: int
    genotype: Genotype


def _positive(value: Any, name: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {short(value)}")
    return value


def check_spec(spec: CellSpec, imagenet: bool) -> CellSpec:
    """``spec`` if its network can be built (operations were checked against the op table
    when its genotype was made); ValueError in one line otherwise."""
    if imagenet and spec.width % 2:
        raise ValueError(f"width {spec.width} is odd: the ImageNet network halves it in its stem")
    return spec


def spec_from_net(net: Mapping[str, Any], imagenet: bool) -> CellSpec:
    """The CellSpec of a record's ``net``; ValueError naming the field otherwise."""
    for key in ("genotype", "width", "depth"):
        if key not in net:
            raise ValueError(f"net has no {key!r} (its fields: {', '.join(sorted(map(str, net)))})")
    raw = net["genotype"]
    if not isinstance(raw, dict) or any(k not in raw for k in GENOTYPE_FIELDS):
        raise ValueError(f"net.genotype must be an object with {', '.join(GENOTYPE_FIELDS)}; got {short(raw)}")
    fields: dict[str, Any] = {}
    for cell in ("normal", "reduce"):
        pairs = raw[cell]
        if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise ValueError(f"net.genotype.{cell} must be a list of [op, input] pairs; got {short(pairs)}")
        fields[cell] = tuple((op, source) for op, source in pairs)
        concat = raw[f"{cell}_concat"]
        if not isinstance(concat, list):
            raise ValueError(f"net.genotype.{cell}_concat must be a list of states; got {short(concat)}")
        fields[f"{cell}_concat"] = tuple(concat)
    try:
        genotype = Genotype(**fields)
    except ValueError as exc:
        raise ValueError(f"net.genotype: {exc}") from None
    spec = CellSpec(_positive(net["width"], "net.width"), _positive(net["depth"], "net.depth"), genotype)
    return check_spec(spec, imagenet)


def format_arch(spec: CellSpec) -> str:
    return f"width={spec.width};depth={spec.depth};{spec.genotype.to_id()}"


def parse_arch(arch: str, imagenet: bool) -> CellSpec:
    """The CellSpec of an arch string; ValueError if it is not one ``format_arch`` writes."""
    parts = arch.split(";", 2)
    if len(parts) != 3 or not parts[0].startswith("width=") or not parts[1].startswith("depth="):
        raise ValueError(f"malformed NDS cell arch {short(arch)}: expected width=<C>;depth=<cells>;<genotype id>")
    width, depth = parts[0][len("width="):], parts[1][len("depth="):]
    if not (width.isdigit() and depth.isdigit() and width.isascii() and depth.isascii()):
        raise ValueError(f"malformed NDS cell arch {short(arch)}: width and depth must be positive integers")
    spec = CellSpec(_positive(int(width), "width"), _positive(int(depth), "depth"), parse_id(parts[2]))
    if format_arch(spec) != arch:
        raise ValueError(f"NDS cell arch {short(arch)} is not canonical; its canonical form is {format_arch(spec)}")
    return check_spec(spec, imagenet)


def build_network(spec: CellSpec, num_classes: int, imagenet: bool) -> nn.Module:
    """pycls's NetworkCIFAR / NetworkImageNet of the record (no auxiliary head)."""
    return DartsNetwork(spec.genotype, num_classes, channels=spec.width, layers=spec.depth,
                        stem="imagenet" if imagenet else "cifar")
