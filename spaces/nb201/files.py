"""Read the official NAS-Bench-201 / NATS-Bench topology files as plain Python data, safely.

Two layouts, learnt from the reference code (D-X-Y/NAS-Bench-201 ``nas_201_api/api_201.py``
and ``api_utils.py``; D-X-Y/NATS-Bench ``nats_bench/api_topology.py`` and ``api_utils.py``):

- ``NAS-Bench-201-v1_0-e61699.pth`` / ``NAS-Bench-201-v1_1-096897.pth``: one ``torch.save``d
  dict ``{"meta_archs": [cell string per index], "arch2infos": {index: {"less": results,
  "full": results}}, "evaluated_indexes": ...}``; ``less`` is the API's ``hp="12"``,
  ``full`` its ``hp="200"``.
- ``NATS-tss-v1_0-3ffb9-simple/``: ``meta.pickle.pbz2`` (``{"meta_archs": [...], ...}``)
  and one ``{index:06d}.pickle.pbz2`` per cell holding ``{"12": results, "200": results}``;
  each is a bz2-compressed pickle (``pickle_save`` of the NATS API).

``results`` is an ``ArchResults.state_dict()``: ``arch_index``, ``arch_str``,
``dataset_seed`` (dataset -> list of trial seeds) and ``all_results`` ((dataset, seed) ->
a ``ResultsCount.state_dict()``: ``epochs``, ``params`` (millions), ``flop``,
``eval_acc1es`` ({"<split>@<epoch>": top-1 accuracy in percent}), losses, times, ...).

Safety: these files are pickles, and unpickling runs whatever globals they name. They hold
only dicts, lists, sets, strings, numbers, OrderedDicts and numpy scalars (and, in the
``.pth``, possibly tensors), so neither reader runs arbitrary code: the ``.pth`` goes
through ``torch.load(weights_only=True)`` with the numpy scalar types allowed (under both
the numpy 1 module names the 2020 files use and the numpy 2 ones), and the bz2 pickles
through an Unpickler whose ``find_class`` allows the same short list. A file that names
anything else is refused, not loaded with ``weights_only=False``.
"""
from __future__ import annotations

import bz2
import collections
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.data import DataError, one_line

#: hyper-parameter key of the API -> key in the NAS-Bench-201 ``.pth`` file
PTH_HP_KEYS = {"12": "less", "200": "full"}
NATS_EXT = ".pickle.pbz2"

_SCALAR = np._core.multiarray.scalar
_DTYPES = [np.dtype, np.dtypes.Float64DType, np.dtypes.Float32DType, np.dtypes.Int64DType,
           np.dtypes.Int32DType, np.dtypes.BoolDType]
#: (module, name) a benchmark pickle may name -> the object it stands for
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("__builtin__", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): __import__("codecs").encode,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    **{(t.__module__, t.__name__): t for t in _DTYPES},
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a benchmark file does not hold") from None


def load_bz2_pickle(path: Path) -> Any:
    """A NATS-Bench ``.pickle.pbz2`` file's content; DataError if it is unreadable."""
    try:
        with bz2.open(path, "rb") as fh:
            return _SafeUnpickler(fh).load()
    except FileNotFoundError:
        raise DataError(f"no such file {path}") from None
    except Exception as exc:  # noqa: BLE001 - untrusted input: truncated bz2 stream, bad pickle, refused global
        raise DataError(f"cannot read {path}: {type(exc).__name__}: {one_line(exc)}") from None


def load_pth(path: Path) -> Any:
    """A NAS-Bench-201 ``.pth`` file's content, read with ``weights_only=True``."""
    import torch

    allowed = [(_SCALAR, "numpy.core.multiarray.scalar"), _SCALAR, *_DTYPES]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"no such file {path}") from None
    except Exception as exc:  # noqa: BLE001 - untrusted input: truncated, not a torch file, refused global
        text = "the file ends early: it is truncated" if isinstance(exc, EOFError) else one_line(exc)
        if "Weights only load failed" in text:  # torch's own wording; say what it found
            message = str(exc)
            refused = re.search(r"\bGLOBAL ([\w.]+)", message)
            if refused:
                text = f"it names {refused.group(1)}, which a NAS-Bench-201 file does not hold; not loaded, for safety"
            else:
                after = message.partition("WeightsUnpickler error:")[2]
                detail = next((ln.strip() for ln in after.splitlines() if ln.strip()), "an unreadable pickle")
                text = f"not a NAS-Bench-201 .pth file ({detail})"
        raise DataError(f"cannot read {path}: {text}") from None


def read_pth(path: Path) -> tuple[list[Any], Iterator[tuple[int, dict[str, Any]]]]:
    """(cell strings by index, iterator of (index, {"12": results, "200": results}))."""
    data = load_pth(path)
    where = path.name
    if not isinstance(data, dict):
        raise DataError(f"{where}: expected a dict with meta_archs and arch2infos, got {type(data).__name__}")
    for key in ("meta_archs", "arch2infos"):
        if key not in data:
            raise DataError(f"{where}: no {key!r} key; not a NAS-Bench-201 benchmark file")
    archs, infos = data["meta_archs"], data["arch2infos"]
    if not isinstance(archs, list) or not isinstance(infos, dict):
        raise DataError(f"{where}: meta_archs must be a list and arch2infos a dict")

    def cells() -> Iterator[tuple[int, dict[str, Any]]]:
        for index in range(len(archs)):
            if index not in infos:
                raise DataError(f"{where}: arch2infos has no results for cell {index}; the file is incomplete")
            entry = infos[index]
            if not isinstance(entry, dict):
                raise DataError(f"{where}: arch2infos[{index}] must be a dict, got {type(entry).__name__}")
            out = {}
            for hp, key in PTH_HP_KEYS.items():
                if key not in entry:
                    raise DataError(f"{where}: arch2infos[{index}] has no {key!r} results (hp={hp})")
                out[hp] = entry[key]
            yield index, out

    return archs, cells()


def read_nats_folder(folder: Path) -> tuple[list[Any], Iterator[tuple[int, dict[str, Any]]]]:
    """The same from a ``NATS-tss-v1_0-3ffb9-simple`` folder; every cell's file must be there."""
    meta = load_bz2_pickle(folder / f"meta{NATS_EXT}")
    if not isinstance(meta, dict) or "meta_archs" not in meta:
        raise DataError(f"{folder / ('meta' + NATS_EXT)}: no 'meta_archs' key; not a NATS-Bench meta file")
    archs = meta["meta_archs"]
    if not isinstance(archs, list):
        raise DataError(f"{folder / ('meta' + NATS_EXT)}: meta_archs must be a list")
    files = []
    for index in range(len(archs)):
        path = folder / f"{index:06d}{NATS_EXT}"
        if not path.is_file() and (folder / f"{index}{NATS_EXT}").is_file():
            path = folder / f"{index}{NATS_EXT}"  # the API accepts both names
        files.append(path)
    lacking = [p.name for p in files if not p.is_file()]
    if lacking:
        raise DataError(f"{folder}: {len(lacking)} of {len(archs)} cell files are missing "
                        f"(first: {lacking[0]}); the download is incomplete")

    def cells() -> Iterator[tuple[int, dict[str, Any]]]:
        for index, path in enumerate(files):
            data = load_bz2_pickle(path)
            if not isinstance(data, dict):
                raise DataError(f"{path.name}: expected a dict of results by hp, got {type(data).__name__}")
            for hp in PTH_HP_KEYS:
                if hp not in data:
                    raise DataError(f"{path.name}: no {hp!r} results")
            yield index, {hp: data[hp] for hp in PTH_HP_KEYS}

    return archs, cells()
