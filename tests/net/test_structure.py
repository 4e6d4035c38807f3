"""Package layering: Blob sits below net/ and layers/, and layers/ never imports net/."""
from __future__ import annotations

import ast
from pathlib import Path

import tinycaffe

LAYERS = Path(tinycaffe.__file__).parent / "layers"


def _imported_modules(path: Path) -> list[str]:
    """Every module a file imports, relative imports resolved against tinycaffe.layers."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                found.append(node.module or "")
            else:
                base = "tinycaffe.layers".split(".")[: 2 - (node.level - 1)]
                found.append(".".join(base + ([node.module] if node.module else [])))
    return found


def test_no_layer_module_imports_the_net_package():
    offenders = {
        path.name: mod
        for path in sorted(LAYERS.glob("*.py"))
        for mod in _imported_modules(path)
        if mod == "tinycaffe.net" or mod.startswith("tinycaffe.net.")
    }
    assert offenders == {}


def test_blob_keeps_its_old_import_paths():
    from tinycaffe.blob import Blob
    from tinycaffe.net import Blob as from_net
    from tinycaffe.net.blob import Blob as from_old_module

    assert from_net is Blob and from_old_module is Blob and tinycaffe.Blob is Blob
