"""Experts for :func:`jat_policy.data.collect`, and ``jat-policy train-expert`` (SB3 PPO/SAC).

The expert protocol
-------------------
An expert is any callable ``expert(obs) -> action`` taking the JAT step dict of the wrapped env
(``continuous_observation`` = raw obs ‖ previous reward, ``discrete_observation``,
``text_observation``, ``image_observation``) and returning an action of the env's action space.
Two optional members refine it:

- ``reset(env, seed)``: called by the collector right after every ``env.reset(seed=seed)``, with
  the wrapped env. Experts that plan on the simulator state (the BabyAI bot reads
  ``env.unwrapped``) or need per-episode randomness (seeded from ``seed``) use it.
- ``name``: a short label stored in the dataset's metadata (defaults to the class name).

An expert that cannot finish an episode (planner loop, time budget) raises :class:`ExpertFailure`;
the collector drops that episode and counts it. Any other exception stops the collection.
For ``workers > 1`` the expert must be picklable: the adapters here load their models lazily.

Adapters: :class:`BabyAIBotExpert` (minigrid's bot, with step/time/stack budgets),
:class:`MetaWorldScriptedExpert` (``metaworld.policies``), :class:`SB3Expert` (any SB3 ``.zip``),
:class:`RandomExpert` (uniform random; the random reference score).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import os
import re
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from jat_policy.data.columns import task_domain


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


def _raw_continuous(obs: dict[str, Any]) -> np.ndarray:
    """The env's own observation: the step dict's ``continuous_observation`` without the appended reward."""
    return np.asarray(obs["continuous_observation"])[:-1]


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
            action = policy.get_action(_raw_continuous(obs).astype(np.float64))
        return np.clip(action, -1.0, 1.0).astype(np.float32)


def sb3_algorithm(path: str | Path, algo: str | None = None) -> type:
    """The SB3 algorithm class that saved ``path`` (read from the zip's policy class), or ``algo``'s.

    Args:
        path: An SB3 ``.zip``.
        algo: Force an algorithm name (``"ppo"``, ``"sac"``, ...), e.g. for sb3-contrib models.

    Returns:
        The algorithm class.
    """
    import stable_baselines3 as sb3

    if algo is not None:
        name = algo.upper()
        for module in (sb3, _sb3_contrib()):
            if module is not None and hasattr(module, name):
                return getattr(module, name)
        raise ValueError(f"algo={algo!r}: not a stable-baselines3 (or sb3-contrib) algorithm.")
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a stable-baselines3 model zip ({error}).") from None
    module = data.get("policy_class", {}).get("__module__", "")
    by_module = {"sac": sb3.SAC, "td3": sb3.TD3, "dqn": sb3.DQN}
    for key, cls in by_module.items():
        if f".{key}." in module:
            return cls
    if module == "stable_baselines3.common.policies":
        return sb3.PPO if "clip_range" in data else sb3.A2C
    contrib = _sb3_contrib()
    if contrib is not None and module.startswith("sb3_contrib."):
        return getattr(contrib, module.split(".")[1].upper())
    raise ValueError(f"Cannot tell the algorithm of {path} (policy module {module!r}); pass algo=.")


def _sb3_contrib() -> Any:
    try:
        import sb3_contrib
    except ImportError:
        return None
    return sb3_contrib


class SB3Expert:
    """Any stable-baselines3 model file as an expert.

    The model sees what it was trained on: a model trained on the raw Gymnasium env gets the raw
    observation (``continuous_observation`` without the appended reward, or the image/discrete
    observation), a model trained on the wrapped env gets the step dict.

    Args:
        path: The ``.zip`` saved by SB3 (e.g. by ``jat-policy train-expert``).
        algo: Algorithm name when it cannot be read from the zip (sb3-contrib).
        deterministic: Greedy actions (``True``) or sampled ones (seeded per episode).
        device: Torch device for the model.
        trust_pickle: Let SB3 unpickle the zip's pickled entries. A zip is code: unpickling runs whatever
            it holds, so only do this for files you made or trust. By default (``None``: the environment
            variable ``JAT_POLICY_TRUST_PICKLE=1`` turns it on) nothing is unpickled: spaces are rebuilt from
            the readable fields SB3 writes beside each pickle, schedules become constants, the policy class is
            the algorithm's own, training state is dropped; a zip that needs more raises a ``ValueError``.
        observation_space: The space the model was trained on, when it cannot be read from the zip (a
            ``Dict`` space: pass the env's).
        action_space: Likewise for the action space.

    Example:
        >>> expert = SB3Expert("experts/InvertedPendulum-v5-ppo.zip")  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        algo: str | None = None,
        deterministic: bool = True,
        device: str = "cpu",
        trust_pickle: bool | None = None,
        observation_space: Any = None,
        action_space: Any = None,
    ):
        self.trust_pickle = trust_pickle_default() if trust_pickle is None else trust_pickle
        self._spaces = {
            key: space
            for key, space in (("observation_space", observation_space), ("action_space", action_space))
            if space is not None
        }
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(
                f"SB3 model {str(self.path)!r} does not exist (train one with `jat-policy train-expert`)."
            )
        self.algo = algo
        self.deterministic, self.device = deterministic, device
        self.name = f"sb3:{self.path.name}"
        self._model: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}

    @property
    def model(self) -> Any:
        """The loaded SB3 model (loaded on first use, so the expert pickles cheaply to workers)."""
        if self._model is None:
            algorithm = sb3_algorithm(self.path, self.algo)
            custom_objects = None if self.trust_pickle else self._safe_objects(algorithm)
            self._model = algorithm.load(str(self.path), device=self.device, custom_objects=custom_objects)
        return self._model

    def _safe_objects(self, algorithm: type) -> dict[str, Any]:
        with zipfile.ZipFile(self.path) as archive:
            data = json.loads(archive.read("data"))
        objects, missing = sb3_safe_objects(data, algorithm, self._spaces)
        if missing:
            spaces_missing = any(entry.startswith(("observation_space", "action_space")) for entry in missing)
            hint = "Pass the env's spaces (SB3Expert(..., observation_space=...)). " if spaces_missing else ""
            raise ValueError(
                f"{self.path} holds pickled entries that cannot be loaded without running code from the file: "
                f"{'; '.join(missing)}. {hint}Only if you trust the file: SB3Expert(..., trust_pickle=True) or "
                f"{_TRUST_PICKLE_ENV}=1 for the CLI."
            )
        return objects

    def reset(self, env: Any, seed: int | None) -> None:
        """Seeds sampling (stochastic experts) with the episode seed."""
        if not self.deterministic and seed is not None:
            import torch

            torch.manual_seed(seed)

    def model_observation(self, obs: dict[str, Any]) -> Any:
        """Converts the step dict to the observation the model was trained on."""
        space = self.model.observation_space
        if hasattr(space, "spaces"):  # trained on the wrapped env (Dict space)
            return {key: np.asarray(obs[key]) for key in space.spaces}
        candidates = []
        if "continuous_observation" in obs:
            candidates += [_raw_continuous(obs), np.asarray(obs["continuous_observation"])]
        if "image_observation" in obs:
            image = np.asarray(obs["image_observation"])
            candidates += [image, image.transpose(2, 0, 1)]  # (84, 84, 4) -> (4, 84, 84)
        if "discrete_observation" in obs:
            candidates.append(np.asarray(obs["discrete_observation"]))
        for candidate in candidates:
            if candidate.shape == space.shape:
                return candidate.astype(space.dtype)
        raise ValueError(
            f"{self.path.name} expects observations of shape {space.shape}; the env gives "
            f"{[c.shape for c in candidates]} (raw obs, obs+reward, ...). Was the model trained on another env "
            "or env version (e.g. MuJoCo v4 vs v5 sizes)?"
        )

    def __call__(self, obs: dict[str, Any]) -> Any:
        """The model's action (``model.predict``)."""
        action, _ = self.model.predict(self.model_observation(obs), deterministic=self.deterministic)
        return action.item() if np.ndim(action) == 0 else action


