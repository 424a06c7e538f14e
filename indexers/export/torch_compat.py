"""Make torchvision (and what imports it: open_clip, timm, sentence-transformers) importable.

PyPI's torchvision wheel is a CUDA build. Beside a CPU-only torch its C++ extension fails to load,
and `import torchvision` then dies in `_meta_registrations` with "operator torchvision::nms does
not exist", because it registers fake kernels for ops whose schemas the extension should have
defined. Defining those schemas ourselves, only when the extension is missing, lets torchvision
import; models and transforms work, only the detection ops (nms, roi_align...) stay unavailable,
and mmsearch never calls them.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # kept alive: dropping a torch.library.Library removes its definitions


def _schema_exists(qualname: str) -> bool:
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw(qualname, "")
    except RuntimeError:
        return False
    return True


def _extension_loads(folder: Path) -> bool:
    """True if torchvision's compiled ops load beside this torch (then no patch is wanted)."""
    import torch

    for lib in sorted(folder.glob("_C*")):
        if lib.suffix not in (".so", ".pyd"):
            continue
        try:
            torch.ops.load_library(str(lib))
        except (OSError, RuntimeError):
            return False
        return True
    return False


def patch_torchvision() -> bool:
    """Define the missing torchvision op schemas if its extension cannot load.

    Returns True if a patch was applied. Safe to call more than once.
    """
    global _library
    if "torchvision" in sys.modules:
        return False
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    if _extension_loads(Path(next(iter(spec.submodule_search_locations)))):
        return False
    import torch

    missing = [name for name in _SCHEMAS if not _schema_exists(f"torchvision::{name}")]
    if not missing:
        return False
    if _library is None:
        _library = torch.library.Library("torchvision", "FRAGMENT")
    for name in missing:
        _library.define(_SCHEMAS[name])
    return True


def import_torchvision():  # noqa: ANN201 - the module
    patch_torchvision()
    import torchvision

    return torchvision
