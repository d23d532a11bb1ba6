"""Image readers on files written here in the official formats, and the fixed batches."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from benchdata.batches import NORMALIZATION, BatchSpec, draw_batch
from benchdata.root import MissingDataError
from benchdata.images import read_images


def _pickle(path, obj) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


def test_cifar10_python_batches(tmp_path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    expected = []
    for i in range(1, 6):  # official layout: rows of 3072 = R plane, G plane, B plane
        data = rng.integers(0, 256, size=(4, 3072), dtype=np.uint8)
        labels = [i, i + 1, i + 2, 0]
        _pickle(folder / f"data_batch_{i}", {"data": data, "labels": labels, "batch_label": f"b{i}"})
        expected.append((data, labels))
    _pickle(folder / "test_batch", {"data": np.zeros((1, 3072), np.uint8), "labels": [0]})
    x, y = read_images(folder, "cifar10")
    assert x.shape == (20, 3, 32, 32) and x.dtype == np.uint8
    assert x[0, 1, 0, 0] == expected[0][0][0, 1024]  # first green pixel of the first image
    assert x[0, 2, 31, 31] == expected[0][0][0, 3071]
    assert list(y[:4]) == [1, 2, 3, 0]


def test_cifar100_python_files(tmp_path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    _pickle(folder / "train", {"data": data, "fine_labels": [99, 3], "coarse_labels": [19, 1]})
    _pickle(folder / "test", {"data": data, "fine_labels": [0, 0], "coarse_labels": [0, 0]})
    _pickle(folder / "meta", {"fine_label_names": [], "coarse_label_names": []})
    x, y = read_images(folder, "cifar100")
    assert x.shape == (2, 3, 32, 32)
    assert list(y) == [99, 3]


def test_imagenet16_120_keeps_120_classes_zero_based(tmp_path) -> None:
    folder = tmp_path / "ImageNet16"
    folder.mkdir()
    data = np.arange(5 * 768, dtype=np.int64).reshape(5, 768).astype(np.uint8)
    labels = [1, 120, 121, 1000, 60]  # labels are 1-based in the official batches
    _pickle(folder / "train_data_batch_1", {"data": data, "labels": labels, "mean": np.zeros(768)})
    x, y = read_images(folder, "ImageNet16-120")
    assert x.shape == (3, 3, 16, 16)
    assert list(y) == [0, 119, 59]
    assert np.array_equal(x[2].reshape(-1), data[4])


@pytest.mark.shared_data
def test_npz_sample_and_missing_file(data_root, tmp_path) -> None:
    x, y = read_images(data_root / "cifar10_sample.npz", "cifar10")
    assert x.shape == (5085, 3, 32, 32) and y.max() == 9  # the training split
    x, y = read_images(data_root / "cifar100_sample.npz", "cifar100")
    assert x.shape == (916, 3, 32, 32) and y.max() <= 99  # only a test split: fine labels
    with pytest.raises(MissingDataError, match="cifar-10-python.tar.gz"):
        read_images(tmp_path / "nothing.npz", "cifar10")


@pytest.mark.shared_data
def test_fixed_batch_is_deterministic_and_normalised(data_root) -> None:
    x, y = read_images(data_root / "cifar10_sample.npz", "cifar10")
    spec = BatchSpec(64, augment=False)
    a, la = draw_batch(x, y, "cifar10", 0, spec)
    b, lb = draw_batch(x, y, "cifar10", 0, spec)
    c, _ = draw_batch(x, y, "cifar10", 1, spec)
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)
    assert a.shape == (64, 3, 32, 32) and a.dtype == torch.float32
    # without augmentation each image is an exact normalised copy of a source image
    mean, std = (np.asarray(v, np.float32)[:, None, None] for v in NORMALIZATION["cifar10"])
    raw = a[0].numpy() * std + mean
    matches = np.where(np.abs(x.astype(np.float32) - raw).max(axis=(1, 2, 3)) < 1e-3)[0]
    assert len(matches) >= 1 and y[matches[0]] == la[0].item()


def test_augmentation_is_a_crop_of_the_zero_padded_image_maybe_mirrored() -> None:
    from benchdata.batches import _crop_and_flip

    n, side, pad = 40, 8, 1  # pad = side // 8
    x = np.arange(1, n * 3 * side * side + 1, dtype=np.float32).reshape(n, 3, side, side)
    out = _crop_and_flip(x, np.random.default_rng(5))
    seen_flip = seen_shift = False
    for i in range(n):
        padded = np.pad(x[i], ((0, 0), (pad, pad), (pad, pad)))
        windows = [
            (flip, dy, dx)
            for dy in range(2 * pad + 1) for dx in range(2 * pad + 1) for flip in (False, True)
            if np.array_equal(out[i], (lambda w: w[:, :, ::-1] if flip else w)(padded[:, dy:dy + side, dx:dx + side]))
        ]
        assert len(windows) == 1, i
        flip, dy, dx = windows[0]
        seen_flip |= flip
        seen_shift |= (dy, dx) != (pad, pad)
    assert seen_flip and seen_shift


@pytest.mark.shared_data
def test_augmented_batch_differs_from_plain(data_root) -> None:
    x, y = read_images(data_root / "cifar10_sample.npz", "cifar10")
    plain, _ = draw_batch(x, y, "cifar10", 3, BatchSpec(16, augment=False))
    aug, _ = draw_batch(x, y, "cifar10", 3, BatchSpec(16, augment=True))
    assert aug.shape == plain.shape and not torch.equal(aug, plain)
