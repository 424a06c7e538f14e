"""The `clip` family: an open_clip model exported as two ONNX towers plus its BPE tokenizer.

`image.onnx` maps `pixel_values` (N,3,H,W) to `image_embeds`; `text.onnx` maps `input_ids`
(N,L) with any 1 <= L <= context_length to `text_embeds`. Both outputs are L2-normalised.

open_clip's `CLIP.encode_text` adds all context_length positional rows and the full causal mask,
so it only runs on inputs padded to 77. The text graph here slices both to L instead. With the
causal mask a token never attends to a later one, and the pooled EOT token (the highest id,
found by argmax) sits before any padding, so inputs trimmed to the longest text give the same
embedding as 77-wide padding, about 5x faster.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from indexers.export.clip_tokenizer import write_clip_tokenizer
from indexers.export.common import Exported, ExportOptions, Int8Plan, TowerExport, export_onnx, graph_file, run_export
from indexers.export.families import family
from indexers.manifest import ImagePreprocess, Manifest, TokenizerConfig, TowerInfo, WeightsSource
from mmsearch.errors import ConfigError, ExportError, UnknownNameError, WeightsError
from mmsearch.files import sha256_file

if TYPE_CHECKING:
    from indexers.text import TextTokenizer

log = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
# open_clip's BPE vocabulary: 2 x 256 byte symbols, 48,894 merges, <start_of_text>, <end_of_text>.
BPE_VOCAB_SIZE = 49408
# Random initialisation is seeded, so `weights="none"` exports are reproducible.
INIT_SEED = 0

# Real captions for the parity check: ordinary, punctuated, non-ASCII, and one past the context.
PARITY_TEXTS = (
    "a photo of a cat",
    "A red double-decker bus driving down a busy London street at dusk.",
    "Two dogs playing frisbee on the beach!!",
    "naïve café – “quoted” text & <html> entities",  # noqa: RUF001 - odd punctuation on purpose
    "東京の夜景",
    "a diagram 🚀 of 3 rockets, 42 stars and 1,000 lights",
    " ".join(["a very long caption that keeps going"] * 20),
)


class ClipExportConfig(ExportOptions):
    """Options of `export_model("clip", ...)`.

    Attributes:
        architecture: an open_clip architecture name (`open_clip.list_models()`), or the name for `model_cfg`.
        weights: `none` (seeded random init), a path to a local checkpoint for the architecture,
            or an open_clip pretrained tag (downloaded when online).
        model_cfg: a custom open_clip model config (`embed_dim`, `vision_cfg`, `text_cfg`) used
            instead of the built-in one for `architecture`.
        opset: ONNX opset.
        tolerance: max abs difference allowed between ONNX and PyTorch embeddings.
        quantize: `int8` adds dynamic int8 quantization after the fp32 parity check.
        overwrite: replace an existing, non-empty output folder.
    """

    architecture: str = "ViT-B-32"
    weights: str = "none"
    model_cfg: dict[str, Any] | None = None


@dataclass(frozen=True)
class LoadedClip:
    """An open_clip model ready for export, with what the manifest needs to know about it."""

    model: nn.Module
    architecture: str
    preprocess_cfg: dict[str, Any]
    weights: WeightsSource
    embed_dim: int
    context_length: int
    causal: bool


def _open_clip():  # noqa: ANN202 - the module
    from indexers.export.torch_compat import patch_torchvision

    patch_torchvision()
    import open_clip

    return open_clip


# --- which architectures this family can export --------------------------------------------


def resolve_model_cfg(architecture: str, model_cfg: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The open_clip model config for `architecture`, or a validated copy of `model_cfg`.

    Raises:
        UnknownNameError: `architecture` is not an open_clip architecture and no `model_cfg` is given.
        ConfigError: `model_cfg` lacks `embed_dim`, `vision_cfg` or `text_cfg`.
    """
    open_clip = _open_clip()
    if model_cfg is None:
        cfg = open_clip.get_model_config(architecture) if architecture in open_clip.list_models() else None
        if cfg is None:
            # Listing only what this family exports keeps the common names inside the message's
            # first 40 (list_models() sorts EVA, MobileCLIP and SigLIP variants ahead of ViT-B-32).
            raise UnknownNameError("open_clip architecture", architecture, supported_architectures())
        return cfg
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if k not in model_cfg]
    if missing:
        raise ConfigError(
            f"model_cfg for {architecture!r} lacks {', '.join(missing)}: an open_clip model config "
            "needs embed_dim, vision_cfg and text_cfg"
        )
    not_dicts = [k for k in ("vision_cfg", "text_cfg") if not isinstance(model_cfg[k], Mapping)]
    if not_dicts:
        raise ConfigError(f"model_cfg for {architecture!r}: {', '.join(not_dicts)} must be a mapping")
    return copy.deepcopy(dict(model_cfg))


