"""Enumerate every NAS-Bench-101 cell once, in the numbering the benchmark trained.

The benchmark's generator (``generate_graphs.py``) walks, for 2..7 vertices, every
adjacency bitmask in increasing order, keeps full DAGs (every vertex on an input -> output
path) with at most 9 edges, tries every operation labeling in product order, and keeps the
first graph of each module hash: 423,624 cells out of 1,293,208 labeled graphs. Hashing
all of them with MD5 in Python takes many minutes, so this module finds the same first
graphs without hashing the rest:

* a graph is the first of its isomorphism class iff no topological renumbering of its
  interior vertices gives a smaller bitmask, nor the same bitmask (an automorphism of the
  unlabeled DAG) with a smaller labeling in product order (``nb101_cell.official_order``
  is the same rule for one cell). Both tests run on bitmasks and labeling codes with numpy;
* only those 423,624 graphs are hashed, with the benchmark's hash vectorised: vertex
  digests are kept as their rank among the digests of the round (hex digests have one
  length, so sorting ranks sorts digests), the text each vertex hashes is assembled for
  all vertices at once as rows of a byte array, and chunks of graphs are hashed on
  several processes. What is left per MD5 is one call of ``hashlib``.

The result is checked: the hashes are all distinct (the isomorphism classes and the hash
classes agree, as the benchmark verified for this space) and, for the full space, there are
exactly 423,624 of them. ``python -m spaces.nb101.enumeration OUT.parquet`` writes the table.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.files import atomic_path
from spaces.nb101.cell import INPUT, MAX_EDGES, MAX_VERTICES, OP_CODES, OPS, OUTPUT, edge_bit
from spaces.nb101.hashing import md5_hex

NUM_CELLS = 423_624
CACHE_FORMAT = "nb101-cells-v1"


@dataclass(frozen=True)
class Enumeration:
    """Cells sorted by hash: ``matrices[i]`` padded with zeros to 7x7 (``vertices[i]`` used),
    ``labels[i]`` the interior op indices into ``OPS`` (-1 past the last interior vertex)."""

    hashes: np.ndarray  # (N,) str
    vertices: np.ndarray  # (N,) int8
    matrices: np.ndarray  # (N, 7, 7) int8
    labels: np.ndarray  # (N, 5) int8

    def __len__(self) -> int:
        return len(self.hashes)


# -- which graphs the generator keeps -----------------------------------------------------

def _edges(n: int) -> list[tuple[int, int]]:
    """(src, dst) of every bit of an n-vertex bitmask, by bit index."""
    edges = sorted(((a, b) for b in range(n) for a in range(b)), key=lambda e: edge_bit(*e))
    assert [edge_bit(*e) for e in edges] == list(range(len(edges)))
    return edges


def full_dag_masks(n: int, max_edges: int) -> np.ndarray:
    """Bitmasks (ascending) of n-vertex DAGs with at most ``max_edges`` edges in which every
    vertex but the output has an out-edge and every vertex but the input an in-edge."""
    edges = _edges(n)
    masks = np.arange(1 << len(edges), dtype=np.int64)
    count = np.zeros_like(masks)
    for bit in range(len(edges)):
        count += (masks >> bit) & 1
    keep = count <= max_edges
    for v in range(n):
        out_bits = sum(1 << edge_bit(v, w) for w in range(v + 1, n))
        in_bits = sum(1 << edge_bit(u, v) for u in range(v))
        if v < n - 1:
            keep &= (masks & out_bits) != 0
        if v > 0:
            keep &= (masks & in_bits) != 0
    return masks[keep]


def _renumber(masks: np.ndarray, n: int, perm: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(bitmask after renumbering old vertex v as perm[v], whether it stays topological)."""
    moved = np.zeros_like(masks)
    backwards = 0
    for bit, (a, b) in enumerate(_edges(n)):
        if perm[a] > perm[b]:
            backwards |= 1 << bit
        else:
            moved |= ((masks >> bit) & 1) << edge_bit(perm[a], perm[b])
    return moved, (masks & backwards) == 0


