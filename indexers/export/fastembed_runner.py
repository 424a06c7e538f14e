"""Time fastembed on an exported text graph; run as a script by the encoder benchmark.

It runs under another interpreter (a venv with fastembed, whose pins clash with
sentence-transformers'), so it imports only the standard library, numpy and fastembed. It
registers the graph as a fastembed custom model (no pooling: the graph outputs the sentence
embedding), loads it from the folder the benchmark prepared (the graph file linked in, the
tokenizer and its config), and prints one JSON object: the seconds of one `embed` pass over the
texts as given and pre-sorted by length, the milliseconds of each single short text, and where
it saved the embeddings of the texts as given.

Usage: python fastembed_runner.py SPEC.json  (see `indexers.export.bench_text.FastembedSpec`)
"""

from __future__ import annotations

import json
import sys
import time


def main(spec_path: str) -> None:
    import numpy as np
    from fastembed import TextEmbedding  # type: ignore[import-not-found]
    from fastembed.common.model_description import ModelSource, PoolingType  # type: ignore[import-not-found]

    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    with open(spec["texts_file"], encoding="utf-8") as f:
        texts = json.load(f)
    order = spec["sorted_order"]
    name = "mmsearch/bench-" + spec["key"]
    TextEmbedding.add_custom_model(
        model=name,
        pooling=PoolingType.DISABLED,
        normalization=True,
        sources=ModelSource(hf=name),
        dim=spec["dim"],
        model_file=spec["model_file"],
        output_name=spec["output_name"],
    )
    model = TextEmbedding(name, specific_model_path=spec["model_dir"], threads=spec["threads"], cuda=False)
    batch = spec["batch_size"]

    def embed(docs: list[str]) -> np.ndarray:
        return np.stack(list(model.embed(docs, batch_size=batch)))

    embed(texts[: 2 * batch])  # warm-up: first runs allocate and pick kernels
    started = time.perf_counter()
    given = embed(texts)
    given_s = time.perf_counter() - started
    started = time.perf_counter()
    embed([texts[i] for i in order])
    sorted_s = time.perf_counter() - started
    short_ms = []
    for i in range(spec["short_warmup"] + spec["short_runs"]):
        started = time.perf_counter()
        embed([spec["short_text"]])
        if i >= spec["short_warmup"]:
            short_ms.append(1e3 * (time.perf_counter() - started))
    np.save(spec["embeddings_file"], given.astype(np.float32))
    json.dump({"given_s": given_s, "sorted_s": sorted_s, "short_ms": short_ms}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
