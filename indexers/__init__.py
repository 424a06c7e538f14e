"""Encoders exported to ONNX and run with onnxruntime.

Query-time code (`indexers.runtime` and what it imports) needs onnxruntime, numpy, PIL and
`tokenizers`; only `indexers.export` imports torch, open_clip, torchvision or sentence-transformers.
"""

from indexers.protocol import Encoder, EncoderSpec

__all__ = ["Encoder", "EncoderSpec", "load_model"]


def load_model(path, **kwargs):  # noqa: ANN001, ANN003, ANN201 - thin lazy re-export
    """Load a model folder written by `mmsearch export`; see `indexers.runtime.load_model`."""
    from indexers.runtime import load_model as _load

    return _load(path, **kwargs)
