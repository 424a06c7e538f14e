"""The Ray/Spark indexing job in plain Python: planning, the embed step, the writer, the concurrency rules.

The same code runs inside Ray and Spark in tests/test_distributed_engines.py; here each part is
driven directly, with pyarrow tables standing in for Ray blocks and Spark batches.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from distributed_support import make_workspace
from helpers import spy_on_encode

from mmsearch.errors import BackendError, ConfigError
from mmsearch.indexing.catalog import HASH_KEY
from mmsearch.indexing.distributed import (
    ERROR_KIND_COLUMN,
    STATUS_COLUMN,
    EmbedBatch,
    IndexJob,
    WriteSettings,
    vector_column,
    writer_concurrency,
)
from mmsearch.indexing.distributed.report import JobSummary, WriteReport
from mmsearch.indexing.distributed.rows import EmbeddedRow, append_columns, read_rows, to_arrow, vector_columns
from mmsearch.indexing.distributed.stores import store_for_writing
from mmsearch.indexing.distributed.writer import RowWriter, write_tables
from mmsearch.indexing.index import Index
from mmsearch.storage import CF_VECTOR, StoreSettings, VectorUpdate, load_settings, open_store

pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed: pip install 'mmsearch[distributed]'")
pj = pytest.importorskip("pyarrow.json")

FAST = {"retries": 2, "backoff_s": 0.0, "max_backoff_s": 0.0}


@pytest.fixture(scope="module")
def ws(tmp_path_factory, tiny_clip_dir, minilm_dir):
    folder = tmp_path_factory.mktemp("dist")
    catalog = make_workspace(folder, tiny_clip_dir, minilm_dir, good=24, broken=1)
    return folder, catalog


def _job(folder: Path, store_dir: Path, **kw) -> IndexJob:
    return IndexJob(folder / "mmsearch.toml", store={"path": store_dir}, base_dir=folder, write=FAST, **kw)


def _embed_all(job: IndexJob, catalog) -> pa.Table:
    return EmbedBatch(job.spec)(pj.read_json(catalog.path))


def test_the_embed_step_decides_every_row_and_the_writer_stores_what_mmsearch_index_would(ws, tmp_path):
    folder, catalog = ws
    job = _job(folder, tmp_path / "dist")
    out = _embed_all(job, catalog)
    status = dict(zip(out.column("mm_id").to_pylist(), out.column(STATUS_COLUMN).to_pylist(), strict=True))
    assert sorted(i for i, s in status.items() if s == "new") == sorted(catalog.good)
    bad = [
        (i, k)
        for i, k in zip(out.column("mm_id").to_pylist(), out.column(ERROR_KIND_COLUMN).to_pylist(), strict=True)
        if k
    ]
    assert Counter(bad) == Counter(catalog.bad)
    report = write_tables(job.spec, [out])
    assert (report.rows, report.new, report.skipped, report.failed) == (len(catalog.rows), 24, 6, 0)
    summary = job.finish([report], 1.0)
    assert summary.stored == 24 and summary.skipped_by_kind == {"empty": 1, "id": 1, "image": 2, "record": 1, "text": 1}

    # `mmsearch index` over the same catalog finds every item unchanged: the same content hash.
    with Index.open(folder / "mmsearch.toml", store_path=tmp_path / "dist") as index:
        again = index.sync(catalog.path)
    assert (again.indexed, again.unchanged, again.skipped) == (0, 24, 6)
    # ... and an index built by `mmsearch index` alone holds the same payloads.
    with Index.open(folder / "mmsearch.toml", store_path=tmp_path / "cli") as index:
        index.sync(catalog.path)
        by_cli = {s.id: s.payload for s in index.store.retrieve(catalog.good, internal=True)}
    with open_store(load_settings(job.spec.store)) as store:
        by_job = {s.id: s.payload for s in store.retrieve(catalog.good, internal=True)}
    assert by_job == by_cli and all(HASH_KEY in p for p in by_job.values())


def test_a_rerun_embeds_nothing_and_a_changed_row_keeps_its_cf_vector(ws, tmp_path, monkeypatch):
    folder, catalog = ws
    job = _job(folder, tmp_path / "s")
    write_tables(job.spec, [_embed_all(job, catalog)])
    cf = np.linspace(-1, 1, 64, dtype=np.float32)
    with open_store(load_settings(job.spec.store)) as store:
        store.add_cf_vector(len(cf))  # as a CF fit does first
        store.update_vectors([VectorUpdate("g0001", {CF_VECTOR: cf})])
    encoded = spy_on_encode(monkeypatch)
    rows = [dict(r) for r in catalog.rows]
    next(r for r in rows if r.get("id") == "g0001")["title"] = "A new title"
    changed = tmp_path / "changed.jsonl"
    changed.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    rerun = _job(folder, tmp_path / "s")
    out = EmbedBatch(rerun.spec)(pj.read_json(changed))
    assert encoded == ["g0001"]  # only the changed row reached the encoders
    report = write_tables(rerun.spec, [out])
    assert (report.new, report.changed, report.unchanged, report.skipped) == (0, 1, 23, 6)
    with open_store(load_settings(rerun.spec.store)) as store:
        [item] = store.retrieve(["g0001"], with_vectors=[CF_VECTOR])
    assert item.payload["title"] == "A new title"
    np.testing.assert_allclose(item.vectors[CF_VECTOR], cf)


def test_pandas_and_numpy_batches_with_nan_and_none_cells_are_read_as_absent_values(ws, tmp_path):
    pd = pytest.importorskip("pandas")
    folder, _ = ws
    job = _job(folder, tmp_path / "s")
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "title": [None, "Blue lamp", "Red lamp"],  # None and NaN are absent, not text
            "description": [np.nan, np.nan, np.nan],
            "images": [["images/p0001.png"], [], None],
            "price": [np.nan, 2.5, 3.0],
        }
    )
    out = EmbedBatch(job.spec)(frame)
    assert isinstance(out, pd.DataFrame) and list(out[STATUS_COLUMN]) == ["new", "new", "new"]
    assert out["mm_error"].isna().all()  # every error empty: the rows are still written
    numpy_batch = EmbedBatch(job.spec)({c: frame[c].to_numpy() for c in frame.columns})  # Ray's "numpy" format
    assert isinstance(numpy_batch, dict) and list(numpy_batch[STATUS_COLUMN]) == ["new", "new", "new"]
    report = write_tables(job.spec, [to_arrow(out), to_arrow(numpy_batch)])
    assert (report.new, report.skipped) == (3, 3) and {e.kind for e in report.errors} == {"duplicate"}
    with open_store(load_settings(job.spec.store)) as store:
        payloads = {s.id: s.payload for s in store.retrieve(["a", "b"])}
    assert "price" not in payloads["a"] and "title" not in payloads["a"] and payloads["b"]["price"] == 2.5


def test_the_writer_isolates_a_refused_item_and_reports_it(ws, tmp_path):
    folder, catalog = ws
    job = _job(folder, tmp_path / "s")
    rows = read_rows(_embed_all(job, catalog), job.spec.columns, job.spec.dims)
    key = next(iter(job.spec.columns))
    bad = next(r for r in rows if r.status == "new" and key in r.vectors)
    poisoned = EmbeddedRow(
        id=bad.id,
        status="new",
        hash=bad.hash,
        payload=bad.payload,
        vectors={**bad.vectors, key: bad.vectors[key] * np.nan},
    )
    writer = RowWriter(job.spec)
    for r in rows:
        writer.add(poisoned if r.id == bad.id else r)
    report = writer.close()
    assert (report.new, report.failed) == (23, 1)
    [error] = [e for e in report.errors if e.kind == "store"]
    assert error.id == bad.id and "nan" in error.reason.lower()


def test_transient_store_errors_are_retried_and_lasting_ones_reported_per_row(ws, tmp_path, monkeypatch):
    from mmsearch.storage import Store

    folder, catalog = ws
    job = _job(folder, tmp_path / "s")
    table = _embed_all(job, catalog)
    real, calls = Store.upsert, {"n": 0}

    def flaky(self, items, **kw):
        calls["n"] += 1
        if calls["n"] <= 2:
            raise BackendError("Qdrant upsert failed: connection refused")
        return real(self, items, **kw)

    monkeypatch.setattr(Store, "upsert", flaky)
    report = write_tables(job.spec, [table])
    assert calls["n"] == 3 and (report.new, report.failed) == (24, 0)

    monkeypatch.setattr(Store, "upsert", lambda self, items, **kw: (_ for _ in ()).throw(BackendError("server down")))
    again = _job(folder, tmp_path / "t")
    report = write_tables(again.spec, [_embed_all(again, catalog)])
    assert (report.new, report.failed) == (0, 24)
    assert all("failed 3 time(s)" in e.reason and "server down" in e.reason for e in report.errors if e.kind == "store")


def test_writers_of_one_edge_folder_take_it_in_turn_and_a_lasting_lock_fails_rows_not_the_task(ws, tmp_path):
    folder, catalog = ws
    job = _job(folder, tmp_path / "s")
    settings = load_settings(job.spec.store)
    order = []

    def second() -> None:
        with store_for_writing(settings, WriteSettings(lock_timeout_s=30)):
            order.append("second")

    with store_for_writing(settings, WriteSettings()):
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        order.append("first done")
    t.join(30)
    assert order == ["first done", "second"]

    table = _embed_all(job, catalog)
    with open_store(settings):  # someone holds the folder for the whole task
        report = write_tables(replace(job.spec, write=WriteSettings(lock_timeout_s=0.3)), [table])
    assert (report.new, report.failed) == (0, 24)
    assert all("waited 0.3 s" in e.reason for e in report.errors if e.kind == "store")


def test_concurrency_rules_are_enforced_before_any_work(ws, tmp_path):
    folder, _ = ws
    edge = StoreSettings(backend="edge", path=tmp_path / "x")
    assert writer_concurrency(edge, None) == 1 and writer_concurrency(edge, 1) == 1
    with pytest.raises(ConfigError, match="one writer at a time.*concurrency=1.*backend 'server'"):
        writer_concurrency(edge, 4)
    with pytest.raises(ConfigError, match="memory.*would vanish"):
        writer_concurrency(StoreSettings(backend="memory"), None)
    with pytest.raises(ConfigError, match="one writer"):
        writer_concurrency(StoreSettings(backend="memory", path=tmp_path / "m"), 2)
    server = StoreSettings(backend="server", url="http://qdrant:6333")
    assert writer_concurrency(server, 8) == 8 and writer_concurrency(server, None) is None
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="positive integer"):
            writer_concurrency(server, bad)
    with pytest.raises(ConfigError, match="concurrency=2"):
        _job(folder, tmp_path / "never", concurrency=2)
    assert not (tmp_path / "never").exists()  # refused before the store was created


def test_a_store_written_by_other_models_is_refused_on_the_driver(ws, tmp_path, tiny_clip_int8_dir):
    from indexers.manifest import Manifest
    from mmsearch.errors import FingerprintMismatchError

    folder, _ = ws
    _job(folder, tmp_path / "s")
    other = tmp_path / "clip-int8"
    shutil.copytree(tiny_clip_int8_dir, other)  # the same name, other graphs: other fingerprints
    Manifest.load(other).model_copy(update={"name": Manifest.load(folder / "models" / "clip").name}).write(other)
    with pytest.raises(FingerprintMismatchError, match="fingerprint"):
        IndexJob(folder / "mmsearch.toml", models=[other], store={"path": tmp_path / "s"})


def test_vector_columns_need_no_backticks_and_never_collide():
    assert vector_column("clip-tiny.image") == "mm_clip_tiny_image"
    assert vector_column("all-MiniLM-L6-v2.text") == "mm_all_MiniLM_L6_v2_text"
    with pytest.raises(ConfigError, match="would both be column 'mm_clip_a_image'"):
        vector_columns(["clip-a.image", "clip_a.image"])


def test_the_embedded_columns_survive_arrow_and_come_back_as_they_went_in():
    rows = [
        EmbeddedRow("a", "new", "h1", {"title": "A", "price": 1.5}, {"m.image": np.ones((2, 3), np.float32)}),
        EmbeddedRow("b", "skipped", error_kind="image", error="image 1 of 1: not an image"),
        EmbeddedRow("c", "unchanged", "h3"),
    ]
    columns, dims = {"m.image": "mm_m_image"}, {"m.image": 3}
    table = append_columns(pa.table({"id": ["a", "b", "c"]}), rows, columns, dims)
    assert table.schema.field("mm_m_image").type == pa.list_(pa.list_(pa.float32()))
    back = read_rows(table, columns, dims)
    assert [(r.id, r.status, r.hash, r.payload, r.error_kind) for r in back] == [
        (r.id, r.status, r.hash, r.payload, r.error_kind) for r in rows
    ]
    np.testing.assert_array_equal(back[0].vectors["m.image"], np.ones((2, 3)))
    assert back[1].vectors == {} and back[2].vectors == {}
    with pytest.raises(ConfigError, match="lack column"):
        read_rows(pa.table({"id": ["a"]}), columns, dims)


def test_reports_travel_as_json_and_sum_into_a_summary():
    from mmsearch.indexing.errorlog import ItemError

    a = WriteReport(rows=3, new=1, unchanged=1, skipped=1, errors=[ItemError(None, "x", "image", "bad")])
    b = WriteReport.from_json(
        WriteReport(rows=2, changed=1, failed=1, errors=[ItemError(None, "y", "store", "no")]).to_json()
    )
    total = WriteReport.merged([a, None, b])
    summary = JobSummary.of("ray", "c", total, stored=2, seconds=2.0, error_log=None)
    assert (summary.records, summary.indexed, summary.skipped_by_kind) == (5, 2, {"image": 1, "store": 1})
    assert str(summary).startswith("ray: indexed 2 items (1 new, 1 changed), 1 unchanged, 1 skipped, 1 failed")


def test_the_package_imports_no_engine_until_the_sink_is_named():
    code = (
        "import sys, mmsearch.indexing.distributed as d, mmsearch.indexing.distributed.spark, "
        "mmsearch.indexing.distributed.writer; "
        "print([m for m in ('ray', 'pyspark', 'pandas', 'pyarrow') if m in sys.modules])"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
    pytest.importorskip("ray", reason="ray is not installed: pip install 'mmsearch[distributed]'")
    named = "import sys; from mmsearch.indexing.distributed import MmsearchSink; print('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", named], capture_output=True, text=True, check=True).stdout == "True\n"
