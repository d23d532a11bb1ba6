"""Genotypes of the NASNet/DARTS cell family: the type, its three text forms, and checks.

A genotype (quark0/darts ``cnn/genotypes.py``, f276dd346a09ae3160f8e3aca5c7b193fda1da37)
describes two cells, ``normal`` and ``reduce``. Each is a list of ``(op, input)`` pairs, two
per intermediate node: node ``k`` (k = 0, 1, ...) sums ``op(state[input])`` over its two
pairs, where states 0 and 1 are the cell's two inputs (the outputs of the cell before the
previous one and of the previous one) and state ``2 + j`` is intermediate node ``j``, so node
``k`` may read inputs ``0 .. k + 1``. The cell's output concatenates the states listed in
``normal_concat`` / ``reduce_concat``. Any number of nodes and any concat list are allowed
(the NDS spaces have 5-node cells whose output concatenates only the unused nodes).

Three text forms are read, and written back exactly:

- the ``Genotype(...)`` string, as Python prints DARTS's namedtuple
  (``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=[2, 3, 4, 5], ...)``; tuples,
  positional fields and ``range(2, 6)`` concat lists as in PC-DARTS's file are read too). It
  is read by walking its syntax tree, never evaluated;
- NASLib's compact form (``naslib/search_spaces/nasbench301/conversions.py``, zero-cost
  branch at 8c45f19dc259956c3bd253071135c798ad3df8ce): ``[[(input, op index), ... 8], [...]]``,
  normal cell then reduction cell, op indices into ``COMPACT_OPS``, 4 nodes, concat [2..5];
- the canonical id (``to_id``): ``normal=<node>|<node>|...;normal_concat=2,3,4,5;reduce=...;
  reduce_concat=2,3,4,5`` with each node ``op~input+op~input``. Within a node the two pairs
  are sorted by (input, op): a node's sum does not depend on their order (NAS-Bench-301's
  configuration space does not record it either), so one architecture has one id.

Operations are checked against ``spaces.darts.ops.OPS``. To parse genotypes with other
operations (the NDS spaces' ``conv_3x3``, ``sep_conv_7x7``, ...), register them first with
``spaces.darts.ops.register_op("name")`` (a builder ``(C, stride, affine) -> nn.Module``);
a space's own rules (NB301: no ``none``, two distinct inputs per node, 4 nodes) are checked by
the space on top of these.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from spaces.darts.ops import OPS

#: NASLib's compact op indices (``convert_compact_to_genotype``): DARTS's candidates without ``none``
COMPACT_OPS = ("max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
               "dil_conv_5x5")
#: other names of an operation, read as the name on the right
ALIASES = {"zero": "none"}
FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")

Pair = tuple[str, int]


@dataclass(frozen=True)
class Genotype:
    """The two cells of an architecture: ``(op, input)`` pairs, two per node, and the states
    each cell's output concatenates. Checked when made (``check``)."""

    normal: tuple[Pair, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Pair, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        for name in FIELDS:
            object.__setattr__(self, name, tuple(tuple(v) if isinstance(v, list) else v for v in getattr(self, name)))
        for cell in ("normal", "reduce"):
            _check_cell(cell, getattr(self, cell), getattr(self, f"{cell}_concat"))

    def cell(self, reduction: bool) -> tuple[tuple[Pair, ...], tuple[int, ...]]:
        """The pairs and concat list of the reduction (or normal) cell."""
        return (self.reduce, self.reduce_concat) if reduction else (self.normal, self.normal_concat)

    def canonical(self) -> "Genotype":
        """The same architecture with each node's two pairs sorted by (input, op)."""
        return Genotype(_sorted_nodes(self.normal), self.normal_concat, _sorted_nodes(self.reduce), self.reduce_concat)

    def to_id(self) -> str:
        """The canonical id string (see the module docstring)."""
        g = self.canonical()
        parts = []
        for cell in ("normal", "reduce"):
            pairs = getattr(g, cell)
            nodes = ["+".join(f"{op}~{i}" for op, i in pairs[k:k + 2]) for k in range(0, len(pairs), 2)]
            parts.append(f"{cell}={'|'.join(nodes)}")
            parts.append(f"{cell}_concat={','.join(map(str, getattr(g, cell + '_concat')))}")
        return ";".join(parts)

    def to_string(self) -> str:
        """The DARTS ``Genotype(...)`` string, pairs in their order, as Python prints it."""
        def cell(pairs: Sequence[Pair]) -> str:
            return "[" + ", ".join(f"({op!r}, {i})" for op, i in pairs) + "]"

        return (f"Genotype(normal={cell(self.normal)}, normal_concat={list(self.normal_concat)}, "
                f"reduce={cell(self.reduce)}, reduce_concat={list(self.reduce_concat)})")

    def to_compact(self) -> str:
        """NASLib's compact form; ValueError for a genotype it cannot hold (ops outside
        ``COMPACT_OPS``, other than 4 nodes, or a concat other than [2, 3, 4, 5])."""
        cells = []
        for cell in ("normal", "reduce"):
            pairs, concat = getattr(self, cell), getattr(self, cell + "_concat")
            if len(pairs) != 8 or concat != (2, 3, 4, 5):
                raise ValueError(f"NASLib's compact form holds 4-node cells concatenating [2, 3, 4, 5]; the {cell} "
                                 f"cell has {len(pairs) // 2} nodes and concat {list(concat)}")
            bad = [op for op, _ in pairs if op not in COMPACT_OPS]
            if bad:
                raise ValueError(f"NASLib's compact form has no operation {bad[0]!r} (its operations: "
                                 f"{', '.join(COMPACT_OPS)})")
            cells.append("[" + ", ".join(f"({i}, {COMPACT_OPS.index(op)})" for op, i in pairs) + "]")
        return f"[{cells[0]}, {cells[1]}]"


def _sorted_nodes(pairs: Sequence[Pair]) -> tuple[Pair, ...]:
    out: list[Pair] = []
    for k in range(0, len(pairs), 2):
        out.extend(sorted(pairs[k:k + 2], key=lambda p: (p[1], p[0])))
    return tuple(out)


def _check_cell(cell: str, pairs: Sequence[Any], concat: Sequence[Any]) -> None:
    """ValueError in one line for a cell that is no genotype cell."""
    if not pairs or len(pairs) % 2:
        raise ValueError(f"the {cell} cell must list two (op, input) pairs per node; it lists {len(pairs)}")
    for k, pair in enumerate(pairs):
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str) and _is_int(pair[1])):
            raise ValueError(f"the {cell} cell's pair {k} must be (op name, input index); got {pair!r}")
        op, source = pair
        if op not in OPS:
            raise ValueError(f"unknown operation {op!r} in the {cell} cell; known: {', '.join(sorted(OPS))}")
        node = k // 2
        if not 0 <= source <= node + 1:
            raise ValueError(f"node {node} of the {cell} cell reads input {source}, out of range: node {node} "
                             f"may read 0..{node + 1} (0 and 1 are the cell inputs, 2.. the earlier nodes)")
    states = 2 + len(pairs) // 2
    if not concat:
        raise ValueError(f"the {cell} cell's concat list is empty")
    for c in concat:
        if not _is_int(c) or not 0 <= c < states:
            raise ValueError(f"the {cell} cell's concat list names state {c!r}, out of range 0..{states - 1}")
    if len(set(concat)) != len(concat):
        raise ValueError(f"the {cell} cell's concat list {list(concat)} names a state twice")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _op_name(name: str) -> str:
    return ALIASES.get(name, name)


