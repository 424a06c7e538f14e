"""Read README.md's fenced code blocks and run each one as a reader would: the harness of test_readme.py.

A block is run, or checked, by its language:

- `bash`: `bash -euo pipefail -c BLOCK` in the workspace; its lines share one shell.
- `python`: exec'd in the workspace, in one namespace per `## ` section (a later block of a
  section may use what an earlier one defined).
- `toml`: parsed; when its tables are config sections, validated by `mmsearch.indexing.config`.
- `json`: parsed, as one document or as JSON lines.
- `text` or untagged: a `$ COMMAND` transcript (the command is run, its output compared), a
  `mmsearch ...` usage synopsis (every `--option` must be in the command's `--help`), or a file
  tree (every path must exist in the repository).

An HTML comment on the line right before a fence changes that:

- `<!-- readme-test: skip: REASON -->`: not run, reported as skipped with the reason.
- `<!-- readme-test: slow -->`: run only under `-m slow` (real, but over ~20 s).
- `<!-- readme-test: output -->`: the block (json or text) shows the output of the bash block
  before it; `<!-- readme-test: output: COMMAND -->`: the output of COMMAND, run in the workspace.
  A json sample must have the keys of the real stdout; a text sample the first word of each
  line of the real stdout then stderr (numbers masked, `...` lines left out), in order.
- `<!-- quickstart-command -->`, `<!-- test-command -->`, `<!-- lint-command -->`, `<!-- system-command -->`: run by
  `.ci/run` on a clean clone, so skipped here.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CI_MARKERS = (
    "<!-- quickstart-command -->",
    "<!-- test-command -->",
    "<!-- lint-command -->",
    "<!-- system-command -->",
)
MARKER = re.compile(r"<!-- readme-test: (.*?) -->")
FENCE = re.compile(r"^(\s*)(```+)\s*([^\s`]*)[^`]*$")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
TREE_LINE = re.compile(r"^( *)([\w.-]+/?(?: [\w.-]+/?)*)(?:\s{2,}\S.*)?$")
BLOCK_TIMEOUT_S = 600


class BlockError(AssertionError):
    """A README block failed: its message says what ran and what came out."""


@dataclass(frozen=True)
class Block:
    """One fenced code block.

    Attributes:
        line: the line of its opening fence, from 1.
        lang: the fence's language ("" when untagged).
        code: its text, the fence's indentation removed.
        section: the `## ` heading it is under ("" before the first).
        skip: why it is not run (a skip or CI marker), or None.
        slow: it carries the slow marker.
        output: None, or what it shows the output of: a command, or "" for the bash block before it.
        after: the line of the bash block before it (for a bare `output` marker).
    """

    line: int
    lang: str
    code: str
    section: str = ""
    skip: str | None = None
    slow: bool = False
    output: str | None = None
    after: int | None = None

    @property
    def id(self) -> str:
        return f"README.md:{self.line} {self.lang or 'text'}"


def _marker(previous: str, line: int) -> dict[str, Any]:
    if previous in CI_MARKERS:
        return {"skip": "run by .ci/run"}
    m = MARKER.fullmatch(previous)
    if m is None:
        return {}
    word, _, rest = m.group(1).partition(":")
    if word == "skip" and rest.strip():
        return {"skip": rest.strip()}
    if word == "slow" and not rest:
        return {"slow": True}
    if word == "output":
        return {"output": rest.strip()}
    raise ValueError(f"README.md:{line - 1}: unknown marker {previous!r}: use skip: REASON, slow or output[: COMMAND]")


def read_blocks(text: str) -> list[Block]:
    """Every fenced code block of a markdown text, in order, with its marker."""
    blocks: list[Block] = []
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if MARKER.fullmatch(line.strip()) and not (n + 1 < len(lines) and FENCE.match(lines[n + 1])):
            raise ValueError(f"README.md:{n + 1}: a readme-test marker must be on the line right before a fence")
    section, i, last_bash = "", 0, None
    while i < len(lines):
        if lines[i].startswith("## "):
            section = lines[i][3:].strip()
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, fence, lang = m.groups()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence), None)
        if end is None:
            raise ValueError(f"README.md:{i + 1}: the code block is never closed")
        code = "\n".join(x[len(indent) :] for x in lines[i + 1 : end]) + "\n"
        marker = _marker(lines[i - 1].strip() if i else "", i + 1)
        if marker.get("output") == "" and last_bash is None:
            raise ValueError(f"README.md:{i}: an output marker with no bash block before it: name the command")
        blocks.append(Block(i + 1, lang, code, section, after=last_bash, **marker))
        if lang == "bash":
            last_bash = i + 1
        i = end + 1
    return blocks


def first_words(text: str) -> list[str]:
    """The first word of each line, numbers masked as `#`; blank and `...` lines left out."""
    words = (line.split() for line in text.splitlines())
    return [NUMBER.sub("#", w[0]) for w in words if w and w[0] not in ("...", "…")]


def check_same_shape(sample: str, actual: str, what: str) -> None:
    """Each sample line's first word appears, in order, among the actual output's first words."""
    want, got = first_words(sample), iter(first_words(actual))
    for n, word in enumerate(want):
        if word not in got:  # consumes `got` up to the match: an in-order subsequence
            raise BlockError(
                f"{what}: the sample's line {n + 1} starts with {word!r}, which the real output "
                f"does not have (in this order); real output:\n{actual[-3000:]}"
            )


def parse_json(text: str, what: str) -> list[Any]:
    """A JSON document as a one-element list, or JSON lines as a list."""
    try:
        return [json.loads(text)]
    except ValueError:
        pass
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as e:
        raise BlockError(f"{what} is neither JSON nor JSON lines: {e}") from e


def _keys(docs: list[Any]) -> set[tuple[str, ...]]:
    return {tuple(sorted(d)) if isinstance(d, dict) else () for d in docs}


class Runner:
    """Runs blocks in README order in one workspace, keeping what later blocks use.

    Args:
        workspace: the folder blocks run in (their cwd).
        repo: the repository root, for file trees.
        env: the environment of bash blocks and commands; python blocks see it in `os.environ`.
    """

    def __init__(self, workspace: Path, repo: Path, env: dict[str, str]) -> None:
        self.workspace = workspace
        self.repo = repo
        self.env = env
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.outputs: dict[int, tuple[str, str]] = {}

    def run(self, block: Block) -> None:
        """Run or check one block; raises BlockError when it fails, skips when it cannot run."""
        if block.skip is not None:
            pytest.skip(block.skip)
        runner = getattr(self, f"_{block.lang or 'text'}", None)
        if runner is None:
            raise BlockError(f"{block.id}: no runner for {block.lang!r} blocks: mark it skip with a reason")
        runner(block)

    def shell(self, command: str, what: str, *, timeout: float = BLOCK_TIMEOUT_S) -> tuple[str, str]:
        """The stdout and stderr of `command` under `bash -euo pipefail`; raises if it fails."""
        try:
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=self.workspace,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as e:
            raise BlockError(f"{what} ran over {timeout:.0f} s") from e
        if done.returncode != 0:
            shown = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}".strip()
            raise BlockError(f"{what} exited {done.returncode}:\n$ {command.strip()}\n{shown}")
        return done.stdout, done.stderr

    @contextlib.contextmanager
    def _inside(self) -> Iterator[None]:
        cwd, environ = os.getcwd(), dict(os.environ)
        os.chdir(self.workspace)
        os.environ.update(self.env)
        try:
            yield
        finally:
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(environ)

    def _bash(self, block: Block) -> None:
        self.outputs[block.line] = self.shell(block.code, block.id)

    def _python(self, block: Block) -> None:
        namespace = self.namespaces.setdefault(block.section, {"__name__": "__readme__"})
        code = compile("\n" * block.line + block.code, str(self.repo / "README.md"), "exec")
        with self._inside():
            exec(code, namespace)

    def _toml(self, block: Block) -> None:
        from mmsearch.indexing.config import IndexConfig, parse_config

        try:
            data = tomllib.loads(block.code)
        except tomllib.TOMLDecodeError as e:
            raise BlockError(f"{block.id} is not valid TOML: {e}") from e
        if set(data) <= set(IndexConfig.model_fields):
            parse_config(data, self.workspace)  # ConfigError names the bad key

    def _output_of(self, block: Block) -> tuple[str, str]:
        if block.output:
            return self.shell(block.output, f"{block.id}'s output command")
        if block.after not in self.outputs:
            pytest.skip(f"shows the output of README.md:{block.after}, which did not run")
        return self.outputs[block.after]

    def _json(self, block: Block) -> None:
        sample = parse_json(block.code, block.id)
        if block.output is None:
            return
        actual = parse_json(self._output_of(block)[0], f"{block.id}'s real output (stdout)")
        if _keys(sample) != _keys(actual):
            raise BlockError(f"{block.id}: the sample's keys {_keys(sample)} are not the real ones {_keys(actual)}")

    def _text(self, block: Block) -> None:
        lines = block.code.splitlines()
        if block.output is not None:
            check_same_shape(block.code, "".join(self._output_of(block)), block.id)
        elif lines and lines[0].startswith("$ "):
            self._transcript(block, lines)
        elif lines and re.match(r"mmsearch [a-z]", lines[0]) and "[--" in block.code:
            self._usage(block, lines[0])
        elif lines and all(TREE_LINE.match(x) for x in lines if x.strip()):
            self._tree(block, lines)
        else:
            raise BlockError(
                f"{block.id}: a text block the harness cannot check: show a command's output with "
                f"<!-- readme-test: output: COMMAND -->, or mark it <!-- readme-test: skip: REASON -->"
            )

    def _transcript(self, block: Block, lines: list[str]) -> None:
        starts = [n for n, x in enumerate(lines) if x.startswith("$ ")] + [len(lines)]
        for a, b in itertools.pairwise(starts):
            command = lines[a][2:]
            actual = "".join(self.shell(command, block.id))
            check_same_shape("\n".join(lines[a + 1 : b]), actual, f"{block.id} `{command}`")

    def _usage(self, block: Block, first: str) -> None:
        words = []
        for word in first.split()[1:]:
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            words.append(word)
        command = " ".join(["mmsearch", *words])
        helped = set(re.findall(r"--[a-z][a-z-]*", self.shell(f"{command} --help", block.id)[0]))
        unknown = sorted(set(re.findall(r"--[a-z][a-z-]*", block.code)) - helped)
        if unknown:
            raise BlockError(f"{block.id}: `{command} --help` has no {', '.join(unknown)}")

    def _tree(self, block: Block, lines: list[str]) -> None:
        parents: list[tuple[int, Path]] = []
        missing = []
        for line in lines:
            m = TREE_LINE.match(line)
            if m is None or not line.strip():
                continue
            depth = len(m.group(1))
            parents = [(d, p) for d, p in parents if d < depth]
            base = parents[-1][1] if parents else Path()
            for name in m.group(2).split():
                if not (self.repo / base / name).exists():
                    missing.append(str(base / name))
                if name.endswith("/"):
                    parents.append((depth, base / name))
        if missing:
            raise BlockError(f"{block.id}: the tree names paths the repository does not have: {missing}")
