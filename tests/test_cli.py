import json
import typing

import click
import pytest
from click.testing import CliRunner

from indexers.manifest import Manifest
from mmsearch.cli import cli
from tests.conftest import TINY_CLIP_CFG
from tests.helpers import make_image


def _commands(group, prefix=()):
    # list_commands/get_command, not .commands: a lazy group loads its commands on demand.
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


@pytest.mark.parametrize("path", [p for p, _ in _commands(cli)], ids=" ".join)
def test_every_command_has_help_with_an_example(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output and f"mmsearch {' '.join(path)}" in result.output


def test_embed_prints_json_vectors(tiny_clip_dir, tmp_path):
    image = tmp_path / "photo.jpg"
    make_image().save(image)
    result = CliRunner().invoke(
        cli,
        ["embed", "--model", str(tiny_clip_dir), "--text", "a red bicycle", "--text", "ramen", "--image", str(image)],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["family"] == "clip" and data["dim"] == 32
    assert [r["modality"] for r in data["results"]] == ["text", "text", "image"]
    assert all(len(r["embedding"]) == 32 for r in data["results"])
    assert data["results"][0]["embedding"] != data["results"][1]["embedding"]


def test_embed_loads_the_int8_graphs_of_an_int8_export_unless_told(tiny_clip_int8_dir):
    runner = CliRunner()
    args = ["embed", "--model", str(tiny_clip_int8_dir), "--text", "a red bicycle"]
    auto = runner.invoke(cli, args)
    fp32 = runner.invoke(cli, [*args, "--precision", "fp32"])
    assert auto.exit_code == 0 and fp32.exit_code == 0, auto.output + fp32.output
    auto_data, fp32_data = json.loads(auto.output), json.loads(fp32.output)
    assert (auto_data["precision"], fp32_data["precision"]) == ("int8", "fp32")
    # Which graph each tower runs, and why (the calibration rule for auto).
    assert auto_data["towers"]["text"]["precision"] == "int8"
    assert ">= 0.99 on 256 calibration texts" in auto_data["towers"]["text"]["reason"]
    assert fp32_data["towers"] == {t: {"precision": "fp32", "reason": "fp32 asked for"} for t in ("image", "text")}
    assert auto_data["results"][0]["embedding"] != fp32_data["results"][0]["embedding"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["embed", "--model", "/nonexistent/model"], "error: nothing to embed"),
        (
            ["embed", "--model", "/nonexistent/model", "--text", "hi"],
            "error: model folder '/nonexistent/model' does not exist",
        ),
        (
            ["export", "clip", "--arch", "ViT-Q-99", "--out", "{tmp}/m", "-q"],  # -q: no stage lines before it
            "error: unknown open_clip architecture 'ViT-Q-99'",
        ),
        (["cf", "fit", "{tmp}/log.csv", "--column", "user"], "error: --column 'user' must look like role=name"),
        (
            ["eval", "--interactions", "{tmp}/log.csv", "--column", "=sku"],
            "error: --column '=sku' must look like role=name",
        ),
    ],
)
def test_library_errors_become_one_clean_line(args, message, tmp_path):
    result = CliRunner().invoke(cli, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output


def test_embed_names_a_broken_image(tiny_clip_dir, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"")
    result = CliRunner().invoke(cli, ["embed", "--model", str(tiny_clip_dir), "--image", str(bad)])
    assert result.exit_code == 1
    assert "broken.jpg" in result.output and "Traceback" not in result.output


def test_export_clip_from_a_model_config_then_embed(tmp_path):
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY_CLIP_CFG))
    out = tmp_path / "clip"
    runner = CliRunner()
    result = runner.invoke(
        cli,
        [
            "export",
            "clip",
            "--arch",
            "cli-tiny-clip",
            "--model-config",
            str(cfg),
            "--weights",
            "none",
            "--out",
            str(out),
            "--name",
            "shop-clip",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "weights: random" in result.output and (out / "manifest.json").is_file()
    # A minute-long export says what it is doing, stage by stage, on stderr.
    stages = [line.split("] ", 1)[1] for line in result.stderr.splitlines() if line.startswith("[")]
    assert stages == [
        "building the clip model in PyTorch and loading its weights",
        "exporting the image tower to ONNX",
        "exporting the text tower to ONNX",
        "checking image, text against PyTorch (parity)",
        "optimising text's graph (fusing attention, LayerNorm, GELU) and checking it",
        f"writing the manifest and moving the model folder to {out}",
    ]
    assert Manifest.load(out).name == "shop-clip"  # --name over the folder's name, hence its vector names
    again = runner.invoke(
        cli, ["export", "clip", "--arch", "cli-tiny-clip", "--model-config", str(cfg), "--out", str(out)]
    )
    assert again.exit_code == 1 and "--overwrite" in again.output
    embedded = runner.invoke(cli, ["embed", "--model", str(out), "--text", "hello"])
    assert embedded.exit_code == 0 and json.loads(embedded.output)["dim"] == 32


@pytest.mark.slow
def test_export_full_size_clip_then_embed_from_the_cli(tmp_path):
    out = tmp_path / "clip"
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "clip", "--weights", "none", "--out", str(out)])
    assert result.exit_code == 0, result.output
    embedded = runner.invoke(cli, ["embed", "--model", str(out), "--text", "a red bicycle"])
    assert embedded.exit_code == 0 and json.loads(embedded.output)["dim"] == 512


def test_the_duplicates_choices_are_the_librarys():
    from mmsearch.cf.interactions import DUPLICATE_POLICIES, Duplicates
    from mmsearch.cli import options

    assert options.DUPLICATE_POLICIES == DUPLICATE_POLICIES == typing.get_args(Duplicates)
