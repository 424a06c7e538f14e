import json

import numpy as np
import pytest

from indexers import Encoder, load_model
from indexers.manifest import Manifest
from indexers.runtime import encoder_specs
from mmsearch.errors import ConfigError, ImageDecodeError, ModelError, ModelIntegrityError, TextInputError
from tests.helpers import copy_model, image_bytes, make_image

TEXTS = [
    "a red bicycle",
    "a bowl of ramen with an egg",
    "tacos al pastor, salsa verde y cilantro",
    "a very long caption " * 30,
    "café crème ☕",
]


@pytest.fixture(scope="module")
def clip(tiny_clip_dir):
    return load_model(tiny_clip_dir, device="cpu", threads=1)


def test_towers_meet_the_encoder_protocol(clip):
    assert isinstance(clip.image, Encoder) and isinstance(clip.text, Encoder)
    assert clip.image.spec.modality == "image" and clip.text.spec.modality == "text"
    assert clip.image.spec.dim == clip.text.spec.dim == 32
    assert clip.image.spec.fingerprint == clip.manifest.towers["image"].sha256
    assert clip.image.spec.model == clip.text.spec.model == clip.name


def test_text_embeddings_are_unit_norm_and_independent_of_batching(clip):
    together = clip.embed_texts(TEXTS)
    assert together.shape == (len(TEXTS), 32) and together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    one_by_one = np.stack([clip.embed_texts([t])[0] for t in TEXTS])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    # Length-sorted batching must hand each vector back to its own text.
    clip.text.batch_size = 2
    try:
        np.testing.assert_allclose(clip.embed_texts(TEXTS), together, atol=1e-5)
    finally:
        clip.text.batch_size = 32
    assert not np.allclose(together[0], together[1])


def test_images_from_paths_bytes_and_pil_agree(clip, tmp_path):
    path = tmp_path / "a.png"
    make_image(seed=3).save(path)
    vectors = clip.embed_images([path, str(path), path.read_bytes(), make_image(seed=3), make_image(seed=4)])
    np.testing.assert_allclose(vectors[1:4], np.repeat(vectors[:1], 3, axis=0), atol=1e-6)
    assert not np.allclose(vectors[0], vectors[4])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_batches_give_empty_arrays(clip):
    assert clip.embed_texts([]).shape == (0, 32)
    assert clip.embed_images([]).shape == (0, 32)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("", "text #1 is empty"),
        ("   \n\t", "text #1 is empty"),
        ("x" * 1_000_001, "1,000,001 characters"),
        (None, "text #1 is a NoneType"),
    ],
)
def test_bad_texts_are_named(clip, text, pattern):
    with pytest.raises(TextInputError, match=pattern):
        clip.embed_texts(["fine", text])


def test_a_bad_image_is_named_by_its_index(clip, tmp_path):
    fake = tmp_path / "photo.jpg"
    fake.write_text("this is not a jpeg")
    with pytest.raises(ImageDecodeError, match=r"image #1: .*photo\.jpg"):
        clip.embed_images([image_bytes(), fake])


def test_text_only_model_refuses_images(minilm_dir):
    model = load_model(minilm_dir, device="cpu")
    with pytest.raises(ConfigError, match="has no image tower"):
        model.embed_images([make_image()])


