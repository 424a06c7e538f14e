"""The query engine (`mmsearch.query.engine.Searcher`) on Edge and local mode.

The ranking computed inside Qdrant is checked against a numpy reference built here from the
vectors written (exact scores of every item on every signal, candidate union, `mmsearch.query.fusion`);
CF is checked with a known-answer checkerboard; cold start and bad inputs have their own tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexers.runtime import load_model
from mmsearch.cf import CFModel, cf_config
from mmsearch.cf.collection import fit_collection_cf
from mmsearch.cf.interactions import Interactions
from mmsearch.errors import (
    ConfigError,
    ImageDecodeError,
    InputError,
    InvalidFilterError,
    ItemNotFoundError,
    NotFoundError,
    TextInputError,
    UnknownNameError,
)
from mmsearch.query import fusion as F
from mmsearch.query.engine import Searcher, SearchSettings
from mmsearch.storage import Item, Range, open_store
from mmsearch.storage.filters import Filter

N = 40
K = 8  # candidates per signal: a fifth of the catalogue, so legs disagree on their top-k
CF_DIM = 4
USERS = ("u0", "u1", "u2")


@pytest.fixture(scope="module")
def models(trained_clip_dir: Path, minilm_dir: Path):
    return load_model(trained_clip_dir, threads=1), load_model(minilm_dir, threads=1)


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class World:
    """A small catalogue with known vectors, in one store, and a hand-made CF model."""

    def __init__(self, models, kind: str, tmp_path: Path, seed: int = 0) -> None:
        clip, minilm = models
        self.clip, self.minilm = clip, minilm
        self.img, self.txt, self.bert = (f"{clip.name}.image", f"{clip.name}.text", f"{minilm.name}.text")
        rng = np.random.default_rng(seed)
        self.vectors: dict[str, dict[str, np.ndarray]] = {}
        items = []
        for i in range(N):
            v = {self.txt: _unit(rng, 1, 32)[0], self.bert: _unit(rng, 1, 384)[0]}
            if i % 5:  # every fifth item has no photo; odd ones two (a MaxSim multivector), even ones one
                v[self.img] = _unit(rng, 1 + i % 2, 32)
            if i % 7:  # every seventh item has no CF factors
                v["cf"] = rng.standard_normal(CF_DIM).astype(np.float32)
            self.vectors[f"i{i}"] = v
            items.append(Item(f"i{i}", v, {"title": f"item {i}", "price": float(i)}))
        settings = {"collection": "w", "cf_dim": CF_DIM, "optimize_after": None}
        settings.update({"backend": "edge", "path": tmp_path / "edge"} if kind == "edge" else {"backend": "memory"})
        self.store = open_store(settings, encoders=[clip.image.spec, clip.text.spec, minilm.text.spec])
        self.store.upsert(items)
        cf_items = [f"i{i}" for i in range(N) if i % 7]
        seen = [[cf_items.index(f"i{j}") for j in items_of] for items_of in ([1, 2, 3, 4], [8], [9, 10, 11, 12, 13])]
        # u1 has a single interaction (i8): cold with min_interactions=2
        self.cf = CFModel(
            config=cf_config("als", factors=CF_DIM),
            user_ids=USERS,
            item_ids=tuple(cf_items),
            user_factors=rng.standard_normal((3, CF_DIM)),
            item_factors=np.stack([self.vectors[i]["cf"] for i in cf_items]),
            seen_indptr=np.cumsum([0] + [len(s) for s in seen]),
            seen_indices=[j for s in seen for j in s],
        )

    def searcher(self, **settings) -> Searcher:
        return Searcher(
            self.store, [self.clip, self.minilm], self.cf, SearchSettings(candidates=K, min_interactions=2, **settings)
        )

    def true_scores(self, vector: str, query: np.ndarray, *, maxsim: bool = False) -> np.ndarray:
        out = np.full(N, np.nan)
        for i in range(N):
            v = self.vectors[f"i{i}"].get(vector)
            if v is None:
                continue
            if vector == "cf":
                out[i] = float(np.dot(v, query))
                continue
            rows = np.atleast_2d(v).astype(np.float64)
            rows = rows / np.linalg.norm(rows, axis=1, keepdims=True)
            q = query / np.linalg.norm(query)
            if maxsim:
                out[i] = float((rows @ q).max())
            else:
                pooled = rows.mean(axis=0)
                out[i] = float(pooled @ q / np.linalg.norm(pooled))
        return out

    def reference(
        self,
        legs: list[tuple[str, np.ndarray]],
        weights,
        method: str = "wsum",
        *,
        limit: int = 10,
        allowed=None,
        maxsim: bool = False,
        k: int = 60,
    ):
        """Candidates = union of each leg's exact top-max(K, limit); then fusion.py on their true scores."""
        full = np.column_stack([self.true_scores(v, q, maxsim=maxsim and v != "cf") for v, q in legs])
        if allowed is not None:
            full[~allowed] = np.nan
        pooled = np.column_stack([self.true_scores(v, q) for v, q in legs])
        if allowed is not None:
            pooled[~allowed] = np.nan
        pos = F.ranks(pooled)
        cand = np.flatnonzero(((pos >= 0) & (pos < max(K, limit))).any(axis=1))
        m = full[cand]
        w = np.asarray(weights, dtype=np.float64) / np.sum(weights)
        if method == "rrf":
            fused = F.weighted_rrf(m, w * len(legs), k=k)
        else:
            fused = F.weighted_sum(m, w, normalization="dbsf" if method == "dbsf" else "minmax")
        order = fused.ranking(limit)
        return [f"i{cand[o]}" for o in order], fused.scores[order], cand


