"""Saving and loading CF models without pickle: an .npz of arrays plus a JSON sidecar.

A model folder holds `cf_model.json` (format, settings, user and item ids, facts about the run,
and the sha256 of the arrays file) and `cf_factors.npz`: user_factors, item_factors,
seen_indptr, seen_indices for ALS and BPR; the weights' CSC arrays and the training history
(with its values) for EASE. Arrays load with `allow_pickle=False`, so a crafted file cannot run
code; the sha256 catches a factors file that does not belong to its sidecar.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmsearch.cf.config import EASEConfig, parse_cf_config
from mmsearch.cf.model import CFModel, EASEModel
from mmsearch.errors import ConfigError, ModelError, ModelIntegrityError
from mmsearch.files import sha256_file, write_atomic, writing

FORMAT = "mmsearch-cf"
FORMAT_VERSION = 1
SIDECAR = "cf_model.json"
ARRAYS = "cf_factors.npz"
_ARRAY_NAMES = ("user_factors", "item_factors", "seen_indptr", "seen_indices")
_EASE_ARRAY_NAMES = (
    "weight_indptr",
    "weight_indices",
    "weight_values",
    "seen_indptr",
    "seen_indices",
    "seen_values",
)


def _arrays(model: CFModel | EASEModel) -> tuple[str, ...]:
    return _EASE_ARRAY_NAMES if isinstance(model, EASEModel) else _ARRAY_NAMES


def save_model(model: CFModel | EASEModel, folder: str | Path) -> Path:
    """Write `model` into `folder` (created if needed; its two files are replaced).

    Returns:
        The folder.

    Raises:
        ConfigError: the folder cannot be written.
    """
    with writing(folder, "CF model folder"):
        return _save(model, Path(folder))


def _save(model: CFModel | EASEModel, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    arrays_path = folder / ARRAYS
    write_atomic(arrays_path, lambda f: np.savez(f, **{name: getattr(model, name) for name in _arrays(model)}))
    sidecar = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "config": model.config.model_dump(mode="json"),
        "dim": model.dim,
        "user_ids": list(model.user_ids),
        "item_ids": list(model.item_ids),
        "info": model.info,
        "arrays": {"file": ARRAYS, "sha256": sha256_file(arrays_path)},
    }
    text = json.dumps(sidecar, ensure_ascii=False, indent=1).encode("utf-8")
    write_atomic(folder / SIDECAR, lambda f: f.write(text))
    return folder


def load_model(folder: str | Path) -> CFModel | EASEModel:
    """Read a model written by `save_model`.

    Raises:
        ModelError: the folder or its sidecar is missing or unreadable, or the format is not one
            this version reads.
        ModelIntegrityError: the arrays file is missing, differs from the sha256 the sidecar
            recorded, or does not match the ids.
        ConfigError: the recorded settings no longer validate.
    """
    folder = Path(folder)
    sidecar_path = folder / SIDECAR
    try:
        sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ModelError(f"{folder} is not a CF model folder: {SIDECAR} is missing") from e
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot read {sidecar_path}: {e}") from e
    if not isinstance(sidecar, dict) or sidecar.get("format") != FORMAT:
        raise ModelError(f"{sidecar_path} is not a {FORMAT} sidecar")
    if sidecar.get("format_version") != FORMAT_VERSION:
        raise ModelError(
            f"{sidecar_path} has format version {sidecar.get('format_version')!r}; this mmsearch reads {FORMAT_VERSION}"
        )
    arrays_path = folder / ARRAYS
    if not arrays_path.is_file():
        raise ModelIntegrityError(f"{folder}: {ARRAYS} is missing")
    expected = sidecar.get("arrays", {}).get("sha256")
    actual = sha256_file(arrays_path)
    if actual != expected:
        raise ModelIntegrityError(f"{arrays_path} has sha256 {actual}, but {SIDECAR} records {expected}")
    try:
        config = parse_cf_config(sidecar["config"])
        names = _EASE_ARRAY_NAMES if isinstance(config, EASEConfig) else _ARRAY_NAMES
        with np.load(arrays_path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in names}
        users, items = tuple(sidecar["user_ids"]), tuple(sidecar["item_ids"])
        info = dict(sidecar.get("info", {}))
        if isinstance(config, EASEConfig):
            return EASEModel(config=config, user_ids=users, item_ids=items, info=info, **arrays)
        return CFModel(config=config, user_ids=users, item_ids=items, info=info, **arrays)
    except ConfigError:
        raise
    except ModelError as e:
        raise ModelIntegrityError(f"{folder}: {e}") from e
    except (KeyError, ValueError, TypeError) as e:
        raise ModelIntegrityError(f"{folder}: cannot rebuild the model: {e}") from e


__all__ = ["ARRAYS", "FORMAT", "FORMAT_VERSION", "SIDECAR", "load_model", "save_model"]
