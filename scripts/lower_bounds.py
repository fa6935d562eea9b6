"""Prints pip constraints pinning each direct dependency of pyproject.toml to its lower bound (``>=X`` -> ``==X``).

``bash scripts/test.sh --oldest`` installs with them, so the lower bounds the project declares are ones the suite
has passed on. Dependencies without a lower bound are left to the resolver.
"""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOUND = re.compile(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*.*?>=\s*([0-9][0-9A-Za-z.]*)")


def lower_bounds(pyproject: Path) -> dict[str, str]:
    """``{name: lower bound}`` over the dependencies and every extra (the project's own extras skipped)."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    bounds = {}
    for requirement in requirements:
        match = BOUND.match(requirement)
        if match and match.group(1) != project["name"]:
            bounds[match.group(1).lower()] = match.group(2)
    return bounds


if __name__ == "__main__":
    for name, bound in sorted(lower_bounds(ROOT / "pyproject.toml").items()):
        print(f"{name}=={bound}")