@pytest.fixture(scope="module", params=["edge", "memory"])
def world(request, models, tmp_path_factory):
    """Shared by the read-only tests of this module, one per backend."""
    w = World(models, request.param, tmp_path_factory.mktemp(request.param))
    yield w
    w.store.close()


@pytest.fixture(params=["edge", "memory"])
def own_world(request, models, tmp_path):
    """A fresh world for a test that writes to it."""
    w = World(models, request.param, tmp_path)
    yield w
    w.store.close()


TEXT = "a red bicycle leaning on a wall"


@pytest.mark.parametrize("method", ["wsum", "dbsf", "rrf"])
def test_text_and_user_query_equals_numpy_reference(world, method):
    searcher = world.searcher()
    weights = {"clip_image": 0.4, "clip.text": 0.2, "bert": 0.2, "cf": 0.2}
    got = searcher.search(text=TEXT, user="u0", weights=weights, fusion=method, limit=10, explain=True)
    q_clip = world.clip.text.embed([TEXT])[0]
    q_bert = world.minilm.text.embed([TEXT])[0]
    legs = [(world.bert, q_bert), (world.img, q_clip), (world.txt, q_clip), ("cf", world.cf.user_vector("u0"))]
    ids, scores, _ = world.reference(legs, [0.2, 0.4, 0.2, 0.2], method)
    assert got.ids == ids
    np.testing.assert_allclose([r.score for r in got], scores, rtol=1e-4, atol=1e-6)
    # Items without a photo are among the candidates, so native RRF cannot renormalise: numpy runs it.
    assert got.engine == ("numpy" if method == "rrf" else "qdrant")
    assert [s.name for s in got.signals] == [*sorted((world.bert, world.img, world.txt)), "cf"]  # content by name
    assert sum(s.weight for s in got.signals) == pytest.approx(1.0)
    for r in got:  # the breakdown adds up to the score computed in Qdrant
        assert sum(s.contribution for s in r.signals.values()) == pytest.approx(r.score, rel=1e-4, abs=1e-6)


def test_rrf_runs_in_qdrant_when_no_candidate_lacks_a_signal(world):
    got = world.searcher().search(text=TEXT, weights={"clip.text": 2, "bert": 1}, fusion="rrf", limit=6)
    q_clip, q_bert = world.clip.text.embed([TEXT])[0], world.minilm.text.embed([TEXT])[0]
    ids, scores, _ = world.reference([(world.bert, q_bert), (world.txt, q_clip)], [1, 2], "rrf", limit=6)
    assert got.engine == "qdrant"
    assert got.ids == ids
    np.testing.assert_allclose([r.score for r in got], scores, rtol=1e-5)


