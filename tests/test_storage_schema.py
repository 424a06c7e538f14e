"""Pure parts of the storage layer: point ids, vector naming, schema planning, records, pooling."""

from __future__ import annotations

import dataclasses
import uuid

import numpy as np
import pytest

from indexers.protocol import EncoderSpec
from mmsearch.errors import (
    ConfigError,
    FingerprintMismatchError,
    InvalidItemError,
    SchemaMismatchError,
    UnknownVectorError,
)
from mmsearch.storage import ITEM_NAMESPACE, StoreSchema, encoder_vectors, plan_schema, point_id
from mmsearch.storage.ids import ITEM_NAMESPACE_URL
from mmsearch.storage.schema import plan_cf, plan_multi
from mmsearch.storage.validate import pool
from tests.storage_support import CLIP_IMAGE, CLIP_TEXT, ENCODERS, MINILM


def test_point_ids_are_fixed_forever() -> None:
    assert uuid.uuid5(uuid.NAMESPACE_URL, ITEM_NAMESPACE_URL) == ITEM_NAMESPACE
    # Known answers: changing either would orphan every stored point.
    assert point_id("sku-1") == str(uuid.uuid5(ITEM_NAMESPACE, "sku-1"))
    assert point_id("sku-1") == "4a25288a-4faa-5299-a5aa-0d43958c3eb9"
    assert point_id("sku-2") != point_id("sku-1")


@pytest.mark.parametrize("bad", [7, None, "", "x" * 1025, b"sku"])
def test_bad_item_ids(bad: object) -> None:
    with pytest.raises(InvalidItemError, match="item id"):
        point_id(bad)  # type: ignore[arg-type]


def test_vector_naming_scheme() -> None:
    pooled, multi = encoder_vectors(CLIP_IMAGE)
    assert (pooled.name, pooled.kind, pooled.indexed) == ("clip.image", "pooled", True)
    assert (multi.name, multi.kind, multi.indexed, multi.multivector) == ("clip.image.multi", "multi", False, True)
    assert pooled.fingerprint == multi.fingerprint == CLIP_IMAGE.fingerprint
    assert encoder_vectors(CLIP_IMAGE, index_multivector=True)[1].indexed is True


