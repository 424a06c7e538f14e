"""mmsearch: multimodal retrieval and hybrid recommendation on Qdrant."""

from mmsearch.errors import MmsearchError
from mmsearch.version import __version__

__all__ = ["MmsearchError", "__version__"]
