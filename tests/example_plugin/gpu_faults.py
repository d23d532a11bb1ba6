"""A proxy that runs out of GPU memory on purpose (without a GPU): it raises
``torch.cuda.OutOfMemoryError`` for the cell whose network has ``oom_params`` trainable
parameters, and logs when and where (process, ``CUDA_VISIBLE_DEVICES``) each of its calls
ran, so tests/test_gpu_fill.py can check that the cell was retried alone on its GPU."""
from __future__ import annotations

import json
import os
import time
from typing import Any, Mapping

import torch

from proxies import ScoringContext, register


@register("oom_probe", uses_images=False, defaults={"oom_params": -1, "log": "", "seconds": 0.0})
def oom_probe(ctx: ScoringContext, params: Mapping[str, Any]) -> float:
    """The number of trainable parameters, after ``seconds`` of sleep."""
    start = time.time()
    count = sum(p.numel() for p in ctx.model.parameters() if p.requires_grad)
    time.sleep(params["seconds"])
    if params["log"]:
        with open(params["log"], "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "params": count,
                                "start": start, "end": time.time()}) + "\n")
    if count == params["oom_params"]:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (by design: oom_probe)")
    return float(count)
