"""The NAS-Bench-101 module hash: the benchmark's id of a cell, invariant to vertex numbering.

The definition is that of the benchmark (``hash_module`` in google-research/nasbench
``nasbench/lib/graph_util.py``), a Weisfeiler-Lehman style refinement with MD5:

1. every vertex starts from the MD5 hex digest of the text ``str((out_degree, in_degree,
   label))``, e.g. ``"(2, 0, -1)"``, with labels -1 input, -2 output, 0/1/2 the index of
   the operation in the canonical op order;
2. then, as many times as the graph has vertices, every vertex gets the MD5 of its sorted
   in-neighbour digests joined, ``|``, its sorted out-neighbour digests joined, ``|``, and
   its own digest;
3. the module hash is the MD5 of ``str(sorted(digests))`` (a Python list's text).

Hex digests are all 32 characters, so sorting them as strings is what the definition means
by sorting. ``nb101_enumerate`` computes the same function for many cells at once.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from spaces.nb101.cell import NB101Cell, op_labels


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def module_hash(matrix: np.ndarray | Sequence[Sequence[int]], labels: Sequence[int]) -> str:
    """The benchmark's hash of a graph with integer vertex labels (see the module docstring)."""
    adj = np.asarray(matrix)
    n = adj.shape[0]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} vertices")
    out_degree = adj.sum(axis=1).tolist()
    in_degree = adj.sum(axis=0).tolist()
    digests = [md5_hex(str((int(o), int(i), int(label)))) for o, i, label in zip(out_degree, in_degree, labels)]
    sources = [[u for u in range(n) if adj[u, v]] for v in range(n)]
    targets = [[w for w in range(n) if adj[v, w]] for v in range(n)]
    for _ in range(n):
        digests = [
            md5_hex(
                "".join(sorted(digests[u] for u in sources[v])) + "|"
                + "".join(sorted(digests[w] for w in targets[v])) + "|"
                + digests[v]
            )
            for v in range(n)
        ]
    return md5_hex(str(sorted(digests)))


def cell_hash(cell: NB101Cell) -> str:
    """The module hash of a (pruned) cell: its official NAS-Bench-101 id."""
    return module_hash(cell.array, op_labels(cell.ops))
