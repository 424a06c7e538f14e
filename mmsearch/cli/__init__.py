"""The `mmsearch` command line: a thin layer over the library."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from mmsearch.errors import MmsearchError
from mmsearch.version import __version__


class MmsearchGroup(click.Group):
    """Turns library errors into one clean line and exit status 1, in one place.

    A file-system error the library did not name (an OSError) gets the same treatment, its
    traceback logged at debug level (-vv): the user sees what failed on which path.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MmsearchError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(1)
        except OSError as e:
            logging.getLogger("mmsearch.cli").debug("unhandled OSError", exc_info=True)
            where = f": {e.filename!r}" if e.filename else ""
            click.echo(f"error: {e.strerror or e}{where}", err=True)
            ctx.exit(1)


@click.group(cls=MmsearchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mmsearch")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Multimodal search and hybrid recommendation on Qdrant.

    \b
    Example:
      mmsearch export clip --weights none --out models/clip
      mmsearch embed --model models/clip --text "a red bicycle"
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _register() -> None:
    from mmsearch.cli import bench_cmd, embed_cmd, export_cmd, index_cmd

    cli.add_command(export_cmd.export)
    cli.add_command(embed_cmd.embed)
    cli.add_command(bench_cmd.bench)
    cli.add_command(index_cmd.index)
    from mmsearch.cli import eval_cmd

    cli.add_command(eval_cmd.eval_group)
    from mmsearch.cli import cf_cmd, query_cmd

    cli.add_command(query_cmd.query)
    cli.add_command(query_cmd.recommend)
    cli.add_command(cf_cmd.cf)
    from mmsearch.cli import serve_cmd

    cli.add_command(serve_cmd.serve)


_register()


def main() -> None:
    cli(prog_name="mmsearch")
