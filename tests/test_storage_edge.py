"""Qdrant Edge specifics: durability across close and SIGKILL, the folder lock, in-place schema growth."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from indexers.protocol import EncoderSpec
from mmsearch.errors import StoreLockedError
from mmsearch.storage import Item, NearestQuery, VectorUpdate, open_store
from tests.storage_support import CF_DIM, ENCODERS, MINILM, catalogue, unit_rows

pytest.importorskip("qdrant_edge", reason="qdrant-edge-py is not installed: pip install qdrant-edge-py==0.9.0")

ROOT = Path(__file__).resolve().parents[1]
_WAL_SPEC = EncoderSpec("wal", "clip", "image", 512, "cosine", "wal-512")  # big enough to index and to log


def _settings(tmp_path: Path, **kw) -> dict:
    return {"backend": "edge", "path": tmp_path, "collection": "c", "cf_dim": CF_DIM, "optimize_after": None, **kw}


def _child(code: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(proc: subprocess.Popen, word: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == word:
            return
        if proc.poll() is not None:
            raise AssertionError(f"child exited {proc.returncode}: {proc.stderr.read()}")
    raise AssertionError(f"child never printed {word!r}")


CHILD_PRELUDE = """
    import sys, time
    from tests.storage_support import ENCODERS, CF_DIM, catalogue
    from mmsearch.storage import open_store
    settings = {{"backend": "edge", "path": {path!r}, "collection": "c", "cf_dim": CF_DIM, "optimize_after": None}}
"""


def test_data_survives_a_killed_writer(tmp_path: Path) -> None:
    proc = _child(
        CHILD_PRELUDE.format(path=str(tmp_path))
        + """
    store = open_store(settings, encoders=ENCODERS)
    store.upsert(catalogue(150, seed=2)[:100])
    store.upsert(catalogue(150, seed=2)[100:])
    print("written", flush=True)
    time.sleep(120)
    """
    )
    try:
        _wait_for(proc, "written")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with open_store(_settings(tmp_path), encoders=ENCODERS) as store:
        assert store.count() == 150
        want = catalogue(150, seed=2)[149]
        got = store.retrieve([want.id], with_vectors=["clip.image.multi"])[0]
        np.testing.assert_allclose(got.vectors["clip.image.multi"], want.vectors["clip.image"], atol=1e-6)
        assert store.query("clip.image.multi", want.vectors["clip.image"], limit=1)[0].id == want.id


def test_second_opener_in_this_process_is_refused(tmp_path: Path) -> None:
    first = open_store(_settings(tmp_path), encoders=ENCODERS)
    first.upsert(catalogue(5))
    with pytest.raises(StoreLockedError) as e:
        open_store(_settings(tmp_path), encoders=ENCODERS)
    assert str(tmp_path / "c") in str(e.value) and "already open" in str(e.value)
    assert first.count() == 5  # the refused opener did not disturb the first
    first.close()
    with open_store(_settings(tmp_path)) as again:
        assert again.count() == 5


def test_second_opener_in_another_process_is_refused(tmp_path: Path) -> None:
    with open_store(_settings(tmp_path), encoders=ENCODERS) as s:
        s.upsert(catalogue(5))
    proc = _child(
        CHILD_PRELUDE.format(path=str(tmp_path))
        + """
    store = open_store(settings)
    print("open", flush=True)
    time.sleep(120)
    """
    )
    try:
        _wait_for(proc, "open")
        with pytest.raises(StoreLockedError, match="already open"):
            open_store(_settings(tmp_path))
    finally:
        proc.kill()
        proc.wait(timeout=30)
    with open_store(_settings(tmp_path)) as s:  # the lock dies with its holder
        assert s.count() == 5


RACER = """
    import sys, time
    from mmsearch.errors import StoreLockedError
    from mmsearch.storage import open_store
    print("ready", flush=True)
    for line in sys.stdin:
        path, start = line.split()
        time.sleep(max(0.0, float(start) - time.time()))
        try:
            store = open_store({"backend": "edge", "path": path, "collection": "c"}, encoders=[])
        except StoreLockedError:
            print("locked", flush=True)
            continue
        except Exception as e:
            print("error", type(e).__name__, str(e).replace(chr(10), " "), flush=True)
            continue
        print("won", flush=True)
        sys.stdin.readline()  # hold the store open until the other racer has answered
        store.close()
        print("closed", flush=True)
