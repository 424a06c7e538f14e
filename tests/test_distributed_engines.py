"""The README's Ray and Spark examples, run as written on real Ray (local) and real Spark (`local[2]`).

Each runs in its own folder holding what the examples name (`mmsearch.toml`, `catalog.jsonl` and
its photos) over a few hundred rows with broken ones mixed in: every good row must be stored once
with the vectors `load_model` gives, every bad row reported with its kind and reason, a rerun must
embed nothing, and `mmsearch index` over the same catalog must find every item unchanged. Ray and
Spark start once per session (about 10 s each).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from distributed_support import Catalog, assert_vectors_are_the_models, make_workspace

from mmsearch.indexing.errorlog import read_error_log
from mmsearch.indexing.index import Index
from mmsearch.storage import open_store

README = Path(__file__).resolve().parents[1] / "README.md"
GOOD, BROKEN = 180, 5  # 210 rows


def readme_example(needle: str) -> str:
    """The one python block of README.md that contains `needle`."""
    blocks = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)
    found = [b for b in blocks if needle in b]
    assert len(found) == 1, f"README.md has {len(found)} python blocks with {needle!r}"
    return found[0]


@contextlib.contextmanager
def inside(folder: Path) -> Iterator[None]:
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(cwd)


def run_example(needle: str, folder: Path) -> dict[str, Any]:
    """Run the README example in `folder` as a reader would; returns its variables."""
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    with inside(folder):
        exec(compile(readme_example(needle), str(README), "exec"), namespace)
    return namespace


@pytest.fixture(scope="session")
def ray_local():
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'mmsearch[distributed]'")
    pytest.importorskip("pyarrow", reason="pyarrow is not installed: pip install 'mmsearch[distributed]'")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024**2, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import tests/
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="session")
def spark_local():
    pytest.importorskip("pyspark", reason="pyspark is not installed: pip install 'mmsearch[distributed]'")
    pytest.importorskip("pyarrow", reason="pyarrow is not installed: pip install 'mmsearch[distributed]'")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("Spark needs Java: apt-get install -y default-jre-headless")
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers run this interpreter
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("mmsearch-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    yield spark
    spark.stop()


def _check_first_run(summary: Any, catalog: Catalog, folder: Path, errors: str, tiny_clip_dir, minilm_dir) -> None:
    assert (summary.records, summary.new, summary.changed, summary.unchanged) == (len(catalog.rows), GOOD, 0, 0)
    assert (summary.skipped, summary.failed, summary.stored) == (len(catalog.bad), 0, GOOD)
    logged = list(read_error_log(folder / errors))
    assert Counter((e.id, e.kind) for e in logged) == Counter(catalog.bad)
    assert all(e.reason for e in logged)
    missing = next(e for e in logged if e.id == "b-missing-0")
    assert "nope-0.png" in missing.reason and "does not exist" in missing.reason
    with open_store({"backend": "edge", "path": folder / "data", "collection": "products"}) as store:
        assert store.count() == GOOD  # stored once each: point ids are the item ids'
        assert_vectors_are_the_models(store, catalog, tiny_clip_dir, minilm_dir)


def _check_rerun_and_index(summary: Any, catalog: Catalog, folder: Path) -> None:
    assert (summary.indexed, summary.unchanged, summary.skipped, summary.stored) == (0, GOOD, len(catalog.bad), GOOD)
    with Index.open(folder / "mmsearch.toml") as index:  # `mmsearch index` over the same catalog
        again = index.sync(catalog.path)
    assert (again.indexed, again.unchanged, again.skipped) == (0, GOOD, len(catalog.bad))


def test_the_readme_ray_example_stores_every_good_row_once_and_reports_every_bad_one(
    ray_local, tmp_path, tiny_clip_dir, minilm_dir
):
    catalog = make_workspace(tmp_path, tiny_clip_dir, minilm_dir, good=GOOD, broken=BROKEN)
    first = run_example("MmsearchSink(", tmp_path)["sink"].summary
    _check_first_run(first, catalog, tmp_path, "ray-errors.jsonl", tiny_clip_dir, minilm_dir)
    rerun = run_example("MmsearchSink(", tmp_path)["sink"].summary
    _check_rerun_and_index(rerun, catalog, tmp_path)


def test_the_readme_spark_example_stores_every_good_row_once_and_reports_every_bad_one(
    spark_local, tmp_path, tiny_clip_dir, minilm_dir
):
    catalog = make_workspace(tmp_path, tiny_clip_dir, minilm_dir, good=GOOD, broken=BROKEN)
    first = run_example("SparkIndexer(", tmp_path)["summary"]
    _check_first_run(first, catalog, tmp_path, "spark-errors.jsonl", tiny_clip_dir, minilm_dir)
    rerun = run_example("SparkIndexer(", tmp_path)
    _check_rerun_and_index(rerun["summary"], catalog, tmp_path)
    # The schema helper's columns work without backticks, in SQL and in a following mapInArrow.
    embedded = rerun["embedded"]
    assert embedded.schema == rerun["indexer"].embed_schema(rerun["rows"].schema)
    assert embedded.where("mm_status = 'unchanged'").select("mm_id", "mm_clip_tiny_image").count() == GOOD


def test_ray_write_tasks_without_a_concurrency_cap_take_the_edge_folder_in_turn_numpy_batches_too(
    ray_local, tmp_path, tiny_clip_dir, minilm_dir
):
    from mmsearch.indexing.distributed import EmbedBatch, MmsearchSink

    catalog = make_workspace(tmp_path, tiny_clip_dir, minilm_dir, good=40, broken=1)
    sink = MmsearchSink(tmp_path / "mmsearch.toml", base_dir=tmp_path, write={"rows_per_write": 8})
    rows = ray_local.data.read_json(str(catalog.path)).repartition(6)
    embedded = rows.map_batches(EmbedBatch, fn_constructor_kwargs=sink.embed_kwargs, batch_size=8, batch_format="numpy")
    embedded.write_datasink(sink, ray_remote_args={"num_cpus": 0})  # several writers at once, no concurrency=1
    summary = sink.summary
    assert (summary.new, summary.skipped, summary.failed, summary.stored) == (40, len(catalog.bad), 0, 40)
    with open_store({"backend": "edge", "path": tmp_path / "data", "collection": "products"}) as store:
        assert_vectors_are_the_models(store, catalog, tiny_clip_dir, minilm_dir)


def test_an_edge_sink_refuses_several_writers_before_any_work(tmp_path, tiny_clip_dir, minilm_dir):
    pytest.importorskip("ray", reason="ray is not installed: pip install 'mmsearch[distributed]'")
    from mmsearch.errors import ConfigError
    from mmsearch.indexing.distributed import MmsearchSink

    make_workspace(tmp_path, tiny_clip_dir, minilm_dir, good=2, broken=0)
    with pytest.raises(ConfigError, match="concurrency=4: the edge store .* takes one writer at a time"):
        MmsearchSink(tmp_path / "mmsearch.toml", concurrency=4)
    assert not (tmp_path / "data").exists()


class _Where:
    """A map_batches class reporting where EmbedBatch's placement puts its encoders."""

    def __init__(self) -> None:
        from mmsearch.indexing.config import IndexSettings
        from mmsearch.indexing.distributed.placement import placement

        self.device, self.threads = placement(IndexSettings())

    def __call__(self, batch: dict) -> dict:
        n = len(batch["id"])
        return {"device": [self.device] * n, "threads": [self.threads] * n}