# ----------------------------------------------------------------------------------------------------------------
# Loading SB3 zips without unpickling

# SB3 stores these "data" entries with cloudpickle. None of them is needed to act: SB3's ``_setup_model``
# rebuilds buffers and schedules from plain fields, and training state is reset by ``learn``.
_SB3_UNUSED_ENTRIES = frozenset(
    {
        "_last_obs",
        "_last_episode_starts",
        "_last_original_obs",
        "ep_info_buffer",
        "ep_success_buffer",
        "rollout_buffer_class",
        "replay_buffer_class",
        "action_noise",
        "env",
    }
)
_SB3_SCHEDULE_ENTRIES = frozenset(
    {"lr_schedule", "learning_rate", "clip_range", "clip_range_vf", "exploration_schedule"}
)
# Training settings pickled without readable fields; ``_setup_model`` turns these plain values into SB3's types.
_SB3_TRAINING_DEFAULTS = {"train_freq": 1}
_TRUST_PICKLE_ENV = "JAT_POLICY_TRUST_PICKLE"


def trust_pickle_default() -> bool:
    """``True`` when the environment variable ``JAT_POLICY_TRUST_PICKLE=1`` opts in (the CLI's switch)."""
    return os.environ.get(_TRUST_PICKLE_ENV, "") == "1"