def test_candidates_get_their_true_score_on_every_signal(world):
    """The prefetch trap: a hit outside one signal's top-k still gets that signal's real score."""
    got = world.searcher().search(text=TEXT, weights={"clip.text": 1, "bert": 1}, limit=N, explain=True)
    q_bert = world.minilm.text.embed([TEXT])[0]
    bert = world.true_scores(world.bert, q_bert)
    top_bert = {f"i{i}" for i in np.argsort(-bert)[:K]}
    outside = [r for r in got if r.id not in top_bert]
    assert outside, "some hits must come from the other signal only"
    for r in outside:
        raw = r.signals[world.bert].raw
        assert raw == pytest.approx(bert[int(r.id[1:])], abs=1e-5)
        assert r.signals[world.bert].normalized is not None


def test_item_without_a_photo_is_renormalised_not_zeroed(world):
    got = world.searcher().search(text=TEXT, weights={"clip_image": 0.5, "clip.text": 0.5}, limit=N, explain=True)
    no_photo = [r for r in got if int(r.id[1:]) % 5 == 0]
    assert no_photo
    for r in no_photo:
        img, txt = r.signals[world.img], r.signals[world.txt]
        assert img.raw is None and img.weight == 0.0 and txt.weight == pytest.approx(1.0)
        assert r.score == pytest.approx(txt.normalized, abs=1e-5)


@pytest.mark.parametrize("fusion", ["wsum", "rrf", "dbsf"])
def test_maxsim_scores_the_best_photo(world, fusion: str):
    # Items with one photo hold no multivector rows: the store reads their pooled vector.
    weights = {"clip_image": 1} if fusion == "wsum" else {"clip_image": 0.7, "clip_text": 0.3}
    got = world.searcher(maxsim=True).search(text=TEXT, weights=weights, fusion=fusion, limit=5, explain=True)
    q = world.clip.text.embed([TEXT])[0]
    legs = [(world.img, q)] if fusion == "wsum" else [(world.img, q), (world.txt, q)]
    ids, _, _ = world.reference(legs, list(weights.values()), fusion, limit=5, maxsim=True)
    assert got.signals[0].vector == world.img + ".multi"
    assert got.ids == ids
    best = world.true_scores(world.img, q, maxsim=True)
    assert {len(world.vectors[i].get(world.img, ())) for i in got.ids} >= {1}  # one-row items are among them
    for r in got:
        assert r.signals[world.img].raw == pytest.approx(best[int(r.id[1:])], abs=1e-5)


def test_filter_and_exclude_seen(world):
    cheap = Filter(must=(Range("price", lt=20),))
    got = world.searcher().search(text=TEXT, user="u0", filter=cheap, exclude_seen=True, limit=20)
    assert got.ids and all(r.payload["price"] < 20 for r in got)
    assert not set(got.ids) & {"i1", "i2", "i3", "i4"}  # u0's items
    q_clip, q_bert = world.clip.text.embed([TEXT])[0], world.minilm.text.embed([TEXT])[0]
    allowed = np.array([i < 20 and i not in (1, 2, 3, 4) for i in range(N)])
    weights = {world.bert: 1, world.img: 1, world.txt: 1}
    got = world.searcher().search(text=TEXT, user="u0", weights=weights, filter=cheap, exclude_seen=True)
    ids, _, _ = world.reference(
        [(world.bert, q_bert), (world.img, q_clip), (world.txt, q_clip)], [1, 1, 1], allowed=allowed
    )
    assert got.ids == ids


def test_more_like_this_item(world):
    got = world.searcher().search(item="i6", weights={"clip.text": 1, "cf": 1}, limit=5, explain=True)
    assert "i6" not in got.ids
    assert {s.name: s.inputs for s in got.signals} == {world.txt: ("item",), "cf": ("item",)}
    v = world.vectors["i6"]
    allowed = np.arange(N) != 6
    ids, _, _ = world.reference([(world.txt, v[world.txt]), ("cf", v["cf"])], [1, 1], limit=5, allowed=allowed)
    assert got.ids == ids