def first_graphs(n: int, max_edges: int, num_ops: int) -> list[tuple[int, np.ndarray]]:
    """For n vertices, (bitmask, interior labelings) of every graph the generator keeps."""
    masks = full_dag_masks(n, max_edges)
    perms = [(0, *p, n - 1) for p in itertools.permutations(range(1, n - 1))]
    minimal = np.ones(len(masks), dtype=bool)
    symmetric: list[list[tuple[int, ...]]] = [[] for _ in masks]
    for perm in perms[1:]:  # perms[0] is the identity
        moved, topological = _renumber(masks, n, perm)
        minimal &= ~(topological & (moved < masks))
        for i in np.nonzero(topological & (moved == masks))[0]:
            symmetric[i].append(perm)
    interior = n - 2
    labelings = np.array(list(itertools.product(range(num_ops), repeat=interior)), dtype=np.int64)
    labelings = labelings.reshape(num_ops ** interior, interior)
    weights = num_ops ** np.arange(interior - 1, -1, -1, dtype=np.int64)  # vertex 1 most significant
    codes = labelings @ weights
    out = []
    for i in np.nonzero(minimal)[0]:
        keep = np.ones(len(labelings), dtype=bool)
        for perm in symmetric[i]:
            moved = np.empty_like(labelings)
            moved[:, [perm[v] - 1 for v in range(1, n - 1)]] = labelings
            keep &= moved @ weights >= codes
        out.append((int(masks[i]), labelings[keep]))
    return out


# -- the benchmark's hash, many graphs at once ----------------------------------------------

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_BAR = ord("|")


def _hex(digests: np.ndarray) -> np.ndarray:
    """(K, 16) raw MD5 digests -> (K, 32) uint8 lowercase hex text, as ``hexdigest``."""
    out = np.empty((len(digests), 32), dtype=np.uint8)
    out[:, 0::2] = _HEX[digests >> 4]
    out[:, 1::2] = _HEX[digests & 15]
    return out


def _md5_rows(rows: np.ndarray) -> np.ndarray:
    """MD5 of every row of a (K, L) uint8 text array (no NUL bytes) -> (K, 16) digests."""
    if not len(rows):
        return np.empty((0, 16), dtype=np.uint8)
    texts = np.ascontiguousarray(rows).view(f"S{rows.shape[1]}").ravel().tolist()
    md5 = hashlib.md5
    return np.frombuffer(b"".join([md5(t).digest() for t in texts]), dtype=np.uint8).reshape(-1, 16)