def _sb3_numbers(text: str, what: str) -> np.ndarray:
    """Numbers of a numpy ``str(array)`` as SB3 writes them readable beside the pickle (``'[-inf 0. 3.]'``)."""
    text = str(text)
    tokens = text.replace("[", " ").replace("]", " ").replace(",", " ").split()
    if "..." in tokens:
        # numpy elides the middle of big arrays; bounds shown equal at both ends are taken as constant
        tokens = [token for token in tokens if token != "..."]
        if len(set(tokens)) != 1:
            raise ValueError(f"{what}: the bounds {text[:60]!r}... are elided and not constant")
    try:
        return np.array([float(token) for token in tokens], dtype=np.float64)
    except ValueError:
        raise ValueError(f"{what}: cannot read numbers from {text[:60]!r}") from None


def _sb3_shape(entry: dict[str, Any]) -> tuple[int, ...]:
    shape = entry["_shape"]
    return tuple(int(n) for n in (json.loads(shape) if isinstance(shape, str) else shape))


def _sb3_box(entry: dict[str, Any], what: str) -> Any:
    from gymnasium import spaces

    shape = _sb3_shape(entry)
    dtype = np.dtype(entry["dtype"])
    bounds = []
    for name in ("low", "high"):
        values = _sb3_numbers(entry[name], f"{what}.{name}")
        if values.size not in (1, int(np.prod(shape))):
            raise ValueError(f"{what}.{name}: {values.size} values for shape {shape}")
        bounds.append(np.broadcast_to(values, (int(np.prod(shape)),)).reshape(shape).astype(dtype))
    return spaces.Box(low=bounds[0], high=bounds[1], shape=shape, dtype=dtype)


def sb3_space(entry: dict[str, Any], what: str) -> Any:
    """Rebuilds a Gymnasium space from the readable fields SB3 writes beside its pickle (never the pickle).

    Args:
        entry: The zip's ``data`` entry (``{":type:": ..., ":serialized:": ..., "dtype": ..., ...}``).
        what: Its name, for errors.

    Returns:
        The space (Box, Discrete, MultiDiscrete or MultiBinary).

    Raises:
        ValueError: Another space type (e.g. ``Dict``), or fields that cannot be read.
    """
    from gymnasium import spaces

    kind = str(entry.get(":type:", ""))
    try:
        if "spaces.box.Box" in kind:
            return _sb3_box(entry, what)
        if "spaces.discrete.Discrete" in kind:
            return spaces.Discrete(int(entry["n"]), start=int(entry.get("start", 0)))
        if "spaces.multi_discrete.MultiDiscrete" in kind:
            nvec = _sb3_numbers(entry["nvec"], f"{what}.nvec").astype(np.int64)
            start = _sb3_numbers(entry.get("start", "[0]"), f"{what}.start").astype(np.int64)
            return spaces.MultiDiscrete(nvec, dtype=np.dtype(entry["dtype"]), start=np.broadcast_to(start, nvec.shape))
        if "spaces.multi_binary.MultiBinary" in kind:
            shape = _sb3_shape(entry)
            return spaces.MultiBinary(shape[0] if len(shape) == 1 else shape)
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot rebuild {what} ({kind}) from its readable fields: {error}") from None
    raise ValueError(f"cannot rebuild {what} of type {kind or '?'} from its readable fields")


