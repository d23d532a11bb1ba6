"""The fixed input batches: one per (dataset, seed, batch settings), drawn once per sweep.

Every cell of a job is scored on the very same images, so a score depends only on the cell,
the dataset and the seed, never on the worker or the order. Pixels are normalised with the
per-dataset mean and std of the NAS-Bench-201 training pipeline (AutoDL-Projects
``get_datasets``). With ``augment`` the batch gets that pipeline's training augmentation
(random crop after zero padding of 4 pixels, 2 for 16-pixel images, and a random horizontal
flip), which is how zero-cost-nas draws its batch from a shuffled training loader.

Proxies that read several batches (ZiCo, xi-GSNR) ask for batches ``index`` 0, 1, 2, ... of
the same size and augmentation: batch 0 is the very batch a single-batch proxy with those
settings reads, and batch ``k`` is drawn from the images that batches 0..k-1 did not take,
like consecutive batches of one shuffled epoch.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

#: per-dataset channel mean and std, in 0..255 pixel units
NORMALIZATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((125.3, 123.0, 113.9), (63.0, 62.1, 66.7)),
    "cifar100": ((129.3, 124.1, 112.4), (68.2, 65.4, 70.4)),
    "ImageNet16-120": ((122.68, 116.66, 104.01), (63.22, 61.26, 65.09)),
    # full-size ImageNet (the NDS ``_in`` spaces): pycls's ImageNet mean and std
    # (pycls/datasets/imagenet.py, there in BGR order and 0..1 units)
    "imagenet": ((123.675, 116.28, 103.53), (58.395, 57.12, 57.375)),
}


@dataclass(frozen=True, order=True)
class BatchSpec:
    """How a proxy's batch is drawn: its size, whether it is augmented, and which of the
    successive batches with these settings it is (0 for single-batch proxies)."""

    size: int
    augment: bool
    index: int = 0

    @property
    def key(self) -> str:
        base = f"b{self.size}{'a' if self.augment else ''}"
        return base if self.index == 0 else f"{base}i{self.index}"

    def with_index(self, index: int) -> "BatchSpec":
        return BatchSpec(self.size, self.augment, index)


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts, stable across processes, machines and Python runs."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def require_images(available: int, dataset: str, size: int, count: int = 1) -> None:
    """ValueError unless ``count`` disjoint batches of ``size`` fit in ``available`` images."""
    if size * count > available:
        what = f"batch of {size}" if count == 1 else f"{count} disjoint batches of {size}"
        raise ValueError(f"{what} asked for, but {dataset} has {available} images")


def draw_batch(
    images: np.ndarray, labels: np.ndarray, dataset: str, seed: int, spec: BatchSpec
) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed batch of ``dataset`` for ``seed``: float32 N x C x H x W and int64 labels."""
    require_images(len(images), dataset, spec.size, spec.index + 1)
    rng, idx = _pick(len(images), dataset, seed, spec)
    x = images[idx].astype(np.float32)
    if spec.augment:
        x = _crop_and_flip(x, rng)
    mean, std = NORMALIZATION[dataset]
    x = (x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None]
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(labels[idx].astype(np.int64))


def _pick(
    count: int, dataset: str, seed: int, spec: BatchSpec
) -> tuple[np.random.Generator, np.ndarray]:
    """The image indices of batch ``spec`` and its generator (which then draws the
    augmentation). Batch k > 0 draws from the images batches 0..k-1 left."""
    taken = np.zeros(count, dtype=bool)
    for k in range(spec.index + 1):
        rng = np.random.Generator(np.random.PCG64(derive_seed("batch", dataset, seed, spec.with_index(k).key)))
        pool = np.flatnonzero(~taken)
        idx = pool[rng.choice(len(pool), size=spec.size, replace=False)]
        taken[idx] = True
    return rng, idx


def _crop_and_flip(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random crop of the zero-padded image back to its size, then a coin-flip mirror."""
    n, _, h, w = x.shape
    pad = h // 8  # 4 for 32-pixel CIFAR, 2 for 16-pixel ImageNet16, as in the pipeline
    padded = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    out = np.empty_like(x)
    tops = rng.integers(0, 2 * pad + 1, size=n)
    lefts = rng.integers(0, 2 * pad + 1, size=n)
    flips = rng.random(n) < 0.5
    for i in range(n):
        crop = padded[i, :, tops[i] : tops[i] + h, lefts[i] : lefts[i] + w]
        out[i] = crop[:, :, ::-1] if flips[i] else crop
    return out
