"""Every code block of README.md, run in README order in one prepared workspace (tests/readme_support.py).

The workspace is what a reader following the README has at hand: `models/clip` (the session's tiny
CLIP, under the name an export to `models/clip` gives it), `models/minilm`, the example catalog
(at `mmsearch/examples/catalog.jsonl` as in the repository, and as `catalog.jsonl` + `images/`),
`photo.jpg`, an interaction log for the catalog's ids (`interactions.csv`, and as `ratings.tsv`
and `clicks.tsv`), `mmsearch.toml` (the config file section's store and encoders), and
`broken.jsonl` (a catalog with bad lines, for the error log sample).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from pathlib import Path

import pytest

from indexers.manifest import Manifest
from mmsearch.errors import ConfigError
from tests.readme_support import Block, BlockError, Runner, read_blocks

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "mmsearch" / "examples"
BLOCKS = read_blocks((REPO / "README.md").read_text(encoding="utf-8"))

MMSEARCH_TOML = """\
[store]
backend = "edge"
path = "data"
collection = "products"
payload_indexes = { category = "keyword", price = "float" }

[[encoders]]
model = "models/clip"
text_fields = ["title"]

[[encoders]]
model = "models/minilm"
text_fields = ["title", "description", "reviews"]
"""

BROKEN_CATALOG = """\
{"id": "g1", "title": "Green mug", "description": "Stoneware mug."}
{"id": "b-missing", "title": "Lost photo", "images": ["nope.png"]}
{"id": "g1", "title": "Green mug again"}
{"id": "bad json",
"""

# Items nobody interacted with: found through content only (the README's explain sample says so of sku-011).
COLD = {"sku-011", "sku-037", "sku-038", "sku-039", "sku-040"}


def block_env(workspace: Path) -> dict[str, str]:
    """What blocks see: this checkout's code and venv, offline hubs, caches inside the workspace."""
    env = {k: v for k, v in os.environ.items() if k != "MMSEARCH_CONFIG"}
    env.update(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        MMSEARCH_CACHE=str(workspace / ".cache"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONPATH=os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])]),
    )
    return env


def interaction_rows() -> list[tuple[str, str, int, int]]:
    """(user, item, rating, timestamp) for users u1..u50, each mostly within one category, seeded."""
    items = [json.loads(line) for line in (EXAMPLES / "catalog.jsonl").read_text(encoding="utf-8").splitlines()]
    warm = [i for i in items if i["id"] not in COLD]
    categories = sorted({i["category"] for i in warm})
    rng, t, rows = random.Random(0), 1_700_000_000, []
    for u in range(1, 51):
        home = categories[u % len(categories)]
        mine = [i["id"] for i in warm if i["category"] == home]
        other = [i["id"] for i in warm if i["category"] != home]
        for item in rng.sample(mine, min(len(mine), rng.randint(3, 5))) + rng.sample(other, 2):
            t += rng.randint(60, 86_400)
            rows.append((f"u{u}", item, rng.randint(1, 5), t))
    return rows


def write_logs(workspace: Path) -> None:
    rows = interaction_rows()
    logs = {
        "interactions.csv": (",", ("user", "item", "rating", "timestamp"), lambda r: r),
        "ratings.tsv": ("\t", ("user_id", "movie_id", "rating"), lambda r: r[:3]),
        "clicks.tsv": ("\t", ("user", "item", "timestamp"), lambda r: (r[0], r[1], r[3])),
    }
    for name, (sep, header, pick) in logs.items():
        lines = [sep.join(header), *(sep.join(map(str, pick(r))) for r in rows)]
        (workspace / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def readme_workspace(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path, minilm_dir: Path) -> Path:
    ws = tmp_path_factory.mktemp("readme")
    # Copies, not links: a slow block re-exports into these folders with --overwrite.
    clip = shutil.copytree(tiny_clip_dir, ws / "models" / "clip")
    # `mmsearch export --out models/clip` names the model after its folder; the manifest is not hashed.
    Manifest.load(clip).model_copy(update={"name": "clip"}).write(clip)
    shutil.copytree(minilm_dir, ws / "models" / "minilm")
    for target in (ws / "mmsearch" / "examples", ws):
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLES / "catalog.jsonl", target)
        shutil.copytree(EXAMPLES / "images", target / "images")
    shutil.copy(EXAMPLES / "images" / "ball-blue.jpg", ws / "photo.jpg")
    write_logs(ws)
    (ws / "mmsearch.toml").write_text(MMSEARCH_TOML, encoding="utf-8")
    (ws / "broken.jsonl").write_text(BROKEN_CATALOG, encoding="utf-8")
    return ws


