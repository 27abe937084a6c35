"""docs/reliability.md: one row per requirement id, and every test or benchmark it names exists.

Each id (W1-W15, D1-D11, T1-T10, S1-S8, X1-X3, P1-P7, F1-F5) has exactly one row, in that
order; every backticked ``tests/…py`` and ``bench/…py`` file exists; every ``::name`` (a
continuation such as ``::test_other`` means the previous full path in the same cell) is
defined in its file, a ``test…`` name as a test function (found with ``ast``, not imported);
no "Last measured" cell is empty.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "docs" / "reliability.md"
SIZES = {"W": 15, "D": 11, "T": 10, "S": 8, "X": 3, "P": 7, "F": 5}
IDS = [f"{letter}{n}" for letter, size in SIZES.items() for n in range(1, size + 1)]
ROW = re.compile(r"^\|\s*([A-Z]\d+)\s*\|")
PATH = re.compile(r"^((?:tests|bench)/[\w/.-]+\.py)(?:::(\S+))?")
CONTINUATION = re.compile(r"^::(\S+)$")


def rows(text: str) -> list[list[str]]:
    """The cells (id, test or benchmark, runs, last measured, target) of every id row."""
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if ROW.match(line)
    ]


def names_in(path: Path) -> tuple[set[str], set[str]]:
    """Test functions (module level or in a class) and all module-level names of a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = (ast.FunctionDef, ast.AsyncFunctionDef)
    tests = {node.name for node in tree.body if isinstance(node, functions)}
    for cls in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        tests |= {node.name for node in cls.body if isinstance(node, functions)}
    top = {node.name for node in tree.body if isinstance(node, (*functions, ast.ClassDef))}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        top |= {target.id for target in targets if isinstance(target, ast.Name)}
    return {name for name in tests if name.startswith("test")}, top


def broken_references(text: str, root: Path = ROOT) -> list[str]:
    """Every file or ``::name`` named in a "Test or benchmark" cell that does not exist."""
    problems: list[str] = []
    for row_id, cell, *_ in rows(text):
        current: str | None = None
        for ref in re.findall(r"`([^`]+)`", cell):
            if full := PATH.match(ref):
                current, name = full.group(1), full.group(2)
                if not (root / current).is_file():
                    problems.append(f"{row_id}: {current} does not exist")
                    continue
            elif continuation := CONTINUATION.match(ref):
                name = continuation.group(1)
                if current is None:
                    problems.append(f"{row_id}: {ref} follows no file")
                    continue
            else:
                continue
            if name is None or not (root / current).is_file():
                continue
            name = name.split("[")[0]
            tests, top = names_in(root / current)
            if name not in (tests if name.startswith("test") else top):
                problems.append(f"{row_id}: {current}::{name} is not defined there")
    return problems


def test_every_id_has_exactly_one_row_in_order() -> None:
    found = [cells[0] for cells in rows(TABLE.read_text(encoding="utf-8"))]
    assert found == IDS, f"rows {found} differ from the expected ids {IDS}"


def test_every_named_test_and_benchmark_exists() -> None:
    problems = broken_references(TABLE.read_text(encoding="utf-8"))
    assert not problems, "broken references in docs/reliability.md:\n" + "\n".join(problems)


def test_no_last_measured_cell_is_empty() -> None:
    table = rows(TABLE.read_text(encoding="utf-8"))
    empty = [cells[0] for cells in table if len(cells) != 5 or not cells[3]]
    assert not empty, f"rows without five cells or with an empty 'Last measured' cell: {empty}"


def test_a_missing_test_name_or_file_is_reported() -> None:
    made_up = (
        "| W1 | `tests/reliability/test_reliability_table.py::test_no_such_test`, "
        "`::test_no_last_measured_cell_is_empty[x]`; `bench/no_such_bench.py --x` | CI | x | y |"
    )
    assert broken_references(made_up) == [
        "W1: tests/reliability/test_reliability_table.py::test_no_such_test is not defined there",
        "W1: bench/no_such_bench.py does not exist",
    ]
