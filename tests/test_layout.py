"""The layout shows the architecture, and stays that way: rooms as packages with a stated
purpose, small files and functions, verbs that take settings objects, no private names
across modules, and ``pde`` below ``assimilate``. Each rule is checked on the source, so a
change that breaks one fails here with the file and the name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for package in ("assimilate", "pde") for p in (REPO / package).rglob("*.py"))
MAX_FILE_LINES, MAX_FUNCTION_LINES, MAX_PARAMETERS, MAX_ROOT_MODULES = 400, 60, 10, 5


def _functions(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _name(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_assimilate_has_few_modules_at_its_root() -> None:
    root = sorted(p.name for p in (REPO / "assimilate").glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, root


@pytest.mark.parametrize("package", sorted({p.parent for p in SOURCES}), ids=_name)
def test_every_package_says_what_its_room_is_for(package: Path) -> None:
    docstring = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    assert len(docstring.split()) >= 8, f"{_name(package)}/__init__.py: what is this room for?"
    if package.parent.name in ("assimilate", "da", "evaluation"):  # a room of assimilate
        assert "import" in docstring.lower(), f"{_name(package)}/__init__.py: what may it import?"


def test_files_are_small() -> None:
    long = {_name(p): n for p in SOURCES if (n := p.read_text().count("\n")) > MAX_FILE_LINES}
    assert not long, long


def test_functions_are_short_unless_a_documented_loop() -> None:
    long = {f"{_name(p)}:{f.name}": f.end_lineno - f.lineno + 1 for p in SOURCES
            for f in _functions(p) if f.end_lineno - f.lineno + 1 > MAX_FUNCTION_LINES
            and "top to bottom" not in (ast.get_docstring(f) or "")}
    assert not long, long


def test_functions_take_few_parameters() -> None:
    def count(f) -> int:
        a = f.args
        return len([x for x in a.posonlyargs + a.args + a.kwonlyargs
                    if x.arg not in ("self", "cls")])

    many = {f"{_name(p)}:{f.name}": count(f) for p in SOURCES for f in _functions(p)
            if count(f) > MAX_PARAMETERS}
    assert not many, many


def test_no_private_name_crosses_a_module_and_pde_never_imports_assimilate() -> None:
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                top = node.module.split(".")[0]
                found += [f"{_name(path)}: {node.module}.{alias.name}" for alias in node.names
                          if top in ("assimilate", "pde") and alias.name.startswith("_")]
            modules = ([node.module] if isinstance(node, ast.ImportFrom) else
                       [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if _name(path).startswith("pde") and any(
                    (m or "").split(".")[0] == "assimilate" for m in modules):
                found.append(f"{_name(path)} imports assimilate")
    assert not found, found


def test_the_public_api_resolves_every_name_it_exports() -> None:
    import assimilate

    missing = [name for name in assimilate.__all__ if getattr(assimilate, name, None) is None]
    assert not missing, missing
