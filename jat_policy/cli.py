"""The ``jat-policy`` command line: ``collect | train-expert | train | evaluate | finetune | demo``.

Each sub-command lives in the module that owns the feature and exposes ``cli_main(argv) -> int``;
this file only dispatches, importing the module lazily so ``jat-policy --help`` stays fast.
Options of each command are a typed dataclass in its module (see :mod:`jat_policy.utils.cli_args`).
A usage mistake in any command prints one line and exits with code 2 (:mod:`jat_policy.utils.cli_errors`);
``--debug`` anywhere on the line, or ``JAT_POLICY_DEBUG=1``, shows full tracebacks instead.
"""

from __future__ import annotations

import difflib
import importlib
import sys

from jat_policy.utils.cli_errors import run_command

# command -> (module, help line)
COMMANDS: dict[str, tuple[str, str]] = {
    "collect": ("jat_policy.data.collect_cli", "collect expert demonstrations into a Hub-schema dataset"),
    "train-expert": ("jat_policy.data.train_expert", "train a stable-baselines3 expert for a Gymnasium env"),
    "train": ("jat_policy.trainers.bc", "behaviour-cloning training of a JAT model"),
    "evaluate": ("jat_policy.evaluation.cli", "roll out a policy and report raw / normalised scores"),
    "finetune": ("jat_policy.finetune", "a new env in one command: collect expert episodes, train, evaluate"),
    "demo": ("jat_policy.quickstart", "offline quickstart: collect, train a tiny JAT, evaluate"),
}
DEBUG_FLAG = "--debug"


def _usage() -> str:
    lines = ["usage: jat-policy [--debug] <command> [options]", "", "commands:"]
    lines += [f"  {name:<13} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `jat-policy <command> --help` for the options of a command."]
    lines += ["--debug (or JAT_POLICY_DEBUG=1): full tracebacks instead of one-line errors."]
    return "\n".join(lines)


def _unknown_command(command: str) -> int:
    close = difflib.get_close_matches(command, list(COMMANDS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    choices = ", ".join(COMMANDS)
    print(f"jat-policy: error: unknown command {command!r}.{hint} Commands: {choices}.", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jat-policy`` script.

    Args:
        argv: Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns:
        The process exit code: 0 on success, 2 on a usage mistake, 130 when interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in argv
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        return _unknown_command(command)
    module = importlib.import_module(COMMANDS[command][0])
    return run_command(f"jat-policy {command}", module.cli_main, rest, debug=debug)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
