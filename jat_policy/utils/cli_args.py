"""Typed command-line options: a dataclass turned into an ``argparse`` parser.

Each field needs a type, a default and a help line (``field(metadata={"help": ...})``), in the
spirit of cleanrl's ``Args`` dataclass. ``bool`` fields become ``--flag / --no-flag``; ``list[str]``
fields accept comma-separated values.
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def _parse_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _argument_kwargs(field: dataclasses.Field, hint: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"help": field.metadata.get("help", "")}
    default = field.default if field.default is not dataclasses.MISSING else None
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        default = field.default_factory()  # type: ignore[misc]
    kwargs["default"] = default
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if hint is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif origin is list or (args and typing.get_origin(args[0]) is list):
        kwargs["type"] = _parse_list
    elif args:  # Optional[X] / X | None
        kwargs["type"] = args[0]
    else:
        kwargs["type"] = hint
    if "choices" in field.metadata:
        kwargs["choices"] = field.metadata["choices"]
    kwargs["help"] += f" (default: {default!r})"
    return kwargs


def build_parser(cls: type, prog: str, description: str = "") -> argparse.ArgumentParser:
    """Builds a parser with one ``--option`` per dataclass field.

    Args:
        cls: A dataclass type whose fields carry ``metadata={"help": ...}``.
        prog: Program name shown in ``--help``.
        description: Text shown above the options.

    Returns:
        The parser.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description or cls.__doc__)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        parser.add_argument(flag, dest=field.name, **_argument_kwargs(field, hints[field.name]))
    return parser


def parse_args(cls: type[T], argv: list[str] | None, prog: str, description: str = "") -> T:
    """Parses ``argv`` into an instance of the dataclass ``cls``.

    Args:
        cls: The options dataclass.
        argv: Command-line arguments (without the program name).
        prog: Program name shown in ``--help``.
        description: Text shown above the options.

    Returns:
        An instance of ``cls``.
    """
    namespace = build_parser(cls, prog, description).parse_args(argv)
    return cls(**vars(namespace))
