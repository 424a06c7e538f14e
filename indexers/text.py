"""Run-time tokenisation with the `tokenizers` library (no torch, no transformers)."""

from __future__ import annotations

import html
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexers.manifest import TokenizerConfig
from mmsearch.errors import ModelError, TextInputError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# A guard against absurd inputs (a whole file pasted into a field), not a length rule: the tokenizer
# truncates every text to the model's context anyway, as sentence-transformers does, and
# tokenizing a million characters takes about a second.
DEFAULT_MAX_CHARS = 1_000_000


def validate_text(text: object, *, max_chars: int | None = DEFAULT_MAX_CHARS, index: int | None = None) -> str:
    """Return `text` if it can be embedded, else raise TextInputError naming the problem.

    Args:
        text: the text.
        max_chars: longer texts are refused; None for no limit.
        index: the text's position in its batch, for the message.
    """
    where = f"text #{index}" if index is not None else "text"
    if not isinstance(text, str):
        raise TextInputError(f"{where} is a {type(text).__name__}, expected str")
    if not text.strip():
        raise TextInputError(f"{where} is empty: nothing to embed")
    if max_chars is not None and len(text) > max_chars:
        raise TextInputError(
            f"{where} has {len(text):,} characters, over the limit of {max_chars:,} (a guard against absurd "
            f"inputs: texts are truncated to the model's context anyway); shorten it or raise max_text_chars"
        )
    return text


@lru_cache(maxsize=1)
def _ftfy():  # noqa: ANN202 - the module, imported once on first use
    import ftfy

    return ftfy


def clip_clean(text: str) -> str:
    """open_clip's text cleaning: ftfy, html unescape (twice), whitespace collapse, lower case."""
    import regex

    text = _ftfy().fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


class TextTokenizer:
    """A saved `tokenizers` tokenizer plus the model's feeding rules (context length, padding).

    The file is read on first use, so loading a model folder whose text tower a process never
    uses does not parse its vocabulary.
    """

    def __init__(self, path: Path, config: TokenizerConfig) -> None:
        self.path = Path(path)
        self.config = config
        self._loaded: Tokenizer | None = None
        self._lock = threading.Lock()

    @property
    def _tok(self) -> Tokenizer:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = self._read()
        return self._loaded

    def _read(self) -> Tokenizer:
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(self.path))
        except Exception as e:  # tokenizers raises a bare Exception on a bad file
            raise ModelError(f"cannot read tokenizer {str(self.path)!r}: {e}") from e
        tok.no_padding()
        tok.enable_truncation(max_length=self.config.context_length)
        return tok

    def ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, special tokens included, truncated to the context length."""
        return self.ids_and_truncation(texts)[0]

    def ids_and_truncation(self, texts: Sequence[str]) -> tuple[list[list[int]], list[bool]]:
        """Token ids per text (as `ids`), and whether each text was longer than the context and cut."""
        if self.config.clean == "clip":
            texts = [clip_clean(t) for t in texts]
        encodings = self._tok.encode_batch(list(texts))
        return [e.ids for e in encodings], [bool(e.overflowing) for e in encodings]

    def encode(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Feeds for the text graph: padded int64 `input_ids`, plus masks the graph takes."""
        return self.pad(self.ids(texts))

    def pad(self, ids: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
        """Pad token id lists into the graph's feeds (to the longest row when trimming is allowed)."""
        cfg = self.config
        width = max((len(i) for i in ids), default=1) if cfg.trim_to_longest else cfg.context_length
        width = max(width, 1)
        input_ids = np.full((len(ids), width), cfg.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feeds = {"input_ids": input_ids}
        if "attention_mask" in cfg.input_names:
            feeds["attention_mask"] = mask
        if "token_type_ids" in cfg.input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        return feeds
