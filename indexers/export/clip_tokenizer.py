"""open_clip's BPE SimpleTokenizer converted into a `tokenizers` Tokenizer (tokenizer.json).

The run-time side (`indexers.text.TextTokenizer` with `clean="clip"`) replays open_clip's text
cleaning in Python and this tokenizer does the rest, so query-time code tokenises like
`open_clip.tokenize()` without importing torch.

One known divergence: open_clip recognises a literal `<start_of_text>` / `<end_of_text>` in the
text only where its regex starts a match there (not right after other punctuation, as in
`<<end_of_text>`), while `tokenizers` extracts special tokens anywhere. Real text never holds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsearch.errors import ExportError

if TYPE_CHECKING:
    from tokenizers import Tokenizer

SOT = "<start_of_text>"
EOT = "<end_of_text>"
END_OF_WORD = "</w>"


def _simple_tokenizer(bpe_path: str | None) -> Any:
    from indexers.export.torch_compat import patch_torchvision

    patch_torchvision()
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    return SimpleTokenizer(bpe_path or default_bpe())


def _split_pattern(pattern: str) -> str:
    """open_clip's pre-tokenisation regex without its leading special-token alternatives.

    The special tokens are matched by `tokenizers` as added tokens instead, before splitting.
    """
    prefix = f"{SOT}|{EOT}|"
    if not pattern.startswith(prefix):
        raise ExportError(
            f"open_clip's tokenizer regex {pattern!r} does not start with {prefix!r}: this open_clip "
            "version changed its tokenizer and the tokenizer.json conversion needs updating"
        )
    # open_clip compiles it with IGNORECASE; that changes what matches (e.g. `'ſ` is `'s`).  # noqa: RUF003
    return "(?i)" + pattern[len(prefix) :]


def build_clip_tokenizer(bpe_path: str | None = None) -> Tokenizer:
    """Convert open_clip's SimpleTokenizer (its shipped BPE vocabulary by default) to `tokenizers`.

    Args:
        bpe_path: a `bpe_simple_vocab_16e6.txt.gz`-style merges file; None for open_clip's own.

    Returns:
        A `tokenizers.Tokenizer`: BPE with `</w>` word ends, open_clip's split regex, byte-level
        alphabet, and `<start_of_text> ... <end_of_text>` around every encoding. It expects text
        already cleaned by `indexers.text.clip_clean`.

    Raises:
        ExportError: open_clip's tokenizer is not laid out as this conversion expects.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

    simple = _simple_tokenizer(bpe_path)
    vocab: dict[str, int] = dict(simple.encoder)
    merges = [pair for pair, _ in sorted(simple.bpe_ranks.items(), key=lambda item: item[1])]
    for token in (SOT, EOT):
        if token not in vocab:
            raise ExportError(f"open_clip's vocabulary has no {token!r} token")

    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, end_of_word_suffix=END_OF_WORD, fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_split_pattern(simple.pat.pattern)), behavior="removed", invert=True),
            # Each piece becomes its UTF-8 bytes spelled in GPT-2's printable byte alphabet, the
            # alphabet open_clip's vocabulary is written in (its `bytes_to_unicode`).
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.add_special_tokens([AddedToken(SOT, special=True), AddedToken(EOT, special=True)])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{SOT} $A {EOT}",
        special_tokens=[(SOT, vocab[SOT]), (EOT, vocab[EOT])],
    )
    # Bytes first: ByteLevel joins all tokens before decoding UTF-8, so a character split
    # across tokens survives; `</w>` (plain ASCII, kept as is) then becomes a word break.
    tokenizer.decoder = decoders.Sequence([decoders.ByteLevel(), decoders.Replace(END_OF_WORD, " ")])
    return tokenizer


def write_clip_tokenizer(path: Path, bpe_path: str | None = None) -> Path:
    """Save `build_clip_tokenizer(bpe_path)` as a tokenizer.json file at `path`."""
    path = Path(path)
    build_clip_tokenizer(bpe_path).save(str(path))
    return path
