"""The survey is one object: no code outside the adapters spells a survey's name.

Survey differences live in ``src/fink_broker/surveys/`` (design.md, house rule 3), and the
configuration (``config.py``) names the surveys an option applies to. Anywhere else, a
literal ``"ztf"`` or ``"rubin"`` is an ``if survey == ...`` in the making: services take
the adapter, the CLI takes its choices from the survey registry, and plugins declare their
surveys with ``fink_broker.surveys.names``. Docstrings (and the doctests in them) may
name surveys: they document, they do not branch.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "fink_broker"
#: where survey names belong
ALLOWED = (PACKAGE / "surveys", PACKAGE / "config.py")
#: the survey names, and the suffix of Rubin's topics
NAMES = {"ztf", "rubin", "lsst"}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string nodes that are docstrings."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def survey_literals(path: Path) -> list[str]:
    """``file:line: 'name'`` for every survey-name string literal of a Python file."""
    tree = ast.parse(path.read_text(), str(path))
    docs = _docstrings(tree)
    return [
        f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.lower() in NAMES
        and id(node) not in docs
    ]


def test_the_check_finds_a_literal(tmp_path: Path) -> None:
    probe = PACKAGE / "services" / "__init__.py"  # a real file of the package, for its path
    text = 'def f(survey):\n    """For ztf."""\n    return survey == "ztf"\n'
    sample = tmp_path / "sample.py"
    sample.write_text(text)
    tree = ast.parse(text)
    assert len([n for n in ast.walk(tree) if isinstance(n, ast.Constant)]) == 2
    hits = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Constant) and n.value in NAMES and id(n) not in _docstrings(tree)
    ]
    assert hits == ["ztf"]
    assert survey_literals(probe) == []


def test_no_survey_name_literal_outside_the_adapters_and_the_config() -> None:
    files = [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if not any(p == a or a in p.parents for a in ALLOWED)
    ]
    assert len(files) > 50, "the scan must cover the package"
    found = [hit for path in files for hit in survey_literals(path)]
    assert found == [], "\n".join(found)
