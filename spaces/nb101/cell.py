"""NAS-Bench-101 cells: the space's rules, pruning, the spec string and the official order.

A cell (Ying et al., ICML 2019) is a DAG of at most 7 vertices and 9 edges whose vertices
are numbered in topological order (the adjacency matrix is strictly upper-triangular):
vertex 0 is the input, the last vertex the output, and each interior vertex runs one of
three operations. Vertices that are not on a path from the input to the output compute
nothing the output sees; the benchmark prunes them before hashing, building or looking up a
cell, and so does this module.

The spec string (``arch``) of a cell is ``<edges>:<ops>``: the strictly upper-triangular
part of the adjacency matrix read row by row as 0/1 characters, then one letter per
interior vertex (``3`` conv3x3-bn-relu, ``1`` conv1x1-bn-relu, ``m`` maxpool3x3). The number
of vertices is ``len(ops) + 2``. Example: ``111:3`` is input -> conv3x3 -> output plus a
direct input -> output edge.

Why the official vertex order matters: isomorphic numberings of a cell share its module
hash, but the benchmark's model builder gives the remainder channels of a module to the
lowest-numbered vertices that feed the output, so different numberings build networks of
different sizes. The benchmark trained, for every hash, the numbering its graph generator
(``nasbench/scripts/generate_graphs.py``) met first: fewest-bits-first adjacency bitmask
(bit ``x + y(y-1)/2`` for edge x -> y), then operation labelings in product order.
``official_order`` finds that numbering.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property
from typing import Sequence

import numpy as np

INPUT, OUTPUT = "input", "output"
CONV3X3, CONV1X1, MAXPOOL3X3 = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
#: interior operations in the benchmark's canonical order (config ``available_ops``):
#: their index is the label the module hash uses (input -1, output -2)
OPS: tuple[str, ...] = (CONV3X3, CONV1X1, MAXPOOL3X3)
OP_CODES: dict[str, str] = {CONV3X3: "3", CONV1X1: "1", MAXPOOL3X3: "m"}
CODE_OPS: dict[str, str] = {code: op for op, code in OP_CODES.items()}
MAX_VERTICES = 7
MAX_EDGES = 9


def edge_bit(src: int, dst: int) -> int:
    """Bit index of edge src -> dst in the generator's bitmask (column-major, from bit 0)."""
    return src + dst * (dst - 1) // 2


def op_labels(ops: Sequence[str]) -> list[int]:
    """The integer labels the module hash takes: -1 input, index in ``OPS``, -2 output."""
    return [-1] + [OPS.index(op) for op in ops[1:-1]] + [-2]


@dataclass(frozen=True)
class NB101Cell:
    """A pruned, valid cell: ``matrix[i][j] == 1`` is an edge i -> j; ``ops`` per vertex."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        check_cell(np.asarray(self.matrix), self.ops)

    @classmethod
    def of(cls, matrix: Sequence[Sequence[int]] | np.ndarray, ops: Sequence[str]) -> NB101Cell:
        """A cell from an already pruned matrix and op list; ValueError if it breaks a rule."""
        arr = np.asarray(matrix)
        return cls(tuple(tuple(int(v) for v in row) for row in arr), tuple(ops))

    @property
    def num_vertices(self) -> int:
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        return int(self.array.sum())

    @cached_property
    def array(self) -> np.ndarray:
        """The adjacency matrix as an int64 array (a fresh copy per cell object)."""
        return np.array(self.matrix, dtype=np.int64)

    @property
    def bits(self) -> int:
        """The generator's bitmask of this numbering."""
        return sum(1 << edge_bit(i, j) for i, j in zip(*np.nonzero(self.array)))

    @property
    def arch(self) -> str:
        """The compact spec string, parsed back by ``parse_arch``."""
        n = self.num_vertices
        edges = "".join(str(self.matrix[i][j]) for i in range(n) for j in range(i + 1, n))
        return edges + ":" + "".join(OP_CODES[op] for op in self.ops[1:-1])


def check_cell(matrix: np.ndarray, ops: Sequence[str]) -> None:
    """ValueError naming the first rule a pruned cell breaks.

    Rules: square 0/1 matrix of 2..7 vertices, strictly upper-triangular (vertices in
    topological order), at most 9 edges, ``input`` first, ``output`` last, interior
    operations from ``OPS``, and every vertex on a path from the input to the output.
    """
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"NAS-Bench-101 adjacency must be a square matrix; got shape {matrix.shape}")
    n = matrix.shape[0]
    if not 2 <= n <= MAX_VERTICES:
        raise ValueError(f"NAS-Bench-101 cells have 2 to {MAX_VERTICES} vertices; got {n}")
    if len(ops) != n:
        raise ValueError(f"{len(ops)} operations for {n} vertices: need one per vertex")
    if not np.isin(matrix, (0, 1)).all():
        raise ValueError("NAS-Bench-101 adjacency entries must be 0 or 1")
    if np.tril(matrix).any():
        raise ValueError("NAS-Bench-101 adjacency must be strictly upper-triangular (an edge i -> j needs i < j)")
    edges = int(matrix.sum())
    if edges > MAX_EDGES:
        raise ValueError(f"NAS-Bench-101 cells have at most {MAX_EDGES} edges; got {edges}")
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise ValueError(f"the first operation must be {INPUT!r} and the last {OUTPUT!r}; got {ops[0]!r}, {ops[-1]!r}")
    for v, op in enumerate(ops[1:-1], start=1):
        if op not in OPS:
            raise ValueError(f"vertex {v}: unknown operation {op!r}; expected one of {OPS}")
    dangling = sorted(set(range(n)) - _on_input_output_paths(matrix))
    if dangling:
        raise ValueError(
            f"vertices {dangling} are not on a path from the input to the output "
            "(prune them first: nb101_cell.prune)"
        )