@pytest.mark.parametrize(
    "field,value,needle",
    [
        ("model", "clip/b32", "'clip/b32'"),
        ("model", "", "''"),
        ("modality", "audio", "'audio'"),
        ("distance", "manhattan", "'manhattan'"),
        ("dim", 0, "0"),
        ("fingerprint", "", "fingerprint"),
    ],
)
def test_bad_encoder_specs(field: str, value: object, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        encoder_vectors(dataclasses.replace(CLIP_IMAGE, **{field: value}))
    assert needle in str(e.value)


def test_plan_for_a_new_collection() -> None:
    plan = plan_schema(None, ENCODERS, payload_indexes={"color": "keyword"})
    names = sorted(v.name for v in plan.new_vectors)
    assert names == ["clip.image", "clip.text"]  # no cf before a CF fit, no multivector before a second row
    assert sorted(plan.schema.pending) == ["clip.image.multi", "clip.text.multi"]
    dot = EncoderSpec("m", "bert", "text", 4, "dot", "f" * 64)  # MaxSim is no cosine there: rows kept for all
    assert sorted(v.name for v in plan_schema(None, [dot]).new_vectors) == ["m.text", "m.text.multi"]
    assert dict(plan.new_indexes) == {"item_id": "keyword", "color": "keyword"}
    assert [v.name for v in plan_schema(None, ENCODERS, cf_dim=32).new_vectors if v.kind == "cf"] == ["cf"]
    assert plan_schema(None, []).schema.get("cf").dim == 64  # a collection for CF alone gets it at once


def test_plan_cf_adds_the_cf_vector_once_at_the_models_length() -> None:
    base = plan_schema(None, ENCODERS).schema
    schema, new = plan_cf(base, 128)
    assert [v.name for v in new] == ["cf"] and schema.get("cf").dim == 128 and schema.get("cf").distance == "dot"
    assert plan_cf(schema, 128) == (schema, ())
    with pytest.raises(SchemaMismatchError, match="dim 128, not 64"):
        plan_cf(schema, 64)
    with pytest.raises(ConfigError, match="positive integer"):
        plan_cf(base, 0)


def test_plan_adds_only_what_is_missing() -> None:
    first = plan_schema(None, [CLIP_IMAGE], cf_dim=16).schema
    plan = plan_schema(first, [CLIP_IMAGE, MINILM], payload_indexes={"price": "float"})
    assert sorted(v.name for v in plan.new_vectors) == ["minilm.text"]
    assert sorted(plan.schema.pending) == ["clip.image.multi", "minilm.text.multi"]
    assert dict(plan.new_indexes) == {"price": "float"}
    assert plan.schema.get("cf").dim == 16
    assert plan.schema.get("clip.image") is first.get("clip.image")
    nothing = plan_schema(plan.schema, [MINILM])
    assert nothing.new_vectors == () and dict(nothing.new_indexes) == {}


def test_plan_keeps_stored_index_flags() -> None:
    first = plan_schema(None, [CLIP_IMAGE], index_multivector=True).schema
    again = plan_schema(first, [CLIP_IMAGE], index_multivector=False)
    assert again.new_vectors == () and again.schema.pending["clip.image.multi"].indexed is True
    created, new = plan_multi(again.schema, ["clip.image.multi"])
    assert [v.name for v in new] == ["clip.image.multi"] and created.get("clip.image.multi").indexed is True
    assert not created.pending and plan_multi(created, ["clip.image.multi"]) == (created, ())
    with pytest.raises(UnknownVectorError, match="clip.text.multi"):
        plan_multi(created, ["clip.text.multi"])


def test_plan_refuses_conflicts() -> None:
    first = plan_schema(None, ENCODERS, cf_dim=16, payload_indexes={"color": "keyword"}).schema
    with pytest.raises(FingerprintMismatchError) as e:
        plan_schema(first, [dataclasses.replace(CLIP_TEXT, fingerprint="9" * 64)])
    assert e.value.stored == CLIP_TEXT.fingerprint and e.value.given == "9" * 64 and e.value.vector == "clip.text"
    with pytest.raises(SchemaMismatchError, match="cf_dim=32"):
        plan_schema(first, [], cf_dim=32)
    with pytest.raises(SchemaMismatchError, match="'color' is indexed as keyword"):
        plan_schema(first, [], payload_indexes={"color": "integer"})
    with pytest.raises(ConfigError, match="two encoders"):
        plan_schema(None, [CLIP_IMAGE, dataclasses.replace(CLIP_IMAGE, fingerprint="1" * 64)])


def test_record_round_trip_and_damage() -> None:
    schema = plan_schema(None, [*ENCODERS, MINILM], payload_indexes={"color": "keyword"}).schema
    record = schema.to_record()
    assert record["pending"]["clip.text.multi"]["fingerprint"] == CLIP_TEXT.fingerprint
    assert StoreSchema.from_record({k: v for k, v in record.items() if k != "pending"}).pending == {}  # older records
    assert StoreSchema.from_record(record) == schema
    with pytest.raises(SchemaMismatchError, match="format 99"):
        StoreSchema.from_record({**record, "format": 99})
    with pytest.raises(SchemaMismatchError, match="damaged"):
        StoreSchema.from_record({"format": 1, "vectors": {"x": {"bogus": 1}}})


def test_pool_is_the_renormalised_mean() -> None:
    rows = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    np.testing.assert_allclose(pool(rows), [2**-0.5, 2**-0.5, 0], atol=1e-7)
    np.testing.assert_allclose(pool(np.array([[3.0, 4.0]], np.float32)), [0.6, 0.8], atol=1e-7)
    assert pool(np.array([[1, 0], [-1, 0]], np.float32)) is None


def test_encoder_spec_equality_is_what_the_record_keeps() -> None:
    spec = EncoderSpec("m", "bert", "text", 4, "dot", "f" * 64)
    schema = plan_schema(None, [spec]).schema
    v = schema.get("m.text")
    got = (v.model, v.family, v.modality, v.dim, v.distance, v.fingerprint)
    assert got == ("m", "bert", "text", 4, "dot", "f" * 64)
