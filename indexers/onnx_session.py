"""One onnxruntime session per model graph: provider choice, threads, and the CUDA fallback check."""

from __future__ import annotations

import importlib.metadata
import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from mmsearch.errors import ConfigError, DependencyError, ModelError

log = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
DEVICES = ("auto", "cpu", "cuda")
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


def import_onnxruntime():  # noqa: ANN201 - the module
    try:
        import onnxruntime
    except ImportError as e:
        raise DependencyError(
            "onnxruntime is not installed: pip install 'mmsearch[cpu]' "
            "(or 'mmsearch[gpu]' on a machine with CUDA; never both)"
        ) from e
    dists = {d for d in ("onnxruntime", "onnxruntime-gpu") if _installed(d)}
    if len(dists) > 1:
        _warn_once(
            "both-ort",
            "both onnxruntime and onnxruntime-gpu are installed and overwrite each other's files; "
            "uninstall both and install one: pip install 'mmsearch[cpu]' or 'mmsearch[gpu]'",
        )
    return onnxruntime


def _installed(dist: str) -> bool:
    try:
        importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def default_threads() -> int | None:
    """`MMSEARCH_THREADS` if set, else None (onnxruntime picks the physical core count)."""
    value = os.environ.get("MMSEARCH_THREADS")
    if not value:
        return None
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ConfigError(f"MMSEARCH_THREADS={value!r}: expected a positive integer")
    return threads


class OnnxSession:
    """An onnxruntime InferenceSession with mmsearch's defaults.

    Args:
        path: the .onnx file.
        device: `auto` (CUDA when onnxruntime-gpu can use it, else CPU), `cpu` or `cuda`.
        threads: intra-op threads; None lets onnxruntime choose (or `MMSEARCH_THREADS`).
    """

    def __init__(self, path: Path, *, device: Device = "auto", threads: int | None = None) -> None:
        if device not in DEVICES:
            raise ConfigError(f"device {device!r} is not one of {', '.join(DEVICES)}")
        ort = import_onnxruntime()
        self.path = Path(path)
        options = ort.SessionOptions()
        threads = threads if threads is not None else default_threads()
        if threads is not None:
            if threads < 1:
                raise ConfigError(f"threads={threads}: expected a positive integer")
            options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads otherwise busy-wait after each run, stealing the cores from whatever
        # comes next (the Qdrant search of the same query, the next image decode).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        available = ort.get_available_providers()
        wants_cuda = device == "cuda" or (device == "auto" and "CUDAExecutionProvider" in available)
        providers = ["CPUExecutionProvider"]
        if wants_cuda:
            if "CUDAExecutionProvider" not in available:
                raise ConfigError(
                    "device='cuda' but this onnxruntime has no CUDAExecutionProvider: "
                    "pip uninstall onnxruntime && pip install 'mmsearch[gpu]'"
                )
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self._session: Any = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own untyped exceptions
            raise ModelError(f"onnxruntime cannot load {str(self.path)!r}: {e}") from e
        self.providers = tuple(self._session.get_providers())
        if wants_cuda and "CUDAExecutionProvider" not in self.providers:
            # onnxruntime-gpu lists CUDA as available even when the CUDA/cuDNN libraries don't load,
            # then silently runs on CPU: say so once, with the fix.
            _warn_once(
                "cuda-fallback",
                "onnxruntime-gpu could not load CUDA (missing or mismatched CUDA/cuDNN libraries) "
                'and runs on CPU; check `python -c "import onnxruntime as o; '
                "o.preload_dlls(); print(o.get_device())\"`, or install 'mmsearch[cpu]'",
            )
        # Shapes as the graph declares them: an int per fixed axis, a name (or None) per dynamic one.
        self.input_shapes = {i.name: tuple(i.shape) for i in self._session.get_inputs()}
        self.output_shapes = {o.name: tuple(o.shape) for o in self._session.get_outputs()}
        self.input_names = tuple(self.input_shapes)
        self.output_names = tuple(self.output_shapes)

    @property
    def on_cuda(self) -> bool:
        return "CUDAExecutionProvider" in self.providers

    @property
    def closed(self) -> bool:
        return self._session is None

    def close(self) -> None:
        """Release the onnxruntime session (its memory, and its GPU memory on CUDA). Closing twice is fine."""
        self._session = None

    def run(self, feeds: dict[str, np.ndarray], output: str | None = None) -> np.ndarray:
        """The graph's `output` (default: its first) for `feeds` (extra feeds are ignored).

        Raises:
            ModelError: the session was closed.
        """
        if self._session is None:
            raise ModelError(f"the session of {str(self.path)!r} is closed (its model was closed)")
        names = [output] if output else [self.output_names[0]]
        return self._session.run(names, {k: v for k, v in feeds.items() if k in self.input_names})[0]
