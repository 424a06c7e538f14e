"""The query engine: text, image, item and user inputs fused into one ranking, inside Qdrant.

A search runs in three store calls:

1. Candidates: one nearest-neighbour search per signal (a "leg": one stored vector and one query
   vector), `candidates` deep, with the filter; the union of their hits is the candidate set.
2. Normalisation constants: each leg's lowest and highest exact score over the candidates
   (`Store.score_range`, for the default min-max weighted sum), or every candidate's exact score
   on every leg (`Store.score_items`, for DBSF, RRF and MaxSim legs).
3. Fusion inside Qdrant: one query whose prefetches are the legs restricted to the candidates
   (an id filter, a limit of their number, exact search), scored by a formula (`wsum`, `dbsf`) or
   by Qdrant's weighted RRF (`rrf`). Every candidate is thus scored on every leg with its true
   score, including the legs whose own top-k it was not in: not read as a 0. Only an item that
   lacks the leg's vector has no score there. With `explain`, the hits' scores on each leg come
   back too, and the breakdown is `mmsearch.query.fusion` (the numpy reference) on them.

Choices, and the traps they avoid:

- Normalisation before mixing. Each leg's scores are normalised over the candidate set (min-max
  by default, or DBSF's mean +- 3 standard deviations), with constants computed from step 2 and
  written into the formula. This is what lets an unbounded CF dot product be mixed with cosines;
  `normalization="none"` is refused when a leg is not a cosine.
- Missing modality. The formula multiplies each term by `HasVector(<leg's vector>)` and divides by
  the weights of the vectors the item has, so an item without a photo (or without CF factors) is
  ranked on the signals it has instead of being punished with a 0 for the one it lacks. For RRF,
  whose native form cannot do that, the fusion runs in numpy (`mmsearch.query.fusion`) when a candidate
  lacks a leg, and in Qdrant otherwise; both give the same scores when nothing is missing.
- Explicit defaults. The formula also names a default for every leg's score (the value that
  normalises to 0), so no engine reads an absent score as an implicit 0.
- Cold start. A user unknown to the CF model, or with fewer than `min_interactions` training
  interactions, gets no `cf` leg; their content profile (from the items they interacted with)
  and any query input carry the search. An item without interactions has no `cf` vector and is
  found through content signals, its weights renormalised over them.

Example:
    store = {"path": "data", "collection": "products"}  # mmsearch.storage.StoreSettings fields
    with Searcher.open(store, models=["models/clip", "models/minilm"]) as searcher:
        hits = searcher.search(text="red running shoes", user="u42", weights={"clip_image": 0.6, "cf": 0.4},
                               filter=Filter(must=(Range("price", lte=100),)), explain=True)
        for hit in hits:
            print(hit.id, hit.score, {k: s.raw for k, s in hit.signals.items()})
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from indexers.images import ImageSource, load_image
from indexers.manifest import TowerPrecision
from indexers.onnx_session import Device
from indexers.protocol import Encoder
from indexers.runtime import Model
from indexers.text import validate_text
from mmsearch.cf import CFModel
from mmsearch.errors import (
    ConfigError,
    FingerprintMismatchError,
    InputError,
    ItemNotFoundError,
    NotFoundError,
    SchemaMismatchError,
    UnknownNameError,
    listed,
)
from mmsearch.fetch import FetchSettings, fetch, is_url
from mmsearch.query import fusion as F
from mmsearch.query.results import EncoderUse, Result, SearchResponse, SignalScore, SignalUse, finite_or_none
from mmsearch.query.signals import (
    CF_SIGNAL,
    MODALITIES,
    PROFILE_PREFIX,
    Signal,
    collection_signals,
    content_queries,
    default_weights,
    profile_queries,
    resolve_weights,
)
from mmsearch.ranking import top_k
from mmsearch.storage import (
    CF_VECTOR,
    Filter,
    HasItemId,
    HybridQuery,
    NearestQuery,
    Prefetch,
    Rrf,
    Store,
    StoreSettings,
    check_filter,
    multi_name,
    pooled_name,
    weighted_sum_formula,
)

log = logging.getLogger(__name__)
FusionMethod = Literal["wsum", "rrf", "dbsf"]
_Hit = tuple[str, float, dict[str, Any]]
# Why a content signal is not drafted when another one is weighted: its model's tower did not run.
_NOT_WEIGHTED = "not weighted, so its model's tower did not embed the query"


class SearchSettings(BaseModel):
    """How the engine searches.

    Attributes:
        candidates: nearest neighbours fetched per signal; their union is scored on every signal.
        min_interactions: users with fewer training interactions are cold: no CF signal.
        profile: how a user's content profile is built: `mixed`, `same` or `crossed`
            (see `mmsearch.query.signals`).
        max_profile_items: at most this many of the user's items feed the profile.
        rrf_k: the RRF constant.
        maxsim: score content signals with MaxSim on the per-photo / per-text multivector (best
            matching photo) instead of the pooled vector; candidates still come from the pooled one.
        hnsw_ef: search-time ef for the candidate searches; None uses the store settings.
        fetch: how `image=` URLs are downloaded.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    candidates: int = Field(50, ge=1, le=10_000)
    min_interactions: int = Field(3, ge=1)
    profile: Literal["mixed", "same", "crossed"] = "mixed"
    max_profile_items: int = Field(500, ge=1)
    rrf_k: int = Field(F.DEFAULT_RRF_K, ge=1)
    maxsim: bool = False
    hnsw_ef: int | None = Field(None, ge=1)
    fetch: FetchSettings = FetchSettings()


