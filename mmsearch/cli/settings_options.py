"""Click options read off a pydantic settings model: the library keeps each default and limit once.

`settings_option(Model, "field", help=...)` declares `--field` with the field's type (an
`IntRange`/`FloatRange` carrying its `ge`/`le` bounds, a `Choice` for a `Literal`, a path) and its
default, so a bad value is a click usage error (exit 2) naming the option, and `--help` shows the
library's default. A default computed at run time (a `default_factory`, e.g. from the core count)
is left to the model: the option defaults to None, and `settings_from` passes on only the values
that are not None.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import click
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from mmsearch.errors import config_error

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)

# pydantic constraint -> click range argument, and whether the bound itself is excluded.
_BOUNDS = (("ge", "min", False), ("gt", "min", True), ("le", "max", False), ("lt", "max", True))


def _without_none(annotation: Any) -> Any:
    """`int` for `int | None`; the annotation itself otherwise."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _bounds(info: FieldInfo) -> dict[str, Any]:
    """click's range arguments from the field's `ge`/`gt`/`le`/`lt` constraints."""
    out: dict[str, Any] = {}
    for m in info.metadata:  # annotated_types.Ge(ge=1), Le(le=4096)...
        for attr, key, is_open in (
            ("ge", "min", False),
            ("gt", "min", True),
            ("le", "max", False),
            ("lt", "max", True),
        ):
            if getattr(m, attr, None) is not None:
                out[key] = getattr(m, attr)
                if is_open:
                    out[f"{key}_open"] = True
    return out


def _click_type(info: FieldInfo) -> Any:
    base = _without_none(info.annotation)
    if base in (int, float):
        bounds = _bounds(info)
        if not bounds:
            return base
        return click.IntRange(**bounds) if base is int else click.FloatRange(**bounds)
    if get_origin(base) is Literal:
        return click.Choice([str(v) for v in get_args(base)])
    if base is Path:
        return click.Path(path_type=Path)
    if base is str:
        return str
    raise TypeError(f"no click type for a settings field of type {info.annotation!r}")


def _default(info: FieldInfo) -> Any:
    if info.default_factory is not None or info.default is PydanticUndefined:
        return None  # computed at run time (e.g. from the machine): the help text says how
    return info.default


def settings_option(
    model: type[BaseModel], field: str, *param_decls: str, help: str, **click_options: Any
) -> Callable[[F], F]:
    """A click option for one field of a settings model.

    Args:
        model: the pydantic model holding the field.
        field: the field's name; the option is `--<field with dashes>` unless `param_decls` says.
        param_decls: click's option names (e.g. `"--hnsw-m", "hnsw_m"`), when not the default.
        help: the option's help text.
        click_options: other `click.option` arguments, which win (e.g. a stricter `type`).

    Returns:
        A decorator adding the option (a flag for a `bool` field, which must default to False).
    """
    info = model.model_fields[field]
    decls = param_decls or (f"--{field.replace('_', '-')}", field)
    if _without_none(info.annotation) is bool:
        if info.default is not False:
            raise TypeError(f"{model.__name__}.{field} defaults to {info.default!r}: a flag can only turn on")
        return click.option(*decls, is_flag=True, default=False, help=help, **click_options)
    options = {"type": _click_type(info), "default": _default(info), "show_default": True, **click_options}
    return click.option(*decls, help=help, **options)


def settings_from(model: type[M], given: Mapping[str, Any], **fixed: Any) -> M:
    """The settings from the options given (those left at None take the model's default).

    Args:
        model: the settings model.
        given: option name -> value, as click passed them; keys that are not fields are ignored.
        fixed: field values set by the command itself (e.g. a nested settings object).

    Raises:
        ConfigError: the values do not validate together (the message names the field).
    """
    values = {k: v for k, v in given.items() if k in model.model_fields and v is not None}
    try:
        return model(**values, **fixed)
    except ValidationError as e:
        raise config_error(e, "option") from e


__all__ = ["settings_from", "settings_option"]
