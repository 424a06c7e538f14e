"""Varied English sentences generated from word lists and templates, the same for a seed everywhere.

The encoder benchmark times every runtime on them, and text towers are calibrated on them (the
int8 graph's cosine to fp32, `indexers.export.calibration`). Lengths are drawn uniformly between
`min_words` and `max_words`, so that batches mix short queries with long reviews as a catalogue
does; the words mix product vocabulary, numbers, punctuation, accented words and a few emoji.
Generated with `random.Random(seed)` (whose `random()`, `choice()` and `randint()` are stable across
Python versions), so no download is needed and a seed names the same texts on every machine.
"""

from __future__ import annotations

import random

ADJECTIVES = (
    "red", "blue", "green", "soft", "sturdy", "vintage", "compact", "waterproof", "handmade", "organic",
    "lightweight", "cosy", "bright", "wooden", "stainless", "elegant", "noisy", "quiet", "cheap", "premium",
    "tiny", "oversized", "crispy", "spicy", "fresh", "rustic", "modern", "foldable", "wireless", "durable",
)  # fmt: skip
NOUNS = (
    "bicycle", "backpack", "lamp", "kettle", "sofa", "jacket", "camera", "ball", "pizza", "notebook",
    "headphones", "blender", "tent", "mug", "sneakers", "guitar", "watch", "pillow", "charger", "umbrella",
    "restaurant", "bakery", "hotel room", "coffee", "dress", "keyboard", "puzzle", "drone", "scarf", "stroller",
)  # fmt: skip
VERBS = (
    "arrived", "broke", "works", "looks", "feels", "lasted", "fits", "smells", "charges", "folds",
    "survived", "impressed", "disappointed", "surprised", "delighted",
)  # fmt: skip
PEOPLE = ("my kids", "my wife", "our team", "the staff", "my grandmother", "the delivery driver", "everyone", "I")
PLACES = (
    "in the kitchen", "on the trail", "at the office", "in Paris", "near the riverbank", "at the café",
    "in São Paulo", "on a rainy day", "during the holidays", "in Zürich", "at the beach", "on the train",
)  # fmt: skip
ADVERBS = ("really", "surprisingly", "quite", "very", "barely", "absolutely", "almost", "never", "always")
EXTRAS = ("!", "?", "...", " :)", " 👍", " 🎉", " (5/5)", " — worth it", ", honestly", "")

TEMPLATES = (
    "{adj} {noun} for {people}{extra}",
    "The {noun} {verb} {adv} well {place}{extra}",
    "{people} bought a {adj} {noun} and it {verb} after {n} days{extra}",
    "Looking for a {adj}, {adj2} {noun} under ${n}{extra}",
    "Is this {noun} {adj} enough to use {place}?",
    "Five stars: the {noun} is {adv} {adj} and {adj2}{extra}",
    "We ordered the {adj} {noun} {place}; it {verb} {people}{extra}",
    "{noun} with {adj} finish, {n} cm wide, {adj2} and easy to clean{extra}",
    "Don't buy the {adj} {noun}: it {verb} within {n} hours{extra}",
    "Crème brûlée, jalapeño {noun} and a {adj} {noun2} {place}{extra}",
)


def _sentence(rng: random.Random) -> str:
    template = rng.choice(TEMPLATES)
    text = template.format(
        adj=rng.choice(ADJECTIVES),
        adj2=rng.choice(ADJECTIVES),
        noun=rng.choice(NOUNS),
        noun2=rng.choice(NOUNS),
        verb=rng.choice(VERBS),
        people=rng.choice(PEOPLE),
        place=rng.choice(PLACES),
        adv=rng.choice(ADVERBS),
        extra=rng.choice(EXTRAS),
        n=rng.randint(2, 400),
    )
    return text[0].upper() + text[1:]


def varied_sentences(count: int, *, seed: int = 0, min_words: int = 5, max_words: int = 60) -> list[str]:
    """`count` texts of `min_words` to `max_words` words (uniform), each of one or more sentences.

    Args:
        count: how many texts.
        seed: the same seed gives the same texts.
        min_words: the shortest text, in whitespace-separated words.
        max_words: the longest text.

    Returns:
        The texts, in generation order (not sorted by length).

    Raises:
        ValueError: a negative count, or word bounds that are not 1 <= min_words <= max_words.
    """
    if count < 0:
        raise ValueError(f"count={count}: expected 0 or more")
    if not 1 <= min_words <= max_words:
        raise ValueError(f"min_words={min_words}, max_words={max_words}: expected 1 <= min_words <= max_words")
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        target = rng.randint(min_words, max_words)
        words: list[str] = []
        while len(words) < target:
            words += _sentence(rng).split()
            if len(words) < target and not words[-1].endswith((".", "!", "?", ")")):
                words[-1] += "."
        out.append(" ".join(words[:target]))
    return out