def _sb3_constant(entry: dict[str, Any], data: dict[str, Any]) -> float:
    """A schedule as the constant SB3 shows beside the pickle (``ConstantSchedule(val=0.2)``); 0 otherwise.

    Only ``predict`` is used, which reads no schedule; a resumed training would see the constant.
    """
    match = re.search(r"val=([-+0-9.eE]+)", " ".join(str(value) for value in entry.values()))
    if match:
        return float(match.group(1))
    learning_rate = data.get("learning_rate")
    return float(learning_rate) if isinstance(learning_rate, (int, float)) else 0.0


def _sb3_policy_class(algorithm: type, entry: dict[str, Any]) -> type:
    """The policy class among the algorithm's own (``MlpPolicy``, ...) whose module and docstring match."""
    for policy in getattr(algorithm, "policy_aliases", {}).values():
        if policy.__module__ == entry.get("__module__") and (policy.__doc__ or "") == entry.get("__doc__", ""):
            return policy
    raise ValueError("policy_class is not one of the algorithm's own policies (a custom policy class)")


def _sb3_allowed_classes() -> dict[str, type]:
    """Classes a ``policy_kwargs`` may name, by dotted path: torch activations and optimizers, SB3's extractors."""
    import inspect

    import torch
    from stable_baselines3.common import torch_layers

    allowed = [
        (torch.nn.modules.activation, torch.nn.Module),
        (torch.optim, torch.optim.Optimizer),
        (torch_layers, torch_layers.BaseFeaturesExtractor),
    ]
    return {
        f"{cls.__module__}.{cls.__qualname__}": cls
        for module, base in allowed
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, base)
    }


def _sb3_kwarg(name: str, value: Any) -> Any:
    """A ``policy_kwargs`` value from its readable form; classes only from :func:`_sb3_allowed_classes`."""
    if not (isinstance(value, str) and value.startswith("<") and value.endswith(">")):
        return value  # plain JSON (net_arch, optimizer_kwargs, ...)
    match = re.fullmatch(r"<class '([\w.]+)'>", value)
    allowed = _sb3_allowed_classes()
    if match is None or match.group(1) not in allowed:
        raise ValueError(f"policy_kwargs[{name!r}] = {value} is code this loader does not know")
    return allowed[match.group(1)]


