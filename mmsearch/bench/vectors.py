"""Synthetic vectors for the benchmarks: unit rows, and noisy copies that stay near their source."""

from __future__ import annotations

import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    """`x` with every row scaled to length 1, as float32."""
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def noisy(x: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors near `x`: Gaussian noise of expected norm `scale` added, then re-normalised."""
    noise = rng.standard_normal(x.shape).astype(np.float32) * (scale / np.sqrt(x.shape[-1]))
    return unit(x + noise)


__all__ = ["noisy", "unit"]