@pytest.fixture(scope="session")
def readme(readme_workspace: Path) -> Runner:
    return Runner(readme_workspace, REPO, block_env(readme_workspace))


@pytest.mark.parametrize(
    "block", [pytest.param(b, id=b.id, marks=[pytest.mark.slow] if b.slow else []) for b in BLOCKS]
)
def test_readme_block(block: Block, readme: Runner) -> None:
    readme.run(block)


def test_read_blocks_reads_markers_sections_and_fences() -> None:
    text = (
        "# t\n## One\n<!-- readme-test: skip: needs ray -->\n```python\nimport ray\n```\n"
        "<!-- quickstart-command -->\n```bash\necho hi\n```\n<!-- readme-test: output -->\n```text\nhi\n```\n"
        "## Two\n<!-- readme-test: slow -->\n  ```bash\n  sleep 30\n  ```\n"
        "<!-- readme-test: output: mmsearch --version -->\n```\nmmsearch, version 1\n```\n"
    )
    ray, hi, shown, sleep, version = read_blocks(text)
    assert (ray.line, ray.lang, ray.code, ray.section, ray.skip) == (4, "python", "import ray\n", "One", "needs ray")
    assert hi.skip == "run by .ci/run" and shown.output == "" and shown.after == hi.line
    assert sleep.slow and sleep.code == "sleep 30\n" and sleep.section == "Two" and sleep.id == "README.md:17 bash"
    assert version.output == "mmsearch --version" and version.lang == ""
    with pytest.raises(ValueError, match="unknown marker"):
        read_blocks("<!-- readme-test: skipp: typo -->\n```bash\ntrue\n```\n")
    with pytest.raises(ValueError, match="right before a fence"):
        read_blocks("<!-- readme-test: slow -->\n\n```bash\ntrue\n```\n")
    with pytest.raises(ValueError, match="never closed"):
        read_blocks("```bash\ntrue\n")


BROKEN = [
    pytest.param("python", None, "1 / 0\n", ZeroDivisionError, id="python raises"),
    pytest.param("bash", None, "true\nfalse\necho never\n", BlockError, id="bash line fails"),
    pytest.param("toml", None, "[index]\nbatch_size = 0\n", ConfigError, id="config invalid"),
    pytest.param("toml", None, "[store\n", BlockError, id="toml invalid"),
    pytest.param("json", None, '{"a": 1,\n', BlockError, id="json invalid"),
    pytest.param("json", """echo '{"a": 1, "b": 2}'""", '{"a": 1}\n', BlockError, id="json keys differ"),
    pytest.param("text", "echo 'indexed 4 items'", "collection 'x' holds 4 items\n", BlockError, id="output differs"),
    pytest.param("text", None, "$ echo done\nstarted\n", BlockError, id="transcript differs"),
    pytest.param("text", None, "mmsearch index CATALOG [--no-such-option]\n", BlockError, id="usage unknown option"),
    pytest.param("text", None, "mmsearch/\n  no_such_package/   what\n", BlockError, id="tree path missing"),
    pytest.param("text", None, "some prose the harness cannot check\n", BlockError, id="text unrecognised"),
    pytest.param("yaml", None, "a: 1\n", BlockError, id="language unknown"),
]


@pytest.mark.parametrize(("lang", "output", "code", "error"), BROKEN)
def test_harness_fails_a_broken_block(tmp_path: Path, lang: str, output: str | None, code: str, error: type) -> None:
    runner = Runner(tmp_path, REPO, block_env(tmp_path))
    with pytest.raises(error):
        runner.run(Block(1, lang, code, output=output))


def test_harness_passes_a_true_sample(tmp_path: Path) -> None:
    runner = Runner(tmp_path, REPO, block_env(tmp_path))
    runner.run(Block(1, "bash", "echo 'indexed 40 items in 0.4 s'\necho \"collection 'x' holds 40 items\"\n"))
    runner.run(Block(5, "text", "indexed 3 items in 9.9 s\n...\ncollection 'y' holds 3 items\n", output="", after=1))
    runner.run(Block(9, "json", '{"b": 0, "a": 0}\n', output="""echo '{"a": 1, "b": 2}'"""))
    runner.run(Block(12, "text", "mmsearch/\n  query/   the engine\ntests/\n"))
