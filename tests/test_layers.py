"""The package's layers, read from its import statements: shared math and
sampling (`modules/`) <- `models/`, `data/`, `data_prep/` <- `tasks/` <-
`criterions/` <- the other libraries (`evaluation/`, `synthetic/`,
`benchmarks/`, ...) <- the command lines (`cli/`); `errors`, `compat`, `paths`
and `checkpoints/` (but for its surgery on criteria and models) at the bottom.
A criterion imports no task and no other registered criterion's file; nothing
imports `scripts/`, and nothing puts folders on `sys.path`."""

import ast

import pytest

from conftest import REPO

PACKAGE = REPO / "fairseq_ot"
LAYERS = {
    "errors": 0, "compat": 0, "paths": 0, "checkpoints": 0, "checkpoints.surgery": 5,
    "modules": 1,
    "models": 2, "data": 2, "data_prep": 2,
    "tasks": 3,
    "criterions": 4,
    # the command lines: each parses its arguments and calls a library module below
    "cli": 6,
}
TOP = 5  # every other part: the libraries recipes, evaluation, synthetic, benchmarks, analysis, ...


def part_of(dotted):
    """`fairseq_ot.X.Y` -> X (None for the package itself and foreign modules)."""
    parts = dotted.split(".")
    return parts[1] if parts[0] == "fairseq_ot" and len(parts) > 1 else None


def layer_of(dotted):
    """The layer of the module `fairseq_ot.X.Y...`: that of its longest
    prefix named in LAYERS (TOP if none is)."""
    parts = dotted.split(".")[1:]
    for depth in range(len(parts), 0, -1):
        if ".".join(parts[:depth]) in LAYERS:
            return LAYERS[".".join(parts[:depth])]
    return TOP


def module_name(path):
    relative = path.relative_to(REPO).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def is_module(dotted):
    path = REPO.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path):
    """Every module an import statement of `path` names, at any depth
    (function-level imports included), relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                # `from fairseq_ot.criterions import cot` names a module
                submodule = f"{base}.{alias.name}"
                yield (submodule if is_module(submodule) else base), node.lineno


def registered_criterion_files():
    return {module_name(path) for path in (PACKAGE / "criterions").glob("*.py")
            if "@register_criterion(" in path.read_text()}


def violations(path):
    source = module_name(path)
    source_part = part_of(source)
    source_layer = layer_of(source) if source_part else TOP
    registered = registered_criterion_files()
    for target, line in imported_modules(path):
        where = f"{path.relative_to(REPO)}:{line} imports {target}"
        if target.split(".")[0] == "scripts":
            yield f"{where}: nothing imports scripts/"
        target_part = part_of(target)
        if target_part is None:
            continue
        target_layer = layer_of(target)
        if target_layer > source_layer:
            yield f"{where}: layer {source_part} ({source_layer}) imports upward ({target_layer})"
        if target_part == "cli" and source_part != "cli":
            yield f"{where}: the command lines are the top; no library module imports them"
        if source_part == "criterions" and target_part == "tasks":
            yield f"{where}: a criterion checks the model it is given, never imports a task"
        if (source_part == "criterions" and not path.name == "__init__.py"
                and target in registered and target != source):
            yield f"{where}: a criterion imports another registered criterion's file"


def test_rules_catch_a_violation(tmp_path):
    """The checker itself: an upward import in modules/ is reported."""
    fake = PACKAGE / "modules" / "_layer_check_probe.py"
    fake.write_text("from fairseq_ot.criterions import cot\nimport scripts.quickstart\n")
    try:
        found = list(violations(fake))
    finally:
        fake.unlink()
    assert any("imports upward" in v for v in found) and any("scripts" in v for v in found)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(REPO)))
def test_package_imports_follow_the_layers(path):
    assert list(violations(path)) == []


@pytest.mark.parametrize("path", sorted([*PACKAGE.rglob("*.py"), *(REPO / "scripts").rglob("*.py")]),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_no_sys_path_manipulation(path):
    assert "sys.path" not in path.read_text()


@pytest.mark.parametrize("path", sorted((REPO / "scripts").glob("*.py")), ids=lambda p: p.name)
def test_scripts_are_thin_wrappers(path):
    """A script imports the main of its fairseq_ot.cli module and nothing else."""
    imports = list(imported_modules(path))
    assert imports == [(f"fairseq_ot.cli.{path.stem}", imports[0][1])]
    assert len(path.read_text().splitlines()) <= 8