def test_profile_signals_follow_the_study_techniques(world):
    got = world.searcher(profile="same").search(user="u0", weights={"profile:clip_image": 1}, limit=5)
    seen = [world.vectors[f"i{i}"][world.img] for i in (1, 2, 3, 4)]
    pooled = [np.mean(r, axis=0) / np.linalg.norm(np.mean(r, axis=0)) for r in seen]
    profile = np.mean(pooled, axis=0)
    ids, _, _ = world.reference([(world.img, profile)], [1], limit=5)
    assert got.ids == ids
    assert got.signals[0].inputs == ("user",)


def test_known_answer_checkerboard_cf_through_the_engine(models, tmp_path):
    """User i interacted with every item of its parity but item i: CF must recommend item i first."""
    clip = models[0]
    n = 10
    rng = np.random.default_rng(1)
    store = open_store(
        {"path": tmp_path / "cb", "collection": "cb", "cf_dim": 4, "optimize_after": None}, encoders=[clip.text.spec]
    )
    with store:
        store.upsert([Item(f"item{j}", {f"{clip.name}.text": _unit(rng, 1, 32)}) for j in range(n)])
        users = [f"user{i}" for i in range(n) for j in range(n) if j % 2 == i % 2 and j != i]
        items = [f"item{j}" for i in range(n) for j in range(n) if j % 2 == i % 2 and j != i]
        log = Interactions.from_arrays(users, items)
        model, summary = fit_collection_cf(
            store, log, cf_config("als", factors=4, iterations=30, regularization=0.01), tmp_path / "cf"
        )
        assert summary.items_written == n and summary.items_cleared == 0
        searcher = Searcher(store, [clip], model, SearchSettings(min_interactions=1))
        for i in range(n):
            got = searcher.recommend(f"user{i}", weights={"cf": 1}, limit=3)
            assert got.ids[0] == f"item{i}", (i, got.ids)
            assert f"item{(i + 2) % n}" not in got.ids  # seen items are excluded by default


def test_cold_start_falls_back_to_content_and_cold_items_are_reachable(own_world):
    world = own_world
    searcher = world.searcher()
    # u1 has one interaction (< min_interactions=2): no CF signal, their profile carries it.
    got = searcher.recommend("u1", limit=5)
    assert {s.name for s in got.signals} == {f"profile:{n}" for n in (world.bert, world.img, world.txt)}
    assert any("cold start" in n for n in got.notes)
    assert "i8" not in got.ids
    got = searcher.recommend("u1", weights={"cf": 1}, limit=3)  # cf is dropped: fall back to the profile
    assert "cf" not in {s.name for s in got.signals} and any("left out" in n for n in got.notes)
    # A new item without CF factors, with the content of the user's only item: the profile finds it first.
    twin = {k: v for k, v in world.vectors["i8"].items() if k != "cf"}
    world.store.upsert([Item("twin", twin, {"title": "twin", "price": 1.0})])
    got = searcher.recommend("u1", limit=3, explain=True)
    assert got.ids[0] == "twin"
    # A warm user's hybrid query reaches items without CF factors through content, renormalised.
    got = searcher.search(text=TEXT, user="u0", limit=N, explain=True)
    cold_items = [r for r in got if "cf" not in world.vectors.get(r.id, {"cf": 1})]
    assert cold_items and all(r.signals["cf"].raw is None for r in cold_items)


def test_unknown_user_with_other_input_is_a_note(world):
    got = world.searcher().search(text=TEXT, user="stranger", limit=3)
    assert len(got) == 3 and any("stranger" in n for n in got.notes)
    assert {s.name for s in got.signals} == {world.bert, world.img, world.txt}