def unsupported_reason(architecture: str, cfg: Mapping[str, Any]) -> str | None:
    """Why the `clip` family cannot export this config, or None if it can.

    The family exports CLIPs whose text goes through open_clip's own BPE SimpleTokenizer into its
    causal or bidirectional TextTransformer, pooled at the EOT token.
    """
    text = cfg.get("text_cfg", {})
    if "multimodal_cfg" in cfg:
        return "is a CoCa model (captioning decoder)"
    if text.get("hf_model_name"):
        return f"has the Hugging Face text tower {text['hf_model_name']!r}"
    if text.get("hf_tokenizer_name"):  # open_clip's own test: a non-empty name means HFTokenizer
        return f"uses the Hugging Face tokenizer {text['hf_tokenizer_name']!r}"
    if "siglip" in architecture.lower():
        return "uses open_clip's SigLIP tokenizer (chosen by the name)"
    kwargs = dict(text.get("tokenizer_kwargs") or {})
    if kwargs.pop("clean", "lower") != "lower" or kwargs.pop("reduction_mask", "") or kwargs:
        return f"tokenizes with non-default options {text.get('tokenizer_kwargs')!r}"
    if text.get("pool_type", "argmax") != "argmax" or text.get("embed_cls"):
        return f"pools text with {text.get('pool_type')!r}/embed_cls, not at the EOT token"
    if text.get("vocab_size", BPE_VOCAB_SIZE) < BPE_VOCAB_SIZE:
        return f"has a text vocabulary of {text.get('vocab_size')} tokens, fewer than the BPE's {BPE_VOCAB_SIZE}"
    return None


def supported_architectures() -> list[str]:
    """open_clip's built-in architectures the `clip` family can export."""
    open_clip = _open_clip()
    return [m for m in open_clip.list_models() if unsupported_reason(m, open_clip.get_model_config(m)) is None]


def check_supported(architecture: str, cfg: Mapping[str, Any]) -> None:
    """Raise ConfigError naming why `architecture` can't be exported and which ones can."""
    reason = unsupported_reason(architecture, cfg)
    if reason is not None:
        raise ConfigError(
            f"open_clip architecture {architecture!r} {reason}; the clip family exports models that use "
            f"open_clip's BPE SimpleTokenizer: {', '.join(supported_architectures())}"
        )


# --- weights -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Weights:
    source: WeightsSource
    path: Path | None = None
    tag_cfg: Mapping[str, Any] | None = None


