"""Signals: the scores a query can fuse, their names and weights, and the query vectors behind them.

A signal is one score per item, read from one stored vector:

- content signals, named after the stored vector they search (`<model>.<modality>`, e.g.
  `clip.image`, `clip.text`, `minilm.text`, `resnet18.image`). A query's text is embedded by every
  text tower and its image by every image tower; each embedding searches the vectors of its own
  model: a CLIP text embedding searches `clip.text` and, across modalities, `clip.image` (CLIP's
  towers share one space); a BERT embedding only its own text vectors; a ResNet embedding only
  its own image vectors. An `--item` query uses the item's own stored vectors (the other CLIP
  modality when it lacks one). When several inputs reach the same vector (text and image, both
  through CLIP), their embeddings are averaged into one query vector.
- profile signals, `profile:<model>.<modality>`: the user's content profile built from the items
  they interacted with (the five CLIP techniques of Arias, Lillo and Sanhueza's Yelp study):
  `same` (items and users as the mean of image embeddings, and as the mean of text embeddings:
  techniques 1 and 2), `crossed` (the user's mean text embedding against item images and their
  mean image embedding against item texts: techniques 3 and 4), `mixed` (the user as the mean of
  both, against both: technique 5, the best content technique of the study, and the default).
  Models with one modality always use `same`.
- `cf`: the user's collaborative-filtering factors against the items' `cf` vectors (a dot
  product), or an item's factors for `--item` queries without a user.
- `ease`: the user's history (their training interactions and/or the items given as
  `history`, or the `--item` alone) as a sparse vector against the items' sparse `ease`
  vectors (their columns of the EASE item-item weights): the sum of the weights from the
  history's items, a dot product. Any history scores, including one the model never saw.

Names may be written with aliases: `clip_image` for `clip.image`, the family instead of the
model folder's name when that is unambiguous (`clip_image` for `clip-vit-b-32.image`), and the
bare model or family name when it has a single vector (`bert` for `minilm.text`, `resnet`).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from mmsearch.errors import ConfigError, UnknownNameError
from mmsearch.storage.schema import CF_VECTOR, EASE_VECTOR, StoreSchema, VectorSpec, pooled_name

SignalKind = Literal["content", "profile", "cf", "ease"]
ProfileTechnique = Literal["mixed", "same", "crossed"]
PROFILE_PREFIX = "profile:"
PROFILE_TECHNIQUES: tuple[str, ...] = ("mixed", "same", "crossed")
CF_SIGNAL = "cf"
EASE_SIGNAL = "ease"
DEFAULT_MAX_PROFILE_ITEMS = 500  # a user's first items (in item order) that feed their profile
MODALITIES = ("image", "text")
# Families whose image and text towers embed into one space, so one modality can stand in for the
# other (a text searches photos, an item without a photo is matched by its text, profiles mix).
SHARED_SPACE_FAMILIES: tuple[str, ...] = ("clip",)


def shares_space(family: str | None) -> bool:
    """Whether a model's image and text towers share one embedding space (CLIP's do, BERT and ResNet have one tower)."""
    return family in SHARED_SPACE_FAMILIES


@dataclass(frozen=True)
class Signal:
    """One score a query can use.

    Attributes:
        name: the canonical name (`clip.image`, `profile:clip.image`, `cf`, `ease`).
        kind: `content`, `profile`, `cf` or `ease`.
        vector: the stored vector it searches (pooled; `cf`; the sparse `ease`).
        model, family, modality: the encoder behind the vector (None for CF and EASE).
        distance: the stored vector's distance (`cosine` for content, `dot` for CF and EASE).
        aliases: other accepted spellings of the name.
    """

    name: str
    kind: SignalKind
    vector: str
    model: str | None = None
    family: str | None = None
    modality: str | None = None
    distance: str = "cosine"
    aliases: tuple[str, ...] = ()


def _content_aliases(specs: Sequence[VectorSpec]) -> dict[str, list[str]]:
    """Candidate aliases per content vector name, before collisions are dropped."""
    per_model = Counter(s.model for s in specs)
    per_family = Counter(s.family for s in specs)
    per_family_modality = Counter((s.family, s.modality) for s in specs)
    out: dict[str, list[str]] = {}
    for s in specs:
        names = [f"{s.model}_{s.modality}"]
        if s.family and per_family_modality[(s.family, s.modality)] == 1:
            names += [f"{s.family}.{s.modality}", f"{s.family}_{s.modality}"]
        if per_model[s.model] == 1:
            names.append(str(s.model))
        if s.family and per_family[s.family] == 1:
            names.append(s.family)
        out[s.name] = names
    return out


def collection_signals(schema: StoreSchema, *, cf: bool = True, ease: bool = True) -> list[Signal]:
    """Every signal a collection offers: content and profile signals per pooled vector, `cf` and `ease`.

    Args:
        schema: the collection's schema.
        cf: include `cf` (the collection has a `cf` vector and a CF model is available).
        ease: include `ease` (the collection has the sparse `ease` vector and an EASE model).

    Returns:
        Signals in a stable order: content (by name), profile (by name), `cf`, then `ease`.
    """
    specs = sorted((s for s in schema.vectors.values() if s.kind == "pooled"), key=lambda s: s.name)
    aliases = _content_aliases(specs)
    drafts: list[tuple[Signal, list[str]]] = []
    for s in specs:
        drafts.append((Signal(s.name, "content", s.name, s.model, s.family, s.modality, s.distance), aliases[s.name]))
    for s in specs:
        drafts.append(
            (
                Signal(PROFILE_PREFIX + s.name, "profile", s.name, s.model, s.family, s.modality, s.distance),
                [PROFILE_PREFIX + a for a in aliases[s.name]],
            )
        )
    if cf and CF_VECTOR in schema.vectors:
        drafts.append((Signal(CF_SIGNAL, "cf", CF_VECTOR, distance=schema.vectors[CF_VECTOR].distance), []))
    spec = schema.vectors.get(EASE_VECTOR)
    if ease and spec is not None and spec.sparse:
        drafts.append((Signal(EASE_SIGNAL, "ease", EASE_VECTOR, distance=spec.distance), []))
    canonical = {sig.name for sig, _ in drafts}
    counts = Counter(a for _, names in drafts for a in set(names))
    out = []
    for sig, names in drafts:
        kept = tuple(dict.fromkeys(a for a in names if counts[a] == 1 and a not in canonical))
        out.append(Signal(sig.name, sig.kind, sig.vector, sig.model, sig.family, sig.modality, sig.distance, kept))
    return out


def resolve_signal(name: str, signals: Sequence[Signal]) -> Signal:
    """The signal called `name` (its canonical name or an alias).

    Raises:
        UnknownNameError: no such signal; the message lists the collection's signal names.
    """
    for s in signals:
        if name == s.name or name in s.aliases:
            return s
    raise UnknownNameError("signal", name, [s.name for s in signals])


def parse_weight(option: str) -> tuple[str, float]:
    """One `name=weight` option (as given to `-w`).

    Raises:
        ConfigError: no `=`, an empty name, or a weight that is not a finite number >= 0.
    """
    if not isinstance(option, str) or "=" not in option:
        raise ConfigError(f"weight {option!r} must look like name=value, e.g. clip_image=0.5")
    name, _, value = option.partition("=")
    name = name.strip()
    if not name:
        raise ConfigError(f"weight {option!r} has no signal name before '='")
    try:
        weight = float(value)
    except ValueError as e:
        raise ConfigError(f"weight {option!r}: {value.strip()!r} is not a number") from e
    _check_weight(name, weight)
    return name, weight


def parse_weights(options: Iterable[str]) -> dict[str, float]:
    """Several `name=weight` options; a name given twice is an error.

    Raises:
        ConfigError: a malformed option, a negative or non-finite weight, or a repeated name.
    """
    out: dict[str, float] = {}
    for option in options:
        name, weight = parse_weight(option)
        if name in out:
            raise ConfigError(f"weight for {name!r} is given twice ({out[name]:g} and {weight:g}); give it once")
        out[name] = weight
    return out


def _check_weight(name: str, weight: object) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise ConfigError(f"weight {weight!r} for signal {name!r} must be a finite number")
    if weight < 0:
        raise ConfigError(f"weight {weight!r} for signal {name!r} is negative; weights are >= 0")
    return float(weight)


def resolve_weights(weights: Mapping[str, float], signals: Sequence[Signal]) -> dict[str, float]:
    """Weights keyed by canonical signal name.

    Raises:
        UnknownNameError: a name that is no signal of the collection (the valid ones are listed).
        ConfigError: a negative or non-finite weight, two spellings of one signal, or all weights 0.
    """
    out: dict[str, float] = {}
    given: dict[str, str] = {}
    for name, weight in weights.items():
        w = _check_weight(name, weight)
        sig = resolve_signal(name, signals)
        if sig.name in out:
            raise ConfigError(f"weights {given[sig.name]!r} and {name!r} both name signal {sig.name!r}; give one")
        out[sig.name], given[sig.name] = w, name
    if out and not any(w > 0 for w in out.values()):
        raise ConfigError(f"all weights are 0 ({', '.join(f'{k}=0' for k in out)}); give at least one positive weight")
    return out


def default_weights(signals: Sequence[Signal]) -> dict[str, float]:
    """Weights when none are given: each kind present (content, profile, cf, ease) gets an equal share, split evenly."""
    groups: dict[str, list[str]] = defaultdict(list)
    for s in signals:
        groups[s.kind].append(s.name)
    out: dict[str, float] = {}
    for names in groups.values():
        for n in names:
            out[n] = 1.0 / (len(groups) * len(names))
    return out


# ------------------------------------------------------------------ query vectors


def unit(vector: np.ndarray) -> np.ndarray | None:
    """`vector` scaled to unit length (float32), or None for a zero or non-finite vector."""
    v = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(v))
    if norm == 0.0 or not math.isfinite(norm):
        return None
    return (v / norm).astype(np.float32)


def _other(spec: VectorSpec) -> str:
    return pooled_name(str(spec.model), "text" if spec.modality == "image" else "image")


def content_queries(
    schema: StoreSchema,
    *,
    text: Mapping[str, np.ndarray] | None = None,
    image: Mapping[str, np.ndarray] | None = None,
    item: Mapping[str, np.ndarray] | None = None,
) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """The query vector of each content signal, from the query's embeddings.

    Args:
        schema: the collection's schema.
        text: model name -> the query text's embedding by that model's text tower.
        image: model name -> the query image's embedding by that model's image tower.
        item: stored pooled vector name -> the query item's vector.

    Returns:
        Vector name -> (unit query vector, the inputs it came from: `text`, `image`, `item`).
        A vector no input reaches is left out.
    """
    text, image, item = text or {}, image or {}, item or {}
    out: dict[str, tuple[np.ndarray, tuple[str, ...]]] = {}
    for spec in sorted(schema.vectors.values(), key=lambda s: s.name):
        if spec.kind != "pooled":
            continue
        parts: list[np.ndarray] = []
        inputs: list[str] = []
        for label, source in (("text", text), ("image", image)):
            if spec.model in source:
                parts.append(np.asarray(source[str(spec.model)], dtype=np.float32))
                inputs.append(label)
        own = item.get(spec.name)
        if own is None and shares_space(spec.family):
            own = item.get(_other(spec))  # the item lacks this modality: CLIP's other one shares the space
        if own is not None:
            parts.append(np.asarray(own, dtype=np.float32))
            inputs.append("item")
        if parts:
            q = unit(np.mean(np.stack(parts), axis=0))
            if q is not None:
                out[spec.name] = (q, tuple(inputs))
    return out


def profile_queries(
    schema: StoreSchema,
    item_vectors: Mapping[str, np.ndarray],
    technique: ProfileTechnique = "mixed",
) -> dict[str, np.ndarray]:
    """The user's content profile for each pooled vector, from the vectors of the items they interacted with.

    Args:
        schema: the collection's schema.
        item_vectors: pooled vector name -> (n, dim) rows, one per interacted item that has it.
        technique: `mixed`, `same` or `crossed` (see the module docstring).

    Returns:
        Vector name -> unit profile vector; vectors without a usable profile are left out.

    Raises:
        UnknownNameError: unknown technique.
    """
    if technique not in PROFILE_TECHNIQUES:
        raise UnknownNameError("profile technique", str(technique), PROFILE_TECHNIQUES)
    means: dict[str, np.ndarray] = {}
    for name, rows in item_vectors.items():
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim == 2 and rows.shape[0] > 0:
            m = unit(rows.mean(axis=0))
            if m is not None:
                means[name] = m
    out: dict[str, np.ndarray] = {}
    for spec in sorted(schema.vectors.values(), key=lambda s: s.name):
        if spec.kind != "pooled":
            continue
        # Only towers sharing one space (CLIP's) can stand in for each other.
        other = means.get(_other(spec)) if shares_space(spec.family) else None
        vec = _profile_vector(technique, means.get(spec.name), other)
        if vec is not None:
            out[spec.name] = vec
    return out


def _profile_vector(technique: str, own: np.ndarray | None, other: np.ndarray | None) -> np.ndarray | None:
    """One vector's profile from the user's mean on it (`own`) and on the other tower (`other`)."""
    if other is None:
        return own
    if technique == "crossed":
        return other
    if technique == "mixed":
        return unit(other) if own is None else unit(own + other)
    return own


__all__ = [
    "CF_SIGNAL",
    "DEFAULT_MAX_PROFILE_ITEMS",
    "EASE_SIGNAL",
    "SHARED_SPACE_FAMILIES",
    "PROFILE_PREFIX",
    "PROFILE_TECHNIQUES",
    "ProfileTechnique",
    "Signal",
    "SignalKind",
    "collection_signals",
    "content_queries",
    "default_weights",
    "parse_weight",
    "parse_weights",
    "profile_queries",
    "resolve_signal",
    "resolve_weights",
    "shares_space",
    "unit",
]
