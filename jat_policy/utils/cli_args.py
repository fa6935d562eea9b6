"""Typed command-line options: a dataclass turned into an ``argparse`` parser.

Each field needs a type, a default and a help line (``field(metadata={"help": ...})``), in the
spirit of cleanrl's ``Args`` dataclass. ``bool`` fields become ``--flag / --no-flag``; ``list[str]``
fields accept comma-separated values. A usage mistake (unknown option, bad value) prints one line,
``<prog>: error: <what> (see <prog> --help)``, and exits with code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import typing
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")

# reST/Sphinx markup in docstrings used as --help text: :func:`~a.b.c` -> c, :mod:`a.b` -> a.b, ``x`` -> x.
_ROLE = re.compile(r":[a-z]+:`(~?)([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]+)``")


class OneLineParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one line on stderr, exit code 2 (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        """Prints ``<prog>: error: <message> (see <prog> --help)`` and exits with code 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def usage_error(prog: str, message: str) -> int:
    """Prints a usage mistake as the one line every command uses and returns exit code 2."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def plain_text(doc: str) -> str:
    """A docstring as plain text for ``--help``: Sphinx roles and double-backtick literals unwrapped."""
    import inspect

    def role(match: re.Match) -> str:
        return match.group(2).rsplit(".", 1)[-1] if match.group(1) else match.group(2)

    return _LITERAL.sub(r"\1", _ROLE.sub(role, inspect.cleandoc(doc)))


def _parse_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _default_suffix(help_: str, default: Any) -> str:
    """`` (default: x)``, unless the help line already says its default or there is none to show."""
    if "default" in help_.lower() or default in (None, "", []):
        return ""
    shown = ",".join(map(str, default)) if isinstance(default, list) else repr(default)
    return f" (default: {shown})"


def _argument_kwargs(field: dataclasses.Field, hint: Any) -> dict[str, Any]:
    help_ = field.metadata.get("help", "")
    default = field.default if field.default is not dataclasses.MISSING else None
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        default = field.default_factory()  # type: ignore[misc]
    kwargs: dict[str, Any] = {"default": default, "help": help_ + _default_suffix(help_, default)}
    origin = typing.get_origin(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if hint is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
        kwargs["help"] = help_ + ("" if default is None else f" (default: {'on' if default else 'off'})")
    elif origin is list or (args and typing.get_origin(args[0]) is list):
        kwargs["type"] = _parse_list
    elif args:  # Optional[X] / X | None
        kwargs["type"] = args[0]
    else:
        kwargs["type"] = hint
    if "choices" in field.metadata:
        kwargs["choices"] = field.metadata["choices"]
    return kwargs


def build_parser(cls: type, prog: str, description: str = "") -> argparse.ArgumentParser:
    """Builds a parser with one ``--option`` per dataclass field.

    Args:
        cls: A dataclass type whose fields carry ``metadata={"help": ...}``.
        prog: Program name shown in ``--help``.
        description: Text shown above the options (Sphinx markup is stripped; line breaks are kept).

    Returns:
        The parser.
    """
    parser = OneLineParser(
        prog=prog,
        description=plain_text(description or cls.__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Add --debug (or set JAT_POLICY_DEBUG=1) to see a full traceback on errors.",
    )
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
