"""Building blocks shared by the commands' options, so that each rule is written once.

One grammar across the commands:

- `config_option`: `-c/--config FILE`, also read from `MMSEARCH_CONFIG`, on every command that
  reads the indexing config.
- `threads_option`: `--threads N`, the threads of the engine doing the work (onnxruntime's per
  session; implicit's for `cf fit`); left out, the library's default.
- `progress_options`: progress on stderr; `-q/--quiet` (alias `--no-progress`) turns it off,
  `--progress` forces bars when stderr is not a terminal (they are off there otherwise).
- `limit_option`: `-k/--limit N`, the number of results, wherever a command returns a ranking.
- `device_option`: `--device auto|cpu|cuda`, where the encoders run.
- `option_group(...)`: several click options applied as one decorator, in the order written.
- `interaction_log_options` and `column_mapping`: how an interaction log's columns and repeated
  rows are given, for `cf fit` and `eval`.

(`settings_options` reads options off pydantic settings models; it is a module of its own because
importing pydantic would slow down every `mmsearch` call, and only the benchmarks need it.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import click

from mmsearch.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
ONNX_THREADS = "onnxruntime's choice (one per core), or $MMSEARCH_THREADS"

# `mmsearch.cf.interactions.DUPLICATE_POLICIES`, written out because importing that module loads
# numpy, which the command line only does when a command runs (a test keeps the two equal).
DUPLICATE_POLICIES = ("sum", "max", "last")


def option_group(*options: Callable[[F], F]) -> Callable[[F], F]:
    """The options as one decorator; `--help` lists them in the order given."""

    def apply(f: F) -> F:
        for option in reversed(options):  # click's decorators stack bottom-up
            f = option(f)
        return f

    return apply


def config_option(f: F) -> F:
    """Add `-c/--config FILE` (`config_path`), read from `MMSEARCH_CONFIG` when not given."""
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        default=None,
        envvar="MMSEARCH_CONFIG",
        help="The indexing config (TOML): store, collection, catalog columns, encoders. [env: MMSEARCH_CONFIG]",
    )(f)


def threads_option(engine: str = "onnxruntime threads per session", default: str = "") -> Callable[[F], F]:
    """`--threads N` (`threads`, None when not given): how many threads `engine` uses."""
    return click.option(
        "--threads",
        type=click.IntRange(min=1),
        default=None,
        help=f"{engine[:1].upper()}{engine[1:]} [default: {default or ONNX_THREADS}].",
    )


def device_option(default: str | None = "auto", default_help: str = "") -> Callable[[F], F]:
    """`--device auto|cpu|cuda` (`device`): where the encoders run; `default` None leaves it to the config."""
    return click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda"]),
        default=default,
        show_default=default is not None,
        help=f"Where the encoders run (auto: CUDA when onnxruntime can use it){default_help}.",
    )


def limit_option(default: int = 10, what: str = "Results to return") -> Callable[[F], F]:
    """`-k/--limit N` (`limit`): how many results."""
    return click.option(
        "-k", "--limit", type=click.IntRange(min=1), default=default, show_default=True, help=f"{what}."
    )


def progress_options(f: F) -> F:
    """Add `--progress` and `-q/--quiet/--no-progress`, one setting (`progress`): `auto`, `always` or `never`."""
    return option_group(
        click.option(
            "--progress",
            "progress",
            flag_value="always",
            help="Show progress bars even when stderr is not a terminal (they are off there by default).",
        ),
        click.option(
            "-q",
            "--quiet",
            "--no-progress",
            "progress",
            flag_value="never",
            help="No progress bars or progress lines on stderr.",
        ),
    )(_auto_progress(f))


def _auto_progress(f: F) -> F:
    # The two flags above share one parameter; this hidden one gives it its default.
    return click.option("--progress-auto", "progress", flag_value="auto", default=True, hidden=True)(f)


def progress_printer(progress: str) -> Callable[[str], None]:
    """Where a command's progress lines go for a `progress` setting: stderr, or nowhere with --quiet."""
    if progress == "never":
        return lambda _line: None
    return lambda line: click.echo(line, err=True)


def progress_bar_disabled(progress: str) -> bool | None:
    """tqdm's `disable` for a `progress` setting: None lets tqdm turn bars off when stderr is not a terminal."""
    return {"always": False, "never": True}.get(progress)


def progress_bars(progress: str) -> Callable[[str, int], AbstractContextManager[Callable[[int], None]]]:
    """A bar factory for a `progress` setting (`mmsearch.eval.runner.Bar`): tqdm bars on stderr."""

    @contextlib.contextmanager
    def bar(desc: str, total: int) -> Iterator[Callable[[int], None]]:
        from tqdm import tqdm

        with tqdm(total=total, desc=desc, unit="user", leave=False, disable=progress_bar_disabled(progress)) as t:
            yield t.update

    return bar


def interaction_log_options(f: F) -> F:
    """Add --column (`columns`) and --duplicates (`duplicates`): how to read an interaction log."""
    return option_group(
        click.option(
            "--column",
            "columns",
            multiple=True,
            metavar="ROLE=NAME",
            help="Map a log column to a role (user, item, weight, timestamp): --column user=customer "
            "--column item=sku (repeatable; other roles are found by their usual names).",
        ),
        click.option(
            "--duplicates",
            type=click.Choice(DUPLICATE_POLICIES),
            default="sum",
            show_default=True,
            help="How repeated (user, item) rows merge their weights.",
        ),
    )(f)


def column_mapping(options: Sequence[str]) -> dict[str, str] | None:
    """Role -> column name from `--column role=name` options; None when there are none.

    Raises:
        ConfigError: an option that is not `role=name`.
    """
    out: dict[str, str] = {}
    for option in options:
        role, sep, name = option.partition("=")
        if not sep or not role.strip() or not name.strip():
            raise ConfigError(f"--column {option!r} must look like role=name, e.g. item=sku")
        out[role.strip()] = name.strip()
    return out or None


__all__ = [
    "DUPLICATE_POLICIES",
    "ONNX_THREADS",
    "column_mapping",
    "config_option",
    "device_option",
    "interaction_log_options",
    "limit_option",
    "option_group",
    "progress_bar_disabled",
    "progress_bars",
    "progress_options",
    "progress_printer",
    "threads_option",
]