"""


def test_two_processes_creating_one_store_at_once_one_wins_the_other_is_locked_out(tmp_path: Path) -> None:
    racers = [_child(RACER) for _ in range(2)]
    try:
        for r in racers:
            _wait_for(r, "ready")
        outcomes = []
        for trial in range(25):
            folder = tmp_path / f"t{trial}"
            start = time.time() + 0.15  # both open at the same instant, give or take a millisecond
            for r in racers:
                r.stdin.write(f"{folder} {start}\n")
                r.stdin.flush()
            answers = [r.stdout.readline().strip() for r in racers]
            outcomes.append(sorted(answers))
            for r, answer in zip(racers, answers, strict=True):
                if answer == "won":
                    r.stdin.write("close\n")
                    r.stdin.flush()
                    assert r.stdout.readline().strip() == "closed"
        assert outcomes == [["locked", "won"]] * 25, outcomes
        for trial in range(25):  # the winner's store is whole: it opens and holds its (empty) collection
            with open_store({"backend": "edge", "path": tmp_path / f"t{trial}", "collection": "c"}) as store:
                assert store.count() == 0
    finally:
        for r in racers:
            r.kill()
            r.wait(timeout=30)


def _edge_vector_config(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "c" / "shard" / "edge_config.json").read_text())["vectors"]


def test_multivectors_skip_hnsw_also_when_added_later(tmp_path: Path) -> None:
    with open_store(_settings(tmp_path), encoders=ENCODERS) as s:
        s.upsert(catalogue(5))
    with open_store(_settings(tmp_path), encoders=[MINILM]) as s:
        assert s.count() == 5
        assert "minilm.text.multi" not in _edge_vector_config(tmp_path)  # no item has two texts yet
        s.update_vectors([VectorUpdate("i1", {"minilm.text": np.eye(2, 6, dtype=np.float32)})])
    config = _edge_vector_config(tmp_path)
    assert "clip.text.multi" not in config  # one text per item: the pooled vector serves MaxSim
    for name in ("clip.image.multi", "minilm.text.multi"):
        assert config[name]["hnsw_config"]["m"] == 0, name
        assert config[name]["multivector_config"]["comparator"] == "max_sim"
    for name in ("clip.image", "minilm.text", "cf"):
        assert "hnsw_config" not in config[name], name  # the global graph settings apply
    assert (
        json.loads((tmp_path / "c" / "mmsearch.json").read_text())["vectors"]["minilm.text"]["fingerprint"]
        == MINILM.fingerprint
    )


def test_crash_between_adding_a_vector_and_recording_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmsearch.storage import edge

    with open_store(_settings(tmp_path), encoders=ENCODERS) as s:
        s.upsert(catalogue(5))

    def die(*args, **kwargs):
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(edge, "write_json_atomic", die)
    with pytest.raises(KeyboardInterrupt):
        open_store(_settings(tmp_path), encoders=[MINILM])
    monkeypatch.undo()
    assert "minilm.text" in _edge_vector_config(tmp_path)  # in the shard, not in the record
    with open_store(_settings(tmp_path), encoders=None) as s:
        assert "minilm.text" not in s.vector_names and s.count() == 5
    with open_store(_settings(tmp_path), encoders=[MINILM]) as s:
        assert "minilm.text" in s.vector_names
        rows = unit_rows(np.random.default_rng(0), 2, 6)
        s.upsert([Item("new", {"minilm.text": rows})])
        assert s.query("minilm.text.multi", rows, limit=1)[0].id == "new"
    assert _edge_vector_config(tmp_path)["minilm.text.multi"]["hnsw_config"]["m"] == 0


def test_quantization_is_configured_and_queries_rescore(tmp_path: Path) -> None:
    with open_store(_settings(tmp_path, quantization="scalar"), encoders=ENCODERS) as s:
        s.upsert(catalogue(40))
        s.optimize()
        q = np.random.default_rng(1).standard_normal(8)
        approx, exact = s.query_batch(
            [NearestQuery("clip.image", q, limit=5), NearestQuery("clip.image", q, limit=5, exact=True)]
        )
        assert [h.id for h in approx] == [h.id for h in exact]
        np.testing.assert_allclose([h.score for h in approx], [h.score for h in exact], atol=1e-5)
    config = _edge_vector_config(tmp_path)
    assert config["clip.image"]["quantization_config"]["scalar"]["type"] == "int8"
    assert "quantization_config" not in config["clip.image.multi"]


def test_a_quantized_search_without_rescoring_keeps_the_int8_scores(tmp_path: Path) -> None:
    """Edge quantizes a segment once it passes the indexing threshold: 6,000 512-d points (12 MB)."""
    rng = np.random.default_rng(0)
    rows = unit_rows(rng, 6_000, 512)
    with open_store(_settings(tmp_path, quantization="scalar"), encoders=[_WAL_SPEC]) as s:
        s.upsert([Item(f"p{i}", {"wal.image": rows[i]}) for i in range(len(rows))], optimize=False)
        s.optimize()
        q = rows[7] + 0.1 * unit_rows(rng, 1, 512)[0]
        true = {h.id: h.score for h in s.query("wal.image", q, limit=200, exact=True)}
        rescored, quantized = s.query_batch(
            [NearestQuery("wal.image", q, limit=20), NearestQuery("wal.image", q, limit=20, rescore=False)]
        )
        assert max(abs(h.score - true[h.id]) for h in rescored) < 1e-5
        gaps = [abs(h.score - true.get(h.id, 9.0)) for h in quantized]
        assert 0 < max(gaps) < 0.05  # near the true scores, not equal to them


@pytest.mark.slow
def test_optimize_builds_an_hnsw_graph_with_high_recall(tmp_path: Path) -> None:
    """Enough 128-d points to pass Edge's indexing threshold; HNSW top-10 must match exact search."""
    rng = np.random.default_rng(0)
    n, dim = 30_000, 128
    centers = rng.standard_normal((300, dim))
    data = centers[rng.integers(0, 300, n)] + 0.5 * rng.standard_normal((n, dim))
    from indexers.protocol import EncoderSpec

    enc = EncoderSpec("m", "clip", "image", dim, "cosine", "d" * 64)
    with open_store(_settings(tmp_path), encoders=[enc]) as s:
        s.upsert([Item(f"p{i}", {"m.image": data[i]}) for i in range(n)])
        assert s.optimize() is True
        queries = data[rng.integers(0, n, 30)] + 0.3 * rng.standard_normal((30, dim))
        approx = s.query_batch([NearestQuery("m.image", q, limit=10) for q in queries])
        exact = s.query_batch([NearestQuery("m.image", q, limit=10, exact=True) for q in queries])
    recall = np.mean([len({h.id for h in a} & {h.id for h in e}) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.98


def test_shard_without_record_is_adopted_only_if_it_matches(tmp_path: Path) -> None:
    from mmsearch.errors import SchemaMismatchError, StoreNotFoundError

    with open_store(_settings(tmp_path), encoders=ENCODERS) as s:
        s.upsert(catalogue(5))
    (tmp_path / "c" / "mmsearch.json").unlink()  # as if a create died before recording
    with pytest.raises(StoreNotFoundError):
        open_store(_settings(tmp_path))
    with pytest.raises(SchemaMismatchError, match="does not match"):
        open_store(_settings(tmp_path), encoders=[MINILM])
    with open_store(_settings(tmp_path), encoders=ENCODERS) as s:
        assert s.count() == 5
    assert (tmp_path / "c" / "mmsearch.json").is_file()


def test_large_upserts_optimize_and_small_ones_do_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    with open_store(_settings(tmp_path, optimize_after=20), encoders=ENCODERS) as s:
        monkeypatch.setattr(s, "optimize", lambda: calls.append(s.count()) or True)
        s.upsert(catalogue(19))
        assert calls == []
        s.upsert(catalogue(25))
        assert calls == [25]
        s.upsert(catalogue(3), optimize=True)
        s.upsert(catalogue(30), optimize=False)
        assert calls == [25, 25]


@pytest.mark.parametrize(("flush_bytes", "flushes"), [(1, 6), (1 << 40, 0)])
def test_writes_flush_once_enough_vector_bytes_piled_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flush_bytes: int, flushes: int
) -> None:
    from mmsearch.storage import edge

    monkeypatch.setattr(edge, "_FLUSH_BYTES", flush_bytes)
    seen: list[int] = []
    with open_store(_settings(tmp_path), encoders=ENCODERS) as s:
        s.upsert(catalogue(10), optimize=False)  # creates the multivector (reloading the shard) before the spy
        backend = s._backend
        real = backend._shard

        class Spy:
            def __getattr__(self, name: str) -> object:
                return getattr(real, name)

            def flush(self) -> None:
                seen.append(s.count())
                real.flush()

        backend._shard = Spy()
        try:
            for b in range(5):
                s.upsert(catalogue(10, seed=b), optimize=False)
            s.update_vectors([VectorUpdate("i0", {"cf": np.ones(CF_DIM, dtype=np.float32)})])
        finally:
            backend._shard = real
    assert len(seen) == flushes and all(n == 10 for n in seen)


def _wal_bytes(tmp_path: Path) -> int:
    return sum(f.stat().st_blocks * 512 for f in (tmp_path / "c" / "shard" / "wal").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize(("flush_bytes", "bounded"), [(8 << 20, True), (1 << 40, False)])
def test_the_write_ahead_log_stays_bounded_on_a_long_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flush_bytes: int, bounded: bool
) -> None:
    """Edge has no background flusher: without mmsearch's flushes its log keeps every write."""
    from mmsearch.storage import edge

    monkeypatch.setattr(edge, "_FLUSH_BYTES", flush_bytes)
    rng = np.random.default_rng(0)
    with open_store(_settings(tmp_path), encoders=[_WAL_SPEC]) as s:
        for b in range(16):  # 16 x 2,000 items, a 512-d pooled vector and its multivector: 130 MB of vectors logged
            rows = unit_rows(rng, 2_000, 512)
            s.upsert([Item(f"i{b}-{k}", {"wal.image": rows[k]}) for k in range(2_000)], optimize=False)
        wal = _wal_bytes(tmp_path)
        assert s.count() == 32_000
    # A flushed log keeps its last two 32 MB files (and the one being written); unflushed, all of it.
    assert (wal <= 100 << 20) if bounded else (wal > 140 << 20), wal
