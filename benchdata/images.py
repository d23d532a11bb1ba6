"""Readers for the image files the benchmarks were trained on, without torchvision.

Each reader returns ``(images, labels)``: uint8 ``N x 3 x H x W`` and int64 ``N``, the
training split where the file has one. Formats:

- official CIFAR-10 python batches (folder with ``data_batch_1..5``, ``test_batch``),
- official CIFAR-100 python files (folder with ``train``, ``test``; fine labels),
- ImageNet16 pickle batches of Chrabaszcz et al. (folder with ``train_data_batch_1..10``,
  ``val_data``; labels 1..1000, of which ImageNet16-120 keeps 1..120 as 0..119),
- the ``.npz`` samples of this project's shared data (``train_images``/``train_labels``,
  else ``test_images`` with ``test_labels`` or ``test_fine_labels``).

Whatever the format, what comes back is checked (``check_images``): four dimensions with
three channels first, the dataset's image side, pixels that are integers in 0..255, one
integer label per image within the dataset's classes. A file that fails says so in one
ValueError line before any batch is drawn, so a wrong file never becomes a sweep of error
rows or of scores on the wrong pixels. The python batches are pickles: they are read with
an unpickler that builds numpy arrays and plain containers only, so a file that names any
other callable is refused instead of run.
"""
from __future__ import annotations

import pickle
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from benchdata.root import MissingDataError

HOW_TO_OBTAIN = {
    "cifar10": "download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz and unpack "
    "it under the data root (folder cifar-10-batches-py), or use cifar10_sample.npz",
    "cifar100": "download https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz and unpack "
    "it under the data root (folder cifar-100-python), or use cifar100_sample.npz",
    "ImageNet16-120": "download the ImageNet16 batches (Chrabaszcz et al. 2017, "
    "https://image-net.org/download-images, 'Imagenet16_train' and 'Imagenet16_val') and "
    "unpack them into one folder under the data root",
    "imagenet": "ImageNet images do not come with proxysweep: write your own sample of ILSVRC-2012 "
    "training images as a .npz under the data root (numpy.savez(path, train_images=uint8 N x 3 x 224 x 224 "
    "RGB, train_labels=class indices 0..999)) and set data.images.imagenet to its name",
}

#: classes kept by the ImageNet16-120 variant: original labels 1..120
IMAGENET16_CLASSES = 120
#: image side and number of classes of each dataset's images, as the benchmarks trained on them
IMAGE_SIDE = {"cifar10": 32, "cifar100": 32, "ImageNet16-120": 16, "imagenet": 224}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "ImageNet16-120": IMAGENET16_CLASSES, "imagenet": 1000}

#: the globals a python image batch may name: numpy's array and scalar rebuilders (numpy 1
#: and 2 module names) and the codec pickle protocol 2 uses for bytes; nothing that runs code
_PICKLE_GLOBALS: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): __import__("codecs").encode,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    **{(m, "_reconstruct"): np._core.multiarray._reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): np._core.multiarray.scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "_frombuffer"): np._core.numeric._frombuffer for m in ("numpy.core.numeric", "numpy._core.numeric")},
}


class _ArrayUnpickler(pickle.Unpickler):
    """Builds arrays, numbers, strings, lists and dicts; refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which an image batch never holds; "
                                         "not loaded, for safety") from None


def _unpickle(path: Path, keys: tuple[str, ...], how: str) -> dict:
    """The dict of a python image batch, with ``keys``; ValueError in one line otherwise
    (truncated or damaged pickle, another object, a refused global)."""
    if not path.is_file():
        raise MissingDataError(path, how)
    try:
        with open(path, "rb") as fh:
            entry = _ArrayUnpickler(fh, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError, RecursionError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable image batch ({_one_line(exc)}): {how}") from None
    missing = [k for k in keys if not isinstance(entry, dict) or k not in entry]
    if missing:
        got = sorted(map(str, entry))[:6] if isinstance(entry, dict) else type(entry).__name__
        raise ValueError(f"{path} is not an image batch: it lacks {', '.join(map(repr, missing))} (holds {got}): {how}")
    return entry


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _rows_to_nchw(data: Any, side: int, path: Path) -> np.ndarray:
    """A batch's ``data``: rows of 3 x side x side uint8 pixels (R plane, G plane, B plane)."""
    pixels = 3 * side * side
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != pixels:
        shape = getattr(data, "shape", None)
        dtype = getattr(data, "dtype", type(data).__name__)
        raise ValueError(f"{path}: 'data' must be uint8 rows of {pixels} pixels (3 x {side} x {side}); "
                         f"got {dtype} of shape {shape}")
    return np.ascontiguousarray(data.reshape(-1, 3, side, side))


def _labels(values: Any, count: int, path: Path, key: str) -> np.ndarray:
    """One integer label per image, as int64."""
    try:
        array = np.asarray(values) if isinstance(values, (list, tuple, np.ndarray)) else None
    except (ValueError, TypeError, OverflowError):  # ragged or mixed lists
        array = None
    if array is None or array.ndim != 1 or len(array) != count or not _integer(array):
        shape = None if array is None else array.shape
        raise ValueError(f"{path}: {key!r} must be a list of {count} integer labels, one per image; got "
                         f"{type(values).__name__} of shape {shape}")
    return array.astype(np.int64)


def _integer(array: np.ndarray) -> bool:
    return array.dtype.kind in "iu" or (array.size == 0 and array.dtype.kind in "iuf")