def test_tampered_graph_is_refused(tiny_clip_dir, tmp_path):
    folder = copy_model(tiny_clip_dir, tmp_path / "m")
    with open(folder / "text.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelIntegrityError, match=r"text\.onnx.*changed after export"):
        load_model(folder)


def test_missing_file_and_missing_manifest_are_refused(tiny_clip_dir, tmp_path):
    folder = copy_model(tiny_clip_dir, tmp_path / "m")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelIntegrityError, match=r"tokenizer\.json' is missing"):
        load_model(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(ModelIntegrityError, match="manifest.json' is missing"):
        load_model(folder)
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nowhere")


def test_invalid_or_future_manifest_is_refused(tiny_clip_dir, tmp_path):
    folder = copy_model(tiny_clip_dir, tmp_path / "m")
    data = json.loads((folder / "manifest.json").read_text())
    data["format_version"] = 99
    (folder / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelError, match="format_version 99"):
        Manifest.load(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(ModelIntegrityError, match="is not valid"):
        Manifest.load(folder)


# --- precision ---------------------------------------------------------------------------------


def test_an_int8_export_is_queried_with_int8_unless_fp32_is_asked(tiny_clip_int8_dir):
    manifest = Manifest.load(tiny_clip_int8_dir)
    auto = load_model(tiny_clip_int8_dir, device="cpu")
    int8 = load_model(tiny_clip_int8_dir, device="cpu", precision="int8")
    fp32 = load_model(tiny_clip_int8_dir, device="cpu", precision="fp32")
    assert (auto.precision, int8.precision, fp32.precision) == ("int8", "int8", "fp32")
    for key, tower in manifest.towers.items():
        assert tower.int8 is not None and tower.int8.sha256 != tower.sha256
        # The fingerprint the store records is the hash of the graph actually loaded.
        assert auto.encoders[key].spec.fingerprint == int8.encoders[key].spec.fingerprint == tower.int8.sha256
        assert fp32.encoders[key].spec.fingerprint == tower.sha256
    assert auto.image.session.path.name == "image.int8.onnx" and auto.text.session.path.name == "text.int8.onnx"
    assert fp32.image.session.path.name == "image.onnx" and fp32.text.session.path.name == "text.onnx"
    quantized, exact = auto.embed_texts(TEXTS), fp32.embed_texts(TEXTS)
    assert np.sum(quantized * exact, axis=1).min() > 0.98  # unit vectors: the dot is the cosine
    assert not np.allclose(quantized, exact, atol=1e-6)  # ...and they really are two graphs


def test_an_fp32_export_loads_fp32_and_refuses_int8(clip, tiny_clip_dir):
    assert clip.precision == "fp32"
    assert clip.image.spec.fingerprint == clip.manifest.towers["image"].sha256
    with pytest.raises(ConfigError, match="without --quantize int8.*precision='fp32'"):
        load_model(tiny_clip_dir, precision="int8")
    with pytest.raises(ConfigError, match="precision 'fp16' is not one of auto, fp32, int8"):
        load_model(tiny_clip_dir, precision="fp16")


@pytest.mark.parametrize("precision", ["auto", "fp32", "int8"])
def test_encoder_specs_without_loading_are_the_loaded_ones(tiny_clip_int8_dir, precision):
    manifest = Manifest.load(tiny_clip_int8_dir, verify=False)
    loaded = load_model(tiny_clip_int8_dir, device="cpu", precision=precision)
    assert encoder_specs(manifest, precision) == {key: e.spec for key, e in loaded.encoders.items()}


def _as_format_1(manifest: dict, quantization: dict | None) -> dict:
    """The manifest as this mmsearch wrote it before int8 graphs were listed per tower."""
    towers = {key: {k: v for k, v in tower.items() if k != "int8"} for key, tower in manifest["towers"].items()}
    return {**manifest, "format_version": 1, "towers": towers, "quantization": quantization}


def test_a_format_1_fp32_manifest_reads_as_before(tiny_clip_dir, tmp_path):
    folder = copy_model(tiny_clip_dir, tmp_path / "m")
    data = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps(_as_format_1(data, None)))
    assert Manifest.load(folder) == Manifest.load(tiny_clip_dir)
    model = load_model(folder, device="cpu")
    assert model.precision == "fp32"
    assert model.text.spec.fingerprint == data["towers"]["text"]["sha256"]


def test_a_format_1_int8_manifest_is_refused_with_re_export(tiny_clip_dir, tmp_path):
    """Format 1 int8 exports hold int8 graphs under the fp32 names or alone: never read them as fp32."""
    folder = copy_model(tiny_clip_dir, tmp_path / "m")
    data = json.loads((folder / "manifest.json").read_text())
    quantization = {"method": "dynamic-int8", "cosine_to_fp32_mean": 0.999, "cosine_to_fp32_min": 0.998}
    (folder / "manifest.json").write_text(json.dumps(_as_format_1(data, quantization)))
    with pytest.raises(ModelError, match="int8 export by an older mmsearch.*re-export the model"):
        load_model(folder)
    with pytest.raises(ModelError, match="re-export"):
        Manifest.load(folder, verify=False)


# -- long texts: truncated to the model's context, as sentence-transformers does; the char limit honoured


def test_a_text_over_the_context_is_truncated_not_refused(clip, minilm_dir):
    context = clip.manifest.towers["text"].tokenizer.context_length  # 77 tokens
    long = " ".join(f"word{i % 50}" for i in range(20_000))  # 100,000+ characters
    assert len(long) > 100_000
    head = " ".join(long.split()[: context * 2])  # already well past the context
    vectors, truncated = clip.text.embed_counted([long, head, "a red ball"])
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-5)  # only the first `context` tokens count
    assert truncated.tolist() == [True, True, False]
    with load_model(minilm_dir, threads=1) as minilm:
        _, cut = minilm.text.embed_counted([long, "short"])
        assert cut.tolist() == [True, False]


def test_load_model_honours_max_text_chars(tiny_clip_dir):
    with load_model(tiny_clip_dir, threads=1, max_text_chars=50) as small:
        with pytest.raises(TextInputError, match="51 characters, over the limit of 50"):
            small.embed_texts(["x" * 51])
        assert small.embed_texts("x" * 50).shape == (32,)
    with load_model(tiny_clip_dir, threads=1, max_text_chars=3_000_000) as big:
        assert big.embed_texts(["word " * 400_000]).shape == (1, 32)


# -- library conventions


