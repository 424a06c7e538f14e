"""tokenizer.json (converted from open_clip's BPE) + clip_clean give open_clip's exact token ids."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from indexers.manifest import Manifest, TokenizerConfig
from indexers.text import TextTokenizer
from mmsearch.errors import ExportError
from mmsearch.files import sha256_file

SOT, EOT = 49406, 49407

CORPUS = [
    # ordinary captions, mixed case
    "a photo of a cat",
    "A Photo Of A CAT",
    "The quick brown fox jumps over the lazy dog.",
    "an oil painting of a lighthouse at sunset",
    "CamelCaseWordsAndALLCAPS mixedCASE",
    # contractions, possessives, apostrophes
    "I'm sure it's the dog's toy, isn't it? We'll see, they've gone, you'd know.",
    "DON'T SHOUT, it'S FINE",
    "rock 'n' roll, 'quoted', o'clock, y'all",
    "'s 't 're 've 'm 'll 'd",
    # curly quotes, dashes, ellipsis (ftfy and the BPE treat them differently)
    "“smart quotes” and ‘single ones’",
    "en – dash, em — dash, ellipsis… done",
    "‚low quotes„ «guillemets» ‹single›",
    # accents and Latin extended
    "naïve café résumé Ångström",
    "Crème brûlée à la française, s'il vous plaît",
    "Zürich, Kraków, İstanbul, Ærøskøbing, São Paulo",
    "straße STRASSE ß ẞ",
    "ǅungla ǈ ǋ ﬁne ﬂow",
    "combining: e\u0301 a\u0300 n\u0303",
    "'ſ long s and K kelvin and Å angstrom sign",
    # other scripts
    "日本語のテキストと漢字",
    "中文字符测试，标点符号。",
    "한국어 텍스트 입니다",
    "Русский текст с заглавными БУКВАМИ",
    "Ελληνικά γράμματα ΣΙΓΜΑ ς",
    "עברית ומספרים 123",
    "العربية نص مع أرقام ١٢٣",
    "हिन्दी पाठ देवनागरी",
    "ไทยภาษา",
    # emoji, modifiers, ZWJ sequences, flags, symbols
    "emoji 🐶🐱👍🏽",
    "family 👨‍👩‍👧‍👦 and rainbow flag 🏳️‍🌈",
    "flags 🇫🇷🇯🇵 keycap 1️⃣ heart ❤️",
    "math ∑∫√∞ ≠ ≤ ≥ ± × ÷ °C µm",
    "currency $5 €10 £3 ¥100 ₹50 ₿",
    "arrows → ← ↑ ↓ ⇒ and box ┌─┐",
    "™ © ® § ¶ † ‡ • ¿¡",
    # html entities (unescaped twice by the cleaner)
    "&amp; &lt;b&gt;bold&lt;/b&gt; &quot;q&quot; &#39;a&#39;",
    "&amp;amp; double-escaped &amp;lt;",
    "&nbsp;non&nbsp;breaking&#160;space &eacute;t&eacute; &#x1F600;",
    "<p>raw <b>html</b> tags</p>",
    "mojibake: cafÃ© donâ€™t",
    # numbers: each digit is its own token
    "1234567890",
    "3.14159 2,718 1e-10 -42 +7 0x1F",
    "2024-01-31 12:34:56 50% 3/4",
    "room 101, floor 22nd, 1st place, 3rd",
    # punctuation runs
    "!!!???...",
    "wait... what?!?! ---- ==== ____ ~~~~",
    "(parens) [brackets] {braces} <angles>",
    "email me@example.com, url https://x.org/a?b=c&d=e#f",
    "#hashtag @mention $var %percent ^caret *star",
    "a/b\\c|d;e:f",
    "\"double\" and 'single' quotes",
    # whitespace runs, newlines, tabs, unicode spaces
    "  lots\n\tof   space  ",
    "line one\nline two\r\nline three\rline four",
    "tab\tseparated\tvalues",
    "ideographic\u3000space and nbsp\u00a0here and thin\u2009space",
    "zero\u200bwidth\u200cjoiners\u200d here",
    "line\u2028separator\u2029paragraph",
    "\n\n\t  \n",
    "   leading and trailing   ",
    # control characters
    "bell\x07 and null\x00 and escape\x1b[0m",
    "\x1c\x1d\x1e\x1f separators",
    # empty and tiny
    "",
    " ",
    "a",
    "A",
    "?",
    "!",
    "!a!",
    # repeated words, long words, BPE stress
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "the the the the the the",
    "lowerlowerlower UPPERUPPER",
    # longer than the context: truncated to SOT + 75 tokens + EOT
    " ".join(["a photo of a very long caption that keeps on going"] * 12),
    "word " * 200,
    "🐶" * 100,
    "1" * 120,
]


def _open_clip():
    from indexers.export.torch_compat import patch_torchvision

    patch_torchvision()
    import open_clip

    return open_clip


def open_clip_ids(texts: list[str], context_length: int = 77) -> list[list[int]]:
    """open_clip's `tokenize()` ids with the padding after the last EOT removed."""
    from indexers.export.clip import unpad

    return [unpad(row) for row in _open_clip().tokenize(texts, context_length=context_length).tolist()]


@pytest.fixture(scope="module")
def tokenizer_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from indexers.export.clip_tokenizer import write_clip_tokenizer

    return write_clip_tokenizer(tmp_path_factory.mktemp("clip_tok") / "tokenizer.json")


def _config(path: Path, **overrides: object) -> TokenizerConfig:
    fields = {"sha256": sha256_file(path), "context_length": 77, "pad_id": 0, "clean": "clip", "trim_to_longest": True}
    return TokenizerConfig(**{**fields, **overrides})


