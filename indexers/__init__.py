"""Encoders exported to ONNX and run with onnxruntime.

Query-time code (`indexers.runtime` and what it imports) needs onnxruntime, numpy, PIL and
`tokenizers`; only `indexers.export` imports torch, open_clip, torchvision or sentence-transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from indexers.protocol import Encoder, EncoderSpec

if TYPE_CHECKING:
    from indexers.runtime import load_model

__all__ = ["Encoder", "EncoderSpec", "load_model"]


def __getattr__(name: str) -> Any:
    # `load_model` is imported on first use: importing `indexers` (as the export code does) stays light.
    if name == "load_model":
        from indexers.runtime import load_model

        return load_model
    raise AttributeError(f"module 'indexers' has no attribute {name!r}")
