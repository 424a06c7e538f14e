"""Where an embed worker runs its encoders: the device and threads the engine granted it.

Inside a Ray actor, `device="auto"` means CUDA when Ray assigned the actor a GPU (`num_gpus=` on
`map_batches`; Ray sets `CUDA_VISIBLE_DEVICES` to it) and the CPU otherwise, and onnxruntime gets
as many threads as the CPUs Ray reserved (`num_cpus=`, 1 by default), so N actors on N cores do
not each start a thread per core. Inside a Spark task the same holds for `spark.task.cpus` and
the task's `gpu` resources. Elsewhere the config's `[index]` device and threads apply as they are.
An explicit `device` or `threads` in the config always wins.
"""

from __future__ import annotations

import logging
import math
import sys
from dataclasses import dataclass

from indexers.onnx_session import Device
from mmsearch.indexing.config import IndexSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grant:
    """The resources an engine gave this worker (None: not inside that engine, or unknown)."""

    engine: str | None = None
    cpus: float | None = None
    gpus: int = 0


def ray_grant() -> Grant | None:
    """This Ray worker's reserved CPUs and GPUs; None outside a Ray worker (the driver included)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    ctx = ray.get_runtime_context()
    if ctx.worker.mode != ray.WORKER_MODE:
        return None
    resources = ctx.get_assigned_resources()
    return Grant("ray", resources.get("CPU"), len(ctx.get_accelerator_ids().get("GPU", [])))


def spark_grant() -> Grant | None:
    """This Spark task's CPUs and GPUs; None outside a Spark task."""
    if "pyspark" not in sys.modules:
        return None
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is None:
        return None
    gpu = ctx.resources().get("gpu")
    return Grant("spark", float(ctx.cpus()), len(gpu.addresses) if gpu is not None else 0)


def placement(settings: IndexSettings) -> tuple[Device, int | None]:
    """The device and onnxruntime threads for this worker's encoders."""
    grant = ray_grant() or spark_grant() or Grant()
    device: Device = settings.device
    threads = settings.threads
    if grant.engine is not None:
        if device == "auto":
            device = "cuda" if grant.gpus else "cpu"
        if threads is None and grant.cpus:
            threads = max(1, math.floor(grant.cpus))
        log.info(
            "%s worker: %d GPU(s), %s CPU(s): encoders on %s, %s thread(s)",
            grant.engine,
            grant.gpus,
            grant.cpus,
            device,
            threads,
        )
    return device, threads