def _rank(digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct digests as (T, 32) hex text, rank of each input digest). Raw bytes and
    their hex text sort alike, so ranks sort as the hex digests do."""
    keys = np.ascontiguousarray(digests).view(np.dtype((np.void, 16))).ravel()
    distinct, inverse = np.unique(keys, return_inverse=True)
    table = _hex(np.frombuffer(distinct.tobytes(), dtype=np.uint8).reshape(-1, 16))
    return table, inverse.ravel().astype(np.int64)


def batch_module_hash(adjacency: np.ndarray, labels: np.ndarray) -> list[str]:
    """``nb101_hash.module_hash`` of N graphs of V vertices: (N, V, V) 0/1, (N, V) labels.

    Vertex digests are kept as ranks into a sorted table of this round's hex digests; each
    round builds, per (in-degree, out-degree) group of vertices, the exact text the
    definition hashes (sorted in-neighbour digests, ``|``, sorted out-neighbour digests,
    ``|``, own digest) as rows of a byte array, and hashes every row.
    """
    count, n, _ = adjacency.shape
    if count == 0:
        return []
    adj = adjacency.astype(bool)
    fan_in, fan_out = adj.sum(1), adj.sum(2)
    start = np.stack([fan_out, fan_in, labels], axis=-1).reshape(-1, 3).astype(np.int64)
    kinds, which = np.unique(start, axis=0, return_inverse=True)
    first = np.array([list(bytes.fromhex(md5_hex(str(tuple(int(x) for x in k))))) for k in kinds], dtype=np.uint8)
    table, ids = _rank(first[which.ravel()])
    ids = ids.reshape(count, n)
    flat_in, flat_out = fan_in.ravel(), fan_out.ravel()
    for _ in range(n):
        pad = len(table)  # sorts after every real rank
        sources = np.sort(np.where(adj.transpose(0, 2, 1), ids[:, None, :], pad), axis=2).reshape(count * n, n)
        targets = np.sort(np.where(adj, ids[:, None, :], pad), axis=2).reshape(count * n, n)
        own = ids.reshape(-1)
        digests = np.empty((count * n, 16), dtype=np.uint8)
        for c_in in range(n):
            for c_out in range(n - c_in):
                rows = np.nonzero((flat_in == c_in) & (flat_out == c_out))[0]
                if not len(rows):
                    continue
                text = np.concatenate([
                    table[sources[rows, :c_in]].reshape(len(rows), 32 * c_in),
                    np.full((len(rows), 1), _BAR, dtype=np.uint8),
                    table[targets[rows, :c_out]].reshape(len(rows), 32 * c_out),
                    np.full((len(rows), 1), _BAR, dtype=np.uint8),
                    table[own[rows]],
                ], axis=1)
                digests[rows] = _md5_rows(text)
        table, ids = _rank(digests)
        ids = ids.reshape(count, n)
    ordered = table[np.sort(ids, axis=1)]  # (N, V, 32): str(sorted(digests)) of each graph
    quote = np.full((count, n, 1), ord("'"), dtype=np.uint8)
    sep = np.frombuffer(b", ", dtype=np.uint8)
    items = np.concatenate([quote, ordered, quote], axis=2)  # 'digest'
    parts = [np.full((count, 1), ord("["), dtype=np.uint8)]
    for v in range(n):
        if v:
            parts.append(np.broadcast_to(sep, (count, 2)))
        parts.append(items[:, v])
    parts.append(np.full((count, 1), ord("]"), dtype=np.uint8))
    finals = _hex(_md5_rows(np.concatenate(parts, axis=1)))
    return finals.view("S32").ravel().astype(str).tolist()


def _hash_chunk(args: tuple[np.ndarray, np.ndarray]) -> list[str]:
    return batch_module_hash(*args)


def hash_many(adjacency: np.ndarray, labels: np.ndarray, processes: int = 1, chunk: int = 40_000) -> list[str]:
    """``batch_module_hash`` in chunks (bounded memory), on ``processes`` worker processes."""
    parts = [(adjacency[i:i + chunk], labels[i:i + chunk]) for i in range(0, len(adjacency), chunk)]
    if processes > 1 and len(parts) > 1:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(processes, len(parts))) as pool:
            results = pool.map(_hash_chunk, parts)
    else:
        results = [_hash_chunk(p) for p in parts]
    return [h for part in results for h in part]


# -- the whole space ----------------------------------------------------------------------

def _matrices(n: int, masks: np.ndarray) -> np.ndarray:
    """(len(masks), n, n) int8 adjacency matrices of n-vertex bitmasks."""
    out = np.zeros((len(masks), n, n), dtype=np.int8)
    for bit, (a, b) in enumerate(_edges(n)):
        out[:, a, b] = (masks >> bit) & 1
    return out


def enumerate_cells(
    max_vertices: int = MAX_VERTICES, max_edges: int = MAX_EDGES, num_ops: int = len(OPS),
    processes: int | None = None,
) -> Enumeration:
    """Every cell of the space (or of a smaller variant), sorted by module hash; hashing
    runs on ``processes`` worker processes (default: this machine's CPUs)."""
    processes = processes or os.cpu_count() or 1
    hashes: list[str] = []
    vertices, matrices, labels = [], [], []
    for n in range(2, max_vertices + 1):
        graphs = first_graphs(n, max_edges, num_ops)
        if not graphs:
            continue
        masks = np.concatenate([np.full(len(labs), mask, dtype=np.int64) for mask, labs in graphs])
        adj = _matrices(n, masks)
        lab = np.concatenate([labs for _, labs in graphs]).astype(np.int8)
        full = np.concatenate([np.full((len(lab), 1), -1), lab, np.full((len(lab), 1), -2)], axis=1)
        hashes.extend(hash_many(adj, full, processes))
        padded = np.zeros((len(adj), MAX_VERTICES, MAX_VERTICES), dtype=np.int8)
        padded[:, :n, :n] = adj
        interior = np.full((len(lab), MAX_VERTICES - 2), -1, dtype=np.int8)
        interior[:, : n - 2] = lab
        matrices.append(padded)
        labels.append(interior)
        vertices.append(np.full(len(adj), n, dtype=np.int8))
    ids = np.array(hashes)
    order = np.argsort(ids, kind="stable")
    result = Enumeration(
        ids[order], np.concatenate(vertices)[order], np.concatenate(matrices)[order], np.concatenate(labels)[order],
    )
    if len(np.unique(result.hashes)) != len(result):
        raise AssertionError("two non-isomorphic cells share a module hash")
    return result


def _spec_strings(cells: Enumeration) -> list[str]:
    """Every cell's spec string, built per vertex count with numpy."""
    out = np.empty(len(cells), dtype=object)
    codes = np.frombuffer("".join(OP_CODES[op] for op in OPS).encode(), dtype=np.uint8)
    for n in np.unique(cells.vertices).tolist():
        rows = np.nonzero(cells.vertices == n)[0]
        upper = np.triu_indices(n, 1)
        text = np.concatenate([
            cells.matrices[rows][:, upper[0], upper[1]].astype(np.uint8) + ord("0"),
            np.full((len(rows), 1), ord(":"), dtype=np.uint8),
            codes[cells.labels[rows, : n - 2].astype(np.int64)],
        ], axis=1)
        out[rows] = np.ascontiguousarray(text).view(f"S{text.shape[1]}").ravel().astype(str)
    return out.tolist()


def to_table(cells: Enumeration) -> pa.Table:
    """The cache table: hash, arch (spec string), adjacency (pruned, nested lists as in the
    benchmark's tables) and operations (labels, input and output included)."""
    n = cells.vertices.astype(np.int64)
    row_values = np.concatenate([cells.matrices[i, :k, :k].ravel() for i, k in enumerate(n)])
    rows = pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(np.repeat(n, n))]).astype(np.int32)), pa.array(row_values, pa.int8())
    )
    adjacency = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(n)]).astype(np.int32)), rows)
    names = np.array([INPUT, *OPS, OUTPUT], dtype=object)
    op_index = np.full((len(cells), MAX_VERTICES), -1, dtype=np.int64)
    op_index[:, 0] = 0
    op_index[:, 1:-1] = np.where(cells.labels >= 0, cells.labels.astype(np.int64) + 1, -1)
    op_index[np.arange(len(cells)), n - 1] = len(OPS) + 1
    flat_ops = names[op_index[op_index >= 0]]
    operations = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(n)]).astype(np.int32)),
                                          pa.array(flat_ops.tolist(), pa.string()))
    return pa.table({
        "hash": pa.array(cells.hashes.tolist(), pa.string()),
        "arch": pa.array(_spec_strings(cells), pa.string()),
        "adjacency": adjacency,
        "operations": operations,
    })


def write_table(table: pa.Table, path: Path) -> None:
    """Write atomically (orchestrator.files: a temporary file of its own, then rename),
    tagged with the cache format; two processes caching at once both write whole files."""
    meta = {b"proxysweep.format": CACHE_FORMAT.encode(), b"proxysweep.cells": str(table.num_rows).encode()}
    with atomic_path(path) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spaces.nb101.enumeration", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="Parquet file to write (hash, arch, adjacency, operations)")
    parser.add_argument("--max-vertices", type=int, default=MAX_VERTICES)
    parser.add_argument("--max-edges", type=int, default=MAX_EDGES)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    cells = enumerate_cells(args.max_vertices, args.max_edges)
    found = time.perf_counter() - start
    write_table(to_table(cells), args.out)
    print(f"{len(cells)} cells enumerated in {found:.1f} s, written to {args.out} "
          f"({time.perf_counter() - start:.1f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