def test_one_text_or_image_gives_one_vector(clip, tmp_path):
    one = clip.embed_texts("a red bicycle")
    assert one.shape == (32,)
    np.testing.assert_allclose(one, clip.embed_texts(["a red bicycle"])[0], atol=1e-6)
    path = tmp_path / "a.png"
    make_image(seed=3).save(path)
    batch = clip.embed_images([path])
    for single in (path, str(path), path.read_bytes(), make_image(seed=3)):
        assert clip.embed_images(single).shape == (32,)
        np.testing.assert_allclose(clip.embed_images(single), batch[0], atol=1e-6)


def test_a_model_is_a_context_manager_that_releases_its_sessions(tiny_clip_dir):
    with load_model(tiny_clip_dir, threads=1) as model:
        assert model.embed_texts("hi").shape == (32,)
    assert model.text.session.closed and model.image.session.closed
    with pytest.raises(ModelError, match="closed"):
        model.embed_texts("hi")
    model.close()  # twice is fine


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda m: m.towers["text"].model_copy(update={"dim": 64}), "has 32 values per row, the manifest says dim 64"),
        (lambda m: m.towers["text"].model_copy(update={"output": "pooled"}), "no output 'pooled'"),
        (
            lambda m: m.towers["image"].model_copy(
                update={"preprocess": m.towers["image"].preprocess.model_copy(update={"size": (64, 64)})}
            ),
            "the manifest preprocesses images to 3 x (64, 64)",
        ),
    ],
    ids=["dim", "output", "image size"],
)
def test_a_manifest_that_disagrees_with_its_graph_is_refused_on_first_use(tiny_clip_dir, tmp_path, change, needle):
    folder = copy_model(tiny_clip_dir, tmp_path / "m")
    manifest = Manifest.load(folder)
    tower = change(manifest)
    key = "text" if tower.modality == "text" else "image"
    manifest.model_copy(update={"towers": {**manifest.towers, key: tower}}).write(folder)
    model = load_model(folder, threads=1)  # graphs load on first use, and are checked then
    with pytest.raises(ModelError, match="does not match its manifest") as e:
        model.warm()
    assert needle in str(e.value) and f"{key}.onnx" in str(e.value)
    with pytest.raises(ModelError, match="does not match its manifest"):  # and on every later try
        model.warm()


# --- lazy sessions and call shapes --------------------------------------------------------------


def test_loading_a_model_loads_no_graph_and_a_tower_loads_on_first_use(tiny_clip_dir):
    model = load_model(tiny_clip_dir, device="cpu", threads=2)
    assert model.text.session.loaded == () and model.image.session.loaded == ()
    assert model.text.tokenizer._loaded is None  # the vocabulary is not even parsed yet
    model.embed_texts(["a red bicycle"])
    # One short text runs on the one-thread session; the image tower was never touched.
    assert model.text.session.loaded == ("serial",) and model.image.session.loaded == ()
    model.embed_texts(TEXTS)  # several texts run side by side on the same session
    assert model.text.session.loaded == ("serial",)
    model.embed_images([make_image()])
    assert model.image.session.loaded == ("parallel",)


def test_warm_loads_each_tower_for_its_usual_call(tiny_clip_dir):
    model = load_model(tiny_clip_dir, device="cpu", threads=2).warm()
    assert model.text.session.loaded == ("serial",) and model.image.session.loaded == ("parallel",)
    assert model.text.tokenizer._loaded is not None


def test_a_broken_graph_fails_on_first_use_with_the_file_named(tiny_clip_dir, tmp_path):
    folder = copy_model(tiny_clip_dir, tmp_path / "m")
    (folder / "image.onnx").write_bytes(b"not a graph")
    model = load_model(folder, device="cpu", verify=False)  # the manifest alone: loads
    assert model.embed_texts(["fine"]).shape == (1, 32)  # the other tower works
    with pytest.raises(ModelError, match=r"onnxruntime cannot load .*image\.onnx"):
        model.embed_images([make_image()])


def test_threads_and_grouping_do_not_change_the_embeddings(tiny_clip_dir):
    texts = [f"{t} number {i}" for i in range(40) for t in TEXTS[:3]]
    one = load_model(tiny_clip_dir, device="cpu", threads=1).embed_texts(texts)
    two = load_model(tiny_clip_dir, device="cpu", threads=2, batch_size=7).embed_texts(texts)
    np.testing.assert_allclose(one, two, atol=1e-5)
    single = load_model(tiny_clip_dir, device="cpu", threads=2)
    np.testing.assert_allclose(np.stack([single.embed_texts([t])[0] for t in texts[:6]]), one[:6], atol=1e-5)


def test_a_long_single_text_is_split_across_threads(tiny_clip_dir):
    from indexers.runtime import SHORT_TEXT_TOKENS

    model = load_model(tiny_clip_dir, device="cpu", threads=2)
    long_text = " ".join(["word"] * (SHORT_TEXT_TOKENS + 5))
    model.embed_texts([long_text])
    assert model.text.session.loaded == ("parallel",)
