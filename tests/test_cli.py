"""The ``jat-policy`` command line as a user meets it: one-line usage errors (exit 2), honest help text, logs."""

from __future__ import annotations

import dataclasses
import importlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from jat_policy import cli
from jat_policy.cli import COMMANDS, main
from jat_policy.utils.cli_args import build_parser, plain_text
from jat_policy.utils.cli_errors import is_usage_mistake
from jat_policy.utils.progress import PlainProgress, format_duration

# (argv, what the one line must say): every mistake of issue 17, and the --trust-pickle misuse
MISTAKES = {
    "missing-local-checkpoint": (
        ["evaluate", "--model", "runs/nope", "--tasks", "mujoco-pendulum"],
        "No such directory",
    ),
    "missing-dot-path": (["evaluate", "--model", "./nope", "--tasks", "mujoco-pendulum"], "No such directory"),
    "task-typo-evaluate": (
        ["evaluate", "--model", "random", "--tasks", "babyai-go-to-redball"],
        "Did you mean 'babyai-go-to-red-ball'",
    ),
    "task-typo-train": (["train", "--tasks", "babyai-go-to-redball"], "Did you mean 'babyai-go-to-red-ball'"),
    "train-no-arguments": (["train"], "No tasks"),
    "train-missing-data": (["train", "--tasks", "babyai-go-to-red-ball", "--data", "/nope/data"], "does not exist"),
    "train-bad-int": (["train", "--max-steps", "abc"], "invalid int value: 'abc'"),
    "train-bad-choice": (["train", "--tasks", "mujoco", "--bf16", "maybe"], "invalid choice: 'maybe'"),
    "train-no-layers": (["train", "--tasks", "mujoco", "--num-layers", "0"], "num_layers must be >= 1"),
    "evaluate-no-arguments": (["evaluate"], "--model"),
    "evaluate-zero-episodes": (
        ["evaluate", "--model", "random", "--tasks", "mujoco", "--episodes", "0"],
        "--episodes",
    ),
    "evaluate-odd-context-window": (
        ["evaluate", "--model", "random", "--tasks", "mujoco", "--context-window", "5"],
        "--context-window must be an even",
    ),
    "collect-no-arguments": (["collect"], "--task is required"),
    "collect-unknown-task": (["collect", "--task", "babyai-go-to-redball"], "Did you mean"),
    "collect-trust-pickle-misuse": (
        ["collect", "--task", "babyai-go-to-red-ball", "--trust-pickle"],
        "--trust-pickle",
    ),
    "unknown-option": (["evaluate", "--modle", "random"], "unrecognized arguments: --modle"),
    "unknown-command": (["evaluat"], "Did you mean 'evaluate'"),
    "demo-bad-value": (["demo", "--episodes", "many"], "invalid int value"),
}


