"""The ``jat-policy`` command line: ``collect | train-expert | train | evaluate | bench | demo``.

Each sub-command lives in the module that owns the feature and exposes ``cli_main(argv) -> int``;
this file only dispatches, importing the module lazily so ``jat-policy --help`` stays fast.
Options of each command are a typed dataclass in its module (see :mod:`jat_policy.utils.cli_args`).
"""

from __future__ import annotations

import importlib
import sys

# command -> (module, help line)
COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("jat_policy.data.collect_cli", "collect expert demonstrations into a Hub-schema dataset"),
    "train-expert": ("jat_policy.data.train_expert", "train a stable-baselines3 expert for a Gymnasium env"),
    "train": ("jat_policy.trainers.bc", "behaviour-cloning training of a JAT model"),
    "evaluate": ("jat_policy.evaluation.cli", "roll out a policy and report raw / normalised scores"),
    "demo": ("jat_policy.quickstart", "offline quickstart: collect, train a tiny JAT, evaluate"),
}


def _usage() -> str:
    lines = ["usage: jat-policy <command> [options]", "", "commands:"]
    lines += [f"  {name:<13} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `jat-policy <command> --help` for the options of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jat-policy`` script.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The process exit code.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"jat-policy: unknown command {command!r}.\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    return int(module.cli_main(rest) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
