"""Command-line options built from a pydantic config's fields: the model is the one source of flags, help and
defaults (in the spirit of transformers' ``HfArgumentParser``).

``add_config_flags(parser, Model)`` adds ``--config FILE`` and one ``--field-name`` per field (a bool field
defaulting to true becomes ``--no-field-name``; lists are comma-separated; ``Literal`` fields get choices;
dict fields stay YAML-only). Every flag defaults to "not given", so ``config_from_args`` applies the one
precedence rule of ``babymerge.config_file.load_config``: flags over the YAML file over the defaults.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from ..config_file import load_config


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def plain(text: str) -> str:
    """Help text without markup (backticks)."""
    return text.replace("``", "").replace("`", "")


def unwrap(annotation: Any) -> Any:
    """``X`` from ``X | None``."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def parse_list(item: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    def parse(value: str) -> list[Any]:
        return [item(v.strip()) for v in value.split(",") if v.strip()]

    parse.__name__ = f"comma-separated {getattr(item, '__name__', 'value')}"
    return parse


def scalar(annotation: Any) -> tuple[Callable[[str], Any], tuple | None]:
    """The argparse type and choices of a scalar annotation."""
    if typing.get_origin(annotation) is Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), choices
    return (annotation if annotation in (int, float, str, Path) else str), None


def shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def add_config_flags(
    parser: argparse.ArgumentParser,
    model: type[BaseModel],
    *,
    positional: Iterable[str] = (),
    skip: Iterable[str] = (),
) -> None:
    """Add ``--config`` and a flag per field of ``model`` (``positional`` fields as required positionals)."""
    positional, skip = list(positional), set(skip)
    parser.set_defaults(config_model=model)
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"YAML file of {model.__name__} fields (flags given here override it)",
    )
    for name in positional:
        field = model.model_fields[name]
        kind, choices = scalar(unwrap(field.annotation))
        parser.add_argument(name, type=kind, choices=choices, help=plain(field.description or ""))
    for name, field in model.model_fields.items():
        if name in skip or name in positional:
            continue
        annotation = unwrap(field.annotation)
        default = field.get_default(call_default_factory=True)
        text = plain(field.description or "")
        if default is not None and default is not PydanticUndefined and not isinstance(default, bool):
            text += f"{' ' if text else ''}(default {shown(default)})"
        if annotation is bool:
            if default is True:
                text = f"turn off: {text}" if text else "turn off"
                parser.add_argument(flag_name(f"no_{name}"), dest=name, action="store_false", default=None, help=text)
            else:
                parser.add_argument(flag_name(name), dest=name, action="store_true", default=None, help=text)
            continue
        if typing.get_origin(annotation) is dict or annotation is Any:
            continue  # YAML only
        if typing.get_origin(annotation) is list:
            kind, choices = scalar(typing.get_args(annotation)[0])
            check = (lambda v, kind=kind, choices=choices: checked(kind(v), choices)) if choices else kind
            parser.add_argument(flag_name(name), dest=name, type=parse_list(check), default=None, help=text)
            continue
        kind, choices = scalar(annotation)
        parser.add_argument(flag_name(name), dest=name, type=kind, choices=choices, default=None, help=text)


def checked(value: Any, choices: tuple) -> Any:
    if value not in choices:
        raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(map(str, choices))}")
    return value


def config_from_args(args: argparse.Namespace, *, given: dict[str, Any] | None = None, **defaults: Any) -> Any:
    """The command's config from its parsed flags (plus ``given`` values) over ``--config`` over ``defaults``."""
    model = args.config_model
    flags = {name: getattr(args, name, None) for name in model.model_fields}
    return load_config(model, args.config, flags | (given or {}), defaults)


def add_out(parser: argparse.ArgumentParser, help: str, *, old_positional: str | None = None) -> None:
    """``--out`` (required); ``old_positional`` keeps an earlier positional spelling working, hidden."""
    parser.add_argument("--out", help=help)
    if old_positional:
        parser.add_argument("old_out", nargs="?", metavar=old_positional, help=argparse.SUPPRESS)


def out_of(args: argparse.Namespace) -> str:
    """The output location given by ``--out`` (or the hidden old positional)."""
    from ..errors import BabymergeError

    old = getattr(args, "old_out", None)
    if args.out and old:
        raise BabymergeError(f"the output is given twice ({old} and --out {args.out}); give --out only")
    if not (args.out or old):
        raise BabymergeError("--out is required")
    return args.out or old
