"""The `bert` family: any sentence-transformers text model to one ONNX graph.

The graph holds the whole sentence-transformers pipeline: transformer -> the model's own Pooling
(cls / max / mean / mean_sqrt_len_tokens / weightedmean / lasttoken, or several concatenated) ->
its Dense / LayerNorm / Normalize modules -> a final L2 normalisation. It takes `input_ids` and
`attention_mask` (plus `token_type_ids` where the transformer reads them), int64 with dynamic
batch and sequence axes, and outputs float32 `text_embeds`. The model's fast tokenizer is saved
beside it as `tokenizer.json`, set to truncate at `max_length` and never pad, so the torch-free
`indexers.text.TextTokenizer` reproduces sentence-transformers' token ids exactly.

Manifest fields:
    name: as for every family, the output folder's name unless `name` is given (`--out
        models/minilm` makes `minilm`, hence the vectors `minilm.text`).
    architecture: `<transformers class>:<hub name or model name>`, e.g.
        `BertModel:sentence-transformers/all-MiniLM-L6-v2` or `BertModel:all-MiniLM-L6-v2`, the
        model name being a folder's model card title when that is one word (not
        sentence-transformers' generated "SentenceTransformer"), else the folder's name.
    weights: kind `hub` (name = the hub name) or `folder` (name = the resolved path), sha256 of
        `model.safetensors` (else `pytorch_model.bin`) where there is one.

Errors: the model cannot be found, downloaded or loaded, or is not a sentence-transformers model
-> WeightsError. The model loads but uses something the graph cannot hold (a module other than
Transformer/Pooling/Dense/LayerNorm/Dropout/Normalize, a default prompt, left truncation) or a bad
`max_length` -> ConfigError.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import Field

from indexers.export.common import Exported, ExportOptions, Int8Plan, TowerExport, export_onnx, graph_file, run_export
from indexers.export.families import family
from indexers.manifest import Manifest, TokenizerConfig, TowerInfo, WeightsSource
from mmsearch.errors import ConfigError, ExportError, WeightsError
from mmsearch.files import sha256_file

if TYPE_CHECKING:
    from indexers.text import TextTokenizer

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TOKENIZER_FILE = "tokenizer.json"
OUTPUT_NAME = "text_embeds"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
# Modules after pooling that act on `sentence_embedding` alone and export as they are.
_HEAD_MODULES = ("Dense", "LayerNorm", "Dropout", "Normalize")

# Parity texts: short, long, accents, CJK, emoji, code, punctuation, all-caps. One more text,
# longer than max_length, is added at run time so truncation is part of what is checked.
PARITY_TEXTS = (
    "a photo of a cat",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog near the riverbank at dawn.",
    "Crème brûlée, jalapeño, naïve café: accents must survive tokenisation.",
    "東京は日本の首都です。",
    "🍕🔥 best pizza in town!!! 🎉",
    "def add(a, b):\n    return a + b",
    "NEW YORK (Reuters) - Stocks rose on Tuesday as investors weighed earnings.",
    "Straße, Ærø, Øresund, İstanbul, ß",
    "x",
)


class BertExportConfig(ExportOptions):
    """Options of `mmsearch export bert`.

    Attributes:
        model: a sentence-transformers model: a hub name (downloaded unless cached) or a local
            folder saved by `SentenceTransformer.save()`.
        max_length: the token limit, special tokens included; default the model's `max_seq_length`.
        opset: ONNX opset of the graph.
        tolerance: max abs difference allowed between ONNX and sentence-transformers embeddings.
        quantize: `int8` also writes a dynamic int8 graph beside the fp32 one.
        overwrite: replace an existing, non-empty output folder.
    """

    model: str = DEFAULT_MODEL
    max_length: int | None = Field(default=None, ge=2)


@dataclass(frozen=True)
class ModelSource:
    """Where the model comes from: `hub` (a repo id) or `folder` (a local path)."""

    kind: Literal["hub", "folder"]
    name: str


# --------------------------------------------------------------------------------------------
# Locating and loading the model


def resolve_source(model: str) -> ModelSource:
    """Decide whether `model` is a local folder or a hub name, and check a folder's shape.

    Raises:
        WeightsError: a path that does not exist, is a file, or is not a sentence-transformers folder.
    """
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise WeightsError(
                f"model {model!r} is a file; expected a sentence-transformers model folder "
                f"or a hub name such as {DEFAULT_MODEL!r}"
            )
        if not (path / "modules.json").is_file():
            raise WeightsError(
                f"{str(path)!r} is not a sentence-transformers model folder: it has no modules.json "
                "(save one with SentenceTransformer.save(), or pass a hub name)"
            )
        return ModelSource("folder", str(path.resolve()))
    if path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1 or "\\" in model:
        raise WeightsError(f"model folder {model!r} does not exist")
    return ModelSource("hub", model)


def load_sentence_transformer(source: ModelSource) -> Any:
    """Load the model on CPU in float32 with eager attention.

    Eager attention, not sdpa: both export with the dynamo exporter and agree with PyTorch to
    ~2e-7 (measured on all-MiniLM-L6-v2), but eager gives the smaller graph (249 nodes vs 321,
    no opset-18 Attention op to map sdpa onto, so it is decomposed anyway), runs as fast in
    onnxruntime, and every transformers architecture implements it.

    Raises:
        WeightsError: the model cannot be downloaded or loaded.
    """
    from indexers.export.torch_compat import import_torchvision

    import_torchvision()  # sentence-transformers imports torchvision, which fails without the patch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    # transformers' own "Loading weights" bar would interleave with the export's stage lines.
    hf_logging.disable_progress_bar()
    try:
        return SentenceTransformer(
            source.name,
            device="cpu",
            model_kwargs={"attn_implementation": "eager", "dtype": torch.float32},
        )
    except Exception as e:  # hub, transformers and safetensors raise many unrelated types
        if source.kind == "hub":
            raise WeightsError(
                f"sentence-transformers model {source.name!r} could not be downloaded from the "
                f"Hugging Face Hub or found in its cache ({type(e).__name__}: {e}); check the name "
                "and the network, or pass a local folder saved with SentenceTransformer.save()"
            ) from e
        raise WeightsError(f"cannot load the sentence-transformers model in {source.name!r}: {e}") from e


def local_folder(source: ModelSource) -> Path | None:
    """The folder holding the model's files: the path itself, or the hub cache's snapshot."""
    if source.kind == "folder":
        return Path(source.name)
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(source.name, "modules.json", cache_dir=os.environ.get("SENTENCE_TRANSFORMERS_HOME"))
    return Path(cached).parent if isinstance(cached, str) else None


def weights_sha256(folder: Path | None) -> str | None:
    if folder is None:
        return None
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return sha256_file(folder / name)
    return None


def display_name(source: ModelSource) -> str:
    """A short name: the hub name's last part, or a folder's model-card title / folder name."""
    if source.kind == "hub":
        return source.name.rstrip("/").split("/")[-1]
    folder = Path(source.name)
    readme = folder / "README.md"
    if readme.is_file():
        match = re.search(r"^# (\S{1,100})\s*$", readme.read_text(encoding="utf-8", errors="replace"), re.M)
        # sentence-transformers' generated cards are titled "SentenceTransformer [based on ...]".
        if match and not match.group(1).startswith("SentenceTransformer"):
            return match.group(1)
    return folder.name


# --------------------------------------------------------------------------------------------
# The graph


def pool(token_embeddings: torch.Tensor, attention_mask: torch.Tensor, modes: Sequence[str]) -> torch.Tensor:
    """sentence-transformers' Pooling over padded token embeddings, modes concatenated in order.

    Written out here rather than calling `Pooling.forward`, which branches on prompt lengths,
    FlashAttention's flattened batches and `torch.jit.is_tracing()`. Padding may sit on either
    side, as in sentence-transformers.
    """
    dtype = token_embeddings.dtype
    mask = attention_mask.unsqueeze(-1).to(dtype)
    length = token_embeddings.shape[1]
    # int32: some onnxruntime builds lack int64 ArgMax kernels (onnxruntime#10068).
    mask_i32 = attention_mask.to(torch.int32)
    out: list[torch.Tensor] = []
    for mode in modes:
        if mode == "cls":
            first = mask_i32.argmax(dim=1)
            index = first.view(-1, 1, 1).expand(-1, 1, token_embeddings.shape[-1])
            out.append(torch.gather(token_embeddings, 1, index).squeeze(1))
        elif mode == "max":
            out.append(token_embeddings.masked_fill(mask == 0, float("-inf")).max(dim=1).values)
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            total = (token_embeddings * mask).sum(dim=1)
            count = torch.clamp(mask.sum(dim=1), min=1e-9)
            out.append(total / (count if mode == "mean" else torch.sqrt(count)))
        elif mode == "weightedmean":
            # Position weights start at 1 on the first real token (left padding shifts them).
            weights = torch.arange(1, length + 1, dtype=dtype, device=token_embeddings.device).view(1, -1, 1)
            weights = weights - mask_i32.argmax(dim=1).to(dtype).view(-1, 1, 1)
            weighted = mask * weights
            total = (token_embeddings * weighted).sum(dim=1)
            out.append(total / torch.clamp(weighted.sum(dim=1), min=1e-9))
        elif mode == "lasttoken":
            values, from_end = mask_i32.flip(1).max(dim=1)
            from_end = torch.where(values == 0, length - 1, from_end)
            index = (length - from_end - 1).view(-1, 1, 1).expand(-1, 1, token_embeddings.shape[-1])
            out.append(torch.gather(token_embeddings * mask, 1, index).squeeze(1))
        else:
            raise ConfigError(f"pooling mode {mode!r} is not supported; supported: {', '.join(POOLING_MODES)}")
    return torch.cat(out, dim=-1)


class _SentenceEncoder(torch.nn.Module):
    """transformer -> pooling -> head modules -> L2 normalisation."""

    def __init__(self, transformer: torch.nn.Module, modes: tuple[str, ...], head: Sequence[torch.nn.Module]) -> None:
        super().__init__()
        self.transformer = transformer
        self.modes = modes
        self.head = torch.nn.ModuleList(head)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        out = self.transformer(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **extra)
        features = {"sentence_embedding": pool(out.last_hidden_state, attention_mask, self.modes)}
        for module in self.head:
            features = module(features)
        return torch.nn.functional.normalize(features["sentence_embedding"], p=2, dim=-1)


class _EncoderWithTypes(_SentenceEncoder):
    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        return self.encode(input_ids, attention_mask, token_type_ids=token_type_ids)


class _EncoderNoTypes(_SentenceEncoder):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encode(input_ids, attention_mask)


@dataclass(frozen=True)
class Pipeline:
    """What the graph is built from, read off a loaded SentenceTransformer."""

    transformer: torch.nn.Module  # the Hugging Face model
    tokenizer: Any  # its transformers fast tokenizer
    modes: tuple[str, ...]
    head: tuple[torch.nn.Module, ...]
    input_names: tuple[str, ...]


def read_pipeline(st: Any) -> Pipeline:
    """Check the SentenceTransformer's modules and read the parts the graph needs.

    Raises:
        ConfigError: a module, prompt or tokenizer setting the exported graph cannot reproduce.
    """
    modules = list(st)
    kinds = [type(m).__name__ for m in modules]
    if not modules or kinds[0] != "Transformer":
        raise ConfigError(
            f"the model's first module is {kinds[0] if kinds else 'missing'}; the bert family exports "
            "models whose first module is a sentence-transformers Transformer"
        )
    first = modules[0]
    params = first.modality_config.get("text")
    if params is None or params.get("method") != "forward" or params.get("method_output_name") != "last_hidden_state":
        raise ConfigError(
            f"the Transformer module reads {first.modality_config!r}; only a text model whose "
            "forward() gives last_hidden_state can be exported"
        )
    if first.tokenizer is None or not getattr(first.tokenizer, "is_fast", False):
        raise ConfigError("the model has no fast (tokenizers-backed) tokenizer, which the run-time path needs")
    if getattr(first.tokenizer, "truncation_side", "right") != "right":
        raise ConfigError(
            f"the tokenizer truncates on the {first.tokenizer.truncation_side!r}; the run-time "
            "tokenizer truncates on the right only"
        )
    if getattr(st, "default_prompt_name", None):
        raise ConfigError(
            f"the model prepends the prompt {st.default_prompt_name!r} to every text by default; "
            "the exported graph would embed texts without it"
        )
    if len(modules) < 2 or kinds[1] != "Pooling":
        raise ConfigError(f"the model's modules are {kinds}; expected a Pooling module after the Transformer")
    modes = modules[1].get_config_dict()["pooling_mode"]
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    unknown = [m for m in modes if m not in POOLING_MODES]
    if unknown:
        raise ConfigError(f"pooling mode {unknown[0]!r} is not supported; supported: {', '.join(POOLING_MODES)}")
    head = modules[2:]
    for module, kind in zip(head, kinds[2:], strict=True):
        if kind not in _HEAD_MODULES:
            raise ConfigError(f"module {kind} after pooling is not supported; supported: {', '.join(_HEAD_MODULES)}")
        names = {getattr(module, a, "sentence_embedding") for a in ("module_input_name", "module_output_name")}
        if names != {"sentence_embedding"}:
            raise ConfigError(f"module {kind} reads or writes {sorted(names)}; only sentence_embedding is supported")
    hf = first.auto_model
    inputs = ["input_ids", "attention_mask"]
    if "token_type_ids" in first.tokenizer.model_input_names and "token_type_ids" in _forward_params(hf):
        inputs.append("token_type_ids")
    return Pipeline(hf, first.tokenizer, modes, tuple(head), tuple(inputs))


def _forward_params(module: torch.nn.Module) -> set[str]:
    import inspect

    return set(inspect.signature(module.forward).parameters)


def resolve_max_length(st: Any, pipeline: Pipeline, requested: int | None) -> int:
    """The token limit: `requested`, else the model's `max_seq_length`.

    Raises:
        ConfigError: a limit beyond the model's position embeddings, or no limit known at all.
    """
    limit = getattr(pipeline.transformer.config, "max_position_embeddings", None)
    if requested is None:
        requested = st.max_seq_length
        if requested is None or requested > 1_000_000:
            if limit is None:
                raise ConfigError("the model declares no max_seq_length; pass max_length")
            requested = limit
    if limit is not None and limit > 0 and requested > limit:
        raise ConfigError(f"max_length={requested} exceeds the model's {limit} position embeddings")
    return int(requested)


def build_encoder(pipeline: Pipeline) -> _SentenceEncoder:
    cls = _EncoderWithTypes if "token_type_ids" in pipeline.input_names else _EncoderNoTypes
    return cls(pipeline.transformer, pipeline.modes, pipeline.head).eval()


# --------------------------------------------------------------------------------------------
# Tokenizer


def save_tokenizer(tokenizer: Any, path: Path, max_length: int) -> Path:
    """Save the fast tokenizer's `tokenizer.json`, truncating at `max_length` and never padding.

    A copy is saved: transformers changes its backend's padding and truncation on every call,
    and model repos often ship a tokenizer.json padded to a fixed length (all-MiniLM-L6-v2's pads
    and truncates at 128 while the model reads 256).
    """
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.enable_truncation(max_length=max_length)
    backend.save(str(path))
    return path


def check_token_ids(tokenizer: Any, run_time: Any, texts: Sequence[str], max_length: int) -> None:
    """The saved tokenizer must give transformers' ids, special tokens and truncation included.

    Raises:
        ExportError: the first text on which they differ.
    """
    expected = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    got = run_time.ids(texts)
    for i, (want, have) in enumerate(zip(expected, got, strict=True)):
        if list(want) != list(have):
            raise ExportError(
                f"the saved tokenizer gives other ids than the model's tokenizer for text #{i} "
                f"{texts[i][:60]!r}: {list(have)[:12]} vs {list(want)[:12]}"
            )


def parity_texts(max_length: int) -> list[str]:
    """The fixed parity texts plus one long enough to be truncated at `max_length`."""
    sentence = "Search engines rank documents by the similarity of their embeddings to the query. "
    long_text = sentence * math.ceil(2 * max_length / 12)
    return [*PARITY_TEXTS, long_text]


def export_graph(pipeline: Pipeline, run_time: Any, path: Path, *, max_length: int, opset: int) -> Path:
    """Export the pipeline with dynamic batch and sequence axes; returns `path`.

    Raises:
        ExportError: the dynamo exporter failed.
    """
    encoder = build_encoder(pipeline)
    # Two texts of different lengths: batch >= 2 and a padded row keep both axes dynamic.
    example_feeds = run_time.encode([PARITY_TEXTS[2], PARITY_TEXTS[0]])
    example = tuple(torch.from_numpy(example_feeds[name]) for name in pipeline.input_names)
    batch = torch.export.Dim("batch")
    seq = torch.export.Dim("seq", max=max_length)
    return export_onnx(
        encoder,
        example,
        path,
        input_names=list(pipeline.input_names),
        output_name=OUTPUT_NAME,
        dynamic_shapes={name: {0: batch, 1: seq} for name in pipeline.input_names},
        opset=opset,
    )


# --------------------------------------------------------------------------------------------
# Export


def model_folder(source: ModelSource) -> Path | None:
    """`local_folder(source)`, checked to hold a sentence-transformers model when it comes from the hub.

    Raises:
        WeightsError: a hub model without modules.json, whose pooling is therefore unknown.
    """
    folder = local_folder(source)
    if source.kind == "hub" and (folder is None or not (folder / "modules.json").is_file()):
        raise WeightsError(
            f"{source.name!r} on the Hugging Face Hub is not a sentence-transformers model "
            "(no modules.json): its pooling is unknown"
        )
    return folder


def write_tokenizer(pipeline: Pipeline, stage: Path, max_length: int) -> tuple[TokenizerConfig, TextTokenizer]:
    """Save the model's tokenizer as tokenizer.json and the run-time TextTokenizer reading it."""
    from indexers.text import TextTokenizer

    path = save_tokenizer(pipeline.tokenizer, stage / TOKENIZER_FILE, max_length)
    pad_id = pipeline.tokenizer.pad_token_id
    cfg = TokenizerConfig(
        file=TOKENIZER_FILE,
        sha256=sha256_file(path),
        context_length=max_length,
        pad_id=0 if pad_id is None else int(pad_id),
        clean="none",
        trim_to_longest=True,
        input_names=pipeline.input_names,
    )
    return cfg, TextTokenizer(path, cfg)