@pytest.mark.parametrize("cpus", [1, 2])
def test_ray_actors_run_onnxruntime_on_as_many_threads_as_their_cpus(ray_local, cpus):
    ds = ray_local.data.from_items([{"id": i} for i in range(4)])
    out = ds.map_batches(_Where, num_cpus=cpus, compute=ray_local.data.ActorPoolStrategy(size=1)).take_all()
    assert {(r["device"], r["threads"]) for r in out} == {("cpu", cpus)}


@pytest.mark.gpu
def test_a_ray_actor_given_a_gpu_embeds_on_it(ray_local, tmp_path, tiny_clip_dir, minilm_dir):
    if not ray_local.cluster_resources().get("GPU"):
        pytest.skip("this Ray cluster has no GPU")
    from mmsearch.indexing.distributed import EmbedBatch, MmsearchSink

    make_workspace(tmp_path, tiny_clip_dir, minilm_dir, good=4, broken=0)
    sink = MmsearchSink(tmp_path / "mmsearch.toml", base_dir=tmp_path)

    class OnGpu(EmbedBatch):
        def __call__(self, batch: Any) -> Any:
            n = batch.num_rows
            return {"device": [self.device] * n, "cuda": [all(e.encoder.session.on_cuda for e in self.embedders)] * n}

    ds = ray_local.data.from_items([{"id": "a"}, {"id": "b"}])
    out = ds.map_batches(
        OnGpu,
        fn_constructor_kwargs=sink.embed_kwargs,
        batch_format="pyarrow",
        num_gpus=1,
        compute=ray_local.data.ActorPoolStrategy(size=1),
    ).take_all()
    assert {(r["device"], r["cuda"]) for r in out} == {("cuda", True)}


def test_the_distributed_benchmark_gives_each_engine_a_ratio_against_mmsearch_index(ray_local, tiny_clip_dir):
    from mmsearch.bench.distributed import DistributedBenchConfig, format_result, run

    lines: list[str] = []
    result = run(
        DistributedBenchConfig(items=24, model=tiny_clip_dir, image_size=32, engines=("ray",)), log=lines.append
    )
    base, ray_run = result.runs
    assert (base.engine, base.ratio, ray_run.engine) == ("mmsearch index", 1.0, "ray")
    assert ray_run.ratio == pytest.approx(ray_run.rows_per_s / base.rows_per_s, rel=0.01)
    assert ray_run.rerun_ratio == pytest.approx(ray_run.rerun_rows_per_s / base.rerun_rows_per_s, rel=0.01)
    table = format_result(result)
    assert "| ray |" in table and "| mmsearch index |" in table and any(line.startswith("ray:") for line in lines)
