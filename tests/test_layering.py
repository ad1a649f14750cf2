"""The layers stay visible: ``ssmforecast.math`` is pure tensor math (torch and the standard library
only, no ``nn.Module``), and no module imports from a layer above its own."""

import ast
import sys
from pathlib import Path

import ssmforecast

PACKAGE = Path(ssmforecast.__file__).parent
# Layers in order; a module may import only from its own layer or the ones before it.
LAYERS = ["math", "nn", "estimators", "datasets", "benchmarks"]


def _imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the module's package
                pkg = path.relative_to(PACKAGE.parent).with_suffix("").parts[: -node.level]
                yield ".".join(pkg + ((node.module,) if node.module else ()))
            else:
                yield node.module


def _layer(module_name):
    parts = module_name.split(".")
    if parts[0] != "ssmforecast" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in LAYERS else None


def test_math_imports_only_torch_and_stdlib():
    files = sorted((PACKAGE / "math").rglob("*.py"))
    assert files, "ssmforecast/math is missing"
    allowed_third_party = {"torch"}
    for path in files:
        for name in _imports(path):
            top = name.split(".")[0]
            ok = top in allowed_third_party or top in sys.stdlib_module_names or name.startswith("ssmforecast.math")
            assert ok, f"{path.relative_to(PACKAGE)} imports {name!r}: the math layer may use only torch and the stdlib"
            assert name in ("torch", "torch.nn.functional") or not name.startswith("torch.nn"), (
                f"{path.relative_to(PACKAGE)} imports {name}: modules belong to the nn layer"
            )
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                assert not any("Module" in b for b in bases), f"{path.relative_to(PACKAGE)}: class {node.name}({bases})"
            if isinstance(node, ast.Attribute) and node.attr in ("Module", "Parameter", "ModuleList"):
                raise AssertionError(f"{path.relative_to(PACKAGE)} uses {ast.unparse(node)}: modules belong to the nn layer")


def test_no_layer_imports_upward():
    for path in sorted(PACKAGE.rglob("*.py")):
        own = _layer(".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts))
        if own is None:
            continue
        for name in _imports(path):
            other = _layer(name)
            if other is not None:
                assert LAYERS.index(other) <= LAYERS.index(own), (
                    f"{path.relative_to(PACKAGE)} (layer {own!r}) imports {name} from the higher layer {other!r}"
                )


def test_scripts_compile():
    """Benchmarks and examples are not imported by the suite; at least they must be valid Python."""
    repo = PACKAGE.parent
    scripts = sorted((repo / "benchmarks").glob("*.py")) + sorted((repo / "examples").glob("*.py"))
    assert scripts
    for path in scripts:
        compile(path.read_text(), str(path), "exec")
