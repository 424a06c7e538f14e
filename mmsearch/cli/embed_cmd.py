"""`mmsearch embed`: embed texts and images with an exported model, print JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from mmsearch.cli.options import device_option, threads_option
from mmsearch.errors import ConfigError

if TYPE_CHECKING:
    from indexers.manifest import Precision
    from indexers.onnx_session import Device


@click.command()
@click.option("--model", "model_dir", type=click.Path(), required=True, help="Model folder from `mmsearch export`.")
@click.option("--text", "texts", multiple=True, help="A text to embed (repeatable).")
@click.option("--image", "images", multiple=True, help="An image file to embed (repeatable).")
@device_option()
@click.option(
    "--precision",
    type=click.Choice(["auto", "fp32", "int8"]),
    default="auto",
    show_default=True,
    help="Graphs to load: auto is a tower's int8 graph when its min cosine to fp32 on the model's "
    "calibration set is >= 0.99, else its fp32 graph.",
)
@threads_option()
def embed(
    model_dir: str,
    texts: tuple[str, ...],
    images: tuple[str, ...],
    device: Device,
    precision: Precision,
    threads: int | None,
) -> None:
    """Embed texts and/or images and print the vectors as JSON.

    \b
    Example:
      mmsearch embed --model models/clip --text "a red bicycle" --image photo.jpg
    """
    from indexers.runtime import load_model

    if not texts and not images:
        raise ConfigError("nothing to embed: pass --text and/or --image")
    results = []
    with load_model(model_dir, device=device, precision=precision, threads=threads) as model:
        if texts:
            for text, vector in zip(texts, model.embed_texts(list(texts)), strict=True):
                results.append({"modality": "text", "input": text, "embedding": vector.tolist()})
        if images:
            for image, vector in zip(images, model.embed_images(list(images)), strict=True):
                results.append({"modality": "image", "input": image, "embedding": vector.tolist()})
    click.echo(
        json.dumps(
            {
                "model": model.name,
                "family": model.manifest.family,
                "architecture": model.manifest.architecture,
                "precision": model.precision,
                "towers": {key: p.model_dump() for key, p in model.precisions.items()},
                "dim": len(results[0]["embedding"]),
                "results": results,
            }
        )
    )