def resolve_weights(architecture: str, weights: str) -> _Weights:
    """Turn the `weights` option into a local checkpoint path (downloading a pretrained tag).

    Raises:
        WeightsError: not `none`, not an existing file, and not a pretrained tag of the
            architecture; or the tag's download failed (offline).
    """
    if weights == "none":
        return _Weights(WeightsSource(kind="none"))
    path = Path(weights).expanduser()
    if path.is_file():
        return _Weights(WeightsSource(kind="file", name=str(path), sha256=sha256_file(path)), path)
    open_clip = _open_clip()
    tag_cfg = open_clip.get_pretrained_cfg(architecture, weights)
    if not tag_cfg:
        tags = open_clip.list_pretrained_tags_by_model(architecture)
        raise WeightsError(
            f"weights {weights!r} is neither an existing file nor a pretrained tag of {architecture!r}; "
            f"use 'none', a checkpoint file, or one of: {', '.join(tags) or '(no pretrained tags)'}"
        )
    try:
        downloaded = open_clip.pretrained.download_pretrained(tag_cfg)
    except Exception as e:  # network, hub and cache errors come in many types
        raise WeightsError(
            f"could not download pretrained weights {weights!r} for {architecture!r} ({type(e).__name__}: "
            f"{e}); use --weights none or a local checkpoint file"
        ) from e
    if not downloaded:
        raise WeightsError(f"open_clip has no download location for {architecture!r} weights {weights!r}")
    downloaded = Path(downloaded)
    return _Weights(WeightsSource(kind="pretrained", name=weights, sha256=sha256_file(downloaded)), downloaded, tag_cfg)


def _load_checkpoint(model: nn.Module, path: Path, architecture: str) -> None:
    open_clip = _open_clip()
    try:
        open_clip.load_checkpoint(model, str(path), strict=True)
    except Exception as e:  # unpickling, safetensors, key and shape errors: all "wrong file"
        detail = str(e).strip().splitlines()
        raise WeightsError(
            f"weights file {str(path)!r} does not fit open_clip architecture {architecture!r}: "
            f"{type(e).__name__}: {' '.join(detail)[:600]}"
        ) from e


# --- model -------------------------------------------------------------------------------------


def build_model(architecture: str, cfg: Mapping[str, Any]) -> nn.Module:
    """Instantiate the open_clip model (fp32, CPU, eval) with seeded random weights.

    Raises:
        ConfigError: the config does not build.
    """
    open_clip = _open_clip()
    kwargs = copy.deepcopy(dict(cfg))
    custom_text = kwargs.pop("custom_text", False)
    model_class = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(INIT_SEED)
            model = model_class(**kwargs)
    except Exception as e:  # dataclass TypeErrors, asserts and timm lookups on a bad config
        raise ConfigError(
            f"open_clip config for {architecture!r} does not build a model: {type(e).__name__}: {e}"
        ) from e
    return model.eval()


def _preprocess_cfg(model: nn.Module, overlay: Mapping[str, Any] | None) -> dict[str, Any]:
    """open_clip's final preprocessing config, as `create_model` computes it."""
    from dataclasses import asdict

    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    cfg = merge_preprocess_dict(asdict(PreprocessCfg()), dict(overlay or {}))
    size = getattr(model.visual, "image_size", cfg["size"])
    cfg["size"] = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
    return cfg


def load_clip(config: ClipExportConfig) -> LoadedClip:
    """Build the PyTorch model `config` describes and load its weights.

    Raises:
        UnknownNameError: unknown architecture.
        ConfigError: an architecture this family can't export, or a `model_cfg` that doesn't build.
        WeightsError: weights that are not a file or tag, can't be downloaded, or don't fit.
    """
    cfg = resolve_model_cfg(config.architecture, config.model_cfg)
    check_supported(config.architecture, cfg)
    weights = resolve_weights(config.architecture, config.weights)
    model = build_model(config.architecture, cfg)
    if weights.path is not None:
        _load_checkpoint(model, weights.path, config.architecture)
        _warn_quick_gelu(config, cfg, weights)
    text: Any = getattr(model, "text", model)  # CustomTextCLIP keeps its tower in `.text`
    return LoadedClip(
        model=model.eval(),
        architecture=config.architecture,
        preprocess_cfg=_preprocess_cfg(model, weights.tag_cfg),
        weights=weights.source,
        embed_dim=int(cfg["embed_dim"]),
        context_length=int(text.context_length),
        causal=getattr(text, "attn_mask", None) is not None,
    )


