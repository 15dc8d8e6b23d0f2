"""The declared dependencies match what the code imports, and the server needs only the base install."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import lru_cache
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCAL = {"ml_backend", "tests"}
# Modules that only the `sam` or `tools` extras make importable; everything else in
# ml_backend must import, at module level, only what the base install brings.
EXTRA_ONLY_MODULES = {
    "ml_backend/core/engines/sam_family.py": "sam",
    "ml_backend/core/engines/sam_models.py": "sam",
    "ml_backend/core/engines/sam_checkpoints.py": "sam",
    "ml_backend/core/engines/sam_decoder.py": "sam",
    "ml_backend/tools/bench_device.py": "sam",
    "ml_backend/tools/bench_http.py": "tools",
    "ml_backend/weights.py": "sam",  # `scribble-seg download`: checkpoints for the SAM family
}
# Declared but never imported by name, each for a reason.
DECLARED_NOT_IMPORTED = {
    "python-multipart": "FastAPI parses multipart form bodies with it",
    "torchvision": "segment-anything imports it",
    "setuptools": "tests/test_wheel_install.py builds the wheel without build isolation",
}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(requirement: str) -> str:
    return _normal(re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0))


def _declared(group: str | None) -> set[str]:
    requirements = PYPROJECT["project"]["dependencies"] if group is None else PYPROJECT["project"]["optional-dependencies"][group]
    names = set()
    for requirement in requirements:
        name = _requirement_name(requirement)
        if name == _normal(PYPROJECT["project"]["name"]):  # scribble-segmentation[sam,tools]
            for extra in re.search(r"\[(.*)\]", requirement).group(1).split(","):
                names |= _declared(extra.strip())
        else:
            names.add(name)
    return names


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name not in LOCAL}


@lru_cache(maxsize=1)
def _installed() -> dict[str, list[str]]:
    return packages_distributions()


def _distributions(modules: set[str]) -> dict[str, str]:
    mapping = _installed()
    missing = sorted(module for module in modules if module not in mapping)
    assert not missing, f"imported but not installed in the test environment: {missing}"
    return {module: _normal(mapping[module][0]) for module in modules}


def _python_files(*folders: str) -> list[Path]:
    return [path for folder in folders for path in sorted((ROOT / folder).rglob("*.py"))]


def test_every_imported_package_is_declared():
    declared = _declared(None) | _declared("test")
    imported = set().union(*(_imports(path, top_level_only=False) for path in _python_files("ml_backend", "tests")))
    undeclared = {module: dist for module, dist in _distributions(imported).items() if dist not in declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_every_declared_package_is_imported_or_has_a_reason():
    imported = set().union(*(_imports(path, top_level_only=False) for path in _python_files("ml_backend", "tests")))
    used = set(_distributions(imported).values())
    declared = _declared(None) | _declared("test")
    unused = sorted(declared - used - set(DECLARED_NOT_IMPORTED))
    assert not unused, f"declared but never imported: {unused}"


def test_the_server_and_cli_modules_import_only_the_base_install():
    base = _declared(None)
    offenders = {}
    for path in _python_files("ml_backend"):
        relative = path.relative_to(ROOT).as_posix()
        if relative in EXTRA_ONLY_MODULES:
            continue
        extra = {module: dist for module, dist in _distributions(_imports(path, top_level_only=True)).items() if dist not in base}
        if extra:
            offenders[relative] = extra
    assert not offenders, f"module-level imports outside the base install (import them where used): {offenders}"


def test_no_private_label_studio_sdk_module_is_imported():
    private = []
    for path in _python_files("ml_backend", "tests"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
            private += [f"{path.name}: {name}" for name in names if name.startswith("label_studio_sdk._")]
    assert not private, private


def test_torch_sits_only_in_the_sam_extra():
    assert "torch" not in _declared(None) and "torch" in _declared("sam")
    assert not {"httpx", "matplotlib", "tqdm", "label-studio-sdk"} & _declared(None)


def test_the_cli_names_the_extra_that_brings_each_optional_package():
    from ml_backend.cli import EXTRA_OF_PACKAGE

    for module, extra in EXTRA_OF_PACKAGE.items():
        assert _distributions({module})[module] in _declared(extra), (module, extra)
    optional = _declared("sam") | _declared("tools")
    imported = set().union(*(_imports(path, top_level_only=False) for path in _python_files("ml_backend")))
    unnamed = {module for module, dist in _distributions(imported).items() if dist in optional} - set(EXTRA_OF_PACKAGE)
    assert not unnamed, f"optional packages the CLI would not name an extra for: {unnamed}"
