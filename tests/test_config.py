"""The TOML config: defaults, every section, paths relative to the file, overrides, bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmsearch.errors import ConfigError
from mmsearch.indexing.config import (
    DEFAULT_TEXT_FIELDS,
    IndexConfig,
    load_config,
    parse_config,
    with_overrides,
)

FULL = """
[store]
backend = "edge"
path = "data"
collection = "products"
payload_indexes = { category = "keyword", price = "float" }

[catalog]
format = "csv"
list_separator = ";"
exclude = ["internal_note"]
[catalog.columns]
id = "sku"
title = "name"
images = "image_urls"

[index]
batch_size = 16
workers = 3
device = "cpu"
max_pixels = 1000000

[fetch]
timeout_s = 2.5
retries = 1

[[encoders]]
model = "models/clip"
text_fields = ["title"]

[[encoders]]
model = "/abs/minilm"
text_fields = ["title", "description", "reviews"]
text_join = ". "
images = false
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf" / "index.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_gives_the_defaults():
    cfg = load_config(None)
    assert cfg == IndexConfig()
    assert cfg.store.backend == "edge" and cfg.store.collection == "mmsearch" and cfg.encoders == ()
    assert cfg.catalog.format == "auto" and cfg.catalog.columns.id == "id"
    assert cfg.index.batch_size == 32 and cfg.index.workers >= 2
    assert cfg.index.in_flight == 4 * 32
    assert cfg.fetch.timeout_s == 10 and cfg.fetch.retries == 2


def test_every_section_is_read_and_paths_are_relative_to_the_file(tmp_path):
    path = write(tmp_path, FULL)
    cfg = load_config(path)
    assert cfg.store.path == path.parent / "data" and cfg.store.collection == "products"
    assert cfg.store.payload_indexes == {"category": "keyword", "price": "float"}
    assert cfg.catalog.format == "csv" and cfg.catalog.list_separator == ";"
    assert cfg.catalog.columns.id == "sku" and cfg.catalog.columns.title == "name"
    assert cfg.catalog.columns.images == "image_urls" and cfg.catalog.exclude == ("internal_note",)
    assert (cfg.index.batch_size, cfg.index.workers, cfg.index.device, cfg.index.max_pixels) == (16, 3, "cpu", 10**6)
    assert cfg.fetch.timeout_s == 2.5 and cfg.fetch.retries == 1
    clip, minilm = cfg.encoders
    assert clip.model == path.parent / "models/clip" and clip.text_fields == ("title",) and clip.images
    assert minilm.model == Path("/abs/minilm") and minilm.text_join == ". " and not minilm.images
    assert minilm.text_fields == ("title", "description", "reviews")


def test_an_encoder_without_fields_uses_the_default_text_fields(tmp_path):
    cfg = load_config(write(tmp_path, '[[encoders]]\nmodel = "m"\n'))
    assert cfg.encoders[0].text_fields == DEFAULT_TEXT_FIELDS == ("title", "description")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[index]\nbatch_size = 0\n", "index.batch_size: Input should be greater than or equal to 1 (got 0)"),
        ("[index]\nbatchsize = 8\n", "index.batchsize: Extra inputs are not permitted"),
        ("[indexing]\nx = 1\n", "indexing: Extra inputs are not permitted"),
        ("[store]\ncollection = 'a b'\n", "collection 'a b'"),
        ("[store]\nbackend = 'redis'\n", "backend"),
        ("[catalog]\nformat = 'xml'\n", "catalog.format"),
        ("[catalog.columns]\ntitle = 'x'\ndescription = 'x'\n", "mapped to more than one field"),
        ("[fetch]\ntimeout_s = -1\n", "fetch.timeout_s"),
        ("[[encoders]]\nmodel = 'm'\ntext_fields = ['images']\n", "text field 'images' cannot be embedded"),
        ("[[encoders]]\nmodel = 'm'\ntext_fields = ['title', 'title']\n", "names a field twice"),
        ("[[encoders]]\nmodel = 'm'\n[[encoders]]\nmodel = './m'\n", "listed twice"),
        ("[[encoders]]\ntext_fields = ['title']\n", "encoders.0.model: Field required"),
    ],
)
def test_bad_settings_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert message in str(info.value)


def test_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(write(tmp_path, "[index\n"))
    with pytest.raises(ConfigError, match="nope.toml' does not exist"):
        load_config(tmp_path / "nope.toml")


def test_overrides_replace_the_config_values(tmp_path):
    cfg = load_config(write(tmp_path, FULL))
    out = with_overrides(
        cfg, collection="other", store_path="elsewhere", models=["m1", "m2"], batch_size=4, workers=1, device="cuda"
    )
    assert out.store.collection == "other" and out.store.path == Path("elsewhere")
    assert out.store.payload_indexes == cfg.store.payload_indexes  # the rest is kept
    assert [e.model for e in out.encoders] == [Path("m1"), Path("m2")]
    assert all(e.text_fields == DEFAULT_TEXT_FIELDS and e.images for e in out.encoders)
    assert (out.index.batch_size, out.index.workers, out.index.device) == (4, 1, "cuda")
    assert out.index.max_pixels == 10**6
    assert with_overrides(cfg) == cfg


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"collection": "bad name!"}, "bad name!"),
        ({"models": ["m", "m"]}, "listed twice"),
    ],
)
def test_bad_overrides_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        with_overrides(IndexConfig(), **kwargs)


def test_parse_config_takes_a_mapping():
    cfg = parse_config({"store": {"backend": "memory"}, "encoders": [{"model": "m"}]}, "/base")
    assert cfg.store.backend == "memory" and cfg.encoders[0].model == Path("/base/m")