@dataclass(frozen=True)
class _Leg:
    """One signal of one query: what it scores, with which query vector."""

    signal: Signal
    vector: str  # the stored vector scored (pooled, `.multi` or `cf`)
    query: np.ndarray
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class _User:
    """What the engine knows of the query's user."""

    id: str
    known: bool
    cold: bool
    interactions: int
    seen: tuple[str, ...]


def _names(names: Sequence[str]) -> str:
    return listed(names, 12, quote=False)


class Searcher:
    """Hybrid search over one collection: content signals from the query's encoders, CF and user profiles.

    Args:
        store: the open store of the collection.
        models: loaded model folders (`indexers.runtime.load_model`), or single encoders (e.g. an
            `Index`'s `embedder.encoder`s); text and image inputs are embedded by every tower whose
            model has vectors in the store.
        cf_model: the collection's CF model (`mmsearch.cf.collection.load_collection_cf`), or None.
        settings: engine settings.

    Raises:
        FingerprintMismatchError: a model's tower differs from the one that wrote its vectors.
        SchemaMismatchError: the CF model's vectors do not have the store's `cf` length.
        ConfigError: two models with the same name.
    """

    def __init__(
        self,
        store: Store,
        models: Sequence[Model | Encoder] = (),
        cf_model: CFModel | None = None,
        settings: SearchSettings | None = None,
        *,
        owns_store: bool = False,
    ) -> None:
        self.store = store
        self.settings = settings or SearchSettings()
        self.models = self._check_models(models)
        self.cf_model = self._check_cf(cf_model)
        self._owns_store = owns_store
        self._signals = collection_signals(store.schema, cf=self.cf_model is not None)

    # ------------------------------------------------------------------ setup

    def _check_models(self, models: Sequence[Model | Encoder]) -> dict[str, dict[str, Encoder]]:
        """Model name -> modality -> encoder, for the towers whose model has vectors in the store."""
        schema = self.store.schema
        towers: dict[str, dict[str, Encoder]] = {}
        for m in models:
            for encoder in m.encoders.values() if isinstance(m, Model) else (m,):
                spec = encoder.spec
                mine = towers.setdefault(spec.model, {})
                if spec.modality in mine and mine[spec.modality].spec.fingerprint != spec.fingerprint:
                    raise ConfigError(
                        f"two different {spec.modality} towers are named {spec.model!r}; model names "
                        f"are unique in a collection"
                    )
                mine[spec.modality] = encoder
        out: dict[str, dict[str, Encoder]] = {}
        for name, mine in towers.items():
            stored = {mod: schema.vectors.get(pooled_name(name, mod)) for mod in MODALITIES}
            if not any(stored.values()):
                log.info("model %r has no vectors in this collection; its towers are not used", name)
                continue
            for mod, vector in stored.items():
                if vector is not None and mod in mine and mine[mod].spec.fingerprint != vector.fingerprint:
                    raise FingerprintMismatchError(vector.name, str(vector.fingerprint), mine[mod].spec.fingerprint)
            out[name] = mine
        return out

    def _check_cf(self, cf_model: CFModel | None) -> CFModel | None:
        if cf_model is None:
            return None
        spec = self.store.schema.vectors.get(CF_VECTOR)
        if spec is None:
            raise SchemaMismatchError("this collection has no 'cf' vector for the CF model's item factors")
        if cf_model.dim != spec.dim:
            raise SchemaMismatchError(
                f"the CF model's vectors have {cf_model.dim} values but the store's 'cf' vector holds {spec.dim}; "
                f"run `mmsearch cf fit` again for this collection"
            )
        return cf_model

    @classmethod
    def open(
        cls,
        store: StoreSettings | Mapping[str, Any] | str | Path,
        models: Sequence[str | Path] = (),
        *,
        cf_path: str | Path | None = None,
        settings: SearchSettings | None = None,
        device: Device = "auto",
        threads: int | None = None,
        verify_models: bool = True,
    ) -> Searcher:
        """Open an indexed collection for searching, with the model folders that indexed it.

        Loads the model folders and the collection's CF model when one was fitted.

        Args:
            store: the store settings (`mmsearch.storage.StoreSettings`, or a mapping of its
                fields), or an Edge store folder (collection `mmsearch`).
            models: model folders written by `mmsearch export`, whose towers embed the query inputs.
            cf_path: the CF model folder, when not the default one beside the store.
            settings: engine settings.
            device, threads: onnxruntime placement and threads for the encoders.
            verify_models: check the model files' sha256 against their manifests.

        Raises:
            ConfigError: invalid store settings.
            StoreNotFoundError: the collection does not exist (index it first).
            ModelError: a model folder cannot be loaded.
            FingerprintMismatchError: a model differs from the one that wrote the collection.
        """
        from indexers.runtime import load_model
        from mmsearch.cf.collection import load_collection_cf
        from mmsearch.storage import load_settings, open_store

        store_settings = load_settings({"path": store} if isinstance(store, (str, Path)) else store)
        opened = open_store(store_settings)
        try:
            loaded = [load_model(m, device=device, threads=threads, verify=verify_models) for m in models]
            cf_model = load_collection_cf(opened, cf_path)
            return cls(opened, loaded, cf_model, settings, owns_store=True)
        except BaseException:
            opened.close()
            raise

    def close(self) -> None:
        """Close the store if this searcher opened it."""
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def signals(self) -> list[Signal]:
        """Every signal this collection offers (with their aliases)."""
        return list(self._signals)

    # ------------------------------------------------------------------ public API

    def search(
        self,
        *,
        text: str | None = None,
        image: ImageSource | None = None,
        item: str | None = None,
        user: str | None = None,
        weights: Mapping[str, float] | None = None,
        fusion: FusionMethod = "wsum",
        normalization: F.Normalization = "minmax",
        filter: Filter | None = None,
        limit: int = 10,
        exclude_seen: bool = False,
        explain: bool = False,
    ) -> SearchResponse:
        """Items for a text, an image, an item ("more like this") and/or a user, in any combination.

        Args:
            text: a query text, embedded by every text tower (CLIP's also searches images).
            image: a path, http(s) URL, bytes or PIL image, embedded by every image tower.
            item: an item id: its stored vectors are the query (the item itself is left out).
            user: a user id: their CF factors and content profile (see the module docstring).
            weights: signal name (or alias) -> weight >= 0. None: each kind of signal present
                (query content, user profile, CF) gets an equal share. Given: only the signals
                named take part.
            fusion: `wsum` (weighted sum of normalised scores), `rrf` (weighted RRF) or `dbsf`
                (weighted sum of DBSF-normalised scores).
            normalization: for `wsum`: `minmax` (default), `dbsf` or `none` (cosines only).
            filter: payload filter (`mmsearch.storage.Filter`).
            limit: results wanted.
            exclude_seen: leave out the items the user interacted with.
            explain: fill each result's per-signal breakdown.

        Returns:
            A `SearchResponse`: the results best first, the signals used and notes on fallbacks.

        Raises:
            InputError: no input at all; an empty text (TextInputError); an unreadable image
                (ImageDecodeError) or URL (FetchError); a limit below 1.
            ItemNotFoundError: `item` is not in the collection.
            NotFoundError: `user` is unknown and there is no other input to search with.
            UnknownNameError: a weight for a signal the collection does not have, or an unknown
                fusion or normalization (the valid names are listed).
            ConfigError: negative or all-zero weights, a weighted signal this query gives no
                input to, `user` without a CF model, `normalization="none"` with a CF signal.
            InvalidFilterError: `filter` is not a `Filter`.
        """
        _check_query(text, image, item, user, limit, fusion, normalization, filter)
        wanted = None if weights is None else resolve_weights(weights, self._signals)  # fail early on bad names
        notes: list[str] = []
        user_state = self._user(user, alone=text is None and image is None and item is None, notes=notes)
        encoders: list[EncoderUse] = []
        drafts, dropped, excluded = self._drafts(text, image, item, user_state, wanted, notes, encoders)
        if exclude_seen and user_state is not None:
            excluded += user_state.seen
        legs, leg_weights = self._weigh(drafts, weights, dropped, notes)
        _check_normalization(legs, fusion, normalization)
        flt = _combine_filters(filter, excluded)
        response = self._run(legs, leg_weights, fusion, normalization, flt, limit, explain, notes)
        return dataclasses.replace(response, encoders=encoders)

    def _drafts(
        self,
        text: str | None,
        image: ImageSource | None,
        item: str | None,
        user: _User | None,
        wanted: Mapping[str, float] | None,
        notes: list[str],
        encoders: list[EncoderUse],
    ) -> tuple[dict[str, _Leg], dict[str, str], list[str]]:
        """Every leg the query's inputs make (only the weighted ones when weights are given).

        A text or image is embedded only by the towers of the models whose content signals are
        weighted (each one in `encoders`).

        Returns:
            The legs by signal name; signals left out with the reason (cold or unknown user); the
            item ids to exclude from the results.
        """

        def needed(kind: str) -> bool:
            return wanted is None or any(w > 0 and n in kinds[kind] for n, w in wanted.items())

        kinds = {k: {s.name for s in self._signals if s.kind == k} for k in ("content", "profile", "cf")}
        by_name = {s.name: s for s in self._signals}
        drafts: dict[str, _Leg] = {}
        dropped: dict[str, str] = {}
        excluded: list[str] = []
        item_vectors = self._item_vectors(item) if item is not None else {}
        if item is not None:
            excluded.append(item)
        readers = self._content_models(wanted)
        text_emb = self._embed_text(text, readers, notes, encoders) if text is not None else {}
        image_emb = self._embed_image(image, readers, notes, encoders) if image is not None else {}
        given = [m for m, v in (("text", text), ("image", image)) if v is not None]
        dropped.update(dict.fromkeys(self._idle(readers, given), _NOT_WEIGHTED))
        content = content_queries(
            self.store.schema,
            text=text_emb,
            image=image_emb,
            item={k: v for k, v in item_vectors.items() if k != CF_VECTOR},
        )
        for vector, (q, inputs) in content.items():
            drafts[vector] = self._leg(by_name[vector], q, inputs)
        if user is not None:
            reason = "none of the user's items has its vector" if user.known else "the user is unknown"
            # A cold user's CF weight falls back on the profile, so a cold user needs it either way.
            profiles = self._profile(user) if user.known and (needed("profile") or user.cold) else {}
            for name in kinds["profile"]:
                vector = name[len(PROFILE_PREFIX) :]
                if vector in profiles:
                    drafts[name] = self._leg(by_name[name], profiles[vector], ("user",))
                else:
                    dropped[name] = reason
        if CF_SIGNAL in by_name and needed("cf"):
            cf_leg = self._cf_leg(by_name[CF_SIGNAL], user, item_vectors)
            if cf_leg is not None:
                drafts[CF_SIGNAL] = cf_leg
            elif user is not None:
                dropped[CF_SIGNAL] = "the user is cold" if user.known else "the user is unknown"
        return drafts, dropped, excluded

    def recommend(
        self,
        user: str,
        *,
        limit: int = 10,
        exclude_seen: bool = True,
        weights: Mapping[str, float] | None = None,
        fusion: FusionMethod = "wsum",
        normalization: F.Normalization = "minmax",
        filter: Filter | None = None,
        explain: bool = False,
    ) -> SearchResponse:
        """Items for a user: CF fused with their content profile (content only when they are cold).

        The same as `search(user=user, exclude_seen=True, ...)`.

        Raises:
            NotFoundError: the user is unknown to the collection's CF model.
            the errors of `search`.
        """
        return self.search(
            user=user,
            limit=limit,
            exclude_seen=exclude_seen,
            weights=weights,
            fusion=fusion,
            normalization=normalization,
            filter=filter,
            explain=explain,
        )

    # ------------------------------------------------------------------ inputs

    def _no_encoder(self, modality: str) -> ConfigError:
        vectors = [n for n, s in self.store.schema.vectors.items() if s.kind == "pooled"]
        return ConfigError(
            f"no {modality} encoder of this collection is loaded (its vectors: {_names(sorted(vectors))}); "
            f"give the model folders that indexed it (--model DIR, or [[encoders]] in the config)"
        )

    def _content_models(self, wanted: Mapping[str, float] | None) -> set[str] | None:
        """The models whose query embeddings a weighted content signal reads.

        None (embed with every tower) when no weights are given, or when none of them is a content
        signal: a text or image then only serves as the fallback when every weighted signal drops out.
        """
        if wanted is None:
            return None
        by_name = {s.name: s for s in self._signals}
        return {str(by_name[n].model) for n, w in wanted.items() if w > 0 and by_name[n].kind == "content"} or None

    def _idle(self, readers: set[str] | None, modalities: Sequence[str]) -> list[str]:
        """The content signals the query's text or image would reach through towers left unused."""
        idle = {name for name, mine in self.models.items() if any(m in mine for m in modalities)}
        idle -= readers if readers is not None else idle
        return [s.name for s in self._signals if s.kind == "content" and s.model in idle]

    def _embed(
        self,
        modality: str,
        value: Any,
        readers: set[str] | None,
        notes: list[str],
        encoders: list[EncoderUse],
    ) -> dict[str, np.ndarray]:
        """The query input embedded by each loaded `modality` tower whose model's signals read it."""
        towers = {name: mine[modality] for name, mine in self.models.items() if modality in mine}
        if not towers:
            raise self._no_encoder(modality)
        used = {name: enc for name, enc in towers.items() if readers is None or name in readers}
        if not used:
            notes.append(f"the {modality} is not embedded: no weighted signal reads the {modality} towers' vectors")
        out = {}
        for name, encoder in used.items():
            out[name] = encoder.embed([value])[0]
            chosen = getattr(encoder, "precision", None)
            precision, reason = (
                (chosen.precision, chosen.reason) if isinstance(chosen, TowerPrecision) else (None, None)
            )
            encoders.append(EncoderUse(pooled_name(name, modality), modality, precision, reason))
        return out

    def _embed_text(
        self, text: str, readers: set[str] | None, notes: list[str], encoders: list[EncoderUse]
    ) -> dict[str, np.ndarray]:
        return self._embed("text", validate_text(text), readers, notes, encoders)

    def _embed_image(
        self, image: ImageSource, readers: set[str] | None, notes: list[str], encoders: list[EncoderUse]
    ) -> dict[str, np.ndarray]:
        source: ImageSource = image
        if isinstance(image, str) and is_url(image):
            source = fetch(image, self.settings.fetch)
        return self._embed("image", load_image(source), readers, notes, encoders)

    def _item_vectors(self, item: str) -> dict[str, np.ndarray]:
        names = [n for n, s in self.store.schema.vectors.items() if s.kind in ("pooled", "cf")]
        found = self.store.retrieve([item], with_vectors=names, with_payload=False)
        if not found:
            raise ItemNotFoundError(
                f"item {item!r} is not in collection {self.store.settings.collection!r} ({self.store.count()} items)"
            )
        return dict(found[0].vectors)

    def _user(self, user: str | None, *, alone: bool, notes: list[str]) -> _User | None:
        if user is None:
            return None
        if not isinstance(user, str) or not user:
            raise InputError(f"user id {user!r} must be a non-empty string")
        cf = self.cf_model
        if cf is None:
            raise ConfigError(
                f"collection {self.store.settings.collection!r} has no CF model, so user {user!r} cannot be "
                f"looked up: run `mmsearch cf fit interactions.csv` first"
            )
        if not cf.has_user(user):
            if alone:
                raise NotFoundError(
                    f"user {user!r} is unknown: the CF model of this collection knows {cf.n_users} users "
                    f"({listed(cf.user_ids, 5)}); give a text, image or item to search without them"
                )
            notes.append(f"user {user!r} is unknown to the CF model: the query's other inputs carry the search")
            return _User(user, known=False, cold=True, interactions=0, seen=())
        count = cf.interaction_count(user)
        cold = count < self.settings.min_interactions
        if cold:
            notes.append(
                f"user {user!r} has {count} interaction(s), fewer than {self.settings.min_interactions}: "
                f"cold start, no CF signal; their content profile is used"
            )
        return _User(user, known=True, cold=cold, interactions=count, seen=tuple(cf.seen_items(user)))

    def _profile(self, user: _User) -> dict[str, np.ndarray]:
        names = [n for n, s in self.store.schema.vectors.items() if s.kind == "pooled"]
        seen = list(user.seen[: self.settings.max_profile_items])
        if not seen or not names:
            return {}
        rows: dict[str, list[np.ndarray]] = {}
        for it in self.store.retrieve(seen, with_vectors=names, with_payload=False):
            for name, vec in it.vectors.items():
                rows.setdefault(name, []).append(vec)
        stacked = {n: np.stack(v) for n, v in rows.items()}
        return profile_queries(self.store.schema, stacked, self.settings.profile)

    def _leg(self, signal: Signal, query: np.ndarray, inputs: tuple[str, ...]) -> _Leg:
        multi = multi_name(str(signal.model), str(signal.modality)) if signal.kind != "cf" else None
        if self.settings.maxsim and multi is not None and multi in self.store.schema.vectors:
            return _Leg(signal, multi, query[None, :], inputs)
        return _Leg(signal, signal.vector, query, inputs)

    def _cf_leg(self, signal: Signal, user: _User | None, item_vectors: Mapping[str, np.ndarray]) -> _Leg | None:
        cf = self.cf_model
        if user is not None and user.known and not user.cold and cf is not None:
            return _Leg(signal, CF_VECTOR, np.asarray(cf.user_vector(user.id), dtype=np.float32), ("user",))
        if CF_VECTOR in item_vectors:
            return _Leg(signal, CF_VECTOR, np.asarray(item_vectors[CF_VECTOR], dtype=np.float32), ("item",))
        return None

    def _weigh(
        self,
        drafts: Mapping[str, _Leg],
        weights: Mapping[str, float] | None,
        dropped: Mapping[str, str],
        notes: list[str],
    ) -> tuple[list[_Leg], np.ndarray]:
        available = [s for s in self._signals if s.name in drafts]
        nothing = InputError("no signal can use this query: none of its inputs reaches a vector of the collection")
        chosen: dict[str, float]
        if weights is None:
            if not available:
                raise nothing
            chosen = default_weights(available)
        else:
            resolved = resolve_weights(weights, self._signals)
            chosen = {}
            for name, w in resolved.items():
                if name in drafts:
                    if w > 0:
                        chosen[name] = w
                elif name in dropped:
                    if w > 0:
                        notes.append(f"signal {name!r} is left out: {dropped[name]}")
                elif w > 0:
                    offered = [
                        s.name for s in self._signals if s.name in drafts or dropped.get(s.name) == _NOT_WEIGHTED
                    ]
                    raise ConfigError(
                        f"signal {name!r} gets no input from this query ({_why(name)}); the signals of this "
                        f"query are: {_names(offered)}"
                    )
            if not chosen:
                if not available:
                    raise nothing
                chosen = default_weights(available)
                notes.append(f"no weighted signal is left; using every available one: {_names(list(chosen))}")
        legs = [drafts[s.name] for s in available if s.name in chosen]
        shares = np.array([chosen[g.signal.name] for g in legs], dtype=np.float64)
        return legs, shares / shares.sum()

    # ------------------------------------------------------------------ the three store calls

    def _run(
        self,
        legs: list[_Leg],
        weights: np.ndarray,
        fusion: str,
        normalization: str,
        flt: Filter | None,
        limit: int,
        explain: bool,
        notes: list[str],
    ) -> SearchResponse:
        s = self.settings
        candidates = self._candidates(legs, max(s.candidates, limit), flt)
        uses = [SignalUse(g.signal.name, g.vector, float(w), g.inputs) for g, w in zip(legs, weights, strict=True)]
        base: dict[str, Any] = {
            "signals": uses,
            "fusion": fusion,
            "normalization": normalization,
            "candidates": len(candidates),
            "notes": notes,
        }
        if not candidates:
            return SearchResponse(results=[], engine=self.store.engine, **base)
        pairs = [(g.vector, g.query) for g in legs]
        if fusion == "wsum" and normalization == "minmax" and all(self.store.can_score_range(g.vector) for g in legs):
            # Min-max needs only each leg's lowest and highest score over the candidates: the store
            # finds both without returning every score; only the hits are scored for the breakdown.
            bounds = self.store.score_range(candidates, pairs)
            params = [F.minmax_affine(lo, hi) for lo, hi in bounds]
            hits = self._formula(legs, weights, params, candidates, limit)
            rows = self.store.score_items([h[0] for h in hits], pairs) if explain and hits else None
            fused = F.weighted_sum(rows, weights, params=params) if rows is not None else None
            results = [
                Result(item_id, score, payload, _breakdown(legs, rows, fused, r) if rows is not None and fused else {})
                for r, (item_id, score, payload) in enumerate(hits)
            ]
            return SearchResponse(results=results, engine=self.store.engine, **base)
        matrix = self.store.score_items(candidates, pairs)
        engine = self.store.engine
        if fusion == "rrf":
            rrf = Rrf.weighted(weights, k=s.rrf_k)  # in the store's weight convention, for numpy too
            fused = F.weighted_rrf(matrix, rrf.weights, k=s.rrf_k)
            if np.isnan(matrix).any():
                # Native RRF adds nothing for a missing leg; renormalising needs the numpy fusion.
                hits = self._numpy_hits(candidates, fused, limit)
                engine = "numpy"
            else:
                hits = self._hybrid(legs, candidates, rrf, limit)
        else:
            norm = "dbsf" if fusion == "dbsf" else normalization
            params = [F.affine(matrix[:, j], norm) for j in range(len(legs))]  # type: ignore[arg-type]
            fused = F.weighted_sum(matrix, weights, params=params)
            hits = self._formula(legs, weights, params, candidates, limit)
        results = _results(legs, matrix, fused, candidates, hits, explain)
        return SearchResponse(results=results, engine=engine, **base)

    def _hybrid(self, legs: Sequence[_Leg], candidates: Sequence[str], fusion: Any, limit: int) -> list[_Hit]:
        """One store query: every leg scores every candidate (exact), then `fusion` ranks them."""
        # The candidate filter goes on the query, which hands it down to every prefetch (translated once).
        only = Filter(must=(HasItemId(tuple(candidates)),))
        prefetch = tuple(Prefetch(g.vector, g.query, limit=len(candidates), exact=True) for g in legs)
        query = HybridQuery(prefetch, fusion, limit=limit, filter=only, with_payload=True)
        return [(h.id, h.score, h.payload or {}) for h in self.store.hybrid_query(query)]

    def _formula(
        self,
        legs: Sequence[_Leg],
        weights: np.ndarray,
        params: Sequence[F.Affine],
        candidates: Sequence[str],
        limit: int,
    ) -> list[_Hit]:
        formula = weighted_sum_formula(
            [float(w) for w in weights],
            [p.shift for p in params],
            [p.scale for p in params],
            renormalize_by=[g.vector for g in legs],
        )
        return self._hybrid(legs, candidates, formula, limit)

    def _numpy_hits(self, candidates: Sequence[str], fused: F.Fused, limit: int) -> list[_Hit]:
        order = [int(i) for i in top_k(fused.scores, limit)]
        payloads = {it.id: it.payload for it in self.store.retrieve([candidates[i] for i in order])}
        return [(candidates[i], float(fused.scores[i]), payloads.get(candidates[i], {})) for i in order]

    def _candidates(self, legs: Sequence[_Leg], depth: int, flt: Filter | None) -> list[str]:
        """Step 1: the union of each leg's `depth` nearest neighbours (pooled vectors, with the filter)."""
        first = [
            NearestQuery(
                vector=g.signal.vector,
                query=g.query if g.query.ndim == 1 else g.query[0],
                limit=depth,
                filter=flt,
                hnsw_ef=self.settings.hnsw_ef,
            )
            for g in legs
        ]
        return list(dict.fromkeys(h.id for hits in self.store.query_batch(first) for h in hits))


