"""The calibration set stored with an int8 export, its figures in the manifest, and the `auto` rule."""

import json
import random

import numpy as np
import pytest

from indexers import load_model
from indexers.export import calibration
from indexers.export.sentences import varied_sentences
from indexers.manifest import INT8_MIN_COSINE, Manifest
from indexers.onnx_session import OnnxSession
from mmsearch.files import sha256_file
from tests.helpers import copy_model


def test_varied_sentences_are_fixed_by_the_seed_and_vary():
    first, again, other = varied_sentences(300, seed=1), varied_sentences(300, seed=1), varied_sentences(300, seed=2)
    assert first == again and first != other
    lengths = [len(t.split()) for t in first]
    assert min(lengths) >= 5 and max(lengths) <= 60 and len(set(lengths)) > 40
    assert len(set(first)) == len(first)
    assert any("é" in t for t in first) and any("?" in t for t in first)
    assert [len(t.split()) for t in varied_sentences(50, seed=3, min_words=7, max_words=7)] == [7] * 50


def test_varied_sentences_depend_only_on_random_random():
    # `random.Random(seed)`'s randint/choice sequence is stable across Python versions; so are the texts.
    rng = random.Random(0)
    assert rng.randint(5, 60) == len(varied_sentences(1, seed=0)[0].split())


@pytest.mark.parametrize(("count", "low", "high"), [(-1, 5, 60), (3, 0, 60), (3, 10, 5)])
def test_varied_sentences_refuse_bad_bounds(count, low, high):
    with pytest.raises(ValueError, match="expected"):
        varied_sentences(count, min_words=low, max_words=high)


def test_calibration_images_are_fixed_by_the_seed_and_differ():
    images = calibration.calibration_images(4, seed=5)
    assert images.shape == (4, *calibration.IMAGE_SIZE, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, calibration.calibration_images(4, seed=5))
    assert not np.array_equal(images[0], images[1])
    assert not np.array_equal(images, calibration.calibration_images(4, seed=6))
    assert images.std() > 20  # pictures, not a flat colour


def test_an_int8_export_stores_its_calibration_sets(tiny_clip_int8_dir):
    manifest = Manifest.load(tiny_clip_int8_dir)
    text, image = manifest.towers["text"].calibration, manifest.towers["image"].calibration
    assert text is not None and image is not None
    assert (text.file, text.kind, text.count) == ("calibration/texts.json", "texts", calibration.TEXT_COUNT)
    assert (image.file, image.kind, image.count) == ("calibration/images.npz", "images", calibration.IMAGE_COUNT)
    for stored in (text, image):
        assert sha256_file(tiny_clip_int8_dir / stored.file) == stored.sha256
        assert manifest.files()[stored.file] == stored.sha256  # verified with the folder
        assert stored.file not in manifest.files("auto")  # ...but not read by a load
    assert calibration.read_texts(tiny_clip_int8_dir / text.file) == varied_sentences(text.count, seed=calibration.SEED)
    np.testing.assert_array_equal(
        calibration.read_images(tiny_clip_int8_dir / image.file), calibration.calibration_images()
    )


def test_the_manifest_cosines_are_those_of_the_stored_calibration_set(tiny_clip_int8_dir):
    """Anyone can rerun the comparison that decided the folder's default precision."""
    manifest = Manifest.load(tiny_clip_int8_dir)
    for tower in manifest.towers.values():
        assert tower.calibration is not None and tower.int8 is not None
        feeds = calibration.feeds(tiny_clip_int8_dir, tower, tower.calibration)
        assert sum(len(next(iter(f.values()))) for f in feeds) == tower.calibration.count
        fp32 = np.concatenate([OnnxSession(tiny_clip_int8_dir / tower.file, device="cpu").run(f) for f in feeds])
        int8 = np.concatenate([OnnxSession(tiny_clip_int8_dir / tower.int8.file, device="cpu").run(f) for f in feeds])
        cos = np.sum(fp32 * int8, axis=1) / np.linalg.norm(fp32, axis=1) / np.linalg.norm(int8, axis=1)
        assert tower.int8.cosine_to_fp32_min == pytest.approx(cos.min(), abs=1e-5)
        assert tower.int8.cosine_to_fp32_mean == pytest.approx(cos.mean(), abs=1e-5)


def _with_min_cosine(src, dst, **minimum):
    folder = copy_model(src, dst)
    data = json.loads((folder / "manifest.json").read_text())
    for key, value in minimum.items():
        q = data["towers"][key]["int8"]
        q["cosine_to_fp32_min"], q["cosine_to_fp32_mean"] = value, max(value, q["cosine_to_fp32_mean"])
    (folder / "manifest.json").write_text(json.dumps(data))
    return folder


def test_auto_loads_int8_only_for_towers_whose_min_cosine_reaches_the_rule(tiny_clip_int8_dir, tmp_path):
    assert INT8_MIN_COSINE == 0.99
    safe = load_model(_with_min_cosine(tiny_clip_int8_dir, tmp_path / "safe", text=0.995, image=0.99), device="cpu")
    assert safe.precision == "int8"
    assert "0.9950 >= 0.99 on 256 calibration texts" in safe.precisions["text"].reason
    assert "0.9900 >= 0.99 on 16 calibration images" in safe.precisions["image"].reason
    risky = load_model(_with_min_cosine(tiny_clip_int8_dir, tmp_path / "risky", text=0.9899), device="cpu")
    assert risky.precision == "mixed"
    assert risky.precisions["text"].precision == "fp32" and "0.9899 < 0.99" in risky.precisions["text"].reason
    assert risky.precisions["image"].precision == "int8"
    towers = risky.manifest.towers
    # The fingerprint the store records is the graph each tower actually loads.
    assert risky.text.spec.fingerprint == towers["text"].sha256 and risky.text.session.path.name == "text.onnx"
    assert risky.image.spec.fingerprint == towers["image"].int8.sha256
    forced = load_model(tmp_path / "risky", device="cpu", precision="int8")
    assert forced.precision == "int8" and forced.precisions["text"].reason == "int8 asked for"


def test_a_format_2_int8_folder_keeps_loading_int8(tiny_clip_int8_dir, tmp_path):
    """Exports before calibration sets measured int8 on a few parity inputs: `auto` loads int8 as it did."""
    folder = copy_model(tiny_clip_int8_dir, tmp_path / "m")
    data = json.loads((folder / "manifest.json").read_text())
    for tower in data["towers"].values():
        for key in ("calibration", "optimization"):
            tower.pop(key)
        tower["int8"].pop("scope")
    (folder / "manifest.json").write_text(json.dumps({**data, "format_version": 2}))
    model = load_model(folder, device="cpu")
    assert model.precision == "int8"
    assert all("exported before calibration sets" in p.reason for p in model.precisions.values())
    assert all(not t.int8.calibrated for t in Manifest.load(folder).towers.values())
