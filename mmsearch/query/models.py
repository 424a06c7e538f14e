"""The models a search embeds its inputs with: the ones given, or the ones the collection recorded.

- Given models must each have vectors in the collection: a model that matches none (another
  export, a typo'd folder) is an error naming the collection's vectors and the model's, never a
  silent drop.
- With none given, `Searcher.open` uses the model folders the indexer recorded in the collection
  (`mmsearch.storage.ModelRecord`): each is loaded (on first use) when its folder is still there
  and holds the same graphs (fingerprints); otherwise the reason says what to pass instead.
- A model exported with random weights (`--weights none`) scores noise: its signals are left out
  of the default weights (see `default_choice`) and flagged with a warning when weighted explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from indexers.manifest import Manifest, Precision
from indexers.protocol import Encoder
from indexers.runtime import Model, encoder_specs
from mmsearch.errors import ConfigError, FingerprintMismatchError, MmsearchError, listed
from mmsearch.query.signals import Signal
from mmsearch.storage import ModelRecord, StoreSchema, pooled_name

MODALITIES = ("image", "text")
Towers = dict[str, dict[str, Encoder]]  # model name -> modality -> encoder


def _names(names: Sequence[str]) -> str:
    return listed(names, 12, quote=False)


def model_towers(models: Sequence[Model | Encoder]) -> Towers:
    """Model name -> modality -> encoder, over loaded models and single encoders.

    Raises:
        ConfigError: two different towers of one modality under one model name.
    """
    towers: Towers = {}
    for m in models:
        for encoder in m.encoders.values() if isinstance(m, Model) else (m,):
            spec = encoder.spec
            mine = towers.setdefault(spec.model, {})
            if spec.modality in mine and mine[spec.modality].spec.fingerprint != spec.fingerprint:
                raise ConfigError(
                    f"two different {spec.modality} towers are named {spec.model!r}; model names are unique in a "
                    f"collection"
                )
            mine[spec.modality] = encoder
    return towers


def check_models(schema: StoreSchema, collection: str, models: Sequence[Model | Encoder]) -> Towers:
    """The towers of `models`, each checked against the vectors its model wrote in the collection.

    Raises:
        ConfigError: a model with no vector in the collection (the message names the collection's
            vectors and the ones the model would search), or two towers under one name.
        FingerprintMismatchError: a tower differs from the one that wrote its vectors.
    """
    towers = model_towers(models)
    for name, mine in towers.items():
        stored = {mod: schema.vectors.get(pooled_name(name, mod)) for mod in MODALITIES}
        if not any(stored.values()):
            pooled = sorted(n for n, s in schema.vectors.items() if s.kind == "pooled")
            raise ConfigError(
                f"model {name!r} has no vectors in collection {collection!r}: it would search "
                f"{_names([pooled_name(name, mod) for mod in mine])}, but the collection's vectors are "
                f"{_names(pooled)}; pass the model folders that indexed it (--model DIR), or index with this one"
            )
        for mod, vector in stored.items():
            if vector is not None and mod in mine and mine[mod].spec.fingerprint != vector.fingerprint:
                raise FingerprintMismatchError(vector.name, str(vector.fingerprint), mine[mod].spec.fingerprint)
    return towers


@dataclass(frozen=True)
class Recorded:
    """A recorded model folder that can be loaded as it was: where, and at which precision."""

    record: ModelRecord
    precision: Precision


def matching_precision(manifest: Manifest, fingerprints: Mapping[str, str]) -> Precision | None:
    """The precision whose graphs are the recorded ones, or None when none is.

    `auto` first (it may pick int8 for one tower and fp32 for another), then `fp32` and `int8`.
    """
    candidates: tuple[Precision, ...] = ("auto", "fp32", "int8")
    for precision in candidates:
        try:
            specs = encoder_specs(manifest, precision)
        except MmsearchError:  # no int8 graphs
            continue
        mine: dict[str, str] = {s.modality: s.fingerprint for s in specs.values()}
        if all(mine.get(mod) == fp for mod, fp in fingerprints.items()):
            return precision
    return None


def resolve_recorded(schema: StoreSchema) -> tuple[list[Recorded], dict[str, str]]:
    """The recorded model folders that still hold the models that indexed the collection.

    Returns:
        Those that do; and, for the others, model name -> what is wrong and what to pass instead.
    """
    usable: list[Recorded] = []
    missing: dict[str, str] = {}
    for name, rec in sorted(schema.models.items()):
        fingerprints = ", ".join(f"{mod} {fp[:12]}" for mod, fp in sorted(rec.fingerprints.items()))
        origin = f"model {name!r} indexed this collection from {rec.folder}"
        wanted = f"pass --model DIR with the folder that holds it now (fingerprints {fingerprints})"
        if not Path(rec.folder).is_dir():
            missing[name] = f"{origin}, which is gone: {wanted}"
            continue
        try:
            manifest = Manifest.load(Path(rec.folder), verify=False)
        except MmsearchError as e:
            missing[name] = f"{origin}, which fails to load ({e}): {wanted}"
            continue
        precision = matching_precision(manifest, rec.fingerprints) if manifest.name == name else None
        if precision is None:
            missing[name] = f"{origin}, which now holds another model ({manifest.name!r}): {wanted}, or re-index"
            continue
        usable.append(Recorded(rec, precision))
    return usable, missing


def random_models(schema: StoreSchema, models: Sequence[Model | Encoder]) -> set[str]:
    """Names of the models exported with random weights, by their manifests or the collection's record."""
    out = {name for name, rec in schema.models.items() if rec.random_weights}
    return out | {m.name for m in models if isinstance(m, Model) and m.random_weights}


def default_choice(
    signals: Sequence[Signal], cross_modal: set[str], random: set[str]
) -> tuple[list[Signal], str | None]:
    """The signals that share the default weights, and a note when some are left out for random weights.

    Signals of random-weight models are left out when any other signal remains. When none does,
    the same-modality ones stay (a random image tower still tells an image's own photo from the
    others; a random text-to-image score tells nothing), and only when that leaves nothing, all.

    Args:
        signals: the signals the query's inputs reach.
        cross_modal: names of those whose query vector comes from the other modality (CLIP text to images).
        random: models exported with random weights.
    """
    noisy = [s for s in signals if s.model in random]
    if not noisy:
        return list(signals), None
    models = ", ".join(repr(m) for m in sorted({str(s.model) for s in noisy}))
    trained = [s for s in signals if s.model not in random]
    if trained:
        return trained, (
            f"signals {_names([s.name for s in noisy])} are left out of the default weights: model(s) {models} "
            f"were exported with random weights (weight them with -w to use them anyway)"
        )
    same = [s for s in signals if s.name not in cross_modal]
    if same and len(same) < len(signals):
        left = [s.name for s in signals if s.name in cross_modal]
        return same, (
            f"every signal of this query comes from model(s) {models}, exported with random weights: ranking by "
            f"same-modality similarity only ({_names([s.name for s in same])}); {_names(left)} left out"
        )
    return list(signals), f"every signal of this query comes from model(s) {models}, exported with random weights"


def random_warnings(chosen: Sequence[Signal], random: set[str]) -> list[str]:
    """A warning per explicitly weighted signal whose model has random weights."""
    return [
        f"warning: signal {s.name!r} comes from model {s.model!r}, exported with random weights: its scores are noise"
        for s in chosen
        if s.model in random
    ]


__all__ = [
    "Recorded",
    "Towers",
    "check_models",
    "default_choice",
    "matching_precision",
    "model_towers",
    "random_models",
    "random_warnings",
    "resolve_recorded",
]
