"""Every example in every command's `--help`, run for real in a workspace like the README's.

The workspace (`tests/cli_workspace.py`) holds the tiny models under the README's folder names, the
example catalog, interaction logs and a config; before the examples run, both stores are indexed
and have a CF model, so each example also runs alone (`-k`). Examples that download are skipped,
saying so; those that take minutes (full-size exports, benchmarks of 100,000 items) run under
`-m slow`. A new command's examples run without a word here, unless they download or are slow.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mmsearch.cli import cli
from tests.cli_workspace import make_workspace

# Examples that need the network (their weights are downloaded), by their text.
NETWORK = {
    "mmsearch export clip --arch ViT-B-32 --weights laion2b_s34b_b79k --out models/clip": "downloads CLIP weights",
    "mmsearch export resnet --arch resnet50 --weights DEFAULT --out models/resnet50": "downloads ResNet weights",
    "mmsearch bench encoders --fastembed-python /tmp/fe-venv/bin/python --json": "a fastembed venv (it downloads "
    "its ONNX model)",
}
# Examples that take minutes on a 2-core machine: run with -m slow.
SLOW = {
    "mmsearch export clip --weights none --out models/clip",  # ViT-B-32, ~2 min
    "mmsearch export clip --arch ViT-B-32 --weights none --out models/clip",
    "mmsearch export bert --model sentence-transformers/all-MiniLM-L6-v2 --out models/minilm",
    "mmsearch eval movielens",
    "mmsearch eval movielens --max-users 200 --split random --out ml-results",
    "mmsearch bench encoders --batch 1 --batch 32",
    "mmsearch bench index --items 1000 --rounds 3",
    "mmsearch bench query --items 100000 --queries 100",
    "mmsearch bench query --quantize int8 --threads 2 --json",
    "mmsearch bench store --items 100000 --queries 200",
    "mmsearch bench distributed --items 500 --workers 2",  # starts Ray and Spark
    "mmsearch bench distributed --engine spark --model models/clip --json",
    "mmsearch bench encoders --only bert --threads 2",  # exports MiniLM, runs sentence-transformers
    "mmsearch bench cf --items 10000 --items 100000",  # ~20 min
    "mmsearch bench cf --items 50000 --exact-max-items 0 --json",
    "mmsearch bench serve --items 100000",
    "mmsearch bench serve --items 20000 --requests 30",
    "mmsearch bench serve --items 20000 --requests 30 --clients 1 --clients 8 --json",
    "mmsearch bench scale --items 1000000",  # about an hour on two cores
    "mmsearch bench scale --items 20000 --queries 50 --quantization none --in-ram --json",
}
# Examples that start a server: run as a process until it answers /readyz, then stopped with Ctrl-C.
SERVERS = ("mmsearch serve",)


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def help_examples(cmd: click.Command) -> list[str]:
    """The `mmsearch ...` lines under "Example:" in a command's docstring."""
    lines = (cmd.help or "").splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Example:"), None)
    if start is None:
        return []
    out = []
    for line in lines[start + 1 :]:
        if not line.strip().startswith("mmsearch "):
            break
        out.append(line.strip())
    return out


ALL = [((), cli), *_commands(cli)]
EXAMPLES = [(" ".join(path) or "mmsearch", line) for path, cmd in ALL for line in help_examples(cmd)]


def _param(command: str, line: str) -> pytest.param:  # type: ignore[valid-type]
    marks = []
    if line in NETWORK:
        marks.append(pytest.mark.skip(reason=f"needs a network: {NETWORK[line]}"))
    if line in SLOW:
        marks.append(pytest.mark.slow)
    return pytest.param(line, id=line[len("mmsearch ") :][:80], marks=marks)


def test_every_command_has_examples_and_the_lists_name_real_ones() -> None:
    assert all(help_examples(cmd) for _, cmd in ALL), [p for p, cmd in ALL if not help_examples(cmd)]
    lines = {line for _, line in EXAMPLES}
    assert set(NETWORK) <= lines and lines >= SLOW, (set(NETWORK) | SLOW) - lines


def test_every_option_has_help() -> None:
    bare = [
        f"{' '.join(path)} {param.opts[0]}"
        for path, cmd in ALL
        for param in cmd.params
        if isinstance(param, click.Option) and not param.hidden and not param.help
    ]
    assert bare == []


def _run(line: str, cwd: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(cwd)
    monkeypatch.delenv("MMSEARCH_CONFIG", raising=False)
    monkeypatch.setenv("MMSEARCH_CACHE", str(cwd / ".cache"))
    return CliRunner().invoke(cli, shlex.split(line)[1:])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path, minilm_dir: Path) -> Path:
    """The README's workspace, both stores indexed, each with a CF model."""
    ws = make_workspace(tmp_path_factory.mktemp("examples"), tiny_clip_dir, minilm_dir)
    patch = pytest.MonkeyPatch()
    try:
        for line in (
            "mmsearch index mmsearch/examples/catalog.jsonl --model models/clip --model models/minilm --no-progress",
            "mmsearch index catalog.jsonl --config mmsearch.toml --no-progress",
            "mmsearch cf fit interactions.csv",
            "mmsearch cf fit interactions.csv -c mmsearch.toml",
        ):
            result = _run(line, ws, patch)
            assert result.exit_code == 0, f"{line}\n{result.output}"
    finally:
        patch.undo()
    return ws


@pytest.mark.parametrize("line", [_param(c, line) for c, line in EXAMPLES])
def test_help_example_runs(line: str, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if line.startswith(SERVERS):
        _serve_until_ready(line, workspace)
        return
    # An export writes a fresh model folder: in an empty folder, not over the workspace's models.
    cwd = tmp_path if line.startswith("mmsearch export") else workspace
    result = _run(line, cwd, monkeypatch)
    assert result.exit_code == 0, f"{line}\n{result.output[-3000:]}"
    assert "Traceback" not in result.output
    if "--json" in shlex.split(line):
        json.loads(result.stdout)


def _serve_until_ready(line: str, cwd: Path) -> None:
    """Start the example's server (on a free port, whatever it names), wait for /readyz, stop it cleanly."""
    from tests.service_support import READ_KEY, free_port, wait_until_ready

    port = free_port()
    env = {
        **os.environ,
        "MMSEARCH_API_KEYS": f"read:{READ_KEY}",
        "MMSEARCH_CACHE": str(cwd / ".cache"),
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("MMSEARCH_CONFIG", None)
    command = [sys.executable, "-c", "from mmsearch.cli import main; main()", *shlex.split(line)[1:]]
    process = subprocess.Popen(
        [*command, "--port", str(port)], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", alive=lambda: process.poll() is None)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, f"{line}\n{output[-3000:]}"
    assert "Traceback" not in output
