"""The manifest written beside every exported model: what it is, how to feed it, its fingerprint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mmsearch.errors import ConfigError, ModelError, ModelIntegrityError, validation_message

MANIFEST_FILE = "manifest.json"
# 2: an int8 export keeps each tower's fp32 graph and lists the int8 one beside it (`Tower.int8`).
# 3: the fp32 graph may be optimised (`Tower.optimization`); an int8 graph's cosine to fp32 is
#    measured on a calibration set stored in the folder (`Tower.calibration`), which decides
#    whether `auto` loads it (`INT8_MIN_COSINE`).
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # format 1 is read for fp32 exports only; see `_upgrade`
# `precision="auto"` loads a tower's int8 graph when its lowest cosine to the fp32 graph's
# embeddings, over the tower's calibration set, is at least this: close enough that rankings
# barely move (a cosine of 0.99 between two unit vectors is an angle of 8 degrees).
INT8_MIN_COSINE = 0.99

Precision = Literal["auto", "fp32", "int8"]
PRECISIONS: tuple[Precision, ...] = ("auto", "fp32", "int8")
# Dynamic int8 for transformer towers, static QDQ int8 for CNNs (see indexers.export.quantize).
QuantMethod = Literal["dynamic-int8", "static-qdq-int8"]
# What dynamic int8 quantized: every supported operator, all but attention, or also not the
# MatMuls that read a GELU's output (see indexers.export.quantize).
Int8Scope = Literal["all", "no-attention", "no-gelu-input"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImagePreprocess(_Frozen):
    """How images become the model's input tensor, replayed with PIL + numpy at run time.

    `resize_mode`: `shortest` scales the short side to `resize_size` keeping the aspect ratio,
    then centre-crops to `size`; `squash` scales straight to `size`; `longest` scales the long
    side to fit `size` and pads with `fill_color` (open_clip's ResizeKeepRatio + CenterCrop).
    """

    size: tuple[int, int]
    resize_size: int
    resize_mode: Literal["shortest", "squash", "longest"] = "shortest"
    interpolation: Literal["bicubic", "bilinear", "nearest", "lanczos"] = "bicubic"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    fill_color: int = 0
    # Where the image becomes RGB. open_clip resizes and crops in the stored mode, then converts
    # (`after_crop`); torchvision classifiers were trained on ImageFolder's loader, which converts
    # on load (`first`). They differ on palette, alpha, 1-bit, CMYK and 16-bit images.
    convert_rgb: Literal["after_crop", "first"] = "after_crop"


class TokenizerConfig(_Frozen):
    """A `tokenizers` tokenizer saved beside the model, and how to feed its output."""

    file: str = "tokenizer.json"
    sha256: str
    context_length: int
    pad_id: int = 0
    # `clip` replays open_clip's text cleaning (ftfy, html unescape, whitespace, lower case).
    clean: Literal["none", "clip"] = "none"
    # A causal text tower reads only the tokens up to EOT, so padding can stop at the longest text.
    trim_to_longest: bool = True
    input_names: tuple[str, ...] = ("input_ids",)


class Graph(_Frozen):
    """One ONNX graph file of a tower and its sha256."""

    file: str
    sha256: str


class Quantization(_Frozen):
    method: QuantMethod
    scope: Int8Scope = "all"
    # Mean and minimum cosine between int8 and fp32 embeddings on the check inputs.
    cosine_to_fp32_mean: float
    cosine_to_fp32_min: float


class Int8Graph(Quantization, Graph):
    """A tower's int8 graph, written beside the fp32 one: its file, hash, method and drift from fp32.

    `calibrated`: the cosines were measured on the tower's calibration set (format 3); False for
    a format-2 export, whose figures come from the few parity inputs.
    """

    calibrated: bool = True


class CalibrationSet(_Frozen):
    """Inputs stored in the model folder on which a tower's int8 graph is compared with its fp32 graph.

    Texts are a JSON list of strings; images a `.npz` holding `images`, (n, height, width, 3) uint8 RGB.
    """

    file: str
    sha256: str
    kind: Literal["texts", "images"]
    count: int


class GraphOptimization(_Frozen):
    """How the saved fp32 graph was optimised after export: the tool and the fused operators it made."""

    tool: str
    fused: dict[str, int] = Field(default_factory=dict)


class TowerPrecision(_Frozen):
    """The graph a tower loads at a requested precision, and why."""

    precision: Literal["fp32", "int8"]
    reason: str

    def __str__(self) -> str:
        return f"{self.precision} ({self.reason})"


class TowerInfo(_Frozen):
    """What a tower takes and gives, known before its graphs are written."""

    modality: Literal["image", "text"]
    dim: int
    distance: Literal["cosine", "dot", "euclid"] = "cosine"
    normalized: bool = True
    output: str
    preprocess: ImagePreprocess | None = None
    tokenizer: TokenizerConfig | None = None


class Tower(TowerInfo):
    """A tower's record: `file` / `sha256` are its fp32 graph, `int8` the optional int8 graph.

    `optimization` says how the fp32 graph was optimised (None: as exported); `calibration` is
    the set `int8`'s cosines were measured on.
    """

    file: str
    sha256: str
    int8: Int8Graph | None = None
    optimization: GraphOptimization | None = None
    calibration: CalibrationSet | None = None

    def choose(self, requested: Precision) -> TowerPrecision:
        """The precision this tower loads at `requested` (`auto`: the `INT8_MIN_COSINE` rule), with the reason.

        Raises:
            ConfigError: `int8` for a tower exported without `--quantize int8`.
        """
        if requested == "fp32":
            return TowerPrecision(precision="fp32", reason="fp32 asked for")
        if requested == "int8":
            self.graph("int8")  # raises without an int8 graph
            return TowerPrecision(precision="int8", reason="int8 asked for")
        q = self.int8
        if q is None:
            return TowerPrecision(precision="fp32", reason="no int8 graph: exported without --quantize int8")
        if not q.calibrated or self.calibration is None:
            return TowerPrecision(
                precision="int8",
                reason="exported before calibration sets, so int8 as it always loaded; "
                f"re-export to apply the cosine >= {INT8_MIN_COSINE} rule",
            )
        on = f"{self.calibration.count} calibration {self.calibration.kind}"
        if q.cosine_to_fp32_min >= INT8_MIN_COSINE:
            return TowerPrecision(
                precision="int8",
                reason=f"int8 min cosine to fp32 {q.cosine_to_fp32_min:.4f} >= {INT8_MIN_COSINE} on {on}",
            )
        return TowerPrecision(
            precision="fp32", reason=f"int8 min cosine to fp32 {q.cosine_to_fp32_min:.4f} < {INT8_MIN_COSINE} on {on}"
        )

    def graph(self, precision: Literal["fp32", "int8"]) -> Graph:
        """The graph file loaded at `precision`.

        Raises:
            ConfigError: `int8` for a tower exported without `--quantize int8`.
        """
        if precision == "fp32":
            return Graph(file=self.file, sha256=self.sha256)
        if self.int8 is None:
            raise ConfigError(f"the {self.modality} tower has no int8 graph")
        return self.int8


class WeightsSource(_Frozen):
    kind: Literal["none", "pretrained", "file", "hub", "folder"]
    name: str | None = None
    sha256: str | None = None


class Manifest(_Frozen):
    format_version: int = FORMAT_VERSION
    name: str
    family: Literal["clip", "resnet", "bert"]
    architecture: str
    weights: WeightsSource
    opset: int
    towers: dict[str, Tower]
    parity_max_abs_diff: dict[str, float] = Field(default_factory=dict)
    parity_tolerance: float
    toolchain: dict[str, str] = Field(default_factory=dict)

    @property
    def quantization(self) -> Quantization | None:
        """The int8 graphs' drift from fp32, the worst tower's figures; None without int8 graphs."""
        graphs = [t.int8 for t in self.towers.values() if t.int8 is not None]
        if not graphs:
            return None
        return Quantization(
            method=graphs[0].method,
            cosine_to_fp32_mean=min(g.cosine_to_fp32_mean for g in graphs),
            cosine_to_fp32_min=min(g.cosine_to_fp32_min for g in graphs),
        )

    def choose(self, requested: Precision = "auto") -> dict[str, TowerPrecision]:
        """Each tower's precision when loaded at `requested`, with the reason (see `Tower.choose`).

        Raises:
            ConfigError: an unknown precision, or `int8` for a model exported without `--quantize int8`.
        """
        if requested not in PRECISIONS:
            raise ConfigError(f"precision {requested!r} is not one of {', '.join(PRECISIONS)}")
        if requested == "int8" and any(t.int8 is None for t in self.towers.values()):
            raise ConfigError(
                f"model {self.name!r} was exported without --quantize int8, so it has no int8 graphs: "
                "load it with precision='fp32', or re-export it with --quantize int8"
            )
        return {key: tower.choose(requested) for key, tower in self.towers.items()}

    def precision(self, requested: Precision = "auto") -> Literal["fp32", "int8", "mixed"]:
        """What a load at `requested` runs: `fp32` or `int8` when every tower agrees, else `mixed`.

        Raises:
            ConfigError: as `choose`.
        """
        chosen = {c.precision for c in self.choose(requested).values()}
        return chosen.pop() if len(chosen) == 1 else "mixed"

    def graphs(self, precision: Precision = "auto") -> dict[str, Graph]:
        """Each tower's graph loaded at `precision`, by tower name."""
        return {key: self.towers[key].graph(c.precision) for key, c in self.choose(precision).items()}

    def files(self, precision: Precision | None = None) -> dict[str, str]:
        """The files a load at `precision` reads, mapped to their sha256; None: every file, calibration sets too."""
        out: dict[str, str] = {}
        loaded = self.graphs(precision) if precision is not None else {}
        for key, tower in self.towers.items():
            if precision is not None:
                graphs = [loaded[key]]
            else:
                graphs = [tower.graph("fp32"), *([tower.int8] if tower.int8 is not None else [])]
                if tower.calibration is not None:
                    out[tower.calibration.file] = tower.calibration.sha256
            out.update({g.file: g.sha256 for g in graphs})
            if tower.tokenizer is not None:
                out[tower.tokenizer.file] = tower.tokenizer.sha256
        return out

    def write(self, folder: Path) -> Path:
        path = Path(folder) / MANIFEST_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: Path, *, verify: bool = True) -> Manifest:
        """Read `manifest.json` from a model folder.

        Args:
            folder: the model folder written by `mmsearch export`.
            verify: check that every file exists and has the sha256 the manifest records
                (see `indexers.integrity`: a file unchanged since its last check is not hashed again).

        Raises:
            ModelError: no folder, a manifest of another format version, or an int8 export in the
                layout of format 1 (int8 graphs only): re-export the model.
            ModelIntegrityError: no readable manifest, or a file is missing or was changed after export.
        """
        folder = Path(folder)
        path = folder / MANIFEST_FILE
        if not folder.is_dir():
            what = "is a file, not a model folder" if folder.exists() else "does not exist"
            raise ModelError(f"model folder {str(folder)!r} {what}")
        if not path.is_file():
            raise ModelIntegrityError(
                f"{str(path)!r} is missing: is {str(folder)!r} a folder made by `mmsearch export`?"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise ModelIntegrityError(f"manifest {str(path)!r} is not valid: {e}") from e
        try:
            manifest = cls.model_validate(_upgrade(data, path))
        except ValidationError as e:
            raise ModelIntegrityError(f"manifest {str(path)!r} is not valid: {validation_message(e)}") from e
        if manifest.format_version != FORMAT_VERSION:
            raise ModelError(
                f"manifest {str(path)!r} has format_version {manifest.format_version}; "
                f"this mmsearch reads {', '.join(map(str, READABLE_VERSIONS))}: re-export the model"
            )
        if verify:
            manifest.verify(folder)
        return manifest

    def verify(self, folder: Path, precision: Precision | None = None) -> None:
        """Check the files a load at `precision` reads (None: every file) against their sha256.

        Raises:
            ModelIntegrityError: a file is missing or its sha256 differs from the manifest's.
        """
        from indexers.integrity import verify_files

        verify_files(Path(folder), self.files(precision))


def _upgrade(data: object, path: Path) -> object:
    """Formats 1 and 2 as format 3.

    Format 1 stored an int8 export's graphs under the fp32 names or instead of them, with one
    `quantization` record for the model; reading them as fp32 graphs would be a silent misread,
    so such manifests are refused. Format 2 measured int8 on the parity inputs only: its int8
    graphs are marked uncalibrated (`auto` keeps loading them, as it did).
    """
    if not isinstance(data, dict) or data.get("format_version") not in (1, 2):
        return data
    if data.get("format_version") == 1 and data.get("quantization") is not None:
        raise ModelError(
            f"manifest {str(path)!r} comes from an int8 export by an older mmsearch, which kept only the "
            "int8 graphs: re-export the model (an int8 export now keeps the fp32 graphs beside the int8 ones)"
        )
    towers = data.get("towers")
    if isinstance(towers, dict):
        towers = {
            key: {**t, "int8": {**t["int8"], "calibrated": False}}
            if isinstance(t, dict) and isinstance(t.get("int8"), dict)
            else t
            for key, t in towers.items()
        }
    rest = {k: v for k, v in data.items() if k not in ("quantization", "towers")}
    return {**rest, "towers": towers, "format_version": FORMAT_VERSION}