@pytest.fixture
def searcher(world):
    return world.searcher()


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({}, InputError, "empty query"),
        ({"user": "nobody"}, NotFoundError, "'nobody'"),
        ({"item": "nothing"}, ItemNotFoundError, "'nothing'"),
        ({"text": "   "}, TextInputError, "empty"),
        ({"text": TEXT, "weights": {"colour": 1}}, UnknownNameError, "'colour'"),
        ({"text": TEXT, "weights": {"clip_image": -1}}, ConfigError, "negative"),
        ({"text": TEXT, "weights": {"clip_image": 0, "bert": 0}}, ConfigError, "all weights are 0"),
        ({"text": TEXT, "weights": {"cf": 1}}, ConfigError, "'cf' gets no input"),
        ({"text": TEXT, "weights": {"profile:bert": 1}}, ConfigError, "need a user"),
        ({"text": TEXT, "fusion": "max"}, UnknownNameError, "'max'"),
        ({"text": TEXT, "normalization": "none", "user": "u0"}, ConfigError, "unbounded"),
        ({"text": TEXT, "limit": 0}, InputError, "limit 0"),
        ({"text": TEXT, "filter": {"price": 3}}, InvalidFilterError, "unsupported filter part(s) price"),
        ({"text": TEXT, "filter": "price<3"}, InvalidFilterError, "is a str"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(searcher, kwargs, error, needle):
    with pytest.raises(error) as info:
        searcher.search(**kwargs)
    assert needle in str(info.value)


def test_unreadable_image_names_the_file(searcher, tmp_path):
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(ImageDecodeError, match="photo.jpg"):
        searcher.search(image=str(bad))
    with pytest.raises(ImageDecodeError, match="missing.png"):
        searcher.search(image=str(tmp_path / "missing.png"))


def test_image_query_reaches_clip_image_and_text(world, tmp_path):
    from PIL import Image

    path = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (200, 20, 20)).save(path)
    got = world.searcher().search(image=str(path), limit=4, explain=True)
    assert {s.name: s.inputs for s in got.signals} == {world.img: ("image",), world.txt: ("image",)}
    q = world.clip.image.embed([str(path)])[0]
    ids, _, _ = world.reference([(world.img, q), (world.txt, q)], [1, 1], limit=4)
    assert got.ids == ids


def test_searcher_checks_models_and_cf_against_the_store(world):
    from indexers.protocol import EncoderSpec
    from mmsearch.errors import FingerprintMismatchError, SchemaMismatchError

    stranger = EncoderSpec(world.clip.name, "clip", "text", 32, "cosine", "f" * 64)
    with open_store({"backend": "memory", "collection": "other", "cf_dim": CF_DIM}, encoders=[stranger]) as other:
        with pytest.raises(FingerprintMismatchError, match=world.txt):
            Searcher(other, [world.clip])
        # A model with no vectors in the collection is an error naming both sides, never a silent drop.
        with pytest.raises(ConfigError, match=r"model 'minilm' has no vectors in collection 'other'") as e:
            Searcher(other, [world.minilm])
        assert "minilm.text" in str(e.value) and f"vectors are {world.txt}" in str(e.value)
    bad_cf = CFModel(
        config=cf_config("als", factors=3),
        user_ids=("u",),
        item_ids=("i1",),
        user_factors=np.ones((1, 3)),
        item_factors=np.ones((1, 3)),
        seen_indptr=[0, 1],
        seen_indices=[0],
    )
    with pytest.raises(SchemaMismatchError, match="3 values"):
        Searcher(world.store, [], bad_cf)
    with pytest.raises(ConfigError, match="no CF model"):
        Searcher(world.store, [world.clip]).search(text=TEXT, user="u0")


@pytest.mark.parametrize("form", ["settings", "mapping"])
def test_open_takes_the_store_settings_and_the_model_folders(models, trained_clip_dir, minilm_dir, tmp_path, form):
    from mmsearch.cf.collection import cf_folder
    from mmsearch.cf.persist import save_model

    world = World(models, "edge", tmp_path)
    save_model(world.cf, cf_folder(world.store))  # where `cf fit` keeps it
    expected = world.searcher().search(text=TEXT, user="u0", limit=5).ids
    settings = world.store.settings
    world.store.close()
    store = settings if form == "settings" else {"path": str(settings.path), "collection": settings.collection}
    engine = SearchSettings(candidates=K, min_interactions=2)
    with Searcher.open(store, models=[trained_clip_dir, minilm_dir], settings=engine, threads=1) as searcher:
        assert set(searcher.models) == {world.clip.name, world.minilm.name}
        assert searcher.cf_model is not None and searcher.cf_model.user_ids == USERS
        assert searcher.search(text=TEXT, user="u0", limit=5).ids == expected
    with open_store(settings):  # closed on exit: the Edge folder lock is free again
        pass


