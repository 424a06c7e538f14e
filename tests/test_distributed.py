"""The Ray/Spark batch encoder and store writer, in plain Python (and Ray local mode if installed)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from helpers import image_bytes, make_image
from http_support import Route, serve

from indexers.runtime import load_model
from mmsearch.indexing.distributed import (
    ERROR_COLUMN,
    EmbedBatch,
    UpsertBatch,
    embed_partitions,
    encoder_specs,
)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(3):
        make_image(seed=40 + i).save(folder / f"p{i}.png")
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


def test_a_dict_batch_gets_one_vector_per_row_and_errors_for_bad_rows(tiny_clip_dir, photos):
    with serve({"/p.png": Route(body=image_bytes("PNG", seed=41))}) as srv:
        batch = {
            "id": np.array(["a", "b", "c", "d", "e"], dtype=object),
            "title": np.array(["red", None, "blue", "x" * 50, "green"], dtype=object),
            "image": np.array(
                ["p0.png", image_bytes("PNG", seed=42), None, "broken.png", srv.url + "/p.png"], dtype=object
            ),
        }
        out = EmbedBatch(tiny_clip_dir, base_dir=photos, max_chars=40, decode_workers=2)(batch)
    model = load_model(tiny_clip_dir)
    img, txt = out[f"{model.name}.image"], out[f"{model.name}.text"]
    assert img.shape == (5, 32) and txt.shape == (5, 32) and img.dtype == np.float32
    assert list(out["id"]) == ["a", "b", "c", "d", "e"]  # input columns are kept
    expected = model.embed_images([photos / "p0.png", image_bytes("PNG", seed=42), image_bytes("PNG", seed=41)])
    np.testing.assert_allclose(img[[0, 1, 4]], expected, atol=1e-5)
    assert np.isnan(img[[2, 3]]).all()
    np.testing.assert_allclose(txt[[0, 2, 4]], model.embed_texts(["red", "blue", "green"]), atol=1e-5)
    assert np.isnan(txt[[1, 3]]).all()
    errors = list(out[ERROR_COLUMN])
    assert errors[0] is None and errors[1] is None and errors[2] is None and errors[4] is None
    assert errors[3].startswith("text: ") and "over the limit of 40" in errors[3]  # the first problem wins


def test_the_image_error_is_reported_when_the_text_is_fine(tiny_clip_dir, photos):
    out = EmbedBatch(tiny_clip_dir, base_dir=photos)({"title": ["ok"], "image": ["broken.png"]})
    assert out[ERROR_COLUMN][0].startswith("image: ") and "broken.png" in out[ERROR_COLUMN][0]


def test_the_model_loads_once_per_process(tiny_clip_dir):
    assert EmbedBatch(tiny_clip_dir).model is EmbedBatch(tiny_clip_dir, text_column="x").model


def test_bad_batches_are_refused(tiny_clip_dir):
    from mmsearch.errors import ConfigError

    with pytest.raises(ConfigError, match="different lengths"):
        EmbedBatch(tiny_clip_dir)({"title": ["a", "b"], "image": [None]})
    with pytest.raises(ConfigError, match="got list"):
        EmbedBatch(tiny_clip_dir)([1, 2])


def test_upsert_batch_writes_the_embedded_rows(tmp_path, tiny_clip_dir, photos):
    embed = EmbedBatch(tiny_clip_dir, base_dir=photos)
    out = embed(
        {
            "id": ["a", "b", "c"],
            "title": ["one", "two", None],
            "image": ["p1.png", "broken.png", "p2.png"],
            "price": np.array([1.5, 2.5, 3.5]),
        }
    )
    writer = UpsertBatch({"backend": "memory", "collection": "dist"}, [tiny_clip_dir], payload_columns=["price"])
    try:
        assert int(writer({"id": out["id"], **{k: v for k, v in out.items() if k != "id"}})["written"][0]) == 2
        stored = {s.id: s for s in writer.store.retrieve(["a", "b", "c"], with_vectors=True)}
        assert sorted(stored) == ["a", "c"]  # b had an error
        name = embed.model.name
        assert stored["a"].payload == {"price": 1.5}
        np.testing.assert_allclose(stored["a"].vectors[f"{name}.image"], out[f"{name}.image"][0], atol=1e-5)
        assert f"{name}.text" not in stored["c"].vectors  # no title: no text vector
    finally:
        writer.close()


@pytest.mark.parametrize("folder", ["tiny_clip_dir", "tiny_clip_int8_dir"])
def test_encoder_specs_match_the_runtime_specs(folder, request):
    folder = request.getfixturevalue(folder)  # an int8 export is loaded, hence fingerprinted, by its int8 graphs
    model = load_model(folder)
    assert {s.modality: s for s in encoder_specs(folder)} == {"image": model.image.spec, "text": model.text.spec}


def test_embed_partitions_maps_pandas_frames(tiny_clip_dir, photos):
    pd = pytest.importorskip("pandas")
    frames = [pd.DataFrame({"title": ["a", None], "image": ["p0.png", "broken.png"]})]
    [out] = list(embed_partitions(tiny_clip_dir, base_dir=photos)(iter(frames)))
    name = load_model(tiny_clip_dir).name
    assert out[f"{name}.image"][1] is None and out[f"{name}.image"][0].shape == (32,)
    assert out[ERROR_COLUMN][0] is None and "image" in out[ERROR_COLUMN][1]


def test_the_module_imports_no_engine():
    code = (
        "import sys, mmsearch.indexing.distributed; "
        "print([m for m in ('ray', 'pyspark', 'pandas') if m in sys.modules])"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
def test_ray_data_map_batches_in_local_mode(tiny_clip_dir, photos):
    import ray

    ray.init(num_cpus=1, include_dashboard=False, ignore_reinit_error=True)
    try:
        ds = ray.data.from_items(
            [{"id": f"r{i}", "title": f"t{i}", "image": str(photos / f"p{i}.png")} for i in range(3)]
        )
        rows = ds.map_batches(
            EmbedBatch,
            fn_constructor_kwargs={"model_dir": str(tiny_clip_dir)},
            batch_size=2,
            concurrency=1,
            batch_format="numpy",
        ).take_all()
    finally:
        ray.shutdown()
    name = load_model(tiny_clip_dir).name
    assert len(rows) == 3 and all(np.asarray(r[f"{name}.image"]).shape == (32,) for r in rows)
