"""Successive fixed batches for multi-batch proxies (ZiCo, xi-GSNR)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_config

from orchestrator.settings import load_settings
from benchdata.batches import NORMALIZATION, BatchSpec, draw_batch

N_IMAGES = 50


def numbered_images() -> tuple[np.ndarray, np.ndarray]:
    """Image i is filled with the value i, so a batch tells which images it took."""
    x = np.repeat(np.arange(N_IMAGES, dtype=np.uint8), 3 * 4 * 4).reshape(N_IMAGES, 3, 4, 4)
    return x, np.arange(N_IMAGES) % 10


def taken(batch: torch.Tensor) -> list[int]:
    mean, std = NORMALIZATION["cifar10"]
    raw = batch[:, 0, 0, 0].numpy() * std[0] + mean[0]
    return [int(round(v)) for v in raw]


def test_successive_batches_are_disjoint_deterministic_and_start_with_the_single_batch() -> None:
    x, y = numbered_images()
    spec = BatchSpec(8, augment=False)
    batches = [taken(draw_batch(x, y, "cifar10", 5, spec.with_index(k))[0]) for k in range(4)]
    assert BatchSpec(8, False, 0) == spec and spec.key == "b8"  # index 0: the old batch
    assert taken(draw_batch(x, y, "cifar10", 5, spec)[0]) == batches[0]
    assert len(set(sum(batches, []))) == 4 * 8  # no image twice
    assert batches == [taken(draw_batch(x, y, "cifar10", 5, spec.with_index(k))[0]) for k in range(4)]
    assert batches[1] != taken(draw_batch(x, y, "cifar10", 6, spec.with_index(1))[0])


def test_too_few_images_for_disjoint_batches() -> None:
    x, y = numbered_images()
    draw_batch(x, y, "cifar10", 0, BatchSpec(10, False, 4))  # 50 images: exactly enough
    with pytest.raises(ValueError, match="6 disjoint batches of 10"):
        draw_batch(x, y, "cifar10", 0, BatchSpec(10, False, 5))


def test_sweep_draws_every_batch_of_multi_batch_proxies_once() -> None:
    settings = load_settings(make_config(["sweep.proxies=[grad_norm,zico,xi_gsnr,synflow]"]), check_files=False)
    assert settings.batch_specs() == (
        *(BatchSpec(64, False, k) for k in range(8)),  # xi_gsnr: 8 plain batches
        BatchSpec(64, True, 0),  # grad_norm
        BatchSpec(128, True, 0), BatchSpec(128, True, 1),  # zico: 2 batches of 128
    )
    # the same settings as grad_norm's: zico's first batch is grad_norm's
    settings = load_settings(make_config(["sweep.proxies=[grad_norm,zico]", "proxy.zico.batch_size=64"]),
                             check_files=False)
    assert settings.batch_specs() == (BatchSpec(64, True, 0), BatchSpec(64, True, 1))


def test_each_repeat_of_the_tenas_proxies_reads_a_batch_of_its_own() -> None:
    settings = load_settings(make_config(["sweep.proxies=[ntk_cond,linear_regions]"]), check_files=False)
    assert settings.batch_specs() == (
        *(BatchSpec(72, True, k) for k in range(3)),  # ntk_cond: 3 repeats of 72 augmented images
        *(BatchSpec(3000, False, k) for k in range(3)),  # linear_regions: 3 repeats of 3000 images
    )


def test_num_batches_must_be_positive() -> None:
    from orchestrator.errors import SweepError

    with pytest.raises(SweepError, match="proxy.zico.num_batches must be a positive integer"):
        load_settings(make_config(["sweep.proxies=[zico]", "proxy.zico.num_batches=0"]), check_files=False)