@pytest.fixture(scope="module")
def tokenizer(tokenizer_path: Path) -> TextTokenizer:
    return TextTokenizer(tokenizer_path, _config(tokenizer_path))


def test_corpus_is_varied_enough() -> None:
    assert len(CORPUS) >= 60
    assert len(set(CORPUS)) == len(CORPUS)


@pytest.mark.parametrize("text", CORPUS, ids=[f"{i:02d}-{t[:20]!r}" for i, t in enumerate(CORPUS)])
def test_ids_equal_open_clip(tokenizer: TextTokenizer, text: str) -> None:
    assert tokenizer.ids([text]) == open_clip_ids([text])


def test_batch_equals_one_by_one(tokenizer: TextTokenizer) -> None:
    assert tokenizer.ids(CORPUS) == open_clip_ids(CORPUS)


def test_random_unicode_strings_equal_open_clip(tokenizer: TextTokenizer) -> None:
    """Fuzz: random mixes of ASCII, punctuation, Latin-1, CJK, emoji and whitespace."""
    rng = random.Random(1234)
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "0123456789",
        " \t\n  ",
        "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        "àáâãäåæçèéêëìíîïðñòóôõöøùúûüýþÿÀÉÎÕÜß",
        "的一是不了人我在有他这中大来上国个到说们",
        "😀😂🥲🐍🚀🇺🇸👍🏿❤️✨",
        "ʼ’‘“”–—…«»¡¿§",
        "&amp;&lt;&#39;",
    ]
    texts = []
    for _ in range(300):
        parts = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(0, 60))]
        texts.append("".join(parts))
    got, expected = tokenizer.ids(texts), open_clip_ids(texts)
    mismatches = [(t, g, e) for t, g, e in zip(texts, got, expected, strict=True) if g != e]
    assert not mismatches, mismatches[:3]


def test_long_text_keeps_sot_first_75_tokens_and_eot(tokenizer: TextTokenizer, tokenizer_path: Path) -> None:
    text = " ".join(f"w{i}" for i in range(200))  # each "wN" is several tokens
    ids = tokenizer.ids([text])[0]
    untruncated = TextTokenizer(tokenizer_path, _config(tokenizer_path, context_length=10_000)).ids([text])[0]
    assert len(untruncated) > 300
    assert len(ids) == 77
    assert ids[0] == SOT and ids[-1] == EOT
    assert ids[1:76] == untruncated[1:76]
    assert ids == open_clip_ids([text])[0]


def test_shorter_context_truncates_like_open_clip(tokenizer_path: Path) -> None:
    short = TextTokenizer(tokenizer_path, _config(tokenizer_path, context_length=16))
    texts = ["a photo of " * 10, "short one"]
    assert short.ids(texts) == open_clip_ids(texts, context_length=16)
    assert [len(i) for i in short.ids(texts)] == [16, 4]


def test_empty_text_is_sot_eot(tokenizer: TextTokenizer) -> None:
    assert tokenizer.ids([""]) == [[SOT, EOT]]


def test_encode_pads_to_the_longest_text(tokenizer: TextTokenizer) -> None:
    feeds = tokenizer.encode(["a cat", "a photo of a dog on the grass"])
    expected = _open_clip().tokenize(["a cat", "a photo of a dog on the grass"]).numpy()
    assert set(feeds) == {"input_ids"}
    assert feeds["input_ids"].shape == (2, 10)
    assert (feeds["input_ids"] == expected[:, :10]).all()
    assert (expected[:, 10:] == 0).all()


def test_encode_without_trimming_pads_to_context_length(tokenizer_path: Path) -> None:
    full = TextTokenizer(tokenizer_path, _config(tokenizer_path, trim_to_longest=False))
    feeds = full.encode(["a cat", "a photo of a dog"])
    assert (feeds["input_ids"] == _open_clip().tokenize(["a cat", "a photo of a dog"]).numpy()).all()


def test_decode_matches_open_clip(tokenizer: TextTokenizer, tokenizer_path: Path) -> None:
    from tokenizers import Tokenizer

    simple = _open_clip().tokenizer.SimpleTokenizer()
    raw = Tokenizer.from_file(str(tokenizer_path))
    for text in ["naïve café — “quoted”", "日本語のテキスト", "emoji 🐶🐱👍🏽", "I'm 42!!"]:
        ids = tokenizer.ids([text])[0]
        assert raw.decode(ids) == simple.decode(ids[1:-1])


def test_conversion_is_deterministic(tokenizer_path: Path, tmp_path: Path) -> None:
    from indexers.export.clip_tokenizer import write_clip_tokenizer

    again = write_clip_tokenizer(tmp_path / "tokenizer.json")
    assert sha256_file(again) == sha256_file(tokenizer_path)


def test_exported_model_ships_the_same_tokenizer(tiny_clip_dir: Path, tokenizer_path: Path) -> None:
    manifest = Manifest.load(tiny_clip_dir)
    cfg = manifest.towers["text"].tokenizer
    assert cfg is not None and cfg.clean == "clip" and cfg.context_length == 77
    assert sha256_file(tiny_clip_dir / cfg.file) == sha256_file(tokenizer_path) == cfg.sha256


def test_regex_change_in_open_clip_is_reported() -> None:
    from indexers.export.clip_tokenizer import _split_pattern

    with pytest.raises(ExportError, match="'s\\|'t"):
        _split_pattern(r"'s|'t|[\p{L}]+")
    assert _split_pattern(r"<start_of_text>|<end_of_text>|'s|[\p{N}]") == r"(?i)'s|[\p{N}]"
