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


# -- one engine registry -------------------------------------------------------


def _string_constants(source: str) -> set[str]:
    return {node.value for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Constant) and isinstance(node.value, str)}


def test_no_product_module_spells_an_engine_name_but_the_registry():
    from ml_backend.engine_registry import ENGINE_NAMES

    registry = PACKAGE / "engine_registry.py"
    spelled = {}
    for path in _product_modules():
        found = sorted(_string_constants(path.read_text()) & set(ENGINE_NAMES))
        if found and path != registry:
            spelled[str(path.relative_to(PACKAGE.parent))] = found
    assert spelled == {}
    # The scan sees a name where one is written.
    assert _string_constants('TORCH_ENGINES = frozenset({"sam", "litemedsam"})') >= {"sam", "litemedsam"}


def test_settings_accept_exactly_the_registry_engines():
    import pytest
    from pydantic import ValidationError

    from ml_backend.engine_registry import DEFAULT_ENGINE, ENGINE_NAMES, SAM
    from ml_backend.settings import Settings

    for name in ENGINE_NAMES:
        assert Settings(ENGINE=name).ENGINE == name
    for wrong in ("samm", "GrabCut", ""):
        with pytest.raises(ValidationError, match="ENGINE"):
            Settings(ENGINE=wrong)
    for model_type in (checkpoint.name for checkpoint in SAM.checkpoints):
        assert Settings(SAM_MODEL_TYPE=model_type).SAM_MODEL_TYPE == model_type
    with pytest.raises(ValidationError, match="SAM_MODEL_TYPE"):
        Settings(SAM_MODEL_TYPE="vit_t")
    assert Settings.model_fields["ENGINE"].default == DEFAULT_ENGINE.name


def test_the_cli_lists_and_takes_exactly_the_registry_engines(capsys):
    from ml_backend.cli import build_parser, main
    from ml_backend.engine_registry import CHECKPOINTS, ENGINE_NAMES

    assert main(["engines"]) == 0
    listed = tuple(line.split()[0] for line in capsys.readouterr().out.splitlines())
    assert listed == ENGINE_NAMES
    parser = build_parser()
    commands = next(action for action in parser._actions if action.dest == "command").choices
    engine_option = next(action for action in commands["segment"]._actions if action.dest == "engine")
    assert tuple(engine_option.choices) == ENGINE_NAMES
    download_help = next(action for action in commands["download"]._actions if action.dest == "name").help
    assert all(name in download_help for name in CHECKPOINTS)


def test_every_engine_class_is_named_by_one_registry_row():
    import importlib
    import pkgutil
    import sys

    import ml_backend.core.engines as engines_package
    from ml_backend.core.engine import Engine
    from ml_backend.engine_registry import ENGINE_NAMES, ENGINES, TORCH_ENGINES

    for module in pkgutil.iter_modules(engines_package.__path__):
        importlib.import_module(f"{engines_package.__name__}.{module.name}")
    classes, todo = [], list(Engine.__subclasses__())
    while todo:
        engine_class = todo.pop()
        todo.extend(engine_class.__subclasses__())
        if engine_class.__module__.startswith("ml_backend.") and engine_class.name:
            classes.append(engine_class)
    assert sorted(engine_class.name for engine_class in classes) == sorted(ENGINE_NAMES)
    # The engines whose module imports torch are those the registry says use it (the server sets torch's threads for them).
    torch_classes = {engine_class.name for engine_class in classes if hasattr(sys.modules[engine_class.__module__], "torch")}
    assert TORCH_ENGINES == torch_classes == {name for name, spec in ENGINES.items() if "torch" in spec.modules}


def test_the_memory_budget_reads_each_engines_bytes_per_pixel_from_the_registry():
    from ml_backend.engine_registry import DEFAULT_BYTES_PER_PIXEL, ENGINES
    from ml_backend.server.memory_budget import MemoryBudget
    from ml_backend.settings import Settings

    assert ENGINES["grabcut"].bytes_per_pixel > DEFAULT_BYTES_PER_PIXEL  # full-resolution GrabCut
    for name, spec in ENGINES.items():
        assert MemoryBudget.from_settings(Settings(ENGINE=name)).bytes_per_pixel == spec.bytes_per_pixel


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