def _warn_quick_gelu(config: ClipExportConfig, cfg: Mapping[str, Any], weights: _Weights) -> None:
    # open_clip.create_model only warns here and loads anyway; the export matches it, so it warns too.
    if weights.tag_cfg is None:
        return
    tag_quick = bool(weights.tag_cfg.get("quick_gelu", False))
    if tag_quick != bool(cfg.get("quick_gelu", False)):
        log.warning(
            "pretrained %r was trained with quick_gelu=%s but architecture %r has quick_gelu=%s; open_clip "
            "loads it anyway, as does this export, and the embeddings come out degraded: pick the "
            "architecture that matches (e.g. the -quickgelu variant for OpenAI weights)",
            config.weights,
            tag_quick,
            config.architecture,
            not tag_quick,
        )


class ClipImageTower(nn.Module):
    """`pixel_values` -> L2-normalised `image_embeds` (open_clip's `encode_image(normalize=True)`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.visual = cast(nn.Module, model.visual)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual(pixel_values), dim=-1)


class ClipTextTower(nn.Module):
    """`input_ids` (N, L) -> L2-normalised `text_embeds`, for any 1 <= L <= context_length.

    open_clip's `encode_text` with the positional embedding and causal mask sliced to L.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        text: Any = getattr(model, "text", model)  # CustomTextCLIP keeps its tower in `.text`
        self.token_embedding: nn.Module = text.token_embedding
        self.positional_embedding: torch.Tensor = text.positional_embedding
        self.transformer: nn.Module = text.transformer
        self.ln_final: nn.Module = text.ln_final
        # open_clip's projection: nn.Linear (with a bias), a Parameter matrix, or None.
        self.text_projection: nn.Module | torch.Tensor | None = text.text_projection
        mask = getattr(text, "attn_mask", None)
        self.register_buffer("causal_mask", None if mask is None else mask.clone(), persistent=False)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        length = input_ids.shape[1]
        x = self.token_embedding(input_ids) + self.positional_embedding[:length]
        causal = cast(torch.Tensor | None, self.causal_mask)
        mask = None if causal is None else causal[:length, :length]
        x = self.ln_final(self.transformer(x, attn_mask=mask))
        # open_clip's argmax pooling: EOT has the highest id, so argmax finds it in every row.
        x = x[torch.arange(x.shape[0]), input_ids.argmax(dim=-1)]
        if isinstance(self.text_projection, nn.Module):
            x = self.text_projection(x)
        elif self.text_projection is not None:
            x = x @ self.text_projection
        return F.normalize(x, dim=-1)


# --- parity inputs -----------------------------------------------------------------------------


def parity_images() -> list[Any]:
    """A few generated PIL images of different sizes, aspect ratios and content."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    gradient = np.linspace(0, 255, 320, dtype=np.float32)
    images = [
        Image.fromarray(
            np.stack(
                [np.tile(gradient, (200, 1)), np.tile(gradient[::-1], (200, 1)), np.full((200, 320), 96.0)], axis=-1
            ).astype(np.uint8)
        ),
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)),
        Image.fromarray((np.indices((240, 180)).sum(axis=0) // 20 % 2 * 255).astype(np.uint8)).convert("RGB"),
        Image.fromarray(rng.integers(0, 256, (17, 29, 3), dtype=np.uint8)),
    ]
    drawn = Image.new("RGB", (400, 300), (30, 120, 200))
    draw = ImageDraw.Draw(drawn)
    draw.ellipse((100, 50, 300, 250), fill=(250, 200, 20))
    draw.rectangle((10, 10, 80, 290), fill=(200, 30, 30))
    images.append(drawn)
    return images


def parity_pixels(preprocess_cfg: Mapping[str, Any]) -> torch.Tensor:
    """`parity_images()` through open_clip's own eval transform, stacked (N,3,H,W)."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    transform = image_transform_v2(PreprocessCfg(**dict(preprocess_cfg)), is_train=False)
    return torch.stack([transform(image) for image in parity_images()])