def read_cifar10_batches(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """All five training batches of the official CIFAR-10 python version."""
    images, labels = [], []
    for i in range(1, 6):
        path = folder / f"data_batch_{i}"
        entry = _unpickle(path, ("data", "labels"), HOW_TO_OBTAIN["cifar10"])
        images.append(_rows_to_nchw(entry["data"], 32, path))
        labels.append(_labels(entry["labels"], len(images[-1]), path, "labels"))
    return np.concatenate(images), np.concatenate(labels)


def read_cifar100_files(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """The training file of the official CIFAR-100 python version, fine labels."""
    path = folder / "train"
    entry = _unpickle(path, ("data", "fine_labels"), HOW_TO_OBTAIN["cifar100"])
    images = _rows_to_nchw(entry["data"], 32, path)
    return images, _labels(entry["fine_labels"], len(images), path, "fine_labels")


def read_imagenet16_batches(
    folder: Path, num_classes: int = IMAGENET16_CLASSES, max_batches: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Training images of ImageNet16 whose label is 1..num_classes, relabelled 0-based.

    A fixed batch needs only a few hundred images, so by default only the first of the ten
    training files is read (about 100 MB instead of 1 GB); ``max_batches`` raises that.
    """
    images, labels = [], []
    for i in range(1, max_batches + 1):
        path = folder / f"train_data_batch_{i}"
        entry = _unpickle(path, ("data", "labels"), HOW_TO_OBTAIN["ImageNet16-120"])
        rows = _rows_to_nchw(entry["data"], 16, path)
        lab = _labels(entry["labels"], len(rows), path, "labels")
        keep = (lab >= 1) & (lab <= num_classes)
        images.append(rows[keep])
        labels.append(lab[keep] - 1)
    return np.concatenate(images), np.concatenate(labels)


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A project sample file: the training split if it has one, else the test split.
    Arrays come back as stored; ``check_images`` judges them."""
    try:
        npz = np.load(path, allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):  # a bare .npy array under an .npz name
            raise ValueError(f"a single {type(npz).__name__}, not named arrays")
        with npz:
            for split in ("train", "test"):
                if f"{split}_images" in npz.files:
                    for key in (f"{split}_labels", f"{split}_fine_labels"):
                        if key in npz.files:
                            return npz[f"{split}_images"], npz[key]
            keys = ", ".join(sorted(npz.files)[:6]) or "none"
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, NotImplementedError,
            MemoryError) as exc:  # a cut or damaged zip, a bad array header, pickled objects
        raise ValueError(f"{path} is not a readable .npz file ({_one_line(exc)}): write it again with "
                         "numpy.savez(path, train_images=..., train_labels=...)") from None
    raise ValueError(f"{path}: no train_images/train_labels (or test_images with test_labels or "
                     f"test_fine_labels) in this .npz file; it holds {keys}")


def check_images(images: np.ndarray, labels: np.ndarray, dataset: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``images`` as uint8 N x 3 x H x W and ``labels`` as int64 N, or ValueError in one line
    saying what is wrong: shape, the dataset's image side, pixel type or range, label count,
    type or range."""
    side = IMAGE_SIDE.get(dataset)
    want = f"N x 3 x {side} x {side}" if side else "N x 3 x H x W"
    if images.ndim != 4 or images.shape[1] != 3 or (side and images.shape[2:] != (side, side)):
        hint = " (channels last? transpose with .transpose(0, 3, 1, 2))" if images.ndim == 4 and images.shape[-1] == 3 else ""
        raise ValueError(f"{path}: {dataset} images must be {want} (channels first); got shape {images.shape}{hint}")
    if len(images) == 0:
        raise ValueError(f"{path} holds no {dataset} images")
    if images.dtype != np.uint8:
        if images.dtype.kind not in "iu":
            raise ValueError(f"{path}: pixels must be integers 0..255 (uint8); got {images.dtype}")
        low, high = int(images.min()), int(images.max())
        if low < 0 or high > 255:
            raise ValueError(f"{path}: pixels must be 0..255; got {images.dtype} values {low}..{high}")
        images = images.astype(np.uint8)
    if labels.ndim != 1 or len(labels) != len(images) or not _integer(labels):
        raise ValueError(f"{path}: labels must be {len(images)} integers, one per image; got {labels.dtype} "
                         f"of shape {labels.shape}")
    classes = NUM_CLASSES.get(dataset)
    if classes is not None and (labels.min() < 0 or labels.max() >= classes):
        raise ValueError(f"{path}: {dataset} labels must be 0..{classes - 1}; got {int(labels.min())}..{int(labels.max())}")
    return np.ascontiguousarray(images), labels.astype(np.int64)


def read_images(path: Path, dataset: str) -> tuple[np.ndarray, np.ndarray]:
    """Read the images of ``dataset`` from ``path`` (a file or folder), format by content,
    checked by ``check_images``."""
    how = HOW_TO_OBTAIN.get(dataset, "see the README section 'Data'")
    if not path.exists():
        raise MissingDataError(path, how)
    if path.is_file():
        if path.suffix != ".npz":
            raise ValueError(f"{path}: unknown image file format (expected .npz or a folder)")
        images, labels = read_npz(path)
    elif (path / "data_batch_1").exists():
        images, labels = read_cifar10_batches(path)
    elif (path / "train").exists() and (path / "meta").exists():
        images, labels = read_cifar100_files(path)
    elif (path / "train_data_batch_1").exists():
        num = IMAGENET16_CLASSES if dataset == "ImageNet16-120" else 1000
        images, labels = read_imagenet16_batches(path, num)
    else:
        raise MissingDataError(path / "data_batch_1", f"{path} holds no known image batches; {how}")
    return check_images(images, labels, dataset, path)
