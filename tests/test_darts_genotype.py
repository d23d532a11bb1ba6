"""DARTS genotypes: the three text forms round-trip, and malformed ones fail in one line."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from conftest import data_file

from spaces.darts.genotype import Genotype, genotype_of, parse_compact, parse_genotype, parse_genotype_string, parse_id

# quark0/darts cnn/genotypes.py (f276dd3) and yuhuixu1993/PC-DARTS genotypes.py, verbatim
DARTS_V2 = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
            "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
            "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
            "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
PC_DARTS = ("Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), "
            "('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], normal_concat=range(2, 6), "
            "reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), "
            "('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))")
# NASNet-A as in DARTS's genotypes.py, with its 7x7 operation left out (not in the DARTS table):
# 5 nodes, and concat lists other than all nodes
NASNET_LIKE = ("Genotype(normal=[('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('sep_conv_5x5', 0), ('sep_conv_3x3', 0), "
               "('avg_pool_3x3', 1), ('skip_connect', 0), ('avg_pool_3x3', 0), ('avg_pool_3x3', 0), ('sep_conv_3x3', 1), "
               "('skip_connect', 1)], normal_concat=[2, 3, 4, 5, 6], reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), "
               "('max_pool_3x3', 1), ('sep_conv_5x5', 0), ('avg_pool_3x3', 1), ('sep_conv_5x5', 0), ('skip_connect', 3), "
               "('avg_pool_3x3', 2), ('sep_conv_3x3', 2), ('max_pool_3x3', 1)], reduce_concat=[4, 5, 6])")


def test_every_truth_row_round_trips_through_the_three_forms() -> None:
    """All 725 rows of NASLib's sample: compact and Genotype string describe the same cell,
    and compact -> Genotype -> compact, string -> Genotype -> string and id -> Genotype -> id
    give back the very text."""
    rows = pq.read_table(data_file("nb301_naslib_sample.parquet"), columns=["compact", "genotype"]).to_pylist()
    assert len(rows) == 725
    for row in rows:
        from_compact = parse_compact(row["compact"])
        from_string = parse_genotype_string(row["genotype"])
        assert from_compact == from_string
        assert from_compact.to_compact() == row["compact"]
        assert from_string.to_string() == row["genotype"]
        cell_id = from_string.to_id()
        assert parse_id(cell_id) == from_string.canonical()
        assert parse_id(cell_id).to_id() == cell_id
        assert parse_genotype(row["compact"]) == parse_genotype(row["genotype"]) == from_string
        assert parse_genotype(cell_id) == from_string.canonical()


def test_the_canonical_id_by_hand() -> None:
    """DARTS-V2's id, written out: each node's pairs sorted by (input, op), so node 2 of the
    reduction cell, ('skip_connect', 2), ('max_pool_3x3', 1), reads max_pool_3x3~1 first."""
    g = parse_genotype(DARTS_V2)
    assert g.to_id() == (
        "normal=sep_conv_3x3~0+sep_conv_3x3~1|sep_conv_3x3~0+sep_conv_3x3~1|skip_connect~0+sep_conv_3x3~1"
        "|skip_connect~0+dil_conv_3x3~2;normal_concat=2,3,4,5;"
        "reduce=max_pool_3x3~0+max_pool_3x3~1|max_pool_3x3~1+skip_connect~2|max_pool_3x3~0+skip_connect~2"
        "|max_pool_3x3~1+skip_connect~2;reduce_concat=2,3,4,5")
    assert g.to_compact() == ("[[(0, 3), (1, 3), (0, 3), (1, 3), (1, 3), (0, 2), (0, 2), (2, 5)], "
                              "[(0, 0), (1, 0), (2, 2), (1, 0), (0, 0), (2, 2), (2, 2), (1, 0)]]")
    swapped = Genotype(g.normal, g.normal_concat, (g.reduce[1], g.reduce[0], *g.reduce[2:]), g.reduce_concat)
    assert swapped != g and swapped.to_id() == g.to_id()


def test_other_forms_of_the_genotype_string() -> None:
    """range() concat lists (PC-DARTS's file), positional fields, tuples, NASLib's 'zero',
    other node counts and concat lists (NASNet-like, the NDS spaces' shapes)."""
    pc = parse_genotype(PC_DARTS)
    assert pc.normal_concat == pc.reduce_concat == (2, 3, 4, 5)
    positional = ("Genotype((('sep_conv_3x3', 0), ('zero', 1)), (2,), [('skip_connect', 0), ('max_pool_3x3', 1)], "
                  "range(2, 3))")
    g = parse_genotype(positional)
    assert g.normal == (("sep_conv_3x3", 0), ("none", 1)) and g.reduce_concat == (2,)
    nasnet = parse_genotype(NASNET_LIKE)
    assert len(nasnet.normal) == 10 and nasnet.reduce_concat == (4, 5, 6)
    assert parse_id(nasnet.to_id()) == nasnet.canonical()
    assert parse_genotype(nasnet.to_string()) == nasnet
    darts_namedtuple = (list(pc.normal), range(2, 6), list(pc.reduce), range(2, 6))  # like DARTS's own object
    assert genotype_of(darts_namedtuple) == pc


@pytest.mark.parametrize("text, fragment", [
    ("Genotype(normal=[('sep_conv_9x9', 0), ('skip_connect', 1)], normal_concat=[2], "
     "reduce=[('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2])", "unknown operation 'sep_conv_9x9'"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2], "
     "reduce=[('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2])", "node 0 of the normal cell reads input 2"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2, 3], "
     "reduce=[('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2])", "names state 3, out of range 0..2"),
    ("Genotype(normal=[('sep_conv_3x3', 0)], normal_concat=[2], "
     "reduce=[('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2])", "two (op, input) pairs per node"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2, 2], "
     "reduce=[('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2])", "names a state twice"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)], normal_concat=[2])", "it lacks reduce, reduce_concat"),
    ("Genotype(normal=__import__('os').system('echo hi'), normal_concat=[2], reduce=[], reduce_concat=[2])",
     "normal must be a list"),
    ("Genotype(normal=[('sep_conv_3x3', 0.5), ('skip_connect', 1)], normal_concat=[2], "
     "reduce=[('skip_connect', 0), ('skip_connect', 1)], reduce_concat=[2])", "each pair of normal must be ('op', input)"),
    ("Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1)", "not a Genotype(...) expression"),
    ("Genome(normal=[])", "malformed genotype id"),
    ("[[(1, 0), (0, 5)], [(0, 6), (1, 6)]]", "must hold 8 (input, op) pairs"),
    ("[[(1, 0), (0, 5), (1, 2), (0, 0), (0, 6), (3, 1), (2, 4), (1, 7)], "
     "[(0, 6), (1, 6), (1, 3), (0, 4), (3, 4), (1, 1), (0, 6), (1, 0)]]", "op index 7 out of range 0..6"),
    ("[[(1, 0), (0, 5), (1, 2), (0, 0), (0, 6), (3, 1), (2, 4), (5, 3)], "
     "[(0, 6), (1, 6), (1, 3), (0, 4), (3, 4), (1, 1), (0, 6), (1, 0)]]", "node 3 of the normal cell reads input 5"),
    ("[[(1, 0), (0, 5)", "not a nested list of numbers"),
    ("normal=sep_conv_3x3~0;normal_concat=2;reduce=skip_connect~0+skip_connect~1;reduce_concat=2",
     "must be op~input+op~input"),
    ("normal=sep_conv_3x3~1+skip_connect~0;normal_concat=2;reduce=skip_connect~0+skip_connect~1;reduce_concat=2",
     "is not canonical; its canonical form is normal=skip_connect~0+sep_conv_3x3~1"),
    ("normal=sep_conv_3x3~x+skip_connect~1;normal_concat=2;reduce=skip_connect~0+skip_connect~1;reduce_concat=2",
     "must be op~input"),
    ("", "malformed genotype id"),
])
def test_malformed_genotypes_are_one_line_errors(text: str, fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_genotype(text)
    message = str(err.value)
    assert fragment in message and "\n" not in message and len(message) < 400


def test_forms_that_cannot_hold_a_genotype() -> None:
    nasnet = parse_genotype(NASNET_LIKE)
    with pytest.raises(ValueError, match="holds 4-node cells concatenating"):
        nasnet.to_compact()
    with_none = parse_genotype(DARTS_V2.replace("('dil_conv_3x3', 2)", "('none', 2)"))
    with pytest.raises(ValueError, match="no operation 'none'"):
        with_none.to_compact()
