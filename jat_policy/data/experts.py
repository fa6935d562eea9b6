"""Experts for :func:`jat_policy.data.collect`: the expert protocol, the built-in experts and :func:`make_expert`.

The expert protocol
-------------------
An expert is any callable ``expert(obs) -> action`` taking the JAT step dict of the wrapped env
(``continuous_observation`` = raw obs ‖ previous reward, ``discrete_observation``,
``text_observation``, ``image_observation``) and returning an action of the env's action space.
Two optional members refine it:

- ``reset(env, seed)``: called by the collector right after every ``env.reset(seed=seed)``, with
  the wrapped env. This is how an expert reaches the simulator: experts that plan on its state
  (the BabyAI bot reads ``env.unwrapped``, the Atari RAM experts ``env.unwrapped.ale``) or need
  per-episode randomness (seeded from ``seed``) bind to it here; the step dict stays what the
  model sees.
- ``name``: a short label stored in the dataset's metadata (defaults to the class name).

An expert that cannot finish an episode (planner loop, time budget) raises :class:`ExpertFailure`;
the collector drops that episode and counts it. Any other exception stops the collection.
For ``workers > 1`` the expert must be picklable: the adapters here load their models lazily.

Adapters: :class:`BabyAIBotExpert` (minigrid's bot, with step/time/stack budgets),
:mod:`~jat_policy.data.atari_experts` (scripted Pong/Breakout players reading the emulator's RAM),
:class:`MetaWorldScriptedExpert` (``metaworld.policies``), :class:`RandomExpert` (uniform random; the random
reference score); :class:`~jat_policy.data.sb3_experts.SB3Expert` (any SB3 ``.zip``) lives in its own module.
"""

from __future__ import annotations

import contextlib
import copy
import io
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from jat_policy.data.columns import task_domain
from jat_policy.wrappers.common import raw_continuous


class ExpertFailure(RuntimeError):
    """The expert could not finish this episode (budget exceeded, planner error): drop it and go on."""


@runtime_checkable
class Expert(Protocol):
    """``expert(step_dict) -> action``; optional ``reset(env, seed)`` hook and ``name`` (see module doc)."""

    def __call__(self, obs: dict[str, Any]) -> Any:
        """Returns the action for one step dict."""
        ...