def sb3_safe_objects(
    data: dict[str, Any], algorithm: type, overrides: dict[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """``custom_objects`` for SB3's ``load`` that replace every pickled entry of ``data``.

    Args:
        data: The zip's ``data`` JSON.
        algorithm: The SB3 algorithm class.
        overrides: Objects given by the caller (e.g. the env's ``observation_space``); they win.

    Returns:
        The replacements, and ``"entry: reason"`` for each pickled entry that could not be replaced.
    """
    objects, missing = dict(overrides or {}), []
    for key, entry in data.items():
        if key in objects or not (isinstance(entry, dict) and ":serialized:" in entry):
            continue
        try:
            objects[key] = _sb3_replacement(key, entry, data, algorithm)
        except ValueError as error:
            missing.append(f"{key}: {error}")
    return objects, missing


def _sb3_replacement(key: str, entry: dict[str, Any], data: dict[str, Any], algorithm: type) -> Any:
    if key in _SB3_UNUSED_ENTRIES:
        return None
    if key in _SB3_TRAINING_DEFAULTS:
        return _SB3_TRAINING_DEFAULTS[key]
    if key in _SB3_SCHEDULE_ENTRIES:
        return _sb3_constant(entry, data)
    if key in ("observation_space", "action_space"):
        return sb3_space(entry, key)
    if key == "policy_class":
        return _sb3_policy_class(algorithm, entry)
    if key == "policy_kwargs":
        return {name: _sb3_kwarg(name, value) for name, value in entry.items() if not name.startswith(":")}
    raise ValueError(f"an unknown pickled entry of type {entry.get(':type:', '?')}")


DEFAULT_EXPERTS = {"babyai": "bot", "metaworld": "scripted", "atari": "random"}


def make_expert(name_or_path: str | Callable[..., Any] | None, task: str, **kwargs: Any) -> Any:
    """Builds an expert from a name, a model path or a callable.

    Args:
        name_or_path: ``"bot"`` (BabyAI), ``"scripted"`` (Meta-World), ``"random"``, a path to an SB3
            ``.zip``, any callable (returned as is), or ``None``/``"auto"`` for the task's default
            (BabyAI: bot, Meta-World: scripted, Atari: random).
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
        return SB3Expert(name, **kwargs)
    raise ValueError(
        f"Unknown expert {name!r}: expected 'bot', 'scripted', 'random', 'auto' or a path to an SB3 .zip."
    )


# ----------------------------------------------------------------------------------------------------------------
# train-expert


def _training_env_id(env: str) -> str:
    """A Gymnasium id from a gym id or a registered task name."""
    try:
        from jat_policy.tasks import get_task

        spec = get_task(env)
    except (ImportError, KeyError):
        return env
    if spec.domain in ("babyai", "metaworld"):
        raise ValueError(f"{env!r} has a built-in expert ({DEFAULT_EXPERTS[spec.domain]}); no need to train one.")
    if spec.env_id is None:
        raise ValueError(f"Task {env!r} has no Gymnasium id to train on.")
    return spec.env_id


def _progress_callback(total: int) -> Any:
    """A tqdm progress callback, for when SB3's own (which needs ``rich``) is unavailable."""
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm.auto import tqdm

    class TqdmCallback(BaseCallback):
        def _on_training_start(self) -> None:
            self.bar = tqdm(total=total, unit="step", desc="train-expert")

        def _on_step(self) -> bool:
            self.bar.update(self.training_env.num_envs)
            return True

        def _on_training_end(self) -> None:
            self.bar.close()

    return TqdmCallback()


def _policy_name(space: Any) -> str:
    if hasattr(space, "spaces"):
        return "MultiInputPolicy"
    return "CnnPolicy" if len(space.shape) == 3 and space.dtype == np.uint8 else "MlpPolicy"


def train_expert(
    env: str,
    algo: str = "ppo",
    timesteps: int = 100_000,
    out: str | Path | None = None,
    seed: int = 0,
    n_envs: int = 1,
    progress_bar: bool = True,
    eval_episodes: int = 5,
    device: str = "cpu",
    **algo_kwargs: Any,
) -> Path:
    """Trains a stable-baselines3 expert on a Gymnasium env and saves it as a ``.zip`` the collector accepts.

    Args:
        env: A Gymnasium id (``"InvertedPendulum-v5"``) or a registered task name (``"mujoco-pendulum"``).
        algo: ``"ppo"`` (~2k steps/s here) or ``"sac"`` (~60-85 steps/s on this CPU, better for hard MuJoCo).
        timesteps: Environment steps to train for.
        out: Output ``.zip`` (default ``experts/<env>-<algo>.zip``); a ``.json`` with the provenance goes beside it.
        seed: Training seed.
        n_envs: Parallel envs (PPO).
        progress_bar: Show a progress bar.
        eval_episodes: Deterministic evaluation episodes after training (0 = skip); stored in the ``.json``.
        device: Torch device.
        **algo_kwargs: Passed to the SB3 algorithm (e.g. ``learning_rate``, ``n_steps``).

    Returns:
        The path of the saved model.
    """
    if algo.lower() not in ("ppo", "sac"):
        raise ValueError(f"algo={algo!r}: expected 'ppo' or 'sac'.")
    import gymnasium as gym
    import stable_baselines3 as sb3
    from stable_baselines3.common.env_util import make_vec_env

    env_id = _training_env_id(env)
    out = Path(out) if out is not None else Path("experts") / f"{env_id.replace('/', '--')}-{algo.lower()}.zip"
    vec_env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    cls = getattr(sb3, algo.upper())
    model = cls(_policy_name(vec_env.observation_space), vec_env, seed=seed, device=device, verbose=0, **algo_kwargs)
    start = time.perf_counter()
    use_rich = progress_bar and _has_rich()
    callback = _progress_callback(timesteps) if progress_bar and not use_rich else None
    model.learn(total_timesteps=timesteps, progress_bar=use_rich, callback=callback)
    elapsed = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(out))
    info = TrainedExpertInfo(env_id, algo.lower(), timesteps, seed, round(elapsed, 2), str(gym.__version__))
    if eval_episodes > 0:
        from stable_baselines3.common.evaluation import evaluate_policy
        from stable_baselines3.common.monitor import Monitor

        eval_env = Monitor(gym.make(env_id))
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, deterministic=True)
        eval_env.close()
        info.eval_mean_return, info.eval_std_return, info.eval_episodes = float(mean), float(std), eval_episodes
    out.with_suffix(".json").write_text(json.dumps(dataclasses.asdict(info), indent=2) + "\n")
    vec_env.close()
    return out


