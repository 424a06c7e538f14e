"""onnxruntime sessions of one model graph, made on first use, one per call shape: provider choice,
threads, and the CUDA fallback check."""

from __future__ import annotations

import importlib.metadata
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
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


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, so `taskset` and cpusets count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


# A call shape picks one of two sessions of the same graph (see `OnnxSession`).
Lane = Literal["serial", "parallel"]


class OnnxSession:
    """An onnxruntime InferenceSession with mmsearch's defaults, created on first use.

    Creating one checks the device and the thread count but loads nothing: the graph is loaded
    on the first `run` (or `warm`), so a model folder whose towers a process never uses costs
    nothing (a text query never loads CLIP's image tower).

    On CPU a run goes to one of two sessions of the graph, by call shape, each created when first
    needed:

    - `serial`, one intra-op thread: small runs (one short text) and batches run side by side by
      `run_many`, one per worker thread. A short text's operators are too small to split: waking
      a second thread for each of them costs more than it saves, and spinning threads (which
      would hide that cost) take the cores from the search that follows. Side-by-side runs need
      no synchronisation inside a run at all, so they also beat splitting every operator of
      one run across the cores.
    - `parallel`, `threads` intra-op threads that do not spin once idle: one large run (an image,
      one long text) whose operators are worth splitting.

    On CUDA one session serves both lanes and `run_many` runs in turn.

    Args:
        path: the .onnx file.
        device: `auto` (CUDA when onnxruntime-gpu can use it, else CPU), `cpu` or `cuda`.
        threads: threads per call: intra-op threads of the parallel lane and workers of
            `run_many`; None: `MMSEARCH_THREADS`, else onnxruntime's choice (the physical cores)
            for the parallel lane and the CPUs this process may use for `run_many`.
        on_load: called with this object once the graph is first loaded (e.g. to check its
            inputs and outputs against the manifest); an error it raises fails that first use.

    Raises:
        ConfigError: an unknown device, a thread count below 1, or CUDA asked for without it.
    """

    def __init__(
        self,
        path: Path,
        *,
        device: Device = "auto",
        threads: int | None = None,
        on_load: Callable[[OnnxSession], None] | None = None,
    ) -> None:
        if device not in DEVICES:
            raise ConfigError(f"device {device!r} is not one of {', '.join(DEVICES)}")
        threads = threads if threads is not None else default_threads()
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
            raise ConfigError(f"threads={threads}: expected a positive integer")
        self.path = Path(path)
        self._intra_op = threads  # None: onnxruntime's choice (the physical cores) for the parallel lane
        self.threads = threads or usable_cpus()
        self._ort = import_onnxruntime()
        available = self._ort.get_available_providers()
        self._wants_cuda = device == "cuda" or (device == "auto" and "CUDAExecutionProvider" in available)
        if self._wants_cuda and "CUDAExecutionProvider" not in available:
            raise ConfigError(
                "device='cuda' but this onnxruntime has no CUDAExecutionProvider: "
                "pip uninstall onnxruntime && pip install 'mmsearch[gpu]'"
            )
        self._sessions: dict[Lane, Any] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._on_load = on_load
        self._closed = False

    def _create(self, lane: Lane) -> Any:
        ort = self._ort
        options = ort.SessionOptions()
        if lane == "serial":
            options.intra_op_num_threads = 1
        elif self._intra_op is not None:
            options.intra_op_num_threads = self._intra_op
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle worker threads otherwise busy-wait after each run, stealing the cores from whatever
        # comes next (the Qdrant search of the same query, the next image decode).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if self._wants_cuda else ["CPUExecutionProvider"]
        try:
            session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as e:  # onnxruntime raises its own untyped exceptions
            raise ModelError(f"onnxruntime cannot load {str(self.path)!r}: {e}") from e
        if self._wants_cuda and "CUDAExecutionProvider" not in session.get_providers():
            # onnxruntime-gpu lists CUDA as available even when the CUDA/cuDNN libraries don't load,
            # then silently runs on CPU: say so once, with the fix.
            _warn_once(
                "cuda-fallback",
                "onnxruntime-gpu could not load CUDA (missing or mismatched CUDA/cuDNN libraries) "
                'and runs on CPU; check `python -c "import onnxruntime as o; '
                "o.preload_dlls(); print(o.get_device())\"`, or install 'mmsearch[cpu]'",
            )
        return session

    def _lane(self, lane: Lane) -> Lane:
        if self._wants_cuda:
            return "parallel"  # one GPU session; its CPU threads only feed the device
        return "serial" if self.threads == 1 else lane  # with one thread both lanes are the same session

    def _session(self, lane: Lane) -> Any:
        lane = self._lane(lane)
        session = self._sessions.get(lane)
        if session is None:
            with self._lock:  # two threads' first runs must not load the graph twice
                if self._closed:
                    raise ModelError(f"the session of {str(self.path)!r} is closed (its model was closed)")
                session = self._sessions.get(lane)
                if session is None:
                    first = not self._sessions
                    session = self._sessions[lane] = self._create(lane)
                    if first and self._on_load is not None:
                        try:
                            self._on_load(self)
                        except BaseException:
                            del self._sessions[lane]
                            raise
        return session

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release the onnxruntime sessions (their memory, and GPU memory on CUDA). Closing twice is fine."""
        with self._lock:
            self._closed = True
            self._sessions.clear()
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    def warm(self, lane: Lane = "parallel") -> OnnxSession:
        """Create the session of `lane` now (loading the graph) instead of on its first run.

        Raises:
            ModelError: onnxruntime cannot load the graph.
        """
        self._session(lane)
        return self

    @property
    def loaded(self) -> tuple[Lane, ...]:
        """The lanes whose session exists (on CUDA: `parallel`, the one session)."""
        return tuple(self._sessions)

    @property
    def providers(self) -> tuple[str, ...]:
        """The execution providers the graph runs on (creates the session if none exists yet)."""
        session = next(iter(self._sessions.values()), None) or self._session("parallel")
        return tuple(session.get_providers())

    @property
    def on_cuda(self) -> bool:
        return "CUDAExecutionProvider" in self.providers

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self._any().get_inputs())

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self._any().get_outputs())

    @property
    def input_shapes(self) -> dict[str, tuple[Any, ...]]:
        """Shapes as the graph declares them: an int per fixed axis, a name (or None) per dynamic one."""
        return {i.name: tuple(i.shape) for i in self._any().get_inputs()}

    @property
    def output_shapes(self) -> dict[str, tuple[Any, ...]]:
        return {o.name: tuple(o.shape) for o in self._any().get_outputs()}

    def _any(self) -> Any:
        # closing clears the sessions, so a closed one gets here with none and `_session` refuses
        return next(iter(self._sessions.values()), None) or self._session("serial")

    def run(self, feeds: dict[str, np.ndarray], output: str | None = None, *, lane: Lane = "parallel") -> np.ndarray:
        """Run the graph once on `feeds` (inputs it does not take are dropped); returns one output.

        Args:
            feeds: input name -> array.
            output: the output to return; None: the first.
            lane: `serial` for a small run, `parallel` for a large one (see the class docstring).

        Raises:
            ModelError: onnxruntime cannot load the graph, or the session was closed.
        """
        session = self._session(lane)
        inputs = {i.name for i in session.get_inputs()}
        names = [output] if output else [session.get_outputs()[0].name]
        return session.run(names, {k: v for k, v in feeds.items() if k in inputs})[0]

    def run_many(self, feeds: Iterable[dict[str, np.ndarray]], output: str | None = None) -> Iterator[np.ndarray]:
        """Run the graph on each feed, yielding the outputs in order.

        On CPU with more than one thread, up to `threads` runs go side by side on the serial lane;
        feeds are drawn a few at a time, so a long iterable is never padded all at once.
        """
        it = iter(feeds)
        window = list(itertools.islice(it, 2 * self.threads))
        if len(window) <= 1 or self._lane("serial") != "serial" or self.threads == 1:
            for f in itertools.chain(window, it):
                yield self.run(f, output, lane="serial" if self.threads == 1 else "parallel")
            return
        self._session("serial")
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="mmsearch-onnx")
        pool = self._pool
        while window:
            yield from pool.map(lambda f: self.run(f, output, lane="serial"), window)
            window = list(itertools.islice(it, 2 * self.threads))