def expert_name(expert: Any) -> str:
    """The label stored in metadata: ``expert.name``, else the function or class name."""
    name = getattr(expert, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(expert, "__name__", None) or type(expert).__name__


@contextlib.contextmanager
def silenced_stdout() -> Iterator[None]:
    """Swallows prints (minigrid's "Sampling rejected", the bot's chatter)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


class RandomExpert:
    """Uniform random actions from the env's action space, seeded per episode (the random reference).

    Example:
        >>> import gymnasium as gym
        >>> expert = RandomExpert()
        >>> env = gym.make("CartPole-v1")
        >>> expert.reset(env, seed=0)
        >>> env.action_space.contains(expert({}))
        True
    """

    name = "random"

    def __init__(self) -> None:
        self._space: Any = None

    def reset(self, env: Any, seed: int | None) -> None:
        """Copies the env's action space and seeds it with the episode seed."""
        self._space = copy.deepcopy(env.action_space)
        self._space.seed(seed)

    def __call__(self, obs: dict[str, Any]) -> Any:
        """A uniformly random action."""
        if self._space is None:
            raise RuntimeError("RandomExpert needs reset(env, seed) before the first call (the collector does it).")
        return self._space.sample()


class _GuardedStack(list):
    """The bot's subgoal stack, raising :class:`ExpertFailure` past a size or time budget.

    ``BabyAIBot.replan`` can loop forever inside one call (on UnlockToUnlock its stack grew past
    100k entries in 10 s), so the budget is checked where the loop grows the stack; this needs no
    signal and works in any thread or worker process.
    """

    def __init__(self, items: list, max_size: int, deadline: float):
        super().__init__(items)
        self.max_size, self.deadline = max_size, deadline

    def append(self, item: Any) -> None:
        if len(self) >= self.max_size:
            raise ExpertFailure(f"BabyAI bot's plan grew past {self.max_size} subgoals (planner loop).")
        if time.monotonic() > self.deadline:
            raise ExpertFailure("BabyAI bot exceeded its time budget while planning.")
        super().append(item)


class BabyAIBotExpert:
    """minigrid's ``BabyAIBot`` as an expert, with per-episode step, wall-time and plan-size budgets.

    Args:
        max_steps: Steps before the episode is abandoned (the reference aborted BabyAI episodes > 1000).
        time_budget_s: Wall time per episode (the bot takes 1-100 ms on a normal episode).
        max_stack: Largest subgoal stack the planner may build.

    Example:
        >>> from jat_policy.data import BabyAIBotExpert, collect
        >>> result = collect("babyai-go-to-red-ball", BabyAIBotExpert(), n_episodes=10)  # doctest: +SKIP
    """

    name = "BabyAIBot"

    def __init__(self, max_steps: int = 1000, time_budget_s: float = 5.0, max_stack: int = 1000):
        if max_steps < 1 or time_budget_s <= 0 or max_stack < 1:
            raise ValueError(f"budgets must be positive: {max_steps=}, {time_budget_s=}, {max_stack=}.")
        self.max_steps, self.time_budget_s, self.max_stack = max_steps, time_budget_s, max_stack
        self._bot: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_bot": None}

    def reset(self, env: Any, seed: int | None) -> None:
        """Builds a fresh bot on the env's new episode (the bot reads ``env.unwrapped``)."""
        try:
            from minigrid.utils.baby_ai_bot import BabyAIBot
        except ImportError as error:
            raise ImportError('The BabyAI bot needs minigrid: pip install "jat-policy[babyai]"') from error
        self._deadline = time.monotonic() + self.time_budget_s
        self._steps = 0
        with silenced_stdout():
            try:
                bot = BabyAIBot(env.unwrapped)
            except Exception as error:  # the bot rejects missions it cannot parse
                raise ExpertFailure(
                    f"BabyAI bot cannot plan this mission ({type(error).__name__}: {error})."
                ) from None
        bot.stack = _GuardedStack(bot.stack, self.max_stack, self._deadline)
        self._bot = bot

    def __call__(self, obs: dict[str, Any]) -> int:
        """The bot's next action (``replan()``), within the episode's budgets."""
        if self._bot is None:
            raise RuntimeError("BabyAIBotExpert needs reset(env, seed) after each env reset (the collector does it).")
        self._steps += 1
        if self._steps > self.max_steps:
            raise ExpertFailure(f"BabyAI bot exceeded {self.max_steps} steps.")
        if time.monotonic() > self._deadline:
            raise ExpertFailure(f"BabyAI bot exceeded its {self.time_budget_s} s episode budget.")
        with silenced_stdout():
            try:
                return int(self._bot.replan())
            except ExpertFailure:
                raise
            except Exception as error:  # known failures: KeyInBox, PutNext*Carrying, OpenDoorsOrder*Debug
                raise ExpertFailure(f"BabyAI bot failed ({type(error).__name__}: {error}).") from None


def metaworld_env_name(task: str) -> str:
    """``"metaworld-reach"`` / ``"reach"`` / ``"reach-v3"`` -> ``"reach-v3"`` (the policy map's key)."""
    name = task.removeprefix("metaworld-")
    for suffix in ("-v2", "-v3"):
        name = name.removesuffix(suffix)
    return f"{name}-v3"


class MetaWorldScriptedExpert:
    """Meta-World's scripted policy for a task (``metaworld.policies``), clipped to the action bounds.

    Args:
        task: ``"metaworld-reach"``, ``"reach"`` or ``"reach-v3"``.

    Example:
        >>> expert = MetaWorldScriptedExpert("metaworld-reach")  # doctest: +SKIP
    """

    def __init__(self, task: str):
        self.env_name = metaworld_env_name(task)
        self.name = f"metaworld-scripted:{self.env_name}"
        self._policy: Any = None
        self._load()  # fail now on an unknown task, not in a worker

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_policy": None}

    def _load(self) -> Any:
        try:
            from metaworld.policies import ENV_POLICY_MAP
        except ImportError as error:
            raise ImportError(
                'Meta-World scripted policies need metaworld: pip install "jat-policy[metaworld]"'
            ) from error
        if self.env_name not in ENV_POLICY_MAP:
            raise ValueError(
                f"No Meta-World scripted policy for {self.env_name!r}; known: {sorted(ENV_POLICY_MAP)[:5]}... "
                f"({len(ENV_POLICY_MAP)} tasks)."
            )
        self._policy = ENV_POLICY_MAP[self.env_name]()
        return self._policy

    def __call__(self, obs: dict[str, Any]) -> np.ndarray:
        """The scripted action for the raw 39-d observation."""
        policy = self._policy or self._load()
        with warnings.catch_warnings():  # "Constant(s) may be too high": the policies' gains, clipped below
            warnings.simplefilter("ignore", UserWarning)
            action = policy.get_action(raw_continuous(obs).astype(np.float64))
        return np.clip(action, -1.0, 1.0).astype(np.float32)


DEFAULT_EXPERTS = {"babyai": "bot", "metaworld": "scripted", "atari": "ram"}  # atari: random where no RAM expert


def make_expert(name_or_path: str | Callable[..., Any] | None, task: str, **kwargs: Any) -> Any:
    """Builds an expert from a name, a model path or a callable.

    Args:
        name_or_path: ``"bot"`` (BabyAI), ``"scripted"`` (Meta-World), ``"ram"`` (Atari Pong and Breakout,
            :mod:`jat_policy.data.atari_experts`), ``"random"``, a path to an SB3 ``.zip``, any callable (returned
            as is), or ``None``/``"auto"`` for the task's default (BabyAI: bot, Meta-World: scripted, Atari: the
            RAM expert where the game has one, else random).
        task: Task name (or Gymnasium id) the expert will play.
        **kwargs: Passed to the adapter (e.g. ``time_budget_s`` for the bot, ``deterministic`` for SB3).

    Returns:
        The expert.
    """
    if callable(name_or_path):
        return name_or_path
    domain = task_domain(task)
    name = name_or_path or "auto"
    if name == "auto":
        if domain not in DEFAULT_EXPERTS:
            raise ValueError(
                f"No default expert for {task!r}: pass --expert random or an SB3 model .zip "
                f"(train one with `jat-policy train-expert --env <gym id>`)."
            )
        name = DEFAULT_EXPERTS[domain]
        if name == "ram" and task not in _ram_experts():
            name = "random"
    if name == "ram":
        from jat_policy.data.atari_experts import make_ram_expert

        return make_ram_expert(task, **kwargs)
    if name == "random":
        return RandomExpert(**kwargs)
    if name == "bot":
        if domain != "babyai":
            raise ValueError(f"expert 'bot' (BabyAI bot) does not play {task!r}: it only plays babyai-* tasks.")
        return BabyAIBotExpert(**kwargs)
    if name == "scripted":
        if domain != "metaworld":
            raise ValueError(f"expert 'scripted' only exists for metaworld-* tasks, not {task!r}.")
        return MetaWorldScriptedExpert(task)
    if str(name).endswith(".zip") or Path(name).is_file():
        from jat_policy.data.sb3_experts import SB3Expert  # imported here: sb3_experts builds on this module

        return SB3Expert(name, **kwargs)
    raise ValueError(
        f"Unknown expert {name!r}: expected 'bot', 'scripted', 'ram', 'random', 'auto' or a path to an SB3 .zip."
    )


def _ram_experts() -> dict[str, Any]:
    from jat_policy.data.atari_experts import RAM_EXPERTS

    return RAM_EXPERTS


def expert_option(expert: str, task: str, trust_pickle: bool = False) -> Any:
    """``--expert`` as the command lines (collect, finetune) take it, with ``--trust-pickle`` applied.

    Without ``trust_pickle`` the name or path is returned as given (``collect`` resolves it with
    :func:`make_expert`); with it, the SB3 expert allowed to unpickle its zip, the CLIs' only way to unpickle,
    refused for anything but a ``.zip``.
    """
    if not trust_pickle:
        return expert
    if not expert.endswith(".zip"):
        raise ValueError(f"--trust-pickle applies to an SB3 .zip expert only, not --expert {expert!r}.")
    return make_expert(expert, task, trust_pickle=True)