def image_preprocess(preprocess_cfg: Mapping[str, Any]) -> ImagePreprocess:
    """The manifest's ImagePreprocess for an open_clip preprocessing config.

    Raises:
        ConfigError: an interpolation or resize mode the run-time replay doesn't implement.
    """
    mode = preprocess_cfg.get("resize_mode", "shortest")
    try:
        height, width = (int(s) for s in preprocess_cfg["size"])
        return ImagePreprocess(
            size=(height, width),
            # `shortest` scales the short side to the crop size (open_clip's Resize(size[0])).
            resize_size=height if mode == "shortest" else max(height, width),
            resize_mode=mode,
            interpolation=preprocess_cfg.get("interpolation", "bicubic"),
            mean=_rgb(preprocess_cfg["mean"]),
            std=_rgb(preprocess_cfg["std"]),
            fill_color=int(preprocess_cfg.get("fill_color", 0)),
        )
    except ValueError as e:  # a size or mean/std of the wrong length, or a mode pydantic refuses
        raise ConfigError(
            f"open_clip preprocessing {dict(preprocess_cfg)!r} cannot be replayed at run time: {e}"
        ) from e


def _rgb(values: Any) -> tuple[float, float, float]:
    red, green, blue = (float(v) for v in values)
    return red, green, blue


def unpad(ids: list[int]) -> list[int]:
    """open_clip's padded id row cut after its last `<end_of_text>`.

    Padding is id 0, which is also the real token `!`, so only what follows EOT is padding.
    """
    ends = [i for i, t in enumerate(ids) if t == BPE_VOCAB_SIZE - 1]
    return list(ids[: ends[-1] + 1]) if ends else list(ids)


def _reference_ids(texts: list[str], context_length: int) -> torch.Tensor:
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=context_length)(texts)


def check_tokenizer(tokenizer: Any, texts: list[str], context_length: int) -> None:
    """Raise ExportError if `tokenizer` (a TextTokenizer) and open_clip disagree on any text."""
    reference = _reference_ids(texts, context_length)
    for text, ids, ref in zip(texts, tokenizer.ids(texts), reference.tolist(), strict=True):
        expected = unpad(ref)
        if ids != expected:
            raise ExportError(f"tokenizer.json gives {ids} for {text!r}, open_clip gives {expected}")


# --- export ------------------------------------------------------------------------------------


def _export_towers(loaded: LoadedClip, stage: Path, opset: int) -> None:
    Dim = torch.export.Dim  # noqa: N806 - torch's name
    size = loaded.preprocess_cfg["size"]
    batch = Dim("batch")
    gen = torch.Generator().manual_seed(INIT_SEED)  # examples only shape the trace; keep global RNG untouched
    export_onnx(
        ClipImageTower(loaded.model),
        (torch.randn(2, 3, *size, generator=gen),),
        stage / graph_file("image"),
        input_names=["pixel_values"],
        output_name="image_embeds",
        dynamic_shapes={"pixel_values": {0: batch}},
        opset=opset,
    )
    example_length = min(8, loaded.context_length)
    example_ids = torch.randint(0, BPE_VOCAB_SIZE - 2, (2, example_length), generator=gen)
    example_ids[:, -1] = BPE_VOCAB_SIZE - 1
    export_onnx(
        ClipTextTower(loaded.model),
        (example_ids,),
        stage / graph_file("text"),
        input_names=["input_ids"],
        output_name="text_embeds",
        dynamic_shapes={"input_ids": {0: batch, 1: Dim("seq", min=1, max=loaded.context_length)}},
        opset=opset,
    )


