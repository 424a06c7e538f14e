"""The query engine: text, image, item, user and history inputs fused into one ranking, inside Qdrant.

A search runs in three store calls:

1. Candidates: one nearest-neighbour search per signal (a "leg": one stored vector and one query
   vector), `candidates` deep, with the filter; the union of their hits is the candidate set.
   The hits come back as point ids alone (`Store.candidates`: no payload is read), and one id
   filter for them is built once and shared by the next two calls.
2. Normalisation constants: each leg's lowest and highest exact score over the candidates
   (`Store.score_range`, for the default min-max weighted sum: two hits per leg come back), or
   every candidate's exact score on every leg (`Store.score_items`, for DBSF, RRF and MaxSim legs).
3. Fusion inside Qdrant: one query whose prefetches are the legs restricted to the candidates
   (the shared id filter, a limit of their number, exact search), scored by a formula (`wsum`,
   `dbsf`) or by Qdrant's weighted RRF (`rrf`). Every candidate is thus scored on every leg with
   its true score, including the legs whose own top-k it was not in: not read as a 0. Only an
   item that lacks the leg's vector has no score there. With `explain`, the breakdown is
   `mmsearch.query.fusion` (the numpy reference) on the hits' exact scores on each leg (rows of
   step 2's matrix, or, after `score_range`, one more call scoring the hits alone).

The `ease` signal is a sparse leg: its query is a history (the user's training interactions
and/or the items given as `history`) as a sparse vector, scored against each item's sparse
column of the EASE weights. A sparse search finds only the items sharing an index with the
query; the others hold a true score of 0, which the exact scoring of step 2 fills in and the
formula's default for that leg reads.

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
  found through content signals, its weights renormalised over them. EASE needs no user
  factors: any history with an item the model knows gets an `ease` leg, an anonymous session
  (`history=[...]` without a user) included.

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
import difflib
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
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
from mmsearch.cf import CFModel, EASEModel
from mmsearch.errors import (
    ConfigError,
    InputError,
    ItemNotFoundError,
    NotFoundError,
    SchemaMismatchError,
    UnknownNameError,
    listed,
)
from mmsearch.fetch import FetchSettings, fetch, is_url
from mmsearch.query import fusion as F
from mmsearch.query.models import check_models, default_choice, random_models, random_warnings, resolve_recorded
from mmsearch.query.results import EncoderUse, Result, SearchResponse, SignalScore, SignalUse, finite_or_none
from mmsearch.query.signals import (
    CF_SIGNAL,
    DEFAULT_MAX_PROFILE_ITEMS,
    EASE_SIGNAL,
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
    EASE_VECTOR,
    Candidates,
    Filter,
    HasItemId,
    HybridQuery,
    NearestQuery,
    Prefetch,
    Rrf,
    SparseVector,
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

    candidates: int = Field(F.DEFAULT_CANDIDATES, ge=1, le=10_000)
    min_interactions: int = Field(3, ge=1)
    profile: Literal["mixed", "same", "crossed"] = "mixed"
    max_profile_items: int = Field(DEFAULT_MAX_PROFILE_ITEMS, ge=1)
    rrf_k: int = Field(F.DEFAULT_RRF_K, ge=1)
    maxsim: bool = False
    hnsw_ef: int | None = Field(None, ge=1)
    fetch: FetchSettings = FetchSettings()


@dataclass(frozen=True)
class _Leg:
    """One signal of one query: what it scores, with which query vector."""

    signal: Signal
    vector: str  # the stored vector scored (pooled, `.multi`, `cf` or the sparse `ease`)
    query: np.ndarray | SparseVector
    inputs: tuple[str, ...]

    @property
    def sparse(self) -> bool:
        return isinstance(self.query, SparseVector)


@dataclass(frozen=True)
class _User:
    """What the engine knows of the query's user: their training items and the history given with the query."""

    id: str | None
    known: bool
    cold: bool
    interactions: int
    seen: tuple[str, ...]
    history: tuple[str, ...] = ()

    @property
    def items(self) -> tuple[str, ...]:
        """Every item the user is known to have interacted with: training items, then the history's others."""
        return tuple(dict.fromkeys((*self.seen, *self.history)))


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
        ease_model: the collection's EASE model (`mmsearch.cf.collection.load_collection_ease`), or None.

    Raises:
        FingerprintMismatchError: a model's tower differs from the one that wrote its vectors.
        SchemaMismatchError: the CF model's vectors do not have the store's `cf` length; an EASE
            model for a collection without the sparse `ease` vector.
        ConfigError: two models with the same name.
    """

    def __init__(
        self,
        store: Store,
        models: Sequence[Model | Encoder] = (),
        cf_model: CFModel | None = None,
        settings: SearchSettings | None = None,
        *,
        ease_model: EASEModel | None = None,
        owns_store: bool = False,
    ) -> None:
        self.store = store
        self.settings = settings or SearchSettings()
        self.models = check_models(store.schema, store.settings.collection, models)
        self.cf_model = self._check_cf(cf_model)
        self.ease_model = self._check_ease(ease_model)
        self._owns_store = owns_store
        self._signals = collection_signals(store.schema, cf=self.cf_model is not None, ease=self.ease_model is not None)
        self._random = random_models(store.schema, models)
        self._owned: list[Model] = []  # models this searcher loaded, closed with it
        # recorded models by name, loaded when a text or image first needs them
        self._deferred: dict[str, Callable[[], Model]] = {}
        self._unavailable: dict[str, str] = {}  # recorded models that cannot be loaded, and why

    # ------------------------------------------------------------------ setup

    def _load_deferred(self, only: set[str] | None = None) -> None:
        """Load the recorded models (those in `only`, or all), once, when a text or image first needs them."""
        for name in [n for n in self._deferred if only is None or n in only]:
            model = self._deferred.pop(name)()
            self._owned.append(model)
            self.models.update(check_models(self.store.schema, self.store.settings.collection, [model]))
            self._random |= random_models(self.store.schema, [model])

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

    def _check_ease(self, ease_model: EASEModel | None) -> EASEModel | None:
        if ease_model is None:
            return None
        spec = self.store.schema.vectors.get(EASE_VECTOR)
        if spec is None or not spec.sparse:
            raise SchemaMismatchError(
                "this collection has no sparse 'ease' vector for the EASE model's weights; "
                "run `mmsearch cf fit --algorithm ease` for this collection"
            )
        return ease_model

    @classmethod
    def open(
        cls,
        store: StoreSettings | Mapping[str, Any] | str | Path,
        models: Sequence[str | Path] | None = None,
        *,
        cf_path: str | Path | None = None,
        settings: SearchSettings | None = None,
        device: Device = "auto",
        threads: int | None = None,
        verify_models: bool = True,
    ) -> Searcher:
        """Open an indexed collection for searching, with the model folders that indexed it.

        Loads the model folders and the collection's CF and EASE models when they were fitted.

        Args:
            store: the store settings (`mmsearch.storage.StoreSettings`, or a mapping of its
                fields), or an Edge store folder (collection `mmsearch`).
            models: model folders written by `mmsearch export`, whose towers embed the query inputs.
                None (the default): the folders the collection recorded when it was indexed, loaded
                on the first text or image query, when they still hold the same models (a search
                that needs one that does not says which folder to pass).
            cf_path: the CF model folder, when not the default one beside the store.
            settings: engine settings.
            device, threads: onnxruntime placement and threads per session for the encoders.
            verify_models: check the model files' sha256 against their manifests.

        Raises:
            ConfigError: invalid store settings; a model with no vectors in the collection.
            StoreNotFoundError: the collection does not exist (index it first).
            ModelError: a model folder cannot be loaded.
            FingerprintMismatchError: a model differs from the one that wrote the collection.
        """
        from indexers.runtime import load_model
        from mmsearch.cf.collection import load_collection_models
        from mmsearch.storage import load_settings, open_store

        store_settings = load_settings({"path": store} if isinstance(store, (str, Path)) else store)
        opened = open_store(store_settings)
        load_options: dict[str, Any] = {"device": device, "threads": threads, "verify": verify_models}
        loaded: list[Model] = []
        try:
            loaded += [load_model(m, **load_options) for m in models or ()]
            fitted = load_collection_models(opened, cf_path)
            searcher = cls(opened, loaded, fitted.cf, settings, ease_model=fitted.ease, owns_store=True)
        except BaseException:
            for m in loaded:
                m.close()
            opened.close()
            raise
        searcher._owned = loaded
        if models is None:
            usable, searcher._unavailable = resolve_recorded(opened.schema)
            searcher._deferred = {
                r.record.name: functools.partial(load_model, r.record.folder, precision=r.precision, **load_options)
                for r in usable
            }
            searcher._random |= {r.record.name for r in usable if r.record.random_weights}
        return searcher

    def close(self) -> None:
        """Release the models this searcher loaded, and close the store if it opened it."""
        for model in self._owned:
            model.close()
        self._owned = []
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
        history: Sequence[str] | None = None,
        weights: Mapping[str, float] | None = None,
        fusion: FusionMethod = "wsum",
        normalization: F.Normalization = "minmax",
        filter: Filter | None = None,
        limit: int = 10,
        exclude_seen: bool = False,
        explain: bool = False,
    ) -> SearchResponse:
        """Items for a text, an image, an item ("more like this"), a user and/or a history, in any combination.

        Args:
            text: a query text, embedded by every text tower (CLIP's also searches images).
            image: a path, http(s) URL, bytes or PIL image, embedded by every image tower.
            item: an item id: its stored vectors are the query (the item itself is left out).
            user: a user id: their CF factors, EASE history and content profile (see the module docstring).
            history: item ids the user (or an anonymous session) interacted with, e.g. recent
                clicks: they join the user's training items in the EASE query and the content
                profile, and `exclude_seen` leaves them out. Without a user, they are the user.
            weights: signal name (or alias) -> weight >= 0. None: each kind of signal present
                (query content, user profile, CF, EASE) gets an equal share. Given: only the
                signals named take part.
            fusion: `wsum` (weighted sum of normalised scores), `rrf` (weighted RRF) or `dbsf`
                (weighted sum of DBSF-normalised scores).
            normalization: for `wsum`: `minmax` (default), `dbsf` or `none` (cosines only).
            filter: payload filter: a `mmsearch.storage.Filter`, a `qdrant_client.models.Filter` or
                a dict in Qdrant's JSON filter form. A field no stored item has gets a note.
            limit: results wanted.
            exclude_seen: leave out the items the user interacted with (and the history's).
            explain: fill each result's per-signal breakdown.

        Returns:
            A `SearchResponse`: the results best first, the signals used and notes on fallbacks.

        Raises:
            InputError: no input at all; an empty text (TextInputError); an unreadable image
                (ImageDecodeError) or URL (FetchError); a limit below 1; a history that is not a
                list of item ids.
            ItemNotFoundError: `item` is not in the collection.
            NotFoundError: `user` is unknown and there is no other input to search with.
            UnknownNameError: a weight for a signal the collection does not have, or an unknown
                fusion or normalization (the valid names are listed).
            ConfigError: negative or all-zero weights, a weighted signal this query gives no
                input to, `user` without a CF or EASE model, `normalization="none"` with a CF
                or EASE signal.
            InvalidFilterError: `filter` is not a filter, or a Qdrant condition mmsearch cannot express.
        """
        flt, given = _check_query(text, image, item, user, history, limit, fusion, normalization, filter)
        wanted = None if weights is None else resolve_weights(weights, self._signals)  # fail early on bad names
        notes: list[str] = self._filter_notes(flt)
        alone = text is None and image is None and item is None and not given
        user_state = self._user(user, given, alone=alone, notes=notes)
        encoders: list[EncoderUse] = []
        drafts, dropped, excluded = self._drafts(text, image, item, user_state, wanted, notes, encoders)
        if exclude_seen and user_state is not None:
            excluded += user_state.items
        legs, leg_weights = self._weigh(drafts, weights, dropped, notes)
        _check_normalization(legs, fusion, normalization)
        flt = _combine_filters(flt, excluded)
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

        A text or image is embedded only by the towers whose signals the query weighs (each tower
        that ran is added to `encoders`, with its precision).

        Returns:
            The legs by signal name; signals left out with the reason (cold or unknown user); the
            item ids to exclude from the results.
        """

        def needed(kind: str) -> bool:
            return wanted is None or any(w > 0 and n in kinds[kind] for n, w in wanted.items())

        kinds = {k: {s.name for s in self._signals if s.kind == k} for k in ("content", "profile", "cf", "ease")}
        by_name = {s.name: s for s in self._signals}
        drafts: dict[str, _Leg] = {}
        dropped: dict[str, str] = {}
        excluded: list[str] = []
        item_vectors = self._item_vectors(item) if item is not None else {}
        if item is not None:
            excluded.append(item)
        if user is not None:
            reason = "none of the user's items has its vector" if user.items else "the user is unknown"
            # A cold user's CF weight falls back on the profile, so a cold user needs it either way.
            profiles = self._profile(user) if user.items and (needed("profile") or user.cold) else {}
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
                dropped[CF_SIGNAL] = "the user is cold" if user.known else "the user is unknown to the CF model"
        if EASE_SIGNAL in by_name and needed("ease"):
            ease_leg = self._ease_leg(by_name[EASE_SIGNAL], user, item, notes)
            if ease_leg is not None:
                drafts[EASE_SIGNAL] = ease_leg
            elif user is not None:
                dropped[EASE_SIGNAL] = "no item of the user's history is known to the EASE model"
        content = self._query_content(text, image, item_vectors, wanted, drafts, notes, encoders)
        return {**content, **drafts}, dropped, excluded

    def _query_content(
        self,
        text: str | None,
        image: ImageSource | None,
        item_vectors: Mapping[str, np.ndarray],
        wanted: Mapping[str, float] | None,
        drafts: Mapping[str, _Leg],
        notes: list[str],
        encoders: list[EncoderUse],
    ) -> dict[str, _Leg]:
        """The content legs of the query's text, image and item, embedded only by the towers the
        weights (or, without, the trained models) need, unless nothing else would be left."""
        if text is not None or image is not None:
            notes += [f"{why}; its signals are left out" for why in self._unavailable.values()]
        only = self._embedding_models(wanted)
        content, unused, used = self._content_legs(text, image, item_vectors, only)
        if only is not None and not self._serves({**content, **drafts}, wanted):
            # Nothing the weights (or the trained models) want is left, say for a cold user: the
            # fallback weighs every signal, so every tower embeds the query after all.
            only = None
            content, unused, used = self._content_legs(text, image, item_vectors, only)
        encoders += used
        notes += [self._unused_note(m, wanted) for m in unused]
        if wanted is None and only is not None and (text is not None or image is not None) and not unused:
            notes += self._random_left_out()
        return content

    def _random_left_out(self) -> list[str]:
        """The note for content signals of random-weight models that the default weights did not embed for."""
        skipped = [g.name for g in self._signals if g.kind == "content" and g.model in self._random]
        if not skipped:
            return []
        models = ", ".join(repr(m) for m in sorted(self._random))
        return [
            f"signals {_names(skipped)} are left out of the default weights: model(s) {models} were exported with "
            f"random weights (weight them with -w to use them anyway)"
        ]

    def _embedding_models(self, wanted: Mapping[str, float] | None) -> set[str] | None:
        """The models whose towers embed the query's text and image first; None for all of them.

        Given weights, the models of the weighted content signals; without, the models with trained
        weights when some have random ones (whose signals the default weights leave out). A tower
        that would be loaded and run for nothing is not.
        """
        if wanted is not None:
            return {str(s.model) for s in self._signals if s.kind == "content" and wanted.get(s.name, 0) > 0}
        if self._random:
            return (set(self.models) | set(self._deferred)) - self._random
        return None

    def _serves(self, legs: Mapping[str, _Leg], wanted: Mapping[str, float] | None) -> bool:
        """Whether `legs` hold a weighted signal (given weights) or one of a trained model (without)."""
        if wanted is not None:
            return any(w > 0 and n in legs for n, w in wanted.items())
        return any(leg.signal.model not in self._random for leg in legs.values())

    def _unused_note(self, modality: str, wanted: Mapping[str, float] | None) -> str:
        if wanted is not None:
            return f"the query's {modality} reaches none of the weighted signals, so it is not used"
        models = ", ".join(repr(m) for m in sorted(self._random))
        return (
            f"the query's {modality} reaches only signals of models exported with random weights ({models}), "
            f"left out of the default weights (weight them with -w to use them anyway)"
        )

    def _content_legs(
        self,
        text: str | None,
        image: ImageSource | None,
        item_vectors: Mapping[str, np.ndarray],
        only: set[str] | None,
    ) -> tuple[dict[str, _Leg], list[str], list[EncoderUse]]:
        """The content signals' legs, the query embedded by the models in `only` (None: all); the
        inputs (text, image) that none of those models embeds; the towers that embedded them."""
        used: list[EncoderUse] = []
        text_emb = self._embed("text", text, only, used) if text is not None else {}
        image_emb = self._embed("image", image, only, used) if image is not None else {}
        unused = [m for m, given, emb in (("text", text, text_emb), ("image", image, image_emb)) if given and not emb]
        content = content_queries(
            self.store.schema,
            text=text_emb,
            image=image_emb,
            item={k: v for k, v in item_vectors.items() if k != CF_VECTOR},
        )
        by_name = {s.name: s for s in self._signals}
        legs = {vector: self._leg(by_name[vector], q, inputs) for vector, (q, inputs) in content.items()}
        return legs, unused, used

    def recommend(
        self,
        user: str | None = None,
        *,
        history: Sequence[str] | None = None,
        limit: int = 10,
        exclude_seen: bool = True,
        weights: Mapping[str, float] | None = None,
        fusion: FusionMethod = "wsum",
        normalization: F.Normalization = "minmax",
        filter: Filter | None = None,
        explain: bool = False,
    ) -> SearchResponse:
        """Items for a user or a history: CF and EASE fused with the content profile (no CF when cold).

        The same as `search(user=user, history=history, exclude_seen=True, ...)`. A history alone
        (an anonymous session's items) gets EASE and profile signals, no refit needed.

        Raises:
            NotFoundError: the user is unknown to the collection's models and no history is given.
            the errors of `search`.
        """
        return self.search(
            user=user,
            history=history,
            limit=limit,
            exclude_seen=exclude_seen,
            weights=weights,
            fusion=fusion,
            normalization=normalization,
            filter=filter,
            explain=explain,
        )

    # ------------------------------------------------------------------ inputs

    def _filter_notes(self, flt: Filter | None) -> list[str]:
        """A note per payload field the filter tests that no stored item has (a typo, most often)."""
        absent = self.store.absent_fields(flt)
        if not absent:
            return []
        seen = self.store.payload_fields()
        notes = []
        for key in absent:
            close = difflib.get_close_matches(key, seen, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            notes.append(
                f"filter: no stored item has a field {key!r} (fields seen: {_names(seen)}), so the condition "
                f"on it never holds{hint}"
            )
        return notes

    def _no_encoder(self, modality: str) -> ConfigError:
        vectors = [n for n, s in self.store.schema.vectors.items() if s.kind == "pooled"]
        if self._unavailable:
            why = "; ".join(self._unavailable.values())
        elif not self.store.schema.models:
            why = (
                "give the model folders that indexed it (--model DIR, or [[encoders]] in the config); the collection "
                "records its folders from its next `mmsearch index` run on"
            )
        else:
            why = "give the model folders that indexed it (--model DIR, or [[encoders]] in the config)"
        return ConfigError(
            f"no {modality} encoder of this collection is loaded (its vectors: {_names(sorted(vectors))}): {why}"
        )

    def _embed(self, modality: str, value: Any, only: set[str] | None, used: list[EncoderUse]) -> dict[str, np.ndarray]:
        """`value` embedded by each `modality` tower of the models in `only` (all when None), each
        tower that ran added to `used`.

        Raises:
            ConfigError: no model of the searcher has a `modality` tower at all.
        """
        if modality == "text":
            validate_text(value, max_chars=None)  # each tower applies its own limit
        else:
            value = load_image(fetch(value, self.settings.fetch) if isinstance(value, str) and is_url(value) else value)
        self._load_deferred(only)
        towers = {n: t[modality] for n, t in self.models.items() if modality in t and (only is None or n in only)}
        if not towers and not self._deferred and not any(modality in t for t in self.models.values()):
            raise self._no_encoder(modality)
        out = {}
        for name, tower in towers.items():
            out[name] = tower.embed([value])[0]
            chosen = getattr(tower, "precision", None)  # an Encoder of another library may not say
            precision, reason = (
                (chosen.precision, chosen.reason) if isinstance(chosen, TowerPrecision) else (None, None)
            )
            used.append(EncoderUse(pooled_name(name, modality), modality, precision, reason))
        return out

    def _item_vectors(self, item: str) -> dict[str, np.ndarray]:
        names = [n for n, s in self.store.schema.vectors.items() if s.kind in ("pooled", "cf")]
        found = self.store.retrieve([item], with_vectors=names, with_payload=False)
        if not found:
            raise ItemNotFoundError(
                f"item {item!r} is not in collection {self.store.settings.collection!r} ({self.store.count()} items)"
            )
        return dict(found[0].vectors)

    def _user(self, user: str | None, history: tuple[str, ...], *, alone: bool, notes: list[str]) -> _User | None:
        if user is None:
            return _User(None, known=False, cold=True, interactions=0, seen=(), history=history) if history else None
        if not isinstance(user, str) or not user:
            raise InputError(f"user id {user!r} must be a non-empty string")
        fitted = [m for m in (self.cf_model, self.ease_model) if m is not None]
        if not fitted:
            raise ConfigError(
                f"collection {self.store.settings.collection!r} has no CF model, so user {user!r} cannot be "
                f"looked up: run `mmsearch cf fit interactions.csv` first"
            )
        knowing = [m for m in fitted if m.has_user(user)]
        if not knowing:
            model = fitted[0]
            if alone:
                raise NotFoundError(
                    f"user {user!r} is unknown: the {model.algorithm} model of this collection knows {model.n_users} "
                    f"users ({listed(model.user_ids, 5)}); give a history, a text, an image or an item to search "
                    f"without them"
                )
            notes.append(f"user {user!r} is unknown to the CF model: the query's other inputs carry the search")
            return _User(user, known=False, cold=True, interactions=0, seen=(), history=history)
        count = max(m.interaction_count(user) for m in knowing)
        cold = self.cf_model is None or self.cf_model.is_cold(user, self.settings.min_interactions)
        if cold and self.cf_model is not None:
            notes.append(
                f"user {user!r} has {self.cf_model.interaction_count(user)} interaction(s), fewer than "
                f"{self.settings.min_interactions}: cold start, no CF signal; their content profile is used"
            )
        seen = tuple(dict.fromkeys(i for m in knowing for i in m.seen_items(user)))
        return _User(user, known=True, cold=cold, interactions=count, seen=seen, history=history)

    def _profile(self, user: _User) -> dict[str, np.ndarray]:
        names = [n for n, s in self.store.schema.vectors.items() if s.kind == "pooled"]
        seen = list(user.items[: self.settings.max_profile_items])
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
        if user is not None and user.id is not None and cf is not None and cf.has_user(user.id) and not user.cold:
            return _Leg(signal, CF_VECTOR, np.asarray(cf.user_vector(user.id), dtype=np.float32), ("user",))
        if CF_VECTOR in item_vectors:
            return _Leg(signal, CF_VECTOR, np.asarray(item_vectors[CF_VECTOR], dtype=np.float32), ("item",))
        return None

    def _ease_leg(self, signal: Signal, user: _User | None, item: str | None, notes: list[str]) -> _Leg | None:
        """The EASE leg: the user's training history plus the history given, or the query item alone."""
        ease = self.ease_model
        if ease is None:
            return None
        unknown: tuple[str, ...] = ()
        inputs: tuple[str, ...]
        if user is None:
            if item is None:
                return None
            vector, inputs = ease.history([item]).vector, ("item",)
        else:
            known = user.id is not None and ease.has_user(user.id)
            stored = ease.user_history(str(user.id)).vector.to_dict() if known else {}
            given = ease.history(user.history)
            vector = SparseVector.from_dict({**given.vector.to_dict(), **stored})  # training values win
            unknown = given.unknown
            inputs = (("user",) if known else ()) + (("history",) if user.history else ())
        if unknown:
            notes.append(
                f"{len(unknown)} item(s) of the history are unknown to the EASE model ({listed(unknown, 5)}): "
                f"they add no EASE score"
            )
        if len(vector) == 0:
            return None
        return _Leg(signal, EASE_VECTOR, vector, inputs)

    def _weigh(
        self,
        drafts: Mapping[str, _Leg],
        weights: Mapping[str, float] | None,
        dropped: Mapping[str, str],
        notes: list[str],
    ) -> tuple[list[_Leg], np.ndarray]:
        available = [s for s in self._signals if s.name in drafts]
        if not available:
            why = "; ".join(f"{name}: {reason}" for name, reason in dropped.items())
            raise InputError(
                f"no signal can use this query: {why or 'none of its inputs reaches a vector of the collection'}"
            )
        chosen: dict[str, float]
        if weights is None:
            cross = {name for name, g in drafts.items() if _cross_modal(g)}
            defaults, note = default_choice(available, cross, self._random)
            chosen = default_weights(defaults)
            notes += [note] if note else []
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
                    raise ConfigError(
                        f"signal {name!r} gets no input from this query ({_why(name)}); the signals of this "
                        f"query are: {_names([s.name for s in available])}"
                    )
            if not chosen:
                chosen = default_weights(available)
                notes.append(f"no weighted signal is left; using every available one: {_names(list(chosen))}")
            else:
                notes += random_warnings([s for s in available if s.name in chosen], self._random)
        legs = [drafts[s.name] for s in available if s.name in chosen]
        return legs, F.engine_weights([chosen[g.signal.name] for g in legs], "wsum")

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
        candidates = self._candidates(legs, F.candidate_depth(s.candidates, limit), flt)
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
            fused = F.fuse_candidates(rows, weights, "wsum", params=params) if rows is not None else None
            results = [
                Result(item_id, score, payload, _breakdown(legs, rows, fused, r) if rows is not None and fused else {})
                for r, (item_id, score, payload) in enumerate(hits)
            ]
            return SearchResponse(results=results, engine=self.store.engine, **base)
        # Every candidate's exact score on every leg: the normalisation constants, and the breakdown.
        matrix = self.store.score_items(candidates, pairs)
        engine = self.store.engine
        if fusion == "rrf":
            fused = F.fuse_candidates(matrix, weights, "rrf", k=s.rrf_k)
            rrf = Rrf(k=s.rrf_k, weights=tuple(float(w) for w in F.engine_weights(weights, "rrf")))
            if np.isnan(matrix).any() or any(g.sparse for g in legs):
                # Native RRF adds nothing for a missing leg (renormalising needs the numpy fusion),
                # nor for the items a sparse prefetch does not return, which rank at their score 0.
                hits = self._numpy_hits(candidates, fused, limit)
                engine = "numpy"
            else:
                hits = self._hybrid(legs, candidates, rrf, limit)
        else:
            params = F.leg_params(matrix, fusion, normalization)
            fused = F.fuse_candidates(matrix, weights, fusion, params=params)  # type: ignore[arg-type]
            hits = self._formula(legs, weights, params, candidates, limit)
        results = _results(legs, matrix, fused, candidates, hits, explain)
        return SearchResponse(results=results, engine=engine, **base)

    def _hybrid(self, legs: Sequence[_Leg], candidates: Candidates, fusion: Any, limit: int) -> list[_Hit]:
        """One store query: every leg scores every candidate (exact), then `fusion` ranks them."""
        prefetch = tuple(Prefetch(g.vector, g.query, limit=len(candidates), exact=True) for g in legs)
        query = HybridQuery(prefetch, fusion, limit=limit, with_payload=True)
        return [(h.id, h.score, h.payload or {}) for h in self.store.hybrid_query(query, within=candidates)]

    def _formula(
        self,
        legs: Sequence[_Leg],
        weights: np.ndarray,
        params: Sequence[F.Affine],
        candidates: Candidates,
        limit: int,
    ) -> list[_Hit]:
        formula = weighted_sum_formula(
            [float(w) for w in weights],
            [p.shift for p in params],
            [p.scale for p in params],
            renormalize_by=[g.vector for g in legs],
            absent=[0.0 if g.sparse else None for g in legs],  # a sparse search leaves out the true zeros
        )
        return self._hybrid(legs, candidates, formula, limit)

    def _numpy_hits(self, candidates: Candidates, fused: F.Fused, limit: int) -> list[_Hit]:
        order = [int(i) for i in top_k(fused.scores, limit)]
        return [
            (it.id, float(fused.scores[candidates.row(it.id)]), it.payload)
            for it in self.store.candidate_items(candidates, order)
        ]

    def _candidates(self, legs: Sequence[_Leg], depth: int, flt: Filter | None) -> Candidates:
        """Step 1: the union of each leg's `depth` nearest neighbours (pooled vectors, with the filter).

        In point-id order, so that the numpy fusions break ties the same way whatever the hits' order.
        """
        first = [
            NearestQuery(
                vector=g.signal.vector,
                query=g.query if isinstance(g.query, SparseVector) or g.query.ndim == 1 else g.query[0],
                limit=depth,
                filter=flt,
                hnsw_ef=self.settings.hnsw_ef,
                # Step 2 scores every candidate exactly: in a quantized store, its kNNs need not
                # read the original vectors (an oversampled rescoring from disk, most of a
                # million-item search's time).
                rescore=False,
            )
            for g in legs
        ]
        return self.store.candidates(first)


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
    candidates: Candidates,
    hits: Sequence[_Hit],
    explain: bool,
) -> list[Result]:
    """The hits as results, with their breakdown from the candidates' score matrix when explained."""
    return [
        Result(item_id, score, payload, _breakdown(legs, matrix, fused, candidates.row(item_id)) if explain else {})
        for item_id, score, payload in hits
    ]


def _check_query(
    text: str | None,
    image: ImageSource | None,
    item: str | None,
    user: str | None,
    history: Sequence[str] | None,
    limit: object,
    fusion: str,
    normalization: str,
    flt: object,
) -> tuple[Filter | None, tuple[str, ...]]:
    """The checks of `Searcher.search`'s arguments that need no store (see its Raises); returns the
    filter and the history."""
    given = _check_history(history)
    if text is None and image is None and item is None and user is None and not given:
        raise InputError("empty query: give a text, an image, an item id, a user id or a history")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise InputError(f"limit {limit!r} must be a positive integer")
    if fusion not in F.METHODS:
        raise UnknownNameError("fusion method", str(fusion), F.METHODS)
    if normalization not in F.NORMALIZATIONS:
        raise UnknownNameError("normalization", str(normalization), F.NORMALIZATIONS)
    return check_filter(flt), given


def _check_history(history: Sequence[str] | None) -> tuple[str, ...]:
    """The history's item ids (repeats dropped, order kept).

    Raises:
        InputError: a single string instead of a list, or an id that is not a non-empty string.
    """
    if history is None:
        return ()
    if isinstance(history, str) or not isinstance(history, Sequence):
        raise InputError(f"history must be a list of item ids, got {history!r:.80}")
    for item_id in history:
        if not isinstance(item_id, str) or not item_id:
            raise InputError(f"history item id {item_id!r} must be a non-empty string")
    return tuple(dict.fromkeys(history))


def _check_normalization(legs: Sequence[_Leg], fusion: str, normalization: str) -> None:
    if fusion == "wsum" and normalization == "none" and any(g.signal.distance != "cosine" for g in legs):
        raise ConfigError(
            "normalization 'none' would add raw CF or EASE dot products (unbounded) to cosines; use 'minmax' or 'dbsf'"
        )


def _combine_filters(flt: Filter | None, excluded: Sequence[str]) -> Filter | None:
    if not excluded:
        return flt
    return Filter(must=(flt,) if flt is not None else (), must_not=(HasItemId(tuple(dict.fromkeys(excluded))),))


def _cross_modal(leg: _Leg) -> bool:
    """A content leg whose query vector is only the other modality's (CLIP text searching images)."""
    queried = set(leg.inputs)
    return leg.signal.kind == "content" and queried <= {"text", "image"} and leg.signal.modality not in queried


def _why(name: str) -> str:
    if name == CF_SIGNAL:
        return "CF needs a user, or an item that has CF factors"
    if name == EASE_SIGNAL:
        return "EASE needs a user, a history or an item the EASE model knows"
    if name.startswith(PROFILE_PREFIX):
        return "profile signals need a user"
    return "no text, image or item of the query reaches this vector"


__all__ = ["FusionMethod", "SearchSettings", "Searcher"]
