"""The text rows of `mmsearch bench encoders`: ratios within rounds, the fastembed folder and runner."""

import json
import os
import sys

import numpy as np
import pytest

from indexers.export import bench_text
from indexers.manifest import Manifest


def test_ratios_are_medians_of_the_ratios_within_rounds():
    # Round 2 runs everything twice as slow (a busier machine): the ratios hold.
    assert bench_text._ratio([1.0, 2.0, 1.0], [2.0, 4.0, 3.0]) == 2.0
    assert bench_text._ratio([2.0], [1.0]) == 0.5


def test_a_text_case_alternates_runtimes_and_compares_their_embeddings():
    calls: list[str] = []
    rng = np.random.default_rng(0)
    base_vectors = rng.standard_normal((70, 8)).astype(np.float32)

    def runtime(name, noise):
        def embed(texts):
            calls.append(name)
            return base_vectors[: len(texts)] + noise

        return bench_text.Runtime(name, embed, lambda t: embed([t]))

    texts = [f"text {i}" for i in range(70)]
    fake_fastembed = {"given_s": 2.0, "sorted_s": 1.0, "short_ms": [3.0, 5.0], "vectors": base_vectors}
    rows = bench_text.bench_text_case(
        "case",
        texts,
        runtime("base", 0.0),
        [runtime("mmsearch fp32", 0.0), runtime("mmsearch int8", 0.5)],
        lambda: fake_fastembed,
        rounds=2,
        short_runs=3,
    )
    # Each round: a warm-up, the pass, 10 + 3 short texts per runtime, runtimes in turn.
    assert calls[:15] == ["base"] * 15 and calls[15:30] == ["mmsearch fp32"] * 15
    assert len(calls) == 2 * 3 * 15
    assert [r.runtime for r in rows] == [
        "base (baseline)",
        "mmsearch fp32",
        "mmsearch int8",
        "fastembed (as given)",
        "fastembed (pre-sorted)",
    ]
    assert rows[0].vs_baseline == 1.0 and rows[0].cosine_min == pytest.approx(1.0)
    assert rows[1].cosine_min == pytest.approx(1.0) and rows[2].cosine_min < 0.999
    assert rows[1].vs_fastembed is not None and rows[3].vs_fastembed is None
    assert rows[3].short_ms == pytest.approx(4.0) and rows[4].short_ms is None
    assert rows[3].texts_per_s == pytest.approx(35.0) and rows[4].texts_per_s == pytest.approx(70.0)
    assert all(bench_text.format_text_row(r).startswith("case") for r in rows)


def _fastembed_python() -> str:
    python = os.environ.get("MMSEARCH_FASTEMBED_PYTHON") or sys.executable
    if not bench_text.fastembed_works(python):
        pytest.skip("no interpreter with fastembed: set MMSEARCH_FASTEMBED_PYTHON to one (fastembed's pins clash here)")
    return python


def test_fastembed_loads_the_very_same_graph_file(minilm_dir, tmp_path):
    manifest = Manifest.load(minilm_dir)
    tower = manifest.towers["text"]
    runner = bench_text.Fastembed(
        sys.executable,
        minilm_dir / tower.file,
        minilm_dir / "tokenizer.json",
        output=tower.output,
        pad=("[PAD]", 0),
        max_length=256,
        workdir=tmp_path,
    )
    graph = runner.folder / tower.file
    assert graph.is_symlink() and graph.resolve() == (minilm_dir / tower.file).resolve()
    assert json.loads((runner.folder / "tokenizer_config.json").read_text()) == {
        "model_max_length": 256,
        "pad_token": "[PAD]",
    }


def test_fastembed_runs_the_graph_and_agrees_with_mmsearch(minilm_dir, tmp_path):
    from indexers import load_model

    python = _fastembed_python()
    tower = Manifest.load(minilm_dir).towers["text"]
    runner = bench_text.Fastembed(
        python, minilm_dir / tower.file, minilm_dir / "tokenizer.json", output=tower.output,
        pad=("[PAD]", 0), max_length=256, workdir=tmp_path,
    )  # fmt: skip
    texts = ["a red ball for kids", "wireless headphones with a long battery life", "café"] * 30
    result = runner.run(bench_text.write_texts(tmp_path, texts), list(range(len(texts))), dim=384, threads=1,
                        batch=8, short_runs=3)  # fmt: skip
    assert result["given_s"] > 0 and result["sorted_s"] > 0 and len(result["short_ms"]) == 3
    ours = load_model(minilm_dir, device="cpu", precision="fp32").embed_texts(texts)
    np.testing.assert_allclose(result["vectors"], ours, atol=1e-4)