def build(config: BertExportConfig, source: ModelSource, stage: Path) -> Exported:
    """The bert family's steps of the export skeleton: model, tokenizer, the fp32 graph, references."""
    st = load_sentence_transformer(source)
    folder = model_folder(source)
    pipeline = read_pipeline(st)
    max_length = resolve_max_length(st, pipeline, config.max_length)
    st.max_seq_length = max_length
    tokenizer_cfg, run_time = write_tokenizer(pipeline, stage, max_length)
    texts = parity_texts(max_length)
    check_token_ids(pipeline.tokenizer, run_time, texts, max_length)
    export_graph(pipeline, run_time, stage / graph_file("text"), max_length=max_length, opset=config.opset)
    reference = st.encode(texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True)
    name = display_name(source)
    tower = TowerExport(
        key="text",
        info=TowerInfo(modality="text", dim=int(reference.shape[1]), output=OUTPUT_NAME, tokenizer=tokenizer_cfg),
        feeds=run_time.encode(texts),
        reference=reference,
        # Dynamic int8: a transformer's time goes into MatMul.
        int8=Int8Plan("dynamic-int8"),
        optimize=True,  # fused attention, SkipLayerNorm, BiasGelu (indexers.export.optimize)
    )
    return Exported(
        architecture=f"{type(pipeline.transformer).__name__}:{source.name if source.kind == 'hub' else name}",
        weights=WeightsSource(kind=source.kind, name=source.name, sha256=weights_sha256(folder)),
        towers=(tower,),
        toolchain=("sentence-transformers", "transformers", "tokenizers"),
    )


@family(
    "bert",
    description="any sentence-transformers text model (BERT, MiniLM, MPNet, RoBERTa...): "
    "pooling, dense layers and L2 normalisation inside the graph",
    modalities=("text",),
    config=BertExportConfig,
)
def export_bert(config: BertExportConfig, out_dir: Path) -> Manifest:
    """Export a sentence-transformers model to a checked ONNX model folder.

    Writes text.onnx (and with `quantize="int8"` text.int8.onnx beside it), tokenizer.json, manifest.json.

    Args:
        config: the export options.
        out_dir: the model folder to write.

    Returns:
        The manifest written into `out_dir`.

    Raises:
        WeightsError: the model cannot be found, downloaded or loaded, or is not a
            sentence-transformers model.
        ConfigError: the model uses something the graph cannot reproduce, or a bad max_length.
        ParityError: ONNX embeddings differ from sentence-transformers' beyond the tolerance.
        ExportError: the exporter, the tokenizer check or the quantizer failed.
    """
    source = resolve_source(config.model)
    return run_export("bert", config, out_dir, lambda stage: build(config, source, stage))