@pytest.mark.parametrize("name", list(MISTAKES))
def test_usage_mistake_is_one_line_and_exit_2(name, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing the command might write lands in the repo
    monkeypatch.delenv("JAT_POLICY_DEBUG", raising=False)
    argv, expected = MISTAKES[name]
    try:
        code = main(argv)
    except SystemExit as exit_info:  # argparse's own errors exit (with one line, see OneLineParser)
        code = exit_info.code
    assert code == 2  # returned or exited, not raised: no traceback
    err = capsys.readouterr().err.strip().splitlines()
    assert 1 <= len(err) <= 2 and "Traceback" not in "\n".join(err), err
    command = argv[0] if argv[0] in COMMANDS else None
    assert err[-1].startswith(f"jat-policy {command}: error: " if command else "jat-policy: error: "), err
    assert expected in err[-1]


def test_the_real_process_prints_one_line_and_debug_shows_the_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-m", "jat_policy.cli", "evaluate", "--model", "runs/nope", "--tasks", "mujoco-pendulum"]
    run = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr
    assert "No such directory: 'runs/nope'" in run.stderr and "Hub" not in run.stderr
    debug = subprocess.run([*argv, "--debug"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "FileNotFoundError" in debug.stderr


def test_env_var_asks_for_tracebacks(monkeypatch):
    monkeypatch.setenv("JAT_POLICY_DEBUG", "1")
    with pytest.raises(KeyError, match="Did you mean"):
        main(["evaluate", "--model", "random", "--tasks", "babyai-go-to-redball"])


def test_a_real_crash_keeps_its_traceback(monkeypatch):
    def crash(argv):
        return {}["a key nobody checked"]  # a bug: not a message of ours

    monkeypatch.setitem(sys.modules, "fake_command", SimpleNamespace(cli_main=crash))
    monkeypatch.setitem(COMMANDS, "evaluate", ("fake_command", "crashes"))
    with pytest.raises(KeyError, match="a key nobody checked"):
        main(["evaluate"])


def test_only_checked_errors_count_as_usage_mistakes():
    def raise_here(error):
        try:
            raise error
        except Exception as caught:
            return caught

    # raised outside jat_policy (numpy, torch, this test): a crash, whatever its type
    assert not is_usage_mistake(raise_here(ValueError("shapes (2,3) and (4,) not aligned")))
    assert not is_usage_mistake(raise_here(IndexError("index 3 is out of bounds")))
    # a file the user named, and a missing extra: usage, wherever raised
    assert is_usage_mistake(raise_here(FileNotFoundError(2, "No such file or directory", "x.json")))
    assert is_usage_mistake(raise_here(ImportError('Atari tasks need ale-py: pip install "jat-policy[atari]"')))
    # a checked error raised by jat_policy code
    from jat_policy.tasks import get_task

    with pytest.raises(KeyError) as info:
        get_task("atari-pongg")
    assert is_usage_mistake(info.value)


def test_the_verdict_does_not_read_the_source_file(monkeypatch):
    # the raising frame's bytecode decides: an edited (here: blanked) source file changes nothing
    import linecache

    from jat_policy.tasks import get_task

    with pytest.raises(KeyError) as info:
        get_task("atari-pongg")
    monkeypatch.setattr(linecache, "getline", lambda *args, **kwargs: "")
    monkeypatch.setattr(linecache, "getlines", lambda *args, **kwargs: [])
    assert is_usage_mistake(info.value)


def test_an_error_from_a_call_in_our_code_is_a_crash():
    # a ValueError that float() raises inside jat_policy is not a message of ours
    from jat_policy.tasks import _float

    with pytest.raises(ValueError, match="could not convert") as info:
        _float("n/a")
    assert not is_usage_mistake(info.value)


# ------------------------------------------------------------------------------------------------
# Help text
# ------------------------------------------------------------------------------------------------
def _option_classes():
    for command, (module_name, _) in COMMANDS.items():
        module = importlib.import_module(module_name)
        for value in vars(module).values():
            is_options = dataclasses.is_dataclass(value) and isinstance(value, type)
            if (
                is_options
                and value.__module__.startswith("jat_policy")
                and value.__name__.endswith(("Options", "Args"))
            ):
                yield command, value


def test_help_states_each_default_once():
    seen = set()
    for command, options in _option_classes():
        seen.add(command)
        for action in build_parser(options, f"jat-policy {command}")._actions:
            assert (action.help or "").lower().count("default") <= 1, (command, action.dest, action.help)
    assert seen == set(COMMANDS)


def test_demo_help_has_no_sphinx_markup(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text and not re.search(r":(func|mod|class):", text)
    assert "jat_policy.evaluation.evaluate" in text and "\n1. Collect" in text  # names kept, list kept


def test_plain_text_unwraps_roles_and_literals():
    assert plain_text(":func:`~a.b.evaluate` and :mod:`a.b` with ``x=1``") == "evaluate and a.b with x=1"


def test_module_docstring_lists_the_real_commands():
    listed = re.search(r"``([a-z-]+(?: \| [a-z-]+)+)``", cli.__doc__).group(1)
    assert [name.strip() for name in listed.split("|")] == list(COMMANDS)


def test_top_level_help_mentions_debug(capsys):
    assert main(["--help"]) == 0
    assert "--debug" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------
# Progress lines off a TTY
# ------------------------------------------------------------------------------------------------
def test_plain_progress_prints_count_rate_elapsed_and_eta():
    out = io.StringIO()
    bar = PlainProgress(10, "collect babyai", "ep", interval=0.0, file=out)
    bar.update(4)
    bar.set_postfix(ret="0.9", refresh=False)
    bar.close()
    first, last = out.getvalue().splitlines()[0], out.getvalue().splitlines()[-1]
    assert re.fullmatch(r"collect babyai: 4/10 ep \(40%\), \S+ ep/s, elapsed \d+:\d\d, ETA \d+:\d\d", first)
    assert last.endswith("ret=0.9") and "refresh" not in last
    assert format_duration(3725) == "1:02:05" and format_duration(65) == "1:05"


def test_trainer_progress_line():
    from jat_policy.trainers.progress import PlainProgressCallback

    out = io.StringIO()
    callback = PlainProgressCallback(interval=1e9, file=out)
    state = SimpleNamespace(global_step=0, max_steps=100, is_world_process_zero=True)
    callback.on_train_begin(None, state, None)
    for step in (1, 50, 100):
        state.global_step = step
        callback.on_log(None, state, None, logs={"loss": 0.5, "learning_rate": 1e-3, "epoch": 0.1})
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the first log, then the last step (the interval is never reached)
    assert re.fullmatch(
        r"step 100/100 \(100%\) \| loss 0\.5000 \| lr 1\.00e-03 \| \S+ steps/s \| elapsed \d+:\d\d \| ETA 0:00",
        lines[-1],
    )
