"""Readers for the image files the benchmarks were trained on, without torchvision.

Each reader returns ``(images, labels)``: uint8 ``N x 3 x H x W`` and int64 ``N``, the
training split where the file has one. Formats:

- official CIFAR-10 python batches (folder with ``data_batch_1..5``, ``test_batch``),
- official CIFAR-100 python files (folder with ``train``, ``test``; fine labels),
- ImageNet16 pickle batches of Chrabaszcz et al. (folder with ``train_data_batch_1..10``,
  ``val_data``; labels 1..1000, of which ImageNet16-120 keeps 1..120 as 0..119),
- the ``.npz`` samples of this project's shared data (``train_images``/``train_labels``,
  else ``test_images`` with ``test_labels`` or ``test_fine_labels``).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from spaces.data_root import MissingDataError

HOW_TO_OBTAIN = {
    "cifar10": "download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and unpack "
    "it under the data root (folder cifar-10-batches-py), or use cifar10_sample.npz",
    "cifar100": "download https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz and unpack "
    "it under the data root (folder cifar-100-python), or use cifar100_sample.npz",
    "ImageNet16-120": "download the ImageNet16 batches (Chrabaszcz et al. 2017, "
    "https://image-net.org/download-images, 'Imagenet16_train' and 'Imagenet16_val') and "
    "unpack them into one folder under the data root",
}

#: classes kept by the ImageNet16-120 variant: original labels 1..120
IMAGENET16_CLASSES = 120


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as fh:
        return pickle.load(fh, encoding="latin1")


def _rows_to_nchw(data: np.ndarray, side: int) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(data, dtype=np.uint8).reshape(-1, 3, side, side))


def read_cifar10_batches(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """All five training batches of the official CIFAR-10 python version."""
    images, labels = [], []
    for i in range(1, 6):
        entry = _unpickle(folder / f"data_batch_{i}")
        images.append(_rows_to_nchw(entry["data"], 32))
        labels.extend(entry["labels"])
    return np.concatenate(images), np.asarray(labels, dtype=np.int64)


def read_cifar100_files(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The training file of the official CIFAR-100 python version, fine labels."""
    entry = _unpickle(folder / "train")
    return _rows_to_nchw(entry["data"], 32), np.asarray(entry["fine_labels"], dtype=np.int64)


def read_imagenet16_batches(
    folder: Path, num_classes: int = IMAGENET16_CLASSES, max_batches: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Training images of ImageNet16 whose label is 1..num_classes, relabelled 0-based.

    A fixed batch needs only a few hundred images, so by default only the first of the ten
    training files is read (about 100 MB instead of 1 GB); ``max_batches`` raises that.
    """
    images, labels = [], []
    for i in range(1, max_batches + 1):
        entry = _unpickle(folder / f"train_data_batch_{i}")
        lab = np.asarray(entry["labels"], dtype=np.int64)
        keep = (lab >= 1) & (lab <= num_classes)
        images.append(_rows_to_nchw(entry["data"], 16)[keep])
        labels.append(lab[keep] - 1)
    return np.concatenate(images), np.concatenate(labels)


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A project sample file: the training split if it has one, else the test split."""
    with np.load(path) as npz:
        for split in ("train", "test"):
            if f"{split}_images" in npz.files:
                for key in (f"{split}_labels", f"{split}_fine_labels"):
                    if key in npz.files:
                        return (
                            np.ascontiguousarray(npz[f"{split}_images"], dtype=np.uint8),
                            npz[key].astype(np.int64),
                        )
    raise ValueError(f"{path}: no train_/test_ images with labels in this .npz file")


def read_images(path: Path, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Read the images of ``dataset`` from ``path`` (a file or folder), format by content."""
    if not path.exists():
        raise MissingDataError(path, HOW_TO_OBTAIN.get(dataset, "see the README section 'Data'"))
    if path.is_file():
        if path.suffix == ".npz":
            return read_npz(path)
        raise ValueError(f"{path}: unknown image file format (expected .npz or a folder)")
    if (path / "data_batch_1").exists():
        return read_cifar10_batches(path)
    if (path / "train").exists() and (path / "meta").exists():
        return read_cifar100_files(path)
    if (path / "train_data_batch_1").exists():
        num = IMAGENET16_CLASSES if dataset == "ImageNet16-120" else 1000
        return read_imagenet16_batches(path, num)
    raise MissingDataError(
        path / "data_batch_1", f"{path} holds no known image batches; "
        + HOW_TO_OBTAIN.get(dataset, "see the README section 'Data'")
    )
