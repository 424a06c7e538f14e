"""Imports flow one way, and `import mmsearch` is cheap: its front-door names load on first use."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mmsearch

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "pydantic", "qdrant_client", "qdrant_edge", "onnxruntime", "PIL", "tokenizers")

# package -> the mmsearch packages it must never import (at module level, in a function, or for
# type checking alike): a layer only reaches down.
FORBIDDEN = {
    "mmsearch/storage": ("mmsearch.query", "mmsearch.indexing", "mmsearch.cf", "mmsearch.eval", "mmsearch.cli"),
    "mmsearch/cf": ("mmsearch.query", "mmsearch.indexing", "mmsearch.eval", "mmsearch.cli"),
    "mmsearch/query": ("mmsearch.indexing", "mmsearch.eval", "mmsearch.bench", "mmsearch.cli"),
    "mmsearch/indexing": ("mmsearch.eval", "mmsearch.bench", "mmsearch.cli"),
    "mmsearch/bench": ("mmsearch.cli", "mmsearch.service"),
    "mmsearch/service": ("mmsearch.cli", "mmsearch.bench", "mmsearch.eval"),
    "mmsearch/eval": ("mmsearch.cli", "mmsearch.bench"),
}


def _imported_modules(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_layer_reaches_up(package):
    bad = [
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for module in sorted(_imported_modules(path))
        if any(module == f or module.startswith(f + ".") for f in FORBIDDEN[package])
    ]
    assert bad == []


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_the_query_path_loads_no_indexing_module():
    loaded = _run("""
        import sys
        import mmsearch.query.engine, mmsearch.query.report, mmsearch.query.filters
        print(",".join(m for m in sys.modules if m.startswith("mmsearch.indexing")))
    """)
    assert loaded == ""


def test_import_mmsearch_alone_imports_no_heavy_dependency():
    loaded = _run(f"""
        import sys
        import mmsearch
        print(",".join(m for m in {HEAVY!r} if m in sys.modules))
    """)
    assert loaded == ""


def test_a_front_door_name_imports_what_it_needs_on_first_use():
    loaded = _run("""
        import sys
        import mmsearch
        before = "numpy" in sys.modules
        mmsearch.Searcher
        print(before, "numpy" in sys.modules)
    """)
    assert loaded == "False True"


def test_the_front_door_names_are_the_real_objects():
    from indexers.runtime import load_model
    from mmsearch.errors import MmsearchError
    from mmsearch.indexing.index import Index
    from mmsearch.query.engine import Searcher
    from mmsearch.storage import open_store

    assert mmsearch.Index is Index and mmsearch.Searcher is Searcher
    assert mmsearch.open_store is open_store and mmsearch.load_model is load_model
    assert mmsearch.MmsearchError is MmsearchError
    assert isinstance(mmsearch.__version__, str) and mmsearch.__version__
    assert set(mmsearch.__all__) <= set(dir(mmsearch))
    assert all(getattr(mmsearch, name) is not None for name in mmsearch.__all__)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Seracher'"):
        _ = mmsearch.Seracher
    with pytest.raises(ImportError):
        exec("from mmsearch import Seracher", {})


def test_the_command_line_starts_without_heavy_dependencies():
    # `mmsearch --help` and every command's parsing import only click: the commands import the
    # library when they run, and `bench index|query|store` load on first use.
    loaded = _run(f"""
        import sys
        import mmsearch.cli
        print(",".join(m for m in {HEAVY!r} if m in sys.modules))
    """)
    assert loaded == ""