def write_tokenizer(loaded: LoadedClip, stage: Path) -> tuple[TokenizerConfig, TextTokenizer]:
    """Write open_clip's BPE tokenizer as tokenizer.json and check it against open_clip on PARITY_TEXTS.

    Raises:
        ExportError: the converted tokenizer gives other ids than open_clip's.
    """
    from indexers.text import TextTokenizer

    path = write_clip_tokenizer(stage / TOKENIZER_FILE)
    cfg = TokenizerConfig(
        file=TOKENIZER_FILE,
        sha256=sha256_file(path),
        context_length=loaded.context_length,
        pad_id=0,
        clean="clip",
        # Only a causal text tower ignores padding; a bidirectional one needs the full width.
        trim_to_longest=loaded.causal,
        input_names=("input_ids",),
    )
    tokenizer = TextTokenizer(path, cfg)
    check_tokenizer(tokenizer, list(PARITY_TEXTS), loaded.context_length)
    return cfg, tokenizer


def _towers(loaded: LoadedClip, tokenizer_cfg: TokenizerConfig, tokenizer: TextTokenizer) -> tuple[TowerExport, ...]:
    """Both towers with their parity inputs and open_clip's own outputs on them."""
    texts = list(PARITY_TEXTS)
    pixels = parity_pixels(loaded.preprocess_cfg)
    model: Any = loaded.model  # open_clip's CLIP / CustomTextCLIP: encode_image, encode_text
    with torch.no_grad():
        image_ref = model.encode_image(pixels, normalize=True).numpy()
        # Reference: open_clip's own path, 77-wide padding; ONNX gets the trimmed feeds.
        text_ref = model.encode_text(_reference_ids(texts, loaded.context_length), normalize=True).numpy()
    dynamic = Int8Plan(method="dynamic-int8")
    return (
        TowerExport(
            key="image",
            info=TowerInfo(
                modality="image",
                dim=loaded.embed_dim,
                output="image_embeds",
                preprocess=image_preprocess(loaded.preprocess_cfg),
            ),
            feeds={"pixel_values": pixels.numpy()},
            reference=image_ref,
            int8=dynamic,
        ),
        TowerExport(
            key="text",
            info=TowerInfo(modality="text", dim=loaded.embed_dim, output="text_embeds", tokenizer=tokenizer_cfg),
            feeds=tokenizer.encode(texts),
            reference=text_ref,
            int8=dynamic,
            # Fused attention, SkipLayerNorm, BiasGelu: measured faster for the text tower only
            # (the image tower is faster with onnxruntime's own fusions; indexers.export.optimize).
            optimize=True,
        ),
    )


def build(config: ClipExportConfig, stage: Path) -> Exported:
    """The clip family's steps of the export skeleton: model, tokenizer, both fp32 graphs, references."""
    loaded = load_clip(config)
    tokenizer_cfg, tokenizer = write_tokenizer(loaded, stage)
    _export_towers(loaded, stage, config.opset)
    return Exported(
        architecture=loaded.architecture,
        weights=loaded.weights,
        towers=_towers(loaded, tokenizer_cfg, tokenizer),
        toolchain=("open_clip_torch", "tokenizers", "ftfy", "onnxscript"),
    )


@family(
    "clip",
    description="open_clip CLIP models: image and text towers into one space, BPE tokenizer",
    modalities=("image", "text"),
    config=ClipExportConfig,
)
def export_clip(config: ClipExportConfig, out_dir: Path) -> Manifest:
    """Export an open_clip model to `out_dir`: image.onnx, text.onnx, tokenizer.json, manifest.json.

    With `quantize="int8"`, image.int8.onnx and text.int8.onnx (dynamic int8) are written beside them.

    Args:
        config: the export options.
        out_dir: the model folder; written atomically.

    Returns:
        The manifest written to `out_dir`.

    Raises:
        UnknownNameError: unknown architecture.
        ConfigError: an architecture without open_clip's BPE tokenizer, or a bad `model_cfg`.
        WeightsError: weights that don't fit, or a pretrained tag that can't be downloaded.
        ExportError: `out_dir` exists (without `overwrite`), or the ONNX export failed.
        ParityError: ONNX and PyTorch embeddings differ by more than `config.tolerance`.
    """
    return run_export("clip", config, out_dir, lambda stage: build(config, stage))
