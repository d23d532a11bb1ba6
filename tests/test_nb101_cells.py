"""NAS-Bench-101 cells: the rules, pruning, spec strings, the module hash, the enumeration."""
from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import data_file

from spaces.nb101.space import NB101Space
from spaces.nb101.cell import (
    CONV1X1, CONV3X3, INPUT, MAXPOOL3X3, OUTPUT, NB101Cell, official_order, op_labels, parse_arch, prune,
)
from spaces.nb101.enumeration import NUM_CELLS, _edges, enumerate_cells, hash_many
from spaces.nb101.hashing import cell_hash, module_hash

C3, C1, MP = CONV3X3, CONV1X1, MAXPOOL3X3


@pytest.fixture(scope="module")
def sample(data_root) -> list[dict]:
    return pq.read_table(data_file("nb101_sample_accuracy.parquet"),
                         columns=["hash", "adjacency", "operations"]).to_pylist()


def test_module_hash_of_every_sample_row(sample) -> None:
    """The hash, written from the benchmark's definition, gives the official id of all
    30,001 sample cells; so does the vectorised one the enumeration uses."""
    assert len(sample) == 30_001
    for row in sample:
        assert cell_hash(prune(row["adjacency"], row["operations"])) == row["hash"], row
    by_size = defaultdict(list)
    for row in sample:
        by_size[len(row["operations"])].append(row)
    for n, rows in by_size.items():
        adj = np.array([r["adjacency"] for r in rows])
        labels = np.array([op_labels(r["operations"]) for r in rows])
        assert hash_many(adj, labels, processes=1, chunk=5000) == [r["hash"] for r in rows]


def chain(n: int) -> np.ndarray:
    return np.eye(n, k=1, dtype=int)


@pytest.mark.parametrize("matrix, ops, message", [
    (chain(8), [INPUT, *[C3] * 6, OUTPUT], r"2 to 7 vertices; got 8"),
    (np.triu(np.ones((6, 6), dtype=int), 1), [INPUT, C3, C3, C3, C3, OUTPUT], r"at most 9 edges; got 15"),
    (chain(3) + np.eye(3, k=-1, dtype=int), [INPUT, C3, OUTPUT], r"strictly upper-triangular"),
    (2 * chain(3), [INPUT, C3, OUTPUT], r"must be 0 or 1"),
    (chain(3), [INPUT, "conv5x5-bn-relu", OUTPUT], r"vertex 1: unknown operation 'conv5x5-bn-relu'"),
    (chain(3), [C3, C3, OUTPUT], r"first operation must be 'input'"),
    (chain(3), [INPUT, C3], r"2 operations for 3 vertices"),
    (np.array([[0, 1, 0, 1], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]), [INPUT, C3, C1, OUTPUT],
     r"vertices \[1, 2\] are not on a path from the input to the output"),
    (np.ones((2, 3), dtype=int), [INPUT, OUTPUT], r"square"),
])
def test_cells_that_break_a_rule_are_rejected(matrix, ops, message) -> None:
    with pytest.raises(ValueError, match=message):
        NB101Cell.of(matrix, ops)


def test_prune_removes_what_the_output_never_sees() -> None:
    # 0 -> 1 -> 4; 0 -> 2 (dead end); 3 -> 4 (not fed by the input)
    matrix = np.zeros((5, 5), dtype=int)
    for a, b in [(0, 1), (1, 4), (0, 2), (3, 4)]:
        matrix[a, b] = 1
    cell = prune(matrix, [INPUT, C3, MP, C1, OUTPUT])
    assert cell == NB101Cell.of(chain(3), [INPUT, C3, OUTPUT])
    with pytest.raises(ValueError, match="input is not connected to the output"):
        prune(np.array([[0, 1, 0], [0, 0, 0], [0, 0, 0]]), [INPUT, C3, OUTPUT])
    with pytest.raises(ValueError, match="at most 9 edges"):  # the limits hold after pruning
        prune(np.triu(np.ones((7, 7), dtype=int), 1), [INPUT, *[C3] * 5, OUTPUT])


@pytest.mark.parametrize("arch, message", [
    ("111", r"expected '<edges>:<ops>'"),
    ("10:3", r"1 interior ops mean 3 vertices and 3 edge flags, got 2"),
    ("121:3", r"edge flags must be 0 or 1"),
    ("111:x", r"unknown op codes \['x'\]"),
    ("011:3", r"not on a path"),
])
def test_malformed_spec_strings_are_rejected(arch, message) -> None:
    with pytest.raises(ValueError, match=message):
        parse_arch(arch)


