"""How ``jat-policy`` reports a failed command: a usage mistake is one line and exit code 2, a bug a traceback.

A **usage mistake** is something the user fixes by changing the command or their files: an argument the library
refused with a message of its own (a ``ValueError`` / ``LookupError`` / ``OSError`` raised by a ``raise``
statement in jat_policy: unknown task, bad value, a path that does not exist), a file the OS could not find or
open, or a missing optional extra (an ``ImportError`` naming ``pip install``). Its message is printed as
``jat-policy <command>: error: <message>`` and the exit code is 2, like argparse's own errors.

Anything else (an ``IndexError`` deep in a library, a ``KeyError`` from a dict look-up in our code) is a
**crash**: it keeps Python's full traceback and exit code 1, because that is what a bug report needs.
``--debug`` or ``JAT_POLICY_DEBUG=1`` shows the traceback of usage mistakes too.
"""

from __future__ import annotations

import dis
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

__all__ = ["DEBUG_ENV", "debug_requested", "is_usage_mistake", "mistake_message", "run_command"]

DEBUG_ENV = "JAT_POLICY_DEBUG"
_PACKAGE_DIR = Path(__file__).resolve().parents[1]
# errno-style failures on the user's own files: one line whoever raised them
_FILE_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def debug_requested() -> bool:
    """Whether ``JAT_POLICY_DEBUG`` asks for full tracebacks (any value but empty, 0, false, no)."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _innermost(tb: TracebackType | None) -> TracebackType | None:
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb


def _raised_by_us(error: BaseException) -> bool:
    """True when the innermost frame is jat_policy code stopped at a ``raise`` statement (a checked error).

    The frame's own bytecode decides (the instruction it stopped at is ``RAISE_VARARGS``), not the source file: a
    file edited while a command runs cannot change the verdict. An error from a call in our code (``int(x)``, a dict
    look-up) stops at a call or subscript instead, and stays a crash.
    """
    tb = _innermost(error.__traceback__)
    if tb is None:
        return False
    code = tb.tb_frame.f_code
    try:
        ours = Path(code.co_filename).resolve().is_relative_to(_PACKAGE_DIR)
    except (OSError, ValueError):
        return False
    return ours and any(i.offset == tb.tb_lasti and i.opname == "RAISE_VARARGS" for i in dis.get_instructions(code))


def is_usage_mistake(error: BaseException) -> bool:
    """Whether ``error`` is a usage mistake (one line, exit 2) rather than a crash (traceback, exit 1).

    Args:
        error: The exception a command raised.

    Returns:
        True for checked errors of ours, errors on the user's files, and missing extras.
    """
    if isinstance(error, _FILE_ERRORS):
        return True
    if isinstance(error, ImportError):
        return "pip install" in str(error)
    return isinstance(error, ValueError | LookupError | OSError) and _raised_by_us(error)


def mistake_message(error: BaseException) -> str:
    """The error's message on one line (a ``KeyError``'s message without the quotes ``str()`` adds)."""
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    text = " ".join(str(message).split())
    return text or type(error).__name__


def run_command(prog: str, command: Callable[[list[str]], int | None], argv: list[str], debug: bool = False) -> int:
    """Runs ``command(argv)`` and turns a usage mistake into one line on stderr and exit code 2.

    Args:
        prog: Name in messages, e.g. ``"jat-policy evaluate"``.
        command: The sub-command's ``cli_main``.
        argv: Its arguments.
        debug: Re-raise everything (full tracebacks), as ``--debug`` asks.

    Returns:
        The exit code: the command's, 2 for a usage mistake, 130 when interrupted.
    """
    debug = debug or debug_requested()
    try:
        return int(command(argv) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if debug or not is_usage_mistake(error):
            raise
        print(f"{prog}: error: {mistake_message(error)}", file=sys.stderr)
        return 2
