"""Named vectors derived from encoder specs, and the record of them kept with each collection.

Naming scheme (stable: stored collections depend on it):

- `<model>.<modality>`: the pooled vector of one encoder (mean of the item's per-photo or per-text
  vectors, re-normalised to unit length), dense, HNSW-indexed. This is also the key callers use in
  `Item.vectors`, where they pass the per-photo or per-text rows.
- `<model>.<modality>.multi`: the same rows kept as a MaxSim multivector; used for rescoring, so by
  default it skips the HNSW graph (m=0) and is searched exactly. For a cosine encoder it holds
  only the items with several rows, and exists only once such an item arrives (until then it is
  `pending` in the record): an item with one row is its pooled vector, and MaxSim against one
  row is a cosine, so the store reads the pooled vector there (`mmsearch.storage.maxsim`).
  Qdrant keeps a one-row placeholder per point for an absent multivector, so a collection that
  never sees a second row of a modality saves the whole multivector; one that does saves the
  write-ahead log's copy only.
- `cf`: the collaborative-filtering vector, dense, dot product, dimension fixed at creation.
- sparse vectors (e.g. `ease`, an item's column of the EASE item-item weights): Qdrant sparse
  vectors, dot product over shared indices, any number of indices; added when first needed
  (`Store.add_sparse_vectors`).

`<model>` is the model folder's name, `<modality>` is `image` or `text`, so names cannot collide
(sparse vector names hold no '.').

The record (`StoreSchema.to_record`) maps each named vector to the model fingerprint that produced
it, and each model to the folder it was loaded from (`ModelRecord`: absolute path, fingerprints,
whether its weights are random), so a collection can be searched without naming its models again.
It travels with the collection (Edge: `mmsearch.json` beside the shard; server and local mode:
collection metadata under the key `mmsearch`). Records written before models were recorded read
as having none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from indexers.protocol import MODEL_NAME_RULE, EncoderSpec, is_model_name
from mmsearch.errors import (
    ConfigError,
    FingerprintMismatchError,
    SchemaMismatchError,
    UnknownVectorError,
)
from mmsearch.storage.ids import ITEM_ID_KEY

VectorKind = Literal["pooled", "multi", "cf", "sparse"]
FieldType = Literal["keyword", "integer", "float", "bool", "datetime", "text", "uuid"]
CF_VECTOR = "cf"
EASE_VECTOR = "ease"
MULTI_SUFFIX = ".multi"
RECORD_FORMAT = 1
DEFAULT_CF_DIM = 64  # the `cf` of a collection created without encoders or cf_dim
_SPARSE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,63}$")


@dataclass(frozen=True)
class VectorSpec:
    """One named vector of a collection.

    Attributes:
        name: the Qdrant vector name (see the module docstring for the scheme).
        kind: `pooled` (dense), `multi` (MaxSim multivector), `cf` (dense, dot) or `sparse`.
        dim: values per vector (per row for a multivector); 0 for a sparse vector (any index).
        distance: `cosine`, `dot` or `euclid`.
        indexed: whether it gets an HNSW graph; False means m=0, exact scan only.
        model, family, modality, fingerprint: the encoder behind it (None for `cf`).
    """

    name: str
    kind: VectorKind
    dim: int
    distance: str
    indexed: bool
    model: str | None = None
    family: str | None = None
    modality: str | None = None
    fingerprint: str | None = None

    @property
    def multivector(self) -> bool:
        return self.kind == "multi"

    @property
    def sparse(self) -> bool:
        return self.kind == "sparse"


@dataclass(frozen=True)
class ModelRecord:
    """A model folder whose towers wrote vectors of the collection, as the indexer loaded it.

    Attributes:
        name: the model's name, the `<model>` of its vector names.
        folder: the folder's absolute path when it last indexed into the collection.
        fingerprints: modality -> the sha256 of the tower graph that wrote its vectors.
        random_weights: the model was exported without trained weights (its manifest's weights `none`).
    """

    name: str
    folder: str
    fingerprints: Mapping[str, str]
    random_weights: bool = False


@dataclass(frozen=True)
class StoreSchema:
    """All named vectors and payload indexes of a collection, and the model folders behind them.

    Attributes:
        vectors: name -> spec, for every named vector in the collection.
        payload_indexes: payload field -> index type; always holds `item_id` (keyword).
        models: model name -> where it was loaded from, for the models recorded by the indexer.
        pending: multivectors declared but not created yet: a cosine encoder's `.multi` waits for
            the first item with several rows (`plan_multi`).
    """

    vectors: Mapping[str, VectorSpec]
    payload_indexes: Mapping[str, FieldType] = field(default_factory=dict)
    models: Mapping[str, ModelRecord] = field(default_factory=dict)
    pending: Mapping[str, VectorSpec] = field(default_factory=dict)

    def get(self, name: str) -> VectorSpec:
        """The spec of a named vector, a pending multivector included (the store reads it from the pooled vector).

        Raises:
            UnknownVectorError: no such vector; the message lists the known ones.
        """
        spec = self.vectors.get(name) or self.pending.get(name)
        if spec is None:
            raise UnknownVectorError("vector", name, [*self.vectors, *self.pending])
        return spec

    @property
    def input_names(self) -> list[str]:
        """Keys accepted in `Item.vectors`: one per encoder (the pooled name), `cf` and the sparse vectors."""
        return sorted(n for n, s in self.vectors.items() if s.kind != "multi")

    def to_record(self) -> dict[str, Any]:
        """A JSON-able record of this schema, stored with the collection."""
        return {
            "format": RECORD_FORMAT,
            "vectors": {n: {k: v for k, v in asdict(s).items() if k != "name"} for n, s in self.vectors.items()},
            "payload_indexes": dict(self.payload_indexes),
            "models": {n: {k: v for k, v in asdict(m).items() if k != "name"} for n, m in self.models.items()},
            "pending": {n: {k: v for k, v in asdict(s).items() if k != "name"} for n, s in self.pending.items()},
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> StoreSchema:
        """Rebuild a schema from `to_record()`'s output.

        Raises:
            SchemaMismatchError: the record is from an unknown format or is damaged.
        """
        if record.get("format") != RECORD_FORMAT:
            raise SchemaMismatchError(
                f"the store's schema record has format {record.get('format')!r}; this mmsearch reads "
                f"format {RECORD_FORMAT}"
            )
        try:
            vectors = {n: VectorSpec(name=n, **v) for n, v in record["vectors"].items()}
            indexes = dict(record.get("payload_indexes", {}))
            models = {n: ModelRecord(name=n, **m) for n, m in record.get("models", {}).items()}
            pending = {n: VectorSpec(name=n, **v) for n, v in record.get("pending", {}).items()}
        except (KeyError, TypeError, AttributeError) as e:
            raise SchemaMismatchError(f"the store's schema record is damaged: {e!r}") from e
        return cls(vectors=vectors, payload_indexes=indexes, models=models, pending=pending)

    def with_models(self, records: Iterable[ModelRecord]) -> StoreSchema:
        """A copy recording these models (replacing earlier records of the same names)."""
        return replace(self, models={**self.models, **{r.name: r for r in records}})


@dataclass(frozen=True)
class SchemaPlan:
    """What opening a store with some encoders means for an existing (or new) collection.

    Attributes:
        schema: the collection's schema after the change.
        new_vectors: named vectors to create (all of them for a new collection).
        new_indexes: payload indexes to create.
    """

    schema: StoreSchema
    new_vectors: tuple[VectorSpec, ...]
    new_indexes: Mapping[str, FieldType]


def pooled_name(model: str, modality: str) -> str:
    """`<model>.<modality>`: the pooled vector's name and the key callers use for the rows."""
    return f"{model}.{modality}"


def multi_name(model: str, modality: str) -> str:
    """`<model>.<modality>.multi`: the MaxSim multivector's name."""
    return f"{model}.{modality}{MULTI_SUFFIX}"


def encoder_vectors(spec: EncoderSpec, *, index_multivector: bool = False) -> tuple[VectorSpec, VectorSpec]:
    """The pooled and multivector specs for one encoder.

    Args:
        spec: the encoder's spec (model, family, modality, dim, distance, fingerprint).
        index_multivector: build an HNSW graph on the multivector too (default: m=0, rescoring only).

    Raises:
        ConfigError: a model name that cannot be part of a vector name, a bad dim or distance.
    """
    if not is_model_name(spec.model):
        raise ConfigError(f"model name {spec.model!r} cannot name a vector: use {MODEL_NAME_RULE}")
    if spec.modality not in ("image", "text"):
        raise ConfigError(f"encoder {spec.model!r} has modality {spec.modality!r}; known: image, text")
    if spec.distance not in ("cosine", "dot", "euclid"):
        raise ConfigError(f"encoder {spec.model!r} has distance {spec.distance!r}; known: cosine, dot, euclid")
    if not isinstance(spec.dim, int) or spec.dim < 1:
        raise ConfigError(f"encoder {spec.model!r} has dim {spec.dim!r}; expected a positive integer")
    if not spec.fingerprint:
        raise ConfigError(f"encoder {spec.model!r} ({spec.modality}) has no fingerprint")
    pooled = VectorSpec(
        name=pooled_name(spec.model, spec.modality),
        kind="pooled",
        dim=spec.dim,
        distance=spec.distance,
        indexed=True,
        model=spec.model,
        family=spec.family,
        modality=spec.modality,
        fingerprint=spec.fingerprint,
    )
    multi = replace(pooled, name=multi_name(spec.model, spec.modality), kind="multi", indexed=index_multivector)
    return pooled, multi


def cf_vector(dim: int) -> VectorSpec:
    """The collaborative-filtering vector: dense, dot product."""
    if not isinstance(dim, int) or dim < 1:
        raise ConfigError(f"cf_dim {dim!r} must be a positive integer")
    return VectorSpec(name=CF_VECTOR, kind="cf", dim=dim, distance="dot", indexed=True)


def sparse_vector(name: str) -> VectorSpec:
    """A sparse vector (dot product over shared indices), e.g. `ease`.

    Raises:
        ConfigError: a name that is not 1-64 letters, digits, '_' or '-' starting with a letter, or `cf`.
    """
    if not isinstance(name, str) or not _SPARSE_NAME.match(name) or name == CF_VECTOR:
        raise ConfigError(
            f"sparse vector name {name!r}: use 1-64 letters, digits, '_' or '-', starting with a letter (not 'cf')"
        )
    return VectorSpec(name=name, kind="sparse", dim=0, distance="dot", indexed=True)


def plan_sparse(existing: StoreSchema, names: Iterable[str]) -> tuple[StoreSchema, tuple[VectorSpec, ...]]:
    """Add sparse vectors to a collection's schema; those it has must be sparse already.

    Returns:
        The schema after the change and the vectors to create.

    Raises:
        ConfigError: a bad name.
        SchemaMismatchError: a name the collection uses for a vector of another kind.
    """
    new: dict[str, VectorSpec] = {}
    for name in names:
        spec = sparse_vector(name)
        old = existing.vectors.get(name)
        if old is None:
            new[name] = spec
        elif old.kind != "sparse":
            raise SchemaMismatchError(f"vector {name!r} in this store is {old.kind}, not a sparse vector")
    # replace(), so the rest of the record (the model folders, any later field) is kept
    schema = replace(existing, vectors={**existing.vectors, **new})
    return schema, tuple(new.values())


def plan_cf(existing: StoreSchema, dim: int) -> tuple[StoreSchema, tuple[VectorSpec, ...]]:
    """Add the `cf` vector with `dim` values when the collection has none; one it has must match.

    Returns:
        The schema after the change and the vectors to create (empty when `cf` was there).

    Raises:
        ConfigError: a dim that is not a positive integer.
        SchemaMismatchError: the collection's `cf` vector has another length.
    """
    spec = cf_vector(dim)
    old = existing.vectors.get(CF_VECTOR)
    if old is not None:
        if old.dim != dim:
            raise SchemaMismatchError(f"vector 'cf' in this store has dim {old.dim}, not {dim}")
        return existing, ()
    return replace(existing, vectors={**existing.vectors, CF_VECTOR: spec}), (spec,)


def plan_schema(
    existing: StoreSchema | None,
    encoders: Iterable[EncoderSpec],
    *,
    cf_dim: int | None = None,
    payload_indexes: Mapping[str, FieldType] | None = None,
    index_multivector: bool = False,
) -> SchemaPlan:
    """Merge encoders and payload indexes into a collection's schema, refusing conflicts.

    Vectors already in the collection are kept as they are (their `indexed` flag included); vectors
    of new encoders are added; nothing is removed.

    Args:
        existing: the collection's schema, or None for a new collection.
        encoders: encoder specs whose vectors the collection must hold.
        cf_dim: the `cf` vector's dimension; None keeps the stored one (and a new collection gets
            none until a CF fit adds it, `plan_cf`).
        payload_indexes: payload fields to index, with their types.
        index_multivector: HNSW on new multivectors (default m=0).

    Returns:
        The schema after the change and the vectors and indexes to create.

    Raises:
        FingerprintMismatchError: an encoder's fingerprint differs from the stored one for its vector.
        SchemaMismatchError: a dim, distance, cf_dim or payload index type differs from the stored one.
        ConfigError: two encoders given for one model and modality, or a bad encoder spec.
    """
    requested = _requested_vectors(encoders, index_multivector)
    stored = dict(existing.vectors) if existing else {}
    if CF_VECTOR in stored:
        if cf_dim is not None and stored[CF_VECTOR].dim != cf_dim:
            raise SchemaMismatchError(
                f"vector 'cf' in this store has dim {stored[CF_VECTOR].dim}, but cf_dim={cf_dim} was asked for"
            )
    elif cf_dim is not None or not (requested or stored):
        # Without cf_dim, the first CF fit creates `cf` at its model's length (`plan_cf`): a
        # collection no CF reaches carries no slot for it. One without encoders is for CF alone
        # (and a collection needs a vector), so it gets `cf` now.
        requested[CF_VECTOR] = cf_vector(DEFAULT_CF_DIM if cf_dim is None else cf_dim)
    pending = dict(existing.pending) if existing else {}
    wanted = [*_new_vectors(requested, {**pending, **stored})]
    new = [v for v in wanted if not is_lazy_multi(v)]
    pending.update({v.name: v for v in wanted if is_lazy_multi(v)})
    stored_indexes = dict(existing.payload_indexes) if existing else {}
    new_indexes = _new_indexes({ITEM_ID_KEY: "keyword", **(payload_indexes or {})}, stored_indexes)
    schema = StoreSchema(
        vectors={**stored, **{v.name: v for v in new}},
        payload_indexes={**stored_indexes, **new_indexes},
        models=dict(existing.models) if existing else {},
        pending=pending,
    )
    return SchemaPlan(schema=schema, new_vectors=tuple(new), new_indexes=new_indexes)


def is_lazy_multi(spec: VectorSpec) -> bool:
    """Whether a multivector holds only the items with several rows: a cosine one (see the module docstring).

    MaxSim against one row equals the cosine with it, which the pooled vector (that row, unit
    length) gives; not so for a dot product or a distance, whose pooled vector is re-normalised.
    """
    return spec.kind == "multi" and spec.distance == "cosine"


def with_created(schema: StoreSchema, stored: Iterable[str]) -> StoreSchema:
    """`schema` with its pending multivectors that the engine already holds (`stored`) moved to its vectors.

    A process can die between creating a multivector and recording it; the engine is the truth.
    """
    found = [n for n in stored if n in schema.pending]
    if not found:
        return schema
    return plan_multi(schema, found)[0]


def plan_multi(existing: StoreSchema, names: Iterable[str]) -> tuple[StoreSchema, tuple[VectorSpec, ...]]:
    """Create pending multivectors: the first item with several rows of their modality has come.

    Returns:
        The schema after the change and the vectors to create (empty when all exist).

    Raises:
        UnknownVectorError: a name that is neither a multivector of the collection nor pending.
    """
    new: dict[str, VectorSpec] = {}
    for name in names:
        if name in existing.vectors:
            continue
        spec = existing.pending.get(name)
        if spec is None:
            raise UnknownVectorError("vector", name, [*existing.vectors, *existing.pending])
        new[name] = spec
    if not new:
        return existing, ()
    pending = {n: s for n, s in existing.pending.items() if n not in new}
    return replace(existing, vectors={**existing.vectors, **new}, pending=pending), tuple(new.values())


def _requested_vectors(encoders: Iterable[EncoderSpec], index_multivector: bool) -> dict[str, VectorSpec]:
    requested: dict[str, VectorSpec] = {}
    for spec in encoders:
        for vec in encoder_vectors(spec, index_multivector=index_multivector):
            if vec.name in requested and requested[vec.name].fingerprint != vec.fingerprint:
                raise ConfigError(
                    f"two encoders given for {pooled_name(spec.model, spec.modality)!r} with fingerprints "
                    f"{requested[vec.name].fingerprint} and {vec.fingerprint}; give one"
                )
            requested[vec.name] = vec
    return requested


def _new_vectors(requested: Mapping[str, VectorSpec], stored: Mapping[str, VectorSpec]) -> list[VectorSpec]:
    """The requested vectors the collection lacks; those it has must match (their `indexed` flag aside)."""
    new: list[VectorSpec] = []
    for name, vec in requested.items():
        old = stored.get(name)
        if old is None:
            new.append(vec)
            continue
        if old.fingerprint != vec.fingerprint:
            raise FingerprintMismatchError(name, str(old.fingerprint), str(vec.fingerprint))
        if (old.dim, old.distance, old.kind) != (vec.dim, vec.distance, vec.kind):
            raise SchemaMismatchError(
                f"vector {name!r} in this store is {old.kind} {old.dim}-d {old.distance}, but the encoder "
                f"given makes {vec.kind} {vec.dim}-d {vec.distance}"
            )
    return new


def _new_indexes(wanted: Mapping[str, FieldType], stored: Mapping[str, FieldType]) -> dict[str, FieldType]:
    """The wanted payload indexes the collection lacks; those it has must have the same type."""
    new: dict[str, FieldType] = {}
    for key, kind in wanted.items():
        if key not in stored:
            new[key] = kind
        elif stored[key] != kind:
            raise SchemaMismatchError(
                f"payload field {key!r} is indexed as {stored[key]} in this store, but {kind} was asked for"
            )
    return new
