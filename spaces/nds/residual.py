"""Arch strings of the ResNet, ResNeXt and Vanilla records: each record's ``net`` config as
one compact string that workers parse back into an ``AnyNetSpec``.

Format: the block type, then the per-stage lists (entry 0 the stem), ``;``-separated::

    res_bottleneck_block;ds=1,16,1,4;ws=16,64,128,16;ss=1,1,2,2;bot_muls=0.0,0.25,0.25,0.25;num_gs=1,2,1,2
    res_basic_block;ds=1,12,12,12;ws=16,24,24,40;ss=1,1,2,2

``bot_muls`` and ``num_gs`` appear for bottleneck blocks only (the other files leave them
null or empty); numbers are written as Python writes them, so a string is canonical: one
network, one string.
"""
from __future__ import annotations

from typing import Any, Mapping

from spaces.nds.anynet import AnyNetSpec
from spaces.nds.records import empty, int_list, number_list, sequence_text, short


def spec_from_net(net: Mapping[str, Any], block_types: tuple[str, ...]) -> AnyNetSpec:
    """The AnyNetSpec of a record's ``net``; ValueError naming the field otherwise.
    ``block_types``: the block types the design space holds."""
    block = net.get("block_type")
    if block not in block_types:
        raise ValueError(f"net.block_type must be {' or '.join(block_types)} in this design space; got {short(block)}")
    lists = {}
    for key in ("ds", "ws", "ss"):
        if key not in net:
            raise ValueError(f"net has no {key!r} (its fields: {', '.join(sorted(map(str, net)))})")
        lists[key] = int_list(net[key], f"net.{key}")
    if block == "res_bottleneck_block":
        for key in ("bot_muls", "num_gs"):
            if key not in net:
                raise ValueError(f"net has no {key!r}, which a res_bottleneck_block network needs (its fields: "
                                 f"{', '.join(sorted(map(str, net)))})")
        bot_muls, num_gs = number_list(net["bot_muls"], "net.bot_muls"), int_list(net["num_gs"], "net.num_gs")
    else:
        for key in ("bot_muls", "num_gs"):
            if not empty(net.get(key)):
                raise ValueError(f"net.{key} must be null or empty for a {block} network; got {short(net[key])}")
        bot_muls, num_gs = (), ()
    return AnyNetSpec(block, lists["ds"], lists["ws"], lists["ss"], bot_muls, num_gs)


def format_arch(spec: AnyNetSpec) -> str:
    """The arch string of ``spec``."""
    parts = [spec.block_type, f"ds={sequence_text(spec.ds)}", f"ws={sequence_text(spec.ws)}",
             f"ss={sequence_text(spec.ss)}"]
    if spec.block_type == "res_bottleneck_block":
        parts += [f"bot_muls={sequence_text(float(b) for b in spec.bot_muls)}", f"num_gs={sequence_text(spec.num_gs)}"]
    return ";".join(parts)


def parse_arch(arch: str, block_types: tuple[str, ...]) -> AnyNetSpec:
    """The AnyNetSpec of an arch string; ValueError if it is not one ``format_arch`` writes."""
    parts = arch.split(";")
    fields: dict[str, list[str]] = {}
    try:
        for part in parts[1:]:
            key, sep, value = part.partition("=")
            if not sep or key in fields:
                raise ValueError(part)
            fields[key] = value.split(",")
        net: dict[str, Any] = {"block_type": parts[0]}
        for key, values in fields.items():
            net[key] = [float(v) if key == "bot_muls" else int(v) for v in values]
        spec = spec_from_net(net, block_types)
    except ValueError:
        spec = None
    if spec is None or format_arch(spec) != arch:
        raise ValueError(f"malformed NDS residual arch {arch!r}: expected e.g. "
                         "'res_basic_block;ds=1,12,12,12;ws=16,24,24,40;ss=1,1,2,2' with a block type of "
                         f"{', '.join(block_types)}")
    return spec