def test_open_names_the_missing_collection_and_releases_the_store_on_failure(models, tmp_path):
    from mmsearch.errors import ModelError, StoreNotFoundError

    with pytest.raises(StoreNotFoundError, match="mmsearch"):
        Searcher.open(tmp_path / "empty")  # a folder: an Edge store, collection `mmsearch`
    world = World(models, "edge", tmp_path)
    settings = world.store.settings
    world.store.close()
    with pytest.raises(ModelError):
        Searcher.open(settings, models=[tmp_path / "no-such-model"])
    with open_store(settings):  # the failed open closed the store it had opened
        pass


def test_query_path_never_imports_torch():
    import subprocess
    import sys

    code = (
        "import sys, mmsearch.query.engine, mmsearch.cf.collection, mmsearch.query.report, mmsearch.cli.query_cmd, "
        "mmsearch.cli.cf_cmd; print(','.join(m for m in ('torch', 'torchvision', 'open_clip', 'onnx', "
        "'sentence_transformers', 'implicit') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"query path imported: {out.stdout.strip()}"


def test_only_the_weighted_models_embed_the_query(world, monkeypatch):
    calls = []
    real = world.clip.text.embed
    monkeypatch.setattr(world.clip.text, "embed", lambda batch: calls.append(list(batch)) or real(batch))
    got = world.searcher().search(text=TEXT, weights={"bert": 1}, limit=3)
    assert calls == [] and [s.name for s in got.signals] == [world.bert]  # CLIP's text tower never ran
    world.searcher().search(text=TEXT, weights={"clip_image": 1}, limit=3)
    assert calls == [[TEXT]]


def test_an_input_that_no_weighted_signal_uses_is_a_note(world):
    got = world.searcher().search(text=TEXT, user="u0", weights={"cf": 1}, limit=3)
    assert [s.name for s in got.signals] == ["cf"]
    assert "the query's text reaches none of the weighted signals, so it is not used" in got.notes


def test_when_no_weighted_signal_is_left_the_fallback_still_embeds_the_text(world):
    got = world.searcher().search(text=TEXT, user="stranger", weights={"cf": 1}, limit=3)
    assert len(got) == 3 and {world.bert, world.txt} <= {s.name for s in got.signals}
    assert not any("not used" in n for n in got.notes) and any("no weighted signal is left" in n for n in got.notes)


def test_a_query_embeds_only_with_the_towers_its_weights_read(tiny_clip_dir, minilm_dir, tmp_path):
    fresh = load_model(tiny_clip_dir, threads=1), load_model(minilm_dir, threads=1)
    w = World(fresh, "memory", tmp_path)
    try:
        got = w.searcher().search(text=TEXT, weights={"bert": 1}, limit=5)
        assert [(e.vector, e.input) for e in got.encoders] == [(w.bert, "text")]
        assert got.encoders[0].precision == "fp32" and "no int8 graph" in got.encoders[0].reason
        assert w.clip.text.session.loaded == () and w.clip.image.session.loaded == ()  # CLIP never loaded
        ids, _, _ = w.reference([(w.bert, w.minilm.text.embed([TEXT])[0])], [1.0], "wsum")
        assert got.ids == ids[:5]
        # no weights: the trained models' towers (the tiny CLIP has random weights, left out by default)
        default = w.searcher().search(text=TEXT, limit=5)
        assert [e.vector for e in default.encoders] == [w.bert] and w.clip.text.session.loaded == ()
        weighted = w.searcher().search(text=TEXT, weights={w.txt: 1}, limit=5)
        assert [e.vector for e in weighted.encoders] == [w.txt]
        assert w.clip.text.session.loaded and w.clip.image.session.loaded == ()
        assert weighted.to_dict()["encoders"][0]["precision"] == "fp32"
    finally:
        w.store.close()
