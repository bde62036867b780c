"""The shape of the code: two packages, one direction, no import circle, and modules and
functions short enough to read on a screen."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("pcam", "search")
MAX_FUNCTION_LINES = 60  # of code: docstrings, comments and blank lines not counted
MAX_MODULE_LINES = 450


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project's modules that ``name`` imports, at the top or inside a function."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            submodules = [f"{base}.{alias.name}" for alias in node.names]
            # "from package import module" imports the module; the package is its parent
            names_only = any(target not in known for target in submodules)
            targets = submodules + ([base] if names_only else [])
        else:
            continue
        imported |= {target for target in targets if target in known}
    return imported - {name}


def _code_lines(node: ast.AST, lines: list[str]) -> int:
    body = getattr(node, "body", [])
    docstring = set()
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        docstring = set(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(
        1
        for number in range(node.lineno, node.end_lineno + 1)
        if number not in docstring and lines[number - 1].strip()
        and not lines[number - 1].strip().startswith("#")
    )  # fmt: skip


def test_pcam_never_imports_search_or_optuna():
    for name, path in _modules().items():
        if not name.startswith("pcam"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [alias.name for alias in getattr(node, "names", [])]
                assert not any(n.split(".")[0] in ("search", "optuna") for n in names), name


def test_no_module_imports_itself_back_through_others():
    modules = _modules()
    graph = {name: _imports(name, path, set(modules)) for name, path in modules.items()}
    for start in graph:
        seen, stack = set(), [(start, (start,))]
        while stack:
            current, route = stack.pop()
            for target in graph[current]:
                assert target != start, f"import circle: {' → '.join((*route, target))}"
                if target not in seen:
                    seen.add(target)
                    stack.append((target, (*route, target)))


def test_functions_and_modules_fit_on_a_screen():
    too_long = []
    for name, path in _modules().items():
        text = path.read_text()
        lines = text.splitlines()
        if len(lines) > MAX_MODULE_LINES:
            too_long.append(f"module {name}: {len(lines)} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                count = _code_lines(node, lines)
                if count > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {count} lines of code")
    assert too_long == []