def test_spec_strings_round_trip(sample) -> None:
    assert parse_arch("111:3") == NB101Cell.of([[0, 1, 1], [0, 0, 1], [0, 0, 0]], [INPUT, C3, OUTPUT])
    assert parse_arch("1:") == NB101Cell.of([[0, 1], [0, 0]], [INPUT, OUTPUT])
    for row in sample[:2000]:
        cell = prune(row["adjacency"], row["operations"])
        assert parse_arch(cell.arch) == cell
        assert len(cell.arch) <= 21 + 1 + 5


def test_official_order_is_the_first_numbering_the_generator_meets(sample) -> None:
    """Renumbering keeps the hash; the official numbering has the smallest bitmask, then
    the smallest labeling, among the topological numberings."""
    moved = 0
    for row in sample[:600]:
        cell = prune(row["adjacency"], row["operations"])
        official = official_order(cell)
        assert cell_hash(official) == row["hash"]
        assert official.bits <= cell.bits
        assert official_order(official) == official
        moved += official != cell
    assert moved > 0  # the sample stores some cells in another numbering


def brute_force(max_vertices: int, max_edges: int = 9) -> dict[str, tuple[list, list]]:
    """generate_graphs.py's loop, literally: every bitmask, every labeling, first per hash."""
    first: dict[str, tuple[list, list]] = {}
    for n in range(2, max_vertices + 1):
        edges = _edges(n)
        for bits in range(1 << len(edges)):
            m = np.zeros((n, n), dtype=int)
            for b, (x, y) in enumerate(edges):
                m[x, y] = (bits >> b) & 1
            if m.sum() > max_edges or (m[:-1].sum(1) == 0).any() or (m[:, 1:].sum(0) == 0).any():
                continue
            for labels in itertools.product(range(3), repeat=n - 2):
                full = [-1, *labels, -2]
                first.setdefault(module_hash(m, full), (m.tolist(), full))
    return first


@pytest.mark.parametrize("max_vertices, max_edges, count", [(2, 9, 1), (3, 9, 7), (4, 9, 91), (5, 9, 2532), (5, 4, 76)])
def test_enumeration_of_small_spaces_equals_brute_force(max_vertices, max_edges, count) -> None:
    """Same cells, same hashes and the same (first-met) numbering as the generator's loop."""
    expected = brute_force(max_vertices, max_edges)
    cells = enumerate_cells(max_vertices, max_edges, processes=1)
    got = {}
    for i, h in enumerate(cells.hashes.tolist()):
        n = int(cells.vertices[i])
        got[h] = (cells.matrices[i, :n, :n].tolist(), [-1, *cells.labels[i, : n - 2].tolist(), -2])
    assert len(got) == len(expected) == count
    assert got == expected
    assert list(cells.hashes) == sorted(cells.hashes)


def test_the_full_space_has_423624_cells(nb101_cache, sample) -> None:
    space = NB101Space({"cache_dir": str(nb101_cache)})
    table = space.cells()
    assert len(table) == NUM_CELLS == 423_624
    assert len(set(table.ids)) == NUM_CELLS
    assert list(table.ids) == sorted(table.ids)  # official order: by hash
    position = {h: i for i, h in enumerate(table.ids)}
    assert all(row["hash"] in position for row in sample)
    rng = np.random.default_rng(0)
    for i in rng.choice(NUM_CELLS, 300, replace=False):
        cell = parse_arch(table.archs[i])
        assert cell_hash(cell) == table.ids[i]
        assert official_order(cell) == cell
    full = pq.read_table(space.cache_path())
    assert full.column_names == ["hash", "arch", "adjacency", "operations"]
    row = full.slice(int(position[sample[0]["hash"]]), 1).to_pylist()[0]
    assert parse_arch(row["arch"]) == NB101Cell.of(row["adjacency"], row["operations"])


def test_the_cell_table_is_enumerated_once_and_reused(nb101_cache, tmp_path) -> None:
    space = NB101Space({"cache_dir": str(nb101_cache)})
    path = space.cache_path()
    before = path.stat().st_mtime_ns
    space.cells()
    assert path.stat().st_mtime_ns == before
    # a table under the data root is used first; a wrong one there is an error, not rewritten
    root = tmp_path / "data"
    root.mkdir()
    (root / "nb101_cells.parquet").symlink_to(path)
    assert NB101Space({"cache_dir": str(tmp_path / "unused")}, root).cache_path() == root / "nb101_cells.parquet"
    assert len(NB101Space({"cache_dir": str(tmp_path / "unused")}, root).cells()) == NUM_CELLS
    assert not (tmp_path / "unused").exists()
    (root / "nb101_cells.parquet").unlink()
    pq.write_table(pq.read_table(path).slice(0, 10), root / "nb101_cells.parquet")
    with pytest.raises(ValueError, match="is not a NAS-Bench-101 cell table"):
        NB101Space({"cache_dir": str(tmp_path / "unused")}, root).cells()