def _breakdown(legs: Sequence[_Leg], matrix: np.ndarray, fused: F.Fused, r: int) -> dict[str, SignalScore]:
    return {
        g.signal.name: SignalScore(
            raw=finite_or_none(matrix[r, j]),
            normalized=finite_or_none(fused.normalized[r, j]),
            weight=float(fused.weights[r, j]),
            contribution=float(fused.contributions[r, j]),
        )
        for j, g in enumerate(legs)
    }


def _results(
    legs: Sequence[_Leg],
    matrix: np.ndarray,
    fused: F.Fused,
    candidates: Sequence[str],
    hits: Sequence[_Hit],
    explain: bool,
) -> list[Result]:
    """The hits as results, with their breakdown from the candidates' score matrix when explained."""
    row = {c: i for i, c in enumerate(candidates)}
    return [
        Result(item_id, score, payload, _breakdown(legs, matrix, fused, row[item_id]) if explain else {})
        for item_id, score, payload in hits
    ]


def _check_query(
    text: str | None,
    image: ImageSource | None,
    item: str | None,
    user: str | None,
    limit: object,
    fusion: str,
    normalization: str,
    flt: object,
) -> None:
    """The checks of `Searcher.search`'s arguments that need no store (see its Raises)."""
    if text is None and image is None and item is None and user is None:
        raise InputError("empty query: give a text, an image, an item id or a user id")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError(f"limit {limit!r} must be a positive integer")
    if fusion not in F.METHODS:
        raise UnknownNameError("fusion method", str(fusion), F.METHODS)
    if normalization not in F.NORMALIZATIONS:
        raise UnknownNameError("normalization", str(normalization), F.NORMALIZATIONS)
    check_filter(flt)


def _check_normalization(legs: Sequence[_Leg], fusion: str, normalization: str) -> None:
    if fusion == "wsum" and normalization == "none" and any(g.signal.distance != "cosine" for g in legs):
        raise ConfigError(
            "normalization 'none' would add raw CF dot products (unbounded) to cosines; use 'minmax' or 'dbsf'"
        )


def _combine_filters(flt: Filter | None, excluded: Sequence[str]) -> Filter | None:
    if not excluded:
        return flt
    return Filter(must=(flt,) if flt is not None else (), must_not=(HasItemId(tuple(dict.fromkeys(excluded))),))


def _why(name: str) -> str:
    if name == CF_SIGNAL:
        return "CF needs a user, or an item that has CF factors"
    if name.startswith(PROFILE_PREFIX):
        return "profile signals need a user"
    return "no text, image or item of the query reaches this vector"


__all__ = ["FusionMethod", "SearchSettings", "Searcher"]
