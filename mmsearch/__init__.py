"""mmsearch: multimodal retrieval and hybrid recommendation on Qdrant."""

from mmsearch.errors import MmsearchError

__version__ = "0.1.0"
__all__ = ["MmsearchError", "__version__"]