def _on_input_output_paths(matrix: np.ndarray) -> set[int]:
    """Vertices reachable from the input and from which the output is reachable."""
    n = matrix.shape[0]
    forward, backward = {0}, {n - 1}
    for v in range(1, n):
        if any(matrix[u, v] for u in forward):
            forward.add(v)
    for v in range(n - 2, -1, -1):
        if any(matrix[v, w] for w in backward):
            backward.add(v)
    return forward & backward


def prune(matrix: Sequence[Sequence[int]] | np.ndarray, ops: Sequence[str]) -> NB101Cell:
    """The cell a raw graph computes: vertices off every input -> output path removed, then
    the rules checked on what is left (as the benchmark's ModelSpec and query do)."""
    arr = np.asarray(matrix, dtype=np.int64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] != len(ops) or arr.shape[0] < 2:
        raise ValueError(f"need a square adjacency matrix with one operation per vertex; got {arr.shape} and {len(ops)} ops")
    if np.tril(arr).any():
        raise ValueError("NAS-Bench-101 adjacency must be strictly upper-triangular (an edge i -> j needs i < j)")
    keep = sorted(_on_input_output_paths(arr))
    if len(keep) < 2 or keep[0] != 0 or keep[-1] != arr.shape[0] - 1:
        raise ValueError("the input is not connected to the output: no NAS-Bench-101 cell")
    return NB101Cell.of(arr[np.ix_(keep, keep)], [ops[i] for i in keep])


def parse_arch(arch: str) -> NB101Cell:
    """The cell of a spec string ``<edges>:<ops>``; ValueError saying what is wrong."""
    edges, sep, codes = arch.partition(":")
    if not sep:
        raise ValueError(f"malformed NAS-Bench-101 cell {arch!r}: expected '<edges>:<ops>', e.g. '111:3'")
    n = len(codes) + 2
    if len(edges) != n * (n - 1) // 2:
        raise ValueError(
            f"malformed NAS-Bench-101 cell {arch!r}: {len(codes)} interior ops mean {n} vertices and "
            f"{n * (n - 1) // 2} edge flags, got {len(edges)}"
        )
    if set(edges) - {"0", "1"}:
        raise ValueError(f"malformed NAS-Bench-101 cell {arch!r}: edge flags must be 0 or 1")
    unknown = set(codes) - set(CODE_OPS)
    if unknown:
        raise ValueError(f"malformed NAS-Bench-101 cell {arch!r}: unknown op codes {sorted(unknown)}; use 3, 1 or m")
    matrix = np.zeros((n, n), dtype=np.int64)
    matrix[np.triu_indices(n, 1)] = [int(c) for c in edges]
    try:
        return NB101Cell.of(matrix, [INPUT, *(CODE_OPS[c] for c in codes), OUTPUT])
    except ValueError as exc:
        raise ValueError(f"invalid NAS-Bench-101 cell {arch!r}: {exc}") from None


def relabel(cell: NB101Cell, order: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """The graph with new vertex i = old vertex ``order[i]`` (may not be upper-triangular)."""
    idx = list(order)
    return cell.array[np.ix_(idx, idx)], [cell.ops[i] for i in idx]


def official_order(cell: NB101Cell) -> NB101Cell:
    """The numbering of ``cell`` that the benchmark trained (see the module docstring):
    among the topological renumberings of the interior vertices, the one with the smallest
    generator bitmask, ties broken by the smallest labeling in product order."""
    n = cell.num_vertices
    best: tuple[tuple[int, tuple[int, ...]], np.ndarray, list[str]] | None = None
    for perm in itertools.permutations(range(1, n - 1)):
        matrix, ops = relabel(cell, (0, *perm, n - 1))
        if np.tril(matrix).any():
            continue
        bits = sum(1 << edge_bit(i, j) for i, j in zip(*np.nonzero(matrix)))
        key = (bits, tuple(op_labels(ops)[1:-1]))
        if best is None or key < best[0]:
            best = (key, matrix, ops)
    assert best is not None  # the identity numbering is always topological
    return NB101Cell.of(best[1], best[2])
