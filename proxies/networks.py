"""Which network a proxy scores, when its reference scores another one than the cell's
benchmark network, and how that network is re-initialised and fed.

A proxy that has these settings reads them here; its config holds its reference's choices:

``network``
  - ``full``: the cell's benchmark network, the context's model (shared passes apply);
  - ``thin``: the cell's network with the shape of the settings ``channels``,
    ``cells_per_stage``, ``depth`` and ``stem`` (TE-NAS's thin networks);
  - ``zero_cost_nas``: the cell's network as zero-cost-nas's model code builds it, with the
    cell's own weights where that network has them (HNAS).
  The space builds the other networks (``spaces.base.BuildsVariants``); a space that cannot
  build the one asked for stops the sweep at the settings check.
``init`` (applied at the start of every repeat)
  - ``none``: the weights as built (the sweep's initialisation of the cell);
  - ``kaiming_normal_fan_in`` / ``kaiming_normal_fan_out``: TE-NAS's ``init_model``:
    Conv2d and Linear weights He-normal for ReLU over fan-in or fan-out, their biases 0,
    BatchNorm scales 1 and shifts 0. Drawn on the CPU, so a score does not depend on the
    device's random generator.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import nn

from proxies.context import ScoringContext
from spaces.base import NetworkVariant

NETWORKS = ("full", "thin", "zero_cost_nas")
INITS = ("none", "kaiming_normal_fan_in", "kaiming_normal_fan_out")
#: channels of the images every dataset of the project has (RGB)
IMAGE_CHANNELS = 3


def requested_variant(params: Mapping[str, Any]) -> NetworkVariant | None:
    """The network a proxy's settings ask for, or None for the cell's benchmark network."""
    network = params.get("network", "full")
    if network == "full":
        return None
    if network == "thin":
        return NetworkVariant(
            channels=int(params["channels"]), cells_per_stage=int(params["cells_per_stage"]),
            depth=int(params["depth"]), stem=bool(params["stem"]),
        )
    if network == "zero_cost_nas":
        return NetworkVariant(ops="zero_cost_nas")
    raise ValueError(f"network must be one of {', '.join(NETWORKS)}; got {network!r}")


def check_network_settings(name: str, params: Mapping[str, Any]) -> None:
    """ValueError (one line) for thin-network settings the types let through."""
    if params.get("network") != "thin":
        return
    if params["depth"] < 0:
        raise ValueError(f"proxy.{name}.depth must be 0 (all layers) or a number of layers; got {params['depth']}")
    if not params["stem"] and params["channels"] > IMAGE_CHANNELS:
        raise ValueError(
            f"proxy.{name}: without a stem the thin network reads {params['channels']} image channels, "
            f"but images have {IMAGE_CHANNELS}: lower proxy.{name}.channels or set proxy.{name}.stem=true"
        )


def scored_network(ctx: ScoringContext, params: Mapping[str, Any]) -> nn.Module | None:
    """The network the proxy scores, on the context's device, or None for the context's
    own model as it is (``network: full`` and ``init: none``: its shared passes apply).

    A ``full`` network to re-initialise is a fresh copy of the context's model. A variant
    is built by the space from the torch RNG (seeded per cell and proxy); one of the
    benchmark network's own shape then takes the cell's weights where names match (as
    zero-cost-nas's ``get_prunable_copy`` loads the original network's state), so only
    what the benchmark network lacks (NB201's cell convolution biases) is drawn anew."""
    variant = requested_variant(params)
    if variant is None:
        return ctx.fresh_copy() if params.get("init", "none") != "none" else None
    net = ctx.build_variant(variant)
    if variant.own_shape:
        net.load_state_dict(ctx.model.state_dict(), strict=False)
    return net


def reinitialise(net: nn.Module, init: str) -> None:
    """TE-NAS's ``init_model`` (prune_tenas.py) for ``init`` (see the module docstring);
    nothing for ``none``. Draws in module order from the CPU generator."""
    if init == "none":
        return
    if init not in INITS:
        raise ValueError(f"init must be one of {', '.join(INITS)}; got {init!r}")
    fan_out = init.endswith("fan_out")
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                receptive = math.prod(m.weight.shape[2:])
                fan = (m.weight.shape[0] if fan_out else m.weight.shape[1]) * receptive
                draw = torch.randn(m.weight.shape, dtype=m.weight.dtype) * math.sqrt(2.0 / fan)
                m.weight.copy_(draw)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d) and m.weight is not None:
                m.weight.fill_(1.0)
                m.bias.zero_()


def network_input(x: torch.Tensor, params: Mapping[str, Any]) -> torch.Tensor:
    """The batch as the scored network takes it: for a thin network without a stem,
    ``channels`` channels of each image, chosen at random without replacement and kept in
    their order (TENAS lib/procedures/linear_region_counter.py ``RandChannel``), drawn from
    the torch RNG; otherwise the batch itself."""
    if params.get("network") != "thin" or params["stem"]:
        return x
    n, c = x.shape[:2]
    keep = int(params["channels"])
    if keep > c:
        raise ValueError(f"a thin network without a stem reads {keep} channels, but the images have {c}")
    chosen = torch.rand(n, c).argsort(dim=1)[:, :keep].sort(dim=1).values.to(x.device)
    return x[torch.arange(n, device=x.device)[:, None], chosen]
