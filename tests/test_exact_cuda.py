"""The CUDA settings every GPU scorer applies: deterministic cuDNN and plain float32 (no
TF32), so a GPU's scores are repeatable and rounded as the references' float32 was. The
flags are process-wide and settable without a GPU; the test puts them back."""
from __future__ import annotations

import torch

from orchestrator.scoring import exact_cuda

FLAGS = (
    (torch.backends.cudnn, "deterministic", True),
    (torch.backends.cudnn, "benchmark", False),
    (torch.backends.cudnn, "allow_tf32", False),
    (torch.backends.cuda.matmul, "allow_tf32", False),
)


def test_exact_cuda_turns_off_tf32_and_autotuning() -> None:
    before = [getattr(owner, name) for owner, name, _ in FLAGS]
    try:
        torch.backends.cudnn.allow_tf32 = True  # PyTorch's default
        torch.backends.cudnn.benchmark = True
        exact_cuda()
        assert [getattr(owner, name) for owner, name, _ in FLAGS] == [want for _, _, want in FLAGS]
    finally:
        for (owner, name, _), value in zip(FLAGS, before):
            setattr(owner, name, value)