def _has_rich() -> bool:
    import importlib.util

    return importlib.util.find_spec("rich") is not None


@dataclasses.dataclass
class TrainedExpertInfo:
    """Provenance written beside a trained expert (``<model>.json``)."""

    env_id: str
    algo: str
    timesteps: int
    seed: int
    train_seconds: float
    gymnasium_version: str
    eval_mean_return: float | None = None
    eval_std_return: float | None = None
    eval_episodes: int = 0


@dataclasses.dataclass
class TrainExpertOptions:
    """Train a stable-baselines3 expert for a task without a scripted one (MuJoCo, any Gymnasium env)."""

    env: str = field(default="InvertedPendulum-v5", metadata={"help": "Gymnasium id or task name"})
    algo: str = field(default="ppo", metadata={"help": "SB3 algorithm", "choices": ["ppo", "sac"]})
    timesteps: int = field(default=100_000, metadata={"help": "environment steps to train for"})
    out: str = field(default="", metadata={"help": "output .zip (default: experts/<env>-<algo>.zip)"})
    seed: int = field(default=0, metadata={"help": "training seed"})
    n_envs: int = field(default=1, metadata={"help": "parallel training envs"})
    eval_episodes: int = field(default=5, metadata={"help": "evaluation episodes after training (0: skip)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})


def cli_main(argv: list[str]) -> int:
    """``jat-policy train-expert``: trains and saves an SB3 expert, printing where and how good it is."""
    from jat_policy.utils.cli_args import parse_args

    options = parse_args(TrainExpertOptions, argv, prog="jat-policy train-expert")
    path = train_expert(
        options.env,
        algo=options.algo,
        timesteps=options.timesteps,
        out=options.out or None,
        seed=options.seed,
        n_envs=options.n_envs,
        progress_bar=options.progress,
        eval_episodes=options.eval_episodes,
    )
    info = json.loads(path.with_suffix(".json").read_text())
    score = ""
    if info["eval_episodes"]:
        score = f", eval return {info['eval_mean_return']:.1f} ± {info['eval_std_return']:.1f}"
        score += f" over {info['eval_episodes']} episodes"
    print(
        f"Saved {options.algo.upper()} expert for {info['env_id']} to {path} ({info['train_seconds']:.0f} s{score})."
    )
    print(f"Collect with: jat-policy collect --task {info['env_id']} --expert {path} --episodes 100 --out data/")
    return 0
