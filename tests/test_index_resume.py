"""Kill -9 in the middle of `mmsearch index`, run it again: nothing duplicated, nothing re-encoded."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import make_image, spy_on_encode

from mmsearch.indexing.index import Index
from mmsearch.storage import open_store

N_ITEMS = 3000
KILL_AFTER = 100  # items the killed run must have written first


def test_a_killed_run_resumes_without_duplicates_or_re_encoding(tmp_path, tiny_clip_dir, monkeypatch):
    for i in range(8):
        make_image(seed=i).save(tmp_path / f"{i}.png")
    catalog = tmp_path / "catalog.jsonl"
    with open(catalog, "w", encoding="utf-8") as f:
        for i in range(N_ITEMS):
            f.write(json.dumps({"id": f"k{i}", "title": f"item number {i}", "images": [f"{i % 8}.png"]}) + "\n")
    store = tmp_path / "store"
    cmd = [
        sys.executable,
        "-c",
        "from mmsearch.cli import main; main()",
        "-v",
        "index",
        str(catalog),
        "--model",
        str(tiny_clip_dir),
        "--store",
        str(store),
        "--batch-size",
        "8",
        "--workers",
        "2",
        "--errors",
        str(tmp_path / "errors.jsonl"),
    ]
    proc = subprocess.Popen(
        cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    deadline = time.monotonic() + 120
    written = 0
    try:
        for line in proc.stderr:  # "INFO mmsearch.indexing.pipeline: wrote 8 items (N written in this run)"
            if "written in this run" in line:
                written = int(line.split("(")[1].split()[0])
                if written >= KILL_AFTER:
                    proc.send_signal(signal.SIGKILL)
                    break
            if time.monotonic() > deadline:
                break
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"

    with open_store({"path": store}) as s:
        before = {item.id for item in s.iter_items(with_payload=False)}
        assert s.count() == len(before)
    assert KILL_AFTER <= len(before) < N_ITEMS, len(before)

    encoded = spy_on_encode(monkeypatch)
    with Index.open(models=[tiny_clip_dir], store_path=store, batch_size=32) as index:
        summary = index.sync(catalog)
        ids = [item.id for item in index.store.iter_items(with_payload=False)]

    assert summary.ok and summary.unchanged == len(before) and summary.new == N_ITEMS - len(before)
    assert not set(encoded) & before, "items written before the kill were encoded again"
    assert len(encoded) == len(set(encoded)) == N_ITEMS - len(before)
    assert len(ids) == len(set(ids)) == summary.stored == N_ITEMS  # no duplicates, nothing lost


@pytest.mark.slow
def test_a_second_kill_during_the_resumed_run_also_resumes(tmp_path, tiny_clip_dir):
    """The same, twice over, through the CLI only (slow: three processes)."""
    make_image(seed=1).save(tmp_path / "a.png")
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(
        "".join(json.dumps({"id": f"k{i}", "title": f"t{i}", "images": ["a.png"]}) + "\n" for i in range(N_ITEMS)),
        encoding="utf-8",
    )
    base = [
        sys.executable,
        "-c",
        "from mmsearch.cli import main; main()",
        "-v",
        "index",
        str(catalog),
        "--model",
        str(tiny_clip_dir),
        "--store",
        str(tmp_path / "s"),
        "--batch-size",
        "8",
    ]
    for _ in range(2):
        proc = subprocess.Popen(base, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path)
        seen = 0
        for line in proc.stderr:
            if "written in this run" in line:
                seen += 1
                if seen >= 10:
                    proc.send_signal(signal.SIGKILL)
                    break
        proc.kill()
        proc.wait(timeout=30)
    done = subprocess.run([*base, "--json"], check=False, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    summary = json.loads(done.stdout)
    assert done.returncode == 0 and summary["stored"] == N_ITEMS and summary["unchanged"] >= 160
    assert (tmp_path / "catalog.errors.jsonl").read_text() == ""  # the default log, in the working folder
