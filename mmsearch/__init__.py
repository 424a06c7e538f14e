"""mmsearch: multimodal retrieval and hybrid recommendation on Qdrant.

The front door holds the names most programs need: `Index` (index a catalog into a store),
`Searcher` (hybrid search over an indexed collection), `open_store` (the vector store itself),
`load_model` (a model folder written by `mmsearch export`) and `MmsearchError` (the root of every
error mmsearch raises). Each is imported on first use (PEP 562), so `import mmsearch` stays cheap:
numpy, onnxruntime and the Qdrant clients load only when a name that needs them is used.

Example:
    import mmsearch

    with mmsearch.Index.open(models=["models/clip"], store_path="data") as index:
        index.sync("catalog.jsonl")
        hits = index.search(text="a red bicycle", limit=5)
"""

from __future__ import annotations

import importlib

from mmsearch.version import __version__

# `typing` alone costs more than the rest of this module; type checkers treat this name as True.
TYPE_CHECKING = False


# name -> the module that defines it, imported when the name is first looked up.
_LAZY = {
    "Index": "mmsearch.indexing.index",
    "Searcher": "mmsearch.query.engine",
    "open_store": "mmsearch.storage",
    "load_model": "indexers.runtime",
    "MmsearchError": "mmsearch.errors",
}

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time `__getattr__` imports them
    from indexers.runtime import load_model
    from mmsearch.errors import MmsearchError
    from mmsearch.indexing.index import Index
    from mmsearch.query.engine import Searcher
    from mmsearch.storage import open_store

__all__ = ["Index", "Searcher", "open_store", "load_model", "MmsearchError", "__version__"]


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mmsearch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
