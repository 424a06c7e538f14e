"""Signals (`mmsearch.query.signals`): names and aliases, weight parsing, query vectors and user profiles."""

from __future__ import annotations

import numpy as np
import pytest

from indexers.protocol import EncoderSpec
from mmsearch.errors import ConfigError, UnknownNameError
from mmsearch.query.signals import (
    collection_signals,
    content_queries,
    default_weights,
    parse_weights,
    profile_queries,
    resolve_weights,
)
from mmsearch.storage.schema import plan_schema

CLIP_I = EncoderSpec("clip-b32", "clip", "image", 2, "cosine", "a" * 64)
CLIP_T = EncoderSpec("clip-b32", "clip", "text", 2, "cosine", "b" * 64)
BERT = EncoderSpec("minilm", "bert", "text", 3, "cosine", "c" * 64)
RESNET = EncoderSpec("resnet50", "resnet", "image", 2, "cosine", "d" * 64)
SCHEMA = plan_schema(None, [CLIP_I, CLIP_T, BERT, RESNET], cf_dim=4).schema


def _by_name():
    return {s.name: s for s in collection_signals(SCHEMA)}


def test_signal_names_kinds_and_aliases():
    sigs = _by_name()
    assert list(sigs) == [
        "clip-b32.image",
        "clip-b32.text",
        "minilm.text",
        "resnet50.image",
        "profile:clip-b32.image",
        "profile:clip-b32.text",
        "profile:minilm.text",
        "profile:resnet50.image",
        "cf",
    ]
    assert "clip_image" in sigs["clip-b32.image"].aliases and "clip-b32_image" in sigs["clip-b32.image"].aliases
    assert {"bert", "minilm", "bert_text"} <= set(sigs["minilm.text"].aliases)
    assert "resnet" in sigs["resnet50.image"].aliases
    assert "clip-b32" not in sigs["clip-b32.image"].aliases  # the model has two vectors: ambiguous
    assert "profile:clip_image" in sigs["profile:clip-b32.image"].aliases
    assert sigs["cf"].distance == "dot" and sigs["clip-b32.text"].distance == "cosine"
    assert "cf" not in {s.name for s in collection_signals(SCHEMA, cf=False)}


def test_weights_parse_and_resolve_aliases():
    parsed = parse_weights(["clip_image=0.5", "bert=0.3", "cf=0.2"])
    assert parsed == {"clip_image": 0.5, "bert": 0.3, "cf": 0.2}
    got = resolve_weights(parsed, collection_signals(SCHEMA))
    assert got == {"clip-b32.image": 0.5, "minilm.text": 0.3, "cf": 0.2}


@pytest.mark.parametrize(
    ("options", "error", "needle"),
    [
        (["clip_image"], ConfigError, "name=value"),
        (["=1"], ConfigError, "no signal name"),
        (["bert=high"], ConfigError, "'high' is not a number"),
        (["bert=-0.1"], ConfigError, "negative"),
        (["bert=nan"], ConfigError, "finite"),
        (["bert=1", "bert=2"], ConfigError, "given twice"),
    ],
)
def test_bad_weight_options(options, error, needle):
    with pytest.raises(error) as info:
        parse_weights(options)
    assert needle in str(info.value)


def test_resolve_refuses_unknown_duplicate_and_all_zero():
    sigs = collection_signals(SCHEMA)
    with pytest.raises(UnknownNameError) as info:
        resolve_weights({"vgg": 1.0}, sigs)
    assert "'vgg'" in str(info.value) and "clip-b32.image" in str(info.value) and "cf" in str(info.value)
    with pytest.raises(ConfigError, match="both name signal 'minilm.text'"):
        resolve_weights({"bert": 1.0, "minilm.text": 2.0}, sigs)
    with pytest.raises(ConfigError, match="all weights are 0"):
        resolve_weights({"bert": 0.0, "cf": 0}, sigs)
    with pytest.raises(ConfigError, match="negative"):
        resolve_weights({"bert": -1.0}, sigs)


def test_default_weights_share_equally_per_kind():
    sigs = [
        s
        for s in collection_signals(SCHEMA)
        if s.name in ("clip-b32.image", "minilm.text", "cf", "profile:minilm.text")
    ]
    w = default_weights(sigs)
    assert w == pytest.approx(
        {"clip-b32.image": 1 / 6, "minilm.text": 1 / 6, "profile:minilm.text": 1 / 3, "cf": 1 / 3}
    )


def test_content_queries_route_each_embedding_to_its_own_model():
    text = {"clip-b32": np.array([1.0, 0.0]), "minilm": np.array([0.0, 3.0, 4.0])}
    image = {"clip-b32": np.array([0.0, 1.0]), "resnet50": np.array([2.0, 0.0])}
    got = content_queries(SCHEMA, text=text, image=image)
    # CLIP: text and image share the space, so both reach both vectors, averaged.
    np.testing.assert_allclose(got["clip-b32.image"][0], [2**-0.5, 2**-0.5], rtol=1e-6)
    assert got["clip-b32.image"][1] == ("text", "image") and got["clip-b32.text"][1] == ("text", "image")
    np.testing.assert_allclose(got["minilm.text"][0], [0, 0.6, 0.8], rtol=1e-6)
    assert got["minilm.text"][1] == ("text",) and got["resnet50.image"][1] == ("image",)
    only_text = content_queries(SCHEMA, text={"minilm": np.array([0.0, 0.0, 1.0])})
    assert list(only_text) == ["minilm.text"]  # BERT never reaches image vectors


def test_item_query_falls_back_to_the_other_clip_modality():
    item = {"clip-b32.text": np.array([0.0, 1.0]), "minilm.text": np.array([1.0, 0.0, 0.0])}
    got = content_queries(SCHEMA, item=item)
    assert set(got) == {"clip-b32.image", "clip-b32.text", "minilm.text"}  # no resnet vector: no resnet signal
    np.testing.assert_allclose(got["clip-b32.image"][0], [0.0, 1.0])


def test_profile_techniques_of_the_study():
    rows = {
        "clip-b32.image": np.array([[1.0, 0.0], [1.0, 0.0]]),
        "clip-b32.text": np.array([[0.0, 1.0]]),
        "minilm.text": np.array([[0.0, 0.0, 2.0]]),
    }
    same = profile_queries(SCHEMA, rows, "same")  # techniques 1 and 2: each modality's own mean
    np.testing.assert_allclose(same["clip-b32.image"], [1, 0])
    np.testing.assert_allclose(same["clip-b32.text"], [0, 1])
    crossed = profile_queries(SCHEMA, rows, "crossed")  # techniques 3 and 4: the other modality's mean
    np.testing.assert_allclose(crossed["clip-b32.image"], [0, 1])
    np.testing.assert_allclose(crossed["clip-b32.text"], [1, 0])
    mixed = profile_queries(SCHEMA, rows, "mixed")  # technique 5: both, against both
    np.testing.assert_allclose(mixed["clip-b32.image"], [2**-0.5, 2**-0.5], rtol=1e-6)
    np.testing.assert_allclose(mixed["clip-b32.text"], mixed["clip-b32.image"])
    for technique in ("same", "crossed", "mixed"):  # one-modality models always use their own mean
        np.testing.assert_allclose(profile_queries(SCHEMA, rows, technique)["minilm.text"], [0, 0, 1])
    assert "resnet50.image" not in mixed
    with pytest.raises(UnknownNameError, match="'average'"):
        profile_queries(SCHEMA, rows, "average")  # type: ignore[arg-type]
