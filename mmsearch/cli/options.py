"""Building blocks shared by the commands' options, so that each rule is written once.

- `option_group(...)`: several click options applied as one decorator, in the order written.
- `interaction_log_options` and `column_mapping`: how an interaction log's columns and repeated
  rows are given, for `cf fit` and `eval`.

(`settings_options` reads options off pydantic settings models; it is a module of its own because
importing pydantic would slow down every `mmsearch` call, and only the benchmarks need it.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from mmsearch.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])

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


__all__ = ["DUPLICATE_POLICIES", "column_mapping", "interaction_log_options", "option_group"]
