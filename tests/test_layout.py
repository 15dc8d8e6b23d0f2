"""The package's layout shows the architecture: the product never imports a tool."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ml_backend"
TOOLS = PACKAGE / "tools"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(source: str, package: list[str]) -> set[str]:
    """Absolute names of every module ``source`` imports, relative to ``package`` where relative."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def _package_of(path: Path) -> list[str]:
    parts = _module_name(path).split(".")
    return parts if path.name == "__init__.py" else parts[:-1]


def _product_modules() -> list[Path]:
    return [path for path in PACKAGE.rglob("*.py") if TOOLS not in path.parents]


def test_no_product_module_imports_a_tool():
    offenders = {}
    for path in _product_modules():
        names = _imported_modules(path.read_text(), _package_of(path))
        tools = sorted(name for name in names if name.startswith("ml_backend.tools"))
        if tools:
            offenders[str(path.relative_to(PACKAGE.parent))] = tools
    assert offenders == {}


def test_the_import_scan_resolves_relative_imports():
    # The check above must not pass only because it misreads relative imports.
    source = "from ..tools import soak\nfrom ..tools.bench import run_bench\nimport ml_backend.tools.latency\n"
    names = _imported_modules(source, ["ml_backend", "server"])
    assert {"ml_backend.tools.soak", "ml_backend.tools.bench", "ml_backend.tools.latency"} <= names


def test_few_modules_loose_at_the_package_root():
    loose = sorted(path.name for path in PACKAGE.glob("*.py"))
    assert len(loose) <= 8, loose


MAX_MODULE_LINES = 450


def _line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_no_module_is_over_450_lines():
    # One concept a module keeps each one short enough to read whole; tools count too.
    too_long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := _line_count(path)) > MAX_MODULE_LINES
    }
    assert too_long == {}


def test_the_line_count_counts_every_line(tmp_path):
    # The check above must not pass only because it undercounts (a last line without newline, blank lines).
    module = tmp_path / "module.py"
    module.write_text("a = 1\n\n\nb = 2")
    assert _line_count(module) == 4