# --- parsing ---------------------------------------------------------------------------
def parse_genotype(text: str) -> Genotype:
    """Any of the three forms: a ``Genotype(...)`` string, NASLib's compact form (starts with
    ``[`` or ``(``) or a canonical id; ValueError in one line otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"a genotype must be a string, not {type(text).__name__}")
    stripped = text.strip()
    if stripped.startswith("Genotype"):
        return parse_genotype_string(stripped)
    if stripped.startswith(("[", "(")):
        return parse_compact(stripped)
    return parse_id(stripped)


def parse_id(text: str) -> Genotype:
    """A canonical id (``Genotype.to_id``) back to its genotype."""
    fields: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if not sep or key not in FIELDS or key in fields:
            raise ValueError(f"malformed genotype id {_short(text)}: expected "
                             "normal=...;normal_concat=...;reduce=...;reduce_concat=...")
        fields[key] = value
    if set(fields) != set(FIELDS):
        raise ValueError(f"malformed genotype id {_short(text)}: it lacks {', '.join(f for f in FIELDS if f not in fields)}")
    cells: dict[str, Any] = {}
    for cell in ("normal", "reduce"):
        pairs: list[Pair] = []
        for node in fields[cell].split("|"):
            edges = node.split("+")
            if len(edges) != 2:
                raise ValueError(f"malformed genotype id {_short(text)}: node {node!r} of the {cell} cell must be "
                                 "op~input+op~input")
            for edge in edges:
                op, sep, source = edge.partition("~")
                if not sep or not source.isdigit() or not source.isascii():
                    raise ValueError(f"malformed genotype id {_short(text)}: {edge!r} must be op~input")
                pairs.append((_op_name(op), int(source)))
        cells[cell] = tuple(pairs)
        concat = fields[f"{cell}_concat"].split(",")
        if not all(c.isdigit() and c.isascii() for c in concat):
            raise ValueError(f"malformed genotype id {_short(text)}: {cell}_concat must be numbers joined by ','")
        cells[f"{cell}_concat"] = tuple(int(c) for c in concat)
    genotype = Genotype(**cells)
    if genotype.to_id() != text:
        raise ValueError(f"genotype id {_short(text)} is not canonical; its canonical form is {genotype.to_id()}")
    return genotype


def parse_genotype_string(text: str) -> Genotype:
    """A DARTS ``Genotype(normal=[...], normal_concat=[...], reduce=[...], reduce_concat=[...])``
    string (keywords or positional; lists or tuples; concat may be ``range(a, b)``)."""
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(f"malformed Genotype string {_short(text)}: not a Genotype(...) expression") from None
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"):
        raise ValueError(f"malformed Genotype string {_short(text)}: expected Genotype(normal=..., normal_concat=..., "
                         "reduce=..., reduce_concat=...)")
    if len(tree.args) > len(FIELDS):
        raise ValueError(f"malformed Genotype string {_short(text)}: more than {len(FIELDS)} fields")
    values: dict[str, ast.expr] = dict(zip(FIELDS, tree.args))
    for kw in tree.keywords:
        if kw.arg not in FIELDS or kw.arg in values:
            raise ValueError(f"malformed Genotype string {_short(text)}: unexpected or repeated field {kw.arg!r}")
        values[kw.arg] = kw.value
    missing = [f for f in FIELDS if f not in values]
    if missing:
        raise ValueError(f"malformed Genotype string {_short(text)}: it lacks {', '.join(missing)}")
    fields: dict[str, Any] = {}
    for cell in ("normal", "reduce"):
        fields[cell] = tuple(_pair(node, cell, text) for node in _elements(values[cell], cell, text))
        fields[f"{cell}_concat"] = _concat(values[f"{cell}_concat"], cell, text)
    return Genotype(**fields)


def _elements(node: ast.expr, what: str, text: str) -> list[ast.expr]:
    if not isinstance(node, (ast.List, ast.Tuple)):
        raise ValueError(f"malformed Genotype string {_short(text)}: {what} must be a list")
    return list(node.elts)


def _pair(node: ast.expr, cell: str, text: str) -> Pair:
    elts = _elements(node, f"each pair of {cell}", text)
    if len(elts) == 2 and isinstance(elts[0], ast.Constant) and isinstance(elts[0].value, str) \
            and isinstance(elts[1], ast.Constant) and _is_int(elts[1].value):
        return (_op_name(elts[0].value), elts[1].value)
    raise ValueError(f"malformed Genotype string {_short(text)}: each pair of {cell} must be ('op', input)")


def _concat(node: ast.expr, cell: str, text: str) -> tuple[int, ...]:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range" \
            and not node.keywords and 1 <= len(node.args) <= 2 \
            and all(isinstance(a, ast.Constant) and _is_int(a.value) for a in node.args):
        return tuple(range(*(a.value for a in node.args)))  # type: ignore[attr-defined]
    elts = _elements(node, f"{cell}_concat", text)
    if not all(isinstance(e, ast.Constant) and _is_int(e.value) for e in elts):
        raise ValueError(f"malformed Genotype string {_short(text)}: {cell}_concat must hold integers")
    return tuple(e.value for e in elts)  # type: ignore[attr-defined]


def parse_compact(text: str) -> Genotype:
    """NASLib's compact form ``[[(input, op index) x 8], [(input, op index) x 8]]`` (lists or
    tuples), concat [2, 3, 4, 5] as NASLib's ``convert_compact_to_genotype``."""
    try:
        value = ast.literal_eval(text.strip())
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        raise ValueError(f"malformed compact genotype {_short(text)}: not a nested list of numbers") from None
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise ValueError(f"malformed compact genotype {_short(text)}: expected [normal cell, reduction cell]")
    cells = []
    for name, cell in zip(("normal", "reduce"), value):
        if not (isinstance(cell, (list, tuple)) and len(cell) == 8):
            raise ValueError(f"malformed compact genotype {_short(text)}: the {name} cell must hold 8 (input, op) pairs")
        pairs = []
        for pair in cell:
            if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(_is_int(v) for v in pair)):
                raise ValueError(f"malformed compact genotype {_short(text)}: {pair!r} is not an (input, op index) pair")
            source, op = pair
            if not 0 <= op < len(COMPACT_OPS):
                raise ValueError(f"compact genotype {_short(text)}: op index {op} out of range 0..{len(COMPACT_OPS) - 1} "
                                 f"({', '.join(COMPACT_OPS)})")
            pairs.append((COMPACT_OPS[op], source))
        cells.append(tuple(pairs))
    return Genotype(cells[0], (2, 3, 4, 5), cells[1], (2, 3, 4, 5))


def _short(text: str, limit: int = 80) -> str:
    """The text quoted, cut to ``limit`` characters: error lines stay one short line."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return repr(shown)


def genotype_of(value: Genotype | str | Iterable[Any]) -> Genotype:
    """A Genotype from a Genotype, any text form, or a DARTS namedtuple (or other sequence
    of the four fields), for callers that hold one of DARTS's own objects."""
    if isinstance(value, Genotype):
        return value
    if isinstance(value, str):
        return parse_genotype(value)
    fields = list(value)
    if len(fields) != 4:
        raise ValueError("a genotype has four fields: normal, normal_concat, reduce, reduce_concat")
    normal, normal_concat, reduce, reduce_concat = fields
    return Genotype(tuple((_op_name(o), i) for o, i in normal), tuple(normal_concat),
                    tuple((_op_name(o), i) for o, i in reduce), tuple(reduce_concat))
