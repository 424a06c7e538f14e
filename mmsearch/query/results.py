"""What a search returns: ranked results, each with a per-signal breakdown, and facts about the query."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, overload


@dataclass(frozen=True)
class SignalScore:
    """One signal's part in one result's score.

    Attributes:
        raw: the engine's score on this signal (cosine, MaxSim or CF dot product); None when the
            item lacks the vector (no photo, no CF factors...).
        normalized: the raw score after normalisation over the candidates (for RRF: the signal's
            reciprocal-rank term); None when missing.
        weight: the weight this signal had for this item, after renormalising over the signals the
            item has (0 when missing).
        contribution: what it added to the fused score (`normalized * weight` for weighted sums).
    """

    raw: float | None
    normalized: float | None
    weight: float
    contribution: float

    def to_dict(self) -> dict[str, Any]:
        """The score as plain JSON-able data."""
        return {
            "raw": self.raw,
            "normalized": self.normalized,
            "weight": self.weight,
            "contribution": self.contribution,
        }


@dataclass(frozen=True)
class Result:
    """One hit.

    Attributes:
        id: the item id.
        score: the fused score (higher is better).
        payload: the item's stored payload.
        signals: signal name -> its part in the score (filled when asked to explain).
    """

    id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)
    signals: dict[str, SignalScore] = field(default_factory=dict)

    def to_dict(self, rank: int | None = None) -> dict[str, Any]:
        """The hit as plain JSON-able data, with its 1-based `rank` first when given."""
        out: dict[str, Any] = {"id": self.id, "score": self.score, "payload": self.payload}
        if rank is not None:
            out = {"rank": rank, **out}
        if self.signals:
            out["signals"] = {k: v.to_dict() for k, v in self.signals.items()}
        return out


@dataclass(frozen=True)
class SignalUse:
    """A signal as the query used it.

    Attributes:
        name: the signal's canonical name.
        vector: the stored vector scored (a `.multi` vector when MaxSim rescoring is on).
        weight: its weight, the weights of the query summing to 1.
        inputs: what its query vector came from (`text`, `image`, `item`, `user`).
    """

    name: str
    vector: str
    weight: float
    inputs: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """The signal's use as plain JSON-able data."""
        return {"name": self.name, "vector": self.vector, "weight": self.weight, "inputs": list(self.inputs)}


@dataclass(frozen=True)
class EncoderUse:
    """A tower that embedded the query's text or image.

    Attributes:
        vector: the tower, named as its pooled vector (`<model>.<modality>`, e.g. `minilm.text`).
        input: `text` or `image`.
        precision: the graph it ran, `fp32` or `int8` (None for an encoder that does not say).
        reason: why that precision (see `indexers.manifest.Tower.choose`).
    """

    vector: str
    input: str
    precision: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"vector": self.vector, "input": self.input, "precision": self.precision, "reason": self.reason}


@dataclass(frozen=True)
class SearchResponse(Sequence[Result]):
    """The ranked results (it is a sequence of `Result`) and how they were made.

    Attributes:
        results: best first.
        signals: the signals fused, with their weights.
        fusion: `wsum`, `rrf` or `dbsf`.
        normalization: the score normalisation of `wsum`.
        candidates: how many distinct items the signals proposed (all of them scored on every signal).
        engine: where the fusion ran: `qdrant` (prefetch + formula or RRF in the store) or `numpy`.
        notes: what the query fell back on (cold start, signals without input...).
        encoders: the towers that embedded the query's text or image, with their precision.
    """

    results: list[Result]
    signals: list[SignalUse] = field(default_factory=list)
    fusion: str = "wsum"
    normalization: str = "minmax"
    candidates: int = 0
    engine: str = "qdrant"
    notes: list[str] = field(default_factory=list)
    encoders: list[EncoderUse] = field(default_factory=list)

    @overload
    def __getitem__(self, index: int) -> Result: ...

    @overload
    def __getitem__(self, index: slice) -> list[Result]: ...

    def __getitem__(self, index: int | slice) -> Result | list[Result]:
        return self.results[index]

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[Result]:
        return iter(self.results)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.results]

    def to_dict(self) -> dict[str, Any]:
        """The whole response as plain JSON-able data (`json.dumps` takes it): what `mmsearch query --json` prints.

        Keys: `fusion`, `normalization` (None unless `wsum`), `engine`, `candidates`, `signals`
        (name, vector, weight, inputs), `notes`, `encoders` (vector, input, precision, reason),
        and `results` (rank, id, score, payload, and `signals` with each one's raw, normalized,
        weight and contribution when explained).
        """
        return {
            "fusion": self.fusion,
            "normalization": self.normalization if self.fusion == "wsum" else None,
            "engine": self.engine,
            "candidates": self.candidates,
            "signals": [s.to_dict() for s in self.signals],
            "notes": list(self.notes),
            "encoders": [e.to_dict() for e in self.encoders],
            "results": [r.to_dict(rank) for rank, r in enumerate(self.results, 1)],
        }

    def to_json(self) -> dict[str, Any]:
        """The same as `to_dict` (its earlier name)."""
        return self.to_dict()


def finite_or_none(value: float) -> float | None:
    """`value` as a float, or None for NaN (a missing score)."""
    v = float(value)
    return v if math.isfinite(v) else None


__all__ = ["EncoderUse", "Result", "SearchResponse", "SignalScore", "SignalUse", "finite_or_none"]
