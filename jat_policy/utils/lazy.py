"""Lazy package attributes: a package lists ``name -> module`` and imports a module on first use."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, table: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Builds a package's ``__getattr__`` and ``__dir__`` (PEP 562) from ``{public name: defining module}``.

    Args:
        package: The package's ``__name__``.
        table: Where each public name is defined.

    Returns:
        ``(__getattr__, __dir__)`` to assign at the package's top level. A resolved name is cached in
        the package's namespace, so each module is imported once.
    """

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(table) | set(vars(sys.modules[package])))

    return __getattr__, __dir__
