"""Every file written atomically, through one helper (orchestrator/files.py).

- ``atomic_write`` / ``atomic_path``: a writer that fails, or a process SIGKILLed while it
  writes, leaves the old content whole (never a part), and only a hidden temporary, which
  ``remove_temporaries`` clears and Arrow's readers skip;
- ``atomic_create``: a secret file appears complete and private, and is never replaced;
- a static check over the shipped packages: every call that writes a file writes the
  temporary path ``atomic_path`` yields (or is one of the listed exceptions, each with its
  reason), so a new writer that bypasses the helper fails here.
"""
from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

from orchestrator.files import TMP_MARK, atomic_create, atomic_path, atomic_write, remove_temporaries

#: the packages users install (tests and benchmarks write what they like)
SHIPPED = ("orchestrator", "proxies", "spaces", "searches", "proxysweep", "launch", "benchdata")
#: methods that write a file given as their receiver or an argument (and ``open`` in a
#: writing mode); a bare function of that name is the project's own (e.g. nb101's write_table)
WRITERS = {"write_text", "write_bytes", "write_table", "to_parquet", "to_csv", "savez", "savez_compressed",
           "save", "savefig", "dump"}
#: the writes that do not go through atomic_path, and why that is right
EXCEPTIONS = {
    ("orchestrator/data/download.py", "open"): "the .part file of a resumable download: appended to on "
                                               "purpose, moved into place only once its SHA-256 matches",
    ("orchestrator/store.py", "write_table"): "an in-memory buffer (the schema a shard file has)",
    ("orchestrator/report_figures.py", "savefig"): "an in-memory PNG, inlined into report.html",
    ("orchestrator/store.py", "open"): "the out_dir's lock file: empty, only its flock counts",
}


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    atomic_write(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half of the new")
        raise RuntimeError("the writer dies here")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    assert atomic_write(target, b"new") == target and target.read_text() == "new"


def test_a_writer_killed_mid_file_leaves_the_old_file_whole(tmp_path: Path) -> None:
    """A process SIGKILLed after it has written part of the new content (it says so on its
    standard output, then waits to be killed): the target still holds the old content, and
    the hidden temporary it left is removed by ``remove_temporaries``."""
    target = tmp_path / "report.md"
    atomic_write(target, "old report\n")
    writer = (
        "import sys, time\n"
        "from orchestrator.files import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp, open(tmp, 'w') as fh:\n"
        "    fh.write('x' * 100000); fh.flush()\n"
        "    print('written', flush=True)\n"
        "    time.sleep(600)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", writer, str(target)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
        left = [p for p in tmp_path.iterdir() if TMP_MARK in p.name]
        assert len(left) == 1 and left[0].name.startswith(".") and left[0].stat().st_size == 100000
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert target.read_text() == "old report\n"
    assert remove_temporaries(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_atomic_create_makes_a_private_file_once(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        token = tmp_path / "sub" / "auth_token"
        assert atomic_create(token, "first") is True
        assert token.read_text() == "first" and token.stat().st_mode & 0o777 == 0o600
        assert atomic_create(token, "second") is False
        assert token.read_text() == "first"
        assert [p.name for p in token.parent.iterdir()] == ["auth_token"]
    finally:
        os.umask(old)


def _written_targets(tree: ast.AST) -> list[tuple[str, ast.expr | None]]:
    """(writer name, the expression naming the file) of every file-writing call."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        first = node.args[0] if node.args else None
        if name == "open":
            mode = node.args[1] if len(node.args) > 1 else next((k.value for k in node.keywords if k.arg == "mode"), None)
            if isinstance(mode, ast.Constant) and isinstance(mode.value, str) and set(mode.value) & set("wax+"):
                found.append((name, first))
        elif name in ("write_text", "write_bytes") and isinstance(func, ast.Attribute):
            found.append((name, func.value))
        elif name in WRITERS - {"write_text", "write_bytes"} and isinstance(func, ast.Attribute):
            target = node.args[1] if name in ("write_table", "dump") and len(node.args) > 1 else first
            if name == "to_parquet" or name == "to_csv":
                target = first
            found.append((name, target))
    return found


def _temporary_names(tree: ast.AST) -> set[str]:
    """Names bound by ``with atomic_path(...) as NAME``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.With):
            for item in node.items:
                call = item.context_expr
                if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "atomic_path"
                        and isinstance(item.optional_vars, ast.Name)):
                    names.add(item.optional_vars.id)
    return names


def test_every_file_the_project_writes_goes_through_the_helper() -> None:
    bypass, used = [], set()
    for package in SHIPPED:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            if rel == "orchestrator/files.py":
                continue
            tree = ast.parse(path.read_text(), rel)
            temporaries = _temporary_names(tree)
            for name, target in _written_targets(tree):
                if isinstance(target, ast.Name) and target.id in temporaries:
                    continue
                if name == "dump" and isinstance(target, ast.Name):  # json.dump(obj, fh): fh was opened above
                    continue
                if (rel, name) in EXCEPTIONS:
                    used.add((rel, name))
                    continue
                bypass.append(f"{rel}: {name}({ast.unparse(target) if target is not None else ''})")
    assert not bypass, "files written without orchestrator.files.atomic_path:\n" + "\n".join(bypass)
    assert used == set(EXCEPTIONS), f"exceptions no longer needed: {set(EXCEPTIONS) - used}"


def test_the_static_check_catches_a_direct_write() -> None:
    """The check above is not vacuous: each way of writing a file directly is found."""
    code = (
        "from pathlib import Path\n"
        "import pyarrow.parquet as pq\n"
        "Path('a').write_text('x')\n"
        "open('b', 'w').write('x')\n"
        "pq.write_table(t, 'c.parquet')\n"
        "with atomic_path('d') as tmp:\n"
        "    tmp.write_text('fine')\n"
        "    pq.write_table(t, tmp)\n"
    )
    tree = ast.parse(code)
    temporaries = _temporary_names(tree)
    direct = [name for name, target in _written_targets(tree)
              if not (isinstance(target, ast.Name) and target.id in temporaries)]
    assert sorted(direct) == ["open", "write_table", "write_text"]
